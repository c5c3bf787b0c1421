package main

import (
	"strings"
	"testing"
	"time"
)

// TestReplaySaysWhatFailedAgain: a replay whose rows the sink refuses again ends with exit
// status 1 and says they were dead-lettered again; one the sink takes says they were
// delivered and exits 0.
func TestReplaySaysWhatFailedAgain(t *testing.T) {
	addr := startLedgerServer(t, "partner", "refuse: refused@example.com")
	vars := map[string]string{"HOOKBRIDGE_SERVER": "http://" + addr}
	for _, body := range []string{subscribeBody("e1", "s1", "refused@example.com"), subscribeBody("e2", "s2", "ok@example.com")} {
		if code := postEvent(addr, body); code != 200 {
			t.Fatalf("post: %d", code)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st := status(t, addr)
		if len(st.Sinks) == 1 && st.Sinks[0].Cursor == 2 && st.Sinks[0].DeadLetters == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the refused row was never dead-lettered: %+v", st.Sinks)
		}
	}
	out, _, err := runCmd(t, vars, "replay", "--sink", "partner", "--dead-letters")
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "1 of 1 row failed again") {
		t.Errorf("replay of a dead letter the sink refuses again: %v (exit status %d), want exit status 1\n%s", err, exitCode(err), out)
	}
	if !strings.Contains(out, "1 row: 0 delivered, 1 failed again (dead-lettered)") {
		t.Errorf("the replay's last line does not say the row failed again:\n%s", out)
	}
	out, _, err = runCmd(t, vars, "replay", "--sink", "partner", "--event", "e2")
	if err != nil || !strings.Contains(out, "1 row: 1 delivered, 0 failed again") {
		t.Errorf("replay of a row the sink takes: %v\n%s", err, out)
	}
}

// TestReplayUntilBeforeSince: an --until before --since is a usage error naming both.
func TestReplayUntilBeforeSince(t *testing.T) {
	vars := noServer
	for _, args := range [][]string{
		{"--since", "1h", "--until", "2h"},
		{"--since", "2026-01-02T00:00:00Z", "--until", "2026-01-01T00:00:00Z"},
		{"--since", "2026-01-01T00:00:00Z", "--until", "2026-01-01T00:00:00Z"},
	} {
		_, _, err := runCmd(t, vars, append([]string{"replay", "--sink", "crm"}, args...)...)
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "is not after --since") {
			t.Errorf("replay %v: %v (exit status %d), want a usage error", args, err, exitCode(err))
		}
	}
}
