package hubspot

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeHubSpot behaves as HubSpot's documentation says (../shared/spec/crm-apis.md): Bearer
// auth, at most 100 inputs per batch upsert, a rolling-window and a daily limit answered with
// 429 and the documented body, X-HubSpot-RateLimit-* headers, 207 multi-status for invalid
// emails, and contacts kept by email so tests can assert the final CRM state. It can inject
// transient 5xx answers and 429s.
type fakeHubSpot struct {
	t          testing.TB
	srv        *httptest.Server
	token      string
	max        int
	window     time.Duration
	daily      int
	properties []string

	mu        sync.Mutex
	rng       *rand.Rand
	failRate  float64 // share of upserts answered 500
	rate429   float64 // share of upserts answered 429 (as if another app used the window)
	bad       map[string]bool
	contacts  map[string]map[string]string // lower-cased email -> properties
	times     []time.Time
	dailyUsed int
	requests  int
	got429    int
	injected  int
	deletes   int
	maxInputs int
}

func newFakeHubSpot(t testing.TB, max int, window time.Duration) *fakeHubSpot {
	f := &fakeHubSpot{t: t, token: "pat-na1-11111111-2222-3333-4444-555555555555", max: max, window: window, daily: 250000,
		properties: []string{"email", "firstname", "lastname", "zip", "rokt_calendar", "rokt_subscription_status", "rokt_calendars"},
		rng:        rand.New(rand.NewPCG(7, 7)), bad: map[string]bool{}, contacts: map[string]map[string]string{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func hsError(w http.ResponseWriter, status int, body map[string]any) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

func (f *fakeHubSpot) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		hsError(w, 401, map[string]any{"status": "error", "message": "Authentication credentials not found.", "category": "INVALID_AUTHENTICATION", "correlationId": "c-401"})
		return
	}
	switch {
	case r.Method == http.MethodDelete:
		f.deletes++
		w.WriteHeader(204)
	case r.Method == http.MethodGet && r.URL.Path == "/crm/v3/properties/contacts":
		var res []map[string]string
		for _, p := range f.properties {
			res = append(res, map[string]string{"name": p, "type": "string"})
		}
		json.NewEncoder(w).Encode(map[string]any{"results": res})
	case r.Method == http.MethodPost && r.URL.Path == "/crm/v3/objects/contacts/batch/upsert":
		f.upsert(w, r)
	default:
		hsError(w, 404, map[string]any{"status": "error", "message": "not found", "category": "OBJECT_NOT_FOUND"})
	}
}

func (f *fakeHubSpot) limitHeaders(w http.ResponseWriter) {
	w.Header().Set("X-HubSpot-RateLimit-Max", strconv.Itoa(f.max))
	w.Header().Set("X-HubSpot-RateLimit-Remaining", strconv.Itoa(max(f.max-len(f.times), 0)))
	w.Header().Set("X-HubSpot-RateLimit-Interval-Milliseconds", strconv.Itoa(int(f.window/time.Millisecond)))
	w.Header().Set("X-HubSpot-RateLimit-Daily", strconv.Itoa(f.daily))
	w.Header().Set("X-HubSpot-RateLimit-Daily-Remaining", strconv.Itoa(max(f.daily-f.dailyUsed, 0)))
}

func (f *fakeHubSpot) upsert(w http.ResponseWriter, r *http.Request) {
	f.requests++
	now := time.Now()
	for len(f.times) > 0 && now.Sub(f.times[0]) >= f.window {
		f.times = f.times[1:]
	}
	if len(f.times) >= f.max || f.rng.Float64() < f.rate429 {
		if len(f.times) >= f.max {
			f.got429++
		} else {
			f.injected++
		}
		f.limitHeaders(w)
		w.Header().Set("Retry-After", "1")
		hsError(w, 429, map[string]any{"status": "error", "message": "You have reached your ten_secondly_rolling limit.", "errorType": "RATE_LIMIT",
			"correlationId": "c-429", "policyName": "TEN_SECONDLY_ROLLING"})
		return
	}
	if f.dailyUsed >= f.daily {
		f.got429++
		hsError(w, 429, map[string]any{"status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT", "policyName": "DAILY"})
		return
	}
	f.times = append(f.times, now)
	f.dailyUsed++
	f.limitHeaders(w)
	if f.rng.Float64() < f.failRate {
		f.injected++
		hsError(w, 502, map[string]any{"status": "error", "message": "Bad gateway", "category": "INTERNAL_ERROR"})
		return
	}
	var body struct {
		Inputs []struct {
			IDProperty string            `json:"idProperty"`
			ID         string            `json:"id"`
			Properties map[string]string `json:"properties"`
		} `json:"inputs"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		hsError(w, 400, map[string]any{"status": "error", "message": "Invalid input JSON", "category": "VALIDATION_ERROR"})
		return
	}
	f.maxInputs = max(f.maxInputs, len(body.Inputs))
	if len(body.Inputs) > MaxInputs {
		hsError(w, 400, map[string]any{"status": "error", "message": fmt.Sprintf("Batch input limit exceeded: %d > %d", len(body.Inputs), MaxInputs), "category": "VALIDATION_ERROR"})
		return
	}
	known := map[string]bool{}
	for _, p := range f.properties {
		known[p] = true
	}
	var results, errs []map[string]any
	for _, in := range body.Inputs {
		for name := range in.Properties {
			if !known[name] {
				hsError(w, 400, map[string]any{"status": "error", "message": "Property \"" + name + "\" does not exist", "category": "VALIDATION_ERROR",
					"context": map[string][]string{"propertyName": {name}}})
				return
			}
		}
	}
	for _, in := range body.Inputs {
		key := strings.ToLower(in.ID)
		if in.IDProperty != "email" || !strings.Contains(key, "@") || f.bad[key] {
			errs = append(errs, map[string]any{"status": "error", "category": "VALIDATION_ERROR",
				"message": fmt.Sprintf(`Property values were not valid: [{"isValid":false,"message":"Email address %s is invalid","error":"INVALID_EMAIL","name":"email"}]`, in.ID),
				"context": map[string][]string{"ids": {in.ID}}})
			continue
		}
		c := f.contacts[key]
		if c == nil {
			c = map[string]string{}
			f.contacts[key] = c
		}
		for k, v := range in.Properties {
			c[k] = v
		}
		results = append(results, map[string]any{"id": strconv.Itoa(len(f.contacts)), "properties": c, "new": len(c) == len(in.Properties)})
	}
	status := 200
	if len(errs) > 0 {
		status = 207
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"status": "COMPLETE", "results": results, "errors": errs, "numErrors": len(errs),
		"startedAt": now.Format(time.RFC3339), "completedAt": time.Now().Format(time.RFC3339)})
}

// snapshot copies the contacts.
func (f *fakeHubSpot) snapshot() map[string]map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]map[string]string{}
	for k, v := range f.contacts {
		c := map[string]string{}
		for a, b := range v {
			c[a] = b
		}
		out[k] = c
	}
	return out
}
