// Package hubspotfake is a fake HubSpot CRM API for tests: the hubspot sink's own tests and
// end-to-end tests that run hookbridge against it. It behaves as HubSpot's documentation says
// (shared/spec/crm-apis.md, HubSpot's error-handling page):
//   - every request needs the right Bearer token (401 with HubSpot's error JSON otherwise);
//   - every authenticated request counts against a rolling window (Max per Window) and a
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
//     refused input in context.ids when NameBadInput is set;
//   - contacts are kept by email, so tests assert the final CRM state; deletes are counted.
//
// Failures can be injected: 5xx answers (half of them after the upsert was applied, as a
// gateway timeout would), 429s as if another app used the window (with or without
// Retry-After, under the policy ThrottlePolicy names), per-input transient errors in 207s,
// and other clients' requests in the window.
package hubspotfake

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

// DefaultToken is the private app token a new Server accepts.
const DefaultToken = "pat-na1-0c1d2e3f-4a5b-6c7d-8e9f-a0b1c2d3e4f5"

// MaxInputs is the most inputs the batch upsert endpoint takes.
const MaxInputs = 100

// The rate-limit headers HubSpot puts on its answers.
const (
	HeaderMax            = "X-HubSpot-RateLimit-Max"
	HeaderRemaining      = "X-HubSpot-RateLimit-Remaining"
	HeaderInterval       = "X-HubSpot-RateLimit-Interval-Milliseconds"
	HeaderDaily          = "X-HubSpot-RateLimit-Daily"
	HeaderDailyRemaining = "X-HubSpot-RateLimit-Daily-Remaining"
)

// Property is one contact property as GET /crm/v3/properties/contacts describes it.
type Property struct {
	Name      string   `json:"name"`
	Type      string   `json:"type"`
	FieldType string   `json:"fieldType"`
	Options   []Option `json:"options"`
	// ModificationMetadata says whether HubSpot lets clients write the property.
	ModificationMetadata struct {
		ReadOnlyValue bool `json:"readOnlyValue"`
	} `json:"modificationMetadata"`
}

// Option is one option of an enumeration or bool property.
type Option struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

func (p *Property) hasOption(v string) bool {
	return slices.ContainsFunc(p.Options, func(o Option) bool { return o.Value == v })
}

// Server is the fake HubSpot. Its exported fields are options and counters: set or read
// them through With once the server runs (New returns it running).
type Server struct {
	// URL is the server's base URL, to use as the sink's base_url.
	URL string
	srv *httptest.Server

	mu             sync.Mutex
	Token          string               // the private app token it accepts
	Max            int                  // requests per rolling Window
	Window         time.Duration        // the rolling window
	Daily          int                  // requests a day
	RetryAfter     string               // Retry-After on 429s; "" sends none (HubSpot documents it only for workflows)
	MultiStatus    bool                 // answer 207 naming refused inputs (when every input has a trace id)
	NameBadInput   bool                 // a 400 names the refused input in context.ids
	SchemaReadable bool                 // the token may read the contact properties
	WriteScope     bool                 // the token may write contacts
	Props          map[string]*Property // the contact properties, by name

	RNG            *rand.Rand                   // the dice of the injected failures and of new contact ids
	Fail5xx        float64                      // share of requests answered 502, 503 or 504
	Throttle       float64                      // share of requests answered 429 as if another app had used the limit
	ThrottlePolicy string                       // policyName of the injected 429s: TEN_SECONDLY_ROLLING (""), SECONDLY or DAILY
	InputErr       float64                      // share of inputs refused with a transient error in a 207
	FailNext       []int                        // statuses for the next requests (429 under ThrottlePolicy, or a 5xx), in order
	Bad            map[string]bool              // lower-cased emails refused as INVALID_EMAIL
	Conflict       bool                         // answer the next upsert 409, as a race between two writes of one contact does
	Contacts       map[string]map[string]string // lower-cased email -> property -> value
	IDs            map[string]string            // lower-cased email -> contact id
	InWindow       []time.Time                  // accepted requests (ours and others') in the rolling window
	Accepted       []time.Time                  // every accepted request of the sink, in order
	DailyUsed      int                          // requests counted against the daily limit today
	Requests       int                          // every authenticated request
	Upserts        int                          // upsert requests accepted by the limits
	Provoked       int                          // 429s the client provoked by exceeding a limit
	Daily429       int                          // 429s for the daily limit
	Injected       int                          // injected 429s and 5xx
	Deletes        int                          // delete, archive and GDPR-delete requests
	MaxInputs      int                          // most inputs in one upsert request
	TraceUsed      bool                         // an upsert carried objectWriteTraceId on every input
	LastInputs     int                          // inputs in the last upsert request
}

