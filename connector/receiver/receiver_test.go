package receiver

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/schemas"
)

// fakeStore records what the receiver hands over.
type fakeStore struct {
	mu       sync.Mutex
	rows     []*schemas.Row
	rejected []*schemas.Rejection
	err      error
}

func (f *fakeStore) Ingest(ctx context.Context, row *schemas.Row) (int64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, false, f.err
	}
	for _, r := range f.rows {
		if r.EventID == row.EventID {
			return r.Seq, true, nil
		}
	}
	row.Seq = int64(len(f.rows) + 1)
	f.rows = append(f.rows, row)
	return row.Seq, false, nil
}

func (f *fakeStore) Reject(ctx context.Context, rej *schemas.Rejection) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.rejected = append(f.rejected, rej)
	return nil
}

type retryErr struct{}

func (retryErr) Error() string             { return "store: write queue full" }
func (retryErr) RetryAfter() time.Duration { return 2 * time.Second }

const testBody = `{"eventId":"00c5d8e1-4f2a-4b97-a6e3-7d1c9b0f2a58","eventType":"Test","eventDetails":{}}`

func newServer(t *testing.T, st *fakeStore, auth ...Authenticator) *httptest.Server {
	t.Helper()
	dec, err := schemas.NewDecoder(nil)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := New(Options{
		Sources: []Source{{Name: "rokt", Decoder: dec, MaxBody: 4096, Auth: auth}},
		Store:   st,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	rc.Register(mux)
	srv := httptest.NewServer(NoRedirect(mux))
	t.Cleanup(srv.Close)
	return srv
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func post(t *testing.T, url string, body []byte, headers map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &a.body)
	return a
}

func ruleOf(a answer) string {
	e, _ := a.body["error"].(map[string]any)
	r, _ := e["rule"].(string)
	return r
}

func TestAcceptsAnyContentTypeAndAnswersJSON(t *testing.T) {
	st := &fakeStore{}
	srv := newServer(t, st)
	for _, ct := range []string{"", "application/json", "text/plain", "application/x-www-form-urlencoded"} {
		id := strings.Replace(testBody, "58\"", ct+"\"", 1)
		a := post(t, srv.URL+"/webhooks/rokt", []byte(id), map[string]string{"Content-Type": ct})
		if a.status != 200 || a.body["status"] != "accepted" {
			t.Errorf("Content-Type %q: %d %v", ct, a.status, a.body)
		}
	}
	a := post(t, srv.URL+"/webhooks/rokt", []byte(strings.Replace(testBody, "58\"", "\"", 1)), nil)
	if a.status != 200 || a.body["status"] != "duplicate" {
		t.Errorf("re-sent event: %d %v", a.status, a.body)
	}
}

func TestRefusedBodiesAreKept(t *testing.T) {
	st := &fakeStore{}
	srv := newServer(t, st)
	tests := []struct {
		body   string
		status int
		rule   string
	}{
		{`{"eventId": "x", "eventType": "Test", "eventDetails": {`, 400, "truncated"},
		{`not json`, 400, "not_json"},
		{`{"eventType": "Test", "eventDetails": {}}`, 400, "missing_event_id"},
		{strings.Repeat(" ", 5000), 413, "too_large"},
	}
	for i, tt := range tests {
		a := post(t, srv.URL+"/webhooks/rokt", []byte(tt.body), nil)
		if a.status != tt.status || ruleOf(a) != tt.rule {
			t.Errorf("%q: %d %v, want %d %s", tt.body[:min(20, len(tt.body))], a.status, a.body, tt.status, tt.rule)
			continue
		}
		rej := st.rejected[i]
		if rej.Reason != tt.rule || rej.Status != tt.status || rej.Source != "rokt" {
			t.Errorf("kept rejection %+v", rej)
		}
		if tt.status == 413 {
			if rej.BodySize != 5000 || len(rej.Body) != 4096 {
				t.Errorf("413 keeps the first max_body bytes and the real size: %d bytes kept, size %d", len(rej.Body), rej.BodySize)
			}
		} else if string(rej.Body) != tt.body {
			t.Errorf("kept body %q, want %q", rej.Body, tt.body)
		}
	}
	if len(st.rows) != 0 {
		t.Errorf("refused bodies reached the events: %d", len(st.rows))
	}
}

func TestGzipBody(t *testing.T) {
	st := &fakeStore{}
	srv := newServer(t, st)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(testBody))
	zw.Close()
	a := post(t, srv.URL+"/webhooks/rokt", buf.Bytes(), map[string]string{"Content-Encoding": "gzip"})
	if a.status != 200 || len(st.rows) != 1 || string(st.rows[0].Raw) != testBody {
		t.Fatalf("gzip body: %d %v", a.status, a.body)
	}
	// A body that inflates past the limit is refused like a large one.
	buf.Reset()
	zw = gzip.NewWriter(&buf)
	zw.Write(bytes.Repeat([]byte(" "), 100000))
	zw.Close()
	if a := post(t, srv.URL+"/webhooks/rokt", buf.Bytes(), map[string]string{"Content-Encoding": "gzip"}); a.status != 413 {
		t.Errorf("gzip bomb: %d", a.status)
	}
}

func TestNeverRedirects(t *testing.T) {
	st := &fakeStore{}
	srv := newServer(t, st)
	for _, path := range []string{"//webhooks/rokt", "/webhooks/./rokt", "/webhooks/rokt/", "/webhooks//rokt", "/webhooks/other", "/x/../webhooks/rokt"} {
		a := post(t, srv.URL+path, []byte(testBody), nil)
		if a.status/100 == 3 || a.status != 404 {
			t.Errorf("%s: %d (must be 404, never a redirect)", path, a.status)
		}
	}
	resp, err := http.Get(srv.URL + "/webhooks/rokt")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
	if len(st.rows) != 0 {
		t.Error("stored through a wrong path")
	}
}

func TestStoreTroubleAnswers503Or500(t *testing.T) {
	st := &fakeStore{err: retryErr{}}
	srv := newServer(t, st)
	a := post(t, srv.URL+"/webhooks/rokt", []byte(testBody), nil)
	if a.status != 503 || a.header.Get("Retry-After") != "2" {
		t.Errorf("queue full: %d Retry-After %q", a.status, a.header.Get("Retry-After"))
	}
	// What the store wraps around its short reason (a file's path) stays out of the answer.
	st.err = fmt.Errorf("%w: Could not write file \"/srv/private/hb.duckdb.wal\"", retryErr{})
	a = post(t, srv.URL+"/webhooks/rokt", []byte(testBody), nil)
	if a.status != 503 || strings.Contains(fmt.Sprint(a.body), "/srv/private") {
		t.Errorf("unavailable: %d %v, want 503 without the path", a.status, a.body)
	}
	st.err = errors.New("disk on fire")
	a = post(t, srv.URL+"/webhooks/rokt", []byte(testBody), nil)
	if a.status != 500 || ruleOf(a) != "store_failed" {
		t.Errorf("store failure: %d %v", a.status, a.body)
	}
}

// A refused body the store cannot keep is not answered 4xx: that would end the sender's
// retries and lose the bytes. It gets the same 503 or 500 as an event would.
func TestRefusedBodyThatCannotBeKeptIsNotRefused(t *testing.T) {
	st := &fakeStore{err: retryErr{}}
	srv := newServer(t, st)
	a := post(t, srv.URL+"/webhooks/rokt", []byte("not json"), nil)
	if a.status != 503 || a.header.Get("Retry-After") != "2" {
		t.Errorf("queue full while keeping a refused body: %d Retry-After %q %v", a.status, a.header.Get("Retry-After"), a.body)
	}
	st.err = errors.New("disk on fire")
	a = post(t, srv.URL+"/webhooks/rokt", []byte("not json"), nil)
	if a.status != 500 || ruleOf(a) != "store_failed" {
		t.Errorf("store failure while keeping a refused body: %d %v", a.status, a.body)
	}
	st.err = nil
	if a = post(t, srv.URL+"/webhooks/rokt", []byte("not json"), nil); a.status != 400 || len(st.rejected) != 1 {
		t.Errorf("once the store works: %d, %d kept", a.status, len(st.rejected))
	}
}

func TestTokenAuth(t *testing.T) {
	st := &fakeStore{}
	srv := newServer(t, st, NewTokenAuth("old-token-0123456789", "new-token-0123456789"))
	for _, u := range []string{"/webhooks/rokt", "/webhooks/rokt?token=wrong", "/webhooks/rokt/wrong", "/webhooks/rokt?token=new-token-012345678"} {
		if a := post(t, srv.URL+u, []byte(testBody), nil); a.status != 401 {
			t.Errorf("%s: %d, want 401", u, a.status)
		}
	}
	if len(st.rows)+len(st.rejected) != 0 {
		t.Fatal("an unauthenticated request was stored")
	}
	if a := post(t, srv.URL+"/webhooks/rokt/new-token-0123456789", []byte(testBody), nil); a.status != 200 {
		t.Errorf("token in path: %d", a.status)
	}
	if a := post(t, srv.URL+"/webhooks/rokt?token=old-token-0123456789", []byte(strings.Replace(testBody, "58\"", "59\"", 1)), nil); a.status != 200 {
		t.Errorf("rotated token in query: %d", a.status)
	}
}

func TestBasicAuth(t *testing.T) {
	st := &fakeStore{}
	srv := newServer(t, st, NewBasicAuth("rokt", "s3cret-password"))
	a := post(t, srv.URL+"/webhooks/rokt", []byte(testBody), nil)
	if a.status != 401 || !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("no credentials: %d %q", a.status, a.header.Get("WWW-Authenticate"))
	}
	bad := "Basic " + base64.StdEncoding.EncodeToString([]byte("rokt:wrong"))
	if a := post(t, srv.URL+"/webhooks/rokt", []byte(testBody), map[string]string{"Authorization": bad}); a.status != 401 {
		t.Errorf("wrong password: %d", a.status)
	}
	good := "Basic " + base64.StdEncoding.EncodeToString([]byte("rokt:s3cret-password"))
	if a := post(t, srv.URL+"/webhooks/rokt", []byte(testBody), map[string]string{"Authorization": good}); a.status != 200 {
		t.Errorf("right password: %d", a.status)
	}
}

