package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// loadResult summarises one load run.
type loadResult struct {
	ok, failed int64
	elapsed    time.Duration
	latencies  []time.Duration // of successful requests
	ackedIDs   []string        // event ids answered 2xx, when recorded
	writer     string          // the server's writer statistics, when it has a store
}

func (r loadResult) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

func (r loadResult) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.latencies)-1) * p)
	return r.latencies[i]
}

// loadGen posts webhook bodies over keep-alive HTTP/1.1 connections with a minimal client,
// so the load generator takes as little of the machine as possible from the server it
// measures. Each body gets a unique eventId, subscription id and email.
type loadGen struct {
	// client is "nethttp" (Go's http.Client, as load tools built on it behave) or "lean" (a
	// minimal HTTP/1.1 writer and reader that leaves more of the CPU to the server).
	client    string
	addr      string
	path      string
	conns     int
	template  []byte // body with idMarker where the unique id goes (once or more)
	recordIDs bool
}

// idMarker is replaced by a 12-digit request number in every body.
const idMarker = "XXXXXXXXXXXX"

// run sends for warmup (not measured) then for measure, and returns what was measured.
func (g *loadGen) run(ctx context.Context, warmup, measure time.Duration) (loadResult, error) {
	var counter atomic.Int64
	var measuring atomic.Bool
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type connResult struct {
		ok, failed int64
		lat        []time.Duration
		ids        []string
		err        error
	}
	results := make([]connResult, g.conns)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for c := 0; c < g.conns; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			res := &results[c]
			send, err := g.sender()
			if err != nil {
				res.err = err
				return
			}
			defer send.close()
			body := bytes.Clone(g.template)
			marks := markerOffsets(g.template)
			<-start
			for ctx.Err() == nil {
				n := counter.Add(1)
				id := fmt.Sprintf("%012d", n)
				for _, off := range marks {
					copy(body[off:], id)
				}
				t0 := time.Now()
				status, err := send.post(ctx, body)
				if err != nil {
					if ctx.Err() == nil {
						res.err = err
					}
					return
				}
				if !measuring.Load() {
					continue
				}
				if status/100 == 2 {
					res.ok++
					res.lat = append(res.lat, time.Since(t0))
					if g.recordIDs {
						res.ids = append(res.ids, id)
					}
				} else {
					res.failed++
				}
			}
		}(c)
	}
	close(start)
	select {
	case <-time.After(warmup):
	case <-ctx.Done():
	}
	measuring.Store(true)
	t0 := time.Now()
	select {
	case <-time.After(measure):
	case <-ctx.Done():
	}
	measuring.Store(false)
	elapsed := time.Since(t0)
	cancel()
	wg.Wait()
	out := loadResult{elapsed: elapsed}
	for _, r := range results {
		if r.err != nil {
			return out, fmt.Errorf("load generator: %w", r.err)
		}
		out.ok += r.ok
		out.failed += r.failed
		out.latencies = append(out.latencies, r.lat...)
		out.ackedIDs = append(out.ackedIDs, r.ids...)
	}
	slices.Sort(out.latencies)
	return out, nil
}

// sender posts one body and returns the status.
type sender interface {
	post(ctx context.Context, body []byte) (int, error)
	close()
}

func (g *loadGen) sender() (sender, error) {
	if g.client == "lean" {
		conn, err := net.Dial("tcp", g.addr)
		if err != nil {
			return nil, err
		}
		return &leanSender{g: g, conn: conn, br: bufio.NewReaderSize(conn, 4096)}, nil
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, DisableCompression: true}
	return &netHTTPSender{url: "http://" + g.addr + g.path, client: &http.Client{Transport: tr}}, nil
}

type leanSender struct {
	g    *loadGen
	conn net.Conn
	br   *bufio.Reader
	req  []byte
}

func (s *leanSender) post(ctx context.Context, body []byte) (int, error) {
	s.req = fmt.Appendf(s.req[:0], "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", s.g.path, s.g.addr, len(body))
	s.req = append(s.req, body...)
	if _, err := s.conn.Write(s.req); err != nil {
		return 0, err
	}
	return readResponse(s.br)
}

func (s *leanSender) close() { s.conn.Close() }

type netHTTPSender struct {
	url    string
	client *http.Client
}

func (s *netHTTPSender) post(ctx context.Context, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (s *netHTTPSender) close() { s.client.CloseIdleConnections() }

func markerOffsets(b []byte) []int {
	var offs []int
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte(idMarker))
		if j < 0 {
			return offs
		}
		offs = append(offs, i+j)
		i += j + len(idMarker)
	}
}

// readResponse reads one HTTP/1.1 response with a Content-Length and returns its status.
func readResponse(br *bufio.Reader) (int, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 {
		return 0, fmt.Errorf("short status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("status line %q", line)
	}
	length := 0
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(h) <= 2 {
			break
		}
		if len(h) > 16 && bytes.EqualFold(h[:15], []byte("Content-Length:")) {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(h[15:])))
		}
	}
	_, err = io.CopyN(io.Discard, br, int64(length))
	return status, err
}
