package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hookbridge/hookbridge/connector/delivery"
)

// The dashboard: server-rendered pages under / on the admin API's listener, with the same Host
// and Origin checks. A browser signs in once with the admin token and gets an HttpOnly,
// SameSite=Strict session cookie; every form that changes something carries the session's
// CSRF token. Everything it serves is embedded in the binary, because the server may run
// without internet.

//go:embed web
var webFiles embed.FS

const (
	sessionCookie = "hookbridge_session"
	sessionTTL    = 12 * time.Hour
	pageRows      = 50
	// pageTimeout bounds every query a page makes.
	pageTimeout = 10 * time.Second
)

type session struct {
	csrf    string
	expires time.Time
}

// sessions is the dashboard's in-memory session table.
type sessions struct {
	mu sync.Mutex
	m  map[string]session
}

func (s *sessions) create() (id string, sess session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for k, v := range s.m {
		if now.After(v.expires) {
			delete(s.m, k)
		}
	}
	id, sess = randomToken(), session{csrf: randomToken(), expires: now.Add(sessionTTL)}
	s.m[id] = sess
	return id, sess
}

func (s *sessions) get(id string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[id]
	if !ok || time.Now().After(sess.expires) {
		delete(s.m, id)
		return session{}, false
	}
	return sess, true
}

func (s *sessions) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// dashboard holds the parsed pages and the sessions.
type dashboard struct {
	a        *API
	pages    map[string]*template.Template
	sessions *sessions
	charts   chartCache
	types    typeCounts
}

// typeCountsMaxAge is how long the overview's events-by-type breakdown is kept: counting it
// reads every event's type (~30 ms on a million events idle, several times that under
// ingest), while the rest of the page reads recent row groups only.
const typeCountsMaxAge = 10 * time.Second

// typeCounts keeps the overview's events-by-type breakdown. Requests arriving while it is
// recomputed wait for that one computation.
type typeCounts struct {
	mu     sync.Mutex
	at     time.Time
	counts []typeCount
}

// get returns the kept breakdown and its time while it is at most typeCountsMaxAge old, else
// a fresh one from compute.
func (tc *typeCounts) get(ctx context.Context, compute func(context.Context) ([]typeCount, error)) ([]typeCount, time.Time, error) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if !tc.at.IsZero() && time.Since(tc.at) <= typeCountsMaxAge {
		return tc.counts, tc.at, nil
	}
	at := time.Now()
	counts, err := compute(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	tc.counts, tc.at = counts, at
	return counts, at, nil
}

// page is what every template receives.
type page struct {
	Title       string
	Nav         string
	CSRF        string
	CanLogout   bool
	Flash       string
	StateSeq    int64
	Ready       bool
	ReadyReason string
	Sinks       []string
	Data        any
}

var funcs = template.FuncMap{
	"when": func(v any) string {
		var t time.Time
		switch x := v.(type) {
		case time.Time:
			t = x
		case *time.Time:
			if x == nil {
				return "-"
			}
			t = *x
		}
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"took": func(a, b time.Time) string {
		d := b.Sub(a)
		if d < time.Second {
			return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
		}
		return d.Round(time.Millisecond).String()
	},
	"code": func(c int) string {
		if c == 0 {
			return "-"
		}
		return strconv.Itoa(c)
	},
	"seconds": func(s float64) string { return (time.Duration(s) * time.Second).String() },
	"behind":  func(s delivery.SinkStatus) int64 { return max(s.StoredSeq-s.Cursor, 0) },
}

// RegisterDashboard adds the dashboard's pages to mux.
func (a *API) RegisterDashboard(mux *http.ServeMux) error {
	d := &dashboard{a: a, pages: map[string]*template.Template{}, sessions: &sessions{m: map[string]session{}}}
	d.charts.bg = &a.bg
	for _, name := range []string{"login", "overview", "events", "event", "sinks", "deadletters", "confirm", "rejected", "analytics"} {
		t, err := template.New(name).Funcs(funcs).ParseFS(webFiles, "web/layout.html", "web/"+name+".html")
		if err != nil {
			return fmt.Errorf("admin: dashboard template %s: %w", name, err)
		}
		d.pages[name] = t
	}
	static, _ := fs.Sub(webFiles, "web")
	mux.Handle("GET /static/style.css", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /login", d.loginPage)
	mux.HandleFunc("POST /login", d.login)
	mux.HandleFunc("POST /logout", d.guard(d.logout))
	mux.HandleFunc("GET /{$}", d.guard(d.overview))
	mux.HandleFunc("GET /events", d.guard(d.events))
	mux.HandleFunc("GET /events/{id}", d.guard(d.event))
	mux.HandleFunc("GET /sinks", d.guard(d.sinks))
	mux.HandleFunc("GET /sinks/{sink}", d.guard(d.sinks))
	mux.HandleFunc("GET /dead-letters", d.guard(d.deadLetters))
	mux.HandleFunc("POST /replay", d.guard(d.replay))
	mux.HandleFunc("GET /rejected", d.guard(d.rejected))
	mux.HandleFunc("GET /rejected/{id}", d.guard(d.rejected))
	mux.HandleFunc("GET /analytics", d.guard(d.analytics))
	mux.HandleFunc("GET /analytics/mailing-list.csv", d.guard(d.mailingListCSV))
	return nil
}

// guard checks Host and Origin, finds (or, without a configured token, creates) the session,
// and checks the CSRF token of state-changing requests.
func (d *dashboard) guard(h func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := d.a.checkSite(r); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		var sess session
		ok := false
		if c, err := r.Cookie(sessionCookie); err == nil {
			sess, ok = d.sessions.get(c.Value)
		}
		if !ok {
			if d.a.opts.Token != "" || r.Method != http.MethodGet {
				if r.Method == http.MethodGet {
					http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
					return
				}
				http.Error(w, "sign in first", http.StatusUnauthorized)
				return
			}
			// No token is configured (loopback only): a session is handed out, for CSRF.
			var id string
			id, sess = d.sessions.create()
			d.setSessionCookie(w, r, id)
		}
		if r.Method == http.MethodPost {
			got := r.PostFormValue("csrf")
			if subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) != 1 {
				http.Error(w, "missing or wrong CSRF token; reload the page", http.StatusForbidden)
				return
			}
		}
		h(w, r, sess)
	}
}

