package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/hookbridge/hookbridge/plugins/proto/sinkpb"
	"github.com/hookbridge/hookbridge/schemas"
)

// ProtocolVersion is the version of the sink protocol this SDK speaks. A host refuses a
// plugin of another version, naming the versions it supports.
const ProtocolVersion = 1

// Handshake is the go-plugin handshake shared by hookbridge and its plugins. The magic cookie
// only guards against running a plugin binary by hand; it is not a secret.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "HOOKBRIDGE_SINK_PLUGIN",
	MagicCookieValue: "7f1c3d0a-hookbridge-sink",
}

// PluginName is the name the sink is dispensed under.
const PluginName = "sink"

// GRPCPlugin is the go-plugin glue: on the plugin side it serves Impl, on the host side it
// returns a sinkpb.SinkClient.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Sink
	// Logger is handed to Impl in Configure.
	Logger *slog.Logger

	bufs *batchBuffers // where Serve's codec reads batches into
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the sink's server.
func (p *GRPCPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	sinkpb.RegisterSinkServer(s, &server{impl: p.Impl, log: p.Logger, bufs: p.bufs})
	return nil
}

// GRPCClient returns the client the host calls.
func (p *GRPCPlugin) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return sinkpb.NewSinkClient(c), nil
}

// server adapts a Sink to the gRPC service.
type server struct {
	sinkpb.UnimplementedSinkServer
	impl    Sink
	log     *slog.Logger
	mapping *schemas.Mapping
	bufs    *batchBuffers
}

func (s *server) Spec(ctx context.Context, _ *sinkpb.SpecRequest) (*sinkpb.SpecResponse, error) {
	_, checks := s.impl.(Checker)
	return SpecToProto(s.impl.Spec(), checks), nil
}

// SpecToProto converts a Spec for the wire; checks says whether the sink implements Checker.
func SpecToProto(sp Spec, checks bool) *sinkpb.SpecResponse {
	return &sinkpb.SpecResponse{Name: sp.Name, Version: sp.Version, Description: sp.Description, SettingsSchema: sp.Settings,
		EventTypes: sp.EventTypes, MaxBatchRows: int32(sp.MaxBatchRows), MaxBatchBytes: sp.MaxBatchBytes, KeyColumn: sp.KeyColumn,
		Columns: sp.Columns, Async: sp.Async, Checks: checks}
}

// SpecFromProto converts a Spec from the wire.
func SpecFromProto(p *sinkpb.SpecResponse) Spec {
	return Spec{Name: p.Name, Version: p.Version, Description: p.Description, Settings: json.RawMessage(p.SettingsSchema),
		EventTypes: p.EventTypes, MaxBatchRows: int(p.MaxBatchRows), MaxBatchBytes: p.MaxBatchBytes, KeyColumn: p.KeyColumn,
		Columns: p.Columns, Async: p.Async}
}

func (s *server) Configure(ctx context.Context, req *sinkpb.ConfigureRequest) (*sinkpb.ConfigureResponse, error) {
	var m *schemas.Mapping
	if len(req.Mapping) > 0 {
		var err error
		if m, err = schemas.NewMapping(req.Mapping); err != nil {
			return &sinkpb.ConfigureResponse{SettingsError: &sinkpb.SettingsError{Field: "mapping", Message: err.Error()}}, nil
		}
	}
	s.mapping = m
	log := s.log
	if log == nil {
		log = slog.Default()
	}
	err := s.impl.Configure(ctx, Config{Name: req.SinkName, Settings: req.SettingsJson, Mapping: m, Logger: log.With("sink", req.SinkName)})
	var se *SettingsError
	switch {
	case err == nil:
		return &sinkpb.ConfigureResponse{}, nil
	case errors.As(err, &se):
		return &sinkpb.ConfigureResponse{SettingsError: &sinkpb.SettingsError{Field: se.Field, Message: se.Message}}, nil
	}
	return &sinkpb.ConfigureResponse{Error: err.Error()}, nil
}

