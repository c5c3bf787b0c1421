package sdk

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/hookbridge/hookbridge/plugins/proto/sinkpb"
	"github.com/hookbridge/hookbridge/schemas"
)

// TestWriteCodecMatchesProtobuf: the codec's WriteRequest bytes are protobuf's, it reads what
// protobuf writes (unknown fields skipped) with arrow_ipc pointing into the message, and other
// messages go through protobuf's codec.
func TestWriteCodecMatchesProtobuf(t *testing.T) {
	c := newWriteCodec(nil)
	for _, req := range []*sinkpb.WriteRequest{
		{BatchId: "b-1", Attempt: 3, ArrowIpc: bytes.Repeat([]byte{7, 0, 255}, 100_000)},
		{BatchId: "only an id"},
		{Attempt: -1, ArrowIpc: []byte{1}},
		{},
	} {
		want, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Materialize(), want) {
			t.Errorf("%v: the codec's bytes differ from protobuf's", req.BatchId)
		}
		// What protobuf writes, plus a field this version does not know.
		msg := protowire.AppendString(protowire.AppendTag(append([]byte(nil), want...), 99, protowire.BytesType), "from a later protocol")
		var back sinkpb.WriteRequest
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(msg[:len(msg)/2]), mem.SliceBuffer(msg[len(msg)/2:])}, &back); err != nil {
			t.Fatal(err)
		}
		if back.BatchId != req.BatchId || back.Attempt != req.Attempt || !bytes.Equal(back.ArrowIpc, req.ArrowIpc) {
			t.Errorf("read back %q %d %d bytes, want %q %d %d bytes", back.BatchId, back.Attempt, len(back.ArrowIpc), req.BatchId, req.Attempt, len(req.ArrowIpc))
		}
	}

	// arrow_ipc is a slice of the message, not a copy.
	msg, _ := proto.Marshal(&sinkpb.WriteRequest{BatchId: "b", ArrowIpc: []byte("ipc bytes")})
	var req sinkpb.WriteRequest
	if err := unmarshalWrite(msg, &req); err != nil {
		t.Fatal(err)
	}
	msg[len(msg)-1] = '!'
	if string(req.ArrowIpc) != "ipc byte!" {
		t.Errorf("arrow_ipc is %q: copied out of the message", req.ArrowIpc)
	}

	// Broken input is refused.
	for _, bad := range [][]byte{
		{0x0a, 0x05, 'a'},        // batch_id shorter than its length
		{0x1a},                   // arrow_ipc without a length
		{0x0a, 0x02, 0xff, 0xfe}, // batch_id not UTF-8
		{0x10, 0xff, 0xff, 0xff}, // attempt's varint cut short
	} {
		if err := unmarshalWrite(bad, &req); err == nil {
			t.Errorf("% x: accepted", bad)
		}
	}

	// Other messages are protobuf's business.
	other := &sinkpb.WriteResponse{Error: "boom"}
	data, err := c.Marshal(other)
	if err != nil {
		t.Fatal(err)
	}
	var back sinkpb.WriteResponse
	if err := c.Unmarshal(data, &back); err != nil || back.Error != "boom" {
		t.Fatalf("WriteResponse through the codec: %v %q", err, back.Error)
	}
}

// TestBatchBuffersComeBackOnlyWhenReleased: the memory a batch was read into is reused only
// once the record decoded from it is released by everyone, a sink that kept it included.
func TestBatchBuffersComeBackOnlyWhenReleased(t *testing.T) {
	rows := []schemas.Row{{Seq: 1, EventID: "a", EventType: "Subscribe", Email: "a@example.com"}, {Seq: 2, EventID: "b", EventType: "Test"}}
	rec, err := schemas.BuildRecord(nil, schemas.DeliverySchema(), rows)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	payload, err := EncodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := proto.Marshal(&sinkpb.WriteRequest{BatchId: "b", ArrowIpc: payload})
	bufs := &batchBuffers{}
	c := newWriteCodec(bufs)
	var req sinkpb.WriteRequest
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(msg)}, &req); err != nil {
		t.Fatal(err)
	}
	got, err := decodeRecord(req.ArrowIpc, bufs.owner(&req))
	if err != nil {
		t.Fatal(err)
	}
	got.Retain() // the sink keeps the record past Write
	got.Release()
	if len(bufs.free) != 0 {
		t.Fatal("the buffer came back while a sink still holds the record")
	}
	other := bufs.get(len(msg)) // the next batch gets other memory
	for i := range other {
		other[i] = 0xee
	}
	back, err := schemas.RowsFromRecord(got)
	if err != nil || len(back) != 2 || back[0].Email != "a@example.com" {
		t.Fatalf("the kept record reads %v %+v", err, back)
	}
	got.Release()
	if len(bufs.free) != 1 {
		t.Fatalf("%d free buffers after the last release, want 1", len(bufs.free))
	}
}

// TestWriteCodecKnowsEveryField: the codec writes and reads WriteRequest's fields by number;
// a field added to the protocol must be added to it too.
func TestWriteCodecKnowsEveryField(t *testing.T) {
	fields := (&sinkpb.WriteRequest{}).ProtoReflect().Descriptor().Fields()
	known := map[protowire.Number]string{1: "batch_id", 2: "attempt", 3: "arrow_ipc"}
	if fields.Len() != len(known) {
		t.Fatalf("WriteRequest has %d fields; the codec knows %d", fields.Len(), len(known))
	}
	for i := range fields.Len() {
		f := fields.Get(i)
		if known[f.Number()] != string(f.Name()) {
			t.Errorf("field %d is %s; the codec takes it for %q", f.Number(), f.Name(), known[f.Number()])
		}
	}
}
