package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hookbridge/hookbridge/connector/delivery"
)

func cmdDeliveries(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "deliveries", "deliveries [--sink S] [--status OUTCOME] [--event ID] [--since T] [--until T] [--limit N] [--after CURSOR]")
	af := addAdminFlags(fs)
	sink := fs.String("sink", "", "only this sink")
	status := fs.String("status", "", "only this outcome ("+strings.Join(delivery.AttemptOutcomes(), ", ")+"; with --event: "+strings.Join(delivery.RowOutcomes(), ", ")+")")
	event := fs.String("event", "", "only attempts that carried this eventId, with its row outcome")
	since := fs.String("since", "", "RFC 3339 time, or a duration ago such as 2h")
	until := fs.String("until", "", "RFC 3339 time, or a duration ago")
	limit := fs.Int("limit", 50, "rows per page (1-1000)")
	after := fs.String("after", "", "cursor printed at the end of the previous page")
	asJSON := fs.Bool("json", false, "print the admin API's JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkOutcome(*status, *event != ""); err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"sink": *sink, "status": *status, "event_id": *event, "since": *since, "until": *until, "after": *after} {
		if v != "" {
			q.Set(k, v)
		}
	}
	q.Set("limit", strconv.Itoa(*limit))
	var page delivery.Page[delivery.Attempt]
	if err := af.client(e).do(ctx, "GET", "/admin/v1/deliveries?"+q.Encode(), nil, &page); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e, page)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	if *event != "" {
		fmt.Fprintln(tw, "ID\tSINK\tSTARTED\tATTEMPT\tROW OUTCOME\tSTATUS\tNEXT ATTEMPT\tERROR")
		for _, a := range page.Items {
			next := "-"
			if a.Row.NextAttemptAt != nil {
				next = a.Row.NextAttemptAt.Local().Format(time.DateTime)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", a.ID, a.Sink, a.StartedAt.Local().Format(time.DateTime), a.Row.Attempt, a.Row.Outcome, code(a.Row.StatusCode), next, dash(a.Row.Error))
		}
	} else {
		fmt.Fprintln(tw, "ID\tSINK\tSTARTED\tTOOK\tROWS\tOUTCOME\tSTATUS\tDELIVERED\tRETRY\tFAILED\tERROR")
		for _, a := range page.Items {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t%s\n", a.ID, a.Sink, a.StartedAt.Local().Format(time.DateTime),
				a.FinishedAt.Sub(a.StartedAt).Round(time.Millisecond), a.Rows, a.Outcome, code(a.StatusCode), a.Delivered, a.Retried, a.Failed, dash(a.Error))
		}
	}
	tw.Flush()
	if page.Next != "" {
		fmt.Fprintf(e.stdout, "\nmore: --after %s\n", page.Next)
	}
	return nil
}

// checkOutcome refuses a --status value the history cannot hold, which would list nothing.
func checkOutcome(status string, byEvent bool) error {
	if status == "" {
		return nil
	}
	known, what := delivery.AttemptOutcomes(), "an attempt"
	if byEvent {
		known, what = delivery.RowOutcomes(), "a row (with --event)"
	}
	if slices.Contains(known, status) {
		return nil
	}
	return usageError{fmt.Sprintf("--status %q is not an outcome of %s: use one of %s", status, what, strings.Join(known, ", "))}
}

func cmdDeadLetters(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "dead-letters", "dead-letters [--sink S] [--all] [--limit N] [--after CURSOR]")
	af := addAdminFlags(fs)
	sink := fs.String("sink", "", "only this sink")
	all := fs.Bool("all", false, "include dead letters a replay has since delivered")
	limit := fs.Int("limit", 50, "rows per page (1-1000)")
	after := fs.String("after", "", "cursor printed at the end of the previous page")
	asJSON := fs.Bool("json", false, "print the admin API's JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	if *sink != "" {
		q.Set("sink", *sink)
	}
	if *all {
		q.Set("all", "true")
	}
	if *after != "" {
		q.Set("after", *after)
	}
	var page delivery.Page[delivery.DeadLetter]
	if err := af.client(e).do(ctx, "GET", "/admin/v1/dead-letters?"+q.Encode(), nil, &page); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e, page)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SINK\tSEQ\tEVENT ID\tTYPE\tATTEMPTS\tDEAD AT\tSTATUS\tERROR\tRESOLVED")
	for _, d := range page.Items {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\t%s\t%v\n", d.Sink, d.Seq, d.EventID, d.EventType, d.Attempts, d.DeadAt.Local().Format(time.DateTime), code(d.StatusCode), d.Error, d.Resolved)
	}
	tw.Flush()
	if page.Next != "" {
		fmt.Fprintf(e.stdout, "\nmore: --after %s\n", page.Next)
	}
	return nil
}

func printJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func code(c int) string {
	if c == 0 {
		return "-"
	}
	return strconv.Itoa(c)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
