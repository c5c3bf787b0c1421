package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/connector/store"
)

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// server is a hookbridge child process.
type server struct {
	cmd    *exec.Cmd
	addr   string
	stderr *syncBuffer
	stdout *syncBuffer
	exited chan struct{}
}

// writeConfig writes dir/hookbridge.yaml: the data file in dir, the rokt source, then rest
// (a sinks: block, say). It returns the file's path.
func writeConfig(t *testing.T, dir, rest string) string {
	t.Helper()
	cfg := filepath.Join(dir, "hookbridge.yaml")
	body := fmt.Sprintf("data: %s\nsources: [{name: rokt}]\n%s", filepath.Join(dir, "hb.duckdb"), rest)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer starts `hookbridge serve` (this test binary acting as hookbridge) and waits
// until it is ready.
func startServer(t *testing.T, addr string, args ...string) *server {
	t.Helper()
	s := &server{addr: addr, stderr: &syncBuffer{}, stdout: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(os.Args[0], append([]string{"serve", "--listen", addr}, args...)...)
	s.cmd.Env = append(os.Environ(), asMainEnv+"=1")
	s.cmd.Stderr, s.cmd.Stdout = s.stderr, s.stdout
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() { s.cmd.Process.Kill(); <-s.exited })
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			t.Fatalf("hookbridge serve exited: %s", s.stderr.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("hookbridge serve not ready: %s", s.stderr.String())
	return nil
}

// TestSIGKILLLosesNothingAcknowledged kills a loaded server with SIGKILL several times; after
// every restart each eventId that was answered 2xx is stored exactly once.
func TestSIGKILLLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills server processes")
	}
	data := filepath.Join(t.TempDir(), "hb.duckdb")
	addr := freeAddr(t)
	var mu sync.Mutex
	acked := map[string]bool{}
	var counter atomic.Int64
	for round := 0; round < 4; round++ {
		srv := startServer(t, addr, "--data", data)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var sentInRound atomic.Int64
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := &http.Client{Timeout: 5 * time.Second}
				for ctx.Err() == nil {
					id := fmt.Sprintf("crash-%07d", counter.Add(1))
					body := fmt.Sprintf(`{"eventId":%q,"eventType":"Subscribe","eventDetails":{"actionType":"SubscriptionViaWebApi","calendarSubscriptionId":%q,"accountId":"a","accountName":"A","accountCode":"a","subscription":{"calendarSubscriptionId":%q,"calendarId":"c","calendarTitle":"T","calendarCode":"t","subscriberEmail":"%s@example.com"}}}`, id, id, id, id)
					resp, err := client.Post("http://"+addr+"/webhooks/rokt", "application/json", strings.NewReader(body))
					if err != nil {
						continue // the server is gone; this event was never acknowledged
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						sentInRound.Add(1)
						mu.Lock()
						acked[id] = true
						mu.Unlock()
					}
				}
			}()
		}
		// Let load build up, then kill without warning.
		for sentInRound.Load() < 200 {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(50+round*70) * time.Millisecond)
		if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-srv.exited
		cancel()
		wg.Wait()
	}
	// A last clean start and stop, then read the file.
	srv := startServer(t, addr, "--data", data)
	srv.cmd.Process.Signal(syscall.SIGTERM)
	<-srv.exited
	st, err := store.Open(context.Background(), store.Options{Path: data, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stored := map[string]int{}
	rows, err := st.DB().Query("SELECT event_id, count(*) FROM events GROUP BY event_id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var n int
		rows.Scan(&id, &n)
		stored[id] = n
	}
	rows.Close()
	missing, twice := 0, 0
	for id := range acked {
		switch stored[id] {
		case 0:
			missing++
		case 1:
		default:
			twice++
		}
	}
	if missing > 0 || twice > 0 {
		t.Fatalf("of %d acknowledged events, %d are missing and %d stored more than once", len(acked), missing, twice)
	}
	var subs int
	st.DB().QueryRow("SELECT count(*) FROM subscriptions").Scan(&subs)
	if subs != len(stored) {
		t.Errorf("%d subscriptions for %d stored Subscribes: state changes lost in a crash were not folded again", subs, len(stored))
	}
	t.Logf("%d events acknowledged across 4 SIGKILLs, all stored once", len(acked))
}
