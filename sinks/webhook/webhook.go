// Package webhook is the webhook sink: the Rokt Calendar feature turned around. hookbridge
// POSTs each event to a URL the user registers, signed with the Standard Webhooks scheme
// (webhook-id is the eventId, so receivers can de-duplicate), one event per request or the
// whole batch in one.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/schemas"
)

// Version is the sink's version.
const Version = "1.0.0"

// Settings are the sink's settings.
type Settings struct {
	// URL receives the POSTs (http or https).
	URL string `json:"url"`
	// Secret signs each request (Standard Webhooks, whsec_ followed by base64). Without it
	// requests go unsigned.
	Secret string `json:"secret,omitempty"`
	// Body is "original" (the Event Object exactly as Rokt sent it, the default) or
	// "normalised" (the normalised row as a JSON object, through the mapping if any).
	Body string `json:"body,omitempty"`
	// Batch sends each batch as one POST of a JSON array instead of one POST per event.
	Batch bool `json:"batch,omitempty"`
	// Headers are added to every request.
	Headers map[string]string `json:"headers,omitempty"`
	// Timeout bounds one request (Go duration, default 10s).
	Timeout string `json:"timeout,omitempty"`
	// Concurrency is how many events are in flight at once in per-event mode (default 4).
	Concurrency int `json:"concurrency,omitempty"`
}

const settingsSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["url"],
  "properties": {
    "url": {"type": "string", "format": "uri", "description": "endpoint that receives the POSTs"},
    "secret": {"type": "string", "pattern": "^whsec_", "description": "Standard Webhooks signing secret: whsec_ followed by base64"},
    "body": {"enum": ["original", "normalised"], "default": "original"},
    "batch": {"type": "boolean", "default": false, "description": "one POST per batch (a JSON array) instead of one per event"},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    "timeout": {"type": "string", "default": "10s"},
    "concurrency": {"type": "integer", "minimum": 1, "maximum": 32, "default": 4}
  }
}`

// Sink posts events to one endpoint.
type Sink struct {
	cfg     sdk.Config
	set     Settings
	key     []byte
	timeout time.Duration
	client  *http.Client
	mu      sync.Mutex
}

// New returns an unconfigured sink.
func New() sdk.Sink { return &Sink{} }

// Spec implements sdk.Sink. The raw body is always asked for (the original Event Object);
// every event is its own delivery, so there is no key column.
func (s *Sink) Spec() sdk.Spec {
	return sdk.Spec{Name: "webhook", Version: Version, Description: "POSTs each event to a URL, signed with the Standard Webhooks scheme",
		Settings: json.RawMessage(settingsSchema), MaxBatchRows: 100, Columns: []string{"raw", "received_at"}}
}

// Configure implements sdk.Sink.
func (s *Sink) Configure(ctx context.Context, cfg sdk.Config) error {
	var set Settings
	if err := sdk.DecodeSettings(cfg.Settings, &set); err != nil {
		return err
	}
	u, err := url.Parse(set.URL)
	if set.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &sdk.SettingsError{Field: "url", Message: "want an absolute http or https URL"}
	}
	var key []byte
	if set.Secret != "" {
		if !strings.HasPrefix(set.Secret, "whsec_") {
			return &sdk.SettingsError{Field: "secret", Message: "want whsec_ followed by base64 (a Standard Webhooks secret)"}
		}
		if key, err = base64.StdEncoding.DecodeString(strings.TrimPrefix(set.Secret, "whsec_")); err != nil || len(key) < 16 {
			return &sdk.SettingsError{Field: "secret", Message: "the part after whsec_ must be base64 of at least 16 bytes"}
		}
	}
	switch set.Body {
	case "":
		set.Body = "original"
	case "original", "normalised":
	default:
		return &sdk.SettingsError{Field: "body", Message: fmt.Sprintf("%q: use original or normalised", set.Body)}
	}
	timeout, err := sdk.DurationSetting("timeout", set.Timeout, 10*time.Second)
	if err != nil {
		return err
	}
	if set.Concurrency == 0 {
		set.Concurrency = 4
	}
	if set.Concurrency < 1 || set.Concurrency > 32 {
		return &sdk.SettingsError{Field: "concurrency", Message: "must be between 1 and 32"}
	}
	for name := range set.Headers {
		lower := strings.ToLower(name)
		if strings.HasPrefix(lower, "webhook-") || lower == "content-type" || lower == "content-length" || lower == "host" {
			return &sdk.SettingsError{Field: "headers", Message: fmt.Sprintf("%s is set by the sink", name)}
		}
	}
	if key == nil && cfg.Logger != nil {
		cfg.Logger.Warn("webhook: no secret: requests are not signed", "url", u.Redacted())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg, s.set, s.key, s.timeout = cfg, set, key, timeout
	s.client = &http.Client{
		Timeout: timeout,
		// A redirect is a failure: the receiver must be registered at its final URL.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: set.Concurrency, IdleConnTimeout: 90 * time.Second},
	}
	return nil
}

// Write implements sdk.Sink.
func (s *Sink) Write(ctx context.Context, b *sdk.Batch) error {
	rows, err := b.Rows()
	if err != nil {
		return err
	}
	if s.set.Batch {
		return s.writeBatch(ctx, b, rows)
	}
	// One POST per event, a few at a time. A 410 or a sink-wide refusal stops the batch.
	type outcome struct {
		i   int
		res result
	}
	sem := make(chan struct{}, s.set.Concurrency)
	out := make(chan outcome, len(rows))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i := range rows {
		sem <- struct{}{}
		if ctx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			body, err := s.body(b, &rows[i])
			if err != nil {
				out <- outcome{i, result{fail: "cannot encode the event: " + err.Error()}}
				return
			}
			res := s.post(ctx, rows[i].EventID, body)
			if res.sinkErr != nil {
				cancel()
			}
			out <- outcome{i, res}
		}(i)
	}
	wg.Wait()
	close(out)
	var sinkErr error
	for o := range out {
		r := &rows[o.i]
		switch {
		case o.res.sinkErr != nil:
			if sinkErr == nil {
				sinkErr = o.res.sinkErr
			}
		case o.res.fail != "":
			b.Fail(r.Seq, o.res.fail, o.res.status)
		case o.res.retry != "":
			b.Retry(r.Seq, o.res.wait, o.res.retry, o.res.status)
		}
	}
	// A 410, 429 or 503 stops the sink; the whole batch goes again once it resumes (events
	// that already went through are sent again with the same webhook-id, which receivers
	// de-duplicate).
	return sinkErr
}

// writeBatch sends the batch as one JSON array; the batch ID is the webhook-id.
func (s *Sink) writeBatch(ctx context.Context, b *sdk.Batch, rows []schemas.Row) error {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i := range rows {
		body, err := s.body(b, &rows[i])
		if err != nil {
			b.Fail(rows[i].Seq, "cannot encode the event: "+err.Error(), 0)
			continue
		}
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		buf.Write(body)
	}
	buf.WriteByte(']')
	res := s.post(ctx, b.ID, buf.Bytes())
	switch {
	case res.sinkErr != nil:
		return res.sinkErr
	case res.fail != "":
		return sdk.RejectBatch(res.fail, res.status)
	case res.retry != "":
		return fmt.Errorf("webhook: %s", res.retry)
	}
	return nil
}

// body returns what is posted for one row.
func (s *Sink) body(b *sdk.Batch, r *schemas.Row) ([]byte, error) {
	if s.set.Body == "original" {
		if !json.Valid(r.Raw) {
			// The sender's quirks (trailing commas, a BOM) stay in the stored body; receivers
			// get valid JSON: the normalised row stands in.
			return s.normalised(b, r)
		}
		return r.Raw, nil
	}
	return s.normalised(b, r)
}

func (s *Sink) normalised(b *sdk.Batch, r *schemas.Row) ([]byte, error) {
	obj := b.Fields(r)
	if obj == nil {
		var names []string
		for _, f := range b.Record.Schema().Fields() {
			if f.Name != "raw" {
				names = append(names, f.Name)
			}
		}
		obj = r.Map(names...)
	}
	obj["event_id"], obj["event_type"] = r.EventID, r.EventType
	return json.Marshal(obj)
}

// result is what one POST came to.
type result struct {
	status  int
	retry   string        // try this row again
	wait    time.Duration // the receiver's Retry-After
	fail    string        // refused for good
	sinkErr error         // the endpoint as a whole is gone or throttling
}

// post sends one signed request. Each attempt gets a fresh webhook-timestamp and signature;
// webhook-id stays the same.
func (s *Sink) post(ctx context.Context, id string, body []byte) result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.set.URL, bytes.NewReader(body))
	if err != nil {
		return result{fail: err.Error()}
	}
	for k, v := range s.set.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hookbridge-webhook/"+Version)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", ts)
	if s.key != nil {
		req.Header.Set("webhook-signature", Sign(s.key, id, ts, body))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return result{retry: "cancelled"}
		}
		var ue *url.Error
		if errors.As(err, &ue) && ue.Timeout() {
			return result{retry: fmt.Sprintf("no answer within %s", s.timeout)}
		}
		return result{retry: "request failed: " + stripURL(err, s.set.URL)}
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	code := resp.StatusCode
	reason := fmt.Sprintf("%d %s", code, http.StatusText(code))
	if s := strings.TrimSpace(string(snippet)); s != "" && code >= 300 {
		reason += ": " + truncate(s, 200)
	}
	wait := sdk.RetryAfter(resp.Header.Get("Retry-After"), time.Now())
	switch {
	case code >= 200 && code < 300:
		return result{status: code}
	case code >= 300 && code < 400:
		return result{status: code, fail: reason + " (redirects are not followed: register the final URL)"}
	case code == http.StatusGone:
		return result{status: code, sinkErr: sdk.Pause(fmt.Errorf("webhook: the endpoint answered %s: paused until resumed", reason), code)}
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		return result{status: code, sinkErr: sdk.SinkDown(fmt.Errorf("webhook: %s", reason), wait, code)}
	case code == http.StatusRequestTimeout || code == http.StatusConflict || code == http.StatusTooEarly || code >= 500:
		return result{status: code, retry: reason, wait: wait}
	default:
		return result{status: code, fail: reason}
	}
}

// Sign returns the Standard Webhooks signature header value for one request.
func Sign(key []byte, id, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	io.WriteString(mac, id+"."+timestamp+".")
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// stripURL removes the URL (which may carry a token) from a transport error.
func stripURL(err error, u string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return strings.ReplaceAll(err.Error(), u, "endpoint")
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
