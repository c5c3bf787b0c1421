package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookbridge/hookbridge/connector"
	"github.com/hookbridge/hookbridge/connector/receiver"
	"github.com/hookbridge/hookbridge/schemas"
)

func cmdBench(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "analytics" {
		return benchAnalytics(ctx, e, args[1:])
	}
	if len(args) > 0 && args[0] == "dashboard" {
		return benchDashboard(ctx, e, args[1:])
	}
	if len(args) == 0 || args[0] != "ingest" {
		return usageError{"usage: hookbridge bench ingest|analytics|dashboard [flags]"}
	}
	return benchIngest(ctx, e, args[1:])
}

// benchBody is a realistic Subscribe (about 1.2 KB) whose ids and email carry idMarker.
const benchBody = `{
  "eventId": "4d2c8e61-9f3a-4b7e-a5c1-XXXXXXXXXXXX",
  "eventType": "Subscribe",
  "eventDetails": {
    "actionType": "SubscriptionViaCalendarPage",
    "calendarSubscriptionId": "8b3f1d27-6c4e-4a92-b1d8-XXXXXXXXXXXX",
    "accountId": "3c9e2f41-7b0d-4e52-9a1f-6d8b2c4e7a10",
    "accountName": "Southern Cross Footy League",
    "accountCode": "southern-cross-footy",
    "subscription": {
      "calendarSubscriptionId": "8b3f1d27-6c4e-4a92-b1d8-XXXXXXXXXXXX",
      "calendarId": "e6d2a9b4-0f37-4c81-a5e9-3b1d7c4f2e60",
      "calendarTitle": "SCFL 2025 Fixtures",
      "calendarCode": "scfl-2025-fixtures",
      "subscriptionMethod": "Google",
      "calendarTags": [
        {"tagId": "1f8e3d5c-6a2b-4c9d-8e7f-0a1b2c3d4e5f"},
        {"tagId": "7c4b2a19-8d3e-4f60-b1a2-c3d4e5f60718"},
        {"tagId": "2d9e4f6a-1b3c-4d5e-8f7a-9b0c1d2e3f4a"}
      ],
      "subscriberEmail": "Charlotte.Nguyen+XXXXXXXXXXXX@Example.com.au",
      "firstName": "Charlotte",
      "lastName": "Nguyen",
      "postcode": "3121",
      "countryCode": "AU",
      "optIn1": true,
      "timeZoneId": "Australia/Melbourne",
      "deviceName": "iPhone",
      "utmSource": "instagram",
      "utmCampaign": "round-1-launch",
      "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    }
  }
}`

type benchScenario struct {
	name  string
	start func(ctx context.Context, dir string) (benchServer, error)
}

// benchServer is one scenario's running server.
type benchServer struct {
	addr    string
	stop    func() error
	metrics prometheus.Gatherer // nil for the bare handler
}

func benchIngest(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "bench ingest", "bench ingest [--conns 64] [--duration 10s] [--warmup 2s] [--dir DIR]")
	conns := fs.Int("conns", 64, "concurrent keep-alive connections")
	duration := fs.Duration("duration", 10*time.Second, "measured time per scenario")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured warm-up per scenario")
	client := fs.String("client", "nethttp", "load generator: nethttp (Go's http.Client) or lean (minimal HTTP/1.1, leaves more CPU to the server)")
	only := fs.String("scenarios", "abcd", "which scenarios to run (letters of a, b, c, d); a is always run as the baseline")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of scenario b to this file")
	dir := fs.String("dir", "", "folder for the benchmark's DuckDB files (default: a temporary folder, removed afterwards)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "hookbridge-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	scenarios := []benchScenario{
		{"a. bare net/http (read body, 200)", startBare},
		{"b. hookbridge serve (durable ack, group commit)", startHookbridge(0)},
		{"c. one DuckDB transaction per request", startHookbridge(1)},
		{"d. receiver alone (decode, answer; nothing kept)", startReceiverAlone},
	}
	if *client != "nethttp" && *client != "lean" {
		return usageError{"--client: use nethttp or lean"}
	}
	fmt.Fprintf(e.stdout, "hookbridge bench ingest: %d connections (%s client), %d-byte Subscribe bodies with unique eventIds, %s warm-up + %s per scenario, GOMAXPROCS=%d\n\n",
		*conns, *client, len(benchBody), *warmup, *duration, runtime.GOMAXPROCS(0))
	results := make([]loadResult, len(scenarios))
	for i, sc := range scenarios {
		if i > 0 && !strings.ContainsRune(*only, rune('a'+i)) {
			continue
		}
		sub := filepath.Join(*dir, fmt.Sprintf("scenario-%d", i))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		srv, err := sc.start(ctx, sub)
		if err != nil {
			return fmt.Errorf("bench: %s: %w", sc.name, err)
		}
		g := &loadGen{client: *client, addr: srv.addr, path: "/webhooks/rokt", conns: *conns, template: []byte(benchBody)}
		if i == 1 && *cpuProfile != "" {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				return err
			}
			pprof.StartCPUProfile(f)
		}
		res, err := g.run(ctx, *warmup, *duration)
		if i == 1 && *cpuProfile != "" {
			pprof.StopCPUProfile()
		}
		if srv.metrics != nil && err == nil {
			res.writer = writerStats(srv.metrics)
		}
		if serr := srv.stop(); serr != nil && err == nil {
			err = serr
		}
		if err != nil {
			return fmt.Errorf("bench: %s: %w", sc.name, err)
		}
		results[i] = res
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tevents/s\tp50\tp99\tfailed\tevents/s ÷ a\tp99 ÷ a\t")
	base := results[0]
	for i, sc := range scenarios {
		r := results[i]
		if r.elapsed == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%d\t%.2f\t%.2f\t\n", sc.name, r.rate(), ms(r.percentile(0.5)), ms(r.percentile(0.99)), r.failed,
			r.rate()/base.rate(), float64(r.percentile(0.99))/float64(base.percentile(0.99)))
	}
	tw.Flush()
	fmt.Fprintln(e.stdout)
	for i, sc := range scenarios {
		if w := results[i].writer; w != "" {
			fmt.Fprintf(e.stdout, "%s writer: %s\n", sc.name[:2], w)
		}
	}
	b := results[1]
	if b.elapsed == 0 {
		return nil
	}
	fmt.Fprintf(e.stdout, "\ntargets: events/s b÷a ≥ 0.50 (got %.2f), p99 b÷a ≤ 2.00 (got %.2f)\n",
		b.rate()/base.rate(), float64(b.percentile(0.99))/float64(base.percentile(0.99)))
	if d := results[3]; d.elapsed > 0 {
		fmt.Fprintf(e.stdout, "what the durable write costs: events/s b÷d %.2f, p99 b÷d %.2f\n",
			b.rate()/d.rate(), float64(b.percentile(0.99))/float64(d.percentile(0.99)))
	}
	return nil
}

