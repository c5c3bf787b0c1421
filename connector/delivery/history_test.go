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
