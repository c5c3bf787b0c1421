// Package mailchimp is the Mailchimp sink: it upserts audience members through the batch
// subscribe/update endpoint (500 members a request), with merge fields from the mapping and
// tags per calendar and per postcode. A calendar subscription is not marketing consent: a
// member is subscribed only when the row carries consent. An Unsubscribe removes that
// calendar's tag and unsubscribes the member only when no other subscription is active.
package mailchimp

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/schemas"
)

// Version is the sink's version.
const Version = "1.0.0"

// MaxMembers is the most members one batch subscribe/update takes.
const MaxMembers = 500

// MaxConnections is Mailchimp's limit of simultaneous connections per user.
const MaxConnections = 10

// Settings are the sink's settings.
type Settings struct {
	// APIKey ends in the data centre (…-us21), which names the host.
	APIKey string `json:"api_key"`
	// ListID is the audience.
	ListID string `json:"list_id"`
	// BaseURL overrides https://<dc>.api.mailchimp.com (tests, proxies).
	BaseURL string `json:"base_url,omitempty"`
	// DoubleOptIn makes consenting subscribers pending (Mailchimp sends a confirmation).
	DoubleOptIn bool `json:"double_opt_in,omitempty"`
	// ConsentColumn is the column that carries marketing consent: a boolean column, or a
	// text column read as consent when it says true, yes, y, 1 or on (any case). By default,
	// contact_marketing_consent (the person's latest statement over all their subscriptions,
	// so every row of a person says the same, whichever of them is sent), and
	// marketing_consent where a row lacks it.
	ConsentColumn string `json:"consent_column,omitempty"`
	// WithoutConsent is what a subscriber without consent becomes: pending (default), skip
	// (not sent) or transactional.
	WithoutConsent string `json:"without_consent,omitempty"`
	// TagsFrom names the columns that become tags (calendar_code: one tag per subscribed
	// calendar; postcode: one per postcode; …). The mapping can name them too (postcode:
	// tags, or postcode: "tags:zip-" for another prefix).
	TagsFrom []string `json:"tags_from,omitempty"`
	// MaxConnections caps simultaneous requests (at most 10, Mailchimp's limit).
	MaxConnections int `json:"max_connections,omitempty"`
	// Timeout bounds one request (default 120s, Mailchimp's own limit).
	Timeout string `json:"timeout,omitempty"`
}

const settingsSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["api_key", "list_id"],
  "properties": {
    "api_key": {"type": "string", "description": "Mailchimp API key; its suffix (-us21) names the data centre"},
    "list_id": {"type": "string", "description": "audience id"},
    "base_url": {"type": "string"},
    "double_opt_in": {"type": "boolean", "default": false},
    "consent_column": {"type": "string", "default": "marketing_consent", "description": "column carrying marketing consent: boolean, or text read as consent when true, yes, y, 1 or on (by default the person's latest statement, contact_marketing_consent, and marketing_consent where a row lacks it)"},
    "without_consent": {"enum": ["pending", "skip", "transactional"], "default": "pending"},
    "tags_from": {"type": "array", "items": {"enum": ["calendar_code", "postcode", "account_code", "country_code", "subscription_method"]}},
    "max_connections": {"type": "integer", "minimum": 1, "maximum": 10, "default": 10},
    "timeout": {"type": "string", "default": "120s"}
  }
}`

// tagColumns are the columns tags_from (or a tags entry of the mapping) may name; the sink
// always asks for them.
var tagColumns = []string{"calendar_code", "postcode", "account_code", "country_code", "subscription_method"}

// tagSource is a column that gives tags, and the prefix of their names.
type tagSource struct {
	column, prefix string
}

// tagsField is the mapping's field for a column that gives tags rather than a merge field:
// "tags" (the default prefix) or "tags:PREFIX".
const tagsField = "tags"

// notConsent lists the text columns that cannot carry marketing consent, and why.
var notConsent = func() map[string]string {
	m := map[string]string{}
	for _, c := range []string{"event_id", "event_type", "event_type_sent", "source", "account_id", "subscription_id", "calendar_id", "calendar_event_id", "calendar_code", "account_code", "email", "email_original", "email_key"} {
		m[c] = "identifies the event, the contact or the calendar"
	}
	for _, c := range []string{"status", "contact_status"} {
		m[c] = "is the calendar subscription's status, and a calendar subscription is not marketing consent"
	}
	for _, c := range []string{"account_name", "calendar_title", "event_title", "event_location", "event_description", "unsubscribe_reason", "user_agent"} {
		m[c] = "is free text, not a flag"
	}
	for _, c := range []string{"first_name", "last_name", "phone", "postcode", "country_code", "remote_ip", "geo_country", "event_timezone", "subscription_method"} {
		m[c] = "describes the contact or the event, it is not a flag"
	}
	return m
}()

// consentProblem says why col cannot be the consent column ("" when it can): it must be a
// boolean column, or a text column that is not listed in notConsent.
func consentProblem(col string) string {
	c, ok := schemas.LookupColumn(col)
	switch {
	case !ok:
		return fmt.Sprintf("%q is not a column of the normalised schema", col)
	case c.Type.ID() == arrow.BOOL:
		return ""
	case c.Type.ID() != arrow.STRING:
		return fmt.Sprintf("%q is a %s column: want a boolean column, or a text column reading true/yes/y/1/on", col, c.Type)
	case notConsent[col] != "":
		return fmt.Sprintf("%q %s: want a boolean column, or a text column reading true/yes/y/1/on", col, notConsent[col])
	}
	return ""
}

// consentColumns are the columns consent_column may name; the sink asks the host for all of
// them, because its spec is read before its settings.
var consentColumns = func() []string {
	var out []string
	for _, c := range schemas.Columns() {
		if consentProblem(c.Name) == "" {
			out = append(out, c.Name)
		}
	}
	return out
}()

// truthy reads a text consent value: true, yes, y, 1 or on, in any case.
func truthy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "y", "1", "on":
		return true
	}
	return false
}

// tagPrefix names the tags made from a column.
func tagPrefix(col string) string {
	switch col {
	case "calendar_code":
		return "calendar:"
	default:
		return col + ":"
	}
}

var (
	keyRE      = regexp.MustCompile(`^[0-9a-zA-Z]+-([a-z]+[0-9]+)$`)
	mergeTagRE = regexp.MustCompile(`^[A-Z0-9_]{1,10}$`)
)

// Sink upserts Mailchimp audience members.
type Sink struct {
	mu     sync.Mutex
	cfg    sdk.Config
	set    Settings
	base   string
	client *http.Client
	merge  []schemas.MappingPair
	tags   []tagSource
	// contactConsent: consent_column was left to its default, so a row's
	// contact_marketing_consent, when it has one, says what consent is.
	contactConsent bool
}

// New returns an unconfigured sink.
func New() sdk.Sink { return &Sink{} }

// Spec implements sdk.Sink.
func (s *Sink) Spec() sdk.Spec {
	return sdk.Spec{Name: "mailchimp", Version: Version, Description: "upserts Mailchimp audience members (batch subscribe/update) with merge fields and tags",
		Settings: json.RawMessage(settingsSchema), EventTypes: []string{"Subscribe", "Unsubscribe", "SubscriptionDetailsUpdated"},
		MaxBatchRows: MaxMembers, KeyColumn: "email_key",
		Columns: specColumns()}
}

// specColumns are the columns the sink reads besides its mapping: the contact's state, the
// tag columns and every column that may carry consent.
func specColumns() []string {
	out := []string{"email", "contact_status", "contact_active_subscriptions", "contact_calendars", "contact_ended_calendars"}
	for _, c := range append(append([]string{}, tagColumns...), consentColumns...) {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// Configure implements sdk.Sink; it makes no network call.
func (s *Sink) Configure(ctx context.Context, cfg sdk.Config) error {
	var set Settings
	if err := sdk.DecodeSettings(cfg.Settings, &set); err != nil {
		return err
	}
	set.APIKey = strings.TrimSpace(set.APIKey)
	m := keyRE.FindStringSubmatch(set.APIKey)
	if m == nil {
		return &sdk.SettingsError{Field: "api_key", Message: "want a Mailchimp API key ending in its data centre, like …-us21"}
	}
	if strings.TrimSpace(set.ListID) == "" || strings.ContainsAny(set.ListID, "/?#") {
		return &sdk.SettingsError{Field: "list_id", Message: "is required (the audience id, Audience → Settings → Audience name and defaults)"}
	}
	base := "https://" + m[1] + ".api.mailchimp.com"
	if set.BaseURL != "" {
		u, err := url.Parse(set.BaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return &sdk.SettingsError{Field: "base_url", Message: "want an absolute http(s) URL"}
		}
		base = strings.TrimRight(set.BaseURL, "/")
	}
	contactConsent := set.ConsentColumn == ""
	if contactConsent {
		set.ConsentColumn = "marketing_consent"
	}
	if why := consentProblem(set.ConsentColumn); why != "" {
		return &sdk.SettingsError{Field: "consent_column", Message: why}
	}
	switch set.WithoutConsent {
	case "":
		set.WithoutConsent = "pending"
	case "pending", "skip", "transactional":
	default:
		return &sdk.SettingsError{Field: "without_consent", Message: fmt.Sprintf("%q: use pending, skip or transactional", set.WithoutConsent)}
	}
	var tags []tagSource
	for _, c := range set.TagsFrom {
		if !slices.Contains(tagColumns, c) {
			return &sdk.SettingsError{Field: "tags_from", Message: fmt.Sprintf("%q: tags come from %s", c, strings.Join(tagColumns, ", "))}
		}
		if slices.ContainsFunc(tags, func(t tagSource) bool { return t.column == c }) {
			return &sdk.SettingsError{Field: "tags_from", Message: fmt.Sprintf("%q is named twice", c)}
		}
		tags = append(tags, tagSource{c, tagPrefix(c)})
	}
	if set.MaxConnections == 0 {
		set.MaxConnections = MaxConnections
	}
	if set.MaxConnections < 1 || set.MaxConnections > MaxConnections {
		return &sdk.SettingsError{Field: "max_connections", Message: "must be between 1 and 10 (Mailchimp allows 10 simultaneous connections)"}
	}
	timeout, err := sdk.DurationSetting("timeout", set.Timeout, 120*time.Second)
	if err != nil {
		return err
	}
	var merge []schemas.MappingPair
	if cfg.Mapping != nil {
		for _, p := range cfg.Mapping.Pairs() {
			if p.Column == "email" || p.Column == "email_key" {
				continue // the member's address, not a merge field
			}
			if prefix, ok := strings.CutPrefix(p.Field, tagsField); ok && (prefix == "" || prefix[0] == ':') {
				switch {
				case !slices.Contains(tagColumns, p.Column):
					return &sdk.SettingsError{Field: "mapping", Message: fmt.Sprintf("%s: %s: tags come from %s", p.Column, p.Field, strings.Join(tagColumns, ", "))}
				case slices.ContainsFunc(tags, func(t tagSource) bool { return t.column == p.Column }):
					return &sdk.SettingsError{Field: "mapping", Message: fmt.Sprintf("%s: %s: the column gives tags through tags_from already", p.Column, p.Field)}
				case prefix == "":
					prefix = tagPrefix(p.Column)
				default:
					prefix = prefix[1:]
				}
				tags = append(tags, tagSource{p.Column, prefix})
				continue
			}
			if !mergeTagRE.MatchString(p.Field) {
				return &sdk.SettingsError{Field: "mapping", Message: fmt.Sprintf("%s: Mailchimp merge tags are up to 10 capitals, digits or _ (FNAME, LNAME, ZIP)", p.Field)}
			}
			merge = append(merge, p)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg, s.set, s.base, s.merge, s.tags, s.contactConsent = cfg, set, base, merge, tags, contactConsent
	s.client = &http.Client{Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{Proxy: http.ProxyFromEnvironment, MaxConnsPerHost: set.MaxConnections, MaxIdleConnsPerHost: set.MaxConnections}}
	return nil
}

// member is one entry of a batch subscribe/update.
type member struct {
	EmailAddress string            `json:"email_address"`
	Status       string            `json:"status"`
	MergeFields  map[string]string `json:"merge_fields,omitempty"`
	Tags         []string          `json:"tags,omitempty"`
}

type tagChange struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

// plan is what one row becomes.
type plan struct {
	seq    int64
	member member
	tags   []tagChange // the member's tags afterwards: active and inactive
	done   bool        // refused or to be retried: no further request for it
}

// planRow decides a row's member status, merge fields and tags; ok is false for a row the
// settings say to skip.
func (s *Sink) planRow(r *schemas.Row) (plan, bool, string) {
	email := strings.TrimSpace(r.Email)
	if email == "" {
		return plan{}, false, "no email: Mailchimp members are keyed by email"
	}
	if _, _, ok := schemas.NormalizeEmail(email); !ok {
		// Mailchimp refuses it anyway; not sending it spares the request.
		return plan{}, false, "not an email address (the sender's placeholder or a typo): not sent"
	}
	p := plan{seq: r.Seq, member: member{EmailAddress: email}}
	// Without the contact columns, the event itself says (an Unsubscribe ends, else subscribed).
	st := r.ContactState()
	active := st == schemas.StatusSubscribed || (st == "" && r.EventType != string(schemas.Unsubscribe))
	consent := false
	v, _ := r.Value(s.set.ConsentColumn)
	if s.contactConsent && r.ContactMarketingConsent != nil {
		v = *r.ContactMarketingConsent
	}
	switch x := v.(type) {
	case bool:
		consent = x
	case string:
		consent = truthy(x)
	}
	switch {
	case !active && !consent && s.set.WithoutConsent == "skip":
		// Without consent this sink never sent the person: nothing to end, and no data of
		// theirs to upload.
		return plan{}, false, ""
	case !active:
		p.member.Status = "unsubscribed"
	case consent && s.set.DoubleOptIn:
		p.member.Status = "pending"
	case consent:
		p.member.Status = "subscribed"
	case s.set.WithoutConsent == "skip":
		return plan{}, false, ""
	default:
		p.member.Status = s.set.WithoutConsent
	}
	for _, m := range s.merge {
		v, err := r.Value(m.Column)
		if err != nil || v == nil {
			continue
		}
		if p.member.MergeFields == nil {
			p.member.MergeFields = map[string]string{}
		}
		p.member.MergeFields[m.Field] = mergeValue(v)
	}
	on := map[string]bool{}
	var ended []string
	for _, ts := range s.tags {
		if ts.column == "calendar_code" {
			// One tag per calendar subscribed now; ended calendars lose theirs.
			for _, c := range r.ContactCalendars {
				on[ts.prefix+c] = true
			}
			if r.ContactCalendars == nil && active && r.CalendarCode != "" {
				on[ts.prefix+r.CalendarCode] = true
			}
			for _, c := range r.ContactEndedCalendars {
				ended = append(ended, ts.prefix+c)
			}
			continue
		}
		if v, err := r.Value(ts.column); err == nil && v != nil && fmt.Sprint(v) != "" {
			on[ts.prefix+fmt.Sprint(v)] = true
		}
	}
	for t := range on {
		p.member.Tags = append(p.member.Tags, t)
		p.tags = append(p.tags, tagChange{t, "active"})
	}
	for _, t := range ended {
		if !on[t] {
			on[t] = true // once, should two sources name it
			p.tags = append(p.tags, tagChange{t, "inactive"})
		}
	}
	sort.Strings(p.member.Tags)
	sort.Slice(p.tags, func(i, j int) bool { return p.tags[i].Name < p.tags[j].Name })
	return p, true, ""
}

func mergeValue(v any) string {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format("2006-01-02")
	case []string:
		return strings.Join(x, ", ")
	default:
		return fmt.Sprint(x)
	}
}

// Write implements sdk.Sink. Statuses the row decides (subscribed with consent, unsubscribed
// when no subscription is left) are upserted with update_existing; pending and transactional
// only create members, so a member Mailchimp already has keeps its status (no second
// confirmation email, no downgrade), and gets its merge fields by PATCH instead. Tags of
// existing members, and removals, go through the tags endpoint.
func (s *Sink) Write(ctx context.Context, b *sdk.Batch) error {
	if b.Record != nil && len(b.Record.Schema().FieldIndices(s.set.ConsentColumn)) == 0 {
		// Every row would read as no consent: stop rather than make subscribers pending.
		return sdk.Pause(fmt.Errorf("mailchimp: the rows lack consent_column %s; the host sends the columns the sink's spec asks for, so it is older than the sink", s.set.ConsentColumn), 0)
	}
	rows, err := b.Rows()
	if err != nil {
		return fmt.Errorf("mailchimp: read batch: %w", err)
	}
	var hard, soft []*plan
	for i := range rows {
		p, ok, why := s.planRow(&rows[i])
		if !ok {
			if why != "" {
				b.Fail(rows[i].Seq, why, 0)
			}
			continue // skipped by without_consent: skip
		}
		if p.member.Status == "pending" || p.member.Status == "transactional" {
			soft = append(soft, &p)
		} else {
			hard = append(hard, &p)
		}
	}
	existing := map[*plan]bool{} // members Mailchimp had before this write
	if err := s.upsert(ctx, b, hard, true, existing); err != nil {
		return err
	}
	if err := s.upsert(ctx, b, soft, false, existing); err != nil {
		return err
	}
	var jobs []memberJob
	for _, p := range append(hard, soft...) {
		if p.done {
			continue
		}
		path := "/3.0/lists/" + url.PathEscape(s.set.ListID) + "/members/" + subscriberHash(p.member.EmailAddress)
		if existing[p] && p.member.Status != "subscribed" && p.member.Status != "unsubscribed" && len(p.member.MergeFields) > 0 {
			body, _ := json.Marshal(map[string]any{"merge_fields": p.member.MergeFields})
			jobs = append(jobs, memberJob{p, http.MethodPatch, path, body, "merge fields"})
		}
		if len(p.tags) > 0 && (existing[p] || slices.ContainsFunc(p.tags, func(t tagChange) bool { return t.Status == "inactive" })) {
			body, _ := json.Marshal(map[string]any{"tags": p.tags})
			jobs = append(jobs, memberJob{p, http.MethodPost, path + "/tags", body, "tags"})
		}
	}
	return s.followUp(ctx, b, jobs)
}

// upsert sends plans through the batch subscribe/update endpoint and marks the rows Mailchimp
// refused. Members that existed already are put in existing; with updateExisting false their
// status was left alone (ERROR_CONTACT_EXISTS), which is what the caller asked for.
func (s *Sink) upsert(ctx context.Context, b *sdk.Batch, plans []*plan, updateExisting bool, existing map[*plan]bool) error {
	if len(plans) == 0 {
		return nil
	}
	members := make([]member, len(plans))
	byEmail := map[string]*plan{}
	for i, p := range plans {
		members[i] = p.member
		byEmail[strings.ToLower(p.member.EmailAddress)] = p
	}
	body, err := json.Marshal(map[string]any{"members": members, "update_existing": updateExisting})
	if err != nil {
		return err
	}
	code, raw, err := s.request(ctx, http.MethodPost, "/3.0/lists/"+url.PathEscape(s.set.ListID), body)
	if err != nil {
		return err
	}
	type emailOnly struct {
		EmailAddress string `json:"email_address"`
	}
	var res struct {
		NewMembers     []emailOnly `json:"new_members"`
		UpdatedMembers []emailOnly `json:"updated_members"`
		Errors         []struct {
			EmailAddress string `json:"email_address"`
			Error        string `json:"error"`
			ErrorCode    string `json:"error_code"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("mailchimp: unreadable batch answer: %w", err)
	}
	answered := map[*plan]bool{}
	for _, m := range res.NewMembers {
		if p := byEmail[strings.ToLower(m.EmailAddress)]; p != nil {
			answered[p] = true
		}
	}
	for _, m := range res.UpdatedMembers {
		if p := byEmail[strings.ToLower(m.EmailAddress)]; p != nil {
			answered[p], existing[p] = true, true
		}
	}
	for _, e := range res.Errors {
		p := byEmail[strings.ToLower(e.EmailAddress)]
		if p == nil {
			continue
		}
		answered[p] = true
		switch {
		case !updateExisting && strings.EqualFold(e.ErrorCode, "ERROR_CONTACT_EXISTS"):
			existing[p] = true
		case transient(e.ErrorCode):
			b.Retry(p.seq, 0, strings.TrimSpace(e.ErrorCode+": "+e.Error), code)
			p.done = true
		default:
			b.Fail(p.seq, strings.TrimSpace(e.ErrorCode+": "+e.Error), code)
			p.done = true
		}
	}
	for _, p := range plans {
		if !answered[p] {
			// Neither created, updated nor refused: nothing says it went through.
			b.Retry(p.seq, 0, "Mailchimp's answer does not mention this member", code)
			p.done = true
		}
	}
	return nil
}

