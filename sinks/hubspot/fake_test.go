package hubspot

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeHubSpot is a HubSpot that behaves as its documentation says (shared/spec/crm-apis.md,
// HubSpot's error-handling page):
//   - every request needs the right Bearer token (401 with HubSpot's error JSON otherwise);
//   - every authenticated request counts against a rolling window (max per window) and a
//     daily limit; beyond them it answers 429 with the documented body (policyName
//     TEN_SECONDLY_ROLLING or DAILY), and every answer carries the X-HubSpot-RateLimit-*
//     headers;
//   - GET /crm/v3/properties/contacts lists the contact properties with type, fieldType and
//     options (403 MISSING_SCOPES without the schema scope);
//   - POST /crm/v3/objects/contacts/batch/upsert takes at most 100 inputs, upserts by the
//     unique email property, checks that every property exists and that each value suits its
//     type (dates at midnight UTC, options of enumerations, …), and refuses invalid emails
//     (INVALID_EMAIL). Inputs carrying objectWriteTraceId get a 207 multi-status answer that
//     names the refused ones. Otherwise the whole request fails with 400, naming the first
//     refused input in context.ids when nameBadInput is set;
//   - contacts are kept by email, so tests assert the final CRM state; deletes are counted.
//
// Failures can be injected: 5xx answers (half of them after the upsert was applied, as a
// gateway timeout would), 429s as if another app used the window (with or without
// Retry-After), per-input transient errors in 207s, and other clients' requests in the
// window.
type fakeHubSpot struct {
	srv   *httptest.Server
	token string

	mu             sync.Mutex
	max            int
	window         time.Duration
	daily          int
	retryAfter     string // Retry-After on 429s; "" sends none (HubSpot documents it only for workflows)
	multiStatus    bool
	nameBadInput   bool
	schemaReadable bool
	writeScope     bool
	props          map[string]*property

	rng        *rand.Rand
	fail5xx    float64         // share of requests answered 502, 503 or 504
	throttle   float64         // share of requests answered 429 as if another app had used the window
	inputErr   float64         // share of inputs refused with a transient error in a 207
	bad        map[string]bool // lower-cased emails refused as INVALID_EMAIL
	conflict   bool            // answer the next upsert 409, as a race between two writes of one contact does
	contacts   map[string]map[string]string
	ids        map[string]string
	inWindow   []time.Time // accepted requests (ours and others') in the rolling window
	accepted   []time.Time // every accepted request of the sink, in order
	dailyUsed  int
	requests   int // every authenticated request
	upserts    int // upsert requests accepted by the limits
	provoked   int // 429s the client provoked by exceeding a limit
	daily429   int
	injected   int // injected 429s and 5xx
	deletes    int
	maxInputs  int
	traceUsed  bool
	lastInputs int
}

const fakeToken = "pat-na1-0c1d2e3f-4a5b-6c7d-8e9f-a0b1c2d3e4f5"

func newFakeHubSpot(t testing.TB) *fakeHubSpot {
	f := &fakeHubSpot{token: fakeToken, max: 100, window: 10 * time.Second, daily: 250000, multiStatus: true, nameBadInput: true,
		schemaReadable: true, writeScope: true, rng: rand.New(rand.NewPCG(1, 2)), bad: map[string]bool{},
		contacts: map[string]map[string]string{}, ids: map[string]string{}, props: map[string]*property{}}
	for _, p := range []*property{
		fakeProp("email", "string", "text"), fakeProp("firstname", "string", "text"), fakeProp("lastname", "string", "text"),
		fakeProp("zip", "string", "text"), fakeProp("rokt_calendar", "string", "text"), fakeProp("rokt_account", "string", "text"),
		fakeProp("rokt_subscription_status", "enumeration", "select", "subscribed", "unsubscribed"),
		fakeProp("rokt_calendars", "enumeration", "checkbox", "scfl-2025-fixtures", "tvrc-home-fixtures", "scfl", "tvrc", "afl"),
		fakeProp("rokt_tags", "enumeration", "checkbox", "home", "away", "finals"),
		fakeProp("rokt_subscribed_on", "date", "date"), fakeProp("rokt_unsubscribed_at", "datetime", "date"),
		fakeProp("rokt_active_subscriptions", "number", "number"), fakeProp("rokt_marketing_consent", "bool", "booleancheckbox", "true", "false"),
		readOnly(fakeProp("createdate", "datetime", "date")), readOnly(fakeProp("hs_object_id", "number", "number")),
	} {
		f.props[p.Name] = p
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func fakeProp(name, typ, fieldType string, options ...string) *property {
	p := &property{Name: name, Type: typ, FieldType: fieldType}
	for _, o := range options {
		p.Options = append(p.Options, struct {
			Label string `json:"label"`
			Value string `json:"value"`
		}{Label: strings.ToUpper(o[:1]) + o[1:], Value: o})
	}
	return p
}

func readOnly(p *property) *property {
	p.ModificationMetadata.ReadOnlyValue = true
	return p
}

func (f *fakeHubSpot) correlationID() string {
	return fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", f.rng.Uint32(), f.rng.Uint32()&0xffff, f.rng.Uint32()&0xfff, f.rng.Uint32()&0xfff, f.rng.Uint64()&0xffffffffffff)
}

func (f *fakeHubSpot) answer(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

func (f *fakeHubSpot) fail(w http.ResponseWriter, status int, category, message string, extra map[string]any) {
	body := map[string]any{"status": "error", "message": message, "correlationId": f.correlationID(), "category": category}
	for k, v := range extra {
		body[k] = v
	}
	f.answer(w, status, body)
}

func (f *fakeHubSpot) limitHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set(headerMax, strconv.Itoa(f.max))
	h.Set(headerRemaining, strconv.Itoa(max(f.max-len(f.inWindow), 0)))
	h.Set(headerInterval, strconv.Itoa(int(f.window/time.Millisecond)))
	h.Set(headerDaily, strconv.Itoa(f.daily))
	h.Set(headerDailyRemaining, strconv.Itoa(max(f.daily-f.dailyUsed, 0)))
}

func (f *fakeHubSpot) tooMany(w http.ResponseWriter, policy, message string) {
	f.limitHeaders(w)
	if f.retryAfter != "" {
		w.Header().Set("Retry-After", f.retryAfter)
	}
	f.answer(w, http.StatusTooManyRequests, map[string]any{"status": "error", "message": message, "errorType": "RATE_LIMIT",
		"correlationId": f.correlationID(), "policyName": policy})
}

// others records n requests of another client of the same app in the window.
func (f *fakeHubSpot) others(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.inWindow = append(f.inWindow, time.Now())
		f.dailyUsed++
	}
}

func (f *fakeHubSpot) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		f.fail(w, http.StatusUnauthorized, "INVALID_AUTHENTICATION",
			"Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview", nil)
		return
	}
	f.requests++
	now := time.Now()
	for len(f.inWindow) > 0 && now.Sub(f.inWindow[0]) >= f.window {
		f.inWindow = f.inWindow[1:]
	}
	switch {
	case f.dailyUsed >= f.daily:
		f.provoked++
		f.daily429++
		f.tooMany(w, "DAILY", "You have reached your daily limit.")
		return
	case len(f.inWindow) >= f.max:
		f.provoked++
		f.tooMany(w, "TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.")
		return
	case f.rng.Float64() < f.throttle:
		f.injected++
		f.tooMany(w, "TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.")
		return
	}
	f.inWindow = append(f.inWindow, now)
	f.accepted = append(f.accepted, now)
	f.dailyUsed++
	f.limitHeaders(w)

	upsert := r.Method == http.MethodPost && r.URL.Path == "/crm/v3/objects/contacts/batch/upsert"
	if f.rng.Float64() < f.fail5xx {
		f.injected++
		status := []int{502, 503, 504}[f.rng.IntN(3)]
		if upsert && status == 504 {
			// The gateway timed out after HubSpot applied the upsert.
			f.upsert(httptest.NewRecorder(), r)
		}
		f.fail(w, status, "INTERNAL_ERROR", "The server encountered an error, please try again.", nil)
		return
	}
	switch {
	case upsert:
		f.upserts++
		f.upsert(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/crm/v3/properties/contacts":
		if !f.schemaReadable {
			f.missingScopes(w, "crm.schemas.contacts.read")
			return
		}
		var list []*property
		for _, p := range f.props {
			list = append(list, p)
		}
		slices.SortFunc(list, func(a, b *property) int { return strings.Compare(a.Name, b.Name) })
		f.answer(w, http.StatusOK, map[string]any{"results": list})
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/crm/v3/objects/contacts/"),
		r.Method == http.MethodPost && (r.URL.Path == "/crm/v3/objects/contacts/batch/archive" || r.URL.Path == "/crm/v3/objects/contacts/gdpr-delete"):
		f.deletes++
		w.WriteHeader(http.StatusNoContent)
	default:
		f.fail(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "resource not found", nil)
	}
}

func (f *fakeHubSpot) missingScopes(w http.ResponseWriter, scope string) {
	f.fail(w, http.StatusForbidden, "MISSING_SCOPES",
		"This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
		map[string]any{"errors": []map[string]any{{"message": "One or more of the following scopes are required.", "context": map[string]any{"requiredGranularScopes": []string{scope}}}}})
}

type fakeInput struct {
	IDProperty string            `json:"idProperty"`
	ID         string            `json:"id"`
	TraceID    string            `json:"objectWriteTraceId"`
	Properties map[string]string `json:"properties"`
}

var emailPattern = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[a-z]{2,}$`)

// invalid lists HubSpot's validation entries for one input.
func (f *fakeHubSpot) invalid(in fakeInput) []map[string]any {
	var out []map[string]any
	add := func(code, name, msg string) {
		out = append(out, map[string]any{"isValid": false, "message": msg, "error": code, "name": name, "localizedErrorMessage": msg})
	}
	for _, email := range []string{in.ID, in.Properties["email"]} {
		if email != "" && (!emailPattern.MatchString(strings.ToLower(email)) || f.bad[strings.ToLower(email)]) {
			add("INVALID_EMAIL", "email", fmt.Sprintf("Email address %s is invalid", email))
			break
		}
	}
	names := make([]string, 0, len(in.Properties))
	for name := range in.Properties {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		v, p := in.Properties[name], f.props[name]
		if v == "" || p == nil {
			continue
		}
		switch p.Type {
		case "date":
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
				if ms%86400000 != 0 {
					add("INVALID_DATE", name, fmt.Sprintf("%s is at %s UTC, not midnight!", v, time.UnixMilli(ms).UTC().Format("15:4:5.0")))
				}
			} else if _, err := time.Parse(time.DateOnly, v); err != nil {
				add("INVALID_DATE", name, fmt.Sprintf("%s was not a valid date; it must be a long or a date string at midnight UTC", v))
			}
		case "datetime":
			if _, err := strconv.ParseInt(v, 10, 64); err != nil {
				if _, err := time.Parse(time.RFC3339, v); err != nil {
					add("INVALID_DATE", name, fmt.Sprintf("%s was not a valid long or ISO 8601 date-time", v))
				}
			}
		case "number":
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				add("INVALID_DECIMAL", name, fmt.Sprintf("%s was not a valid number", v))
			}
		case "bool", "enumeration":
			vals := []string{v}
			if p.FieldType == "checkbox" {
				vals = strings.Split(v, ";")
			}
			for _, x := range vals {
				if !p.hasOption(x) {
					var opts []string
					for _, o := range p.Options {
						opts = append(opts, o.Value)
					}
					add("INVALID_OPTION", name, fmt.Sprintf("%s was not one of the allowed options: [%s]", x, strings.Join(opts, ", ")))
					break
				}
			}
		default:
			if len(v) > 65536 {
				add("INVALID_STRING", name, "value is longer than 65536 characters")
			}
		}
	}
	return out
}

func validationMessage(list []map[string]any) string {
	b, _ := json.Marshal(list)
	return "Property values were not valid: " + string(b)
}

func (f *fakeHubSpot) upsert(w http.ResponseWriter, r *http.Request) {
	if !f.writeScope {
		f.missingScopes(w, "crm.objects.contacts.write")
		return
	}
	if f.conflict {
		f.conflict = false
		f.fail(w, http.StatusConflict, "CONFLICT", "Contact already exists. Existing ID: 1001", nil)
		return
	}
	var body struct {
		Inputs []fakeInput `json:"inputs"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		f.fail(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid input JSON on line 1: "+err.Error(), nil)
		return
	}
	f.maxInputs = max(f.maxInputs, len(body.Inputs))
	f.lastInputs = len(body.Inputs)
	if len(body.Inputs) > 100 {
		f.fail(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("Batch input limit exceeded: %d inputs, at most 100 allowed", len(body.Inputs)), nil)
		return
	}
	seen := map[string]bool{}
	traces := true
	for _, in := range body.Inputs {
		key := strings.ToLower(in.ID)
		if in.IDProperty != "email" {
			f.fail(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("Unable to perform update/upsert by non-unique 0-1 property %s", in.IDProperty), nil)
			return
		}
		if seen[key] {
			f.fail(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("Duplicate IDs found in batch input: [%s]. IDs must be unique", in.ID),
				map[string]any{"context": map[string][]string{"ids": {in.ID}}})
			return
		}
		seen[key] = true
		traces = traces && in.TraceID != ""
		for name := range in.Properties {
			if f.props[name] == nil {
				msg := fmt.Sprintf("Property \"%s\" does not exist", name)
				f.fail(w, http.StatusBadRequest, "VALIDATION_ERROR", validationMessage([]map[string]any{{"isValid": false, "message": msg, "error": "PROPERTY_DOESNT_EXIST", "name": name, "localizedErrorMessage": msg}}),
					map[string]any{"context": map[string][]string{"propertyName": {name}}})
				return
			}
			if f.props[name].ModificationMetadata.ReadOnlyValue {
				f.fail(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("Property \"%s\" is read-only", name), nil)
				return
			}
		}
	}
	f.traceUsed = f.traceUsed || traces
	multi := f.multiStatus && traces
	var good []fakeInput
	var errs []map[string]any
	for _, in := range body.Inputs {
		list := f.invalid(in)
		switch {
		case len(list) > 0 && !multi:
			var ctx map[string]any
			if f.nameBadInput {
				ctx = map[string]any{"context": map[string][]string{"ids": {in.ID}}}
			}
			f.fail(w, http.StatusBadRequest, "VALIDATION_ERROR", validationMessage(list), ctx)
			return
		case len(list) > 0:
			errs = append(errs, map[string]any{"status": "error", "category": "VALIDATION_ERROR", "message": validationMessage(list),
				"context": map[string][]string{"objectWriteTraceId": {in.TraceID}}})
		case multi && f.rng.Float64() < f.inputErr:
			f.injected++
			errs = append(errs, map[string]any{"status": "error", "category": "INTERNAL_ERROR", "message": "Failed to process the input; try again",
				"context": map[string][]string{"objectWriteTraceId": {in.TraceID}}})
		default:
			good = append(good, in)
		}
	}
	var results []map[string]any
	stamp := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	for _, in := range good {
		key := strings.ToLower(in.ID)
		c, existed := f.contacts[key]
		if !existed {
			c = map[string]string{"email": key}
			f.contacts[key] = c
			f.ids[key] = strconv.Itoa(1000 + len(f.ids))
		}
		for k, v := range in.Properties {
			if v == "" {
				delete(c, k) // an empty value clears the property
			} else {
				c[k] = v
			}
		}
		props := map[string]string{"hs_object_id": f.ids[key]}
		for k, v := range c {
			props[k] = v
		}
		results = append(results, map[string]any{"id": f.ids[key], "properties": props, "createdAt": stamp, "updatedAt": stamp,
			"archived": false, "new": !existed, "objectWriteTraceId": in.TraceID})
	}
	status := http.StatusOK
	if len(errs) > 0 {
		status = http.StatusMultiStatus
	}
	f.answer(w, status, map[string]any{"status": "COMPLETE", "results": results, "errors": errs, "numErrors": len(errs),
		"requestedAt": stamp, "startedAt": stamp, "completedAt": stamp})
}

// snapshot copies the contacts.
func (f *fakeHubSpot) snapshot() map[string]map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]map[string]string, len(f.contacts))
	for k, v := range f.contacts {
		c := make(map[string]string, len(v))
		for a, b := range v {
			c[a] = b
		}
		out[k] = c
	}
	return out
}

// with runs fn under the fake's lock, to set options or read counters.
func (f *fakeHubSpot) with(fn func(f *fakeHubSpot)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}
