package admin

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/hookbridge/hookbridge/connector/store"
)

// The analytics page's charts aggregate every event and subscription (about half a second
// on a million events, more while ingest runs). They are kept, and a page never shows a set
// older than chartsMaxAge, as it says: once a set is older than chartsRefreshAge it is
// recomputed in the background while it is still shown, so a page visited at least that often
// never waits; the first request after a quieter spell (or for a new choice of days,
// calendar and zone) waits for a fresh set rather than being shown an old one, such as one
// computed before the data arrived. The mailing list's total and first page go with the
// charts; later pages are read live.
const (
	chartsMaxAge     = 30 * time.Second
	chartsRefreshAge = chartsMaxAge / 2
	chartsTimeout    = 2 * time.Minute
	chartsKept       = 16 // sets of chart choices (days, calendar, zone) kept
)

// chartChoice is what the charts depend on, as the request gave it.
type chartChoice struct {
	from, to, calendar, zone string
}

// chartSet is what the charts show for one choice.
type chartSet struct {
	from, to  time.Time
	points    []dayPoint
	calendars []string
	zone      string // the heatmap's zone: UTC or the analytics zone
	localZone string
	cells     []heatmapCell
	bars      []bar
	listTotal int64
	list      []listRow // the mailing list's first page
	listNext  string
	at        time.Time // when its computation started: its figures are at least this recent
	done      time.Time // when its computation ended: its age in the cache counts from here
}

// chartCache keeps chart sets by choice. Safe for concurrent use.
type chartCache struct {
	mu      sync.Mutex
	entries map[chartChoice]*chartEntry
	bg      *background // runs the computations; they end when it is closed
}

type chartEntry struct {
	set     *chartSet         // the latest set computed; nil until the first computation ends
	running *chartComputation // the computation under way, if any
	used    time.Time
}

// chartComputation is one run of compute for a choice. Requests that cannot be shown the
// kept set wait for it.
type chartComputation struct {
	done chan struct{} // closed when set and err are written
	set  *chartSet
	err  error
}

// get returns the set for c: the kept one while it is at most chartsMaxAge old (starting a
// background recomputation once it is older than chartsRefreshAge), else a fresh one. Requests
// that need a fresh set wait for the computation under way instead of starting their own.
func (cc *chartCache) get(ctx context.Context, c chartChoice, compute func(context.Context, chartChoice) (*chartSet, error), onError func(error)) (*chartSet, error) {
	now := time.Now()
	cc.mu.Lock()
	e := cc.entries[c]
	if e == nil {
		e = cc.add(c, now)
	}
	e.used = now
	if e.set != nil {
		if age := now.Sub(e.set.done); age <= chartsMaxAge {
			if age > chartsRefreshAge && e.running == nil {
				cc.start(c, e, compute, onError)
			}
			set := e.set
			cc.mu.Unlock()
			return set, nil
		}
	}
	run := e.running
	if run == nil {
		// The requests waiting for it report its failure themselves.
		run = cc.start(c, e, compute, nil)
	}
	cc.mu.Unlock()
	select {
	case <-run.done:
		if run.err != nil {
			cc.mu.Lock()
			kept := e.set
			cc.mu.Unlock()
			if kept != nil {
				// Older figures, shown with their time, beat an error page; the failure is
				// logged, and the next request tries again.
				if onError != nil {
					onError(run.err)
				}
				return kept, nil
			}
		}
		return run.set, run.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// add makes the entry for c, dropping the least recently used one beyond chartsKept (cc.mu
// held).
func (cc *chartCache) add(c chartChoice, now time.Time) *chartEntry {
	if cc.entries == nil {
		cc.entries = map[chartChoice]*chartEntry{}
	}
	if len(cc.entries) >= chartsKept {
		var oldest chartChoice
		var at time.Time
		for k, e := range cc.entries {
			if at.IsZero() || e.used.Before(at) {
				oldest, at = k, e.used
			}
		}
		delete(cc.entries, oldest)
	}
	e := &chartEntry{used: now}
	cc.entries[c] = e
	return e
}

// start computes c's set in the background (cc.mu held). It does not end with the request
// that started it, since others may wait for it. On failure the kept set, if any, stays (a
// request finding it too old tries again), onError hears of it when given, and an entry that
// never had a set is dropped, so the next request tries again.
func (cc *chartCache) start(c chartChoice, e *chartEntry, compute func(context.Context, chartChoice) (*chartSet, error), onError func(error)) *chartComputation {
	run := &chartComputation{done: make(chan struct{})}
	e.running = run
	cc.bg.run(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, chartsTimeout)
		defer cancel()
		set, err := compute(ctx, c)
		cc.mu.Lock()
		run.set, run.err = set, err
		e.running = nil
		switch {
		case err == nil:
			if set.done.IsZero() {
				set.done = time.Now()
			}
			e.set = set
		case e.set == nil && cc.entries[c] == e:
			delete(cc.entries, c)
		}
		cc.mu.Unlock()
		close(run.done)
		if err != nil && onError != nil {
			onError(err)
		}
	})
	return run
}

