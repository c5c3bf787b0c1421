// Package plugins is the host side of hookbridge's sink plugins: it finds a plugin (a
// built-in served by re-executing hookbridge, or an external hookbridge-sink-NAME executable),
// starts it through hashicorp/go-plugin with a versioned handshake, and calls it over gRPC.
// When a plugin process dies, the call in flight fails with ErrPluginExited and the next call
// starts it again (with back-off) and re-configures it.
package plugins

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/hookbridge/hookbridge/plugins/proto/sinkpb"
	"github.com/hookbridge/hookbridge/plugins/sdk"
)

// SupportedVersions are the protocol versions this host speaks.
var SupportedVersions = []int{sdk.ProtocolVersion}

// ErrPluginExited: the plugin process died during the call. Nothing is known of the call's
// effect; the next call restarts the plugin.
var ErrPluginExited = errors.New("plugins: plugin process exited")

// MaxMessageBytes is the largest Arrow IPC payload sent in one Write. gRPC refuses messages
// over 4 MiB by default on both ends; larger batches are split.
const MaxMessageBytes = 3 << 20

// Launch says how to start a plugin process.
type Launch struct {
	// Name is the plugin's name (for logs).
	Name string
	Path string
	Args []string
	// Env is added to the host's environment.
	Env []string
	// Stdout receives what the plugin writes to its standard output (a jsonl sink writing to
	// "-"), line by line; nil discards it. Logs go to standard error and reach the host's
	// logger.
	Stdout *Output
}

// Client is one plugin, started and configured. Its methods are safe for concurrent use, but
// calls are serialised: a plugin never sees two calls at once.
type Client struct {
	launch Launch
	log    *slog.Logger

	mu         sync.Mutex
	pc         *plugin.Client
	rpc        sinkpb.SinkClient
	spec       sdk.Spec
	checks     bool
	configured *sinkpb.ConfigureRequest
	failures   int // calls or starts that failed in a row
	restarts   int // restarts since the host started it
	notBefore  time.Time
	closed     bool
	// lastOK is when the plugin last answered; a call after healthEvery without one is
	// preceded by a health check.
	lastOK        time.Time
	healthEvery   time.Duration
	healthTimeout time.Duration
	// sockDir is the private folder (mode 0700) the plugin puts its socket in, kept across
	// restarts and removed by Close.
	sockDir string
	// stopProcess ends the context the running process was started under; called once the
	// process is killed.
	stopProcess context.CancelFunc
}

// Start starts the plugin and reads its spec.
func Start(ctx context.Context, launch Launch, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.Default()
	}
	c := &Client{launch: launch, log: log, healthEvery: healthEvery, healthTimeout: healthTimeout}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.start(ctx); err != nil {
		c.removeSockDir()
		return nil, err
	}
	return c, nil
}

func (c *Client) removeSockDir() {
	if c.sockDir != "" {
		os.RemoveAll(c.sockDir)
	}
}

// stdout is where go-plugin copies this start's standard output to.
func (c *Client) stdout() io.Writer {
	if c.launch.Stdout == nil {
		return io.Discard
	}
	return &lineWriter{out: c.launch.Stdout}
}

