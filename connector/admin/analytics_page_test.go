package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/connector/store"
)

func TestChartCacheServesKeptSetsAndRefreshesOldOnes(t *testing.T) {
	cc := chartCache{bg: testBackground(t)}
	var calls atomic.Int32
	var mu sync.Mutex
	age, fail := time.Duration(0), false
	release := make(chan struct{})
	compute := func(ctx context.Context, c chartChoice) (*chartSet, error) {
		n := calls.Add(1)
		if n == 3 {
			<-release // the background refresh waits until the test has looked at it
		}
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return nil, errors.New("store busy")
		}
		return &chartSet{listTotal: int64(n), at: time.Now().Add(-age), done: time.Now().Add(-age)}, nil
	}
	var errs atomic.Int32
	onError := func(error) { errs.Add(1) }
	get := func(c chartChoice) *chartSet {
		t.Helper()
		set, err := cc.get(context.Background(), c, compute, onError)
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	a := chartChoice{from: "2026-11-01"}
	if got := get(a).listTotal; got != 1 || calls.Load() != 1 {
		t.Fatalf("first request: set %d after %d computations", got, calls.Load())
	}
	if got := get(a).listTotal; got != 1 || calls.Load() != 1 {
		t.Fatalf("a fresh set was computed again: set %d after %d computations", got, calls.Load())
	}
	// Another choice is its own set.
	b := chartChoice{from: "2026-10-01"}
	mu.Lock()
	age = chartsMaxAge - 5*time.Second // this one is born due for a refresh, but still young enough to show
	mu.Unlock()
	if got := get(b).listTotal; got != 2 {
		t.Fatalf("second choice: set %d", got)
	}
	// A set due for a refresh is served at once while one background refresh runs, however
	// many ask.
	for range 5 {
		if got := get(b).listTotal; got != 2 {
			t.Fatalf("during the refresh: set %d", got)
		}
	}
	waitUntil(t, func() bool { return calls.Load() == 3 })
	mu.Lock()
	age = 0
	mu.Unlock()
	close(release)
	waitUntil(t, func() bool { return get(b).listTotal == 3 })
	if calls.Load() != 3 {
		t.Errorf("%d computations, want 3 (one refresh for five requests)", calls.Load())
	}
	// A failed refresh keeps the older set and reports the error.
	mu.Lock()
	age, fail = chartsMaxAge-5*time.Second, false
	mu.Unlock()
	c := chartChoice{from: "2026-09-01"}
	old := get(c).listTotal
	mu.Lock()
	fail = true
	mu.Unlock()
	get(c)
	waitUntil(t, func() bool { return errs.Load() == 1 })
	if got := get(c).listTotal; got != old {
		t.Errorf("after a failed refresh: set %d, want the older %d", got, old)
	}
	// Only chartsKept choices are kept: the least recently used goes.
	mu.Lock()
	age, fail = 0, false
	mu.Unlock()
	for i := range chartsKept {
		get(chartChoice{calendar: string(rune('a' + i))})
	}
	cc.mu.Lock()
	n, kept := len(cc.entries), cc.entries[a] != nil
	cc.mu.Unlock()
	if n != chartsKept || kept {
		t.Errorf("%d sets kept (want %d), the oldest still there: %v", n, chartsKept, kept)
	}
}

