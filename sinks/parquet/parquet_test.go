package parquet

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // reads the files back, as an analyst would

	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/plugins/sinktest"
	"github.com/hookbridge/hookbridge/schemas"
)

func openSink(t testing.TB, dir string, extra string) *Sink {
	t.Helper()
	s := New().(*Sink)
	raw := json.RawMessage(fmt.Sprintf(`{"path": %q%s}`, dir, extra))
	if err := s.Configure(context.Background(), sdk.Config{Name: "lake", Settings: raw}); err != nil {
		t.Fatal(err)
	}
	return s
}

func batch(t testing.TB, id string, rows []schemas.Row) *sdk.Batch {
	t.Helper()
	cols := append([]string{"seq", "event_id", "event_type"}, New().Spec().Columns...)
	var uniq []string
	for _, c := range cols {
		if !slices.Contains(uniq, c) {
			uniq = append(uniq, c)
		}
	}
	schema, err := schemas.SchemaFor(uniq)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := schemas.BuildRecord(nil, schema, rows)
	if err != nil {
		t.Fatal(err)
	}
	return sdk.NewBatch(id, 1, rec, nil)
}

// genRows makes n rows from seq first on, spread over days (hours apart).
func genRows(first int64, n int, every time.Duration) []schemas.Row {
	t0 := time.Date(2025, 9, 1, 20, 0, 0, 0, time.UTC)
	consent := true
	var out []schemas.Row
	for i := 0; i < n; i++ {
		seq := first + int64(i)
		at := t0.Add(time.Duration(seq) * every)
		r := schemas.Row{Seq: seq, EventID: fmt.Sprintf("ev-%06d", seq), EventType: "Subscribe", EventTypeSent: "Subscribe", Source: "rokt",
			ReceivedAt: at, OccurredAt: at, SubscriptionID: fmt.Sprintf("sub-%d", seq), CalendarCode: "cal", TagIDs: []string{"a", fmt.Sprint(seq % 3)},
			Email: fmt.Sprintf("u%d@example.com", seq), Postcode: "SW1A 1AA", Status: "subscribed", Raw: []byte(fmt.Sprintf(`{"eventId":"ev-%06d"}`, seq)), Flags: []string{}}
		if seq%2 == 0 {
			r.MarketingConsent = &consent
			r.FirstName = "Ann"
			start := time.Date(2025, 10, 4, 19, 10, 0, 0, time.UTC)
			r.EventStart, r.EventTimezone = &start, "Australia/Melbourne"
		}
		if seq%5 == 0 {
			r.EventType, r.EventTypeSent, r.Status = "Unsubscribe", "Unsubscribe", "unsubscribed"
			r.RemovedAt = &at
		}
		out = append(out, r)
	}
	return out
}

// lakeRow is what DuckDB reads back.
type lakeRow struct {
	Seq        int64
	EventID    string
	Type       string
	Received   time.Time
	Tags       any
	Email      sql.NullString
	First      sql.NullString
	Consent    sql.NullBool
	Removed    sql.NullTime
	Start      sql.NullTime
	Raw        []byte
	Status     sql.NullString
	Dt         string
	FileSuffix string
}