// start launches the process, handshakes and reads the spec (c.mu held).
func (c *Client) start(ctx context.Context) error {
	if _, err := os.Stat(c.sockDir); c.sockDir == "" || err != nil { // none yet, or a tmp cleaner took it
		dir, err := os.MkdirTemp("", "hookbridge-plugin-")
		if err != nil {
			return fmt.Errorf("plugins: start %s: socket folder: %w", c.launch.Name, err)
		}
		c.sockDir = dir
	}
	// pc.Client waits for the handshake up to StartTimeout, holding a lock that pc.Kill needs,
	// and takes no context. The process is tied to abort instead: cancelling it kills the
	// process, which ends the wait. abort lives as long as the process (c.stopProcess).
	abort, stopProcess := context.WithCancel(context.Background())
	cmd := exec.CommandContext(abort, c.launch.Path, c.launch.Args...)
	// The host's environment first, then the launch's own variables, which win. (go-plugin
	// would append the host's after ours, so it is told to skip it.)
	cmd.Env = append(os.Environ(), c.launch.Env...)
	// On Unix the plugin listens on a socket inside a folder only this user can enter, so
	// no other user's process can reach it, and go-plugin's AutoMTLS would only guard it
	// against this user's own processes (which can read the host's memory and its API keys
	// anyway) at a tenth of the throughput across the boundary: it is off there. Elsewhere
	// (Windows) the plugin listens on a loopback TCP port any local user can reach, so
	// AutoMTLS stays on.
	cmd.Env = append(cmd.Env, plugin.EnvUnixSocketDir+"="+c.sockDir)
	killWithParent(cmd)
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{sdk.ProtocolVersion: {sdk.PluginName: &sdk.GRPCPlugin{}}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           newSlogAdapter(c.log.With("plugin", c.launch.Name)),
		Stderr:           io.Discard,
		SyncStdout:       c.stdout(),
		SkipHostEnv:      true,
		StartTimeout:     30 * time.Second,
		GRPCDialOptions:  sdk.TransportDialOptions(),
		AutoMTLS:         runtime.GOOS == "windows",
	})
	started := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			stopProcess()
		case <-started:
		}
	}()
	conn, err := pc.Client()
	close(started)
	fail := func() {
		pc.Kill()
		stopProcess()
	}
	if err != nil {
		fail()
		if ctx.Err() != nil {
			// go-plugin's own error says how the wait ended (the process was killed).
			return fmt.Errorf("plugins: start %s: %w (%v)", c.launch.Name, ctx.Err(), err)
		}
		return fmt.Errorf("plugins: start %s (%s): %w", c.launch.Name, c.launch.Path, explainStart(err))
	}
	raw, err := conn.Dispense(sdk.PluginName)
	if err != nil {
		fail()
		return fmt.Errorf("plugins: start %s: %w", c.launch.Name, err)
	}
	rpc := raw.(sinkpb.SinkClient)
	spec, err := rpc.Spec(ctx, &sinkpb.SpecRequest{})
	if err != nil {
		fail()
		return fmt.Errorf("plugins: %s: spec: %w", c.launch.Name, err)
	}
	c.pc, c.rpc, c.spec, c.checks, c.stopProcess = pc, rpc, sdk.SpecFromProto(spec), spec.Checks, stopProcess
	return nil
}

// explainStart makes go-plugin's version mismatch say what to do.
func explainStart(err error) error {
	if strings.Contains(strings.ToLower(err.Error()), "incompatible api version") {
		return fmt.Errorf("%w (this hookbridge speaks sink protocol versions %v: rebuild the plugin with a matching plugins/sdk)", err, SupportedVersions)
	}
	return err
}

// Spec returns the plugin's spec.
func (c *Client) Spec() sdk.Spec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.spec
}

// Checks reports whether the plugin implements Check.
func (c *Client) Checks() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checks
}

// Configure hands the plugin its settings and mapping; they are handed again after every
// restart. Refused settings return a *sdk.SettingsError naming the field.
func (c *Client) Configure(ctx context.Context, name string, settings json.RawMessage, mapping map[string]string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	req := &sinkpb.ConfigureRequest{SinkName: name, SettingsJson: settings, Mapping: mapping}
	if err := c.ready(ctx); err != nil {
		return err
	}
	if err := c.configure(ctx, req); err != nil {
		return err
	}
	c.configured = req
	return nil
}

func (c *Client) configure(ctx context.Context, req *sinkpb.ConfigureRequest) error {
	resp, err := c.rpc.Configure(ctx, req)
	if err != nil {
		return c.callError(ctx, "configure", err)
	}
	if se := resp.SettingsError; se != nil {
		return &sdk.SettingsError{Field: se.Field, Message: se.Message}
	}
	if resp.Error != "" {
		return fmt.Errorf("plugins: %s: configure: %s", c.launch.Name, resp.Error)
	}
	return nil
}

// A plugin that has not answered for healthEvery gets a health check (gRPC's health service,
// which go-plugin serves) before the next call; one that does not pass it within
// healthTimeout is taken for hung, killed and started again like a crashed one.
const (
	healthEvery   = 30 * time.Second
	healthTimeout = 5 * time.Second
)