// memberJob is one request about one member after the batch upsert: its tags, or its merge
// fields when its status is to be left alone.
type memberJob struct {
	p            *plan
	method, path string
	body         []byte
	what         string
}

// followUp sends the member requests, max_connections at a time. The members themselves are
// upserted by now, so a failure here retries (or, for a 400, fails) only its row; the retry
// upserts the member again, which changes nothing, and repeats the request. When Mailchimp
// throttles, the requests not yet sent wait for the same pause instead of adding to the load.
// Only a refused API key stops the batch as a whole.
func (s *Sink) followUp(ctx context.Context, b *sdk.Batch, todo []memberJob) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan memberJob)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		down  error         // the key was refused
		pause time.Duration // Mailchimp throttled: the wait the remaining rows get
	)
	for range min(s.set.MaxConnections, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				mu.Lock()
				wait, stop := pause, down != nil
				mu.Unlock()
				if stop || wait > 0 {
					b.Retry(j.p.seq, wait, j.what+" not sent: Mailchimp throttled or refused the key", 0)
					continue
				}
				code, raw, err := s.request(ctx, j.method, j.path, j.body)
				if err == nil {
					continue
				}
				mu.Lock()
				wait = 0
				if sd, ok := sdk.AsSinkDown(err); ok {
					if throttled(code, raw) {
						pause = max(pause, sd.RetryAfter)
						wait = sd.RetryAfter
					} else if code == 401 || code == 403 {
						down = err
						cancel()
					}
				}
				mu.Unlock()
				if br, ok := sdk.AsRejected(err); ok {
					b.Fail(j.p.seq, j.what+": "+br.Reason, code) // this member's request, not the batch
				} else {
					b.Retry(j.p.seq, wait, j.what+": "+err.Error(), code)
				}
			}
		}()
	}
	for _, j := range todo {
		jobs <- j
	}
	close(jobs)
	wg.Wait()
	return down
}

