// Package receiver is hookbridge's HTTP intake: POST /webhooks/{source}. It authenticates,
// limits, decodes, hands each event to the store and answers only once the store has
// committed it. It never redirects, accepts any Content-Type, and keeps every refused body.
package receiver

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookbridge/hookbridge/schemas"
)

// Store is what the receiver needs of the store.
type Store interface {
	// Ingest returns once row is committed; dup reports an eventId stored before.
	Ingest(ctx context.Context, row *schemas.Row) (seq int64, dup bool, err error)
	// Reject keeps a refused body.
	Reject(ctx context.Context, rej *schemas.Rejection) error
}

// retryAfterer is implemented by store errors that a later retry can overcome (full queue,
// database unavailable); the receiver answers them with 503 and Retry-After.
type retryAfterer interface {
	RetryAfter() time.Duration
}

// Source is one configured webhook source.
type Source struct {
	// Name is the {source} of /webhooks/{source}.
	Name string
	// Decoder decodes this source's bodies.
	Decoder *schemas.Decoder
	// MaxBody is the largest body accepted, after decompression; larger ones get 413.
	MaxBody int64
	// Auth lists the checks a request must all pass; empty means no authentication.
	Auth []Authenticator
}

// Options configure a Receiver.
type Options struct {
	Sources    []Source
	Store      Store
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Receiver serves the webhook routes.
type Receiver struct {
	sources map[string]*Source
	store   Store
	log     *slog.Logger
	now     func() time.Time
	m       *metrics
}

// New returns a Receiver for opts.
func New(opts Options) (*Receiver, error) {
	r := &Receiver{sources: map[string]*Source{}, store: opts.Store, log: opts.Logger, now: opts.Now}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.now == nil {
		r.now = time.Now
	}
	for i := range opts.Sources {
		s := opts.Sources[i]
		if s.Decoder == nil || s.MaxBody <= 0 {
			return nil, fmt.Errorf("receiver: source %q needs a decoder and a body limit", s.Name)
		}
		r.sources[s.Name] = &s
	}
	r.m = newMetrics(opts.Registerer)
	return r, nil
}

// Register adds the webhook routes to mux.
func (rc *Receiver) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /webhooks/{source}", rc.serve)
	mux.HandleFunc("POST /webhooks/{source}/{token}", rc.serve)
}

