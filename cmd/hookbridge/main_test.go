package main

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// asMainEnv makes the test binary behave as the hookbridge command, so tests can start real
// hookbridge processes (servers to kill, plugins to launch) without a separate build.
const asMainEnv = "HOOKBRIDGE_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	// A plugin process started by an in-process command (`plugin serve NAME`) must never run
	// the tests again, even when the variable was not passed on.
	if os.Getenv(asMainEnv) == "1" || (len(os.Args) > 2 && os.Args[1] == "plugin" && os.Args[2] == "serve") {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runCmd runs the command line in-process and returns what it printed.
func runCmd(t *testing.T, vars map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut syncBuffer
	e := &env{getenv: func(k string) string { return vars[k] }, stdin: nil, stdout: &out, stderr: &errOut}
	err = run(context.Background(), args, e)
	return out.String(), errOut.String(), err
}

// serve's logger writes durations readably and never a full email address, in both formats.
func TestServeLoggerMasksEmailsAndWritesDurations(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var out syncBuffer
		log, err := newLogger(&env{stderr: &out}, "info", format)
		if err != nil {
			t.Fatal(err)
		}
		log.Warn("delivery: rows dead-lettered", "err", errors.New("HubSpot: contact jane.doe@example.com exists"), "took", 1500*time.Millisecond)
		got := out.String()
		if strings.Contains(got, "jane.doe@example.com") || !strings.Contains(got, "j***@example.com") || !strings.Contains(got, "1.5s") {
			t.Errorf("%s: %s", format, got)
		}
	}
}