func (s *server) Check(ctx context.Context, _ *sinkpb.CheckRequest) (*sinkpb.CheckResponse, error) {
	c, ok := s.impl.(Checker)
	if !ok {
		return &sinkpb.CheckResponse{}, nil
	}
	if err := c.Check(ctx); err != nil {
		if sd, ok := AsSinkDown(err); ok {
			return &sinkpb.CheckResponse{Error: err.Error(), SinkError: sinkErrorToProto(sd)}, nil
		}
		return &sinkpb.CheckResponse{Error: err.Error()}, nil
	}
	return &sinkpb.CheckResponse{}, nil
}

func (s *server) Write(ctx context.Context, req *sinkpb.WriteRequest) (*sinkpb.WriteResponse, error) {
	owner := s.bufs.owner(req)
	rec, err := decodeRecord(req.ArrowIpc, owner)
	if err != nil {
		return nil, err
	}
	defer rec.Release()
	b := NewBatch(req.BatchId, int(req.Attempt), rec, s.mapping)
	err = s.impl.Write(ctx, b)
	resp := &sinkpb.WriteResponse{}
	if sd, ok := AsSinkDown(err); ok {
		resp.SinkError = sinkErrorToProto(sd)
		return resp, nil
	}
	if br, ok := AsRejected(err); ok {
		resp.BatchRejected = &sinkpb.BatchRejected{Reason: br.Reason, StatusCode: int32(br.StatusCode)}
		return resp, nil
	}
	if err != nil {
		resp.Error = err.Error()
		return resp, nil
	}
	resp.Rows = ResultsToProto(b.Results())
	return resp, nil
}

func (s *server) Poll(ctx context.Context, req *sinkpb.PollRequest) (*sinkpb.PollResponse, error) {
	p, ok := s.impl.(Poller)
	if !ok {
		return &sinkpb.PollResponse{Error: "this sink accepts no asynchronous jobs"}, nil
	}
	jobs := make([]Job, len(req.Jobs))
	for i, j := range req.Jobs {
		jobs[i] = Job{Seq: j.Seq, JobID: j.JobId}
	}
	res, err := p.Poll(ctx, jobs)
	if err != nil {
		return &sinkpb.PollResponse{Error: err.Error()}, nil
	}
	return &sinkpb.PollResponse{Rows: ResultsToProto(res)}, nil
}

func (s *server) Close(ctx context.Context, _ *sinkpb.CloseRequest) (*sinkpb.CloseResponse, error) {
	if err := s.impl.Close(ctx); err != nil {
		return nil, fmt.Errorf("close: %w", err)
	}
	return &sinkpb.CloseResponse{}, nil
}

func sinkErrorToProto(e *SinkDownError) *sinkpb.SinkError {
	return &sinkpb.SinkError{Message: e.Err.Error(), RetryAfterMs: e.RetryAfter.Milliseconds(), Pause: e.Pause, StatusCode: int32(e.StatusCode)}
}

// ResultsToProto converts row results for the wire.
func ResultsToProto(rs []RowResult) []*sinkpb.RowResult {
	out := make([]*sinkpb.RowResult, len(rs))
	for i, r := range rs {
		out[i] = &sinkpb.RowResult{Seq: r.Seq, Outcome: sinkpb.Outcome(r.Outcome), RetryAfterMs: r.RetryAfter.Milliseconds(),
			Reason: r.Reason, StatusCode: int32(r.StatusCode), JobId: r.JobID}
	}
	return out
}

// ResultsFromProto converts row results from the wire.
func ResultsFromProto(rs []*sinkpb.RowResult) []RowResult {
	out := make([]RowResult, len(rs))
	for i, r := range rs {
		out[i] = RowResult{Seq: r.Seq, Outcome: Outcome(r.Outcome), RetryAfter: time.Duration(r.RetryAfterMs) * time.Millisecond,
			Reason: r.Reason, StatusCode: int(r.StatusCode), JobID: r.JobId}
	}
	return out
}
