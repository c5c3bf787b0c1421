package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hookbridge/hookbridge/connector/importer"
	"github.com/hookbridge/hookbridge/connector/store"
	"github.com/hookbridge/hookbridge/simulate"
)

// question is one of the four analytics questions, asked of the store's views and, as the
// baseline, of the raw JSON lines through DuckDB's read_json. Both queries return the same
// small summary, so the answers can be compared. The store's query computes every column of
// its view (a hash of each whole row is taken), as a client reading the full answer would
// make it; a count alone lets DuckDB skip the columns nobody reads.
type question struct {
	name, store, raw string
	grouping         string // for the questions the kept tables answer: store's query over the view grouped afresh
}

// rawEvents turns the JSON lines into one row per distinct eventId with the fields the
// questions need, by the same rules as the decoder (first delivery wins, candidate keys for
// contact fields, ids lower-cased, postcodes normalised).
const rawEvents = `
WITH raw AS (
	SELECT received_at, body::JSON AS j
	FROM read_json('%s', format = 'newline_delimited', columns = {received_at: 'TIMESTAMPTZ', source: 'VARCHAR', body: 'VARCHAR'})
), ev_sent AS (
	SELECT DISTINCT ON (lower((j->>'$.eventId')))
		lower((j->>'$.eventId')) AS event_id,
		CASE (j->>'$.eventType') WHEN 'SubscriptionDetailsUpdate' THEN 'SubscriptionDetailsUpdated' ELSE (j->>'$.eventType') END AS event_type,
		lower(coalesce((j->>'$.eventDetails.calendarSubscriptionId'), (j->>'$.eventDetails.subscription.calendarSubscriptionId'))) AS subscription_id,
		lower(trim(coalesce((j->>'$.eventDetails.subscription.subscriberEmail'), (j->>'$.eventDetails.subscription.emailAddress'), (j->>'$.eventDetails.subscription.email')))) AS email_key,
		upper(regexp_replace(trim(coalesce((j->>'$.eventDetails.subscription.postcode'), (j->>'$.eventDetails.subscription.zip'), (j->>'$.eventDetails.subscription.zipCode'),
			(j->>'$.eventDetails.subscription.postalCode'), (j->>'$.eventDetails.subscription.channelFinderZipCode'))), '\s+', ' ', 'g')) AS postcode_sent,
		CASE WHEN json_type(j, '$.eventDetails.subscription.calendarTags') = 'ARRAY'
			THEN list_transform(json_extract_string(j, '$.eventDetails.subscription.calendarTags[*].tagId'), x -> lower(x)) END AS tag_ids,
		(j->>'$.eventDetails.subscription.calendarCode') AS calendar_code,
		CASE WHEN (j->>'$.eventType') = 'Unsubscribe' AND (j->>'$.eventDetails.subscription.removedDateTimeUtc') IS NOT NULL
			THEN strptime((j->>'$.eventDetails.subscription.removedDateTimeUtc'), '%%Y-%%m-%%d %%H:%%M:%%S.%%f')
			ELSE received_at::TIMESTAMP END AS occurred_at,
		received_at
	FROM raw
	ORDER BY lower((j->>'$.eventId')), received_at
), ev AS (
	-- a UK postcode typed without its space gets it back, as the decoder does
	-- a Subscribe ranks below every other event of its subscription, an earlier one above a later
	SELECT * EXCLUDE (postcode_sent), CASE WHEN event_type = 'Subscribe' THEN -epoch_us(received_at) ELSE epoch_us(received_at) END AS rank,
		CASE WHEN regexp_full_match(postcode_sent, '[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}')
		THEN postcode_sent[1:length(postcode_sent)-3] || ' ' || postcode_sent[length(postcode_sent)-2:] ELSE postcode_sent END AS postcode
	FROM ev_sent
), subs AS (
	SELECT subscription_id,
		bool_or(event_type = 'Unsubscribe') AS ended,
		-- an address, roughly as the decoder judges one (its subscription key is only a valid one's)
		arg_max(email_key, rank) FILTER (WHERE email_key LIKE '%%_@_%%._%%' AND NOT contains(email_key, ' ')) AS email_key,
		arg_max(postcode, rank) FILTER (WHERE postcode IS NOT NULL AND postcode <> '') AS postcode,
		arg_max(tag_ids, rank) FILTER (WHERE tag_ids IS NOT NULL AND event_type IN ('Subscribe', 'SubscriptionDetailsUpdated')) AS tag_ids
	FROM ev
	WHERE subscription_id IS NOT NULL AND event_type IN ('Subscribe', 'Unsubscribe', 'SubscriptionDetailsUpdated', 'SubscriptionEventAdded', 'SubscriptionEventRemoved')
	GROUP BY subscription_id
)
`

