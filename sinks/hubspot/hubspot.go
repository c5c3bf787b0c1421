// Package hubspot is the HubSpot sink. It upserts contacts by email through the CRM v3 batch
// upsert endpoint (at most 100 a request), with property values from the sink's mapping
// formatted for their HubSpot property types. It paces itself by HubSpot's rate-limit
// headers so that it does not provoke 429s, and it maps multi-status (207) answers to
// per-row outcomes. The subscription status property holds the contact's status over all
// their subscriptions: an Unsubscribe updates it, and contacts are never deleted.
package hubspot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/schemas"
)

// Version is the sink's version.
const Version = "1.1.0"

// MaxInputs is the most contacts one batch upsert request takes.
const MaxInputs = 100

// upsertPath is the CRM v3 contacts batch upsert endpoint.
const upsertPath = "/crm/v3/objects/contacts/batch/upsert"

// defaultBaseURL is HubSpot's API host.
const defaultBaseURL = "https://api.hubapi.com"

// Settings are the sink's settings.
type Settings struct {
	// Token is a private app's access token, sent as a Bearer token.
	Token string `json:"token"`
	// BaseURL overrides https://api.hubapi.com (proxies, tests).
	BaseURL string `json:"base_url,omitempty"`
	// Timeout bounds one HTTP request (a Go duration; default 30s).
	Timeout string `json:"timeout,omitempty"`
	// StatusProperty is the contact property that holds the subscription status. The
	// default is the property the mapping gives status (or contact_status).
	StatusProperty string `json:"status_property,omitempty"`
	// StatusValues are the values written for the two states. The default is subscribed
	// and unsubscribed; set them to the option values of an enumeration property.
	StatusValues *StatusValues `json:"status_values,omitempty"`
}

// StatusValues name the status property's values.
type StatusValues struct {
	Subscribed   string `json:"subscribed"`
	Unsubscribed string `json:"unsubscribed"`
}

const settingsSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["token"],
  "properties": {
    "token": {"type": "string", "description": "private app access token with the scopes crm.objects.contacts.write and crm.schemas.contacts.read"},
    "base_url": {"type": "string", "default": "https://api.hubapi.com"},
    "timeout": {"type": "string", "default": "30s", "description": "bound on one HTTP request (Go duration)"},
    "status_property": {"type": "string", "description": "contact property holding the status over all the contact's subscriptions; default: the property mapped from status or contact_status"},
    "status_values": {
      "type": "object",
      "additionalProperties": false,
      "required": ["subscribed", "unsubscribed"],
      "properties": {
        "subscribed": {"type": "string", "default": "subscribed"},
        "unsubscribed": {"type": "string", "default": "unsubscribed"}
      }
    }
  }
}`

// Sink upserts HubSpot contacts. The host never overlaps its calls; the mutex only guards
// against misuse.
type Sink struct {
	mu     sync.Mutex
	cfg    sdk.Config
	set    Settings
	log    *slog.Logger
	base   string
	client *http.Client
	pace   *pacer

	kinds       map[string]kind // mapped property -> what its column holds
	statusProps []string        // properties that receive the contact's status, sorted
	// accountProps receive values the Rokt account defines (calendar codes and titles, the
	// account's code): one HubSpot lacks as an option is the configuration's to add, not a
	// row's fault.
	accountProps []string
	subscribed   string
	unsubscribed string

	schema           map[string]*property // contact properties, read before the first upsert
	schemaUnreadable bool                 // the token may not read them (403)

	now func() time.Time // the clock of the waits a 429 asks for; nil is time.Now (tests pin it)
}

// clock returns the time by s.now, or time.Now.
func (s *Sink) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// New returns an unconfigured sink.
func New() sdk.Sink { return &Sink{} }

// Spec implements sdk.Sink. Contacts are keyed by email_key: the engine never puts two rows
// of one contact in a batch and sends the latest. The contact columns carry the state of all
// the contact's subscriptions, which the status property reflects.
func (s *Sink) Spec() sdk.Spec {
	return sdk.Spec{
		Name:         "hubspot",
		Version:      Version,
		Description:  "upserts HubSpot contacts by email (CRM v3 batch upsert), paced by HubSpot's rate-limit headers",
		Settings:     json.RawMessage(settingsSchema),
		EventTypes:   []string{"Subscribe", "Unsubscribe", "SubscriptionDetailsUpdated"},
		MaxBatchRows: MaxInputs,
		KeyColumn:    "email_key",
		Columns:      []string{"email", "email_key", "contact_status", "contact_active_subscriptions", "contact_calendars"},
	}
}

// Configure implements sdk.Sink. It checks the settings and the mapping without touching the
// network (Check does that).
func (s *Sink) Configure(ctx context.Context, cfg sdk.Config) error {
	var set Settings
	if err := sdk.DecodeSettings(cfg.Settings, &set); err != nil {
		return err
	}
	switch tok := strings.TrimSpace(set.Token); {
	case tok == "":
		return &sdk.SettingsError{Field: "token", Message: "is required: a HubSpot private app token, e.g. token: ${HUBSPOT_TOKEN}"}
	case tok != set.Token || strings.ContainsAny(tok, " \t\r\n"):
		return &sdk.SettingsError{Field: "token", Message: "contains white space: copy the token again"}
	}
	if set.BaseURL == "" {
		set.BaseURL = defaultBaseURL
	}
	if u, err := url.Parse(set.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
		return &sdk.SettingsError{Field: "base_url", Message: fmt.Sprintf("%q is not an absolute http(s) URL without a query", set.BaseURL)}
	}
	timeout, err := sdk.DurationSetting("timeout", set.Timeout, 30*time.Second)
	if err != nil {
		return err
	}
	subscribed, unsubscribed := schemas.StatusSubscribed, schemas.StatusUnsubscribed
	if v := set.StatusValues; v != nil {
		if v.Subscribed == "" || v.Unsubscribed == "" || v.Subscribed == v.Unsubscribed {
			return &sdk.SettingsError{Field: "status_values", Message: "needs two different values, subscribed and unsubscribed"}
		}
		subscribed, unsubscribed = v.Subscribed, v.Unsubscribed
	}
	if cfg.Mapping == nil {
		return &sdk.SettingsError{Field: "mapping", Message: "is required: map columns to contact properties (e.g. mapping: {email: email, status: rokt_subscription_status})"}
	}
	kinds := map[string]kind{}
	statusProp := ""
	var accountProps []string
	for _, p := range cfg.Mapping.Pairs() {
		if slices.Contains(accountColumns, p.Column) {
			accountProps = append(accountProps, p.Field)
		}
		if !validPropertyName(p.Field) {
			return &sdk.SettingsError{Field: "mapping", Message: fmt.Sprintf("%q (from %s) is not a property's internal name: use the internal name HubSpot shows for the property, not its label", p.Field, p.Column)}
		}
		kinds[p.Field] = columnKind(p.Column)
		if kinds[p.Field] == kindStatus && (statusProp == "" || p.Column == "status") {
			statusProp = p.Field
		}
	}
	if set.StatusProperty != "" {
		if !validPropertyName(set.StatusProperty) {
			return &sdk.SettingsError{Field: "status_property", Message: fmt.Sprintf("%q is not a property's internal name", set.StatusProperty)}
		}
		if k, ok := kinds[set.StatusProperty]; ok && k != kindStatus {
			return &sdk.SettingsError{Field: "status_property", Message: fmt.Sprintf("%q is also mapped from another column", set.StatusProperty)}
		}
		statusProp = set.StatusProperty
	}
	if statusProp == "" {
		return &sdk.SettingsError{Field: "status_property", Message: "name the contact property that holds the subscription status, or map status (e.g. status: rokt_subscription_status)"}
	}
	kinds[statusProp] = kindStatus

	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg, s.set = cfg, set
	s.log = cfg.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.base = strings.TrimRight(set.BaseURL, "/")
	s.client = &http.Client{Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	s.pace = newPacer()
	s.kinds, s.subscribed, s.unsubscribed = kinds, subscribed, unsubscribed
	s.accountProps = accountProps
	s.statusProps = nil
	for _, f := range s.fields() {
		if kinds[f] == kindStatus {
			s.statusProps = append(s.statusProps, f)
		}
	}
	s.schema, s.schemaUnreadable = nil, false
	return nil
}

// validPropertyName refuses what is clearly a label rather than an internal name.
func validPropertyName(name string) bool {
	return name != "" && !strings.ContainsAny(name, " \t\r\n\"'.,;:/")
}

// fields returns every property the sink writes, sorted.
func (s *Sink) fields() []string {
	out := make([]string, 0, len(s.kinds))
	for f := range s.kinds {
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}

// contact is one input of a batch upsert and the rows it stands for.
type contact struct {
	email string
	trace string // objectWriteTraceId: the latest row's seq
	props map[string]string
	seqs  []int64
}

type upsertInput struct {
	IDProperty string            `json:"idProperty"`
	ID         string            `json:"id"`
	TraceID    string            `json:"objectWriteTraceId"`
	Properties map[string]string `json:"properties"`
}

// contactStatus is the contact's status over all their subscriptions, as the status
// property's values spell it; "" when the row does not say.
func (s *Sink) contactStatus(r *schemas.Row) string {
	switch r.ContactState() {
	case schemas.StatusSubscribed:
		return s.subscribed
	case schemas.StatusUnsubscribed:
		return s.unsubscribed
	}
	return ""
}

// contacts turns the batch's rows into upsert inputs, one per contact. Rows without an
// email are failed: HubSpot upserts contacts by email.
func (s *Sink) contacts(b *sdk.Batch, rows []schemas.Row) []*contact {
	var out []*contact
	byEmail := map[string]*contact{}
	for i := range rows {
		r := &rows[i]
		email := strings.TrimSpace(r.Email)
		if email == "" {
			email = r.EmailKey
		}
		if email == "" {
			b.Fail(r.Seq, "no email: HubSpot contacts are upserted by email", 0)
			continue
		}
		if _, _, ok := schemas.NormalizeEmail(email); !ok {
			// HubSpot refuses it anyway, and its refusals count against the account's error
			// budget: it is not sent.
			b.Fail(r.Seq, "not an email address (the sender's placeholder or a typo): not sent", 0)
			continue
		}
		props := map[string]string{}
		for field, v := range b.Fields(r) {
			k := s.kinds[field]
			if k == kindStatus {
				continue
			}
			props[field] = format(v, k, s.schema[field])
		}
		if st := s.contactStatus(r); st != "" {
			for _, f := range s.statusProps {
				props[f] = st
			}
		}
		key := strings.ToLower(email)
		c := byEmail[key]
		if c == nil {
			c = &contact{}
			byEmail[key] = c
			out = append(out, c)
		}
		// The engine sends one row per contact; should two come anyway, the later wins.
		if len(c.seqs) == 0 || r.Seq > c.seqs[len(c.seqs)-1] {
			c.email, c.trace, c.props = email, strconv.FormatInt(r.Seq, 10), props
		}
		c.seqs = append(c.seqs, r.Seq)
		slices.Sort(c.seqs)
	}
	return out
}

// Write implements sdk.Sink. A batch upsert is idempotent, so a re-sent batch leaves the
// same state. Rows of a refused input are marked failed or retried. A 429, refused
// credentials or a full rate-limit window are returned as SinkDown, which charges no row.
func (s *Sink) Write(ctx context.Context, b *sdk.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows, err := b.Rows()
	if err != nil {
		return fmt.Errorf("hubspot: read batch: %w", err)
	}
	if err := s.ensureSchema(ctx); err != nil {
		return err
	}
	all := s.contacts(b, rows)
	for start := 0; start < len(all); start += MaxInputs {
		// The engine's batches fit one request; a larger one is sent in parts. If a later
		// part fails as a whole, the re-sent batch repeats the earlier parts, harmlessly.
		if err := s.upsert(ctx, b, all[start:min(start+MaxInputs, len(all))]); err != nil {
			return err
		}
	}
	return nil
}

// maxRounds bounds how often one Write sends again after HubSpot refused a request for
// inputs it named.
const maxRounds = 5

// upsert sends one batch upsert of at most MaxInputs contacts and marks their rows. When
// HubSpot refuses the whole request (400) for inputs it names, those rows are marked and
// the others are sent again at once.
func (s *Sink) upsert(ctx context.Context, b *sdk.Batch, cs []*contact) error {
	for round := 0; len(cs) > 0; round++ {
		inputs := make([]upsertInput, len(cs))
		for i, c := range cs {
			inputs[i] = upsertInput{IDProperty: "email", ID: c.email, TraceID: c.trace, Properties: c.props}
		}
		body, err := json.Marshal(map[string]any{"inputs": inputs})
		if err != nil {
			return fmt.Errorf("hubspot: encode upsert: %w", err)
		}
		a, err := s.send(ctx, http.MethodPost, upsertPath, body)
		if err != nil {
			// After a first round some rows are marked: a plain error keeps those marks and
			// retries the rest. A SinkDown drops them (the host sends the whole batch again
			// later, and HubSpot refuses the same inputs again).
			if _, down := sdk.AsSinkDown(err); !down && round > 0 {
				retryAll(b, cs, 0, err.Error(), 0)
				return nil
			}
			return err
		}
		switch {
		case a.status == http.StatusOK || a.status == http.StatusCreated:
			return nil
		case a.status == http.StatusMultiStatus:
			return s.multiStatus(b, cs, a)
		case a.status == http.StatusBadRequest || a.status == http.StatusConflict || a.status == http.StatusUnprocessableEntity:
			e := a.hubspotError()
			if err := s.configError(e, a.status); err != nil {
				return err
			}
			named, rest := e.split(cs)
			if len(named) == 0 && a.status == http.StatusConflict {
				// A conflict names no input when two writes of one contact raced: try again.
				retryAll(b, cs, 0, e.reason(a.status), a.status)
				return nil
			}
			if len(named) == 0 {
				// HubSpot did not say which input it refused: the host splits the batch.
				return sdk.RejectBatch(e.reason(a.status), a.status)
			}
			for _, c := range named {
				markAll(b, c, e, a.status)
			}
			if round+1 >= maxRounds {
				retryAll(b, rest, 0, "not sent: HubSpot refused other inputs of the request several times", a.status)
				return nil
			}
			cs = rest
		case a.status == http.StatusUnauthorized || a.status == http.StatusForbidden:
			e := a.hubspotError()
			return sdk.SinkDown(fmt.Errorf("hubspot: HubSpot refused the token (%d %s: %s): check the token and its scopes (crm.objects.contacts.write)",
				a.status, e.Category, truncate(e.Message, 200)), 0, a.status)
		case a.status == http.StatusTooManyRequests:
			return s.throttled(a)
		case a.status == 477: // migration in progress
			wait := sdk.RetryAfter(a.header.Get("Retry-After"), time.Now())
			s.pace.block(time.Now().Add(wait))
			return sdk.SinkDown(fmt.Errorf("hubspot: 477 migration in progress"), wait, a.status)
		case a.status == http.StatusLocked || a.status >= 500:
			wait := sdk.RetryAfter(a.header.Get("Retry-After"), time.Now())
			if a.status == http.StatusLocked {
				wait = max(wait, 2*time.Second) // HubSpot: wait at least 2 s for a locked record
			}
			retryAll(b, cs, wait, a.hubspotError().reason(a.status), a.status)
			return nil
		case a.status == http.StatusNotFound || a.status == http.StatusMethodNotAllowed:
			return sdk.SinkDown(fmt.Errorf("hubspot: %d for %s%s: check base_url", a.status, s.base, upsertPath), 0, a.status)
		default:
			return sdk.RejectBatch(a.hubspotError().reason(a.status), a.status)
		}
	}
	return nil
}

// throttled handles a 429. HubSpot's policyName says which limit was hit: the rolling
// window frees after its interval, the daily limit at the next reset. Retry-After wins when
// HubSpot sends one.
func (s *Sink) throttled(a *answer) error {
	e := a.hubspotError()
	now := s.clock()
	wait := sdk.RetryAfter(a.header.Get("Retry-After"), now)
	if wait == 0 {
		switch e.PolicyName {
		case "DAILY":
			wait = nextDailyProbe(now).Sub(now)
		case "SECONDLY":
			wait = time.Second
		default: // TEN_SECONDLY_ROLLING
			wait = s.pace.interval
		}
	}
	s.pace.block(now.Add(wait))
	s.log.Warn("hubspot: rate limited by HubSpot", "sink", s.cfg.Name, "policy", e.PolicyName, "wait", wait)
	return sdk.SinkDown(fmt.Errorf("hubspot: 429 %s: %s", e.PolicyName, truncate(e.Message, 200)), wait, http.StatusTooManyRequests)
}

// accountColumns hold values the Rokt account defines, not the subscriber: a new calendar
// brings a new code that an enumeration property must be given as an option.
var accountColumns = []string{"calendar_code", "calendar_title", "calendar_id", "contact_calendars", "contact_ended_calendars", "account_code", "account_name", "account_id"}

// configError turns a refusal that no row can cure into a pause: a mapped property that
// HubSpot does not have, or a value of the status property or of an account-defined column
// (a new calendar's code) that the property does not offer. Left to the rows, the second
// would fail every subscriber of the new calendar for good. The schema is read again when
// the sink resumes.
func (s *Sink) configError(e *hubspotError, status int) error {
	for _, d := range e.details() {
		option := d.Error == "INVALID_OPTION" && (slices.Contains(s.statusProps, d.Name) || slices.Contains(s.accountProps, d.Name))
		if d.Error == "PROPERTY_DOESNT_EXIST" || option {
			s.schema = nil
			return sdk.Pause(fmt.Errorf("hubspot: %s: fix the property in HubSpot (add the option, or change the mapping), then resume the sink", e.reason(status)), status)
		}
	}
	return nil
}

// multiStatus marks the rows of the inputs a 207 answer lists as errors. Errors name their
// input by the objectWriteTraceId the sink sent (or by email). Should an error name no
// input, the inputs that the results do not confirm are retried.
func (s *Sink) multiStatus(b *sdk.Batch, cs []*contact, a *answer) error {
	var ms struct {
		Results []struct {
			TraceID    string            `json:"objectWriteTraceId"`
			Properties map[string]string `json:"properties"`
		} `json:"results"`
		Errors []*hubspotError `json:"errors"`
	}
	if err := json.Unmarshal(a.body, &ms); err != nil {
		retryAll(b, cs, 0, fmt.Sprintf("hubspot: unreadable 207 answer: %v", err), a.status)
		return nil
	}
	marked := map[*contact]bool{}
	var unnamed *hubspotError
	for _, e := range ms.Errors {
		if err := s.configError(e, a.status); err != nil {
			return err
		}
		named, _ := e.split(cs)
		if len(named) == 0 {
			unnamed = e
		}
		for _, c := range named {
			markAll(b, c, e, a.status)
			marked[c] = true
		}
	}
	if unnamed == nil {
		return nil
	}
	confirmed := map[string]bool{}
	for _, r := range ms.Results {
		confirmed["t:"+r.TraceID] = true
		confirmed["e:"+strings.ToLower(r.Properties["email"])] = true
	}
	for _, c := range cs {
		if !marked[c] && !confirmed["t:"+c.trace] && !confirmed["e:"+strings.ToLower(c.email)] {
			for _, q := range c.seqs {
				b.Retry(q, 0, unnamed.reason(a.status), a.status)
			}
		}
	}
	return nil
}

// markAll marks c's rows for HubSpot's error e: failed when the error is permanent
// (validation), retried otherwise.
func markAll(b *sdk.Batch, c *contact, e *hubspotError, status int) {
	for _, q := range c.seqs {
		if e.permanent() {
			b.Fail(q, e.reason(status), status)
		} else {
			b.Retry(q, 0, e.reason(status), status)
		}
	}
}

func retryAll(b *sdk.Batch, cs []*contact, after time.Duration, reason string, status int) {
	for _, c := range cs {
		for _, q := range c.seqs {
			b.Retry(q, after, reason, status)
		}
	}
}

// answer is HubSpot's answer to one request, read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// send makes one request once the pacer allows it. A wait longer than one rate-limit
// window, or one that would outlast ctx, returns SinkDown, so the host backs off without
// charging rows; a shorter one is slept here. Network errors are returned wrapped; any
// answer, whatever its status, is returned whole.
func (s *Sink) send(ctx context.Context, method, path string, body []byte) (*answer, error) {
	now := time.Now()
	if d := s.pace.delay(now); d > 0 {
		deadline, hasDeadline := ctx.Deadline()
		if d > s.pace.interval+s.pace.margin() || (hasDeadline && now.Add(d).After(deadline)) {
			return nil, sdk.SinkDown(errors.New("hubspot: holding requests back to stay within HubSpot's rate limits"), d, 0)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("hubspot: waiting for the rate limit: %w", ctx.Err())
		case <-t.C:
		}
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("hubspot: %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+s.set.Token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "hookbridge-hubspot/"+Version)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	sent := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		s.pace.done(sent, time.Now(), nil)
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL holds no secret, but says nothing the prefix does not
		}
		return nil, fmt.Errorf("hubspot: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	s.pace.done(sent, time.Now(), resp.Header)
	if err != nil {
		return nil, fmt.Errorf("hubspot: %s %s: read answer: %w", method, path, err)
	}
	return &answer{status: resp.StatusCode, header: resp.Header, body: raw}, nil
}

// ReusesRecordMemory: the sink reads batches as typed rows, which are copies, and keeps
// nothing of the record (sdk.RecordMemoryReuser).
func (s *Sink) ReusesRecordMemory() {}

// Close implements sdk.Sink.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		s.client.CloseIdleConnections()
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
