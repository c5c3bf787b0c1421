package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/hookbridge/hookbridge/connector/delivery"
	"github.com/hookbridge/hookbridge/plugins"
	"github.com/hookbridge/hookbridge/plugins/sdk"
)

// PluginOpener returns the SinkOpener that starts each sink's plugin process through r and
// configures it with the sink's settings and mapping.
func PluginOpener(r plugins.Resolver, log *slog.Logger) SinkOpener {
	return func(ctx context.Context, sc SinkConfig) (*OpenedSink, error) {
		launch, err := r.Resolve(sc.Plugin)
		if err != nil {
			return nil, err
		}
		c, err := plugins.Start(ctx, launch, log.With("sink", sc.Name))
		if err != nil {
			return nil, err
		}
		settings, err := json.Marshal(sc.Settings)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("settings: %w", err)
		}
		if err := c.Configure(ctx, sc.Name, settings, sc.Mapping); err != nil {
			c.Close()
			var se *sdk.SettingsError
			if errors.As(err, &se) {
				return nil, fmt.Errorf("settings.%s: %s", se.Field, se.Message)
			}
			return nil, err
		}
		spec := c.Spec()
		return &OpenedSink{Sink: &pluginSink{c: c}, Closer: c, KeyColumn: spec.KeyColumn, MaxBatchRows: spec.MaxBatchRows, Columns: spec.Columns}, nil
	}
}

// pluginSink adapts a plugin client to the delivery engine.
type pluginSink struct{ c *plugins.Client }

func (p *pluginSink) Write(ctx context.Context, b *delivery.Batch) (*delivery.Result, error) {
	rows, err := p.c.Write(ctx, b.ID, b.Attempt, b.Record)
	if sd, ok := sdk.AsSinkDown(err); ok {
		return nil, &delivery.SinkError{Err: sd.Err, RetryAfter: sd.RetryAfter, Pause: sd.Pause, StatusCode: sd.StatusCode}
	}
	if br, ok := sdk.AsRejected(err); ok {
		return nil, &delivery.BatchRejectedError{Reason: br.Reason, StatusCode: br.StatusCode}
	}
	if err != nil {
		return nil, err
	}
	return &delivery.Result{Rows: rowResults(rows)}, nil
}

func (p *pluginSink) Poll(ctx context.Context, jobs []delivery.Job) ([]delivery.RowResult, error) {
	in := make([]sdk.Job, len(jobs))
	for i, j := range jobs {
		in[i] = sdk.Job{Seq: j.Seq, JobID: j.JobID}
	}
	rows, err := p.c.Poll(ctx, in)
	if err != nil {
		return nil, err
	}
	return rowResults(rows), nil
}

func rowResults(rows []sdk.RowResult) []delivery.RowResult {
	out := make([]delivery.RowResult, len(rows))
	for i, r := range rows {
		out[i] = delivery.RowResult{Seq: r.Seq, Outcome: delivery.Outcome(r.Outcome), RetryAfter: r.RetryAfter, Reason: r.Reason, StatusCode: r.StatusCode, JobID: r.JobID}
	}
	return out
}