// analyticsQuestions returns the questions; the campaign runs from first to last, and its
// window is the campaign and 7 days either side. A question with no raw query shares the
// previous question's baseline.
func analyticsQuestions(file string, first, last time.Time) []question {
	pre := fmt.Sprintf(rawEvents, strings.ReplaceAll(file, "'", "''"))
	from, to := first.AddDate(0, 0, -7), last.AddDate(0, 0, 7)
	window := fmt.Sprintf("DATE '%s' AND DATE '%s'", from.Format("2006-01-02"), to.Format("2006-01-02"))
	return []question{
		{"1. mailing list (contacts, active subscriptions)",
			`SELECT count(*), sum(active_subscriptions) FROM mailing_list m WHERE hash(m) IS NOT NULL`,
			pre + `SELECT count(DISTINCT email_key), count(*) FROM subs WHERE NOT ended AND email_key IS NOT NULL`,
			`SELECT count(*), sum(active_subscriptions) FROM (` + store.MailingListGrouping() + `) m WHERE hash(m) IS NOT NULL`},
		{"2. campaign window ±7 days (subscribes, unsubscribes)",
			fmt.Sprintf(`SELECT sum(subscribes), sum(unsubscribes) FROM campaign_days(DATE '%s', DATE '%s', 7)`, first.Format("2006-01-02"), last.Format("2006-01-02")),
			pre + `SELECT count(*) FILTER (WHERE event_type = 'Subscribe'), count(*) FILTER (WHERE event_type = 'Unsubscribe') FROM ev
				WHERE event_type IN ('Subscribe', 'Unsubscribe') AND CAST(occurred_at AS DATE) BETWEEN ` + window, ""},
		{"2b. the same through subscriptions_daily WHERE day BETWEEN (reads every event)",
			`SELECT sum(subscribes), sum(unsubscribes) FROM subscriptions_daily WHERE day BETWEEN ` + window, "", ""},
		{"3. tag popularity by postcode (pairs, subscriptions)",
			`SELECT count(*), sum(subscriptions) FROM tag_popularity_by_postcode t WHERE hash(t) IS NOT NULL`,
			pre + `SELECT count(*), sum(n) FROM (SELECT postcode, tag_id, count(*) AS n FROM (SELECT postcode, unnest(tag_ids) AS tag_id FROM subs
				WHERE NOT ended AND postcode IS NOT NULL AND tag_ids IS NOT NULL) GROUP BY ALL)`,
			`SELECT count(*), sum(subscriptions) FROM (` + store.TagPopularityGrouping() + `) t WHERE hash(t) IS NOT NULL`},
		{"4. subscribes by weekday and hour (cells, busiest cell)",
			`SELECT count(*), max(subscribes) FROM subscribes_by_weekday_hour w WHERE zone = 'UTC' AND hash(w) IS NOT NULL`,
			pre + `SELECT count(*), max(n) FROM (SELECT isodow(occurred_at), hour(occurred_at), count(*) AS n FROM ev WHERE event_type = 'Subscribe' GROUP BY ALL)`, ""},
	}
}

