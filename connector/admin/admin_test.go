package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/connector/delivery"
)

type fakeEngine struct {
	mu      sync.Mutex
	paused  map[string]string
	replays int
	done    int
	filter  delivery.HistoryFilter
}

func (f *fakeEngine) Status(ctx context.Context) ([]delivery.SinkStatus, error) {
	return []delivery.SinkStatus{{Name: "crm", State: "running", Cursor: 7}}, nil
}

func (f *fakeEngine) Pause(ctx context.Context, sink, reason string) error {
	if sink != "crm" {
		return delivery.ErrNoSuchSink
	}
	f.paused[sink] = reason
	return nil
}

func (f *fakeEngine) Resume(ctx context.Context, sink string) error {
	delete(f.paused, sink)
	return nil
}

func (f *fakeEngine) Replay(ctx context.Context, sink string, sel delivery.Selection) (delivery.ReplayStatus, error) {
	f.replays++
	return delivery.ReplayStatus{ID: "rp_1", Sink: sink, Total: 3}, nil
}

func (f *fakeEngine) ReplayProgress(ctx context.Context, sink, id string) (delivery.ReplayStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done++
	return delivery.ReplayStatus{ID: id, Sink: sink, Total: 3, Done: min(f.done, 3)}, nil
}

func (f *fakeEngine) History(ctx context.Context, fl delivery.HistoryFilter) (delivery.Page[delivery.Attempt], error) {
	f.filter = fl
	return delivery.Page[delivery.Attempt]{Items: []delivery.Attempt{{ID: 9, Sink: "crm"}}, Next: "9"}, nil
}

func (f *fakeEngine) DeadLetters(ctx context.Context, fl delivery.DeadLetterFilter) (delivery.Page[delivery.DeadLetter], error) {
	return delivery.Page[delivery.DeadLetter]{}, nil
}

type fakeStore struct{}

func (fakeStore) StateSeq() int64     { return 42 }
func (fakeStore) CommittedSeq() int64 { return 43 }
func (fakeStore) Ready() error        { return nil }

