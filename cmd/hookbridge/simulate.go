package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hookbridge/hookbridge/simulate"
)

func cmdSimulate(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "simulate", "simulate [--url URL] [--rate N] [--count N | --duration D] [--seed N] [--out FILE.jsonl]")
	target := fs.String("url", "http://127.0.0.1:8080/webhooks/rokt", "webhook URL to post to")
	out := fs.String("out", "", "write the bodies as JSON lines (for hookbridge import) instead of sending")
	rate := fs.Float64("rate", 50, "events per second when sending (0: as fast as the server answers)")
	count := fs.Int("count", 0, "events to produce (default 1000 unless --duration is given)")
	duration := fs.Duration("duration", 0, "send for this long")
	seed := fs.Uint64("seed", 1, "random seed: the same seed gives the same events")
	span := fs.Duration("span", 90*24*time.Hour, "the time the events' times spread over (default when sending: the expected sending time)")
	start := fs.String("start", "2025-09-01T00:00:00Z", "the first event time, RFC 3339 (default when sending: now)")
	dupRate := fs.Float64("duplicates", 0.01, "share of events sent twice in a row (0 for none)")
	lateRate := fs.Float64("late", 0.005, "share of events redelivered much later, out of order (0 for none)")
	bare := fs.Float64("bare-unsubscribes", 0.1, "share of Unsubscribes without the top-level calendarSubscriptionId")
	token := fs.String("token", "", "source token, sent as ?token= (default $HOOKBRIDGE_SEND_TOKEN)")
	secret := fs.String("signing-secret", "", "sign each request with the Standard Webhooks scheme (whsec_… secret; default $HOOKBRIDGE_SIGNING_SECRET)")
	conc := fs.Int("concurrency", 8, "requests in flight at once")
	source := fs.String("source", "rokt", "for --out: the source name written on each line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"simulate takes flags only"}
	}
	if *count < 0 || *rate < 0 || *conc < 1 {
		return usageError{"--count and --rate must not be negative, --concurrency at least 1"}
	}
	if *count == 0 && *duration == 0 {
		*count = 1000
	}
	if *out != "" && *count == 0 {
		return usageError{"--out needs --count (a file has an end)"}
	}
	t0, err := time.Parse(time.RFC3339, *start)
	if err != nil {
		return usageError{fmt.Sprintf("--start: %v", err)}
	}
	// The generator spreads planned events over span; it plans at least 1,000 (its subscriber
	// pool grows with them) and keeps going at the same pace after them.
	planned := max(*count, 1000)
	if *out == "" {
		// Sent events carry times (a removal's removedDateTimeUtc, say) near the time they
		// are sent, so live traffic shows up in today's figures: the events to be sent spread
		// over about the time sending them takes.
		n, took := expectedSending(*count, *rate, *duration)
		planned = max(n, 1000)
		if !fs.given("start") {
			t0 = time.Now().UTC()
		}
		if !fs.given("span") {
			*span = time.Duration(float64(took) * float64(planned) / float64(n))
		}
	}
	neg := func(v float64) float64 {
		if v == 0 {
			return -1 // the generator reads 0 as "default"
		}
		return v
	}
	opts := simulate.Options{Seed: *seed, Start: t0, Span: *span, Count: planned, DuplicateRate: neg(*dupRate), LateRate: neg(*lateRate), BareUnsubscribeRate: neg(*bare)}
	g := simulate.New(opts)
	if *out != "" {
		return simulateToFile(e, g, *out, *count, *source)
	}

	u, err := url.Parse(*target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return usageError{fmt.Sprintf("--url %q: want an http(s) URL", redactToken(*target))}
	}
	if *token == "" {
		*token = e.getenv("HOOKBRIDGE_SEND_TOKEN")
	}
	if *token != "" {
		q := u.Query()
		q.Set("token", *token)
		u.RawQuery = q.Encode()
	}
	if *secret == "" {
		*secret = e.getenv("HOOKBRIDGE_SIGNING_SECRET")
	}
	var key []byte
	if *secret != "" {
		if key, err = base64.StdEncoding.DecodeString(strings.TrimPrefix(*secret, "whsec_")); err != nil {
			return usageError{"--signing-secret: want whsec_ followed by base64"}
		}
	}
	// --duration stops the sending; requests already out still get their answer, within a
	// grace period, and are not retried.
	sending := ctx
	if *duration > 0 {
		var cancel, cancelDrain context.CancelFunc
		sending, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
		ctx, cancelDrain = context.WithTimeout(ctx, *duration+drainGrace)
		defer cancelDrain()
	}
	s := &webhookSender{url: u.String(), key: key, client: &http.Client{Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{MaxIdleConnsPerHost: *conc}}, failed: map[string]int{}}
	rep := s.run(ctx, sending, g, *count, *rate, *conc)
	rep.print(e.stdout)
	if rep.acked == 0 && rep.sent > 0 {
		return fmt.Errorf("simulate: no event was acknowledged by %s", redactToken(u.String()))
	}
	return nil
}

// expectedSending is about how many events sending produces and how long it takes: count
// events, or --duration's worth at rate; at rate, or 0.3 ms each when the rate is not limited
// (a local server's pace), so times run behind the sending rather than ahead of it.
func expectedSending(count int, rate float64, duration time.Duration) (int, time.Duration) {
	n := count
	if n == 0 {
		n = 1000 // --duration without a rate: as many as the server takes
		if rate > 0 {
			n = max(1, int(rate*duration.Seconds()))
		}
	}
	took := time.Duration(n) * 300 * time.Microsecond
	if rate > 0 {
		took = time.Duration(float64(n) / rate * float64(time.Second))
	}
	return n, max(took, time.Millisecond)
}

