package mailchimp

import (
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

// fakeMailchimp behaves as the Marketing API's documentation says (../shared/spec/crm-apis.md):
// HTTP basic auth with the key as password, at most 500 members per batch with a
// problem+json error above it, 200 with errors[] for members it refuses (ERROR_CONTACT_EXISTS
// for an existing member when update_existing is false), 429 beyond 10 simultaneous
// connections, 403 without a body as the high-volume throttle, PATCH of one member, and
// members kept with status, merge fields and tags so tests can assert the audience's final
// state.
type fakeMailchimp struct {
	srv    *httptest.Server
	key    string
	list   string
	fields []string
	delay  time.Duration // service time of each request

	mu        sync.Mutex
	rng       *rand.Rand
	failRate  float64 // share answered 500
	rate429   float64 // share answered 429
	rate403   float64 // share answered 403 without a body
	bad       map[string]bool
	members   map[string]*fakeMember // by subscriber hash
	active    int
	maxActive int
	over      int // requests refused for a connection beyond the tenth
	requests  int
	injected  int
	maxBatch  int
	patches   int // PATCH requests on members
}

type fakeMember struct {
	Email  string
	Status string
	Merge  map[string]string
	Tags   map[string]bool // name -> active
}

func newFakeMailchimp(t testing.TB) *fakeMailchimp {
	f := &fakeMailchimp{key: "0123456789abcdef0123456789abcdef-us21", list: "a1b2c3d4e5", fields: []string{"FNAME", "LNAME", "ZIP", "ADDRESS"},
		rng: rand.New(rand.NewPCG(3, 3)), bad: map[string]bool{}, members: map[string]*fakeMember{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func problem(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": title, "status": status, "detail": detail, "instance": "i-1"})
}

func (f *fakeMailchimp) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	f.active++
	if f.active > f.maxActive {
		f.maxActive = f.active
	}
	tooMany := f.active > MaxConnections
	delay := f.delay
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.active--; f.mu.Unlock() }()
	if tooMany {
		f.mu.Lock()
		f.over++
		f.mu.Unlock()
		problem(w, 429, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections.")
		return
	}
	time.Sleep(delay)
	if _, pw, ok := r.BasicAuth(); !ok || pw != f.key {
		problem(w, 401, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter.")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, "/3.0")
	if r.Method == http.MethodPost && f.rng != nil {
		switch x := f.rng.Float64(); {
		case x < f.failRate:
			f.injected++
			problem(w, 500, "Internal Server Error", "An unexpected internal error has occurred.")
			return
		case x < f.failRate+f.rate429:
			f.injected++
			problem(w, 429, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections.")
			return
		case x < f.failRate+f.rate429+f.rate403:
			f.injected++
			w.WriteHeader(403)
			return
		}
	}
	switch {
	case r.Method == http.MethodGet && path == "/ping":
		json.NewEncoder(w).Encode(map[string]string{"health_status": "Everything's Chimpy!"})
	case r.Method == http.MethodGet && path == "/lists/"+f.list+"/merge-fields":
		var out []map[string]string
		for _, t := range f.fields {
			out = append(out, map[string]string{"tag": t})
		}
		json.NewEncoder(w).Encode(map[string]any{"merge_fields": out})
	case r.Method == http.MethodPost && path == "/lists/"+f.list:
		f.batch(w, r)
	case r.Method == http.MethodPost && strings.HasPrefix(path, "/lists/"+f.list+"/members/") && strings.HasSuffix(path, "/tags"):
		hash := strings.TrimSuffix(strings.TrimPrefix(path, "/lists/"+f.list+"/members/"), "/tags")
		m := f.members[hash]
		if m == nil {
			problem(w, 404, "Resource Not Found", "The requested resource could not be found.")
			return
		}
		var body struct {
			Tags []struct{ Name, Status string } `json:"tags"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		for _, t := range body.Tags {
			m.Tags[t.Name] = t.Status == "active"
		}
		w.WriteHeader(204)
	case r.Method == http.MethodPatch && strings.HasPrefix(path, "/lists/"+f.list+"/members/"):
		m := f.members[strings.TrimPrefix(path, "/lists/"+f.list+"/members/")]
		if m == nil {
			problem(w, 404, "Resource Not Found", "The requested resource could not be found.")
			return
		}
		var body struct {
			Status      string            `json:"status"`
			MergeFields map[string]string `json:"merge_fields"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		if body.Status != "" {
			m.Status = body.Status
		}
		for k, v := range body.MergeFields {
			m.Merge[k] = v
		}
		f.patches++
		json.NewEncoder(w).Encode(map[string]any{"email_address": m.Email, "status": m.Status, "merge_fields": m.Merge})
	case strings.HasPrefix(path, "/lists/"):
		problem(w, 404, "Resource Not Found", "The requested resource could not be found.")
	default:
		problem(w, 404, "Resource Not Found", "The requested resource could not be found.")
	}
}

func (f *fakeMailchimp) batch(w http.ResponseWriter, r *http.Request) {
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
		problem(w, 400, "Invalid Resource", "The resource submitted could not be validated.")
		return
	}
	f.maxBatch = max(f.maxBatch, len(body.Members))
	if len(body.Members) > MaxMembers {
		problem(w, 400, "Invalid Resource", fmt.Sprintf("You can only submit up to 500 members per request; you sent %d.", len(body.Members)))
		return
	}
	type emailOnly struct {
		EmailAddress string `json:"email_address"`
	}
	var created, updated []emailOnly
	var errs []map[string]string
	for _, m := range body.Members {
		key := strings.ToLower(m.EmailAddress)
		switch {
		case !strings.Contains(key, "@") || f.bad[key]:
			errs = append(errs, map[string]string{"email_address": m.EmailAddress, "error": m.EmailAddress + " looks fake or invalid, please enter a real email address.", "error_code": "ERROR_GENERIC"})
			continue
		case m.Status != "subscribed" && m.Status != "unsubscribed" && m.Status != "pending" && m.Status != "transactional" && m.Status != "cleaned":
			errs = append(errs, map[string]string{"email_address": m.EmailAddress, "error": "Invalid status", "error_code": "ERROR_GENERIC"})
			continue
		}
		hash := subscriberHash(key)
		mem := f.members[hash]
		if mem != nil && !body.UpdateExisting {
			errs = append(errs, map[string]string{"email_address": m.EmailAddress, "error": m.EmailAddress + " is already a list member.", "error_code": "ERROR_CONTACT_EXISTS"})
			continue
		}
		if mem == nil {
			mem = &fakeMember{Email: m.EmailAddress, Merge: map[string]string{}, Tags: map[string]bool{}}
			f.members[hash] = mem
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

// state renders the audience for comparisons: email status merge tags.
func (f *fakeMailchimp) state() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for _, m := range f.members {
		var tags []string
		for t, on := range m.Tags {
			if on {
				tags = append(tags, t)
			}
		}
		sort.Strings(tags)
		out[strings.ToLower(m.Email)] = fmt.Sprintf("%s %v %v", m.Status, m.Merge, tags)
	}
	return out
}

func (f *fakeMailchimp) member(email string) *fakeMember {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.members[subscriberHash(email)]
}
