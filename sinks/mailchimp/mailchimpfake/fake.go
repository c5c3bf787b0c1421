// Package mailchimpfake is a fake Mailchimp Marketing API for tests: the mailchimp sink's
// own tests and end-to-end tests that run hookbridge against it. It behaves as the
// documentation says (shared/spec/crm-apis.md):
//   - HTTP basic auth with the API key as password (401 "API Key Invalid" in the
//     application/problem+json shape otherwise);
//   - POST /3.0/lists/{list_id} (batch subscribe/update) takes at most 500 members (400 in
//     the problem shape above), answers 200 with errors[] for the members it refuses
//     (ERROR_GENERIC "looks fake or invalid" for bad addresses, ERROR_CONTACT_EXISTS for an
//     existing member when update_existing is false), and applies tags only to new members;
//   - POST /3.0/lists/{list_id}/members/{hash}/tags sets tags active or inactive (204);
//   - PATCH /3.0/lists/{list_id}/members/{hash} updates one member;
//   - GET /3.0/ping and GET /3.0/lists/{list_id}/merge-fields;
//   - an eleventh simultaneous connection is answered 429; Mailchimp sends no rate-limit
//     headers, so a 429 carries Retry-After only when RetryAfter is set;
//   - members are kept with status, merge fields and tags, so tests assert the audience's
//     final state.
//
// Failures can be injected on write requests (POST and PATCH, batch and per member): 500s
// (a share of them after the request was applied, as a gateway timeout would), 429s, 403s
// without a body (the high-volume throttle), per-member transient errors in a batch answer,
// and scripted answers for the next requests (Script).
package mailchimpfake

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultKey is the API key a new Server accepts; its suffix names the data centre us21.
const DefaultKey = "0123456789abcdef0123456789abcdef-us21"

// DefaultList is the audience id a new Server holds.
const DefaultList = "a1b2c3d4e5"

// MaxMembers is the most members one batch subscribe/update takes.
const MaxMembers = 500

// MaxConnections is Mailchimp's limit of simultaneous connections per user.
const MaxConnections = 10

// TransientCode is the error_code of the injected per-member transient errors. Mailchimp
// documents only ERROR_CONTACT_EXISTS and ERROR_GENERIC for batch members; this code stands
// in for a refusal worth another try, so the sink's retry path for such members runs.
const TransientCode = "ERROR_TRY_AGAIN"

