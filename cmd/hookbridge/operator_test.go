package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookbridge/hookbridge/connector/admin"
	"github.com/hookbridge/hookbridge/connector/delivery"
)

// TestSendAndSimulateHideTheToken: send and simulate to a port nobody listens on fail
// without printing the source token, given with --token, in the query or in the path.
func TestSendAndSimulateHideTheToken(t *testing.T) {
	const secret = "s3cr3t-T0KEN-value"
	body := filepath.Join(t.TempDir(), "e.json")
	os.WriteFile(body, []byte(subscribeBody("e1", "s1", "a@example.com")), 0o644)
	for _, args := range [][]string{
		{"send", "--url", "http://127.0.0.1:1/webhooks/rokt", "--token", secret, body},
		{"send", "--url", "http://127.0.0.1:1/webhooks/rokt?token=" + secret, body},
		{"send", "--url", "http://127.0.0.1:1/webhooks/rokt/" + secret, body},
		{"send", "--url", "http://[::1/webhooks/rokt?token=" + secret, body}, // does not parse
		{"simulate", "--url", "http://127.0.0.1:1/webhooks/rokt?token=" + secret, "--count", "1", "--rate", "0"},
		{"simulate", "--url", "ftp://127.0.0.1:1/webhooks/rokt/" + secret},
	} {
		out, errOut, err := runCmd(t, map[string]string{"HOOKBRIDGE_SEND_TOKEN": secret}, args...)
		if err == nil {
			t.Errorf("%v: no error", args)
			continue
		}
		if all := out + errOut + errorLine(err); strings.Contains(all, secret) {
			t.Errorf("%v printed the token:\n%s", args, all)
		}
		if !strings.Contains(err.Error(), "REDACTED") {
			t.Errorf("%v: %v, want the token shown as REDACTED", args, err)
		}
	}
	// The message still says what went wrong, and the error still unwraps.
	_, _, err := runCmd(t, nil, "send", "--url", "http://127.0.0.1:1/webhooks/rokt", "--token", secret, body)
	if err == nil || !strings.Contains(err.Error(), "token=REDACTED") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("send to a closed port: %v", err)
	}
	var ue interface{ Timeout() bool }
	if !errors.As(err, &ue) {
		t.Errorf("send's error no longer unwraps to the transport's: %#v", err)
	}
}

