package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hookbridge/hookbridge/connector"
	"github.com/hookbridge/hookbridge/connector/admin"
	"github.com/hookbridge/hookbridge/connector/store"
)

// localFlags name the DuckDB file for commands that work on it directly when no server holds
// it.
type localFlags struct {
	config *string
	data   *string
}

func addLocalFlags(fs *flagSet) localFlags {
	return localFlags{
		config: fs.String("config", "", "configuration file: its data file, and the admin API (admin.listen, else listen) and token of the server that runs it unless --server and --token say otherwise (default: the built-in one)"),
		data:   fs.String("data", "", "DuckDB file: read directly unless a running server holds it (default: the configuration's data, through the server when one answers)"),
	}
}

// adminClient is af's client, pointed at the server the configuration runs when --config
// is given (see adminClient.useConfig).
func (f localFlags) adminClient(e *env, af adminFlags) (*adminClient, error) {
	c := af.client(e)
	if *f.config != "" {
		cfg, err := f.load(e)
		if err != nil {
			return nil, err
		}
		c.useConfig(cfg)
	}
	return c, nil
}

func (f localFlags) load(e *env) (*connector.Config, error) {
	return loadConfig(e, *f.config, "", *f.data)
}

// fileAccess is how a command opens the file when it works on it directly.
type fileAccess struct {
	readOnly bool
	// create makes the file when it does not exist (import).
	create bool
	// allowed are the directories SQL may write to (export, snapshot).
	allowed []string
}

// errNoDatabase says the file to open directly does not exist.
var errNoDatabase = errors.New("there is no database")

// open opens the file itself, read-only or with the writer. The configuration comes back even
// when the open fails, to name the file in messages.
func (f localFlags) open(ctx context.Context, e *env, a fileAccess) (*store.Store, *connector.Config, error) {
	cfg, err := f.load(e)
	if err != nil {
		return nil, nil, err
	}
	if _, err := os.Stat(cfg.Data); err != nil && !a.create {
		return nil, cfg, fmt.Errorf("%w at %s", errNoDatabase, cfg.Data)
	}
	zone := cfg.Analytics.TimeZone
	if *f.config == "" {
		zone = "" // the built-in configuration says nothing of the file's zone: keep the file's
	}
	st, err := store.Open(ctx, store.Options{Path: cfg.Data, ReadOnly: a.readOnly, AllowedDirectories: a.allowed, AnalyticsZone: zone, Logger: quietLogger()})
	if err != nil {
		return nil, cfg, err
	}
	return st, cfg, nil
}

// serverOrFile runs a command on the right file, in the right way. Without --data that is
// the running server's file, through its admin API (server); when no server answers, the
// configuration's file, opened directly (local). With --data it is the file --data names,
// opened directly, unless a process holds it: then it goes through the server only if the
// server, asked which file it holds, holds that one.
func (f localFlags) serverOrFile(ctx context.Context, e *env, c *adminClient, a fileAccess, server func() error, local func(*store.Store, *connector.Config) error) error {
	if *f.data == "" {
		if err := server(); !errors.Is(err, errServerDown) {
			return err
		}
		st, cfg, err := f.open(ctx, e, a)
		if errors.Is(err, errNoDatabase) {
			return fmt.Errorf("no server answers at %s and %w (start 'hookbridge serve', or pass --data)", c.base, err)
		}
		if err != nil {
			return err
		}
		defer st.Close()
		return local(st, cfg)
	}
	st, cfg, err := f.open(ctx, e, a)
	if err == nil {
		defer st.Close()
		return local(st, cfg)
	}
	locked := errors.Is(err, store.ErrLocked)
	if !locked && !errors.Is(err, errNoDatabase) {
		return err
	}
	held, herr := c.heldFile(ctx)
	switch {
	case errors.Is(herr, errServerDown) && locked:
		return fmt.Errorf("%w; and no server answers at %s (point --server at the server that holds %s)", err, c.base, cfg.Data)
	case errors.Is(herr, errServerDown):
		return fmt.Errorf("no server answers at %s and %w (pass --data naming an existing file, or start 'hookbridge serve')", c.base, err)
	case herr != nil && locked:
		return fmt.Errorf("another process holds %s, and asking the server at %s which file it holds failed: %w", cfg.Data, c.base, herr)
	case herr != nil:
		return err
	case locked && sameFile(held, cfg.Data):
		return server()
	case locked:
		return fmt.Errorf("another process holds %s, not the server at %s, which holds %s (point --server at the server that holds it, or stop that process)", cfg.Data, c.base, held)
	}
	return fmt.Errorf("a server is running at %s (holding %s); %w", c.base, held, err)
}

// sameFile reports whether two paths name one file: the same file on disk, or, when either
// does not exist, the same resolved path (see resolvePath).
func sameFile(a, b string) bool {
	if fa, err := os.Stat(a); err == nil {
		if fb, err := os.Stat(b); err == nil {
			return os.SameFile(fa, fb)
		}
	}
	absA, errA := resolvePath(a)
	absB, errB := resolvePath(b)
	return errA == nil && errB == nil && absA == absB
}

