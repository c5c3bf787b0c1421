package main

import (
	"strings"
	"testing"
)

// TestHelp: help asked for, in any of its forms, prints the command's own usage on stdout
// and is no error (exit status 0).
func TestHelp(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"help"}, []string{"Usage: hookbridge COMMAND", "check sinks' settings"}},
		{[]string{"--help"}, []string{"Usage: hookbridge COMMAND"}},
		{[]string{"help", "query"}, []string{"Usage: hookbridge query", "-format", "campaign_days", "subscription_changes", "mailing_list"}},
		{[]string{"query", "--help"}, []string{"Usage: hookbridge query", "-limit"}},
		{[]string{"query", "-h"}, []string{"Usage: hookbridge query"}},
		{[]string{"export", "--help"}, []string{"Usage: hookbridge export", "-out"}},
		{[]string{"import", "--help"}, []string{"Usage: hookbridge import", "-data"}},
		{[]string{"config", "--help"}, []string{"hookbridge config default", "hookbridge config check FILE", "README.md, section Configuration"}},
		{[]string{"config", "help"}, []string{"hookbridge config check FILE"}},
		{[]string{"config", "check", "--help"}, []string{"Usage: hookbridge config check FILE"}},
		{[]string{"config", "default", "--help"}, []string{"Usage: hookbridge config default", "README.md, section Configuration"}},
		{[]string{"help", "config"}, []string{"hookbridge config check FILE"}},
		{[]string{"sinks", "--help"}, []string{"sinks pause|resume NAME", "sinks check"}},
		{[]string{"sinks", "pause", "--help"}, []string{"Usage: hookbridge sinks pause NAME", "-reason"}},
		{[]string{"sinks", "check", "--help"}, []string{"Usage: hookbridge sinks check"}},
		{[]string{"plugins", "--help"}, []string{"hookbridge plugins list"}},
		{[]string{"version", "--help"}, []string{"Usage: hookbridge version"}},
		{[]string{"status", "--help"}, []string{"Usage: hookbridge status", "-json"}},
	} {
		out, errOut, err := runCmd(t, nil, c.args...)
		if err != nil {
			t.Errorf("%v: %v (exit status %d), want none", c.args, err, exitCode(err))
		}
		if errOut != "" {
			t.Errorf("%v wrote on stderr: %q", c.args, errOut)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: stdout lacks %q:\n%s", c.args, w, out)
			}
		}
	}
}

// TestHelpOnMistakes: a mistake still exits 2, with its usage on stderr.
func TestHelpOnMistakes(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"config"},
		{"config", "frobnicate"},
		{"config", "check"},
		{"sinks", "pause"},
		{"query"},
	} {
		if _, _, err := runCmd(t, nil, args...); err == nil || exitCode(err) != 2 {
			t.Errorf("%v: %v (exit status %d), want a usage error", args, err, exitCode(err))
		}
	}
	out, errOut, err := runCmd(t, nil, "query", "--no-such-flag", "SELECT 1")
	if err == nil || out != "" || !strings.Contains(errOut, "no-such-flag") || !strings.Contains(errOut, "Usage: hookbridge query") {
		t.Errorf("an unknown flag: %v\nstdout %q\nstderr %q", err, out, errOut)
	}
}

// TestUnknownFlagIsAUsageError: an unknown flag, or a flag given a value it cannot take, is a
// mistake on the command line like any other: exit status 2, the message and the command's
// usage on stderr, for every command that takes flags.
func TestUnknownFlagIsAUsageError(t *testing.T) {
	withSub := map[string][]string{
		"config": {"default", "check"}, "sinks": {"pause", "resume", "check"}, "plugins": {"list", "describe"},
		"bench": {"ingest", "analytics", "dashboard"}, "plugin": nil, // plugin serves a sink to hookbridge itself
	}
	var lines [][]string
	for _, c := range commands() {
		subs, ok := withSub[c.name]
		if !ok {
			lines = append(lines, []string{c.name})
		}
		for _, s := range subs {
			lines = append(lines, []string{c.name, s})
		}
	}
	for _, words := range lines {
		args := append(append([]string(nil), words...), "--bogus")
		out, errOut, err := runCmd(t, nil, args...)
		if err == nil || exitCode(err) != 2 {
			t.Errorf("%v: %v (exit status %d), want exit status 2", args, err, exitCode(err))
		}
		if out != "" || !strings.Contains(errOut, "-bogus") || !strings.Contains(errOut, "Usage: hookbridge "+words[0]) {
			t.Errorf("%v: stdout %q\nstderr %q\nwant the mistake and the usage on stderr", args, out, errOut)
		}
	}
	if _, _, err := runCmd(t, nil, "query", "--limit", "many", "SELECT 1"); err == nil || exitCode(err) != 2 {
		t.Errorf("query --limit many: %v (exit status %d), want exit status 2", err, exitCode(err))
	}
}