// simulateToFile writes count events as import lines.
func simulateToFile(e *env, g *simulate.Generator, path string, count int, source string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	bar := newProgressBar(e.stderr, "writing "+path)
	var buf []byte
	var first, last time.Time
	for i := 0; i < count; i++ {
		ev := g.Next()
		if i == 0 {
			first = ev.ReceivedAt
		}
		last = ev.ReceivedAt
		buf = simulate.AppendLine(buf[:0], ev, source)
		if _, err := w.Write(buf); err != nil {
			f.Close()
			return fmt.Errorf("simulate: %w", err)
		}
		if count >= 100000 && (i+1)%10000 == 0 {
			bar.update(i+1, count)
		}
	}
	if count >= 100000 {
		bar.update(count, count) // ends the line, unless the loop's last update did
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("simulate: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	fmt.Fprintf(e.stdout, "wrote %d events to %s, received_at %s … %s\n", count, path, first.Format(time.RFC3339), last.Format(time.RFC3339))
	return nil
}

// drainGrace bounds how long simulate --duration waits for answers after its deadline.
const drainGrace = 30 * time.Second

// webhookSender posts generated events like Rokt would, retrying what a webhook sender retries.
type webhookSender struct {
	url    string
	key    []byte
	client *http.Client

	mu                                    sync.Mutex
	sent, acked, dups, retried, transport int
	failed                                map[string]int
	lat                                   []time.Duration
}

type simReport struct {
	sent, acked, dups, retried, transport int
	failed                                map[string]int
	elapsed                               time.Duration
	p50, p99                              time.Duration
}

// run sends until count events went out or sending is done, then waits for the answers to
// what is in flight (bounded by ctx).
func (s *webhookSender) run(ctx, sending context.Context, g *simulate.Generator, count int, rate float64, conc int) simReport {
	jobs := make(chan simulate.Event)
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ev := range jobs {
				s.post(ctx, sending, ev)
			}
		}()
	}
	start := time.Now()
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(time.Second) / rate)
	}
loop:
	for i := 0; count == 0 || i < count; i++ {
		if interval > 0 {
			due := start.Add(time.Duration(i) * interval)
			if d := time.Until(due); d > 0 {
				select {
				case <-sending.Done():
					break loop
				case <-time.After(d):
				}
			}
		}
		select {
		case <-sending.Done():
			break loop
		case jobs <- g.Next():
		}
	}
	close(jobs)
	wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	rep := simReport{sent: s.sent, acked: s.acked, dups: s.dups, retried: s.retried, transport: s.transport, failed: s.failed, elapsed: time.Since(start)}
	if len(s.lat) > 0 {
		sort.Slice(s.lat, func(i, j int) bool { return s.lat[i] < s.lat[j] })
		rep.p50, rep.p99 = s.lat[len(s.lat)/2], s.lat[len(s.lat)*99/100]
	}
	return rep
}

// post sends one event; 429, 503 and transport errors are retried up to three times,
// honouring Retry-After, as a webhook sender does, until sending is done.
func (s *webhookSender) post(ctx, sending context.Context, ev simulate.Event) {
	for attempt := 1; ; attempt++ {
		t0 := time.Now()
		code, body, retryAfter, err := s.once(ctx, ev)
		s.mu.Lock()
		if attempt == 1 {
			s.sent++
		}
		retry := attempt <= 3 && sending.Err() == nil && (err != nil || code == 429 || code >= 500)
		switch {
		case err == nil && code/100 == 2:
			s.acked++
			s.lat = append(s.lat, time.Since(t0))
			if bytes.Contains(body, []byte(`"duplicate"`)) {
				s.dups++
			}
		case retry:
			s.retried++
		case err != nil:
			s.transport++
		default:
			s.failed[strconv.Itoa(code)+" "+ruleOf(body)]++
		}
		s.mu.Unlock()
		if !retry {
			return
		}
		wait := retryAfter
		if wait <= 0 {
			wait = time.Duration(attempt*attempt) * 100 * time.Millisecond
		}
		select {
		case <-sending.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (s *webhookSender) once(ctx context.Context, ev simulate.Event) (int, []byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(ev.Body))
	if err != nil {
		return 0, nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hookbridge-simulate")
	if s.key != nil {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		mac := hmac.New(sha256.New, s.key)
		io.WriteString(mac, ev.EventID+"."+ts+".")
		mac.Write(ev.Body)
		req.Header.Set("webhook-id", ev.EventID)
		req.Header.Set("webhook-timestamp", ts)
		req.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var wait time.Duration
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		wait = time.Duration(secs) * time.Second
	}
	return resp.StatusCode, body, wait, nil
}

// ruleOf picks the rule out of hookbridge's JSON error answer.
func ruleOf(body []byte) string {
	const key = `"rule":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return ""
	}
	rest := body[i+len(key):]
	if j := bytes.IndexByte(rest, '"'); j >= 0 {
		return string(rest[:j])
	}
	return ""
}

func (r simReport) print(w io.Writer) {
	var keys []string
	failed := r.transport
	for k, n := range r.failed {
		keys = append(keys, k)
		failed += n
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "sent %d events in %s (%.0f/s): %d acknowledged (%d of them duplicates), %d failed, %d retries\n",
		r.sent, r.elapsed.Round(time.Millisecond), float64(r.sent)/max(r.elapsed.Seconds(), 0.001), r.acked, r.dups, failed, r.retried)
	if failed > 0 {
		fmt.Fprintf(w, "failed: %d without an answer", r.transport)
		for _, k := range keys {
			fmt.Fprintf(w, ", %d × %s", r.failed[k], k)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "latency p50 %s, p99 %s\n", r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond))
}