// resolvePath is p made absolute, with symbolic links resolved in the part of its directory
// that exists, so two names of a file that does not exist yet (a write-ahead log) compare
// equal.
func resolvePath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	dir, rest := filepath.Dir(abs), filepath.Base(abs)
	for {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(real, rest), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(dir), rest)
		dir = parent
	}
}

// walSuffix names DuckDB's write-ahead log: DATA.wal holds DATA's commits not yet
// checkpointed into it.
const walSuffix = ".wal"

// checkOutput refuses out (exit status 2, before anything is written) when writing it would
// replace a database in use: the running server's data file (asked through c), the file the
// command opens itself without a server (--data, or the configuration's data), the
// write-ahead log of either, or a file another process holds a lock on, as DuckDB does the
// database it has open (and the write-ahead log of such a file). A server on another machine
// cannot be told apart from one that holds another file: only its answer protects its file.
func checkOutput(ctx context.Context, e *env, c *adminClient, lf localFlags, cmd, out string) error {
	type live struct{ path, what string }
	var files []live
	if held, err := c.heldFile(ctx); err == nil {
		files = append(files, live{held, "the data file of the server at " + c.base})
	}
	// A configuration that does not load leaves only the server's file to protect: without a
	// server the command then fails before it writes.
	if cfg, err := lf.load(e); err == nil {
		what := "the configuration's data file"
		if *lf.data != "" {
			what = "the --data file"
		}
		files = append(files, live{cfg.Data, what})
	}
	for _, f := range files {
		if sameFile(out, f.path) {
			return usageError{fmt.Sprintf("%s: refusing to write %s: it is %s, which this would replace, losing its events (name another file)", cmd, out, f.what)}
		}
		if sameFile(out, f.path+walSuffix) {
			return usageError{fmt.Sprintf("%s: refusing to write %s: it is the write-ahead log of %s (%s), which this would replace, losing acknowledged events (name another file)", cmd, out, f.path, f.what)}
		}
	}
	candidates := []string{out}
	if db, ok := strings.CutSuffix(out, walSuffix); ok {
		candidates = append(candidates, db)
	}
	for i, f := range candidates {
		pid, err := lockHolder(f)
		if err != nil || pid == 0 {
			continue // no such file, or no lock: nothing tells it is in use
		}
		what := "it"
		if i > 0 {
			what = "it is the write-ahead log of " + f + ", which"
		}
		return usageError{fmt.Sprintf("%s: refusing to write %s: %s is in use: process %d holds a lock on it (a running server's or a DuckDB client's database; name another file)", cmd, out, what, pid)}
	}
	return nil
}

