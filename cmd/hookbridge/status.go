package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hookbridge/hookbridge/connector/admin"
)

// statusUsage is status's usage line, with its exit statuses, which monitoring scripts rely on.
const statusUsage = `status [--server URL] [--json]

Exit status: 0 when the store is ready and no sink is paused; 1 when the server is not
ready or does not answer; 3 when it is ready but a sink is paused (until 'hookbridge sinks
resume NAME'). A sink backing off retries by itself and does not change the exit status.
The reason for a non-zero status goes to stderr.`

func cmdStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "status", statusUsage)
	af := addAdminFlags(fs)
	asJSON := fs.Bool("json", false, "print the admin API's JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var rep admin.StatusReport
	if err := af.client(e).do(ctx, "GET", "/admin/v1/status", nil, &rep); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
		return statusVerdict(rep)
	}
	if err := printStatus(e.stdout, rep); err != nil {
		return err
	}
	return statusVerdict(rep)
}

// statusVerdict is status's exit: nil when the store is ready and no sink is paused, an
// exit status 1 when the store is not ready, 3 when a sink is paused (see statusUsage).
func statusVerdict(rep admin.StatusReport) error {
	if !rep.Ready {
		return exitError{1, "status: the server is NOT READY: " + rep.Reason}
	}
	var paused []string
	for _, s := range rep.Sinks {
		if s.State != "paused" {
			continue
		}
		name := s.Name
		if s.PausedReason != "" {
			name += " (" + s.PausedReason + ")"
		}
		paused = append(paused, name)
	}
	if len(paused) > 0 {
		return exitError{3, "status: paused until resumed ('hookbridge sinks resume NAME'): " + strings.Join(paused, ", ")}
	}
	return nil
}

// printStatus writes the store's state and the sinks' table.
func printStatus(w io.Writer, rep admin.StatusReport) error {
	ready := "ready"
	if !rep.Ready {
		ready = "NOT READY: " + rep.Reason
	}
	fmt.Fprintf(w, "store: %s, events stored up to seq %d (subscription state merged up to %d)\n\n", ready, rep.StoredSeq, rep.StateSeq)
	if len(rep.Sinks) == 0 {
		_, err := fmt.Fprintln(w, "no sinks configured")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SINK\tPLUGIN\tTRIGGER\tSTATE\tCURSOR\tBEHIND\tPENDING\tDEAD\tLAG\tLAST ERROR")
	for _, s := range rep.Sinks {
		state := s.State
		if s.State == "paused" && s.PausedReason != "" {
			state += " (" + s.PausedReason + ")"
		}
		if s.State == "backing_off" {
			state += " until " + s.BackoffUntil.Local().Format(time.TimeOnly)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", s.Name, s.Plugin, s.Trigger, state, s.Cursor, max(s.StoredSeq-s.Cursor, 0),
			s.PendingRows, s.DeadLetters, (time.Duration(s.LagSeconds) * time.Second).String(), shortErr(s.LastError, s.LastErrorAt))
	}
	return tw.Flush()
}

func shortErr(msg string, at time.Time) string {
	if msg == "" {
		return "-"
	}
	if len(msg) > 80 {
		msg = msg[:80] + "…"
	}
	return at.Local().Format(time.TimeOnly) + " " + msg
}

func cmdSinks(ctx context.Context, e *env, args []string) error {
	if len(args) >= 1 && args[0] == "check" {
		return cmdSinksCheck(ctx, e, args[1:])
	}
	const usage = "usage: hookbridge sinks pause|resume NAME [--reason TEXT] | hookbridge sinks check [NAME…] --config FILE"
	if len(args) == 0 || (args[0] != "pause" && args[0] != "resume") {
		return usageError{usage}
	}
	verb := args[0]
	fs := newFlagSet(e, "sinks "+verb, "sinks "+verb+" NAME [--reason TEXT] [--server URL]")
	af := addAdminFlags(fs)
	reason := fs.String("reason", "", "why the sink is paused (shown by status)")
	if err := fs.Parse(reorder(args[1:])); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{usage}
	}
	name := fs.Arg(0)
	var body any
	if verb == "pause" {
		body = map[string]string{"reason": *reason}
	}
	var out map[string]string
	if err := af.client(e).do(ctx, "POST", "/admin/v1/sinks/"+name+"/"+verb, body, &out); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "sink %s: %s\n", out["sink"], out["state"])
	return nil
}
