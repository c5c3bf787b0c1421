// Package admin serves hookbridge's admin API under /admin/v1/: status, sink pause and
// resume, the notification history, dead letters and replays (and, in later files, queries
// and exports). Every request needs the bearer token when one is configured; requests with a
// foreign Host or Origin are refused, so a web page cannot drive the API through a browser.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookbridge/hookbridge/connector/delivery"
	"github.com/hookbridge/hookbridge/schemas"
)

// Engine is what the API needs of the delivery engine.
type Engine interface {
	Status(ctx context.Context) ([]delivery.SinkStatus, error)
	Pause(ctx context.Context, sink, reason string) error
	Resume(ctx context.Context, sink string) error
	Replay(ctx context.Context, sink string, sel delivery.Selection) (delivery.ReplayStatus, error)
	ReplayProgress(ctx context.Context, sink, id string) (delivery.ReplayStatus, error)
	History(ctx context.Context, f delivery.HistoryFilter) (delivery.Page[delivery.Attempt], error)
	DeadLetters(ctx context.Context, f delivery.DeadLetterFilter) (delivery.Page[delivery.DeadLetter], error)
}

// Store is what the API needs of the store for status.
type Store interface {
	CommittedSeq() int64
	StateSeq() int64
	Ready() error
}

// Options configure the API.
type Options struct {
	// Token is required as "Authorization: Bearer TOKEN" when set. Without one the API must
	// listen on loopback (the configuration enforces it).
	Token string
	// Loopback reports that the listener only accepts local connections; the Host header
	// must then name a loopback host (DNS rebinding defence).
	Loopback bool
	// PublicURL is the address browsers and clients reach the API at through a reverse
	// proxy ("https://hookbridge.example.com"; empty when they reach it directly). Its host is
	// accepted in Host (and then only it, off loopback), its origin in Origin whatever Host
	// the proxy sends on, and an https one makes the dashboard's session cookie Secure.
	PublicURL *url.URL
	Engine    Engine
	Store     Store
	// Data serves queries, exports, snapshots, imports, reprocessing and the key report.
	Data Data
	// ExportDir is where exports and snapshots are written before they are sent (one of the
	// store's allowed directories). It is made by the first export or snapshot.
	ExportDir string
	// Decoders decode imported and reprocessed bodies, by source.
	Decoders map[string]*schemas.Decoder
	// Gatherer reads counters the dashboard shows (unauthorised requests, duplicates).
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
	// ProgressEvery is how often a streamed replay reports progress (default 250ms).
	ProgressEvery time.Duration
}

// API is the admin HTTP API.
type API struct {
	opts  Options
	token [32]byte
	log   *slog.Logger
	bg    background
}

// New returns the API. Close it before the store it reads.
func New(opts Options) *API {
	a := &API{opts: opts, log: opts.Logger}
	a.bg.ctx, a.bg.cancel = context.WithCancel(context.Background())
	if a.log == nil {
		a.log = slog.Default()
	}
	if opts.Token != "" {
		a.token = sha256.Sum256([]byte(opts.Token))
	}
	if a.opts.ProgressEvery <= 0 {
		a.opts.ProgressEvery = 250 * time.Millisecond
	}
	return a
}

// Close stops the work the API runs beyond a request (the dashboard's chart computations,
// which requests share) and waits for it to end, so that none still reads the store when it
// closes.
func (a *API) Close() {
	a.bg.close()
}

// background is work that outlives the request that started it: it runs under ctx, which
// Close cancels, and Close waits for it.
type background struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
}

// run starts f in its own goroutine under b's context. After close (a request still running
// when shutdown gave up waiting) f still runs, under the cancelled context, so whoever waits
// for it hears back, but close does not wait for it.
func (b *background) run(f func(ctx context.Context)) {
	b.mu.Lock()
	tracked := !b.closed
	if tracked {
		b.wg.Add(1)
	}
	b.mu.Unlock()
	go func() {
		if tracked {
			defer b.wg.Done()
		}
		f(b.ctx)
	}()
}

// close cancels b's context and waits for the work it runs.
func (b *background) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
}

