package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// adminClient talks to a running server's admin API.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

// adminFlags adds --server and --token to fs; call client() after parsing.
type adminFlags struct {
	server *string
	token  *string
}

func addAdminFlags(fs *flag.FlagSet) adminFlags {
	return adminFlags{
		server: fs.String("server", "", "admin API of the running server (default $HOOKBRIDGE_SERVER, else http://127.0.0.1:8080)"),
		token:  fs.String("token", "", "admin token (default $HOOKBRIDGE_ADMIN_TOKEN)"),
	}
}

func (f adminFlags) client(e *env) *adminClient {
	server := *f.server
	if server == "" {
		server = e.getenv("HOOKBRIDGE_SERVER")
	}
	if server == "" {
		server = "http://127.0.0.1:8080"
	}
	token := *f.token
	if token == "" {
		token = e.getenv("HOOKBRIDGE_ADMIN_TOKEN")
	}
	return &adminClient{base: strings.TrimRight(server, "/"), token: token, http: &http.Client{}}
}

// errServerDown says no server answered; commands that can work on the file read-only use it.
var errServerDown = errors.New("no hookbridge server answers")

// do sends a request and decodes a JSON answer into out (when not nil).
func (c *adminClient) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("admin API answer: %w", err)
	}
	return nil
}

// send returns the response of a successful request; a non-2xx answer becomes an error that
// carries the server's message.
func (c *adminClient) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	ctype := "application/json"
	switch b := body.(type) {
	case nil:
	case rawBody:
		rd, ctype = b.Reader, "application/x-ndjson"
	default:
		enc, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && !errors.Is(err, context.Canceled) {
			return nil, fmt.Errorf("%w at %s (start 'hookbridge serve', or point --server / HOOKBRIDGE_SERVER at it): %v", errServerDown, c.base, ue.Err)
		}
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e struct {
			Error string `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return nil, fmt.Errorf("admin API: %s %s: %d: %s", method, path, resp.StatusCode, e.Error)
	}
	return resp, nil
}

// stream calls fn with each JSON line of a streamed answer.
func (c *adminClient) stream(ctx context.Context, method, path string, body any, fn func(line []byte) error) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	return sc.Err()
}

// progressBar draws a one-line bar on w when w is a terminal-ish writer; tests pass a buffer.
type progressBar struct {
	w     io.Writer
	label string
	start time.Time
	last  time.Time
}

func newProgressBar(w io.Writer, label string) *progressBar {
	return &progressBar{w: w, label: label, start: time.Now()}
}

// elapsedLine shows "label … Ns" on w, redrawn every second once a second has passed, until
// the returned stop is called, which ends the line (nothing is shown for work that took less
// than a second) (for work whose size is not known in advance, such as the
// server writing an export before the download starts). stop may be called more than once.
func elapsedLine(w io.Writer, label string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				if time.Since(start) >= time.Second { // the ticker has shown the line
					fmt.Fprintf(w, "\r%s … %s\n", label, time.Since(start).Round(time.Second))
				}
				return
			case <-t.C:
				fmt.Fprintf(w, "\r%s … %s", label, time.Since(start).Round(time.Second))
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done); <-finished })
	}
}

// update redraws the bar; it draws at most 10 times a second, and always the final state.
func (p *progressBar) update(done, total int) {
	now := time.Now()
	if done < total && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	const width = 30
	filled := 0
	if total > 0 {
		filled = width * done / total
	}
	rate := float64(done) / max(now.Sub(p.start).Seconds(), 0.001)
	fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d (%.0f/s)", p.label, strings.Repeat("=", filled), strings.Repeat(" ", width-filled), done, total, rate)
	if done >= total {
		fmt.Fprintln(p.w)
	}
}
