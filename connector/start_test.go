package connector

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/connector/store"
)

// TestBusyAddressLeavesTheDataAlone: when an address to listen on is taken, Start fails
// before it opens the store: a new data file is not created (nor its folder, nor the exports
// folder), and an existing one is not touched.
func TestBusyAddressLeavesTheDataAlone(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	start := func(data, listen, adminListen string) error {
		t.Helper()
		cfg, err := Parse([]byte("sources:\n  - name: rokt\n"), "test.yaml", env(nil))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Listen, cfg.Admin.Listen, cfg.Data = listen, adminListen, data
		c, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		err = c.Start(context.Background())
		if err == nil {
			c.Stop()
		}
		return err
	}
	for _, tc := range []struct{ name, listen, admin string }{
		{"webhook address taken", busy.Addr().String(), ""},
		{"admin address taken", free(), busy.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			data := filepath.Join(dir, "hb.duckdb")
			err := start(data, tc.listen, tc.admin)
			if err == nil || !strings.Contains(err.Error(), "address already in use") {
				t.Fatalf("Start on a taken address: %v, want address already in use", err)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				entries, _ := os.ReadDir(dir)
				t.Errorf("a failed start left %s behind (%v; holding %v)", dir, err, entries)
			}

			// A file from an earlier run is left as it was.
			existing := filepath.Join(t.TempDir(), "hb.duckdb")
			st, err := store.Open(context.Background(), store.Options{Path: existing, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(existing)
			info, _ := os.Stat(existing)
			time.Sleep(10 * time.Millisecond) // a rewrite would show in the modification time
			if err := start(existing, tc.listen, tc.admin); err == nil {
				t.Fatal("Start on a taken address succeeded")
			}
			after, _ := os.ReadFile(existing)
			info2, _ := os.Stat(existing)
			if !bytes.Equal(before, after) || !info.ModTime().Equal(info2.ModTime()) {
				t.Error("a failed start changed the existing data file")
			}
			entries, _ := os.ReadDir(filepath.Dir(existing))
			if len(entries) != 1 {
				t.Errorf("a failed start left files beside the existing one: %v", entries)
			}
		})
	}
}

// TestExportFolderOnlyForAnExport: the exports folder beside the data file is made by the
// first export or snapshot, not by the server starting or stopping.
func TestExportFolderOnlyForAnExport(t *testing.T) {
	c := startServer(t, "sources:\n  - name: rokt\n", nil)
	exports := c.cfg.ExportDir()
	if _, err := os.Stat(exports); !os.IsNotExist(err) {
		t.Fatalf("the server made %s at start (%v)", exports, err)
	}
	base := "http://" + c.Addr()
	for _, req := range []struct{ path, body string }{
		{"/admin/v1/export", `{"table": "events", "format": "csv"}`},
		{"/admin/v1/snapshot", `{}`},
	} {
		resp, err := http.Post(base+req.path, "application/json", strings.NewReader(req.body))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("%s: %d %q", req.path, resp.StatusCode, body)
		}
		if _, err := os.Stat(exports); err != nil {
			t.Errorf("%s did not make the exports folder: %v", req.path, err)
		}
		// Empty again: the file was sent and removed (the server removes it once the
		// response is written, which may be just after the client has read it all).
		var err2 error
		for i := 0; i < 250; i++ {
			if err2 = os.Remove(exports); err2 == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err2 != nil {
			t.Errorf("the exports folder after %s: %v", req.path, err2)
		}
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(exports); !os.IsNotExist(err) {
		t.Errorf("the server left %s behind (%v)", exports, err)
	}
}

// TestStartingHandlerAsksToComeBack: while the store opens, requests get 503 with
// Retry-After (the liveness check 200); once started, the real handler answers.
func TestStartingHandlerAsksToComeBack(t *testing.T) {
	h := &startingHandler{}
	get := func(method, path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
		return w
	}
	if w := get("POST", "/webhooks/rokt"); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), `"unavailable"`) {
		t.Errorf("while starting: %d %v %s", w.Code, w.Header(), w.Body)
	}
	if w := get("GET", "/healthz"); w.Code != http.StatusOK {
		t.Errorf("healthz while starting: %d", w.Code)
	}
	h.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	if w := get("POST", "/webhooks/rokt"); w.Code != http.StatusTeapot {
		t.Errorf("after start: %d", w.Code)
	}
}

// With admin.listen set, /metrics answers on the admin listener as well as the webhook one,
// for a scraper that is let onto the admin network only.
func TestMetricsOnTheAdminListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := ln.Addr().String()
	ln.Close()
	cfg, err := Parse([]byte("sources:\n  - name: rokt\n"), "test.yaml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.Admin.Listen, cfg.Data = "127.0.0.1:0", adminAddr, filepath.Join(t.TempDir(), "hb.duckdb")
	c, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	for _, addr := range []string{c.Addr(), adminAddr} {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), "hookbridge_store_commit_seconds") {
			t.Errorf("%s/metrics: %d, %d bytes", addr, resp.StatusCode, len(b))
		}
	}
}