// Register adds the API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	h := func(pattern string, f func(w http.ResponseWriter, r *http.Request) error) {
		mux.Handle(pattern, a.Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := f(w, r); err != nil {
				writeError(w, err)
			}
		})))
	}
	h("GET /admin/v1/status", a.status)
	h("POST /admin/v1/sinks/{sink}/pause", a.pause)
	h("POST /admin/v1/sinks/{sink}/resume", a.resume)
	h("GET /admin/v1/deliveries", a.deliveries)
	h("GET /admin/v1/dead-letters", a.deadLetters)
	h("POST /admin/v1/replays", a.replay)
	h("GET /admin/v1/replays/{sink}/{id}", a.replayProgress)
	a.registerData(mux, h)
}

// Guard checks Host, Origin and the bearer token before h runs.
func (a *API) Guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.checkSite(r); err != nil {
			writeError(w, err)
			return
		}
		if a.opts.Token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
			if !ok || subtle.ConstantTimeCompare(sum[:], a.token[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="hookbridge admin"`)
				writeError(w, statusErr(http.StatusUnauthorized, "missing or wrong admin token (Authorization: Bearer …; set HOOKBRIDGE_ADMIN_TOKEN or --token)"))
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// checkSite refuses a request whose Host the API does not answer to (DNS rebinding) or whose
// Origin is another site (a web page driving the API through a browser). The API and the
// dashboard's pages both start with it.
func (a *API) checkSite(r *http.Request) error {
	if !a.hostAllowed(r.Host) {
		return statusErr(http.StatusForbidden, "foreign Host %q refused", r.Host)
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		public := a.opts.PublicURL != nil && err == nil && origin(u) == origin(a.opts.PublicURL)
		if err != nil || u.Host != r.Host && !public {
			return statusErr(http.StatusForbidden, "cross-origin request from %q refused", o)
		}
	}
	return nil
}

// origin is u's scheme, host and port as a browser's Origin gives them: lower-case, the
// scheme's default port left out.
func origin(u *url.URL) string {
	scheme, port := strings.ToLower(u.Scheme), u.Port()
	if scheme == "https" && port == "443" || scheme == "http" && port == "80" {
		port = ""
	}
	host := strings.ToLower(u.Hostname())
	if port != "" {
		host = net.JoinHostPort(host, port)
	}
	return scheme + "://" + host
}

func (a *API) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if a.opts.PublicURL != nil && strings.EqualFold(a.opts.PublicURL.Hostname(), host) {
		return true
	}
	if host == "localhost" {
		return true
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return true
	}
	return !a.opts.Loopback && a.opts.PublicURL == nil
}

// httpError carries the status an error is answered with.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func statusErr(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	var he *httpError
	switch {
	case errors.As(err, &he):
		status = he.status
	case errors.Is(err, delivery.ErrNoSuchSink):
		status = http.StatusNotFound
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// StatusReport is the answer of GET /admin/v1/status.
type StatusReport struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
	// StoredSeq is the last committed event; StateSeq the last whose subscription state is
	// merged (sinks read up to it).
	StoredSeq int64                 `json:"stored_seq"`
	StateSeq  int64                 `json:"state_seq"`
	Sinks     []delivery.SinkStatus `json:"sinks"`
}

func (a *API) status(w http.ResponseWriter, r *http.Request) error {
	rep := StatusReport{Ready: true, StoredSeq: a.opts.Store.CommittedSeq(), StateSeq: a.opts.Store.StateSeq(), Sinks: []delivery.SinkStatus{}}
	if err := a.opts.Store.Ready(); err != nil {
		rep.Ready, rep.Reason = false, err.Error()
	}
	if a.opts.Engine != nil {
		sinks, err := a.opts.Engine.Status(r.Context())
		if err != nil {
			return err
		}
		rep.Sinks = sinks
	}
	return writeJSON(w, http.StatusOK, rep)
}

func (a *API) engine() (Engine, error) {
	if a.opts.Engine == nil {
		return nil, statusErr(http.StatusNotFound, "no sinks are configured")
	}
	return a.opts.Engine, nil
}

func (a *API) pause(w http.ResponseWriter, r *http.Request) error {
	e, err := a.engine()
	if err != nil {
		return err
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			return statusErr(http.StatusBadRequest, "body: %v", err)
		}
	}
	if err := e.Pause(r.Context(), r.PathValue("sink"), body.Reason); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]string{"sink": r.PathValue("sink"), "state": "paused"})
}

func (a *API) resume(w http.ResponseWriter, r *http.Request) error {
	e, err := a.engine()
	if err != nil {
		return err
	}
	if err := e.Resume(r.Context(), r.PathValue("sink")); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]string{"sink": r.PathValue("sink"), "state": "running"})
}

func parseTime(q url.Values, key string) (time.Time, error) {
	v := q.Get(key)
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, statusErr(http.StatusBadRequest, "%s=%q: use an RFC 3339 time or a duration ago such as 2h", key, v)
}

func parseLimit(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, statusErr(http.StatusBadRequest, "limit=%q: use 1 to 1000", v)
	}
	return n, nil
}

func (a *API) deliveries(w http.ResponseWriter, r *http.Request) error {
	e, err := a.engine()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := delivery.HistoryFilter{Sink: q.Get("sink"), Outcome: q.Get("status"), EventID: q.Get("event_id")}
	if f.Since, err = parseTime(q, "since"); err != nil {
		return err
	}
	if f.Until, err = parseTime(q, "until"); err != nil {
		return err
	}
	if f.Limit, err = parseLimit(q); err != nil {
		return err
	}
	if c := q.Get("after"); c != "" {
		if f.After, err = strconv.ParseInt(c, 10, 64); err != nil {
			return statusErr(http.StatusBadRequest, "after=%q is not a cursor from a previous page", c)
		}
	}
	page, err := e.History(r.Context(), f)
	if err != nil {
		return err
	}
	if page.Items == nil {
		page.Items = []delivery.Attempt{}
	}
	return writeJSON(w, http.StatusOK, page)
}

func (a *API) deadLetters(w http.ResponseWriter, r *http.Request) error {
	e, err := a.engine()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := delivery.DeadLetterFilter{Sink: q.Get("sink"), All: q.Get("all") == "true", After: q.Get("after")}
	if f.Limit, err = parseLimit(q); err != nil {
		return err
	}
	page, err := e.DeadLetters(r.Context(), f)
	if err != nil {
		return err
	}
	if page.Items == nil {
		page.Items = []delivery.DeadLetter{}
	}
	return writeJSON(w, http.StatusOK, page)
}

// ReplayRequest is the body of POST /admin/v1/replays.
type ReplayRequest struct {
	Sink        string    `json:"sink"`
	EventID     string    `json:"event_id,omitempty"`
	Since       time.Time `json:"since,omitzero"`
	Until       time.Time `json:"until,omitzero"`
	DeadLetters bool      `json:"dead_letters,omitempty"`
	// Wait streams progress as JSON lines until the replay is done.
	Wait bool `json:"wait,omitempty"`
}

func (a *API) replay(w http.ResponseWriter, r *http.Request) error {
	e, err := a.engine()
	if err != nil {
		return err
	}
	var req ReplayRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return statusErr(http.StatusBadRequest, "body: %v", err)
	}
	sel := delivery.Selection{EventID: req.EventID, Since: req.Since, Until: req.Until, DeadLetters: req.DeadLetters}
	if err := sel.Validate(); err != nil || req.Sink == "" {
		return statusErr(http.StatusBadRequest, "name the sink and one of event_id, since (with optional until) or dead_letters; until must be after since")
	}
	p, err := e.Replay(r.Context(), req.Sink, sel)
	if err != nil {
		if errors.Is(err, delivery.ErrNoSuchSink) {
			return err
		}
		return statusErr(http.StatusUnprocessableEntity, "%v", err)
	}
	if !req.Wait {
		return writeJSON(w, http.StatusAccepted, p)
	}
	// Stream progress as JSON lines; the replay goes on if the client leaves.
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	for {
		enc.Encode(p)
		if flusher != nil {
			flusher.Flush()
		}
		if p.Done >= p.Total {
			return nil
		}
		select {
		case <-r.Context().Done():
			return nil
		case <-time.After(a.opts.ProgressEvery):
		}
		if p, err = e.ReplayProgress(r.Context(), req.Sink, p.ID); err != nil {
			enc.Encode(map[string]string{"error": err.Error()})
			return nil
		}
	}
}

func (a *API) replayProgress(w http.ResponseWriter, r *http.Request) error {
	e, err := a.engine()
	if err != nil {
		return err
	}
	p, err := e.ReplayProgress(r.Context(), r.PathValue("sink"), r.PathValue("id"))
	if err != nil {
		return statusErr(http.StatusNotFound, "%v", err)
	}
	return writeJSON(w, http.StatusOK, p)
}
