package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hookbridge/hookbridge/connector/delivery"
	"github.com/hookbridge/hookbridge/schemas"
)

func asInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case int32:
		return int64(x)
	case int:
		return int64(x)
	case uint64:
		return int64(x)
	case float64:
		return int64(x)
	}
	n, _ := strconv.ParseInt(fmt.Sprint(v), 10, 64)
	return n
}

func asString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = asString(e)
		}
		return strings.Join(parts, ", ")
	}
	return fmt.Sprint(v)
}

func asTime(v any) time.Time {
	t, _ := v.(time.Time)
	return t
}

// counter sums a counter family from the metrics registry (counts kept since the start).
func (d *dashboard) counter(name string) float64 {
	if d.a.opts.Gatherer == nil {
		return 0
	}
	mfs, err := d.a.opts.Gatherer.Gather()
	if err != nil {
		return 0
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

type typeCount struct {
	Type  string
	Count int64
}

func (d *dashboard) overview(w http.ResponseWriter, r *http.Request, sess session) {
	ctx := r.Context()
	now := time.Now().UTC()
	data := map[string]any{}
	rows, err := d.query(ctx, "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM events WHERE received_at >= ?), (SELECT count(*) FROM rejected)", 1, now.Add(-time.Hour))
	if err != nil {
		d.fail(w, err)
		return
	}
	data["Events"], data["LastHour"], data["Rejected"] = asInt(rows[0][0]), asInt(rows[0][1]), asInt(rows[0][2])
	data["Unauthorized"] = int64(d.counter("hookbridge_webhooks_unauthorized_total"))
	data["Duplicates"] = int64(d.counter("hookbridge_webhooks_duplicate_total"))
	start := now.Truncate(time.Minute).Add(-59 * time.Minute)
	rows, err = d.query(ctx, "SELECT CAST(floor((epoch(received_at) - ?) / 60) AS BIGINT), count(*) FROM events WHERE received_at >= ? GROUP BY 1", 100, float64(start.Unix()), start)
	if err != nil {
		d.fail(w, err)
		return
	}
	perMinute := make([]int64, 60)
	for _, row := range rows {
		if i := asInt(row[0]); i >= 0 && i < 60 {
			perMinute[i] = asInt(row[1])
		}
	}
	data["Sparkline"] = sparklineSVG(perMinute, "events received per minute over the last hour")
	byType, at, err := d.types.get(ctx, func(ctx context.Context) ([]typeCount, error) {
		rows, err := d.query(ctx, "SELECT event_type, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC", 100)
		var counts []typeCount
		for _, row := range rows {
			counts = append(counts, typeCount{asString(row[0]), asInt(row[1])})
		}
		return counts, err
	})
	if err != nil {
		d.fail(w, err)
		return
	}
	data["ByType"], data["ByTypeAt"] = byType, at
	var sinks []delivery.SinkStatus
	if d.a.opts.Engine != nil {
		if sinks, err = d.a.opts.Engine.Status(ctx); err != nil {
			d.fail(w, err)
			return
		}
	}
	data["Sinks"] = sinks
	d.render(w, r, sess, "overview", "Overview", "overview", data)
}

type eventRow struct {
	Seq        int64
	ReceivedAt time.Time
	EventType  string
	EventID    string
	Email      string
	Calendar   string
	Flags      string
}

// eventsQuery selects the event browser's columns under lead's conditions and then conds (the
// caller passes lead's arguments first).
func eventsQuery(lead, conds []string) string {
	q := "SELECT seq, received_at, event_type, event_id, email, calendar_code, array_to_string(flags, ' ') FROM events"
	if all := append(append([]string(nil), lead...), conds...); len(all) > 0 {
		q += " WHERE " + strings.Join(all, " AND ")
	}
	return q
}

func (d *dashboard) events(w http.ResponseWriter, r *http.Request, sess session) {
	q := r.URL.Query()
	search, typ, since, until := strings.TrimSpace(q.Get("q")), q.Get("type"), q.Get("since"), q.Get("until")
	var conds []string
	var args []any
	if typ != "" {
		conds = append(conds, "event_type = ?")
		args = append(args, typ)
	}
	if t, err := time.Parse(time.DateOnly, since); err == nil {
		conds = append(conds, "received_at >= ?")
		args = append(args, t)
	}
	if t, err := time.Parse(time.DateOnly, until); err == nil {
		conds = append(conds, "received_at < ?")
		args = append(args, t.Add(24*time.Hour))
	}
	if after, err := strconv.ParseInt(q.Get("after"), 10, 64); err == nil {
		conds = append(conds, "seq < ?")
		args = append(args, after)
	}
	// A search term is an email (it has an @) or an id: an event's or a subscription's. Each
	// is a filter on one column; an OR over all three read every event's three columns (a
	// million events: ~90 ms against ~16 for the email alone). An event id is a key lookup,
	// tried first; only a term that is no event's id is looked for among subscription ids,
	// which reads the whole column.
	sqlText, sqlArgs := eventsQuery(nil, conds), args
	var rows [][]any
	var err error
	if search != "" {
		key := strings.ToLower(search)
		if strings.Contains(key, "@") {
			sqlText, sqlArgs = eventsQuery([]string{"email_key = ?"}, conds), append([]any{key}, args...)
		} else {
			rows, err = d.query(r.Context(), eventsQuery([]string{"event_id = ?"}, conds)+" LIMIT 1", 1, append([]any{key}, args...)...)
			if err != nil {
				d.fail(w, err)
				return
			}
			sqlText, sqlArgs = eventsQuery([]string{"subscription_id = ?"}, conds), append([]any{key}, args...)
		}
	}
	if len(rows) == 0 {
		rows, err = d.query(r.Context(), sqlText+" ORDER BY seq DESC LIMIT "+strconv.Itoa(pageRows+1), pageRows+1, sqlArgs...)
		if err != nil {
			d.fail(w, err)
			return
		}
	}
	var list []eventRow
	for _, row := range rows {
		list = append(list, eventRow{asInt(row[0]), asTime(row[1]), asString(row[2]), asString(row[3]), asString(row[4]), asString(row[5]), asString(row[6])})
	}
	next := ""
	if len(list) > pageRows {
		list = list[:pageRows]
		nq := url.Values{"q": {search}, "type": {typ}, "since": {since}, "until": {until}, "after": {strconv.FormatInt(list[pageRows-1].Seq, 10)}}
		next = "/events?" + nq.Encode()
	}
	var types []string
	for _, t := range schemas.KnownTypes {
		types = append(types, string(t))
	}
	d.render(w, r, sess, "events", "Events", "events", map[string]any{"Q": search, "Type": typ, "Since": since, "Until": until, "Rows": list, "Next": next, "Types": types})
}

func (d *dashboard) event(w http.ResponseWriter, r *http.Request, sess session) {
	id := strings.ToLower(r.PathValue("id"))
	// Two key lookups: a join with subscriptions would read all of it to find one row.
	rows, err := d.query(r.Context(), `SELECT seq, event_id, event_type, event_type_sent, source, received_at, subscription_id,
		email, NULL, flags, raw FROM events WHERE event_id = ?`, 1, id)
	if err != nil {
		d.fail(w, err)
		return
	}
	if len(rows) == 0 {
		http.NotFound(w, r)
		return
	}
	row := rows[0]
	if sub := asString(row[6]); sub != "" {
		state, err := d.query(r.Context(), `SELECT email, status FROM subscriptions WHERE subscription_id = ?`, 1, sub)
		if err != nil {
			d.fail(w, err)
			return
		}
		if len(state) == 1 {
			if row[7] == nil || asString(row[7]) == "" {
				row[7] = state[0][0] // an Unsubscribe carries no email: the subscription's
			}
			row[8] = state[0][1]
		}
	}
	var flags []string
	if l, ok := row[9].([]any); ok {
		for _, f := range l {
			flags = append(flags, asString(f))
		}
	}
	data := map[string]any{"Seq": asInt(row[0]), "EventID": asString(row[1]), "EventType": asString(row[2]), "EventTypeSent": asString(row[3]),
		"Source": asString(row[4]), "ReceivedAt": asTime(row[5]), "SubscriptionID": asString(row[6]), "Email": asString(row[7]),
		"Status": asString(row[8]), "Flags": flags, "Raw": asString(row[10])}
	var attempts []delivery.Attempt
	if d.a.opts.Engine != nil {
		page, err := d.a.opts.Engine.History(r.Context(), delivery.HistoryFilter{EventID: id, Limit: 200})
		if err != nil {
			d.fail(w, err)
			return
		}
		attempts = page.Items
	}
	data["Attempts"] = attempts
	d.render(w, r, sess, "event", "Event "+asString(row[1]), "events", data)
}

func (d *dashboard) sinks(w http.ResponseWriter, r *http.Request, sess session) {
	if d.a.opts.Engine == nil {
		d.render(w, r, sess, "sinks", "Deliveries", "sinks", map[string]any{})
		return
	}
	statuses, err := d.a.opts.Engine.Status(r.Context())
	if err != nil {
		d.fail(w, err)
		return
	}
	name := r.PathValue("sink")
	if name == "" && len(statuses) > 0 {
		http.Redirect(w, r, "/sinks/"+url.PathEscape(statuses[0].Name), http.StatusSeeOther)
		return
	}
	var names []string
	var current *delivery.SinkStatus
	for i := range statuses {
		names = append(names, statuses[i].Name)
		if statuses[i].Name == name {
			current = &statuses[i]
		}
	}
	if current == nil {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	after, _ := strconv.ParseInt(q.Get("after"), 10, 64)
	outcome, replays := q.Get("outcome"), q.Get("replays") == "1"
	if !slices.Contains(delivery.AttemptOutcomes(), outcome) {
		outcome = ""
	}
	page, err := d.a.opts.Engine.History(r.Context(), delivery.HistoryFilter{Sink: name, After: after, Outcome: outcome, Replays: replays, Limit: pageRows})
	if err != nil {
		d.fail(w, err)
		return
	}
	next := ""
	if page.Next != "" {
		nq := url.Values{"after": {page.Next}}
		if outcome != "" {
			nq.Set("outcome", outcome)
		}
		if replays {
			nq.Set("replays", "1")
		}
		next = "/sinks/" + url.PathEscape(name) + "?" + nq.Encode()
	}
	d.render(w, r, sess, "sinks", "Deliveries to "+name, "sinks", map[string]any{"Sink": current, "Names": names, "Selected": name, "Attempts": page.Items, "Next": next,
		"Outcome": outcome, "Outcomes": delivery.AttemptOutcomes(), "Replays": replays})
}

func (d *dashboard) deadLetters(w http.ResponseWriter, r *http.Request, sess session) {
	data := map[string]any{}
	if d.a.opts.Engine != nil {
		sink := r.URL.Query().Get("sink")
		page, err := d.a.opts.Engine.DeadLetters(r.Context(), delivery.DeadLetterFilter{Sink: sink, After: r.URL.Query().Get("after"), Limit: pageRows})
		if err != nil {
			d.fail(w, err)
			return
		}
		st, _ := d.a.opts.Engine.Status(r.Context())
		var names []string
		for _, s := range st {
			names = append(names, s.Name)
		}
		data["Sink"], data["Items"], data["Names"] = sink, page.Items, names
		if page.Next != "" {
			data["Next"] = "/dead-letters?" + url.Values{"sink": {sink}, "after": {page.Next}}.Encode()
		}
	}
	d.render(w, r, sess, "deadletters", "Dead letters", "dead", data)
}

type rejectedRow struct {
	ID          int64
	ReceivedAt  time.Time
	Source      string
	Status      int64
	Reason      string
	Detail      string
	Size        int64
	ContentType string
	RemoteAddr  string
	Body        string
}

func (d *dashboard) rejected(w http.ResponseWriter, r *http.Request, sess session) {
	cols := "id, received_at, source, status, reason, detail, body_size, content_type, remote_addr"
	scan := func(row []any) rejectedRow {
		return rejectedRow{asInt(row[0]), asTime(row[1]), asString(row[2]), asInt(row[3]), asString(row[4]), asString(row[5]), asInt(row[6]), asString(row[7]), asString(row[8]), ""}
	}
	if idText := r.PathValue("id"); idText != "" {
		id, _ := strconv.ParseInt(idText, 10, 64)
		rows, err := d.query(r.Context(), "SELECT "+cols+", body FROM rejected WHERE id = ?", 1, id)
		if err != nil {
			d.fail(w, err)
			return
		}
		if len(rows) == 0 {
			http.NotFound(w, r)
			return
		}
		rr := scan(rows[0])
		rr.Body = asString(rows[0][9])
		d.render(w, r, sess, "rejected", fmt.Sprintf("Rejected body %d", rr.ID), "rejected", map[string]any{"Body": rr})
		return
	}
	q, args := "SELECT "+cols+" FROM rejected", []any{}
	if after, err := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64); err == nil {
		q, args = q+" WHERE id < ?", append(args, after)
	}
	rows, err := d.query(r.Context(), q+" ORDER BY id DESC LIMIT "+strconv.Itoa(pageRows+1), pageRows+1, args...)
	if err != nil {
		d.fail(w, err)
		return
	}
	var list []rejectedRow
	for _, row := range rows {
		list = append(list, scan(row))
	}
	next := ""
	if len(list) > pageRows {
		list = list[:pageRows]
		next = "/rejected?after=" + strconv.FormatInt(list[pageRows-1].ID, 10)
	}
	d.render(w, r, sess, "rejected", "Rejected bodies", "rejected", map[string]any{"Rows": list, "Next": next})
}

type listRow struct {
	Email, Name, Postcode, Calendars, Consent string
	First, Last                               time.Time
}

// analyticsData is the analytics page's model.
type analyticsData struct {
	From, To, CampaignFrom, CampaignTo, Calendar string
	Calendars                                    []string
	Zone, LocalZone                              string
	LineChart, Heatmap, Bars                     any
	Campaign                                     *struct{ In, Out string }
	// CampaignDays and OtherDays are the days the campaign averages divide by: the campaign
	// window's days within the range shown, and the range's other days.
	CampaignDays, OtherDays int
	List                    []listRow
	ListTotal               int64
	ListNext                string
	ChartsAt                time.Time // when the charts were computed
	query                   url.Values
}

// ZoneURL links to the page with another heatmap zone.
func (a analyticsData) ZoneURL(zone string) string {
	return analyticsURL(a.query, "zone", zone, "heatmap")
}

func (d *dashboard) mailingListCSV(w http.ResponseWriter, r *http.Request, sess session) {
	if d.a.opts.Data == nil || d.a.opts.ExportDir == "" {
		http.Error(w, "exports are not available on this server", http.StatusNotFound)
		return
	}
	dir, err := d.a.exportDir()
	if err != nil {
		d.fail(w, err)
		return
	}
	path, err := d.a.opts.Data.Export(r.Context(), "SELECT * FROM mailing_list ORDER BY email_key", "", "csv", dir)
	if err != nil {
		d.fail(w, err)
		return
	}
	if err := d.a.sendFile(w, path, "text/csv; charset=utf-8", "mailing-list.csv"); err != nil {
		d.a.log.Warn("admin: mailing list download", "err", err)
	}
}