// transient reports whether a per-member error code is worth another try.
func transient(code string) bool {
	c := strings.ToUpper(code)
	return strings.Contains(c, "TIMEOUT") || strings.Contains(c, "TRY_AGAIN") || strings.Contains(c, "TOO_MANY")
}

// answer turns a non-2xx answer into the error that steers the engine.
func (s *Sink) answer(code int, raw []byte, hdr http.Header) error {
	if code >= 200 && code < 300 {
		return nil
	}
	var prob struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
		Status int    `json:"status"`
	}
	json.Unmarshal(raw, &prob)
	what := strings.TrimSpace(fmt.Sprintf("%d %s: %s", code, prob.Title, prob.Detail))
	switch {
	case code == 429:
		return sdk.SinkDown(fmt.Errorf("mailchimp: %s", what), waitFor(hdr, 10*time.Second), code)
	case throttled(code, raw):
		return sdk.SinkDown(fmt.Errorf("mailchimp: 403 without a body: throttled"), waitFor(hdr, 30*time.Second), code)
	case code == 401 || code == 403:
		return sdk.SinkDown(fmt.Errorf("mailchimp: %s (check the API key)", what), time.Minute, code)
	case code == 404:
		return sdk.SinkDown(fmt.Errorf("mailchimp: %s (check list_id)", what), time.Minute, code)
	case code == 400:
		return sdk.RejectBatch("mailchimp: "+what, code)
	default:
		return fmt.Errorf("mailchimp: %s", what)
	}
}