// benchAnalytics loads simulated events through the import path, then times each question on
// the store against the same question over the raw JSON lines.
func benchAnalytics(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "bench analytics", "bench analytics [--events N] [--dir DIR] [--seed N] [--runs N]")
	sim := addSimulatedFlags(fs, 10_000_000)
	runs := fs.Int("runs", 3, "runs of each store query (the median is reported)")
	skipRaw := fs.Bool("skip-raw", false, "skip the raw-JSON baseline")
	if err := fs.Parse(args); err != nil {
		return err
	}
	campaign := simulate.New(sim.options()).Campaigns()[0]
	from, to := campaign.From.AddDate(0, 0, -7), campaign.To.AddDate(0, 0, 7)
	jsonl, dbPath, err := sim.load(ctx, e)
	if err != nil {
		return err
	}
	questions := analyticsQuestions(jsonl, campaign.From, campaign.To)
	fi, err := os.Stat(jsonl)
	if err != nil {
		return err
	}
	opened := time.Now()
	st, err := store.Open(ctx, store.Options{Path: dbPath, Logger: quietLogger()})
	if err != nil {
		return err
	}
	defer st.Close()
	size := fileSize(dbPath) + fileSize(dbPath+".wal")
	fmt.Fprintf(e.stdout, "store %s: %.0f MB on disk (JSON lines: %.0f MB), opened in %s; campaign window %s … %s\n\n",
		dbPath, float64(size)/1e6, float64(fi.Size())/1e6, time.Since(opened).Round(time.Millisecond), from.Format("2006-01-02"), to.Format("2006-01-02"))

	raw, err := store.OpenScratch(ctx, 2, "4GB")
	if err != nil {
		return err
	}
	defer raw.Close()

	// The store's questions first, so the memory high-water mark after them is the store's
	// own; then the raw-JSON baseline.
	stored := make([]answer, len(questions))
	for i, q := range questions {
		var times []time.Duration
		for r := 0; r < max(*runs, 1); r++ {
			start := time.Now()
			res, err := st.Query(ctx, q.store, 10, 5*time.Minute)
			if err != nil {
				return fmt.Errorf("%s: %w", q.name, err)
			}
			times = append(times, time.Since(start))
			var parts []string
			for _, v := range res.Rows[0] {
				parts = append(parts, fmt.Sprint(v))
			}
			stored[i].text = strings.Join(parts, " ")
		}
		slices.Sort(times)
		stored[i].took = times[len(times)/2]
	}
	storeRSS := peakRSS()
	if err := timeBehind(ctx, e, st, questions); err != nil {
		return err
	}

	raw, err = store.OpenScratch(ctx, 2, "4GB")
	if err != nil {
		return err
	}
	defer raw.Close()
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUESTION\tSTORE\tRAW JSON (read_json)\tSPEEDUP\tSTORE ANSWER\tSAME ANSWER")
	base := answer{text: "-"}
	for i, q := range questions {
		if !*skipRaw && q.raw != "" {
			start := time.Now()
			var a, b any
			if err := raw.QueryRowContext(ctx, q.raw).Scan(&a, &b); err != nil {
				return fmt.Errorf("%s (raw JSON): %w", q.name, err)
			}
			base = answer{time.Since(start), fmt.Sprint(a, b)}
		}
		speedup, same := "-", "-"
		if base.took > 0 {
			speedup = fmt.Sprintf("%.0f×", base.took.Seconds()/stored[i].took.Seconds())
			same = fmt.Sprint(base.text == stored[i].text)
			if base.text != stored[i].text {
				same += " (raw: " + base.text + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", q.name, stored[i].took.Round(time.Millisecond), base.took.Round(time.Millisecond), speedup, stored[i].text, same)
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "\npeak memory of this process (RSS high-water mark): %s after loading and the store's questions, %s with the raw-JSON baseline; %d cores\n", storeRSS, peakRSS(), runtime.NumCPU())
	return nil
}

// timeBehind times the questions that read the kept analytics tables (1 and 3) while about
// 20,000 subscriptions (one in 196) have changed since the tables were last refreshed, the
// most the writer lets wait under a steady stream. In a transaction that is rolled back, a
// third of them move to another contact and postcode, a third end, and a third are only
// touched; each answer is checked against grouping every subscription afresh.
func timeBehind(ctx context.Context, e *env, st *store.Store, questions []question) error {
	tx, err := st.DB().BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE subscriptions SET
		last_seq = last_seq + 1000000000000,
		email_key = CASE WHEN hash(subscription_id) // 196 % 3 = 0 THEN 'moved.' || email_key ELSE email_key END,
		postcode = CASE WHEN hash(subscription_id) // 196 % 3 = 0 THEN 'MOVED ' || postcode ELSE postcode END,
		status = CASE WHEN hash(subscription_id) // 196 % 3 = 1 THEN 'unsubscribed' ELSE status END
		WHERE hash(subscription_id) % 196 = 0`)
	if err != nil {
		return fmt.Errorf("change subscriptions: %w", err)
	}
	n, _ := res.RowsAffected()
	fmt.Fprintf(e.stdout, "with %d subscriptions changed since the kept tables were refreshed:\n", n)
	for _, q := range questions {
		if q.grouping == "" {
			continue
		}
		start := time.Now()
		var a, b, c, d any
		if err := tx.QueryRowContext(ctx, q.store).Scan(&a, &b); err != nil {
			return fmt.Errorf("%s: %w", q.name, err)
		}
		took := time.Since(start)
		if err := tx.QueryRowContext(ctx, q.grouping).Scan(&c, &d); err != nil {
			return fmt.Errorf("%s, grouped afresh: %w", q.name, err)
		}
		fmt.Fprintf(e.stdout, "  %s: %s (%v %v), same as grouped afresh: %v\n", q.name, took.Round(time.Millisecond), a, b, fmt.Sprint(a, b) == fmt.Sprint(c, d))
	}
	fmt.Fprintln(e.stdout)
	return nil
}

// answer is one question's time and result.
type answer struct {
	took time.Duration
	text string
}

// simulatedFlags name the simulated data set a benchmark runs on.
type simulatedFlags struct {
	events *int
	dir    *string
	seed   *uint64
}

func addSimulatedFlags(fs *flagSet, events int) simulatedFlags {
	return simulatedFlags{
		events: fs.Int("events", events, "simulated events in the store"),
		dir:    fs.String("dir", "./bench-data", "folder for the JSON-lines file and the store (reused when present)"),
		seed:   fs.Uint64("seed", 1, "simulation seed"),
	}
}

func (f simulatedFlags) options() simulate.Options {
	return simulate.Options{Seed: *f.seed, Count: *f.events}
}

// load makes, in the folder, the JSON-lines file of the simulated events and a store that has
// them imported, unless they are there already, and returns their paths.
func (f simulatedFlags) load(ctx context.Context, e *env) (jsonl, dbPath string, err error) {
	dir, events, seed := *f.dir, *f.events, *f.seed
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	jsonl = filepath.Join(dir, fmt.Sprintf("simulated-%d-seed%d.jsonl", events, seed))
	dbPath = filepath.Join(dir, fmt.Sprintf("store-%d-seed%d.duckdb", events, seed))
	if _, err := os.Stat(jsonl); err != nil {
		start := time.Now()
		if err := writeSimulation(simulate.New(f.options()), jsonl, events); err != nil {
			return "", "", err
		}
		fmt.Fprintf(e.stdout, "simulated %d events into %s in %s\n", events, jsonl, time.Since(start).Round(time.Second))
	}
	if _, err := os.Stat(dbPath); err == nil {
		return jsonl, dbPath, nil
	}
	in, err := os.Open(jsonl)
	if err != nil {
		return "", "", err
	}
	defer in.Close()
	// Import into a temporary name, so an interrupted import is not taken for a store.
	tmp := dbPath + ".loading"
	os.Remove(tmp)
	os.Remove(tmp + ".wal")
	st, err := store.Open(ctx, store.Options{Path: tmp, Logger: quietLogger()})
	if err != nil {
		return "", "", err
	}
	start := time.Now()
	bar := newProgressBar(e.stderr, "importing")
	p, err := importer.Import(ctx, bufio.NewReaderSize(in, 1<<20), st, importer.Options{Bulk: true, Progress: func(p importer.Progress) {
		bar.update(int(p.Lines), events)
	}})
	if err == nil {
		_, err = st.DB().ExecContext(ctx, "CHECKPOINT")
	}
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", "", err
	}
	took := time.Since(start)
	fmt.Fprintf(e.stdout, "imported %d lines (%d stored, %d duplicates) in %s: %.0f events/s\n", p.Lines, p.Accepted, p.Duplicates, took.Round(time.Second), float64(p.Lines)/took.Seconds())
	if err := os.Rename(tmp, dbPath); err != nil {
		return "", "", err
	}
	return jsonl, dbPath, nil
}

// writeSimulation writes count events as import lines.
func writeSimulation(g *simulate.Generator, path string, count int) error {
	tmp := path + ".part"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var buf []byte
	for i := 0; i < count; i++ {
		buf = simulate.AppendLine(buf[:0], g.Next(), "rokt")
		if _, err := w.Write(buf); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// peakRSS reads the process's resident-set high-water mark (Linux).
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
