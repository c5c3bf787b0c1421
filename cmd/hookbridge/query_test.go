package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookbridge/hookbridge/connector/store"
)

// TestQueryNumbersThroughTheServer: through the admin API, integers print as exactly as
// they do from the file, in table, csv and json; floating-point values print as they do
// from the file.
func TestQueryNumbersThroughTheServer(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "hb.duckdb")
	addr := freeAddr(t)
	srv := startServer(t, addr, "--data", data)
	const q = "SELECT 12345678::BIGINT a, 9007199254740993::BIGINT b, 2097222 c, 18446744073709551615::UBIGINT u, 1.5::DOUBLE d, 1e20::DOUBLE big, 0.1::DOUBLE tenth, 123.45::DECIMAL(10, 2) m"
	want := map[string][]string{
		"table": {"12345678", "9007199254740993", "2097222", "18446744073709551615", "1.5", "1e+20", "0.1", "123.45"},
		"csv":   {"12345678,9007199254740993,2097222,18446744073709551615,1.5,1e+20,0.1,123.45\n"},
		"json":  {`"a": 12345678`, `"b": 9007199254740993`, `"c": 2097222`, `"u": 18446744073709551615`, `"d": 1.5`, `"tenth": 0.1`},
	}
	through := map[string]string{}
	for format, wants := range want {
		out, _, err := runCmd(t, map[string]string{"HOOKBRIDGE_SERVER": "http://" + addr}, "query", "--format", format, q)
		if err != nil {
			t.Fatalf("query --format %s through the server: %v", format, err)
		}
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("query --format %s through the server lacks %q:\n%s", format, w, out)
			}
		}
		if strings.Contains(out, "e+07") || strings.Contains(out, "e+06") || strings.Contains(out, "e+15") {
			t.Errorf("query --format %s through the server prints an integer in scientific notation:\n%s", format, out)
		}
		through[format] = out
	}
	srv.stop(t)
	for format := range want {
		out, _, err := runCmd(t, noServer, "query", "--data", data, "--format", format, q)
		if err != nil {
			t.Fatalf("query --format %s on the file: %v", format, err)
		}
		if out != through[format] {
			t.Errorf("query --format %s: the file gives\n%s\nthe server gave\n%s", format, out, through[format])
		}
	}
}

