package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/schemas"
)

// logBuffer keeps what an engine under test logs; the loops write to it from their goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the logged lines that contain every one of subs.
func (b *logBuffer) lines(subs ...string) []string {
	var out []string
	for _, line := range strings.Split(b.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// captureLog makes the harness's engine log text to the returned buffer.
func captureLog(h *harness) *logBuffer {
	b := &logBuffer{}
	// Without the time, whose digits could match what a test looks for.
	noTime := func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		return a
	}
	h.log = slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{ReplaceAttr: noTime}))
	return b
}

// TestDeadLetteringIsLoggedOncePerAttempt: an attempt that dead-letters rows logs one WARN line
// with the sink, how many rows, the first one's seq and error, and nothing of the rows'
// personal data.
func TestDeadLetteringIsLoggedOncePerAttempt(t *testing.T) {
	h := newHarness(t)
	logs := captureLog(h)
	sink, _ := breakableSink(func(schemas.Row) bool { return true })
	// Both rows go in the first request, and both fail for good.
	first := h.ingest(subscribe("bad1", "s1", "b1@example.com"))
	h.ingest(subscribe("bad2", "s2", "b2@example.com"))
	h.start(crm(sink))
	h.eventually("the dead-lettering logged", func() bool { return len(logs.lines("rows dead-lettered")) > 0 })
	if n := h.count("SELECT count(*) FROM dead_letters"); n != 2 {
		t.Fatalf("%d dead letters, want 2", n)
	}
	got := logs.lines("rows dead-lettered")
	if len(got) != 1 {
		t.Fatalf("%d dead-letter lines, want one for the attempt:\n%s", len(got), strings.Join(got, "\n"))
	}
	for _, want := range []string{"level=WARN", "sink=crm", "rows=2", fmt.Sprintf("first_seq=%d", first), "first_event_id=bad1", `err="field zip missing"`} {
		if !strings.Contains(got[0], want) {
			t.Errorf("dead-letter line lacks %s: %s", want, got[0])
		}
	}
	if all := logs.String(); strings.Contains(all, "example.com") {
		t.Errorf("the log carries an email address:\n%s", all)
	}
}

// TestSinkWideErrorIsLoggedOnce: a destination that is down (503) is logged once, at WARN,
// since the sink backs off and tries again by itself; one that asks for a pause (410) is
// logged once, at ERROR, since nothing happens until an operator resumes the sink.
func TestSinkWideErrorIsLoggedOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   *SinkError
		level string
	}{
		{"down", &SinkError{Err: errors.New("503 Service Unavailable"), RetryAfter: 20 * time.Millisecond, StatusCode: 503}, "level=WARN"},
		{"gone", &SinkError{Err: errors.New("410 Gone"), Pause: true, StatusCode: 410}, "level=ERROR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			logs := captureLog(h)
			sink := &scriptSink{script: func(call int, b *Batch, rows []schemas.Row) (*Result, error) {
				if call == 0 {
					return nil, tc.err
				}
				return &Result{}, nil
			}}
			h.ingest(subscribe("e1", "s1", "a@example.com"))
			h.start(crm(sink))
			if tc.err.Pause {
				h.eventually("paused", func() bool {
					st, err := h.eng.Status(context.Background())
					return err == nil && st[0].State == "paused"
				})
			} else {
				h.eventually("delivered after the back-off", func() bool { return h.cursor("crm") == 1 })
			}
			got := logs.lines(tc.err.Err.Error())
			if len(got) != 1 {
				t.Fatalf("%d lines about the %v, want 1:\n%s", len(got), tc.err.Err, strings.Join(got, "\n"))
			}
			if !strings.Contains(got[0], tc.level) || !strings.Contains(got[0], "sink=crm") {
				t.Errorf("the %v is logged as %s, want %s", tc.err.Err, got[0], tc.level)
			}
		})
	}
}