// ready (re)starts a dead or hung plugin, waiting out the restart back-off (c.mu held).
func (c *Client) ready(ctx context.Context) error {
	if c.closed {
		return fmt.Errorf("plugins: %s: closed", c.launch.Name)
	}
	if c.pc != nil && !c.pc.Exited() {
		if time.Since(c.lastOK) < c.healthEvery {
			return nil
		}
		err := c.healthy(ctx)
		if err == nil {
			c.lastOK = time.Now()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Warn("plugins: plugin failed its health check; restarting it", "plugin", c.launch.Name, "err", err)
		c.killProcess()
	}
	if wait := time.Until(c.notBefore); wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if c.pc != nil {
		c.pc.Kill()
		c.stopProcess()
		c.restarts++
		c.log.Warn("plugins: restarting plugin", "plugin", c.launch.Name, "restarts", c.restarts, "failed_in_a_row", c.failures)
	}
	err := c.start(ctx)
	if err == nil && c.configured != nil {
		err = c.configure(ctx, c.configured)
	}
	if err != nil {
		c.failures++
		c.notBefore = time.Now().Add(min(100*time.Millisecond<<min(c.failures, 9), 30*time.Second))
		return err
	}
	c.failures = 0
	c.lastOK = time.Now()
	return nil
}

// healthy asks go-plugin's health service whether the plugin answers (c.mu held).
func (c *Client) healthy(ctx context.Context) error {
	proto, err := c.pc.Client()
	if err != nil {
		return err
	}
	gc, ok := proto.(*plugin.GRPCClient)
	if !ok {
		return proto.Ping()
	}
	ctx, cancel := context.WithTimeout(ctx, c.healthTimeout)
	defer cancel()
	_, err = grpc_health_v1.NewHealthClient(gc.Conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: plugin.GRPCServiceName})
	return err
}

// callError classifies a failed call. A plugin that is gone (the connection is unavailable)
// is killed for good measure and reported as ErrPluginExited; the next call starts a new one.
func (c *Client) callError(ctx context.Context, what string, err error) error {
	if c.pc == nil || c.pc.Exited() || status.Code(err) == codes.Unavailable {
		// The process may still be exiting: give the exit a moment (up to a second, or until
		// ctx ends) to be seen, then make sure.
		wait := time.NewTicker(10 * time.Millisecond)
	waiting:
		for i := 0; i < 100 && c.pc != nil && !c.pc.Exited(); i++ {
			select {
			case <-wait.C:
			case <-ctx.Done():
				break waiting
			}
		}
		wait.Stop()
		if c.pc != nil {
			c.pc.Kill()
		}
		c.failures++
		c.notBefore = time.Now().Add(min(50*time.Millisecond<<min(c.failures-1, 9), 30*time.Second))
		return fmt.Errorf("%w: %s during %s: %v", ErrPluginExited, c.launch.Name, what, err)
	}
	if code := status.Code(err); code == codes.DeadlineExceeded || code == codes.Canceled {
		c.lastOK = time.Time{} // a call that ran out of time: check the plugin before the next
	}
	return fmt.Errorf("plugins: %s: %s: %w", c.launch.Name, what, err)
}

// neverSent reports whether a failed call cannot have reached the plugin (no connection
// could be set up: refused while dialing, reset during the TLS handshake), so it can be
// retried on a new process without any risk of doing the work twice.
func neverSent(err error) bool {
	if status.Code(err) != codes.Unavailable {
		return false
	}
	msg := status.Convert(err).Message()
	return strings.HasPrefix(msg, "connection error:") || strings.Contains(msg, "while dialing")
}

// Check asks the plugin to test its connection.
func (c *Client) Check(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(ctx); err != nil {
		return err
	}
	resp, err := c.rpc.Check(ctx, &sinkpb.CheckRequest{})
	if err != nil {
		return c.callError(ctx, "check", err)
	}
	c.lastOK = time.Now()
	if resp.Error != "" {
		return fmt.Errorf("plugins: %s: check: %s", c.launch.Name, resp.Error)
	}
	return nil
}

// Ping reports whether the plugin process answers its health check.
func (c *Client) Ping() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pc == nil || c.pc.Exited() {
		return ErrPluginExited
	}
	return c.healthy(context.Background())
}

// Write sends one batch and returns the rows' outcomes (rows not listed were delivered).
// Errors: *sdk.SinkDownError, *sdk.BatchRejectedError, ErrPluginExited (wrapped), or another
// error after which the whole batch is to be retried. A batch whose IPC bytes exceed
// MaxMessageBytes (or the plugin's MaxBatchBytes) is sent in parts, each under its own id
// derived from the batch id.
func (c *Client) Write(ctx context.Context, batchID string, attempt int, rec arrow.RecordBatch) ([]sdk.RowResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(ctx); err != nil {
		return nil, err
	}
	return c.write(ctx, batchID, attempt, rec)
}