// New starts a fake HubSpot with the Free/Starter limits (100 per 10 s, 250,000 a day), the
// default contact properties and the custom ones the sink's examples map; t closes it.
func New(t testing.TB) *Server {
	f := &Server{Token: DefaultToken, Max: 100, Window: 10 * time.Second, Daily: 250000, MultiStatus: true, NameBadInput: true,
		SchemaReadable: true, WriteScope: true, RNG: rand.New(rand.NewPCG(1, 2)), Bad: map[string]bool{},
		Contacts: map[string]map[string]string{}, IDs: map[string]string{}, Props: map[string]*Property{}}
	for _, p := range []*Property{
		Prop("email", "string", "text"), Prop("firstname", "string", "text"), Prop("lastname", "string", "text"),
		Prop("zip", "string", "text"), Prop("rokt_calendar", "string", "text"), Prop("rokt_account", "string", "text"),
		Prop("rokt_subscription_status", "enumeration", "select", "subscribed", "unsubscribed"),
		Prop("rokt_calendars", "enumeration", "checkbox", "scfl-2025-fixtures", "tvrc-home-fixtures", "scfl", "tvrc", "afl"),
		Prop("rokt_tags", "enumeration", "checkbox", "home", "away", "finals"),
		Prop("rokt_subscribed_on", "date", "date"), Prop("rokt_unsubscribed_at", "datetime", "date"),
		Prop("rokt_active_subscriptions", "number", "number"), Prop("rokt_marketing_consent", "bool", "booleancheckbox", "true", "false"),
		ReadOnly(Prop("createdate", "datetime", "date")), ReadOnly(Prop("hs_object_id", "number", "number")),
	} {
		f.Props[p.Name] = p
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	t.Cleanup(f.srv.Close)
	return f
}

// Prop makes a property; options are the values of an enumeration's options.
func Prop(name, typ, fieldType string, options ...string) *Property {
	p := &Property{Name: name, Type: typ, FieldType: fieldType}
	for _, o := range options {
		p.Options = append(p.Options, Option{Label: strings.ToUpper(o[:1]) + o[1:], Value: o})
	}
	return p
}

// ReadOnly marks p read-only, as HubSpot's own calculated properties are.
func ReadOnly(p *Property) *Property {
	p.ModificationMetadata.ReadOnlyValue = true
	return p
}

func (f *Server) correlationID() string {
	return fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", f.RNG.Uint32(), f.RNG.Uint32()&0xffff, f.RNG.Uint32()&0xfff, f.RNG.Uint32()&0xfff, f.RNG.Uint64()&0xffffffffffff)
}

func (f *Server) answer(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

func (f *Server) fail(w http.ResponseWriter, status int, category, message string, extra map[string]any) {
	body := map[string]any{"status": "error", "message": message, "correlationId": f.correlationID(), "category": category}
	for k, v := range extra {
		body[k] = v
	}
	f.answer(w, status, body)
}

func (f *Server) limitHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set(HeaderMax, strconv.Itoa(f.Max))
	h.Set(HeaderRemaining, strconv.Itoa(max(f.Max-len(f.InWindow), 0)))
	h.Set(HeaderInterval, strconv.Itoa(int(f.Window/time.Millisecond)))
	h.Set(HeaderDaily, strconv.Itoa(f.Daily))
	h.Set(HeaderDailyRemaining, strconv.Itoa(max(f.Daily-f.DailyUsed, 0)))
}

func (f *Server) tooMany(w http.ResponseWriter, policy, message string) {
	f.limitHeaders(w)
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	f.answer(w, http.StatusTooManyRequests, map[string]any{"status": "error", "message": message, "errorType": "RATE_LIMIT",
		"correlationId": f.correlationID(), "policyName": policy})
}

// Others records n requests of another client of the same app in the window.
func (f *Server) Others(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.InWindow = append(f.InWindow, time.Now())
		f.DailyUsed++
	}
}