// TestQueryValuesThroughTheServer: dates, timestamps with and without a zone, intervals,
// structs, lists, maps and UUIDs print in their DuckDB forms (a TIMESTAMPTZ in RFC 3339),
// the same in table, csv and json, and the same through the server as from the file.
func TestQueryValuesThroughTheServer(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "hb.duckdb")
	addr := freeAddr(t)
	srv := startServer(t, addr, "--data", data)
	const q = `SELECT DATE '2025-10-10' AS d, timezone('Australia/Melbourne', TIMESTAMPTZ '2025-07-01 09:00:00+00') AS local,
		TIMESTAMPTZ '2025-07-01 09:00:00+00' AS instant, INTERVAL 90 MINUTE AS i, INTERVAL '1 month 3 days' AS i2,
		{'b': 1, 'a': DATE '2025-01-01'} AS st, [1, 2] AS l, ['x', NULL] AS ls, MAP {'k': 1} AS m,
		uuid '0a1b2c3d-0000-4000-8000-000000000001' AS u`
	want := []string{"2025-10-10", "2025-07-01 19:00:00", "2025-07-01T09:00:00Z", "01:30:00", "1 month 3 days",
		`{"b": 1, "a": "2025-01-01"}`, "[1, 2]", `["x", null]`, `{"k": 1}`, "0a1b2c3d-0000-4000-8000-000000000001"}
	wantJSON := `{
    "d": "2025-10-10",
    "local": "2025-07-01 19:00:00",
    "instant": "2025-07-01T09:00:00Z",
    "i": "01:30:00",
    "i2": "1 month 3 days",
    "st": {
      "b": 1,
      "a": "2025-01-01"
    },
    "l": [
      1,
      2
    ],
    "ls": [
      "x",
      null
    ],
    "m": {
      "k": 1
    },
    "u": "0a1b2c3d-0000-4000-8000-000000000001"
  }`
	check := func(where string, vars map[string]string, args ...string) map[string]string {
		outs := map[string]string{}
		for _, format := range []string{"table", "csv", "json"} {
			out, _, err := runCmd(t, vars, append([]string{"query", "--format", format}, append(args, q)...)...)
			if err != nil {
				t.Fatalf("query --format %s %s: %v", format, where, err)
			}
			outs[format] = out
		}
		recs, err := csv.NewReader(strings.NewReader(outs["csv"])).ReadAll()
		if err != nil || len(recs) != 2 || strings.Join(recs[1], "|") != strings.Join(want, "|") {
			t.Errorf("query --format csv %s: %v\n%q\nwant %q", where, err, recs, want)
		}
		for _, w := range want {
			if !strings.Contains(outs["table"], w) {
				t.Errorf("query --format table %s lacks %q:\n%s", where, w, outs["table"])
			}
		}
		if !strings.Contains(outs["json"], wantJSON) {
			t.Errorf("query --format json %s:\n%s\nwant\n%s", where, outs["json"], wantJSON)
		}
		var rows []map[string]any
		if err := json.Unmarshal([]byte(outs["json"]), &rows); err != nil || len(rows) != 1 {
			t.Errorf("query --format json %s: %v", where, err)
		}
		return outs
	}
	through := check("through the server", map[string]string{"HOOKBRIDGE_SERVER": "http://" + addr})
	srv.stop(t)
	local := check("on the file", noServer, "--data", data)
	for format, out := range local {
		if out != through[format] {
			t.Errorf("query --format %s: the file gives\n%s\nthe server gave\n%s", format, out, through[format])
		}
	}
}

// TestQueryLimitMustBePositive: --limit 0 or below is a usage error (exit status 2): the
// server would read it as its default, the file as no limit.
func TestQueryLimitMustBePositive(t *testing.T) {
	for _, n := range []string{"0", "-1"} {
		_, _, err := runCmd(t, noServer, "query", "--limit", n, "SELECT 1")
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "--limit "+n+": give 1 or more") {
			t.Errorf("query --limit %s: %v (exit status %d), want a usage error", n, err, exitCode(err))
		}
	}
	out, _, err := runCmd(t, nil, "query", "--help")
	if err != nil || !strings.Contains(out, "1 or more") {
		t.Errorf("query --help does not say --limit takes 1 or more: %v\n%s", err, out)
	}
}

// stop ends the server with SIGTERM and waits for it to exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	<-s.exited
}