func (d *dashboard) analytics(w http.ResponseWriter, r *http.Request, sess session) {
	ctx := r.Context()
	q := r.URL.Query()
	choice := chartChoice{from: q.Get("from"), to: q.Get("to"), calendar: q.Get("calendar"), zone: q.Get("zone")}
	set, err := d.charts.get(ctx, choice, d.computeCharts, func(err error) {
		d.a.log.Warn("dashboard: recomputing the analytics charts", "err", err)
	})
	if err != nil {
		d.fail(w, err)
		return
	}
	data := analyticsData{
		From: set.from.Format(time.DateOnly), To: set.to.Format(time.DateOnly), CampaignFrom: q.Get("cfrom"), CampaignTo: q.Get("cto"),
		Calendar: choice.calendar, Calendars: set.calendars, Zone: set.zone, LocalZone: set.localZone, ListTotal: set.listTotal,
		ChartsAt: set.at, query: q,
	}
	cfrom, _ := time.Parse(time.DateOnly, data.CampaignFrom)
	cto, _ := time.Parse(time.DateOnly, data.CampaignTo)
	data.LineChart = lineChartSVG(set.points, set.from, set.to, cfrom, cto, "subscribes, unsubscribes and net subscribers per UTC day, "+data.From+" to "+data.To+", "+calendarCover(choice.calendar))
	if !cfrom.IsZero() && !cto.IsZero() {
		c := campaignAverages(set.points, set.from, set.to, cfrom, cto)
		data.Campaign = &struct{ In, Out string }{c.in, c.out}
		data.CampaignDays, data.OtherDays = c.inDays, c.outDays
	}
	data.Heatmap = heatmapSVG(set.cells, "subscribes by weekday and hour, "+set.zone+", "+heatmapCovers)
	data.Bars = barsSVG(set.bars, "active subscriptions per tag and postcode, top 30, "+tagsCovers)
	list, next := set.list, set.listNext
	if after := q.Get("after"); after != "" {
		if list, next, err = d.mailingListPage(ctx, after); err != nil {
			d.fail(w, err)
			return
		}
	}
	data.List = list
	if next != "" {
		data.ListNext = nextListURL(q, next) // the link keeps this request's other choices
	}
	d.render(w, r, sess, "analytics", "Analytics", "analytics", data)
}

