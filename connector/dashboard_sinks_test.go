package connector

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hookbridge/hookbridge/connector/delivery"
	"github.com/hookbridge/hookbridge/schemas"
)

// answeringSink answers row by row, as the webhook sink does with a POST per event: 400 for
// one address, 500 for another, and takes the rest.
type answeringSink struct{}

func (s *answeringSink) Write(ctx context.Context, b *delivery.Batch) (*delivery.Result, error) {
	rows, err := schemas.RowsFromRecord(b.Record)
	if err != nil {
		return nil, err
	}
	res := &delivery.Result{}
	for _, r := range rows {
		switch r.Email {
		case "bad@example.com":
			res.Rows = append(res.Rows, delivery.RowResult{Seq: r.Seq, Outcome: delivery.Failed, Reason: "400 Bad Request: unknown calendar", StatusCode: 400})
		case "down@example.com":
			res.Rows = append(res.Rows, delivery.RowResult{Seq: r.Seq, Outcome: delivery.Retry, Reason: "500 Internal Server Error", StatusCode: 500})
		}
	}
	return res, nil
}

func (s *answeringSink) Close() error { return nil }

// TestSinkHistoryPageShowsStatusAndError opens a sink's delivery history in headless
// Chromium: attempts the destination answered with 400 and 500 show that status and the
// destination's error, as the README promises (time, outcome, status code, error).
func TestSinkHistoryPageShowsStatusAndError(t *testing.T) {
	exe := chromium(t)
	sink := &answeringSink{}
	c := startWithSink(t, `
admin:
  token: dashboard-test-token-0123
sources:
  - name: rokt
sinks:
  - name: partner-endpoint
    plugin: scripted
    trigger: realtime
    retry: {schedule: [50ms], max_attempts: 2}
`, sink, sink)
	base := "http://" + c.Addr()
	// One event per batch: the 400 attempt fails, the 500 one is retried once and fails.
	for i, email := range []string{"bad@example.com", "down@example.com"} {
		body := fmt.Sprintf(`{"eventId":"hist-%d","eventType":"Subscribe","eventDetails":{"actionType":"SubscriptionViaSms","calendarSubscriptionId":"hs-%d","accountId":"a","accountName":"A","accountCode":"a",
			"subscription":{"calendarSubscriptionId":"hs-%d","calendarId":"c","calendarTitle":"T","calendarCode":"t","subscriberEmail":%q}}}`, i, i, i, email)
		resp, err := http.Post(base+"/webhooks/rokt", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var n int
			c.Store().DB().QueryRow(`SELECT count(*) FROM dead_letters WHERE event_id = ?`, fmt.Sprintf("hist-%d", i)).Scan(&n)
			if n == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("hist-%d never dead-lettered", i)
			}
		}
	}

	ctx := browser(t, exe, 1000, 60*time.Second)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), "dashboard-test-token-0123"),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS(".cards")),
		chromedp.Navigate(base+"/sinks/partner-endpoint"),
		chromedp.WaitVisible(chromedp.CSS("tbody"))); err != nil {
		t.Fatalf("open the sink's history: %v", err)
	}
	cells, err := chromedp.Run(ctx, chromedp.Evaluate[[][]string](`Array.from(document.querySelectorAll("tbody tr")).map(tr => Array.from(tr.cells).map(td => td.textContent.trim()))`))
	if err != nil {
		t.Fatal(err)
	}
	// Columns: Id, Started, Took, Rows, Outcome, Status, Delivered, Retry, Failed, Error.
	want := map[string]int{"400 Bad Request: unknown calendar": 1, "500 Internal Server Error": 2}
	got := map[string]int{}
	for _, row := range cells {
		if len(row) != 10 {
			t.Fatalf("history row %q", row)
		}
		if row[4] != "failed" && row[4] != "retry" {
			t.Errorf("attempt %s: outcome %q", row[0], row[4])
			continue
		}
		if code := strings.Fields(row[9] + " -")[0]; row[5] != code {
			t.Errorf("attempt %s (%s): status %q, error %q; want the destination's status and error", row[0], row[4], row[5], row[9])
		}
		got[row[9]]++
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("errors shown %v, want %v", got, want)
	}
}
