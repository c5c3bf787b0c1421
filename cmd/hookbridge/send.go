package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

func cmdSend(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "send", "send [--url URL] [--token TOKEN] FILE... (- reads standard input)")
	target := fs.String("url", "http://127.0.0.1:8080/webhooks/rokt", "webhook URL of a running hookbridge")
	token := fs.String("token", "", "source token, sent as ?token= (default $HOOKBRIDGE_SEND_TOKEN)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{"name at least one payload file (for example ../shared/fixtures/rokt/subscribe.json)"}
	}
	u, err := url.Parse(*target)
	if err != nil {
		return usageError{fmt.Sprintf("--url: %s", redactToken(err.Error()))}
	}
	if *token == "" {
		*token = e.getenv("HOOKBRIDGE_SEND_TOKEN")
	}
	if *token != "" {
		q := u.Query()
		q.Set("token", *token)
		u.RawQuery = q.Encode()
	}
	client := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	failed := 0
	for _, name := range fs.Args() {
		var body []byte
		if name == "-" {
			body, err = io.ReadAll(e.stdin)
		} else {
			body, err = os.ReadFile(name)
		}
		if err != nil {
			return fmt.Errorf("send: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("send: %w", hideToken(err, *token))
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("send: %s: %w (is 'hookbridge serve' running?)", name, hideToken(err, *token))
		}
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		fmt.Fprintf(e.stdout, "%s: %d %s\n", name, resp.StatusCode, strings.TrimSpace(string(answer)))
		if resp.StatusCode/100 != 2 {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("send: %d of %d not accepted", failed, fs.NArg())
	}
	return nil
}

// Source tokens travel in the webhook URL, as ?token= or as the segment after the source
// (/webhooks/SOURCE/TOKEN); what send and simulate print shows REDACTED in their place.
var (
	tokenQuery = regexp.MustCompile(`(?i)([?&]token=)[^&#\s"]*`)
	tokenPath  = regexp.MustCompile(`(/webhooks/[^/?#\s"]+/)[^/?#\s"]+`)
)

// redactToken hides the source token in a URL, or in a message that quotes one.
func redactToken(s string) string {
	s = tokenQuery.ReplaceAllString(s, "${1}REDACTED")
	return tokenPath.ReplaceAllString(s, "${1}REDACTED")
}

// hideToken returns err with the source token hidden from its message: in the URL a
// *url.Error quotes, and wherever else token (as given, or escaped for a URL) appears. The
// error it returns still unwraps to err's chain.
func hideToken(err error, token string) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redactToken(ue.URL)
	}
	msg := redactToken(err.Error())
	if token != "" {
		for _, t := range []string{token, url.QueryEscape(token), url.PathEscape(token)} {
			msg = strings.ReplaceAll(msg, t, "REDACTED")
		}
	}
	if msg == err.Error() {
		return err
	}
	return redactedError{msg: msg, err: err}
}

// redactedError is an error whose message had a secret removed.
type redactedError struct {
	msg string
	err error
}

func (r redactedError) Error() string { return r.msg }
func (r redactedError) Unwrap() error { return r.err }