func newAPI(t *testing.T, token string, loopback bool) (*httptest.Server, *fakeEngine) {
	eng := &fakeEngine{paused: map[string]string{}}
	mux := http.NewServeMux()
	New(Options{Token: token, Loopback: loopback, Engine: eng, Store: fakeStore{}, ProgressEvery: time.Millisecond}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, eng
}

func call(t *testing.T, method, url string, body string, header map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestGuard(t *testing.T) {
	srv, _ := newAPI(t, "admin-token-0123456789", true)
	u := srv.URL + "/admin/v1/status"
	auth := map[string]string{"Authorization": "Bearer admin-token-0123456789"}
	if s, _ := call(t, "GET", u, "", nil); s != 401 {
		t.Errorf("no token: %d", s)
	}
	if s, _ := call(t, "GET", u, "", map[string]string{"Authorization": "Bearer wrong"}); s != 401 {
		t.Errorf("wrong token: %d", s)
	}
	if s, body := call(t, "GET", u, "", auth); s != 200 || !strings.Contains(body, `"state_seq": 42`) {
		t.Errorf("good token: %d %s", s, body)
	}
	foreign := map[string]string{"Authorization": auth["Authorization"], "Host": "evil.example.com"}
	if s, _ := call(t, "GET", u, "", foreign); s != 403 {
		t.Errorf("foreign Host on a loopback listener (DNS rebinding): %d", s)
	}
	cross := map[string]string{"Authorization": auth["Authorization"], "Origin": "http://evil.example.com"}
	if s, _ := call(t, "POST", srv.URL+"/admin/v1/sinks/crm/pause", "", cross); s != 403 {
		t.Errorf("foreign Origin: %d", s)
	}
	same := map[string]string{"Authorization": auth["Authorization"], "Origin": srv.URL}
	if s, _ := call(t, "POST", srv.URL+"/admin/v1/sinks/crm/pause", "", same); s != 200 {
		t.Errorf("same Origin: %d", s)
	}
}

func TestNoTokenOnLoopback(t *testing.T) {
	srv, eng := newAPI(t, "", true)
	if s, _ := call(t, "POST", srv.URL+"/admin/v1/sinks/crm/pause", `{"reason":"maintenance"}`, nil); s != 200 || eng.paused["crm"] != "maintenance" {
		t.Errorf("pause: %d %v", s, eng.paused)
	}
	if s, body := call(t, "POST", srv.URL+"/admin/v1/sinks/nope/pause", "", nil); s != 404 || !strings.Contains(body, "no such sink") {
		t.Errorf("unknown sink: %d %s", s, body)
	}
	if s, _ := call(t, "POST", srv.URL+"/admin/v1/sinks/crm/resume", "", nil); s != 200 || len(eng.paused) != 0 {
		t.Errorf("resume: %d", s)
	}
}

func TestDeliveriesParameters(t *testing.T) {
	srv, eng := newAPI(t, "", true)
	s, body := call(t, "GET", srv.URL+"/admin/v1/deliveries?sink=crm&event_id=E1&status=retry&limit=5&after=100&since=2026-11-01T00:00:00Z", "", nil)
	if s != 200 || !strings.Contains(body, `"next": "9"`) {
		t.Fatalf("%d %s", s, body)
	}
	f := eng.filter
	if f.Sink != "crm" || f.EventID != "E1" || f.Outcome != "retry" || f.Limit != 5 || f.After != 100 || f.Since.IsZero() {
		t.Errorf("filter %+v", f)
	}
	for _, bad := range []string{"limit=0", "limit=x", "after=abc", "since=yesterday"} {
		if s, _ := call(t, "GET", srv.URL+"/admin/v1/deliveries?"+bad, "", nil); s != 400 {
			t.Errorf("%s: %d, want 400", bad, s)
		}
	}
}

func TestReplayStreamsProgress(t *testing.T) {
	srv, eng := newAPI(t, "", true)
	for _, bad := range []string{`{}`, `{"sink":"crm"}`, `{"sink":"crm","event_id":"x","dead_letters":true}`, `not json`} {
		if s, _ := call(t, "POST", srv.URL+"/admin/v1/replays", bad, nil); s != 400 {
			t.Errorf("%s: %d", bad, s)
		}
	}
	resp, err := http.Post(srv.URL+"/admin/v1/replays", "application/json", strings.NewReader(`{"sink":"crm","dead_letters":true,"wait":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var lines []delivery.ReplayStatus
	for sc.Scan() {
		var p delivery.ReplayStatus
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, p)
	}
	if len(lines) < 2 || lines[len(lines)-1].Done != 3 || eng.replays != 1 {
		t.Errorf("progress lines %+v", lines)
	}
}

// Behind a reverse proxy at PublicURL, the proxy's Host and the browser's Origin are taken,
// other Hosts are not (even off loopback), and the dashboard's cookie is Secure.
func TestPublicURLBehindAProxy(t *testing.T) {
	pub, _ := url.Parse("https://HookBridge.example.com:443") // the same origin as the browser's
	a := New(Options{Token: "admin-token-0123456789", Loopback: false, PublicURL: pub, Engine: &fakeEngine{paused: map[string]string{}}, Store: fakeStore{}})
	mux := http.NewServeMux()
	a.Register(mux)
	if err := a.RegisterDashboard(mux); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	auth := "Bearer admin-token-0123456789"
	for _, tc := range []struct {
		name, host, origin string
		want               int
	}{
		{"proxy keeps Host", "hookbridge.example.com", "https://hookbridge.example.com", 200},
		{"proxy rewrites Host", "127.0.0.1:9000", "https://hookbridge.example.com", 200},
		{"other Host", "evil.example.com", "", 403},
		{"other Origin", "hookbridge.example.com", "https://evil.example.com", 403},
		{"plain-http Origin", "127.0.0.1:9000", "http://hookbridge.example.com", 403},
	} {
		h := map[string]string{"Authorization": auth, "Host": tc.host}
		if tc.origin != "" {
			h["Origin"] = tc.origin
		}
		if s, body := call(t, "POST", srv.URL+"/admin/v1/sinks/crm/pause", "", h); s != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, s, body, tc.want)
		}
	}
	req, _ := http.NewRequest("POST", srv.URL+"/login", strings.NewReader("token=admin-token-0123456789"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Host = "127.0.0.1:9000"
	req.Header.Set("Origin", "https://hookbridge.example.com")
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != http.StatusSeeOther || len(cookies) != 1 || !cookies[0].Secure {
		t.Errorf("sign-in through the proxy: %d, cookies %v; want a redirect and a Secure cookie", resp.StatusCode, cookies)
	}
}