// request makes one request and turns an answer other than 2xx into the error that steers the
// engine (see answer).
func (s *Sink) request(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	code, raw, hdr, err := s.call(ctx, method, path, body)
	if err != nil {
		return 0, nil, fmt.Errorf("mailchimp: %w", err)
	}
	if err := s.answer(code, raw, hdr); err != nil {
		return code, raw, err
	}
	return code, raw, nil
}

// call makes one request. At most max_connections run at once: the member requests go
// through that many workers, the rest one at a time, and the transport opens no more
// connections than that either.
func (s *Sink) call(ctx context.Context, method, path string, body []byte) (int, []byte, http.Header, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.SetBasicAuth("hookbridge", s.set.APIKey)
	req.Header.Set("User-Agent", "hookbridge-mailchimp/"+Version)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return 0, nil, nil, fmt.Errorf("%s %s: %w", method, path, ue.Err)
		}
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, raw, resp.Header, nil
}

// Check implements sdk.Checker: the key works, the audience exists, and so does every mapped
// merge field.
func (s *Sink) Check(ctx context.Context) error {
	if _, _, err := s.request(ctx, http.MethodGet, "/3.0/ping", nil); err != nil {
		return err
	}
	_, raw, err := s.request(ctx, http.MethodGet, "/3.0/lists/"+url.PathEscape(s.set.ListID)+"/merge-fields?count=1000", nil)
	if err != nil {
		return err
	}
	var mf struct {
		MergeFields []struct {
			Tag string `json:"tag"`
		} `json:"merge_fields"`
	}
	if err := json.Unmarshal(raw, &mf); err != nil {
		return fmt.Errorf("mailchimp: merge fields: %w", err)
	}
	have := map[string]bool{}
	for _, f := range mf.MergeFields {
		have[f.Tag] = true
	}
	var missing []string
	for _, m := range s.merge {
		if !have[m.Field] {
			missing = append(missing, m.Field)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("mailchimp: merge fields missing in the audience: %s", strings.Join(missing, ", "))
	}
	return nil
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

// subscriberHash is Mailchimp's member id: the MD5 of the lower-cased address.
func subscriberHash(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(sum[:])
}

// waitFor is the answer's Retry-After, or def when it has none.
func waitFor(hdr http.Header, def time.Duration) time.Duration {
	if d := sdk.RetryAfter(hdr.Get("Retry-After"), time.Now()); d > 0 {
		return d
	}
	return def
}

// throttled reports Mailchimp's two throttle answers: 429, and 403 without a body at high
// volume.
func throttled(code int, raw []byte) bool {
	return code == http.StatusTooManyRequests || (code == http.StatusForbidden && len(bytes.TrimSpace(raw)) == 0)
}