// The published Standard Webhooks test vector (standardwebhooks.com reference libraries).
const (
	swSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	swID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	swTimestamp = "1614265330"
	swBody      = `{"test": 2432232314}`
	swSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestStandardWebhooksVector(t *testing.T) {
	at := func(sec int64) func() time.Time { return func() time.Time { return time.Unix(sec, 0) } }
	v, err := NewStandardWebhooks([]string{swSecret}, 5*time.Minute, at(1614265330+60))
	if err != nil {
		t.Fatal(err)
	}
	req := func(sig, ts string) *http.Request {
		r := httptest.NewRequest("POST", "/webhooks/rokt", nil)
		r.Header.Set("webhook-id", swID)
		r.Header.Set("webhook-timestamp", ts)
		r.Header.Set("webhook-signature", sig)
		return r
	}
	if err := v.Authenticate(req(swSignature, swTimestamp), "", []byte(swBody)); err != nil {
		t.Errorf("published vector refused: %v", err)
	}
	// Several signatures (key rotation on the sender's side): any match passes.
	if err := v.Authenticate(req("v1,bm9wZQ== "+swSignature, swTimestamp), "", []byte(swBody)); err != nil {
		t.Errorf("rotation list refused: %v", err)
	}
	if err := v.Authenticate(req(swSignature, swTimestamp), "", []byte(`{"test": 2432232315}`)); err == nil {
		t.Error("tampered body accepted")
	}
	if err := v.Authenticate(req("v2,"+swSignature[3:], swTimestamp), "", []byte(swBody)); err == nil {
		t.Error("unknown signature version accepted")
	}
	late, _ := NewStandardWebhooks([]string{swSecret}, 5*time.Minute, at(1614265330+301))
	if err := late.Authenticate(req(swSignature, swTimestamp), "", []byte(swBody)); err == nil {
		t.Error("timestamp outside the tolerance accepted (replay)")
	}
	// Our side rotates too: the old secret among several still verifies.
	rotated, _ := NewStandardWebhooks([]string{"whsec_" + base64.StdEncoding.EncodeToString([]byte("another key")), swSecret}, 5*time.Minute, at(1614265330))
	if err := rotated.Authenticate(req(swSignature, swTimestamp), "", []byte(swBody)); err != nil {
		t.Errorf("second configured secret: %v", err)
	}
	if _, err := NewStandardWebhooks([]string{"whsec_%%%"}, time.Minute, nil); err == nil {
		t.Error("malformed secret accepted")
	}
}

func TestStandardWebhooksOverHTTP(t *testing.T) {
	st := &fakeStore{}
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("hookbridge test key"))
	v, _ := NewStandardWebhooks([]string{secret}, 5*time.Minute, nil)
	srv := newServer(t, st, v)
	ts := time.Now().Unix()
	// Signed here with plain crypto/hmac, independently of the verifier.
	mac := hmac.New(sha256.New, []byte("hookbridge test key"))
	mac.Write([]byte("msg_1." + itoa(ts) + "." + testBody))
	sig := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	headers := map[string]string{"webhook-id": "msg_1", "webhook-timestamp": itoa(ts), "webhook-signature": sig}
	if a := post(t, srv.URL+"/webhooks/rokt", []byte(testBody), headers); a.status != 200 {
		t.Errorf("signed request: %d %v", a.status, a.body)
	}
	headers["webhook-signature"] = "v1," + base64.StdEncoding.EncodeToString(make([]byte, 32))
	if a := post(t, srv.URL+"/webhooks/rokt", []byte(testBody), headers); a.status != 401 {
		t.Errorf("bad signature: %d", a.status)
	}
	if len(st.rejected) != 0 || len(st.rows) != 1 {
		t.Errorf("stored %d rows, %d rejections", len(st.rows), len(st.rejected))
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestHMACAuth(t *testing.T) {
	sign := func(key, body string) []byte {
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write([]byte(body))
		return mac.Sum(nil)
	}
	tests := []struct {
		name     string
		auth     *HMACAuth
		header   string
		value    string
		accepted bool
	}{
		{"hex", NewHMACAuth("X-Signature", []string{"k1"}, "hex", ""), "X-Signature", hex.EncodeToString(sign("k1", testBody)), true},
		{"hex upper-case", NewHMACAuth("X-Signature", []string{"k1"}, "hex", ""), "X-Signature", strings.ToUpper(hex.EncodeToString(sign("k1", testBody))), true},
		{"base64 with prefix", NewHMACAuth("X-Hub-Signature-256", []string{"k1"}, "base64", "sha256="), "X-Hub-Signature-256", "sha256=" + base64.StdEncoding.EncodeToString(sign("k1", testBody)), true},
		{"rotated key", NewHMACAuth("X-Signature", []string{"k0", "k1"}, "hex", ""), "X-Signature", hex.EncodeToString(sign("k1", testBody)), true},
		{"wrong key", NewHMACAuth("X-Signature", []string{"k2"}, "hex", ""), "X-Signature", hex.EncodeToString(sign("k1", testBody)), false},
		{"missing header", NewHMACAuth("X-Signature", []string{"k1"}, "hex", ""), "X-Other", hex.EncodeToString(sign("k1", testBody)), false},
		{"not hex", NewHMACAuth("X-Signature", []string{"k1"}, "hex", ""), "X-Signature", "zz", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &fakeStore{}
			srv := newServer(t, st, tt.auth)
			a := post(t, srv.URL+"/webhooks/rokt", []byte(testBody), map[string]string{tt.header: tt.value})
			if (a.status == 200) != tt.accepted || (!tt.accepted && a.status != 401) {
				t.Errorf("status %d, accepted want %v", a.status, tt.accepted)
			}
		})
	}
}

func TestAllConfiguredSchemesMustPass(t *testing.T) {
	st := &fakeStore{}
	srv := newServer(t, st, NewTokenAuth("token-0123456789abcdef"), NewHMACAuth("X-Signature", []string{"k"}, "hex", ""))
	mac := hmac.New(sha256.New, []byte("k"))
	mac.Write([]byte(testBody))
	sig := hex.EncodeToString(mac.Sum(nil))
	if a := post(t, srv.URL+"/webhooks/rokt", []byte(testBody), map[string]string{"X-Signature": sig}); a.status != 401 {
		t.Errorf("signature without token: %d", a.status)
	}
	if a := post(t, srv.URL+"/webhooks/rokt?token=token-0123456789abcdef", []byte(testBody), nil); a.status != 401 {
		t.Errorf("token without signature: %d", a.status)
	}
	if a := post(t, srv.URL+"/webhooks/rokt?token=token-0123456789abcdef", []byte(testBody), map[string]string{"X-Signature": sig}); a.status != 200 {
		t.Errorf("both: %d", a.status)
	}
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// TestUndecodableBodiesAreKeptAsReceived: a body whose Content-Encoding cannot be undone is
// kept as it arrived (the first max_body bytes, and its full size), with a detail naming the
// encoding.
func TestUndecodableBodiesAreKeptAsReceived(t *testing.T) {
	valid := gzipped([]byte(testBody))
	corrupt := bytes.Clone(valid)
	for i := 12; i < len(corrupt)-8; i++ {
		corrupt[i] ^= 0x5a
	}
	badChecksum := bytes.Clone(valid)
	badChecksum[len(badChecksum)-6] ^= 0xff
	junk := bytes.Repeat([]byte("not gzip "), 600) // 5400 bytes, over the 4096-byte limit
	tests := []struct {
		name     string
		encoding string
		body     []byte
		status   int
		rule     string
		detail   string
	}{
		{"plain JSON labelled gzip", "gzip", []byte(testBody), 400, "unreadable_body", "Content-Encoding is gzip"},
		{"corrupt deflate data", "gzip", corrupt, 400, "unreadable_body", "Content-Encoding is gzip"},
		{"cut gzip stream", "gzip", valid[:len(valid)-10], 400, "unreadable_body", "Content-Encoding is gzip"},
		{"wrong checksum", "gzip", badChecksum, 400, "unreadable_body", "Content-Encoding is gzip"},
		{"junk over the limit", "gzip", junk, 400, "unreadable_body", "Content-Encoding is gzip"},
		{"brotli", "br", valid, 415, "unsupported_encoding", `Content-Encoding "br"`},
		{"two codings", "gzip, gzip", gzipped(valid), 415, "unsupported_encoding", `Content-Encoding "gzip, gzip"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &fakeStore{}
			srv := newServer(t, st)
			a := post(t, srv.URL+"/webhooks/rokt", tt.body, map[string]string{"Content-Encoding": tt.encoding})
			if a.status != tt.status || ruleOf(a) != tt.rule {
				t.Fatalf("%d %v, want %d %s", a.status, a.body, tt.status, tt.rule)
			}
			if len(st.rejected) != 1 || len(st.rows) != 0 {
				t.Fatalf("%d rejections kept, %d rows stored; want the one rejection", len(st.rejected), len(st.rows))
			}
			rej := st.rejected[0]
			want := tt.body[:min(len(tt.body), 4096)]
			if !bytes.Equal(rej.Body, want) || rej.BodySize != int64(len(tt.body)) {
				t.Errorf("kept %d bytes (size %d), want the first %d bytes as received (size %d)", len(rej.Body), rej.BodySize, len(want), len(tt.body))
			}
			if rej.Reason != tt.rule || rej.Status != tt.status || !strings.Contains(rej.Detail, tt.detail) {
				t.Errorf("kept reason %s status %d detail %q; want %s %d and a detail naming %s", rej.Reason, rej.Status, rej.Detail, tt.rule, tt.status, tt.detail)
			}
			if tt.status == 415 && a.header.Get("Accept-Encoding") != "gzip" {
				t.Errorf("415 without Accept-Encoding: gzip (%q)", a.header.Get("Accept-Encoding"))
			}
		})
	}
}

// TestContentCodingNames: codings compare case-insensitively, x-gzip is gzip, identity is no
// coding, and a body that reads as it is despite an unknown coding is taken.
func TestContentCodingNames(t *testing.T) {
	for i, enc := range []string{"GZIP", "x-gzip", " gzip ", "identity, gzip"} {
		st := &fakeStore{}
		srv := newServer(t, st)
		body := strings.Replace(testBody, "58\"", strconv.Itoa(i)+"\"", 1)
		if a := post(t, srv.URL+"/webhooks/rokt", gzipped([]byte(body)), map[string]string{"Content-Encoding": enc}); a.status != 200 || len(st.rows) != 1 || string(st.rows[0].Raw) != body {
			t.Errorf("Content-Encoding %q: %d %v", enc, a.status, a.body)
		}
	}
	for _, enc := range []string{"identity", "br", "utf-8"} {
		st := &fakeStore{}
		srv := newServer(t, st)
		if a := post(t, srv.URL+"/webhooks/rokt", []byte(testBody), map[string]string{"Content-Encoding": enc}); a.status != 200 || len(st.rows) != 1 {
			t.Errorf("JSON labelled Content-Encoding %q: %d %v", enc, a.status, a.body)
		}
	}
}

// TestBrokenConnectionKeepsWhatArrived: a sender that stops before its Content-Length is
// answered unreadable_body, and the bytes that arrived are kept, compressed or not.
func TestBrokenConnectionKeepsWhatArrived(t *testing.T) {
	compressed := gzipped([]byte(testBody))
	for _, tt := range []struct {
		name     string
		encoding string
		sent     []byte
	}{
		{"identity", "", []byte(testBody[:40])},
		{"gzip", "gzip", compressed[:len(compressed)/2]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := &fakeStore{}
			srv := newServer(t, st)
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			head := "POST /webhooks/rokt HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n"
			if tt.encoding != "" {
				head += "Content-Encoding: " + tt.encoding + "\r\n"
			}
			conn.Write(append([]byte(head+"\r\n"), tt.sent...))
			conn.(*net.TCPConn).CloseWrite()
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 400 || len(st.rejected) != 1 {
				t.Fatalf("%d, %d rejections kept", resp.StatusCode, len(st.rejected))
			}
			rej := st.rejected[0]
			if rej.Reason != "unreadable_body" || !bytes.Equal(rej.Body, tt.sent) || rej.BodySize != int64(len(tt.sent)) || !strings.Contains(rej.Detail, "reading the body failed") {
				t.Errorf("kept %s %q (size %d, detail %q), want the %d bytes that arrived", rej.Reason, rej.Body, rej.BodySize, rej.Detail, len(tt.sent))
			}
		})
	}
}

// TestUnverifiableSignatureIsNotKept: a signed source cannot check the signature of a body
// that does not inflate, so the request is unauthorized and nothing is kept.
func TestUnverifiableSignatureIsNotKept(t *testing.T) {
	st := &fakeStore{}
	srv := newServer(t, st, NewHMACAuth("X-Signature", []string{"k"}, "hex", ""))
	mac := hmac.New(sha256.New, []byte("k"))
	mac.Write([]byte(testBody))
	a := post(t, srv.URL+"/webhooks/rokt", []byte(testBody), map[string]string{"Content-Encoding": "gzip", "X-Signature": hex.EncodeToString(mac.Sum(nil))})
	if a.status != 401 || len(st.rejected)+len(st.rows) != 0 {
		t.Errorf("%d %v, %d rejections kept; want 401 and nothing kept", a.status, a.body, len(st.rejected))
	}
}