// TestChartCacheNeverServesASetOlderThanMaxAge: a kept set older than chartsMaxAge (say, one
// computed while the store was still empty) is not shown: the first request after a quiet
// spell waits for a fresh one, and requests arriving meanwhile wait for the same computation.
func TestChartCacheNeverServesASetOlderThanMaxAge(t *testing.T) {
	cc := chartCache{bg: testBackground(t)}
	var calls atomic.Int32
	contacts := atomic.Int64{} // what the store holds
	release := make(chan struct{}, 10)
	compute := func(ctx context.Context, c chartChoice) (*chartSet, error) {
		calls.Add(1)
		if calls.Load() > 1 {
			<-release
		}
		return &chartSet{listTotal: contacts.Load(), at: time.Now()}, nil
	}
	c := chartChoice{}
	get := func() (*chartSet, error) {
		return cc.get(context.Background(), c, compute, func(err error) { t.Error(err) })
	}
	set, err := get()
	if err != nil || set.listTotal != 0 {
		t.Fatalf("first request: %v %v", set, err)
	}
	// 90 contacts arrive; the kept set grows old.
	contacts.Store(90)
	cc.mu.Lock()
	cc.entries[c].set.done = time.Now().Add(-chartsMaxAge - time.Minute)
	cc.mu.Unlock()
	results := make(chan int64, 3)
	for range 3 {
		go func() {
			set, err := get()
			if err != nil {
				t.Error(err)
			}
			results <- set.listTotal
		}()
	}
	waitUntil(t, func() bool { return calls.Load() == 2 })
	select {
	case n := <-results:
		t.Fatalf("a request was answered with the old set (%d contacts) before the recomputation ended", n)
	case <-time.After(50 * time.Millisecond):
	}
	release <- struct{}{}
	for range 3 {
		if n := <-results; n != 90 {
			t.Errorf("a request after the set grew old got %d contacts, want 90", n)
		}
	}
	if calls.Load() != 2 {
		t.Errorf("%d computations, want 2 (one for the three requests after the set grew old)", calls.Load())
	}
	// A set between the refresh age and chartsMaxAge is still shown, and refreshed behind it.
	cc.mu.Lock()
	cc.entries[c].set.done = time.Now().Add(-chartsRefreshAge - time.Second)
	cc.mu.Unlock()
	contacts.Store(91)
	if set, err := get(); err != nil || set.listTotal != 90 {
		t.Errorf("a set due for a refresh: %v %v, want it served at once", set, err)
	}
	release <- struct{}{}
	waitUntil(t, func() bool { set, _ := get(); return set.listTotal == 91 })
}

// TestChartCacheShowsOlderFiguresWhenARecomputationFails: once the kept set is too old and
// its recomputation fails, the page gets the older set (with its time) rather than an error,
// and the failure is reported.
func TestChartCacheShowsOlderFiguresWhenARecomputationFails(t *testing.T) {
	cc := chartCache{bg: testBackground(t)}
	var fail atomic.Bool
	compute := func(ctx context.Context, c chartChoice) (*chartSet, error) {
		if fail.Load() {
			return nil, errors.New("store busy")
		}
		return &chartSet{listTotal: 7, at: time.Now()}, nil
	}
	var errs atomic.Int32
	get := func() (*chartSet, error) {
		return cc.get(context.Background(), chartChoice{}, compute, func(error) { errs.Add(1) })
	}
	if _, err := get(); err != nil {
		t.Fatal(err)
	}
	cc.mu.Lock()
	cc.entries[chartChoice{}].set.done = time.Now().Add(-chartsMaxAge - time.Minute)
	cc.mu.Unlock()
	fail.Store(true)
	set, err := get()
	if err != nil || set == nil || set.listTotal != 7 {
		t.Fatalf("after a failed recomputation: %v %v, want the older set", set, err)
	}
	if errs.Load() != 1 {
		t.Errorf("%d failures reported, want 1", errs.Load())
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("timed out")
}

// Requests for a choice nobody has computed yet wait for one computation, and a failed one
// is tried again by the next request.
func TestChartCacheComputesAChoiceOnce(t *testing.T) {
	cc := chartCache{bg: testBackground(t)}
	var calls atomic.Int32
	release := make(chan struct{})
	fail := atomic.Bool{}
	compute := func(ctx context.Context, c chartChoice) (*chartSet, error) {
		calls.Add(1)
		<-release
		if fail.Load() {
			return nil, errors.New("store busy")
		}
		return &chartSet{listTotal: 7, at: time.Now()}, nil
	}
	c := chartChoice{from: "2026-08-01"}
	var wg sync.WaitGroup
	results := make(chan int64, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			set, err := cc.get(context.Background(), c, compute, func(error) {})
			if err != nil {
				t.Error(err)
				return
			}
			results <- set.listTotal
		}()
	}
	waitUntil(t, func() bool { return calls.Load() == 1 })
	time.Sleep(50 * time.Millisecond) // let the other requests find the computation
	close(release)
	wg.Wait()
	close(results)
	for n := range results {
		if n != 7 {
			t.Errorf("a request got set %d", n)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("%d computations for four requests, want 1", calls.Load())
	}
	fail.Store(true)
	d := chartChoice{from: "2026-07-01"}
	if _, err := cc.get(context.Background(), d, compute, func(error) {}); err == nil {
		t.Fatal("a failed computation answered no error")
	}
	fail.Store(false)
	if set, err := cc.get(context.Background(), d, compute, func(error) {}); err != nil || set.listTotal != 7 {
		t.Errorf("after a failure: %v %v", set, err)
	}
}

// A chart computation outlives the request that started it, but not the API: Close cancels
// it and returns only once it has ended, so it never reads a store that is closing.
func TestCloseEndsChartComputations(t *testing.T) {
	a := New(Options{})
	cc := chartCache{bg: &a.bg}
	started := make(chan struct{})
	var ended atomic.Bool
	compute := func(ctx context.Context, c chartChoice) (*chartSet, error) {
		close(started)
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond) // a query noticing the interrupt
		ended.Store(true)
		return nil, ctx.Err()
	}
	reqCtx, cancel := context.WithCancel(context.Background())
	go cc.get(reqCtx, chartChoice{from: "x"}, compute, nil)
	<-started
	cancel() // the request goes; the computation stays
	a.Close()
	if !ended.Load() {
		t.Fatal("Close returned while a chart computation was still running")
	}
}

