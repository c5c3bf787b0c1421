// Package proto holds the sink plugin protocol (sink.proto); the generated Go code is in
// sinkpb. Regenerate with `go generate ./plugins/proto` (needs protoc, Debian package
// protobuf-compiler; the Go generators are pinned as tools in go.mod).
package proto

//go:generate sh -c "cd ../.. && protoc --plugin=protoc-gen-go=$(go tool -n protoc-gen-go) --plugin=protoc-gen-go-grpc=$(go tool -n protoc-gen-go-grpc) --go_out=. --go_opt=module=github.com/hookbridge/hookbridge --go-grpc_out=. --go-grpc_opt=module=github.com/hookbridge/hookbridge plugins/proto/sink.proto"
