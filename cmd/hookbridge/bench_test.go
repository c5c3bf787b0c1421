package main

import (
	"strconv"
	"strings"
	"testing"
)

// TestBenchIngestRunsEveryScenario runs a very short bench ingest and checks that each
// scenario served requests and none failed: a scenario that answers errors (a broken
// receiver, a store refusing writes) shows up in the failed column.
func TestBenchIngestRunsEveryScenario(t *testing.T) {
	out, _, err := runCmd(t, nil, "bench", "ingest", "--conns", "4", "--warmup", "100ms", "--duration", "400ms", "--dir", t.TempDir())
	if err != nil {
		t.Fatalf("bench ingest: %v\n%s", err, out)
	}
	for _, name := range []string{"a. bare", "b. hookbridge serve", "c. one DuckDB", "d. receiver alone"} {
		var line string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, name) {
				line = l
			}
		}
		if line == "" {
			t.Fatalf("no line for %q in:\n%s", name, out)
		}
		// The columns after the name: events/s, p50, p99, failed, two ratios.
		f := strings.Fields(line)
		rate, err1 := strconv.ParseFloat(f[len(f)-6], 64)
		failed, err2 := strconv.Atoi(f[len(f)-3])
		if err1 != nil || err2 != nil || rate <= 0 || failed != 0 {
			t.Errorf("scenario %q: want a rate above 0 and no failures, got %q", name, line)
		}
	}
	for _, line := range []string{"targets: events/s b÷a", "what the durable write costs: events/s b÷d"} {
		if !strings.Contains(out, line) {
			t.Errorf("no %q line in:\n%s", line, out)
		}
	}
}