// writerStats summarises the store writer's series, warm-up included: how many requests each
// commit took and how long commits, merges, checkpoints and analytics refreshes kept the
// writer busy.
func writerStats(g prometheus.Gatherer) string {
	mfs, err := g.Gather()
	if err != nil {
		return ""
	}
	type sumCount struct{ sum, count float64 }
	h := map[string]sumCount{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if hist := m.GetHistogram(); hist != nil {
				h[mf.GetName()] = sumCount{hist.GetSampleSum(), float64(hist.GetSampleCount())}
			}
		}
	}
	commits, size, merges, checkpoints := h["hookbridge_store_commit_seconds"], h["hookbridge_store_commit_batch_size"], h["hookbridge_store_state_merge_seconds"], h["hookbridge_store_checkpoint_seconds"]
	refreshes := h["hookbridge_store_analytics_apply_seconds"]
	if commits.count == 0 {
		return ""
	}
	return fmt.Sprintf("%.0f commits of %.1f requests on average, %.2f ms each; merges %.0f (%.1f ms each); checkpoints %.0f (%.0f ms in all); analytics refreshes %.0f (%.1f ms of the writer each)",
		commits.count, size.sum/commits.count, 1000*commits.sum/commits.count,
		merges.count, 1000*merges.sum/max(1, merges.count), checkpoints.count, 1000*checkpoints.sum,
		refreshes.count, 1000*refreshes.sum/max(1, refreshes.count))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// startBare serves a handler that reads the body and answers 200: the ceiling any receiver
// on this machine can reach.
func startBare(ctx context.Context, dir string) (benchServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return benchServer{}, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"status":"accepted"}`+"\n")
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return benchServer{addr: ln.Addr().String(), stop: srv.Close}, nil
}

// startHookbridge runs the real server on the built-in configuration with a fresh DuckDB
// file; maxGroup 1 makes every request its own transaction.
func startHookbridge(maxGroup int) func(ctx context.Context, dir string) (benchServer, error) {
	return func(ctx context.Context, dir string) (benchServer, error) {
		cfg, err := connector.Load("", func(string) string { return "" })
		if err != nil {
			return benchServer{}, err
		}
		cfg.Listen = "127.0.0.1:0"
		cfg.Data = filepath.Join(dir, "bench.duckdb")
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		c, err := connector.New(cfg, connector.Options{Logger: log, MaxGroup: maxGroup})
		if err != nil {
			return benchServer{}, err
		}
		if err := c.Start(ctx); err != nil {
			return benchServer{}, err
		}
		return benchServer{addr: c.Addr(), stop: c.Stop, metrics: c.Metrics()}, nil
	}
}

// startReceiverAlone serves hookbridge's receiver on the built-in source with a store that
// keeps nothing: everything b does before and after the write (routing, limits, decoding,
// the answer, metrics), so that b ÷ d shows what durability costs and d ÷ a what the rest
// does. It is a yardstick, not a mode of the server.
func startReceiverAlone(ctx context.Context, dir string) (benchServer, error) {
	cfg, err := connector.Load("", func(string) string { return "" })
	if err != nil {
		return benchServer{}, err
	}
	src := cfg.Sources[0]
	dec, err := schemas.NewDecoder(src.ContactFields)
	if err != nil {
		return benchServer{}, err
	}
	rc, err := receiver.New(receiver.Options{
		Sources:    []receiver.Source{{Name: src.Name, Decoder: dec, MaxBody: int64(src.MaxBody)}},
		Store:      &discardStore{},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		return benchServer{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return benchServer{}, err
	}
	mux := http.NewServeMux()
	rc.Register(mux)
	srv := &http.Server{Handler: receiver.NoRedirect(mux), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return benchServer{addr: ln.Addr().String(), stop: srv.Close}, nil
}

// discardStore answers every event as stored and keeps nothing (scenario d).
type discardStore struct{ seq atomic.Int64 }

func (d *discardStore) Ingest(ctx context.Context, row *schemas.Row) (int64, bool, error) {
	return d.seq.Add(1), false, nil
}

func (d *discardStore) Reject(ctx context.Context, rej *schemas.Rejection) error { return nil }