// TestExportFormat: without --format, export writes the format the --out extension names;
// an extension that contradicts --format, or names no format export writes, is refused
// naming both.
func TestExportFormat(t *testing.T) {
	for _, c := range []struct {
		format, out, want, err string
	}{
		{"", "x.csv", "csv", ""},
		{"", "dir/x.CSV", "csv", ""},
		{"", "x.parquet", "parquet", ""},
		{"csv", "x.csv", "csv", ""},
		{"parquet", "x.parquet", "parquet", ""},
		{"csv", "x.txt", "csv", ""},
		{"parquet", "x", "parquet", ""},
		{"parquet", "x.csv", "", "--format parquet contradicts --out x.csv"},
		{"csv", "x.parquet", "", "--format csv contradicts --out x.parquet"},
		{"csv", "x.json", "", "--format csv contradicts --out x.json, whose extension .json means json"},
		{"", "x.json", "", "--out x.json: its extension .json means json, which export does not write"},
		{"", "x.ndjson", "", "--out x.ndjson: its extension .ndjson means json lines"},
		{"", "x.txt", "", "--out x.txt: the extension .txt names no format export writes"},
		{"", "x", "", "--out x has no extension"},
		{"xlsx", "x.csv", "", `--format "xlsx": use parquet or csv`},
	} {
		got, err := exportFormat(c.format, c.out)
		if got != c.want || (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("exportFormat(%q, %q) = %q, %v; want %q, error %q", c.format, c.out, got, err, c.want, c.err)
		}
		if err != nil && exitCode(err) != 2 {
			t.Errorf("exportFormat(%q, %q): exit status %d, want 2", c.format, c.out, exitCode(err))
		}
	}

	// End to end, on the file: --out x.csv without --format writes CSV.
	dir := t.TempDir()
	data := filepath.Join(dir, "hb.duckdb")
	lines := filepath.Join(dir, "events.jsonl")
	writeImportFile(t, lines, 3)
	if out, _, err := runCmd(t, noServer, "import", "--data", data, lines); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	csvPath := filepath.Join(dir, "events.csv")
	if out, _, err := runCmd(t, noServer, "export", "--data", data, "--table", "events", "--out", csvPath); err != nil {
		t.Fatalf("export --out events.csv: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(csvPath)
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(recs) != 4 || recs[0][0] != "seq" {
		t.Errorf("export --out events.csv wrote %d records (%v), starting %q", len(recs), err, b[:min(len(b), 8)])
	}
	if _, _, err := runCmd(t, noServer, "export", "--data", data, "--table", "events", "--format", "parquet", "--out", csvPath); err == nil {
		t.Error("export --format parquet --out events.csv: no error")
	}
}

// TestRowCount: one row is "(1 row)"; a result cut at the limit says so in one clause.
func TestRowCount(t *testing.T) {
	for _, c := range []struct {
		n         int
		truncated bool
		want      string
	}{
		{0, false, "(0 rows)\n"},
		{1, false, "(1 row)\n"},
		{2, false, "(2 rows)\n"},
		{1, true, "(1 row shown; there are more: raise --limit, or use hookbridge export)\n"},
		{2, true, "(2 rows shown; there are more: raise --limit, or use hookbridge export)\n"},
	} {
		res := &store.QueryResult{Columns: []store.QueryColumn{{Name: "x"}}, Truncated: c.truncated}
		for i := 0; i < c.n; i++ {
			res.Rows = append(res.Rows, []any{i})
		}
		var b bytes.Buffer
		if err := printResult(&b, res, "table"); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(b.String(), c.want) {
			t.Errorf("%d rows (truncated %v) end %q, want %q", c.n, c.truncated, b.String(), c.want)
		}
	}
}

// TestQueryUsageListsTheViews: query's usage names every analytics view the store makes (the
// store's test checks that its list is complete).
func TestQueryUsageListsTheViews(t *testing.T) {
	out, _, err := runCmd(t, nil, "query", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range store.AnalyticsViews() {
		if !strings.Contains(out, v) {
			t.Errorf("query --help lacks %s:\n%s", v, out)
		}
	}
}

// With --config and no --server, the CLI asks the server that configuration runs: on its
// admin listener, with its admin token.
func TestQueryFindsTheServerThroughItsConfiguration(t *testing.T) {
	dir := t.TempDir()
	addr, adminAddr := freeAddr(t), freeAddr(t)
	t.Setenv("HB_TEST_ADMIN_TOKEN", "admin-token-for-the-config-0123")
	cfg := filepath.Join(dir, "hb.yaml")
	os.WriteFile(cfg, []byte("listen: "+addr+"\ndata: "+filepath.Join(dir, "hb.duckdb")+"\nadmin:\n  listen: "+adminAddr+"\n  token: ${HB_TEST_ADMIN_TOKEN}\nsources:\n  - name: rokt\n"), 0o644)
	startServer(t, addr, "--config", cfg)
	out, errOut, err := runCmd(t, map[string]string{"HB_TEST_ADMIN_TOKEN": "admin-token-for-the-config-0123"}, "query", "--config", cfg, "--format", "csv", "SELECT count(*) AS n FROM events")
	if err != nil || !strings.Contains(out, "n\n0") {
		t.Fatalf("query --config: %v\n%s%s", err, out, errOut)
	}
}
