package postgres

import (
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// source feeds an Arrow record to pgx's COPY row by row, reading the column arrays directly
// (no intermediate typed rows).
type source struct {
	n, i int
	get  []func(i int) any
	vals []any
}

// newSource returns a COPY source over the record's columns that keep accepts, and their
// names.
func newSource(rec arrow.RecordBatch, keep func(name string) bool) (*source, []string) {
	s := &source{n: int(rec.NumRows()), i: -1}
	var names []string
	for ci, f := range rec.Schema().Fields() {
		if !keep(f.Name) {
			continue
		}
		if g := getter(rec.Column(ci)); g != nil {
			s.get = append(s.get, g)
			names = append(names, f.Name)
		}
	}
	s.vals = make([]any, len(s.get))
	return s, names
}

// Next implements pgx.CopyFromSource.
func (s *source) Next() bool { s.i++; return s.i < s.n }

// Values implements pgx.CopyFromSource.
func (s *source) Values() ([]any, error) {
	for c, g := range s.get {
		s.vals[c] = g(s.i)
	}
	return s.vals, nil
}

// Err implements pgx.CopyFromSource.
func (s *source) Err() error { return nil }

// getter reads one value of an array as what pgx encodes for the column's PostgreSQL type;
// nil for a null. It returns nil for types the sink does not know.
func getter(arr arrow.Array) func(i int) any {
	switch a := arr.(type) {
	case *array.String:
		return func(i int) any {
			if a.IsNull(i) {
				return nil
			}
			return text(a.Value(i))
		}
	case *array.Int64:
		return func(i int) any {
			if a.IsNull(i) {
				return nil
			}
			return a.Value(i)
		}
	case *array.Boolean:
		return func(i int) any {
			if a.IsNull(i) {
				return nil
			}
			return a.Value(i)
		}
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		return func(i int) any {
			if a.IsNull(i) {
				return nil
			}
			// UTC for timestamptz; for a zone-less column pgx keeps the wall-clock fields.
			return a.Value(i).ToTime(unit).UTC()
		}
	case *array.Binary:
		return func(i int) any {
			if a.IsNull(i) {
				return nil
			}
			return a.Value(i)
		}
	case *array.List:
		vals, ok := a.ListValues().(*array.String)
		if !ok {
			return nil
		}
		offs := a.Offsets()
		return func(i int) any {
			if a.IsNull(i) {
				return nil
			}
			out := make([]string, 0, offs[i+1]-offs[i])
			for j := offs[i]; j < offs[i+1]; j++ {
				out = append(out, text(vals.Value(int(j))))
			}
			return out
		}
	}
	return nil
}

// text drops NUL characters, which PostgreSQL's text type cannot hold (a JSON body may carry
// \u0000); the raw body keeps them.
func text(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "")
}