// testBackground is background work that ends with the test.
func testBackground(t *testing.T) *background {
	b := &background{}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	t.Cleanup(b.close)
	return b
}

// chartData answers the analytics page's queries with canned rows and records the
// arguments they were asked with. Only Query is implemented.
type chartData struct {
	Data
	latest time.Time  // max(occurred_at)'s day
	days   []dayPoint // campaign_days' rows
	zone   string     // the configured analytics zone
	mu     sync.Mutex
	asked  map[string][]any // by the view queried
	limits map[string]int
}

func (f *chartData) Query(ctx context.Context, q string, limit int, timeout time.Duration, args ...any) (*store.QueryResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var rows [][]any
	view := ""
	switch {
	case strings.Contains(q, "campaign_days"):
		view = "campaign_days"
		for _, p := range f.days {
			rows = append(rows, []any{p.Day, p.Subscribes, p.Unsubscribes, p.Net})
		}
	case strings.Contains(q, "max(occurred_at)"):
		view = "latest"
		var v any
		if !f.latest.IsZero() {
			v = f.latest
		}
		rows = [][]any{{v}}
	case strings.Contains(q, "analytics_settings"):
		rows = [][]any{{f.zone}}
	case strings.Contains(q, "subscribes_by_weekday_hour"):
		view = "subscribes_by_weekday_hour"
		rows = [][]any{{int64(1), int64(9), int64(5)}}
	case strings.Contains(q, "count(*) FROM ("):
		rows = [][]any{{int64(0)}}
	case strings.Contains(q, "calendar_code FROM subscriptions"):
		rows = [][]any{{"scfl-1"}, {"scfl-2"}}
	}
	if view != "" {
		if f.asked == nil {
			f.asked, f.limits = map[string][]any{}, map[string]int{}
		}
		f.asked[view], f.limits[view] = args, limit
	}
	return &store.QueryResult{Rows: rows}, nil
}

func (f *chartData) args(view string) []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked[view]
}

// analyticsPage serves the dashboard over data and returns the analytics page at query.
func analyticsPage(t *testing.T, data Data, query string) string {
	t.Helper()
	a := New(Options{Loopback: true, Data: data})
	t.Cleanup(a.Close)
	mux := http.NewServeMux()
	if err := a.RegisterDashboard(mux); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/analytics?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /analytics?%s: %s\n%s", query, resp.Status, b)
	}
	return string(b)
}

// section is the page's element with the id, up to the next section.
func section(page, id string) string {
	_, s, ok := strings.Cut(page, `<section id="`+id+`">`)
	if !ok {
		return ""
	}
	s, _, _ = strings.Cut(s, "</section>")
	return s
}

// TestAnalyticsCampaignAveragesOverEveryDay: the analyst's report. The days asked for are
// all plotted, and the averages divide by the days of each period.
func TestAnalyticsCampaignAveragesOverEveryDay(t *testing.T) {
	data := &chartData{days: sparsePoints, zone: "UTC"}
	page := analyticsPage(t, data, "from=2030-02-20&to=2030-03-04&cfrom=2030-02-25&cto=2030-03-02")
	want := "1.00 net subscribers per day on average over its 6 days shown, against 0.57 over the other 7 days shown"
	if !strings.Contains(page, want) {
		t.Errorf("the campaign averages, want %q:\n%s", want, section(page, "campaign"))
	}
	if !strings.Contains(section(page, "campaign"), ">Feb 20<") {
		t.Errorf("the line chart does not start on Feb 20:\n%s", section(page, "campaign"))
	}
	// A long range is read whole: a row per day may come back.
	analyticsPage(t, data, "from=2021-01-01&to=2030-12-31")
	data.mu.Lock()
	limit := data.limits["campaign_days"]
	data.mu.Unlock()
	if days := daysBetween(day("2021-01-01"), day("2030-12-31")) + 1; limit < days {
		t.Errorf("the line chart reads at most %d rows for %d days", limit, days)
	}
	// Days given the wrong way round are the same range.
	page = analyticsPage(t, data, "from=2030-03-04&to=2030-02-20&cfrom=2030-02-25&cto=2030-03-02")
	if !strings.Contains(page, `name="from" value="2030-02-20"`) || !strings.Contains(page, `name="to" value="2030-03-04"`) || !strings.Contains(page, want) {
		t.Errorf("from after to:\n%s", page)
	}
	page = analyticsPage(t, data, "from=2030-02-20&to=2030-03-04&cfrom=2030-04-01&cto=2030-04-02")
	if !strings.Contains(page, "none of its days is in the range shown") {
		t.Errorf("a campaign outside the range:\n%s", section(page, "campaign"))
	}
}

