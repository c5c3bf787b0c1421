package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hookbridge/hookbridge/connector"
	"github.com/hookbridge/hookbridge/connector/admin"
	"github.com/hookbridge/hookbridge/connector/store"
)

// localFlags name the DuckDB file for commands that work on it directly when no server runs.
type localFlags struct {
	config *string
	data   *string
}

func addLocalFlags(fs *flag.FlagSet) localFlags {
	return localFlags{
		config: fs.String("config", "", "configuration file, used when no server runs (default: the built-in one)"),
		data:   fs.String("data", "", "DuckDB file: read directly unless a running server holds it (default: the configuration's data, through the server when one answers)"),
	}
}

func (f localFlags) load(e *env) (*connector.Config, error) {
	return loadConfig(e, *f.config, "", *f.data)
}

// openLocal opens the file itself, read-only or with the writer, when no server holds it.
func (f localFlags) openLocal(ctx context.Context, e *env, readOnly bool, allowed ...string) (*store.Store, *connector.Config, error) {
	return f.open(ctx, e, readOnly, false, allowed...)
}

// openOrCreate opens the file with the writer, creating it when it does not exist (import).
func (f localFlags) openOrCreate(ctx context.Context, e *env) (*store.Store, *connector.Config, error) {
	return f.open(ctx, e, false, true)
}

func (f localFlags) open(ctx context.Context, e *env, readOnly, create bool, allowed ...string) (*store.Store, *connector.Config, error) {
	cfg, err := f.load(e)
	if err != nil {
		return nil, nil, err
	}
	if _, err := os.Stat(cfg.Data); err != nil && !create {
		return nil, nil, fmt.Errorf("no server answers and there is no database at %s (start 'hookbridge serve', or pass --data)", cfg.Data)
	}
	st, err := store.Open(ctx, store.Options{Path: cfg.Data, ReadOnly: readOnly, AllowedDirectories: allowed, AnalyticsZone: cfg.Analytics.TimeZone, Logger: quietLogger()})
	if err != nil {
		return nil, nil, err
	}
	return st, cfg, nil
}

// openNamed opens the file --data names when no process holds it, so a --data naming another
// file than a running server's is read directly. It returns nil (and no error) when --data is
// not given or the file is held, which means a server has it: go through the server then.
func (f localFlags) openNamed(ctx context.Context, e *env, readOnly bool, allowed ...string) (*store.Store, error) {
	if *f.data == "" {
		return nil, nil
	}
	st, _, err := f.open(ctx, e, readOnly, false, allowed...)
	if errors.Is(err, store.ErrLocked) {
		return nil, nil
	}
	return st, err
}

// serverOrFile runs server, unless --data names a file no process holds; then, or when no
// server answers, it opens the file and runs local on it instead.
func (f localFlags) serverOrFile(ctx context.Context, e *env, readOnly bool, allowed []string, server func() error, local func(*store.Store) error) error {
	st, err := f.openNamed(ctx, e, readOnly, allowed...)
	if err != nil {
		return err
	}
	if st == nil {
		if err := server(); !errors.Is(err, errServerDown) {
			return err
		}
		if st, _, err = f.openLocal(ctx, e, readOnly, allowed...); err != nil {
			return err
		}
	}
	defer st.Close()
	return local(st)
}

func cmdQuery(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "query", `query [--format table|csv|json] [--limit N] [--timeout D] "SQL"`)
	af := addAdminFlags(fs)
	lf := addLocalFlags(fs)
	format := fs.String("format", "table", "table, csv or json")
	limit := fs.Int("limit", 1000, "most rows returned")
	timeout := fs.Duration("timeout", 30*time.Second, "time limit")
	if err := fs.Parse(reorder(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{`usage: hookbridge query [--format table|csv|json] "SELECT …" (views: mailing_list, subscriptions_daily, subscriptions_hourly, tag_popularity_by_postcode, subscribes_by_weekday_hour)`}
	}
	if *format != "table" && *format != "csv" && *format != "json" {
		return usageError{"--format: use table, csv or json"}
	}
	sql := fs.Arg(0)
	var res store.QueryResult
	err := lf.serverOrFile(ctx, e, true, nil,
		func() error {
			return af.client(e).do(ctx, "POST", "/admin/v1/query", admin.QueryRequest{SQL: sql, Limit: *limit, Timeout: timeout.String()}, &res)
		},
		func(st *store.Store) error {
			r, err := st.Query(ctx, sql, *limit, *timeout)
			if err == nil {
				res = *r
			}
			return err
		})
	if err != nil {
		return err
	}
	if err := printResult(e.stdout, &res, *format); err != nil {
		return err
	}
	if res.Truncated && *format != "table" {
		// csv and json carry no footer: say it where a pipe does not read it.
		fmt.Fprintf(e.stderr, "hookbridge query: only the first %d rows are printed; raise --limit (a server gives at most 100000) or use hookbridge export\n", len(res.Rows))
	}
	return nil
}

// reorder moves flags after the SQL text to the front, so `query "SQL" --format csv` works.
func reorder(args []string) []string {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			flags = append(flags, a)
			if !strings.Contains(a, "=") && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") && a != "--json" && a != "-json" {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		rest = append(rest, a)
	}
	return append(flags, rest...)
}