func (f *Server) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+f.Token {
		f.fail(w, http.StatusUnauthorized, "INVALID_AUTHENTICATION",
			"Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview", nil)
		return
	}
	f.Requests++
	now := time.Now()
	for len(f.InWindow) > 0 && now.Sub(f.InWindow[0]) >= f.Window {
		f.InWindow = f.InWindow[1:]
	}
	switch {
	case f.DailyUsed >= f.Daily:
		f.Provoked++
		f.Daily429++
		f.tooMany(w, "DAILY", "You have reached your daily limit.")
		return
	case len(f.InWindow) >= f.Max:
		f.Provoked++
		f.tooMany(w, "TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.")
		return
	case len(f.FailNext) > 0 && f.FailNext[0] != http.StatusTooManyRequests:
		status := f.FailNext[0]
		f.FailNext = f.FailNext[1:]
		f.Injected++
		f.limitHeaders(w)
		f.fail(w, status, "INTERNAL_ERROR", "The server encountered an error, please try again.", nil)
		return
	case len(f.FailNext) > 0 || f.RNG.Float64() < f.Throttle:
		if len(f.FailNext) > 0 {
			f.FailNext = f.FailNext[1:]
		}
		f.Injected++
		switch f.ThrottlePolicy {
		case "DAILY":
			f.tooMany(w, "DAILY", "You have reached your daily limit.")
		case "SECONDLY":
			f.tooMany(w, "SECONDLY", "You have reached your secondly limit.")
		default:
			f.tooMany(w, "TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.")
		}
		return
	}
	f.InWindow = append(f.InWindow, now)
	f.Accepted = append(f.Accepted, now)
	f.DailyUsed++
	f.limitHeaders(w)

	upsert := r.Method == http.MethodPost && r.URL.Path == "/crm/v3/objects/contacts/batch/upsert"
	if f.RNG.Float64() < f.Fail5xx {
		f.Injected++
		status := []int{502, 503, 504}[f.RNG.IntN(3)]
		if upsert && status == 504 {
			// The gateway timed out after HubSpot applied the upsert.
			f.upsert(httptest.NewRecorder(), r)
		}
		f.fail(w, status, "INTERNAL_ERROR", "The server encountered an error, please try again.", nil)
		return
	}
	switch {
	case upsert:
		f.Upserts++
		f.upsert(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/crm/v3/properties/contacts":
		if !f.SchemaReadable {
			f.missingScopes(w, "crm.schemas.contacts.read")
			return
		}
		var list []*Property
		for _, p := range f.Props {
			list = append(list, p)
		}
		slices.SortFunc(list, func(a, b *Property) int { return strings.Compare(a.Name, b.Name) })
		f.answer(w, http.StatusOK, map[string]any{"results": list})
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/crm/v3/objects/contacts/"),
		r.Method == http.MethodPost && (r.URL.Path == "/crm/v3/objects/contacts/batch/archive" || r.URL.Path == "/crm/v3/objects/contacts/gdpr-delete"):
		f.Deletes++
		w.WriteHeader(http.StatusNoContent)
	default:
		f.fail(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "resource not found", nil)
	}
}

func (f *Server) missingScopes(w http.ResponseWriter, scope string) {
	f.fail(w, http.StatusForbidden, "MISSING_SCOPES",
		"This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
		map[string]any{"errors": []map[string]any{{"message": "One or more of the following scopes are required.", "context": map[string]any{"requiredGranularScopes": []string{scope}}}}})
}

// Input is one input of a batch upsert request.
type Input struct {
	IDProperty string            `json:"idProperty"`
	ID         string            `json:"id"`
	TraceID    string            `json:"objectWriteTraceId"`
	Properties map[string]string `json:"properties"`
}

