package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hookbridge/hookbridge/connector"
	"github.com/hookbridge/hookbridge/schemas"
	"github.com/hookbridge/hookbridge/simulate"
)

// benchDashboard times every dashboard page on a store of simulated events, first with the
// server idle (the baseline), then while webhooks arrive at --rate through the same server
// and a realtime sink delivers them.
func benchDashboard(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "bench dashboard", "bench dashboard [--events N] [--dir DIR] [--rate 1000] [--requests 30]")
	sim := addSimulatedFlags(fs, 1_000_000)
	rate := fs.Float64("rate", 1000, "webhooks per second sent while the pages are timed")
	requests := fs.Int("requests", 30, "requests of each page in each phase")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the phase under ingest to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	_, dbPath, err := sim.load(ctx, e)
	dir := *sim.dir
	if err != nil {
		return err
	}
	// The server writes to the store, so it runs on a copy.
	work := filepath.Join(dir, fmt.Sprintf("dashboard-%d.duckdb", os.Getpid()))
	if err := copyFile(dbPath, work); err != nil {
		return err
	}
	defer os.Remove(work)
	defer os.Remove(work + ".wal")

	token := make([]byte, 16)
	rand.Read(token)
	tok := hex.EncodeToString(token)
	sinkDir := filepath.Join(dir, fmt.Sprintf("dashboard-sink-%d", os.Getpid()))
	defer os.RemoveAll(sinkDir)
	cfg, err := connector.Parse([]byte(fmt.Sprintf(`
admin:
  token: %s
sources:
  - name: rokt
sinks:
  - name: archive
    plugin: jsonl
    trigger: realtime
    settings: {path: %q}
`, tok, filepath.Join(sinkDir, "archive.jsonl"))), "bench-dashboard.yaml", func(string) string { return "" })
	if err != nil {
		return err
	}
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = work
	r, err := resolver(e, cfg.PluginsDir)
	if err != nil {
		return err
	}
	c, err := connector.New(cfg, connector.Options{Logger: quietLogger(), OpenSink: connector.PluginOpener(r, quietLogger())})
	if err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	defer c.Stop()
	base := "http://" + c.Addr()

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: time.Minute}
	resp, err := client.PostForm(base+"/login", url.Values{"token": {tok}})
	if err != nil {
		return fmt.Errorf("bench: sign in: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: sign in: %s", resp.Status)
	}

	// Pages that need an event and an email take the simulation's first event (it is in the
	// store), decoded as the receiver decodes it; the next-page key comes from the events page.
	first := simulate.New(sim.options()).Next()
	dec, err := schemas.NewDecoder(nil)
	if err != nil {
		return err
	}
	ev, err := dec.Decode(first.Body)
	if err != nil {
		return fmt.Errorf("bench: the simulation's first event: %w", err)
	}
	email := ev.Row("rokt", first.ReceivedAt).EmailKey
	page, err := fetch(ctx, client, base+"/events")
	if err != nil {
		return err
	}
	next := regexp.MustCompile(`href="(/events\?[^"]*after=[0-9]+[^"]*)"`).FindStringSubmatch(page)
	if next == nil {
		return fmt.Errorf("bench: the events page has no link to the next page")
	}
	pages := []struct{ name, path string }{
		{"overview", "/"},
		{"events, newest page", "/events"},
		{"events, next page (by seq key)", html.UnescapeString(next[1])},
		{"events, search by email", "/events?q=" + url.QueryEscape(email)},
		{"events, search by eventId", "/events?q=" + url.QueryEscape(first.EventID)},
		{"event, raw body and deliveries", "/events/" + url.PathEscape(strings.ToLower(first.EventID))},
		{"sink notification history", "/sinks/archive"},
		{"dead letters", "/dead-letters"},
		{"rejected bodies", "/rejected"},
		{"analytics (four charts, mailing list)", "/analytics"},
	}
	for _, p := range pages {
		if _, err := fetch(ctx, client, base+p.path); err != nil {
			return fmt.Errorf("bench: %s: %w", p.name, err)
		}
	}
	measure := func() ([][]time.Duration, error) {
		out := make([][]time.Duration, len(pages))
		for r := 0; r < *requests; r++ {
			for i, p := range pages {
				start := time.Now()
				if _, err := fetch(ctx, client, base+p.path); err != nil {
					return nil, fmt.Errorf("bench: %s: %w", p.name, err)
				}
				out[i] = append(out[i], time.Since(start))
			}
		}
		for _, d := range out {
			slices.Sort(d)
		}
		return out, nil
	}
	fmt.Fprintf(e.stdout, "hookbridge bench dashboard: %d events in the store, %d requests of each page idle and then under ingest at %.0f/s\n\n", *sim.events, *requests, *rate)
	idle, err := measure()
	if err != nil {
		return err
	}

	sctx, stop := context.WithCancel(ctx)
	defer stop()
	sender := &webhookSender{url: base + "/webhooks/rokt", client: &http.Client{Timeout: 30 * time.Second}, failed: map[string]int{}}
	opts := sim.options()
	opts.Seed += 1000
	gen := simulate.New(opts)
	done := make(chan simReport, 1)
	// Up to 256 requests in flight: the sender keeps to --rate even when acknowledgements slow
	// down under the page load, as a webhook sender does (it sends as events happen), instead
	// of backing off to what a few connections get through.
	go func() { done <- sender.run(sctx, sctx, gen, 0, *rate, 256) }()
	time.Sleep(3 * time.Second) // let the ingest and the sink settle into their pace
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
	}
	loaded, err := measure()
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	stop()
	rep := <-done
	if err != nil {
		return err
	}

	pct := func(d []time.Duration, p float64) time.Duration { return d[min(len(d)-1, int(float64(len(d))*p))] }
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "page\tidle p50\tidle p95\tingesting p50\tingesting p95\tingesting max\tp95 ÷ idle p95\tp95 < 200ms\t")
	worst := time.Duration(0)
	for i, p := range pages {
		a, b := idle[i], loaded[i]
		worst = max(worst, pct(b, 0.95))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%v\t\n", p.name, ms(pct(a, 0.5)), ms(pct(a, 0.95)), ms(pct(b, 0.5)), ms(pct(b, 0.95)), ms(b[len(b)-1]),
			float64(pct(b, 0.95))/float64(pct(a, 0.95)), pct(b, 0.95) < 200*time.Millisecond)
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "\ningest while timing: %d sent, %d acknowledged in %s (%.0f/s), %d not acknowledged (refused, or in flight when the sender stopped)\n", rep.sent, rep.acked, rep.elapsed.Round(time.Second),
		float64(rep.acked)/rep.elapsed.Seconds(), rep.sent-rep.acked)
	fmt.Fprintf(e.stdout, "slowest page p95 under ingest: %s (target < 200ms)\n", ms(worst))
	return nil
}

// fetch GETs a page and returns its body; anything but 200 is an error.
func fetch(ctx context.Context, c *http.Client, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %.200s", u, resp.Status, b)
	}
	return string(b), nil
}

// copyFile copies src to dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
