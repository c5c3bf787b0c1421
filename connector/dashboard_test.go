package connector

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hookbridge/hookbridge/connector/delivery"
	"github.com/hookbridge/hookbridge/schemas"
)

// chromium finds Debian's Chromium, or skips (CI never skips: .ci/run installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("HOOKBRIDGE_CI") != "" {
		t.Fatal("Chromium is missing in CI (.ci/run installs Debian's chromium package)")
	}
	t.Skip("Chromium is not installed: apt-get install chromium (or run .ci/run) to run the dashboard's browser tests")
	return ""
}

// browser starts headless Chromium (exe) with a 1280-pixel-wide window of height pixels and
// returns its context, which ends after timeout or with the test.
func browser(t *testing.T, exe string, height int, timeout time.Duration) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, height))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// artifacts is where screenshots are kept for people to look at after a run.
func artifacts(t *testing.T) string {
	dir := os.Getenv("HOOKBRIDGE_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", ".artifacts", "dashboard")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// dashSink fails every row of one email permanently until fixed, then takes everything.
type dashSink struct {
	mu       sync.Mutex
	badEmail string
	fixed    bool
	got      map[string]int
}

func (s *dashSink) Write(ctx context.Context, b *delivery.Batch) (*delivery.Result, error) {
	rows, err := schemas.RowsFromRecord(b.Record)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	res := &delivery.Result{}
	for _, r := range rows {
		if strings.EqualFold(r.Email, s.badEmail) && !s.fixed {
			res.Rows = append(res.Rows, delivery.RowResult{Seq: r.Seq, Outcome: delivery.Failed, Reason: "contact rejected: invalid zip", StatusCode: 400})
			continue
		}
		s.got[r.EventID]++
	}
	return res, nil
}

func (s *dashSink) Close() error { return nil }

func dashEvent(i int, typ string) string {
	sub := fmt.Sprintf("dash-sub-%d", i%40)
	email := fmt.Sprintf("fan%d@example.com", i%40)
	if i%40 == 7 {
		email = "Dead.Letter+Footy@Example.com"
	}
	at := time.Now().UTC()
	if typ == "Unsubscribe" {
		return fmt.Sprintf(`{"eventId":"dash-%d","eventType":"Unsubscribe","eventDetails":{"actionType":"SubscriptionViaCalendarPage","calendarSubscriptionId":%q,"accountId":"a","accountName":"A","accountCode":"scfl","subscription":{"removedDateTimeUtc":%q}}}`,
			i, sub, at.Format("2006-01-02 15:04:05.000000"))
	}
	return fmt.Sprintf(`{"eventId":"dash-%d","eventType":"Subscribe","eventDetails":{"actionType":"SubscriptionViaSms","calendarSubscriptionId":%q,"accountId":"a","accountName":"A","accountCode":"scfl",
		"subscription":{"calendarSubscriptionId":%q,"calendarId":"c","calendarTitle":"SCFL Fixtures","calendarCode":"scfl-%d","subscriberEmail":%q,"firstName":"Fan","lastName":"%d","postcode":"%d","calendarTags":[{"tagId":"tag-%d"}]}}}`,
		i, sub, sub, i%3, email, i, 3000+i%5, i%4)
}

// TestDashboardInChromium drives the dashboard in real headless Chromium: sign in, watch the
// overview while traffic arrives, find an event by email, open its delivery history, replay a
// dead letter and see it delivered, and render every chart. Screenshots go to .artifacts/.
func TestDashboardInChromium(t *testing.T) {
	exe := chromium(t)
	out := artifacts(t)
	sink := &dashSink{badEmail: "dead.letter+footy@example.com", got: map[string]int{}}
	c := startWithSink(t, `
admin:
  token: dashboard-test-token-0123
sources:
  - name: rokt
sinks:
  - name: crm
    plugin: scripted
    trigger: realtime
    mapping: {email: email, first_name: firstname}
    retry: {schedule: [50ms], max_attempts: 2}
`, sink, sink)
	base := "http://" + c.Addr()

	// Traffic keeps arriving while the pages are used.
	var sent atomic.Int64
	// Once the destination is fixed, traffic leaves the dead-lettered contact alone, so its
	// replayed row is not replaced by a newer one (which would resolve it without the replay).
	var quietDead atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%40 == 7 && quietDead.Load() {
				continue
			}
			typ := "Subscribe"
			if i > 40 && i%9 == 0 {
				typ = "Unsubscribe"
			}
			resp, err := http.Post(base+"/webhooks/rokt", "application/json", strings.NewReader(dashEvent(i, typ)))
			if err == nil {
				resp.Body.Close()
				sent.Add(1)
			}
			time.Sleep(15 * time.Millisecond)
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	http.Post(base+"/webhooks/rokt", "application/json", strings.NewReader("this is not json"))
	for sent.Load() < 60 {
		time.Sleep(10 * time.Millisecond)
	}

	ctx := browser(t, exe, 1400, 90*time.Second)
	h := dashHelper{c}

	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
		if err != nil {
			t.Fatalf("count %s: %v", sel, err)
		}
		return n
	}
	shot := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(out, name+".png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
		if colours := distinctColours(t, buf); colours < 8 {
			t.Errorf("screenshot %s looks blank (%d colours)", name, colours)
		}
	}

	// Sign in: the overview sends an unsigned browser to the login form first.
	do("sign in with a wrong token",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), "wrong token"),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS(`[role="alert"]`)))
	do("sign in",
		chromedp.SendKeys(chromedp.CSS("#token"), "dashboard-test-token-0123"),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS(".cards")))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasSuffix(loc, "/") {
		t.Errorf("after sign-in at %s", loc)
	}
	overview := text("main")
	for _, want := range []string{"events stored", "Subscribe", "crm", "rejected bodies"} {
		if !strings.Contains(overview, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	shot("overview")

	// Find the dead-lettered subscriber's event by email (its case differs from what was sent).
	do("search by email",
		chromedp.Navigate(base+"/events"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="q"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="q"]`), "dead.letter+footy@example.com"),
		chromedp.Submit(chromedp.CSS(`input[name="q"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tbody a[href^="/events/dash-"]`)))
	if rows := text("tbody"); !strings.Contains(rows, "Dead.Letter+Footy@example.com") {
		t.Errorf("search by email found: %s", rows)
	}
	shot("events-search")
	// By event id (upper case: ids compare case-insensitively), and by subscription id: every
	// event of the subscription, the Unsubscribes that carry no email included.
	do("search by event id", chromedp.Navigate(base+"/events?q=DASH-47"), chromedp.WaitVisible(chromedp.CSS("tbody")))
	if n := count(`tbody a[href^="/events/dash-"]`); n != 1 || count(`tbody a[href="/events/dash-47"]`) != 1 {
		t.Errorf("search by event id found %d events: %s", n, text("tbody"))
	}
	do("search by subscription id", chromedp.Navigate(base+"/events?q=dash-sub-7"), chromedp.WaitVisible(chromedp.CSS("tbody")))
	if count(`tbody a[href="/events/dash-7"]`) != 1 || count(`tbody a[href="/events/dash-47"]`) != 1 || count(`tbody a[href="/events/dash-8"]`) != 0 {
		t.Errorf("search by subscription id found: %s", text("tbody"))
	}
	// Open the subscriber's first event from the results; its history shows the dead letter
	// once the sink has given up on it.
	do("open the event", chromedp.Click(chromedp.CSS(`tbody a[href="/events/dash-7"]`)), chromedp.WaitVisible(chromedp.CSS(".facts")))
	var history string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if history = text("main"); strings.Contains(history, "contact rejected") {
			break
		}
		do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(".facts")))
	}
	if !strings.Contains(history, "contact rejected: invalid zip") || !strings.Contains(history, "Raw body") {
		t.Fatalf("event page lacks the dead letter's history: %s", history)
	}
	// The facts carry the subscription's state, looked up by its id.
	if facts := text(".facts"); !regexp.MustCompile(`dash-sub-7 \((subscribed|unsubscribed)\)`).MatchString(facts) || !strings.Contains(facts, "@example.com") {
		t.Errorf("event facts lack the subscription's state or the email: %s", facts)
	}
	shot("event-history")

	// Replay the dead letters once the destination is fixed, through the confirmation step.
	quietDead.Store(true)
	time.Sleep(200 * time.Millisecond) // a request already on its way lands first
	sink.mu.Lock()
	sink.fixed = true
	sink.mu.Unlock()
	do("dead letters", chromedp.Navigate(base+"/dead-letters?sink=crm"), chromedp.WaitVisible(chromedp.CSS(`button[aria-label^="Replay"]`)))
	shot("dead-letters")
	do("ask to replay all", chromedp.Click(chromedp.CSS(`main > form.inline button`)), chromedp.WaitVisible(chromedp.CSS(`main form button[autofocus]`)))
	shot("replay-confirm")
	if !strings.Contains(text("main"), "every unresolved dead letter") {
		t.Errorf("confirmation page: %s", text("main"))
	}
	do("confirm", chromedp.Click(chromedp.CSS(`main form button[autofocus]`)), chromedp.WaitVisible(chromedp.CSS(".flash")))
	if flash := text(".flash"); !strings.Contains(flash, "queued") {
		t.Errorf("flash %q", flash)
	}
	// Traffic keeps the history moving: filter it to replays, through the page's own form.
	do("replays only", chromedp.Navigate(base+"/sinks/crm"), chromedp.WaitVisible(chromedp.CSS(`input[name="replays"]`)),
		chromedp.Click(chromedp.CSS(`input[name="replays"]`)), chromedp.Submit(chromedp.CSS(`input[name="replays"]`)))
	// The page before the submission has a table too: wait for the filtered page's address.
	var loc string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !strings.Contains(loc, "replays=1"); time.Sleep(100 * time.Millisecond) {
		loc, _ = chromedp.Run(ctx, chromedp.Location())
	}
	if !strings.Contains(loc, "replays=1") {
		t.Fatalf("the history filter went to %q", loc)
	}
	do("filtered history", chromedp.WaitVisible(chromedp.CSS("tbody")))
	delivered := false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && !delivered; time.Sleep(200 * time.Millisecond) {
		do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("tbody")))
		rows := text("tbody")
		delivered = strings.Contains(rows, "replay") && strings.Contains(rows, "delivered")
	}
	if !delivered {
		t.Fatalf("the replayed dead letter never showed as delivered (%d dead letters unresolved); the page:\n%s", h.deadLeft(), text("main"))
	}
	shot("sink-history-after-replay")
	if n := h.deadLeft(); n != 0 {
		t.Errorf("%d dead letters left unresolved after the replay", n)
	}

	// Analytics: every chart renders.
	today := time.Now().UTC().Format(time.DateOnly)
	do("analytics", chromedp.Navigate(base+"/analytics?cfrom="+url.QueryEscape(today)+"&cto="+url.QueryEscape(today)), chromedp.WaitVisible(chromedp.CSS("svg.heatmap")))
	if heat, lines, bars := count("svg.heatmap rect"), count("svg.line polyline"), count("svg.bars rect"); heat != 7*24 || lines != 3 || bars == 0 {
		t.Errorf("charts: %d heatmap cells (want 168), %d lines (want 3), %d bars", heat, lines, bars)
	}
	if n := count("#mailing-list tbody tr"); n < 10 || !strings.Contains(text("#mailing-list"), "@example.com") {
		t.Errorf("mailing list shows %d subscribers", n)
	}
	shot("analytics")
	// The mailing list pages by key: the page after a contact starts past it.
	do("mailing list after a key", chromedp.Navigate(base+"/analytics?after="+url.QueryEscape("fan2@example.com")), chromedp.WaitVisible(chromedp.CSS("#mailing-list")))
	emails, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#mailing-list tbody tr td:first-child")).map(td => td.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(emails) == 0 || !sort.StringsAreSorted(emails) || strings.ToLower(emails[0]) <= "fan2@example.com" {
		t.Errorf("the mailing list after fan2@example.com: %q", emails)
	}
	// Without a session the CSV is not handed out.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(base + "/analytics/mailing-list.csv")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("CSV without a session: %d, want a redirect to the login", resp.StatusCode)
	}
}

// distinctColours counts colours in a screenshot, to tell a rendered page from a blank one.
func distinctColours(t *testing.T, buf []byte) int {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		t.Fatalf("decode screenshot: %v", err)
	}
	seen := map[uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[(r>>12)<<8|(g>>12)<<4|bl>>12] = true
		}
	}
	return len(seen)
}

// startWithSink starts a connector on a loopback port and a fresh DuckDB file, from yaml,
// with every configured sink served by sink; it stops when the test ends.
func startWithSink(t *testing.T, yaml string, sink delivery.Sink, closer io.Closer) *Connector {
	t.Helper()
	return startWith(t, yaml, nil, Options{Logger: quietLog(), OpenSink: func(ctx context.Context, sc SinkConfig) (*OpenedSink, error) {
		return &OpenedSink{Sink: sink, Closer: closer, KeyColumn: "email_key"}, nil
	}})
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type dashHelper struct{ c *Connector }

func (h dashHelper) deadLeft() int {
	var n int
	h.c.Store().DB().QueryRow(`SELECT count(*) FROM dead_letters d WHERE NOT EXISTS (SELECT 1 FROM delivery_rows r WHERE r.sink = d.sink AND r.seq = d.seq AND r.outcome IN ('delivered', 'coalesced') AND r.recorded_at > d.dead_at)`).Scan(&n)
	return n
}