// computeCharts runs the charts' queries for c.
func (d *dashboard) computeCharts(ctx context.Context, c chartChoice) (*chartSet, error) {
	set := &chartSet{at: time.Now()}
	// The days shown: as asked, else the 30 days up to the latest change (see defaultLastDay).
	to, err := time.Parse(time.DateOnly, c.to)
	if err != nil {
		rows, err := d.query(ctx, "SELECT utc_day(max(occurred_at)) FROM events WHERE event_type IN ('Subscribe', 'Unsubscribe')", 1)
		if err != nil {
			return nil, err
		}
		to = defaultLastDay(asTime(rows[0][0]), time.Now())
	}
	from, err := time.Parse(time.DateOnly, c.from)
	if err != nil {
		from = to.AddDate(0, 0, -29)
	}
	if from.After(to) {
		from, to = to, from
	}
	set.from, set.to = from, to
	calCond, calArgs := "", []any{}
	if c.calendar != "" {
		calCond, calArgs = " WHERE calendar_code = ?", []any{c.calendar}
	}
	rows, err := d.query(ctx, "SELECT day, sum(subscribes), sum(unsubscribes), sum(net) FROM campaign_days(?::DATE, ?::DATE, 0)"+calCond+" GROUP BY day ORDER BY day", min(daysBetween(from, to)+1, maxChartRows), append([]any{from, to}, calArgs...)...)
	if err != nil {
		return nil, err
	}
	for _, row := range rows {
		set.points = append(set.points, dayPoint{asTime(row[0]), asInt(row[1]), asInt(row[2]), asInt(row[3])})
	}
	if rows, err = d.query(ctx, "SELECT DISTINCT calendar_code FROM subscriptions WHERE calendar_code IS NOT NULL ORDER BY 1", 500); err != nil {
		return nil, err
	}
	for _, row := range rows {
		set.calendars = append(set.calendars, asString(row[0]))
	}
	if rows, err = d.query(ctx, "SELECT zone FROM analytics_settings", 1); err != nil {
		return nil, err
	}
	set.localZone = asString(rows[0][0])
	if set.localZone == "" {
		set.localZone = "UTC"
	}
	// The heatmap opens in the configured zone; UTC is the other choice.
	set.zone = set.localZone
	if c.zone == "UTC" {
		set.zone = "UTC"
	}
	if rows, err = d.query(ctx, "SELECT weekday, hour, subscribes FROM subscribes_by_weekday_hour WHERE zone = ?", 200, set.zone); err != nil {
		return nil, err
	}
	for _, row := range rows {
		set.cells = append(set.cells, heatmapCell{int(asInt(row[0])), int(asInt(row[1])), asInt(row[2])})
	}
	if rows, err = d.query(ctx, "SELECT postcode, tag_id, subscriptions FROM tag_popularity_by_postcode ORDER BY subscriptions DESC, postcode, tag_id LIMIT 30", 30); err != nil {
		return nil, err
	}
	for _, row := range rows {
		set.bars = append(set.bars, bar{Label: asString(row[1]), Group: asString(row[0]), Value: asInt(row[2])})
	}
	// The mailing list's size without building the list: the contacts it groups by.
	if rows, err = d.query(ctx, "SELECT count(*) FROM ("+mailingListKeys+")", 1); err != nil {
		return nil, err
	}
	set.listTotal = asInt(rows[0][0])
	if set.list, set.listNext, err = d.mailingListPage(ctx, ""); err != nil {
		return nil, err
	}
	return set, nil
}

// maxChartRows bounds the rows the line chart's query returns: one per day with activity.
const maxChartRows = 100000

// What the charts that the page's days and calendar do not filter cover, as the page says.
// Their sources are aggregates without days or calendars (subscribes_by_weekday_hour,
// tag_popularity_by_postcode and the mailing list, the last two kept by the store), which the
// choice cannot narrow without grouping every event or subscription afresh.
const (
	heatmapCovers = "all time, all calendars"
	tagsCovers    = "active subscriptions now, all calendars"
	listCovers    = "contacts with an active subscription now, all calendars"
)

// calendarCover says which calendars the line chart counts.
func calendarCover(calendar string) string {
	if calendar == "" {
		return "all calendars"
	}
	return "calendar " + calendar
}

// HeatmapCovers says what the heatmap covers, whatever the days and calendar chosen.
func (analyticsData) HeatmapCovers() string { return heatmapCovers }

// TagsCovers says what the tag chart covers, whatever the days and calendar chosen.
func (analyticsData) TagsCovers() string { return tagsCovers }

// ListCovers says what the mailing list covers, whatever the days and calendar chosen.
func (analyticsData) ListCovers() string { return listCovers }

// campaign is the average net subscribers per day in the campaign window and on the other
// days shown, formatted ("-" for a period without days), and the days each divides by.
type campaign struct {
	in, out         string
	inDays, outDays int
}

