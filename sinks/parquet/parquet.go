// Package parquet is the parquet sink: each batch becomes Parquet files partitioned by the
// UTC date the events were received (dt=YYYY-MM-DD/), for analysts and data lakes. Files are
// written atomically (temporary file, fsync, rename) and named after the first and last seq
// they hold, so a re-sent batch replaces its file instead of adding a second copy.
package parquet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pq "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/schemas"
)

// Version is the sink's version.
const Version = "1.0.0"

// Settings are the sink's settings.
type Settings struct {
	// Path is the lake's root folder; partitions go below it.
	Path string `json:"path"`
	// Compression is zstd (default), snappy, gzip or none.
	Compression string `json:"compression,omitempty"`
	// Prefix starts every file name (default events).
	Prefix string `json:"prefix,omitempty"`
	// Raw keeps the request body in a raw column (default true).
	Raw *bool `json:"raw,omitempty"`
}

const settingsSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["path"],
  "properties": {
    "path": {"type": "string", "description": "root folder of the lake; files go to PATH/dt=YYYY-MM-DD/"},
    "compression": {"enum": ["zstd", "snappy", "gzip", "none"], "default": "zstd"},
    "prefix": {"type": "string", "default": "events", "pattern": "^[A-Za-z0-9_-]+$"},
    "raw": {"type": "boolean", "default": true, "description": "keep the request body in a raw column"}
  }
}`

var codecs = map[string]compress.Compression{"zstd": compress.Codecs.Zstd, "snappy": compress.Codecs.Snappy, "gzip": compress.Codecs.Gzip, "none": compress.Codecs.Uncompressed}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Sink writes Parquet files.
type Sink struct {
	mu    sync.Mutex
	cfg   sdk.Config
	set   Settings
	codec compress.Compression
	mem   memory.Allocator
}

// New returns an unconfigured sink.
func New() sdk.Sink { return &Sink{mem: memory.DefaultAllocator} }

// Spec implements sdk.Sink: every stored column and the subscription's status.
func (s *Sink) Spec() sdk.Spec {
	var cols []string
	for _, c := range schemas.Columns() {
		if !c.Delivery || c.Name == "status" {
			cols = append(cols, c.Name)
		}
	}
	return sdk.Spec{Name: "parquet", Version: Version, Description: "writes Parquet files partitioned by the UTC date received (dt=YYYY-MM-DD)",
		Settings: json.RawMessage(settingsSchema), MaxBatchRows: 100000, MaxBatchBytes: 3 << 20, Columns: cols}
}

// Configure implements sdk.Sink: it checks the settings and makes the root folder.
func (s *Sink) Configure(ctx context.Context, cfg sdk.Config) error {
	var set Settings
	if err := sdk.DecodeSettings(cfg.Settings, &set); err != nil {
		return err
	}
	if set.Path == "" {
		return &sdk.SettingsError{Field: "path", Message: "is required (the lake's root folder)"}
	}
	if set.Compression == "" {
		set.Compression = "zstd"
	}
	codec, ok := codecs[set.Compression]
	if !ok {
		return &sdk.SettingsError{Field: "compression", Message: fmt.Sprintf("%q: use zstd, snappy, gzip or none", set.Compression)}
	}
	if set.Prefix == "" {
		set.Prefix = "events"
	}
	if !prefixRE.MatchString(set.Prefix) {
		return &sdk.SettingsError{Field: "prefix", Message: "letters, digits, - and _ only"}
	}
	if err := os.MkdirAll(set.Path, 0o755); err != nil {
		return &sdk.SettingsError{Field: "path", Message: err.Error()}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg, s.set, s.codec = cfg, set, codec
	return nil
}

// Write implements sdk.Sink.
func (s *Sink) Write(ctx context.Context, b *sdk.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := b.Record
	if s.set.Raw != nil && !*s.set.Raw {
		rec = dropColumn(rec, "raw")
		defer rec.Release()
	}
	parts, err := partition(rec)
	if err != nil {
		return err
	}
	for _, p := range parts {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.writePartition(ctx, rec, p); err != nil {
			// Disk full, permissions, a vanished folder: the lake is unusable now; nothing is
			// charged to the rows.
			return sdk.SinkDown(err, 0, 0)
		}
	}
	return nil
}

// part is the rows of one date: runs of consecutive rows [from, to).
type part struct {
	date        string
	runs        [][2]int64
	first, last int64 // seqs
	seqs        map[int64]bool
}

// partition groups the record's rows by the UTC date of received_at, keeping their order.
func partition(rec arrow.RecordBatch) ([]*part, error) {
	ri := slices.IndexFunc(rec.Schema().Fields(), func(f arrow.Field) bool { return f.Name == "received_at" })
	si := slices.IndexFunc(rec.Schema().Fields(), func(f arrow.Field) bool { return f.Name == "seq" })
	if ri < 0 || si < 0 {
		return nil, errors.New("parquet: the batch lacks received_at or seq")
	}
	ts, ok1 := rec.Column(ri).(*array.Timestamp)
	seqs, ok2 := rec.Column(si).(*array.Int64)
	if !ok1 || !ok2 {
		return nil, errors.New("parquet: received_at or seq has an unexpected type")
	}
	unit := ts.DataType().(*arrow.TimestampType).Unit
	byDate := map[string]*part{}
	var order []*part
	var cur *part
	for i := 0; i < int(rec.NumRows()); i++ {
		d := ts.Value(i).ToTime(unit).UTC().Format("2006-01-02")
		p := byDate[d]
		if p == nil {
			p = &part{date: d, first: seqs.Value(i), last: seqs.Value(i), seqs: map[int64]bool{}}
			byDate[d] = p
			order = append(order, p)
		}
		p.first, p.last = min(p.first, seqs.Value(i)), max(p.last, seqs.Value(i))
		p.seqs[seqs.Value(i)] = true
		if cur == p {
			p.runs[len(p.runs)-1][1] = int64(i + 1)
		} else {
			p.runs = append(p.runs, [2]int64{int64(i), int64(i + 1)})
		}
		cur = p
	}
	return order, nil
}

// fileName names a file after the seqs it holds.
func (s *Sink) fileName(first, last int64) string {
	return fmt.Sprintf("%s-%020d-%020d.parquet", s.set.Prefix, first, last)
}

var nameRE = regexp.MustCompile(`^(.+)-(\d{20})-(\d{20})\.parquet$`)

// writePartition writes one date's rows to a temporary file, syncs it, renames it into place
// and syncs the folder; then it takes the same rows out of older files (a batch re-sent with
// other bounds after a crash, a replay), so every row is in the lake once.
func (s *Sink) writePartition(ctx context.Context, rec arrow.RecordBatch, p *part) error {
	dir := filepath.Join(s.set.Path, "dt="+p.date)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	sweepTemp(dir)
	name := s.fileName(p.first, p.last)
	var recs []arrow.RecordBatch
	for _, r := range p.runs {
		sl := rec.NewSlice(r[0], r[1])
		defer sl.Release()
		recs = append(recs, sl)
	}
	if err := s.writeFile(filepath.Join(dir, name), rec.Schema(), recs); err != nil {
		return err
	}
	return s.dropOverlaps(ctx, dir, name, p)
}

// writeFile writes records atomically to path.
func (s *Sink) writeFile(path string, schema *arrow.Schema, recs []arrow.RecordBatch) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"."+strconv.Itoa(os.Getpid())+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("parquet: write %s: %w", filepath.Base(path), err)
	}
	props := pq.NewWriterProperties(pq.WithCompression(s.codec), pq.WithAllocator(s.mem), pq.WithMaxRowGroupLength(128*1024))
	w, err := pqarrow.NewFileWriter(schema, f, props, pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(s.mem), pqarrow.WithStoreSchema()))
	if err != nil {
		return fail(err)
	}
	for _, r := range recs {
		if err := w.WriteBuffered(r); err != nil {
			return fail(err)
		}
	}
	if err := w.Close(); err != nil { // closes f too
		os.Remove(tmp)
		return fmt.Errorf("parquet: write %s: %w", filepath.Base(path), err)
	}
	// pqarrow closed the file; reopen to sync it (fsync works on any descriptor of it).
	if err := syncPath(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("parquet: %w", err)
	}
	return syncPath(filepath.Dir(path))
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("parquet: sync %s: %w", path, err)
	}
	return nil
}

// sweepTemp removes temporary files a crash left behind (they never match *.parquet).
func sweepTemp(dir string) {
	old, _ := filepath.Glob(filepath.Join(dir, ".*.tmp"))
	for _, p := range old {
		if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > time.Minute {
			os.Remove(p)
		}
	}
}

// dropOverlaps takes the part's rows out of the folder's other files of this prefix. Batches
// need not hold consecutive seqs (the engine keeps each subscription's events in order), so
// files whose seq ranges overlap are read (their seq column only) to find shared rows: a
// file holding nothing else is removed, one holding more is rewritten without them.
func (s *Sink) dropOverlaps(ctx context.Context, dir, keep string, p *part) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	changed := false
	for _, e := range entries {
		n := e.Name()
		m := nameRE.FindStringSubmatch(n)
		if m == nil || n == keep || m[1] != s.set.Prefix {
			continue
		}
		a, _ := strconv.ParseInt(m[2], 10, 64)
		z, _ := strconv.ParseInt(m[3], 10, 64)
		if z < p.first || a > p.last {
			continue
		}
		path := filepath.Join(dir, n)
		seqs, err := s.readSeqs(ctx, path)
		if err != nil {
			return err
		}
		shared := 0
		for _, q := range seqs {
			if p.seqs[q] {
				shared++
			}
		}
		switch {
		case shared == 0:
			continue
		case shared == len(seqs):
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("parquet: %w", err)
			}
		default:
			if err := s.rewriteWithout(ctx, path, p.seqs); err != nil {
				return err
			}
		}
		changed = true
	}
	if !changed {
		return nil
	}
	return syncPath(dir)
}

// readSeqs reads a file's seq column.
func (s *Sink) readSeqs(ctx context.Context, path string) ([]int64, error) {
	rdr, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, fmt.Errorf("parquet: open %s: %w", filepath.Base(path), err)
	}
	defer rdr.Close()
	col := rdr.MetaData().Schema.ColumnIndexByName("seq")
	if col < 0 {
		return nil, fmt.Errorf("parquet: %s has no seq column", filepath.Base(path))
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 64 * 1024}, s.mem)
	if err != nil {
		return nil, fmt.Errorf("parquet: read %s: %w", filepath.Base(path), err)
	}
	groups := make([]int, rdr.NumRowGroups())
	for i := range groups {
		groups[i] = i
	}
	tbl, err := fr.ReadRowGroups(ctx, []int{col}, groups)
	if err != nil {
		return nil, fmt.Errorf("parquet: read %s: %w", filepath.Base(path), err)
	}
	defer tbl.Release()
	var out []int64
	for _, ch := range tbl.Column(0).Data().Chunks() {
		out = append(out, ch.(*array.Int64).Int64Values()...)
	}
	return out, nil
}

// rewriteWithout rewrites a file without the rows whose seq is in drop, under a name that
// matches the seqs left.
func (s *Sink) rewriteWithout(ctx context.Context, path string, drop map[int64]bool) error {
	rdr, err := file.OpenParquetFile(path, false)
	if err != nil {
		return fmt.Errorf("parquet: open %s: %w", filepath.Base(path), err)
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 64 * 1024}, s.mem)
	if err != nil {
		rdr.Close()
		return fmt.Errorf("parquet: read %s: %w", filepath.Base(path), err)
	}
	tbl, err := fr.ReadTable(ctx)
	rdr.Close()
	if err != nil {
		return fmt.Errorf("parquet: read %s: %w", filepath.Base(path), err)
	}
	defer tbl.Release()
	tr := array.NewTableReader(tbl, 64*1024)
	defer tr.Release()
	var keep []arrow.RecordBatch
	defer func() {
		for _, r := range keep {
			r.Release()
		}
	}()
	lo, hi := int64(-1), int64(-1)
	for tr.Next() {
		r := tr.RecordBatch()
		seqs := r.Column(r.Schema().FieldIndices("seq")[0]).(*array.Int64)
		start := -1
		flush := func(end int) {
			if start >= 0 {
				keep = append(keep, r.NewSlice(int64(start), int64(end)))
				start = -1
			}
		}
		for i := 0; i < int(r.NumRows()); i++ {
			v := seqs.Value(i)
			if drop[v] {
				flush(i)
				continue
			}
			if start < 0 {
				start = i
			}
			if lo < 0 || v < lo {
				lo = v
			}
			hi = max(hi, v)
		}
		flush(int(r.NumRows()))
	}
	if len(keep) > 0 {
		if err := s.writeFile(filepath.Join(filepath.Dir(path), s.fileName(lo, hi)), tbl.Schema(), keep); err != nil {
			return err
		}
	}
	if len(keep) == 0 || filepath.Base(path) != s.fileName(lo, hi) {
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("parquet: %w", err)
		}
	}
	return nil
}

// dropColumn returns the record without the named column (retained: release it).
func dropColumn(rec arrow.RecordBatch, name string) arrow.RecordBatch {
	var fields []arrow.Field
	var cols []arrow.Array
	for i, f := range rec.Schema().Fields() {
		if f.Name != name {
			fields = append(fields, f)
			cols = append(cols, rec.Column(i))
		}
	}
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, rec.NumRows())
}

// Close implements sdk.Sink.
func (s *Sink) Close(ctx context.Context) error { return nil }
