package receiver

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Authenticator checks one request. Every authenticator a source has must pass. Secrets are
// compared in constant time.
type Authenticator interface {
	// Authenticate returns nil when the request carries valid credentials. pathToken is the
	// {token} path segment, if any; body is the raw body as received.
	Authenticate(r *http.Request, pathToken string, body []byte) error
	// NeedsBody reports whether Authenticate reads the body (signatures); others run before
	// the body is read.
	NeedsBody() bool
}

var errUnauthorized = errors.New("unauthorized")

// digest hashes secrets so comparisons take the same time whatever the lengths.
func digest(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func equalAny(got string, want [][32]byte) bool {
	g := digest(got)
	ok := 0
	for _, w := range want {
		ok |= subtle.ConstantTimeCompare(g[:], w[:])
	}
	return ok == 1
}

// TokenAuth accepts a request whose URL carries one of the tokens, as the last path segment
// (/webhooks/{source}/{token}) or as ?token=. Rokt signs nothing, so an unguessable URL is
// its default protection.
type TokenAuth struct{ tokens [][32]byte }

// NewTokenAuth accepts any of tokens (several allow rotation).
func NewTokenAuth(tokens ...string) *TokenAuth {
	a := &TokenAuth{}
	for _, t := range tokens {
		if t != "" {
			a.tokens = append(a.tokens, digest(t))
		}
	}
	return a
}

// Authenticate implements Authenticator.
func (a *TokenAuth) Authenticate(r *http.Request, pathToken string, _ []byte) error {
	t := pathToken
	if t == "" {
		t = r.URL.Query().Get("token")
	}
	if t == "" || !equalAny(t, a.tokens) {
		return fmt.Errorf("%w: missing or wrong token", errUnauthorized)
	}
	return nil
}

// NeedsBody implements Authenticator.
func (a *TokenAuth) NeedsBody() bool { return false }

// BasicAuth is HTTP basic authentication.
type BasicAuth struct{ user, pass [32]byte }

// NewBasicAuth accepts user and password.
func NewBasicAuth(user, password string) *BasicAuth {
	return &BasicAuth{user: digest(user), pass: digest(password)}
}

// Authenticate implements Authenticator.
func (a *BasicAuth) Authenticate(r *http.Request, _ string, _ []byte) error {
	u, p, ok := r.BasicAuth()
	if !ok {
		return fmt.Errorf("%w: no basic credentials", errUnauthorized)
	}
	uu, pp := digest(u), digest(p)
	if subtle.ConstantTimeCompare(uu[:], a.user[:])&subtle.ConstantTimeCompare(pp[:], a.pass[:]) != 1 {
		return fmt.Errorf("%w: wrong basic credentials", errUnauthorized)
	}
	return nil
}

// NeedsBody implements Authenticator.
func (a *BasicAuth) NeedsBody() bool { return false }

// StandardWebhooks verifies the Standard Webhooks scheme (standardwebhooks.com): the
// signature is base64(HMAC-SHA256(secret, id + "." + timestamp + "." + body)) under the
// webhook-id, webhook-timestamp and webhook-signature headers; the last may list several
// space-separated "v1,<sig>" entries (key rotation), any of which may match.
type StandardWebhooks struct {
	keys      [][]byte
	tolerance time.Duration
	now       func() time.Time
}

// NewStandardWebhooks accepts any of the whsec_ secrets; timestamps further than tolerance
// from now are refused (replay protection).
func NewStandardWebhooks(secrets []string, tolerance time.Duration, now func() time.Time) (*StandardWebhooks, error) {
	a := &StandardWebhooks{tolerance: tolerance, now: now}
	if a.now == nil {
		a.now = time.Now
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil {
			return nil, fmt.Errorf("receiver: standard webhooks secret is not whsec_<base64>: %w", err)
		}
		a.keys = append(a.keys, key)
	}
	if len(a.keys) == 0 {
		return nil, errors.New("receiver: standard webhooks needs a secret")
	}
	return a, nil
}

// Authenticate implements Authenticator.
func (a *StandardWebhooks) Authenticate(r *http.Request, _ string, body []byte) error {
	id := r.Header.Get("webhook-id")
	ts := r.Header.Get("webhook-timestamp")
	sigs := r.Header.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return fmt.Errorf("%w: webhook-id, webhook-timestamp and webhook-signature are required", errUnauthorized)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: webhook-timestamp is not a number", errUnauthorized)
	}
	if d := a.now().Sub(time.Unix(sec, 0)); d > a.tolerance || d < -a.tolerance {
		return fmt.Errorf("%w: webhook-timestamp is outside the %s tolerance", errUnauthorized, a.tolerance)
	}
	for _, key := range a.keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write([]byte(ts))
		mac.Write([]byte{'.'})
		mac.Write(body)
		want := mac.Sum(nil)
		for _, entry := range strings.Fields(sigs) {
			version, sig, ok := strings.Cut(entry, ",")
			if !ok || version != "v1" {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(sig)
			if err == nil && hmac.Equal(got, want) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: no webhook-signature matches", errUnauthorized)
}

// NeedsBody implements Authenticator.
func (a *StandardWebhooks) NeedsBody() bool { return true }

// HMACAuth verifies a hex or base64 HMAC-SHA256 of the raw body carried in a header, with an
// optional prefix such as "sha256=".
type HMACAuth struct {
	header string
	keys   [][]byte
	base64 bool
	prefix string
}

// NewHMACAuth accepts a signature made with any of secrets. encoding is hex or base64.
func NewHMACAuth(header string, secrets []string, encoding, prefix string) *HMACAuth {
	a := &HMACAuth{header: header, base64: encoding == "base64", prefix: prefix}
	for _, s := range secrets {
		if s != "" {
			a.keys = append(a.keys, []byte(s))
		}
	}
	return a
}

// Authenticate implements Authenticator.
func (a *HMACAuth) Authenticate(r *http.Request, _ string, body []byte) error {
	v := strings.TrimSpace(r.Header.Get(a.header))
	if v == "" {
		return fmt.Errorf("%w: no %s header", errUnauthorized, a.header)
	}
	v = strings.TrimPrefix(v, a.prefix)
	var got []byte
	var err error
	if a.base64 {
		got, err = base64.StdEncoding.DecodeString(v)
	} else {
		got, err = hex.DecodeString(strings.ToLower(v))
	}
	if err != nil {
		return fmt.Errorf("%w: %s is not a valid signature encoding", errUnauthorized, a.header)
	}
	for _, key := range a.keys {
		mac := hmac.New(sha256.New, key)
		mac.Write(body)
		if hmac.Equal(got, mac.Sum(nil)) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s does not match the body", errUnauthorized, a.header)
}

// NeedsBody implements Authenticator.
func (a *HMACAuth) NeedsBody() bool { return true }