var emailPattern = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[a-z]{2,}$`)

// invalid lists HubSpot's validation entries for one input.
func (f *Server) invalid(in Input) []map[string]any {
	var out []map[string]any
	add := func(code, name, msg string) {
		out = append(out, map[string]any{"isValid": false, "message": msg, "error": code, "name": name, "localizedErrorMessage": msg})
	}
	for _, email := range []string{in.ID, in.Properties["email"]} {
		if email != "" && (!emailPattern.MatchString(strings.ToLower(email)) || f.Bad[strings.ToLower(email)]) {
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
		v, p := in.Properties[name], f.Props[name]
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

func (f *Server) upsert(w http.ResponseWriter, r *http.Request) {
	if !f.WriteScope {
		f.missingScopes(w, "crm.objects.contacts.write")
		return
	}
	if f.Conflict {
		f.Conflict = false
		f.fail(w, http.StatusConflict, "CONFLICT", "Contact already exists. Existing ID: 1001", nil)
		return
	}
	var body struct {
		Inputs []Input `json:"inputs"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		f.fail(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid input JSON on line 1: "+err.Error(), nil)
		return
	}
	f.MaxInputs = max(f.MaxInputs, len(body.Inputs))
	f.LastInputs = len(body.Inputs)
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
			if f.Props[name] == nil {
				msg := fmt.Sprintf("Property \"%s\" does not exist", name)
				f.fail(w, http.StatusBadRequest, "VALIDATION_ERROR", validationMessage([]map[string]any{{"isValid": false, "message": msg, "error": "PROPERTY_DOESNT_EXIST", "name": name, "localizedErrorMessage": msg}}),
					map[string]any{"context": map[string][]string{"propertyName": {name}}})
				return
			}
			if f.Props[name].ModificationMetadata.ReadOnlyValue {
				f.fail(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("Property \"%s\" is read-only", name), nil)
				return
			}
		}
	}
	f.TraceUsed = f.TraceUsed || traces
	multi := f.MultiStatus && traces
	var good []Input
	var errs []map[string]any
	for _, in := range body.Inputs {
		list := f.invalid(in)
		switch {
		case len(list) > 0 && !multi:
			var ctx map[string]any
			if f.NameBadInput {
				ctx = map[string]any{"context": map[string][]string{"ids": {in.ID}}}
			}
			f.fail(w, http.StatusBadRequest, "VALIDATION_ERROR", validationMessage(list), ctx)
			return
		case len(list) > 0:
			errs = append(errs, map[string]any{"status": "error", "category": "VALIDATION_ERROR", "message": validationMessage(list),
				"context": map[string][]string{"objectWriteTraceId": {in.TraceID}}})
		case multi && f.RNG.Float64() < f.InputErr:
			f.Injected++
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
		c, existed := f.Contacts[key]
		if !existed {
			c = map[string]string{"email": key}
			f.Contacts[key] = c
			f.IDs[key] = strconv.Itoa(1000 + len(f.IDs))
		}
		for k, v := range in.Properties {
			if v == "" {
				delete(c, k) // an empty value clears the property
			} else {
				c[k] = v
			}
		}
		props := map[string]string{"hs_object_id": f.IDs[key]}
		for k, v := range c {
			props[k] = v
		}
		results = append(results, map[string]any{"id": f.IDs[key], "properties": props, "createdAt": stamp, "updatedAt": stamp,
			"archived": false, "new": !existed, "objectWriteTraceId": in.TraceID})
	}
	status := http.StatusOK
	if len(errs) > 0 {
		status = http.StatusMultiStatus
	}
	f.answer(w, status, map[string]any{"status": "COMPLETE", "results": results, "errors": errs, "numErrors": len(errs),
		"requestedAt": stamp, "startedAt": stamp, "completedAt": stamp})
}

// Snapshot copies the contacts: lower-cased email -> property -> value.
func (f *Server) Snapshot() map[string]map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]map[string]string, len(f.Contacts))
	for k, v := range f.Contacts {
		c := make(map[string]string, len(v))
		for a, b := range v {
			c[a] = b
		}
		out[k] = c
	}
	return out
}

// With runs fn under the fake's lock, to set options or read counters.
func (f *Server) With(fn func(f *Server)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}