// NoRedirect wraps h so that requests for unclean paths ("//", "/./", trailing dots) get 404
// instead of the redirect http.ServeMux would send: Rokt counts every 3xx as a failure.
func NoRedirect(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		clean := path.Clean(p)
		if len(p) > 1 && p[len(p)-1] == '/' && clean != "/" {
			clean += "/"
		}
		if p == "" || p[0] != '/' || clean != p {
			writeJSON(w, http.StatusNotFound, `{"error":{"rule":"not_found","detail":"no such path"}}`)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (rc *Receiver) serve(w http.ResponseWriter, r *http.Request) {
	received := rc.now()
	src, ok := rc.sources[r.PathValue("source")]
	if !ok {
		writeJSON(w, http.StatusNotFound, `{"error":{"rule":"unknown_source","detail":"no webhook source by that name"}}`)
		return
	}
	m := rc.m.forSource(src.Name)
	m.received.Inc()
	defer func() { m.seconds.Observe(time.Since(received).Seconds()) }()

	pathToken := r.PathValue("token")
	for _, a := range src.Auth {
		if !a.NeedsBody() {
			if err := a.Authenticate(r, pathToken, nil); err != nil {
				rc.unauthorized(w, r, src, m, err)
				return
			}
		}
	}
	if pathToken != "" && len(src.Auth) == 0 {
		writeJSON(w, http.StatusNotFound, `{"error":{"rule":"not_found","detail":"this source takes no token in its path"}}`)
		return
	}

	body, size, err := readBody(r, src.MaxBody)
	if err != nil {
		var tooLarge *bodyTooLargeError
		if errors.As(err, &tooLarge) {
			for _, a := range src.Auth {
				if a.NeedsBody() {
					// The signature cannot be checked on a cut body: do not keep it.
					rc.unauthorized(w, r, src, m, fmt.Errorf("%w: body over the limit, signature not checked", errUnauthorized))
					return
				}
			}
			rc.reject(w, r, src, m, received, http.StatusRequestEntityTooLarge, "too_large",
				fmt.Sprintf("the body is %s; this source accepts at most %d bytes (sources[].max_body)", tooLarge.size(), src.MaxBody), "", body, size)
			return
		}
		rc.reject(w, r, src, m, received, http.StatusBadRequest, "unreadable_body", err.Error(), "", body, size)
		return
	}
	for _, a := range src.Auth {
		if a.NeedsBody() {
			if err := a.Authenticate(r, pathToken, body); err != nil {
				rc.unauthorized(w, r, src, m, err)
				return
			}
		}
	}

	ev, err := src.Decoder.Decode(body)
	if err != nil {
		var de *schemas.DecodeError
		if !errors.As(err, &de) {
			de = &schemas.DecodeError{Rule: "not_json", Detail: err.Error()}
		}
		rc.reject(w, r, src, m, received, http.StatusBadRequest, string(de.Rule), de.Detail, "", body, size)
		return
	}
	row := ev.Row(src.Name, received)
	seq, dup, err := rc.store.Ingest(r.Context(), &row)
	if err != nil {
		var ra retryAfterer
		switch {
		case errors.As(err, &ra):
			m.unavailable.Inc()
			w.Header().Set("Retry-After", strconv.Itoa(int(max(ra.RetryAfter(), time.Second)/time.Second)))
			writeJSON(w, http.StatusServiceUnavailable, `{"error":{"rule":"unavailable","detail":`+strconv.Quote(err.Error())+`}}`)
		case r.Context().Err() != nil:
			// The sender went away; it will retry and find the event stored or not.
			m.unavailable.Inc()
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			m.failed.Inc()
			rc.log.Error("receiver: store failed", "source", src.Name, "event_id", row.EventID, "err", err)
			writeJSON(w, http.StatusInternalServerError, `{"error":{"rule":"store_failed","detail":"the event could not be stored; retry"}}`)
		}
		return
	}
	status := "accepted"
	if dup {
		status = "duplicate"
		m.duplicate.Inc()
	} else {
		m.accepted(row.EventType).Inc()
	}
	writeJSON(w, http.StatusOK, `{"status":"`+status+`","event_id":`+strconv.Quote(row.EventID)+`,"seq":`+strconv.FormatInt(seq, 10)+`}`)
}

func (rc *Receiver) unauthorized(w http.ResponseWriter, r *http.Request, src *Source, m *sourceMetrics, err error) {
	m.unauthorized.Inc()
	rc.log.Warn("receiver: unauthorized request", "source", src.Name, "remote", r.RemoteAddr, "reason", err.Error())
	for _, a := range src.Auth {
		if _, ok := a.(*BasicAuth); ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="hookbridge"`)
		}
	}
	writeJSON(w, http.StatusUnauthorized, `{"error":{"rule":"unauthorized","detail":"missing or invalid credentials"}}`)
}

// reject keeps a refused body in the store and answers status with a JSON error naming the
// rule.
func (rc *Receiver) reject(w http.ResponseWriter, r *http.Request, src *Source, m *sourceMetrics, received time.Time, status int, rule, detail, eventID string, body []byte, size int64) {
	m.rejected(rule).Inc()
	rej := &schemas.Rejection{
		Source: src.Name, ReceivedAt: received, Status: status, Reason: rule, Detail: detail, EventID: eventID,
		ContentType: r.Header.Get("Content-Type"), UserAgent: r.Header.Get("User-Agent"), RemoteAddr: r.RemoteAddr,
		BodySize: size, Body: body,
	}
	if err := rc.store.Reject(r.Context(), rej); err != nil {
		rc.log.Error("receiver: could not keep a rejected body", "source", src.Name, "rule", rule, "err", err)
	}
	rc.log.Info("receiver: rejected body", "source", src.Name, "status", status, "rule", rule, "detail", detail, "bytes", size)
	writeJSON(w, status, `{"error":{"rule":`+strconv.Quote(rule)+`,"detail":`+strconv.Quote(detail)+`}}`)
}

type bodyTooLargeError struct {
	n     int64
	known bool // n is the declared Content-Length, not a lower bound
}

func (e *bodyTooLargeError) Error() string { return "body too large" }

func (e *bodyTooLargeError) size() string {
	if e.known {
		return fmt.Sprintf("%d bytes", e.n)
	}
	return fmt.Sprintf("over %d bytes", e.n-1)
}

// readBody reads at most limit bytes (after gzip decompression, when the request says
// Content-Encoding: gzip). A larger body returns its first limit bytes, the size known so
// far, and a *bodyTooLargeError.
func readBody(r *http.Request, limit int64) ([]byte, int64, error) {
	var src io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(io.LimitReader(r.Body, 64<<20))
		if err != nil {
			return nil, 0, fmt.Errorf("Content-Encoding is gzip but the body is not: %v", err)
		}
		defer zr.Close()
		src = zr
	}
	capHint := limit + 1
	if r.ContentLength > 0 && r.ContentLength <= limit && r.Header.Get("Content-Encoding") == "" {
		capHint = r.ContentLength + 1
	}
	body := make([]byte, 0, min(capHint, 64<<10))
	buf := body
	n := int64(0)
	for {
		if int64(len(buf)) == int64(cap(buf)) {
			buf = append(buf, 0)[:len(buf)]
		}
		k, err := src.Read(buf[len(buf):min(cap(buf), int(limit+1))])
		buf = buf[:len(buf)+k]
		n += int64(k)
		if n > limit {
			declared := r.ContentLength > limit && r.Header.Get("Content-Encoding") == ""
			size := n
			if declared {
				size = r.ContentLength
			}
			return buf[:limit], size, &bodyTooLargeError{n: size, known: declared}
		}
		if err == io.EOF {
			return buf, n, nil
		}
		if err != nil {
			return buf, n, fmt.Errorf("reading the body failed: %v", err)
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	io.WriteString(w, body+"\n")
}