func cmdQuery(ctx context.Context, e *env, args []string) error {
	// The views come from the store, which makes them, so the list cannot fall behind.
	usage := `query [--format table|csv|json] [--limit N] [--timeout D] "SQL" (views: ` + strings.Join(store.AnalyticsViews(), ", ") + ")"
	fs := newFlagSet(e, "query", usage)
	af := addAdminFlags(fs)
	lf := addLocalFlags(fs)
	format := fs.String("format", "table", "table, csv or json")
	limit := fs.Int("limit", 1000, "most rows returned, 1 or more (a server gives at most 100000)")
	timeout := fs.Duration("timeout", 30*time.Second, "time limit")
	if err := fs.Parse(reorder(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"usage: hookbridge " + usage}
	}
	if *format != "table" && *format != "csv" && *format != "json" {
		return usageError{"--format: use table, csv or json"}
	}
	if *limit < 1 {
		// The server reads 0 as its default and the file as no limit: neither is asked for.
		return usageError{fmt.Sprintf("--limit %d: give 1 or more rows (a server gives at most 100000; for all rows use hookbridge export)", *limit)}
	}
	sql := fs.Arg(0)
	var res store.QueryResult
	c, err := lf.adminClient(e, af)
	if err != nil {
		return err
	}
	err = lf.serverOrFile(ctx, e, c, fileAccess{readOnly: true},
		func() error {
			return c.query(ctx, admin.QueryRequest{SQL: sql, Limit: *limit, Timeout: timeout.String()}, &res)
		},
		func(st *store.Store, _ *connector.Config) error {
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

// printResult prints res in format: table, csv or json. Values take the forms the store shows
// (store.QueryResult.Display), the same whether res came from the server or from the file;
// table and csv print them as store.Text does.
func printResult(w io.Writer, res *store.QueryResult, format string) error {
	rows := res.Display()
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
		out := make([]json.RawMessage, len(rows))
		for i, r := range rows {
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
		for _, r := range rows {
			rec := make([]string, len(r))
			for i, v := range r {
				rec[i] = store.Text(v, "")
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
	for _, r := range rows {
		for i, v := range r {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			s := store.Text(v, "NULL")
			if len(s) > 60 {
				s = s[:60] + "…"
			}
			fmt.Fprint(tw, strings.ReplaceAll(s, "\n", " "))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if res.Truncated {
		fmt.Fprintf(w, "(%s shown; there are more: raise --limit, or use hookbridge export)\n", rowsNoun(len(res.Rows)))
		return nil
	}
	fmt.Fprintf(w, "(%s)\n", rowsNoun(len(res.Rows)))
	return nil
}

func cmdExport(ctx context.Context, e *env, args []string) error {
	const usage = "export (--table T | --query SQL) --out PATH.parquet|PATH.csv [--format parquet|csv]"
	fs := newFlagSet(e, "export", usage)
	af := addAdminFlags(fs)
	lf := addLocalFlags(fs)
	table := fs.String("table", "", "table or view to export (events, subscriptions, mailing_list, …)")
	query := fs.String("query", "", "read-only query whose result is exported")
	format := fs.String("format", "", "parquet or csv (default: from the --out extension, .parquet or .csv)")
	out := fs.String("out", "", "file to write (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || (*table == "") == (*query == "") {
		return usageError{"usage: hookbridge " + usage}
	}
	f, err := exportFormat(*format, *out)
	if err != nil {
		return err
	}
	return fetchFile(ctx, e, af, lf, "/admin/v1/export", admin.ExportRequest{Table: *table, Query: *query, Format: f}, *out, true,
		func(st *store.Store, dir string) (string, error) { return st.Export(ctx, *query, *table, f, dir) })
}

// exportFormats are the formats export writes, by the file extension that names each.
var exportFormats = map[string]string{".parquet": "parquet", ".csv": "csv"}

// otherFormats are extensions that name a format export does not write: a file named so is
// not given parquet or csv.
var otherFormats = map[string]string{".json": "json", ".jsonl": "json lines", ".ndjson": "json lines", ".duckdb": "duckdb"}

// exportFormat is the format to write out in: the --format given, which the extension of out
// must not contradict, else the one its extension names.
func exportFormat(format, out string) (string, error) {
	ext := strings.ToLower(filepath.Ext(out))
	byExt, known := exportFormats[ext]
	if !known {
		byExt, known = otherFormats[ext]
	}
	switch {
	case format != "" && format != "parquet" && format != "csv":
		return "", usageError{fmt.Sprintf("--format %q: use parquet or csv", format)}
	case format != "" && known && byExt != format:
		return "", usageError{fmt.Sprintf("--format %s contradicts --out %s, whose extension %s means %s: make them agree", format, out, ext, byExt)}
	case format != "":
		return format, nil
	case exportFormats[ext] != "":
		return exportFormats[ext], nil
	case known:
		return "", usageError{fmt.Sprintf("--out %s: its extension %s means %s, which export does not write: name the file .parquet or .csv", out, ext, byExt)}
	case ext == "":
		return "", usageError{fmt.Sprintf("--out %s has no extension to tell the format from: name it .parquet or .csv, or pass --format parquet|csv", out)}
	}
	return "", usageError{fmt.Sprintf("--out %s: the extension %s names no format export writes: name the file .parquet or .csv, or pass --format parquet|csv", out, ext)}
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
// It refuses an out that names a database in use (see checkOutput).
func fetchFile(ctx context.Context, e *env, af adminFlags, lf localFlags, path string, body any, out string, readOnly bool, local func(*store.Store, string) (string, error)) error {
	c, err := lf.adminClient(e, af)
	if err != nil {
		return err
	}
	if err := checkOutput(ctx, e, c, lf, filepath.Base(path), out); err != nil {
		return err
	}
	dir := filepath.Dir(out)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Writing the file comes before any byte of it arrives: say how long it has taken.
	stop := elapsedLine(e.stderr, "writing "+filepath.Base(out))
	var resp *http.Response
	err = lf.serverOrFile(ctx, e, c, fileAccess{readOnly: readOnly, allowed: []string{dir}},
		func() (err error) {
			resp, err = c.send(ctx, "POST", path, body)
			return err
		},
		func(st *store.Store, _ *connector.Config) error {
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
	tmp, err := createDownload(dir)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	bar := newProgressBar(e.stderr, "downloading "+filepath.Base(out))
	n, err := io.Copy(tmp, &countingReader{r: resp.Body, onRead: func(n int64) { bar.update(int(n), int(max(resp.ContentLength, n+1))) }})
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

// createDownload makes a new file in dir to download into. It gets the mode of any file
// this user makes (0666 less the umask), the one DuckDB gives the file when there is no
// server: os.CreateTemp's 0600 would set a file that came through the server apart.
func createDownload(dir string) (*os.File, error) {
	for range 100 {
		name := filepath.Join(dir, ".hookbridge-download-"+strconv.FormatUint(rand.Uint64(), 36))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if !errors.Is(err, os.ErrExist) {
			return f, err
		}
	}
	return nil, fmt.Errorf("download: no free temporary name in %s", dir)
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
