package sdk

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Serve runs sink as a plugin process and returns when the host is done with it. Called with
// the argument "spec" or "version" (from a shell, or by `hookbridge plugins list`), it prints
// the spec as JSON or the version and returns at once, without a handshake.
func Serve(sink Sink) {
	if err := ServeArgs(sink, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// ServeArgs is Serve with explicit arguments and output, for plugins that parse their own
// command line (hookbridge's built-in sinks are served this way by `hookbridge plugin serve`).
func ServeArgs(sink Sink, args []string, stdout io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "spec":
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(struct {
				Spec
				Protocol int `json:"protocol"`
			}{sink.Spec(), ProtocolVersion})
		case "version":
			sp := sink.Spec()
			_, err := fmt.Fprintf(stdout, "%s %s (protocol %d)\n", sp.Name, sp.Version, ProtocolVersion)
			return err
		}
	}
	if os.Getenv(Handshake.MagicCookieKey) != Handshake.MagicCookieValue {
		return fmt.Errorf("this is a hookbridge sink plugin: hookbridge starts it (put it in the plugins folder as hookbridge-sink-NAME); run it with 'spec' or 'version' to inspect it")
	}
	log := NewLogger(os.Stderr, slog.LevelDebug)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(PluginGCPercent)
		if os.Getenv("GOMEMLIMIT") == "" {
			debug.SetMemoryLimit(PluginMemoryLimit)
		}
	}
	go exitWithParent(log)
	var bufs *batchBuffers // nil: every batch is read into fresh memory
	if _, ok := sink.(RecordMemoryReuser); ok {
		bufs = &batchBuffers{}
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			ProtocolVersion: {PluginName: &GRPCPlugin{Impl: sink, Logger: log, bufs: bufs}},
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return plugin.DefaultGRPCServer(append(opts, serverOptions(bufs)...))
		},
		// go-plugin's own messages, in the same JSON shape the host re-levels.
		Logger: hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: hclog.Warn}),
	})
	return nil
}

// serverOptions size the plugin's gRPC flow-control windows and socket buffers for batches of
// a few megabytes (with gRPC's 64 KiB starting window a 1 MB batch waits for window updates
// several times on its way in), and decode a batch without copying it (writeCodec), into
// bufs when the sink lets its memory be reused.
func serverOptions(bufs *batchBuffers) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.InitialWindowSize(transportWindow), grpc.InitialConnWindowSize(transportWindow),
		grpc.ReadBufferSize(transportBuffer), grpc.WriteBufferSize(transportBuffer),
		grpc.ForceServerCodecV2(newWriteCodec(bufs)),
	}
}

// TransportDialOptions are the host's side of the plugin's gRPC settings: the same windows
// and buffers, and the same codec.
func TransportDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(transportWindow), grpc.WithInitialConnWindowSize(transportWindow),
		grpc.WithReadBufferSize(transportBuffer), grpc.WithWriteBufferSize(transportBuffer),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(newWriteCodec(nil))),
	}
}

const (
	transportWindow = 8 << 20 // above the largest message (MaxMessageBytes on the host)
	transportBuffer = 256 << 10
)

// PluginGCPercent is the garbage collector's GOGC in a plugin process unless the GOGC
// environment variable sets another. A plugin keeps little live memory and allocates a
// batch's worth (a few megabytes) on every Write, so at Go's default of 100 it collects
// after nearly every batch: at 10,000-row batches that halved its throughput. Letting the
// heap grow to five times the live data costs a few tens of megabytes.
const PluginGCPercent = 400

// PluginMemoryLimit is the soft memory limit that comes with PluginGCPercent unless the
// GOMEMLIMIT environment variable sets one: a plugin whose live data is large (a file sink
// holding a schedule window) collects more often as it nears it instead of growing to five
// times its live data.
const PluginMemoryLimit = 1 << 30

// exitWithParent ends the plugin when the host process is gone, even when the host could not
// ask (SIGKILL): the host also sets a parent-death signal on Linux; this covers the rest.
func exitWithParent(log *slog.Logger) {
	parent := os.Getppid()
	for range time.Tick(500 * time.Millisecond) {
		if os.Getppid() != parent {
			log.Warn("host process is gone; plugin exiting")
			os.Exit(0)
		}
	}
}