func printResult(w io.Writer, res *store.QueryResult, format string) error {
	switch format {
	case "json":
		// Each row is an object whose keys keep the order of the SELECT; a name the SELECT
		// gives twice (a.id, b.id) is numbered the second time (id_2), so no value is lost.
		keys := make([][]byte, len(res.Columns))
		seen := map[string]int{}
		for j, c := range res.Columns {
			name := c.Name
			if seen[c.Name]++; seen[c.Name] > 1 {
				name = fmt.Sprintf("%s_%d", c.Name, seen[c.Name])
			}
			keys[j], _ = json.Marshal(name)
		}
		out := make([]json.RawMessage, len(res.Rows))
		for i, r := range res.Rows {
			var b bytes.Buffer
			b.WriteByte('{')
			for j, c := range res.Columns {
				if j > 0 {
					b.WriteByte(',')
				}
				v, err := json.Marshal(r[j])
				if err != nil {
					return fmt.Errorf("query: column %s: %w", c.Name, err)
				}
				b.Write(keys[j])
				b.WriteByte(':')
				b.Write(v)
			}
			b.WriteByte('}')
			out[i] = b.Bytes()
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	case "csv":
		cw := csv.NewWriter(w)
		head := make([]string, len(res.Columns))
		for i, c := range res.Columns {
			head[i] = c.Name
		}
		cw.Write(head)
		for _, r := range res.Rows {
			rec := make([]string, len(r))
			for i, v := range r {
				rec[i] = cell(v, "")
			}
			cw.Write(rec)
		}
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, c := range res.Columns {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, c.Name)
	}
	fmt.Fprintln(tw)
	for _, r := range res.Rows {
		for i, v := range r {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			s := cell(v, "NULL")
			if len(s) > 60 {
				s = s[:60] + "…"
			}
			fmt.Fprint(tw, strings.ReplaceAll(s, "\n", " "))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	suffix := ""
	if res.Truncated {
		suffix = " (more rows: raise --limit, or use export)"
	}
	fmt.Fprintf(w, "(%d rows%s)\n", len(res.Rows), suffix)
	return nil
}

func cell(v any, null string) string {
	switch x := v.(type) {
	case nil:
		return null
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case string:
		// Times arrive as RFC 3339 strings through the admin API.
		return x
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = cell(e, "NULL")
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprint(v)
}

func cmdExport(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "export", "export (--table T | --query SQL) --format parquet|csv --out PATH")
	af := addAdminFlags(fs)
	lf := addLocalFlags(fs)
	table := fs.String("table", "", "table or view to export (events, subscriptions, mailing_list, …)")
	query := fs.String("query", "", "read-only query whose result is exported")
	format := fs.String("format", "parquet", "parquet or csv")
	out := fs.String("out", "", "file to write (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || (*table == "") == (*query == "") {
		return usageError{"usage: hookbridge export (--table T | --query SQL) --format parquet|csv --out PATH"}
	}
	return fetchFile(ctx, e, af, lf, "/admin/v1/export", admin.ExportRequest{Table: *table, Query: *query, Format: *format}, *out, true,
		func(st *store.Store, dir string) (string, error) { return st.Export(ctx, *query, *table, *format, dir) })
}

func cmdSnapshot(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "snapshot", "snapshot PATH.duckdb")
	af := addAdminFlags(fs)
	lf := addLocalFlags(fs)
	if err := fs.Parse(reorder(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"usage: hookbridge snapshot PATH.duckdb"}
	}
	// A snapshot attaches a new database file, which a read-only open cannot write.
	return fetchFile(ctx, e, af, lf, "/admin/v1/snapshot", struct{}{}, fs.Arg(0), false,
		func(st *store.Store, dir string) (string, error) { return st.Snapshot(ctx, dir) })
}

// fetchFile asks the server for a file (export or snapshot) and writes it to out through a
// temporary file; with no server running it makes the file from the database directly.
func fetchFile(ctx context.Context, e *env, af adminFlags, lf localFlags, path string, body any, out string, readOnly bool, local func(*store.Store, string) (string, error)) error {
	dir := filepath.Dir(out)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Writing the file comes before any byte of it arrives: say how long it has taken.
	stop := elapsedLine(e.stderr, "writing "+filepath.Base(out))
	var resp *http.Response
	err := lf.serverOrFile(ctx, e, readOnly, []string{dir},
		func() (err error) {
			resp, err = af.client(e).send(ctx, "POST", path, body)
			return err
		},
		func(st *store.Store) error {
			made, err := local(st, dir)
			if err != nil {
				return err
			}
			return os.Rename(made, out)
		})
	stop()
	if err != nil {
		return err
	}
	if resp == nil {
		fmt.Fprintf(e.stdout, "wrote %s (from the file directly: no server holds it)\n", out)
		return nil
	}
	defer resp.Body.Close()
	tmp, err := os.CreateTemp(dir, ".hookbridge-download-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	bar := newProgressBar(e.stderr, "downloading "+filepath.Base(out))
	n, err := io.Copy(tmp, &countingReader{r: resp.Body, onRead: func(n int64) { bar.update(int(n), int(max(resp.ContentLength, n))) }})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	bar.update(int(n), int(n))
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s (%d bytes)\n", out, n)
	return nil
}

type countingReader struct {
	r      io.Reader
	n      int64
	onRead func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.onRead(c.n)
	return n, err
}
