package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/plugins/sinktest"
	"github.com/hookbridge/hookbridge/schemas"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// receiver is an endpoint that verifies every request the way a Standard Webhooks receiver
// does (written here from the specification, not with the sink's code), answers scripted
// statuses and de-duplicates by webhook-id.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	script func(id string, attempt int) (status int, header http.Header, delay time.Duration)
	// got holds the first accepted body per webhook-id; attempts every request's id and
	// timestamp, in order.
	got      map[string][]byte
	order    []string
	attempts map[string][]string
	headers  http.Header
	bad      []string
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{t: t, got: map[string][]byte{}, attempts: map[string][]string{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id, ts, sigs := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature")
	rc.mu.Lock()
	rc.attempts[id] = append(rc.attempts[id], ts)
	attempt := len(rc.attempts[id])
	rc.headers = r.Header.Clone()
	if err := verify(secret, id, ts, sigs, body); err != nil {
		rc.bad = append(rc.bad, id+": "+err.Error())
		rc.mu.Unlock()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	status, hdr, delay := 204, http.Header(nil), time.Duration(0)
	if rc.script != nil {
		status, hdr, delay = rc.script(id, attempt)
	}
	if status/100 == 2 {
		if _, dup := rc.got[id]; !dup {
			rc.got[id] = body
			rc.order = append(rc.order, id)
		}
	}
	rc.mu.Unlock()
	time.Sleep(delay)
	for k, v := range hdr {
		w.Header()[k] = v
	}
	if status/100 == 3 {
		w.Header().Set("Location", rc.srv.URL+"/elsewhere")
	}
	w.WriteHeader(status)
}

// verify checks a Standard Webhooks signature: HMAC-SHA256 over "id.timestamp.body" with the
// base64-decoded secret, any of the space-separated v1 signatures, timestamp within 5 minutes.
func verify(secret, id, ts, header string, body []byte) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return fmt.Errorf("timestamp %q out of tolerance", ts)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(header) {
		v, b64, ok := strings.Cut(sig, ",")
		got, err := base64.StdEncoding.DecodeString(b64)
		if ok && v == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("no valid signature in %q", header)
}

func settingsFor(url string, extra string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"url": %q, "secret": %q%s}`, url, secret, extra))
}

func openSink(t *testing.T, raw json.RawMessage, mapping map[string]string) *Sink {
	t.Helper()
	s := New().(*Sink)
	var m *schemas.Mapping
	if mapping != nil {
		var err error
		if m, err = schemas.NewMapping(mapping); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Configure(context.Background(), sdk.Config{Name: "partner", Settings: raw, Mapping: m}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func newBatch(t *testing.T, id string, rows []schemas.Row, mapping map[string]string) *sdk.Batch {
	t.Helper()
	cols := []string{"seq", "event_id", "event_type", "raw", "received_at"}
	var m *schemas.Mapping
	if mapping != nil {
		var err error
		if m, err = schemas.NewMapping(mapping); err != nil {
			t.Fatal(err)
		}
		for _, c := range m.Columns() {
			if !slices.Contains(cols, c) {
				cols = append(cols, c)
			}
		}
	}
	schema, err := schemas.SchemaFor(cols)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := schemas.BuildRecord(nil, schema, rows)
	if err != nil {
		t.Fatal(err)
	}
	return sdk.NewBatch(id, 1, rec, m)
}

func rows(n int) []schemas.Row {
	var out []schemas.Row
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("0000000%d-3b6d-4f28-9e51-7d0c2b8f6e13", i)
		out = append(out, schemas.Row{Seq: int64(i), EventID: id, EventType: "Subscribe", ReceivedAt: time.Date(2025, 9, 1, 9, i, 0, 0, time.UTC),
			Email: fmt.Sprintf("u%d@example.com", i), Raw: []byte(fmt.Sprintf(`{"eventId":%q,"eventType":"Subscribe","eventDetails":{"n":%d}}`, id, i))})
	}
	return out
}

func TestConformance(t *testing.T) {
	rc := newReceiver(t)
	bad := newReceiver(t)
	bad.script = func(id string, _ int) (int, http.Header, time.Duration) {
		if strings.HasPrefix(id, "c7f20b8e") {
			return 422, nil, 0
		}
		return 200, nil, 0
	}
	sinktest.Run(t, sinktest.Config{
		New:      New,
		Settings: settingsFor(rc.srv.URL, ""),
		BadSettings: map[string]json.RawMessage{
			"url":         json.RawMessage(`{"url": "ftp://example.com/x"}`),
			"secret":      json.RawMessage(`{"url": "https://example.com/x", "secret": "plain"}`),
			"body":        json.RawMessage(`{"url": "https://example.com/x", "body": "pretty"}`),
			"timeout":     json.RawMessage(`{"url": "https://example.com/x", "timeout": "-1s"}`),
			"concurrency": json.RawMessage(`{"url": "https://example.com/x", "concurrency": 100}`),
			"headers":     json.RawMessage(`{"url": "https://example.com/x", "headers": {"webhook-id": "x"}}`),
		},
		Reset: func(t *testing.T) { rc.mu.Lock(); rc.got = map[string][]byte{}; rc.order = nil; rc.mu.Unlock() },
		Delivered: func(t *testing.T, rows []schemas.Row) {
			rc.mu.Lock()
			defer rc.mu.Unlock()
			if len(rc.got) != len(rows) || len(rc.bad) > 0 {
				t.Fatalf("receiver holds %d events for %d rows; bad signatures %v", len(rc.got), len(rows), rc.bad)
			}
			for _, r := range rows {
				if string(rc.got[r.EventID]) != string(r.Raw) {
					t.Errorf("%s: got %s, want the original body", r.EventID, rc.got[r.EventID])
				}
			}
		},
		Failing:     settingsFor(bad.srv.URL, ""),
		FailingRows: sinktest.DefaultRows(),
		FailingSeqs: []int64{102},
	})
}

// TestStatuses drives one batch against scripted answers and checks each row's outcome.
func TestStatuses(t *testing.T) {
	rc := newReceiver(t)
	in := rows(7)
	script := map[int]int{1: 200, 2: 302, 3: 400, 4: 500, 5: 202, 6: 0 /* slow */, 7: 408}
	rc.script = func(id string, attempt int) (int, http.Header, time.Duration) {
		n := int(id[7] - '0')
		if script[n] == 0 {
			return 200, nil, 2 * time.Second
		}
		h := http.Header{}
		if script[n] == 500 {
			h.Set("Retry-After", "7")
		}
		return script[n], h, 0
	}
	s := openSink(t, settingsFor(rc.srv.URL, `, "timeout": "300ms", "headers": {"Authorization": "Bearer partner-token"}`), nil)
	b := newBatch(t, "b1", in, nil)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	want := map[int64]sdk.Outcome{2: sdk.Failed, 3: sdk.Failed, 4: sdk.Retry, 6: sdk.Retry, 7: sdk.Retry}
	got := map[int64]sdk.RowResult{}
	for _, r := range b.Results() {
		got[r.Seq] = r
	}
	if len(got) != len(want) {
		t.Errorf("marked rows %v, want %v", got, want)
	}
	for seq, o := range want {
		if got[seq].Outcome != o || got[seq].Reason == "" {
			t.Errorf("row %d: %+v, want outcome %d with a reason", seq, got[seq], o)
		}
	}
	if got[4].RetryAfter != 7*time.Second || got[4].StatusCode != 500 {
		t.Errorf("500 with Retry-After 7: %+v", got[4])
	}
	if !strings.Contains(got[2].Reason, "redirect") {
		t.Errorf("302: %+v", got[2])
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.headers.Get("Authorization") != "Bearer partner-token" || !strings.HasPrefix(rc.headers.Get("User-Agent"), "hookbridge-webhook/") || rc.headers.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", rc.headers)
	}
	if len(rc.attempts[in[1].EventID]) != 1 {
		t.Error("the redirect was followed")
	}
	if len(rc.bad) > 0 {
		t.Errorf("bad signatures: %v", rc.bad)
	}
}

// TestRetriesAreSignedAfresh: each attempt carries a new timestamp and signature, and the
// same webhook-id.
func TestRetriesAreSignedAfresh(t *testing.T) {
	rc := newReceiver(t)
	rc.script = func(id string, attempt int) (int, http.Header, time.Duration) {
		if attempt < 3 {
			return 503, http.Header{"Retry-After": {"1"}}, 0
		}
		return 200, nil, 0
	}
	s := openSink(t, settingsFor(rc.srv.URL, ""), nil)
	in := rows(1)
	for attempt := 1; attempt <= 3; attempt++ {
		err := s.Write(context.Background(), newBatch(t, "b1", in, nil))
		sd, down := sdk.AsSinkDown(err)
		if attempt < 3 && (!down || sd.RetryAfter != time.Second || sd.StatusCode != 503) {
			t.Fatalf("attempt %d: %v, want sink down for 1s", attempt, err)
		}
		if attempt == 3 && err != nil {
			t.Fatal(err)
		}
		if attempt < 3 {
			time.Sleep(1100 * time.Millisecond) // a new second: a new timestamp
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	ts := rc.attempts[in[0].EventID]
	if len(ts) != 3 || ts[0] == ts[1] || ts[1] == ts[2] {
		t.Errorf("timestamps of three attempts: %v", ts)
	}
	if len(rc.bad) > 0 {
		t.Errorf("bad signatures: %v", rc.bad)
	}
}

// TestGonePauses: 410 Gone pauses the sink (and 429 backs it off) instead of failing rows.
func TestGonePauses(t *testing.T) {
	rc := newReceiver(t)
	rc.script = func(id string, _ int) (int, http.Header, time.Duration) {
		if strings.HasPrefix(id, "00000003") {
			return 410, nil, 0
		}
		return 200, nil, 0
	}
	s := openSink(t, settingsFor(rc.srv.URL, `, "concurrency": 1`), nil)
	err := s.Write(context.Background(), newBatch(t, "b1", rows(5), nil))
	sd, ok := sdk.AsSinkDown(err)
	if !ok || !sd.Pause || sd.StatusCode != 410 {
		t.Fatalf("got %v, want a pause", err)
	}
	rc.script = func(string, int) (int, http.Header, time.Duration) {
		return 429, http.Header{"Retry-After": {time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)}}, 0
	}
	err = s.Write(context.Background(), newBatch(t, "b2", rows(1), nil))
	sd, ok = sdk.AsSinkDown(err)
	if !ok || sd.Pause || sd.RetryAfter < 25*time.Second || sd.RetryAfter > 31*time.Second {
		t.Fatalf("429 with an HTTP-date Retry-After: %v %+v", err, sd)
	}
}

// TestBodies: normalised rows through the mapping, and batch mode (one POST, an array, the
// batch id as webhook-id).
func TestBodies(t *testing.T) {
	rc := newReceiver(t)
	m := map[string]string{"email": "subscriber_email", "received_at": "received"}
	s := openSink(t, settingsFor(rc.srv.URL, `, "body": "normalised"`), m)
	in := rows(2)
	if err := s.Write(context.Background(), newBatch(t, "b1", in, m)); err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	rc.mu.Lock()
	json.Unmarshal(rc.got[in[0].EventID], &obj)
	rc.mu.Unlock()
	if obj["subscriber_email"] != "u1@example.com" || obj["event_id"] != in[0].EventID || obj["received"] == nil {
		t.Errorf("normalised body %v", obj)
	}
	s = openSink(t, settingsFor(rc.srv.URL, `, "batch": true`), nil)
	if err := s.Write(context.Background(), newBatch(t, "batch-7", rows(3), nil)); err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var arr []map[string]any
	if err := json.Unmarshal(rc.got["batch-7"], &arr); err != nil || len(arr) != 3 || arr[2]["eventId"] != rows(3)[2].EventID {
		t.Errorf("batch body: %v %s", err, rc.got["batch-7"])
	}
}
