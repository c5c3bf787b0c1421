// Package hubspot is the HubSpot sink: it upserts contacts by email through the CRM v3 batch
// upsert endpoint, with properties from the sink's mapping, paced by HubSpot's rate-limit
// headers so it never provokes a 429, and it maps 207 partial results to per-row outcomes.
// An Unsubscribe updates the contact's subscription status property; contacts are never
// deleted.
package hubspot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/schemas"
)

// Version is the sink's version.
const Version = "1.0.0"

// MaxInputs is the most contacts one batch upsert takes.
const MaxInputs = 100

// Settings are the sink's settings.
type Settings struct {
	// Token is a private-app access token (Bearer).
	Token string `json:"token"`
	// BaseURL overrides https://api.hubapi.com (tests, proxies).
	BaseURL string `json:"base_url,omitempty"`
	// Timeout bounds one request (Go duration, default 30s).
	Timeout string `json:"timeout,omitempty"`
}

const settingsSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["token"],
  "properties": {
    "token": {"type": "string", "description": "private-app access token with crm.objects.contacts.write and crm.schemas.contacts.read"},
    "base_url": {"type": "string", "default": "https://api.hubapi.com"},
    "timeout": {"type": "string", "default": "30s"}
  }
}`

// Sink upserts HubSpot contacts.
type Sink struct {
	mu      sync.Mutex
	cfg     sdk.Config
	set     Settings
	base    string
	client  *http.Client
	pace    *pacer
	mapping []schemas.MappingPair
}

// New returns an unconfigured sink.
func New() sdk.Sink { return &Sink{} }

// Spec implements sdk.Sink. Contacts are keyed by email_key, so the engine never puts two
// rows of one contact in a batch and sends the latest; the contact columns carry the state of
// all the contact's subscriptions.
func (s *Sink) Spec() sdk.Spec {
	return sdk.Spec{Name: "hubspot", Version: Version, Description: "upserts HubSpot contacts by email (CRM v3 batch upsert)",
		Settings: json.RawMessage(settingsSchema), EventTypes: []string{"Subscribe", "Unsubscribe", "SubscriptionDetailsUpdated"},
		MaxBatchRows: MaxInputs, KeyColumn: "email_key", Columns: []string{"email", "contact_status", "contact_active_subscriptions", "contact_calendars"}}
}

// Configure implements sdk.Sink; it makes no network call.
func (s *Sink) Configure(ctx context.Context, cfg sdk.Config) error {
	var set Settings
	if err := sdk.DecodeSettings(cfg.Settings, &set); err != nil {
		return err
	}
	if strings.TrimSpace(set.Token) == "" {
		return &sdk.SettingsError{Field: "token", Message: "is required (a HubSpot private-app token, e.g. token: ${HUBSPOT_TOKEN})"}
	}
	if set.BaseURL == "" {
		set.BaseURL = "https://api.hubapi.com"
	}
	if u, err := url.Parse(set.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return &sdk.SettingsError{Field: "base_url", Message: "want an absolute http(s) URL"}
	}
	timeout := 30 * time.Second
	if set.Timeout != "" {
		d, err := time.ParseDuration(set.Timeout)
		if err != nil || d <= 0 {
			return &sdk.SettingsError{Field: "timeout", Message: fmt.Sprintf("%q is not a positive duration", set.Timeout)}
		}
		timeout = d
	}
	if cfg.Mapping == nil || len(cfg.Mapping.Pairs()) == 0 {
		return &sdk.SettingsError{Field: "mapping", Message: "map at least email (e.g. mapping: {email: email, status: rokt_subscription_status})"}
	}
	pairs := cfg.Mapping.Pairs()
	if !slices.ContainsFunc(pairs, func(p schemas.MappingPair) bool { return p.Column == "email" || p.Column == "email_key" }) {
		return &sdk.SettingsError{Field: "mapping", Message: "must map email (HubSpot upserts contacts by email)"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg, s.set, s.mapping = cfg, set, pairs
	s.base = strings.TrimRight(set.BaseURL, "/")
	s.client = &http.Client{Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	s.pace = newPacer(time.Now)
	return nil
}

// properties turns a row into HubSpot property values (all strings). The status column means
// the contact's status over all their subscriptions, not this event's.
func (s *Sink) properties(r *schemas.Row) (string, map[string]string) {
	props := map[string]string{}
	email := r.Email
	for _, p := range s.mapping {
		col := p.Column
		if col == "status" {
			col = "contact_status"
		}
		v, err := r.Value(col)
		if err != nil || v == nil {
			continue
		}
		props[p.Field] = formatValue(v)
		if p.Column == "email" || p.Column == "email_key" {
			email = formatValue(v)
		}
	}
	return email, props
}

// formatValue renders a value the way HubSpot properties take it: datetimes as ISO 8601 UTC,
// lists as multiple-checkbox values (;-separated), booleans as true/false.
func formatValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case time.Time:
		return x.UTC().Format("2006-01-02T15:04:05.000Z")
	case []string:
		return strings.Join(x, ";")
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	default:
		return fmt.Sprint(x)
	}
}

type input struct {
	IDProperty string            `json:"idProperty"`
	ID         string            `json:"id"`
	Properties map[string]string `json:"properties"`
}

type upsertResponse struct {
	Status  string     `json:"status"`
	Results []struct{} `json:"results"`
	Errors  []apiError `json:"errors"`
}

type apiError struct {
	Status   string `json:"status"`
	Category string `json:"category"`
	Message  string `json:"message"`
	// Context names the inputs at fault: HubSpot lists their ids.
	Context map[string][]string `json:"context"`
	// PolicyName is set on 429 answers.
	PolicyName string `json:"policyName"`
	ErrorType  string `json:"errorType"`
}

// Write implements sdk.Sink.
func (s *Sink) Write(ctx context.Context, b *sdk.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows, err := b.Rows()
	if err != nil {
		return err
	}
	var inputs []input
	seqOf := map[string][]int64{} // lower-cased email -> rows
	for i := range rows {
		r := &rows[i]
		email, props := s.properties(r)
		email = strings.TrimSpace(email)
		if email == "" {
			b.Fail(r.Seq, "no email: HubSpot contacts are upserted by email", 0)
			continue
		}
		key := strings.ToLower(email)
		if _, dup := seqOf[key]; !dup {
			inputs = append(inputs, input{IDProperty: "email", ID: email, Properties: props})
		}
		seqOf[key] = append(seqOf[key], r.Seq)
	}
	if len(inputs) == 0 {
		return nil
	}
	body, err := json.Marshal(map[string]any{"inputs": inputs})
	if err != nil {
		return err
	}
	if wait := s.pace.wait(); wait > 0 {
		if wait > 15*time.Second {
			return sdk.SinkDown(fmt.Errorf("hubspot: the daily request limit is used up"), wait, 0)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	resp, err := s.do(ctx, http.MethodPost, "/crm/v3/objects/contacts/batch/upsert", body)
	if err != nil {
		return fmt.Errorf("hubspot: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	s.pace.observe(resp.Header)
	switch code := resp.StatusCode; {
	case code == 200 || code == 201:
		return nil
	case code == 207:
		var ur upsertResponse
		if err := json.Unmarshal(raw, &ur); err != nil {
			return fmt.Errorf("hubspot: unreadable 207 answer: %w", err)
		}
		s.markErrors(b, ur.Errors, seqOf, code)
		return nil
	case code == 429:
		var e apiError
		json.Unmarshal(raw, &e)
		wait := retryAfter(resp.Header.Get("Retry-After"))
		if e.PolicyName == "DAILY" {
			wait = max(wait, untilUTCMidnight(time.Now()))
		} else if wait == 0 {
			wait = 10 * time.Second // HubSpot's guidance for the rolling window
		}
		s.pace.throttled(wait)
		return sdk.SinkDown(fmt.Errorf("hubspot: 429 %s: %s", e.PolicyName, e.Message), wait, 429)
	case code == 401 || code == 403:
		var e apiError
		json.Unmarshal(raw, &e)
		return sdk.SinkDown(fmt.Errorf("hubspot: %d %s: %s (check the token and its scopes)", code, e.Category, e.Message), time.Minute, code)
	case code == 400 || code == 409:
		var e apiError
		json.Unmarshal(raw, &e)
		// A single input at fault is named in the context; otherwise let the engine split the
		// batch to find it.
		if ids := e.Context["ids"]; len(ids) > 0 {
			s.markErrors(b, []apiError{e}, seqOf, code)
			for key, seqs := range seqOf {
				if !slices.ContainsFunc(ids, func(id string) bool { return strings.EqualFold(id, key) }) {
					for _, q := range seqs {
						b.Retry(q, 0, "sent in a batch HubSpot refused for another contact", code)
					}
				}
			}
			return nil
		}
		return sdk.RejectBatch(fmt.Sprintf("%d %s: %s", code, e.Category, e.Message), code)
	case code == 477:
		return sdk.SinkDown(fmt.Errorf("hubspot: 477 migration in progress"), retryAfter(resp.Header.Get("Retry-After")), code)
	default:
		return fmt.Errorf("hubspot: %d: %s", code, truncate(string(raw), 200))
	}
}

// markErrors maps HubSpot's per-input errors to the rows they name: validation errors are
// permanent, anything else is tried again.
func (s *Sink) markErrors(b *sdk.Batch, errs []apiError, seqOf map[string][]int64, status int) {
	for _, e := range errs {
		ids := e.Context["ids"]
		if len(ids) == 0 {
			ids = e.Context["id"]
		}
		reason := strings.TrimSpace(e.Category + ": " + e.Message)
		for _, id := range ids {
			for _, q := range seqOf[strings.ToLower(id)] {
				if e.Category == "VALIDATION_ERROR" || e.Category == "INVALID_EMAIL" || e.Category == "OBJECT_NOT_FOUND" {
					b.Fail(q, reason, status)
				} else {
					b.Retry(q, 0, reason, status)
				}
			}
		}
	}
}

// Check implements sdk.Checker: the token works and every mapped property exists.
func (s *Sink) Check(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp, err := s.do(ctx, http.MethodGet, "/crm/v3/properties/contacts", nil)
	if err != nil {
		return fmt.Errorf("hubspot: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode == 401 || resp.StatusCode == 403 {
		return fmt.Errorf("hubspot: the token was refused (%d): check it and its scopes (crm.objects.contacts.write, crm.schemas.contacts.read)", resp.StatusCode)
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("hubspot: reading contact properties: %d %s", resp.StatusCode, truncate(string(raw), 200))
	}
	var list struct {
		Results []struct {
			Name string `json:"name"`
		} `json:"results"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return fmt.Errorf("hubspot: reading contact properties: %w", err)
	}
	have := map[string]bool{}
	for _, p := range list.Results {
		have[p.Name] = true
	}
	var missing []string
	for _, p := range s.mapping {
		if !have[p.Field] {
			missing = append(missing, p.Field)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		return fmt.Errorf("hubspot: mapped properties missing on contacts: %s (create them in HubSpot first)", strings.Join(missing, ", "))
	}
	return nil
}

func (s *Sink) do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.set.Token)
	req.Header.Set("User-Agent", "hookbridge-hubspot/"+Version)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, fmt.Errorf("%s %s: %w", method, path, ue.Err)
		}
		return nil, err
	}
	return resp, nil
}

// Close implements sdk.Sink.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		s.client.CloseIdleConnections()
	}
	return nil
}

func retryAfter(v string) time.Duration {
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

func untilUTCMidnight(now time.Time) time.Duration {
	next := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	return next.Sub(now)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