func TestRedactToken(t *testing.T) {
	for in, want := range map[string]string{
		"http://h/webhooks/rokt?token=abc&x=1":   "http://h/webhooks/rokt?token=REDACTED&x=1",
		`Post "http://h/webhooks/rokt?token=a":`: `Post "http://h/webhooks/rokt?token=REDACTED":`,
		"http://h/webhooks/rokt/abc?x=1":         "http://h/webhooks/rokt/REDACTED?x=1",
		"http://h/webhooks/rokt":                 "http://h/webhooks/rokt",
		"http://h/webhooks/rokt?x=1&Token=abc":   "http://h/webhooks/rokt?x=1&Token=REDACTED",
	} {
		if got := redactToken(in); got != want {
			t.Errorf("redactToken(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestStatusExitStatus: status exits 0 when all is well (a sink backing off included), 1
// when the server is not ready or does not answer, 3 when a sink is paused, with the reason
// in the error main prints on stderr; --json exits the same way; --help says so.
func TestStatusExitStatus(t *testing.T) {
	var rep admin.StatusReport
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(rep)
	}))
	defer srv.Close()
	vars := map[string]string{"HOOKBRIDGE_SERVER": srv.URL}
	running := delivery.SinkStatus{Name: "crm", Plugin: "hubspot", State: "running"}
	backingOff := delivery.SinkStatus{Name: "warehouse", Plugin: "postgres", State: "backing_off"}
	paused := delivery.SinkStatus{Name: "partner", Plugin: "webhook", State: "paused", PausedReason: "maintenance"}
	for _, c := range []struct {
		rep  admin.StatusReport
		code int
		want string
	}{
		{admin.StatusReport{Ready: true}, 0, ""},
		{admin.StatusReport{Ready: true, Sinks: []delivery.SinkStatus{running, backingOff}}, 0, ""},
		{admin.StatusReport{Ready: false, Reason: "disk full"}, 1, "NOT READY: disk full"},
		{admin.StatusReport{Ready: false, Reason: "disk full", Sinks: []delivery.SinkStatus{paused}}, 1, "NOT READY: disk full"},
		{admin.StatusReport{Ready: true, Sinks: []delivery.SinkStatus{running, paused}}, 3, "partner (maintenance)"},
	} {
		rep = c.rep
		for _, args := range [][]string{{"status"}, {"status", "--json"}} {
			out, _, err := runCmd(t, vars, args...)
			if code := exitCode(err); (err == nil) != (c.code == 0) || (err != nil && code != c.code) {
				t.Errorf("%v of %+v: %v (exit status %d), want exit status %d", args, c.rep, err, code, c.code)
			}
			if err != nil && !strings.Contains(errorLine(err), c.want) {
				t.Errorf("%v of %+v: %q lacks %q", args, c.rep, errorLine(err), c.want)
			}
			if out == "" {
				t.Errorf("%v printed nothing on stdout", args)
			}
		}
	}
	if _, _, err := runCmd(t, noServer, "status"); exitCode(err) != 1 {
		t.Errorf("status without a server: %v (exit status %d), want 1", err, exitCode(err))
	}
	out, _, _ := runCmd(t, nil, "status", "--help")
	if !strings.Contains(out, "Exit status: 0 when") || !strings.Contains(out, "3 when") {
		t.Errorf("status --help does not give the exit statuses:\n%s", out)
	}
}

// TestDeliveriesStatusMustBeAnOutcome: a --status that no attempt (or, with --event, no row)
// can have is a usage error listing the ones there are, before any server is asked.
func TestDeliveriesStatusMustBeAnOutcome(t *testing.T) {
	vars := noServer
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--status", "bogus"}, "delivered, partial, retry, failed, sink_error, paused, split, error"},
		{[]string{"--status", "dead"}, "sink_error"},
		{[]string{"--event", "e1", "--status", "failed"}, "delivered, retry, dead, coalesced, accepted, not_sent"},
	} {
		_, _, err := runCmd(t, vars, append([]string{"deliveries"}, c.args...)...)
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("deliveries %v: %v (exit status %d), want a usage error listing %q", c.args, err, exitCode(err), c.want)
		}
	}
	// Known outcomes pass the check and reach the (absent) server.
	for _, args := range [][]string{{"--status", "sink_error"}, {"--event", "e1", "--status", "dead"}, {}} {
		if _, _, err := runCmd(t, vars, append([]string{"deliveries"}, args...)...); err == nil || !strings.Contains(err.Error(), "no hookbridge server answers") {
			t.Errorf("deliveries %v: %v, want it to ask the server", args, err)
		}
	}
}

// TestErrorLineAndServeUsage: a usage line is printed once prefixed ("usage: hookbridge …",
// not "hookbridge: usage: hookbridge …"), other errors after "hookbridge: "; serve's usage
// line names its logging flags.
func TestErrorLineAndServeUsage(t *testing.T) {
	_, _, err := runCmd(t, nil, "query")
	if got := errorLine(err); !strings.HasPrefix(got, "usage: hookbridge query") {
		t.Errorf("query without SQL prints %q", got)
	}
	_, _, err = runCmd(t, nil, "frobnicate")
	if got := errorLine(err); !strings.HasPrefix(got, "hookbridge: unknown command") {
		t.Errorf("an unknown command prints %q", got)
	}
	out, _, _ := runCmd(t, nil, "serve", "--help")
	first, _, _ := strings.Cut(out, "\n")
	if !strings.Contains(first, "[--log-level debug|info|warn|error]") || !strings.Contains(first, "[--log-format text|json]") {
		t.Errorf("serve's usage line: %q", first)
	}
}
