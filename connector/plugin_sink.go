package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

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
			return nil, err // a *sdk.SettingsError is given its line by the connector
		}
		spec := c.Spec()
		return &OpenedSink{Sink: &pluginSink{c: c}, Closer: c, KeyColumn: spec.KeyColumn, MaxBatchRows: spec.MaxBatchRows, Columns: spec.Columns}, nil
	}
}

// CheckSinkPlugins checks each sink's plugin without starting the sinks: the plugin exists,
// and the sink's settings fit the settings schema the plugin describes. Problems name the
// line and key like Validate's. Checks only a plugin's own code makes (a secret's encoding,
// the destination's answer) are left to the sink's start and to `hookbridge sinks check`.
func (c *Config) CheckSinkPlugins(ctx context.Context, r plugins.Resolver) error {
	v := &ValidationError{File: c.file}
	described := map[string]plugins.Description{} // a plugin several sinks use starts once
	for i, sc := range c.Sinks {
		p := fmt.Sprintf("sinks[%d]", i)
		d, ok := described[sc.Plugin]
		if !ok {
			launch, err := r.Resolve(sc.Plugin)
			if err != nil {
				c.problem(v, p+".plugin", "%s", strings.TrimPrefix(err.Error(), "plugins: "))
				continue
			}
			if d, err = plugins.Describe(ctx, launch); err != nil {
				c.problem(v, p+".plugin", "%v", err)
				continue
			}
			described[sc.Plugin] = d
		}
		problems, err := plugins.CheckSettings(d.Settings, sc.Settings)
		if err != nil {
			c.problem(v, p+".plugin", "%v", err)
			continue
		}
		for _, sp := range problems {
			c.problem(v, p+".settings."+sp.Field, "%s", sp.Message)
		}
	}
	if len(v.Problems) > 0 {
		return inLineOrder(v)
	}
	return nil
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
		out[i] = delivery.RowResult{Seq: r.Seq, Outcome: outcome(r.Outcome), RetryAfter: r.RetryAfter, Reason: r.Reason, StatusCode: r.StatusCode, JobID: r.JobID}
		if out[i].Outcome == delivery.Failed && r.Outcome != sdk.Failed {
			out[i].Reason = fmt.Sprintf("the plugin answered outcome %d, which hookbridge does not know: %s", r.Outcome, r.Reason)
		}
	}
	return out
}

// outcome maps the SDK's row outcome to the delivery engine's by name, not by number: the two
// enums are declared apart. One the engine does not know fails the row, with a reason.
func outcome(o sdk.Outcome) delivery.Outcome {
	switch o {
	case sdk.Delivered:
		return delivery.Delivered
	case sdk.Retry:
		return delivery.Retry
	case sdk.Accepted:
		return delivery.Accepted
	default:
		return delivery.Failed
	}
}
