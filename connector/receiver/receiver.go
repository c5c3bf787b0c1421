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
	"strings"
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
	// Error is the answer's detail: the store's short reason, not the error wrapped around it,
	// which may name files.
	Error() string
	RetryAfter() time.Duration
}

// rule names why the receiver refused a request: the "rule" of its JSON answer and, for a
// body it keeps, the reason in the rejected table. The decoder's rules (schemas.Rule) come
// beside these; the README's tables name every one with its status (TestREADMENamesEveryRule).
type rule string

const (
	ruleNotFound            rule = "not_found"            // an unclean path, or a token where the source takes none
	ruleUnknownSource       rule = "unknown_source"       // no source by that name
	ruleUnauthorized        rule = "unauthorized"         // missing or wrong credentials; nothing is kept
	ruleUnreadableBody      rule = "unreadable_body"      // the body could not be read, or does not inflate
	ruleTooLarge            rule = "too_large"            // over the source's max_body
	ruleUnsupportedEncoding rule = "unsupported_encoding" // a Content-Encoding other than gzip, and the body is not readable without it
	ruleUnavailable         rule = "unavailable"          // the store cannot take writes now; a retry can succeed
	ruleStoreFailed         rule = "store_failed"         // the store failed otherwise
)

// status is the HTTP status a rule is answered with; the decoder's rules get 400.
func (r rule) status() int {
	switch r {
	case ruleNotFound, ruleUnknownSource:
		return http.StatusNotFound
	case ruleUnauthorized:
		return http.StatusUnauthorized
	case ruleTooLarge:
		return http.StatusRequestEntityTooLarge
	case ruleUnsupportedEncoding:
		return http.StatusUnsupportedMediaType
	case ruleUnavailable:
		return http.StatusServiceUnavailable
	case ruleStoreFailed:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
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
			writeError(w, ruleNotFound, "no such path")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (rc *Receiver) serve(w http.ResponseWriter, r *http.Request) {
	received := rc.now()
	src, ok := rc.sources[r.PathValue("source")]
	if !ok {
		writeError(w, ruleUnknownSource, "no webhook source by that name")
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
		writeError(w, ruleNotFound, "this source takes no token in its path")
		return
	}

	gzipped, coding := contentCoding(r.Header)
	body, size, err := readBody(r, src.MaxBody, gzipped)
	if err != nil {
		var tooLarge *bodyTooLargeError
		isTooLarge := errors.As(err, &tooLarge)
		for _, a := range src.Auth {
			if a.NeedsBody() {
				// The signature cannot be checked on a cut or unreadable body: do not keep it.
				why := "body unreadable"
				if isTooLarge {
					why = "body over the limit"
				}
				rc.unauthorized(w, r, src, m, fmt.Errorf("%w: %s, signature not checked", errUnauthorized, why))
				return
			}
		}
		if isTooLarge {
			detail := fmt.Sprintf("the body is %s; this source accepts at most %d bytes (sources[].max_body)", tooLarge.size(), src.MaxBody)
			if gzipped {
				detail = fmt.Sprintf("the body inflates to %s; this source accepts at most %d bytes (sources[].max_body)", tooLarge.size(), src.MaxBody)
			}
			rc.reject(w, r, src, m, received, ruleTooLarge, detail, "", body, size)
			return
		}
		rc.reject(w, r, src, m, received, ruleUnreadableBody, err.Error(), "", body, size)
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
		if coding != "" {
			// A body that decodes as it is was mislabelled and is taken; one that does not was
			// most likely encoded in a way hookbridge cannot undo.
			rc.reject(w, r, src, m, received, ruleUnsupportedEncoding,
				fmt.Sprintf("Content-Encoding %q is not understood (only gzip is), and the body as received is unreadable: %s", coding, de.Detail), "", body, size)
			return
		}
		rc.reject(w, r, src, m, received, rule(de.Rule), de.Detail, "", body, size)
		return
	}
	row := ev.Row(src.Name, received)
	seq, dup, err := rc.store.Ingest(r.Context(), &row)
	if err != nil {
		rc.storeFailed(w, r, src, m, err, "event", "event_id", row.EventID)
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

// storeFailed answers a request whose event or refused body the store could not keep: 503
// with Retry-After when a retry can succeed (full queue, database unavailable), nothing when
// the sender went away, 500 otherwise. what names what was lost, key and value identify it
// in the log.
func (rc *Receiver) storeFailed(w http.ResponseWriter, r *http.Request, src *Source, m *sourceMetrics, err error, what, key, value string) {
	var ra retryAfterer
	switch {
	case errors.As(err, &ra):
		m.unavailable.Inc()
		w.Header().Set("Retry-After", strconv.Itoa(int(max(ra.RetryAfter(), time.Second)/time.Second)))
		writeError(w, ruleUnavailable, ra.Error())
	case r.Context().Err() != nil:
		// The sender went away; it will retry and find the event stored or not.
		m.unavailable.Inc()
		w.WriteHeader(http.StatusServiceUnavailable)
	default:
		m.failed.Inc()
		rc.log.Error("receiver: store failed", "source", src.Name, "kept", what, key, value, "err", err)
		writeError(w, ruleStoreFailed, "the "+what+" could not be stored; retry")
	}
}

func (rc *Receiver) unauthorized(w http.ResponseWriter, r *http.Request, src *Source, m *sourceMetrics, err error) {
	m.unauthorized.Inc()
	rc.log.Warn("receiver: unauthorized request", "source", src.Name, "remote", r.RemoteAddr, "reason", err.Error())
	for _, a := range src.Auth {
		if _, ok := a.(*BasicAuth); ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="hookbridge"`)
		}
	}
	writeError(w, ruleUnauthorized, "missing or invalid credentials")
}

// reject keeps a refused body (size is its full size, body at most the source's limit of it)
// in the store and answers with a JSON error naming the rule.
func (rc *Receiver) reject(w http.ResponseWriter, r *http.Request, src *Source, m *sourceMetrics, received time.Time, rl rule, detail, eventID string, body []byte, size int64) {
	status := rl.status()
	rej := &schemas.Rejection{
		Source: src.Name, ReceivedAt: received, Status: status, Reason: string(rl), Detail: detail, EventID: eventID,
		ContentType: r.Header.Get("Content-Type"), UserAgent: r.Header.Get("User-Agent"), RemoteAddr: r.RemoteAddr,
		BodySize: size, Body: body,
	}
	if err := rc.store.Reject(r.Context(), rej); err != nil {
		// The body must be kept before the sender is told it is refused: a 4xx ends its
		// retries, a 5xx brings the same bytes back for another try.
		rc.storeFailed(w, r, src, m, err, "refused body", "rule", string(rl))
		return
	}
	m.rejected(string(rl)).Inc()
	rc.log.Info("receiver: rejected body", "source", src.Name, "status", status, "rule", rl, "detail", detail, "bytes", size)
	if rl == ruleUnsupportedEncoding {
		// RFC 9110 15.5.16: a 415 for a content coding says which codings would be accepted.
		w.Header().Set("Accept-Encoding", "gzip")
	}
	writeError(w, rl, detail)
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

// maxCompressed bounds the bytes read of a gzip body, whatever they inflate to.
const maxCompressed = 64 << 20

// contentCoding reads the Content-Encoding header (codings are case-insensitive; identity is
// no coding). gzipped reports a single gzip (or x-gzip) coding; any other coding, or a chain
// of several, is returned in other, as hookbridge cannot undo it.
func contentCoding(h http.Header) (gzipped bool, other string) {
	var codings []string
	for _, v := range h.Values("Content-Encoding") {
		for _, c := range strings.Split(v, ",") {
			if c = strings.ToLower(strings.TrimSpace(c)); c != "" && c != "identity" {
				codings = append(codings, c)
			}
		}
	}
	switch {
	case len(codings) == 0:
		return false, ""
	case len(codings) == 1 && (codings[0] == "gzip" || codings[0] == "x-gzip"):
		return true, ""
	}
	return false, strings.Join(codings, ", ")
}

// readBody reads at most limit bytes of r's body, inflated when gzipped. A larger body
// returns its first limit bytes, the size known so far, and a *bodyTooLargeError. A body that
// cannot be read, or does not inflate, returns the bytes as they arrived (the first limit of
// them), how many arrived, and an error saying what failed.
func readBody(r *http.Request, limit int64, gzipped bool) ([]byte, int64, error) {
	if !gzipped {
		body, n, err := readLimited(r.Body, limit, r.ContentLength)
		var tooLarge *bodyTooLargeError
		if err != nil && !errors.As(err, &tooLarge) {
			return body, n, fmt.Errorf("reading the body failed after %d bytes: %v", n, err)
		}
		return body, n, err
	}
	raw := &arrival{r: io.LimitReader(r.Body, maxCompressed), limit: limit}
	zr, err := gzip.NewReader(raw)
	if err == nil {
		defer zr.Close()
		var body []byte
		var n int64
		body, n, err = readLimited(zr, limit, -1)
		var tooLarge *bodyTooLargeError
		if err == nil || errors.As(err, &tooLarge) {
			return body, n, err
		}
	}
	if raw.err != nil {
		return raw.head, raw.n, fmt.Errorf("reading the body failed after %d bytes: %v", raw.n, raw.err)
	}
	// The rest of the body is read too, so that its size is the size that arrived.
	io.Copy(io.Discard, raw)
	return raw.head, raw.n, fmt.Errorf("Content-Encoding is gzip, but the body does not inflate (%v); it is kept as received", err)
}

// readLimited reads at most limit bytes of src. declared is the body's Content-Length when
// src is the body as sent (-1 otherwise), to size the buffer and to report the size of a body
// over the limit.
func readLimited(src io.Reader, limit, declared int64) ([]byte, int64, error) {
	capHint := limit + 1
	if declared > 0 && declared <= limit {
		capHint = declared + 1
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
			known := declared > limit
			size := n
			if known {
				size = declared
			}
			return buf[:limit], size, &bodyTooLargeError{n: size, known: known}
		}
		if err == io.EOF {
			return buf, n, nil
		}
		if err != nil {
			return buf, n, err
		}
	}
}

// arrival passes a body through as it is read, keeping its first limit bytes and counting
// all of them, so that a body that cannot be decoded can be kept as it arrived.
type arrival struct {
	r     io.Reader
	limit int64
	head  []byte
	n     int64
	err   error // a read error other than io.EOF: the connection failed, not the coding
}

func (a *arrival) Read(p []byte) (int, error) {
	k, err := a.r.Read(p)
	if keep := min(int64(k), a.limit-int64(len(a.head))); keep > 0 {
		a.head = append(a.head, p[:keep]...)
	}
	a.n += int64(k)
	if err != nil && err != io.EOF {
		a.err = err
	}
	return k, err
}

// writeError answers rl's status with the JSON error body every refusal has.
func writeError(w http.ResponseWriter, rl rule, detail string) {
	writeJSON(w, rl.status(), `{"error":{"rule":`+strconv.Quote(string(rl))+`,"detail":`+strconv.Quote(detail)+`}}`)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	io.WriteString(w, body+"\n")
}
