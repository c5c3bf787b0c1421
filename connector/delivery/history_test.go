package delivery

import (
	"context"
	"strings"
	"testing"

	"github.com/hookbridge/hookbridge/schemas"
)

// TestHistoryBySinkShowsTheDestinationsAnswer: a destination that answers row by row (the
// webhook sink's POST per event) leaves the attempt's own status and error empty; the per-sink
// history still shows each failed attempt's status code and error, those of its first failed
// row, as the history by event id does.
func TestHistoryBySinkShowsTheDestinationsAnswer(t *testing.T) {
	h := newHarness(t)
	sink := &scriptSink{script: func(call int, b *Batch, rows []schemas.Row) (*Result, error) {
		res := &Result{}
		for _, r := range rows {
			switch r.Email {
			case "bad@example.com":
				res.Rows = append(res.Rows, RowResult{Seq: r.Seq, Outcome: Failed, Reason: "400 Bad Request: unknown calendar", StatusCode: 400})
			case "down@example.com":
				res.Rows = append(res.Rows, RowResult{Seq: r.Seq, Outcome: Retry, Reason: "500 Internal Server Error", StatusCode: 500})
			}
		}
		return res, nil
	}}
	// The first batch carries all three rows; the retries then carry the 500 row alone.
	h.ingest(subscribe("ok", "s1", "ok@example.com"))
	h.ingest(subscribe("bad", "s2", "bad@example.com"))
	h.ingest(subscribe("down", "s3", "down@example.com"))
	h.start(SinkOptions{Name: "partner-endpoint", Sink: sink, Columns: []string{"email", "status"}})
	h.eventually("every row done", func() bool {
		return h.count("SELECT count(*) FROM dead_letters WHERE sink = 'partner-endpoint'") == 2
	})

	page, err := h.eng.History(context.Background(), HistoryFilter{Sink: "partner-endpoint"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range page.Items {
		if a.Retried+a.Failed == 0 {
			continue
		}
		seen[a.Outcome] = true
		var want Attempt
		switch a.Outcome {
		case "partial":
			want = Attempt{StatusCode: 400, Error: "400 Bad Request: unknown calendar"} // the first failed row
		case "retry", "failed":
			want = Attempt{StatusCode: 500, Error: "500 Internal Server Error"}
		}
		if a.StatusCode != want.StatusCode || a.Error != want.Error {
			t.Errorf("attempt %d (%s, %d retried, %d failed): status %d error %q, want %d %q", a.ID, a.Outcome, a.Retried, a.Failed, a.StatusCode, a.Error, want.StatusCode, want.Error)
		}
	}
	if !seen["partial"] || !seen["retry"] || !seen["failed"] {
		t.Errorf("outcomes seen %v; want partial, retry and failed attempts", seen)
	}
	// The attempts' own columns stay as recorded: a row-by-row answer is no whole-request one.
	if n := h.count("SELECT count(*) FROM deliveries WHERE sink = 'partner-endpoint' AND (status_code IS NOT NULL OR error IS NOT NULL)"); n != 0 {
		t.Errorf("%d attempts have their own status or error", n)
	}
	byEvent, err := h.eng.History(context.Background(), HistoryFilter{EventID: "bad"})
	if err != nil {
		t.Fatal(err)
	}
	if len(byEvent.Items) != 1 || byEvent.Items[0].Row == nil || byEvent.Items[0].Row.StatusCode != 400 || !strings.Contains(byEvent.Items[0].Row.Error, "unknown calendar") {
		t.Errorf("history by event id: %+v", byEvent.Items)
	}
	// By event, an attempt shows the event's own row, not another row's answer beside it.
	okEvent, err := h.eng.History(context.Background(), HistoryFilter{EventID: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	if len(okEvent.Items) == 0 {
		t.Fatal("no attempt carried the event ok")
	}
	for _, a := range okEvent.Items {
		if a.StatusCode != 0 || a.Error != "" {
			t.Errorf("history of a delivered event shows another row's answer: %+v", a)
		}
	}
}

// TestDeadLettersOneEntryPerRow: two rows dead-lettered, replayed twice as dead letters and
// once by event, dying each time, leave seven dead-letterings but two dead letters: the
// listing shows each row once (its latest dead-lettering), the count in status is the
// listing's length, a replay of dead letters sends those two, and keyset pages list each row
// once. Once a replay delivers them they are resolved, in the listing and the count alike.
func TestDeadLettersOneEntryPerRow(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	sink, fix := breakableSink(func(schemas.Row) bool { return true })
	h.ingest(subscribe("bad1", "s1", "b1@example.com"))
	h.ingest(subscribe("bad2", "s2", "b2@example.com"))
	h.start(crm(sink))
	h.eventually("two dead letters", func() bool { return h.count("SELECT count(*) FROM dead_letters") == 2 })
	replay := func(sel Selection, want int) {
		t.Helper()
		p, err := h.eng.Replay(ctx, "crm", sel)
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != want {
			t.Fatalf("replay of %s sends %d rows, want %d", sel.describe(), p.Total, want)
		}
		h.eventually("replay done", func() bool {
			pr, err := h.eng.ReplayProgress(ctx, "crm", p.ID)
			return err == nil && pr.Done == pr.Total
		})
	}
	replay(Selection{DeadLetters: true}, 2)
	replay(Selection{DeadLetters: true}, 2)
	replay(Selection{EventID: "bad1"}, 1)
	if n := h.count("SELECT count(*) FROM dead_letters"); n != 7 {
		t.Fatalf("%d dead-letterings recorded, want 7", n)
	}

	for _, sinkName := range []string{"crm", ""} {
		page, err := h.eng.DeadLetters(ctx, DeadLetterFilter{Sink: sinkName})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 2 || page.Next != "" {
			t.Fatalf("listing (sink %q): %d entries, next %q; want one per row: %+v", sinkName, len(page.Items), page.Next, page.Items)
		}
		// Newest first: bad1 died last, in the replay by event.
		latest := h.count("SELECT max(delivery_id) FROM dead_letters WHERE event_id = 'bad1'")
		if d := page.Items[0]; d.EventID != "bad1" || d.DeliveryID != int64(latest) || d.Resolved || d.Error != "field zip missing" || d.Attempts != 1 {
			t.Errorf("bad1's entry is not its latest dead-lettering (delivery %d): %+v", latest, d)
		}
		if d := page.Items[1]; d.EventID != "bad2" || d.Resolved {
			t.Errorf("second entry: %+v", d)
		}
	}
	st, err := h.eng.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].DeadLetters != 2 {
		t.Errorf("status counts %d dead letters, the listing shows 2", st[0].DeadLetters)
	}

	// Keyset pages, one entry each, list each row once.
	var seen []string
	after := ""
	for range 10 {
		page, err := h.eng.DeadLetters(ctx, DeadLetterFilter{Sink: "crm", Limit: 1, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Items {
			seen = append(seen, d.EventID)
		}
		if after = page.Next; after == "" {
			break
		}
	}
	if strings.Join(seen, ",") != "bad1,bad2" {
		t.Errorf("pages listed %v, want bad1, bad2", seen)
	}

	fix()
	replay(Selection{DeadLetters: true}, 2)
	if page, err := h.eng.DeadLetters(ctx, DeadLetterFilter{Sink: "crm"}); err != nil || len(page.Items) != 0 {
		t.Errorf("unresolved after a replay delivered them: %+v (%v)", page.Items, err)
	}
	all, err := h.eng.DeadLetters(ctx, DeadLetterFilter{Sink: "crm", All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Items) != 2 || !all.Items[0].Resolved || !all.Items[1].Resolved {
		t.Errorf("with resolved ones: %+v", all.Items)
	}
	if st, err = h.eng.Status(ctx); err != nil || st[0].DeadLetters != 0 {
		t.Errorf("status counts %d dead letters after they were delivered (%v)", st[0].DeadLetters, err)
	}
}
