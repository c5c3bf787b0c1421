package main

import (
	"strings"
	"testing"
	"time"
)

// TestDeliveriesBySinkShowStatusAndError: an attempt the destination answered with 400 shows
// that status and the destination's error in `deliveries --sink`, as it does with --event.
func TestDeliveriesBySinkShowStatusAndError(t *testing.T) {
	addr := startLedgerServer(t, "partner-endpoint", "refuse: refused@example.com")
	vars := map[string]string{"HOOKBRIDGE_SERVER": "http://" + addr}
	if code := postEvent(addr, subscribeBody("e1", "s1", "refused@example.com")); code != 200 {
		t.Fatalf("post: %d", code)
	}
	var out string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var err error
		if out, _, err = runCmd(t, vars, "deliveries", "--sink", "partner-endpoint", "--status", "failed"); err == nil && strings.Contains(out, "failed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed attempt listed: %v\n%s", err, out)
		}
	}
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "partner-endpoint") {
			line = l
			break
		}
	}
	// ID SINK STARTED(date time) TOOK ROWS OUTCOME STATUS DELIVERED RETRY FAILED ERROR
	f := strings.Fields(line)
	if len(f) < 12 || f[6] != "failed" || f[7] != "400" || !strings.Contains(line, "contact refused: refused@example.com") {
		t.Errorf("the failed attempt lacks its status or error:\n%s", out)
	}
}