// readLake reads every file under dir through DuckDB's read_parquet with hive partitioning.
func readLake(t testing.TB, dir string) []lakeRow {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*.parquet"))
	if len(files) == 0 {
		return nil
	}
	q := fmt.Sprintf(`SELECT seq, event_id, event_type, received_at, tag_ids, email, first_name, marketing_consent, removed_at, event_start, raw, status, dt::VARCHAR
		FROM read_parquet('%s/*/*.parquet', hive_partitioning = true) ORDER BY seq`, dir)
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []lakeRow
	for rows.Next() {
		var r lakeRow
		if err := rows.Scan(&r.Seq, &r.EventID, &r.Type, &r.Received, &r.Tags, &r.Email, &r.First, &r.Consent, &r.Removed, &r.Start, &r.Raw, &r.Status, &r.Dt); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// compare checks the lake holds exactly rows, value for value.
func compare(t testing.TB, got []lakeRow, want []schemas.Row) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("the lake holds %d rows, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		var tags []string
		if l, ok := g.Tags.([]any); ok {
			for _, x := range l {
				tags = append(tags, x.(string))
			}
		}
		ok := g.Seq == w.Seq && g.EventID == w.EventID && g.Type == w.EventType && g.Received.Equal(w.ReceivedAt) &&
			slices.Equal(tags, w.TagIDs) && g.Email.String == w.Email && string(g.Raw) == string(w.Raw) && g.Status.String == w.Status &&
			g.First.Valid == (w.FirstName != "") && g.First.String == w.FirstName &&
			g.Consent.Valid == (w.MarketingConsent != nil) && (!g.Consent.Valid || g.Consent.Bool == *w.MarketingConsent) &&
			g.Removed.Valid == (w.RemovedAt != nil) && (!g.Removed.Valid || g.Removed.Time.Equal(*w.RemovedAt)) &&
			g.Start.Valid == (w.EventStart != nil) && (!g.Start.Valid || g.Start.Time.Equal(*w.EventStart)) &&
			g.Dt == w.ReceivedAt.UTC().Format("2006-01-02")
		if !ok {
			t.Fatalf("row %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	sinktest.Run(t, sinktest.Config{
		New:      New,
		Settings: json.RawMessage(fmt.Sprintf(`{"path": %q}`, dir)),
		BadSettings: map[string]json.RawMessage{
			"path":        json.RawMessage(`{}`),
			"compression": json.RawMessage(`{"path": "x", "compression": "lzma"}`),
			"prefix":      json.RawMessage(`{"path": "x", "prefix": "../up"}`),
			"raw":         json.RawMessage(`{"path": "x", "raw": "no"}`),
		},
		Reset: func(t *testing.T) { os.RemoveAll(dir); os.MkdirAll(dir, 0o755) },
		Delivered: func(t *testing.T, rows []schemas.Row) {
			got := readLake(t, dir)
			if len(got) != len(rows) {
				t.Fatalf("%d rows in the lake for %d sent", len(got), len(rows))
			}
			for i := range rows {
				if got[i].EventID != rows[i].EventID || got[i].Email.String != rows[i].Email {
					t.Errorf("row %d: %+v", i, got[i])
				}
			}
		},
	})
}

// TestRowForRow writes batches spanning several dates and reads them back through DuckDB.
func TestRowForRow(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, "")
	rows := genRows(1, 300, 37*time.Minute) // about eight days
	for i := 0; i < len(rows); i += 100 {
		if err := s.Write(context.Background(), batch(t, fmt.Sprint("b", i), rows[i:i+100])); err != nil {
			t.Fatal(err)
		}
	}
	compare(t, readLake(t, dir), rows)
	dates, _ := filepath.Glob(filepath.Join(dir, "dt=*"))
	if len(dates) < 7 {
		t.Errorf("%d partitions for eight days", len(dates))
	}
	// A file per batch and date, named after its seqs.
	files, _ := filepath.Glob(filepath.Join(dir, "dt=2025-09-01", "*.parquet"))
	if len(files) != 1 || filepath.Base(files[0]) != "events-00000000000000000001-00000000000000000006.parquet" {
		t.Errorf("first day's files: %v", files)
	}
}

// TestResendReplaces: the same batch twice, and after a crash the rows re-sent in batches
// of other bounds, leave every row in the lake once; a crash's temporary file is never read.
func TestResendReplaces(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, `, "compression": "snappy"`)
	rows := genRows(1, 200, 10*time.Minute)
	write := func(id string, rs []schemas.Row) {
		t.Helper()
		if err := s.Write(context.Background(), batch(t, id, rs)); err != nil {
			t.Fatal(err)
		}
	}
	write("b1", rows[:100])
	write("b1", rows[:100])
	compare(t, readLake(t, dir), rows[:100])
	// A crash left a half-written temporary file behind.
	day := filepath.Join(dir, "dt="+rows[0].ReceivedAt.Format("2006-01-02"))
	os.WriteFile(filepath.Join(day, ".events-x.parquet.123.tmp"), []byte("PAR1 half a file"), 0o644)
	// After the crash the engine re-sends from its cursor with other bounds: rows 51–150,
	// then 151–200.
	write("b2", rows[50:150])
	write("b3", rows[150:])
	compare(t, readLake(t, dir), rows)
	// And rows 21–60 again (a replay of a range straddling two files).
	write("replay", rows[20:60])
	compare(t, readLake(t, dir), rows)
	var names []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			names = append(names, filepath.Base(p))
		}
		return nil
	})
	sort.Strings(names)
	t.Logf("files: %v", names)
}

// TestInterleavedBatches: the engine keeps each subscription's events in order, so batches
// can hold interleaved seqs; files whose ranges overlap but whose rows differ all stay.
func TestInterleavedBatches(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, "")
	rows := genRows(1, 60, time.Minute)
	var odd, even []schemas.Row
	for _, r := range rows {
		if r.Seq%2 == 1 {
			odd = append(odd, r)
		} else {
			even = append(even, r)
		}
	}
	for i, b := range [][]schemas.Row{odd, even, even} {
		if err := s.Write(context.Background(), batch(t, fmt.Sprint("b", i), b)); err != nil {
			t.Fatal(err)
		}
	}
	compare(t, readLake(t, dir), rows)
}

// TestRawCanBeLeftOut: raw: false writes no raw column.
func TestRawCanBeLeftOut(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, `, "raw": false`)
	if err := s.Write(context.Background(), batch(t, "b1", genRows(1, 10, time.Minute))); err != nil {
		t.Fatal(err)
	}
	db, _ := sql.Open("duckdb", "")
	defer db.Close()
	var n int
	err := db.QueryRow(fmt.Sprintf(`SELECT count(*) FROM (DESCRIBE SELECT * FROM read_parquet('%s/*/*.parquet')) WHERE column_name = 'raw'`, dir)).Scan(&n)
	if err != nil || n != 0 {
		t.Errorf("raw column present (%d) %v", n, err)
	}
}

// TestUnwritableLakeIsSinkDown: a lake that cannot be written is the sink being down.
func TestUnwritableLakeIsSinkDown(t *testing.T) {
	// The lake's folder is replaced by a file (root may write anywhere, so permissions would
	// not do).
	dir := t.TempDir()
	s := openSink(t, dir, "")
	os.RemoveAll(dir)
	os.WriteFile(dir, []byte("not a folder"), 0o644)
	err := s.Write(context.Background(), batch(t, "b1", genRows(1, 3, time.Minute)))
	if _, ok := sdk.AsSinkDown(err); !ok {
		t.Fatalf("got %v, want sink down", err)
	}
}