// TestAnalyticsSaysWhatEachChartCovers: the days and calendar filter the line chart only,
// and every chart says what it covers.
func TestAnalyticsSaysWhatEachChartCovers(t *testing.T) {
	data := &chartData{days: sparsePoints, zone: "UTC"}
	page := analyticsPage(t, data, "from=2030-02-20&to=2030-03-04&calendar=scfl-2")
	if got := data.args("campaign_days"); len(got) != 3 || got[2] != "scfl-2" {
		t.Errorf("the line chart's query was asked %v, want the calendar scfl-2", got)
	}
	for id, want := range map[string]string{
		"campaign":     "Covers: UTC days 2030-02-20 to 2030-03-04, calendar scfl-2",
		"heatmap":      "Covers: all time, all calendars",
		"tags":         "Covers: active subscriptions now, all calendars",
		"mailing-list": "Covers: contacts with an active subscription now, all calendars",
	} {
		if s := section(page, id); !strings.Contains(s, want) {
			t.Errorf("section %s does not say %q:\n%s", id, want, s)
		}
	}
	if s := section(analyticsPage(t, data, "from=2030-02-20&to=2030-03-04"), "campaign"); !strings.Contains(s, "to 2030-03-04, all calendars") {
		t.Errorf("without a calendar the line chart does not say it covers all of them:\n%s", s)
	}
}

// TestAnalyticsHeatmapOpensInTheConfiguredZone: without a zone the heatmap is in the
// configured analytics zone, UTC is the other choice, and the filter form keeps the zone.
func TestAnalyticsHeatmapOpensInTheConfiguredZone(t *testing.T) {
	data := &chartData{days: sparsePoints, zone: "Australia/Melbourne"}
	for query, want := range map[string]string{
		"from=2030-02-20":                          "Australia/Melbourne",
		"from=2030-02-21&zone=UTC":                 "UTC",
		"from=2030-02-22&zone=Australia/Melbourne": "Australia/Melbourne",
		"from=2030-02-23&zone=Europe/Paris":        "Australia/Melbourne", // not a choice offered
	} {
		page := analyticsPage(t, data, query)
		if got := data.args("subscribes_by_weekday_hour"); len(got) != 1 || got[0] != want {
			t.Errorf("%s: the heatmap was read for %v, want %s", query, got, want)
		}
		if !strings.Contains(section(page, "heatmap"), "<h2>Subscribes by weekday and hour ("+want+")</h2>") {
			t.Errorf("%s: the heatmap is not titled %s:\n%s", query, want, section(page, "heatmap"))
		}
		if hidden := `<input type="hidden" name="zone" value="` + want + `">`; !strings.Contains(page, hidden) {
			t.Errorf("%s: the filter form lacks %s", query, hidden)
		}
	}
}

// TestAnalyticsDefaultWindowEndsByToday: an event dated in the future does not move the
// default window past today (UTC, as the line chart's days); older data keeps it at the
// latest change.
func TestAnalyticsDefaultWindowEndsByToday(t *testing.T) {
	data := &chartData{latest: day("2999-01-01"), zone: "UTC"}
	before := time.Now().UTC().Format(time.DateOnly)
	page := analyticsPage(t, data, "")
	after := time.Now().UTC().Format(time.DateOnly)
	m := regexp.MustCompile(`name="to" value="([^"]*)"`).FindStringSubmatch(page)
	if m == nil || m[1] < before || m[1] > after {
		t.Errorf("the default window ends on %q, want today (%s)", m, before)
	}
	data = &chartData{latest: day("2020-03-04"), zone: "UTC"}
	page = analyticsPage(t, data, "")
	if !strings.Contains(page, `name="from" value="2020-02-04"`) || !strings.Contains(page, `name="to" value="2020-03-04"`) {
		t.Errorf("the default window does not end at the latest change:\n%s", page[:min(len(page), 2000)])
	}
}
