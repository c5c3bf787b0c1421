package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hookbridge/hookbridge/connector"
	"github.com/hookbridge/hookbridge/connector/admin"
	"github.com/hookbridge/hookbridge/connector/store"
)

// adminClient talks to a running server's admin API.
type adminClient struct {
	base  string
	token string
	http  *http.Client
	// serverGiven and tokenGiven say that --server (or HOOKBRIDGE_SERVER) and --token (or
	// HOOKBRIDGE_ADMIN_TOKEN) were given, so a configuration file does not replace them.
	serverGiven, tokenGiven bool
}

// adminFlags adds --server and --token to fs; call client() after parsing.
type adminFlags struct {
	server *string
	token  *string
}

func addAdminFlags(fs *flagSet) adminFlags {
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
	token := *f.token
	if token == "" {
		token = e.getenv("HOOKBRIDGE_ADMIN_TOKEN")
	}
	c := &adminClient{base: strings.TrimRight(server, "/"), token: token, http: &http.Client{}, serverGiven: server != "", tokenGiven: token != ""}
	if server == "" {
		c.base = "http://127.0.0.1:8080"
	}
	return c
}

// useConfig points c at the admin API cfg describes (admin.listen, else listen; a wildcard
// host is reached on loopback) and takes its admin token, where neither was given.
func (c *adminClient) useConfig(cfg *connector.Config) {
	if !c.serverGiven {
		addr := cfg.Admin.Listen
		if addr == "" {
			addr = cfg.Listen
		}
		if host, port, err := net.SplitHostPort(addr); err == nil {
			if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
				host = "127.0.0.1"
			}
			c.base = "http://" + net.JoinHostPort(host, port)
		}
	}
	if !c.tokenGiven && cfg.Admin.Token != "" {
		c.token = cfg.Admin.Token.Reveal()
	}
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
	// Numbers in untyped places (query rows) stay as written: a float64 would print a BIGINT
	// such as 12345678 as 1.2345678e+07 and round those past 2^53.
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("admin API answer: %w", err)
	}
	return nil
}

// query runs a read-only statement on the server. Its rows come in Display's forms, numbers
// as written (json.Number), so they print as the file's own rows do.
func (c *adminClient) query(ctx context.Context, req admin.QueryRequest, res *store.QueryResult) error {
	return c.do(ctx, "POST", "/admin/v1/query", req, res)
}

// heldFileSQL asks DuckDB for the absolute path of the file the server holds.
const heldFileSQL = "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"

// heldFile asks the server which DuckDB file it holds.
func (c *adminClient) heldFile(ctx context.Context) (string, error) {
	var res store.QueryResult
	if err := c.query(ctx, admin.QueryRequest{SQL: heldFileSQL, Limit: 1}, &res); err != nil {
		return "", err
	}
	if len(res.Rows) == 1 && len(res.Rows[0]) == 1 {
		if path, ok := res.Rows[0][0].(string); ok && path != "" {
			return path, nil
		}
	}
	return "", errors.New("admin API: the server does not say which file it holds")
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

// streamProgress runs a long operation on the server that answers with progress lines (P
// objects), the last of which wraps the final progress with the server's error, if any:
// {"progress": P, "error": "…"}. It keeps the latest progress in final, calls each (when
// given) with every line before the last, and returns the server's error text.
func streamProgress[P any](ctx context.Context, c *adminClient, path string, body any, final *P, each func(P)) (serverErr string, err error) {
	err = c.stream(ctx, "POST", path, body, func(line []byte) error {
		var last struct {
			Error    string `json:"error"`
			Progress *P     `json:"progress"`
		}
		if err := json.Unmarshal(line, &last); err != nil {
			return err
		}
		if last.Progress != nil {
			*final, serverErr = *last.Progress, last.Error
			return nil
		}
		if err := json.Unmarshal(line, final); err != nil {
			return err
		}
		if each != nil {
			each(*final)
		}
		return nil
	})
	return serverErr, err
}

// isTerminal reports whether w is a terminal (a character device), where a line can be
// redrawn with \r. A pipe, a file or a test's buffer is not.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressBar draws a one-line bar on w. On a terminal it is redrawn in place; elsewhere
// (a pipe, a log file) only the final state is written, once.
type progressBar struct {
	w     io.Writer
	tty   bool
	label string
	start time.Time
	last  time.Time
	ended bool
}

func newProgressBar(w io.Writer, label string) *progressBar {
	return &progressBar{w: w, tty: isTerminal(w), label: label, start: time.Now()}
}

// elapsedLine shows "label … Ns" on w until the returned stop is called, for work whose size
// is not known in advance (such as the server writing an export before the download starts).
// Nothing is shown for work that took less than a second. On a terminal the line is redrawn
// every second once a second has passed, and stop ends it; elsewhere stop writes it once,
// with the final time. stop may be called more than once.
func elapsedLine(w io.Writer, label string) (stop func()) {
	return elapsedLineOn(w, isTerminal(w), label)
}

func elapsedLineOn(w io.Writer, tty bool, label string) (stop func()) {
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
				if time.Since(start) >= time.Second {
					cr := ""
					if tty { // the ticker has shown the line: redraw it
						cr = "\r"
					}
					fmt.Fprintf(w, "%s%s … %s\n", cr, label, time.Since(start).Round(time.Second))
				}
				return
			case <-t.C:
				if tty {
					fmt.Fprintf(w, "\r%s … %s", label, time.Since(start).Round(time.Second))
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done); <-finished })
	}
}

// update redraws the bar; it draws at most 10 times a second, and always the final state
// (done >= total), which ends the line; updates after that are ignored.
func (p *progressBar) update(done, total int) {
	if p.ended {
		return
	}
	final := done >= total
	if !final && !p.tty {
		return
	}
	now := time.Now()
	if !final && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	const width = 30
	filled := width
	if total > 0 {
		filled = min(width*done/total, width)
	}
	rate := float64(done) / max(now.Sub(p.start).Seconds(), 0.001)
	cr := ""
	if p.tty {
		cr = "\r"
	}
	fmt.Fprintf(p.w, "%s%s [%s%s] %d/%d (%.0f/s)", cr, p.label, strings.Repeat("=", filled), strings.Repeat(" ", width-filled), done, total, rate)
	if final {
		p.ended = true
		fmt.Fprintln(p.w)
	}
}