// campaignAverages averages the net subscribers per day over every day of [first, last]:
// the campaign window's days within it, and its other days. points are the days with
// activity; the others count as zero.
func campaignAverages(points []dayPoint, first, last, cfrom, cto time.Time) campaign {
	if cfrom.After(cto) {
		cfrom, cto = cto, cfrom // a window given backwards, as the days shown may be
	}
	first, last, cfrom, cto = utcDate(first), utcDate(last), utcDate(cfrom), utcDate(cto)
	days := max(daysBetween(first, last)+1, 0)
	a, z := cfrom, cto
	if a.Before(first) {
		a = first
	}
	if z.After(last) {
		z = last
	}
	inDays := 0
	if !a.After(z) {
		inDays = daysBetween(a, z) + 1
	}
	var inSum, outSum int64
	for _, p := range points {
		day := utcDate(p.Day)
		switch {
		case day.Before(first) || day.After(last):
		case !day.Before(a) && !day.After(z):
			inSum += p.Net
		default:
			outSum += p.Net
		}
	}
	avg := func(s int64, n int) string {
		if n == 0 {
			return "-"
		}
		return strconv.FormatFloat(float64(s)/float64(n), 'f', 2, 64)
	}
	return campaign{avg(inSum, inDays), avg(outSum, days-inDays), inDays, days - inDays}
}

// defaultLastDay is the last day shown when none is asked for: the UTC day of the latest
// subscribe or unsubscribe (latest; zero if none), but not after today, so an event its
// sender dated in the future does not move the page onto empty days. The line chart's days
// are UTC days, so today is UTC's.
func defaultLastDay(latest, now time.Time) time.Time {
	today := utcDate(now.UTC())
	if latest.IsZero() || utcDate(latest).After(today) {
		return today
	}
	return utcDate(latest)
}

// mailingListKeys selects the contacts of the mailing_list view, by the view's own rule,
// without aggregating them.
const mailingListKeys = "SELECT DISTINCT email_key FROM subscriptions WHERE " + store.MailingListRule

// nextListURL is this page's address with the mailing list continuing after key.
func nextListURL(q url.Values, key string) string {
	return analyticsURL(q, "after", key, "mailing-list")
}

// analyticsURL is the analytics page's address with q's choices, key set to val, scrolled to
// the element anchor.
func analyticsURL(q url.Values, key, val, anchor string) string {
	nq := url.Values{}
	for k, v := range q {
		nq[k] = v
	}
	nq.Set(key, val)
	return "/analytics?" + nq.Encode() + "#" + anchor
}

// mailingListPage reads one page of the mailing list, after the contact key after ("": from
// the start), and the key the following page starts after ("": none).
// The page's contacts are chosen first and only their subscriptions are grouped, as the
// view would group them (store.MailingListOf).
func (d *dashboard) mailingListPage(ctx context.Context, after string) (list []listRow, next string, err error) {
	keysQ, keysArgs := mailingListKeys, []any{}
	if after != "" {
		keysQ, keysArgs = keysQ+" AND email_key > ?", append(keysArgs, after)
	}
	keys, err := d.query(ctx, keysQ+" ORDER BY email_key LIMIT "+strconv.Itoa(pageRows+1), pageRows+1, keysArgs...)
	if err != nil || len(keys) == 0 {
		return nil, "", err
	}
	last := keys[min(len(keys), pageRows)-1][0]
	if len(keys) > pageRows {
		// A contact who unsubscribed between the two reads leaves a gap, not the link.
		next = asString(last)
	}
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k[0]
	}
	rows, err := d.query(ctx, `SELECT email, concat_ws(' ', first_name, last_name), postcode, array_to_string(calendars, ', '), marketing_consent, first_subscribed_at, last_change_at, email_key
		FROM (`+store.MailingListOf(len(args))+`) ORDER BY email_key`, pageRows+1, args...)
	if err != nil {
		return nil, "", err
	}
	for _, row := range rows {
		if asString(row[7]) > asString(last) {
			break // the extra key only tells whether there is a next page
		}
		consent := "unknown"
		if b, ok := row[4].(bool); ok {
			consent = map[bool]string{true: "yes", false: "no"}[b]
		}
		list = append(list, listRow{asString(row[0]), asString(row[1]), asString(row[2]), asString(row[3]), consent, asTime(row[5]), asTime(row[6])})
	}
	return list, next, nil
}