// setSessionCookie sets the session cookie, Secure when the browser reached the dashboard over
// TLS: directly, or through a proxy at an https PublicURL.
func (d *dashboard) setSessionCookie(w http.ResponseWriter, r *http.Request, id string) {
	secure := r.TLS != nil || d.a.opts.PublicURL != nil && d.a.opts.PublicURL.Scheme == "https"
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: secure, MaxAge: int(sessionTTL / time.Second)})
}

func (d *dashboard) render(w http.ResponseWriter, r *http.Request, sess session, name, title, nav string, data any) {
	// Sign out is offered to a signed-in browser only: the sign-in page renders without a
	// session (and so without a CSRF token to sign out with).
	p := page{Title: title, Nav: nav, CSRF: sess.csrf, CanLogout: d.a.opts.Token != "" && sess.csrf != "", Flash: r.URL.Query().Get("flash"), Ready: true, Data: data}
	if d.a.opts.Store != nil {
		p.StateSeq = d.a.opts.Store.StateSeq()
		if err := d.a.opts.Store.Ready(); err != nil {
			p.Ready, p.ReadyReason = false, err.Error()
		}
	}
	if d.a.opts.Engine != nil {
		if st, err := d.a.opts.Engine.Status(r.Context()); err == nil {
			for _, s := range st {
				p.Sinks = append(p.Sinks, s.Name)
			}
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:; script-src 'none'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin")
	if err := d.pages[name].ExecuteTemplate(w, "layout", p); err != nil {
		d.a.log.Error("admin: dashboard page", "page", name, "err", err)
	}
}

func (d *dashboard) fail(w http.ResponseWriter, err error) {
	d.a.log.Error("admin: dashboard", "err", err)
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

func (d *dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	if d.a.opts.Token == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	d.render(w, r, session{}, "login", "Sign in", "", nil)
}

func (d *dashboard) login(w http.ResponseWriter, r *http.Request) {
	if err := d.a.checkSite(r); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(r.PostFormValue("token"))))
	if d.a.opts.Token == "" || subtle.ConstantTimeCompare(got[:], d.a.token[:]) != 1 {
		w.WriteHeader(http.StatusUnauthorized)
		d.render(w, r, session{}, "login", "Sign in", "", "That is not the admin token.")
		return
	}
	id, _ := d.sessions.create()
	d.setSessionCookie(w, r, id)
	next := r.URL.Query().Get("next")
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		next = "/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (d *dashboard) logout(w http.ResponseWriter, r *http.Request, _ session) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		d.sessions.drop(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// query runs a dashboard query with bound arguments.
func (d *dashboard) query(ctx context.Context, q string, limit int, args ...any) ([][]any, error) {
	if d.a.opts.Data == nil {
		return nil, fmt.Errorf("admin: no data")
	}
	res, err := d.a.opts.Data.Query(ctx, q, limit, pageTimeout, args...)
	if err != nil {
		return nil, err
	}
	return res.Rows, nil
}

func (d *dashboard) replay(w http.ResponseWriter, r *http.Request, sess session) {
	sink := r.PostFormValue("sink")
	eventID := r.PostFormValue("event_id")
	dead := r.PostFormValue("dead_letters") == "1"
	if d.a.opts.Engine == nil || sink == "" || (eventID == "") == !dead {
		http.Error(w, "name a sink and an event or its dead letters", http.StatusBadRequest)
		return
	}
	back := "/dead-letters?sink=" + url.QueryEscape(sink)
	if eventID != "" && !dead {
		back = "/events/" + url.PathEscape(eventID)
	}
	if r.PostFormValue("confirm") != "yes" {
		what := "event " + eventID
		if dead {
			what = "every unresolved dead letter"
		}
		d.render(w, r, sess, "confirm", "Confirm replay", "dead", map[string]any{"Sink": sink, "EventID": eventID, "DeadLetters": dead, "What": what, "Back": back})
		return
	}
	p, err := d.a.opts.Engine.Replay(r.Context(), sink, delivery.Selection{EventID: eventID, DeadLetters: dead})
	if err != nil {
		http.Redirect(w, r, back+sep(back)+"flash="+url.QueryEscape("Replay refused: "+err.Error()), http.StatusSeeOther)
		return
	}
	msg := fmt.Sprintf("Replay %s queued: %d row(s) to %s. Outcomes appear below as they happen.", p.ID, p.Total, sink)
	http.Redirect(w, r, "/sinks/"+url.PathEscape(sink)+"?flash="+url.QueryEscape(msg), http.StatusSeeOther)
}

func sep(u string) string {
	if strings.Contains(u, "?") {
		return "&"
	}
	return "?"
}