// Answer is a scripted answer to the next write request (POST or PATCH) of its kind.
type Answer struct {
	// Kind is the request it answers: "batch" (POST /lists/{id}), "tags", "patch", or ""
	// for any write.
	Kind string
	// Status is the HTTP status answered.
	Status int
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Bodiless answers without a body (Mailchimp's 403 throttle); otherwise the body is a
	// problem document with Title and Detail.
	Bodiless      bool
	Title, Detail string
	// Applied applies the request before answering, as a gateway that timed out after the
	// work was done.
	Applied bool
}

// Member is one audience member.
type Member struct {
	Email  string
	Status string
	Merge  map[string]string
	Tags   map[string]bool // name -> active
}

// Server is the fake Mailchimp. Its exported fields are options and counters: set or read
// them through With once the server runs (New returns it running).
type Server struct {
	// URL is the server's base URL, to use as the sink's base_url.
	URL string
	srv *httptest.Server

	mu      sync.Mutex
	Key     string             // the API key it accepts (as the basic-auth password)
	List    string             // the audience id
	Fields  []string           // the audience's merge tags
	Delay   time.Duration      // service time of each request
	Script  []Answer           // answers for the next write requests, taken in order
	RNG     *rand.Rand         // nil: no random failures
	Members map[string]*Member // by subscriber hash

	FailRate     float64         // share of writes answered 500
	AppliedShare float64         // share of the injected 500s answered after the request was applied
	Rate429      float64         // share of writes answered 429
	Rate403      float64         // share of writes answered 403 without a body
	MemberErr    float64         // share of batch members refused with TransientCode
	RetryAfter   string          // Retry-After on 429s (injected ones and the eleventh connection); "" sends none
	Bad          map[string]bool // lower-cased addresses refused as "looks fake or invalid"

	Active     int            // requests in progress
	MaxActive  int            // most requests in progress at once
	Over       int            // requests refused for a connection beyond the tenth
	Requests   int            // every request, refused ones too
	Injected   int            // injected failures: 500s, 429s, 403s, member errors and scripted answers
	InjectedOn map[string]int // injected failures by kind: batch, tags, patch, member (member errors)
	Applied    int            // injected failures answered after the request was applied
	MaxBatch   int            // most members in one batch request
	Patches    int            // PATCH requests applied
	TagCalls   int            // tag requests applied
}

// New starts a fake Mailchimp holding an empty audience DefaultList with the merge fields
// FNAME, LNAME, ZIP and ADDRESS; t closes it.
func New(t testing.TB) *Server {
	f := &Server{Key: DefaultKey, List: DefaultList, Fields: []string{"FNAME", "LNAME", "ZIP", "ADDRESS"},
		RNG: rand.New(rand.NewPCG(3, 3)), Bad: map[string]bool{}, Members: map[string]*Member{}, InjectedOn: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	t.Cleanup(f.srv.Close)
	return f
}

// Hash is Mailchimp's subscriber hash: the MD5 of the lower-cased address.
func Hash(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(sum[:])
}

// Problem writes Mailchimp's error shape, application/problem+json.
func Problem(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": title, "status": status, "detail": detail, "instance": "7ee8a8a2-7c2a-4cf8-9d0b-3e6c2fbb1a51"})
}

func (f *Server) tooMany(w http.ResponseWriter, retryAfter string) {
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	Problem(w, http.StatusTooManyRequests, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections.")
}

// kind names a write request for Script: batch, tags or patch ("" for reads).
func (f *Server) kind(r *http.Request) string {
	path := strings.TrimPrefix(r.URL.Path, "/3.0")
	switch {
	case r.Method == http.MethodPost && path == "/lists/"+f.List:
		return "batch"
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/tags"):
		return "tags"
	case r.Method == http.MethodPatch:
		return "patch"
	case r.Method == http.MethodPost:
		return "post"
	}
	return ""
}

func (f *Server) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.Requests++
	f.Active++
	f.MaxActive = max(f.MaxActive, f.Active)
	tooMany := f.Active > MaxConnections
	delay, retryAfter, key := f.Delay, f.RetryAfter, f.Key
	if tooMany {
		f.Over++
	}
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.Active--; f.mu.Unlock() }()
	if tooMany {
		f.tooMany(w, retryAfter)
		return
	}
	time.Sleep(delay)
	if _, pw, ok := r.BasicAuth(); !ok || pw != key {
		Problem(w, http.StatusUnauthorized, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter.")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if kind := f.kind(r); kind != "" {
		for i, a := range f.Script {
			if a.Kind != "" && a.Kind != kind {
				continue
			}
			f.Script = append(f.Script[:i:i], f.Script[i+1:]...)
			f.Injected++
			f.InjectedOn[kind]++
			if a.Applied {
				f.Applied++
				f.handle(httptest.NewRecorder(), r)
			}
			if a.RetryAfter != "" {
				w.Header().Set("Retry-After", a.RetryAfter)
			}
			if a.Bodiless {
				w.WriteHeader(a.Status)
			} else {
				title := a.Title
				if title == "" {
					title = http.StatusText(a.Status)
				}
				Problem(w, a.Status, title, a.Detail)
			}
			return
		}
		if f.RNG != nil {
			x := f.RNG.Float64()
			if x < f.FailRate+f.Rate429+f.Rate403 {
				f.Injected++
				f.InjectedOn[kind]++
			}
			switch {
			case x < f.FailRate:
				if f.RNG.Float64() < f.AppliedShare {
					f.Applied++
					f.handle(httptest.NewRecorder(), r)
				}
				Problem(w, http.StatusInternalServerError, "Internal Server Error", "An unexpected internal error has occurred.")
				return
			case x < f.FailRate+f.Rate429:
				f.tooMany(w, f.RetryAfter)
				return
			case x < f.FailRate+f.Rate429+f.Rate403:
				w.WriteHeader(http.StatusForbidden)
				return
			}
		}
	}
	f.handle(w, r)
}

// handle answers an authenticated request (f.mu held).
func (f *Server) handle(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/3.0")
	members := "/lists/" + f.List + "/members/"
	switch {
	case r.Method == http.MethodGet && path == "/ping":
		json.NewEncoder(w).Encode(map[string]string{"health_status": "Everything's Chimpy!"})
	case r.Method == http.MethodGet && path == "/lists/"+f.List+"/merge-fields":
		var out []map[string]string
		for _, t := range f.Fields {
			out = append(out, map[string]string{"tag": t})
		}
		json.NewEncoder(w).Encode(map[string]any{"merge_fields": out})
	case r.Method == http.MethodPost && path == "/lists/"+f.List:
		f.batch(w, r)
	case r.Method == http.MethodPost && strings.HasPrefix(path, members) && strings.HasSuffix(path, "/tags"):
		m := f.Members[strings.TrimSuffix(strings.TrimPrefix(path, members), "/tags")]
		if m == nil {
			Problem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.")
			return
		}
		var body struct {
			Tags []struct{ Name, Status string } `json:"tags"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			Problem(w, http.StatusBadRequest, "Invalid Resource", "The resource submitted could not be validated.")
			return
		}
		for _, t := range body.Tags {
			m.Tags[t.Name] = t.Status == "active"
		}
		f.TagCalls++
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPatch && strings.HasPrefix(path, members):
		m := f.Members[strings.TrimPrefix(path, members)]
		if m == nil {
			Problem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.")
			return
		}
		var body struct {
			Status      string            `json:"status"`
			MergeFields map[string]string `json:"merge_fields"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			Problem(w, http.StatusBadRequest, "Invalid Resource", "The resource submitted could not be validated.")
			return
		}
		if body.Status != "" {
			m.Status = body.Status
		}
		for k, v := range body.MergeFields {
			m.Merge[k] = v
		}
		f.Patches++
		json.NewEncoder(w).Encode(map[string]any{"email_address": m.Email, "status": m.Status, "merge_fields": m.Merge})
	default:
		Problem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.")
	}
}

func (f *Server) batch(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Members []struct {
			EmailAddress string            `json:"email_address"`
			Status       string            `json:"status"`
			MergeFields  map[string]string `json:"merge_fields"`
			Tags         []string          `json:"tags"`
		} `json:"members"`
		UpdateExisting bool `json:"update_existing"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		Problem(w, http.StatusBadRequest, "Invalid Resource", "The resource submitted could not be validated.")
		return
	}
	f.MaxBatch = max(f.MaxBatch, len(body.Members))
	if len(body.Members) > MaxMembers {
		Problem(w, http.StatusBadRequest, "Invalid Resource", fmt.Sprintf("You can only submit up to 500 members per request; you sent %d.", len(body.Members)))
		return
	}
	type emailOnly struct {
		EmailAddress string `json:"email_address"`
	}
	created, updated := []emailOnly{}, []emailOnly{}
	errs := []map[string]string{}
	for _, m := range body.Members {
		key := strings.ToLower(m.EmailAddress)
		switch {
		case !strings.Contains(key, "@") || f.Bad[key]:
			errs = append(errs, map[string]string{"email_address": m.EmailAddress, "error": m.EmailAddress + " looks fake or invalid, please enter a real email address.", "error_code": "ERROR_GENERIC"})
			continue
		case m.Status != "subscribed" && m.Status != "unsubscribed" && m.Status != "pending" && m.Status != "transactional" && m.Status != "cleaned":
			errs = append(errs, map[string]string{"email_address": m.EmailAddress, "error": "Invalid status", "error_code": "ERROR_GENERIC"})
			continue
		case f.RNG != nil && f.RNG.Float64() < f.MemberErr:
			f.Injected++
			f.InjectedOn["member"]++
			errs = append(errs, map[string]string{"email_address": m.EmailAddress, "error": "Please try again later.", "error_code": TransientCode})
			continue
		}
		hash := Hash(key)
		mem := f.Members[hash]
		if mem != nil && !body.UpdateExisting {
			errs = append(errs, map[string]string{"email_address": m.EmailAddress, "error": m.EmailAddress + " is already a list member.", "error_code": "ERROR_CONTACT_EXISTS"})
			continue
		}
		if mem == nil {
			mem = &Member{Email: m.EmailAddress, Merge: map[string]string{}, Tags: map[string]bool{}}
			f.Members[hash] = mem
			for _, t := range m.Tags { // tags in a batch apply to new members
				mem.Tags[t] = true
			}
			created = append(created, emailOnly{m.EmailAddress})
		} else {
			updated = append(updated, emailOnly{m.EmailAddress})
		}
		mem.Status = m.Status
		for k, v := range m.MergeFields {
			mem.Merge[k] = v
		}
	}
	json.NewEncoder(w).Encode(map[string]any{"new_members": created, "updated_members": updated, "errors": errs,
		"total_created": len(created), "total_updated": len(updated), "error_count": len(errs)})
}

// ActiveTags returns a member's active tags, sorted.
func (m *Member) ActiveTags() []string {
	var tags []string
	for t, on := range m.Tags {
		if on {
			tags = append(tags, t)
		}
	}
	sort.Strings(tags)
	return tags
}

// State renders the audience for comparisons: lower-cased email -> "status merge tags".
func (f *Server) State() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for _, m := range f.Members {
		out[strings.ToLower(m.Email)] = fmt.Sprintf("%s %v %v", m.Status, m.Merge, m.ActiveTags())
	}
	return out
}

// Member returns a copy of the member with that address, or nil.
func (f *Server) Member(email string) *Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.Members[Hash(email)]
	if m == nil {
		return nil
	}
	c := &Member{Email: m.Email, Status: m.Status, Merge: map[string]string{}, Tags: map[string]bool{}}
	for k, v := range m.Merge {
		c.Merge[k] = v
	}
	for k, v := range m.Tags {
		c.Tags[k] = v
	}
	return c
}

// With runs fn under the fake's lock, to set options or read counters.
func (f *Server) With(fn func(f *Server)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}