func (c *Client) write(ctx context.Context, batchID string, attempt int, rec arrow.RecordBatch) ([]sdk.RowResult, error) {
	limit := int64(MaxMessageBytes)
	if c.spec.MaxBatchBytes > 0 {
		limit = min(limit, c.spec.MaxBatchBytes)
	}
	// A batch whose estimate is over the limit is split before it is encoded; one that
	// turns out over it once encoded is split then.
	var payload []byte
	if int64(sdk.EncodedSize(rec)) <= limit || rec.NumRows() == 1 {
		var err error
		if payload, err = sdk.EncodeRecord(rec); err != nil {
			return nil, err
		}
	}
	if (payload == nil || int64(len(payload)) > limit) && rec.NumRows() > 1 {
		half := rec.NumRows() / 2
		first, second := rec.NewSlice(0, half), rec.NewSlice(half, rec.NumRows())
		defer first.Release()
		defer second.Release()
		a, err := c.write(ctx, batchID+".1", attempt, first)
		if err != nil {
			return nil, err
		}
		b, err := c.write(ctx, batchID+".2", attempt, second)
		if err != nil {
			return nil, err
		}
		return append(a, b...), nil
	}
	req := &sinkpb.WriteRequest{BatchId: batchID, Attempt: int32(attempt), ArrowIpc: payload}
	resp, err := c.rpc.Write(ctx, req)
	if err != nil && neverSent(err) {
		// The plugin died between calls: start a new one and send there.
		c.callError(ctx, "write", err)
		if rerr := c.ready(ctx); rerr != nil {
			return nil, rerr
		}
		resp, err = c.rpc.Write(ctx, req)
	}
	if err != nil {
		return nil, c.callError(ctx, "write", err)
	}
	c.lastOK = time.Now()
	switch {
	case resp.SinkError != nil:
		se := resp.SinkError
		return nil, &sdk.SinkDownError{Err: errors.New(se.Message), RetryAfter: time.Duration(se.RetryAfterMs) * time.Millisecond, Pause: se.Pause, StatusCode: int(se.StatusCode)}
	case resp.BatchRejected != nil:
		return nil, &sdk.BatchRejectedError{Reason: resp.BatchRejected.Reason, StatusCode: int(resp.BatchRejected.StatusCode)}
	case resp.Error != "":
		return nil, fmt.Errorf("plugins: %s: write: %s", c.launch.Name, resp.Error)
	}
	return sdk.ResultsFromProto(resp.Rows), nil
}

// Poll asks the plugin about rows accepted as asynchronous jobs.
func (c *Client) Poll(ctx context.Context, jobs []sdk.Job) ([]sdk.RowResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(ctx); err != nil {
		return nil, err
	}
	req := &sinkpb.PollRequest{}
	for _, j := range jobs {
		req.Jobs = append(req.Jobs, &sinkpb.Job{Seq: j.Seq, JobId: j.JobID})
	}
	resp, err := c.rpc.Poll(ctx, req)
	if err != nil {
		return nil, c.callError(ctx, "poll", err)
	}
	c.lastOK = time.Now()
	if resp.Error != "" {
		return nil, fmt.Errorf("plugins: %s: poll: %s", c.launch.Name, resp.Error)
	}
	return sdk.ResultsFromProto(resp.Rows), nil
}

// PID returns the plugin process's id (0 when none runs), for tests and diagnostics.
func (c *Client) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pc == nil || c.pc.Exited() {
		return 0
	}
	if rc := c.pc.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

// Close asks the plugin to release its resources, then stops the process.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	defer c.removeSockDir()
	if c.pc == nil {
		return nil
	}
	var err error
	if !c.pc.Exited() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = c.rpc.Close(ctx, &sinkpb.CloseRequest{})
		cancel()
	}
	if err != nil {
		c.killProcess() // it did not answer: it may not answer go-plugin's shutdown either
	}
	c.pc.Kill()
	c.stopProcess()
	if err != nil {
		return fmt.Errorf("plugins: %s: close: %w", c.launch.Name, err)
	}
	return nil
}

// killProcess ends the plugin process at once (c.mu held). go-plugin's Kill first asks the
// plugin to shut down and waits for it to go, which a hung plugin never does.
func (c *Client) killProcess() {
	if rc := c.pc.ReattachConfig(); rc != nil && !c.pc.Exited() {
		if p, err := os.FindProcess(rc.Pid); err == nil {
			p.Kill()
		}
	}
}
