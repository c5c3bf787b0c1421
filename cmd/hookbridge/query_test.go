package main

import (
	"bytes"
	"encoding/csv"
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
		out, _, err := runCmd(t, map[string]string{"HOOKBRIDGE_SERVER": "http://127.0.0.1:1"}, "query", "--data", data, "--format", format, q)
		if err != nil {
			t.Fatalf("query --format %s on the file: %v", format, err)
		}
		if out != through[format] {
			t.Errorf("query --format %s: the file gives\n%s\nthe server gave\n%s", format, out, through[format])
		}
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
	noServer := map[string]string{"HOOKBRIDGE_SERVER": "http://127.0.0.1:1"}
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

// TestRowCount: one row is "(1 row)".
func TestRowCount(t *testing.T) {
	for n, want := range map[int]string{0: "(0 rows)\n", 1: "(1 row)\n", 2: "(2 rows)\n"} {
		res := &store.QueryResult{Columns: []store.QueryColumn{{Name: "x"}}}
		for i := 0; i < n; i++ {
			res.Rows = append(res.Rows, []any{i})
		}
		var b bytes.Buffer
		if err := printResult(&b, res, "table"); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(b.String(), want) {
			t.Errorf("%d rows end %q, want %q", n, b.String(), want)
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
