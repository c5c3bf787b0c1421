package store

import (
	"context"
	"database/sql/driver"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/duckdb/duckdb-go/v2"
)

// appendBelow is the size under which InsertRecord goes through the Appender instead of an
// Arrow view. Registering a view and planning INSERT … SELECT costs about 3 ms whatever the
// size, which dominates the groups of a few dozen events that webhook traffic makes and the
// few rows of a delivery record; the Appender kept open on the writer connection costs little
// per call but more per row, so imports and large groups stay on the Arrow path (measured by
// BenchmarkGroupCommit).
const appendBelow = 512

// appendRecord appends rec's rows to table through an Appender kept open on the writer
// connection, inside this transaction: a ROLLBACK discards them like any other write. The
// Appender is dropped after an error, so the next call starts clean.
func (t *Tx) appendRecord(ctx context.Context, table string, rec arrow.RecordBatch) error {
	app, err := t.store.appender(t.conn, table, rec.Schema())
	if err != nil {
		return err
	}
	vals := make([]driver.Value, rec.NumCols())
	for i := range int(rec.NumRows()) {
		if err := rowValues(rec, i, vals); err != nil {
			t.store.dropAppender(table)
			return err
		}
		if err := app.AppendRow(vals...); err != nil {
			t.store.dropAppender(table)
			return fmt.Errorf("append to %s: %w", table, err)
		}
	}
	if err := app.FlushWithCancel(ctx); err != nil {
		t.store.dropAppender(table)
		return fmt.Errorf("append to %s: %w", table, err)
	}
	return nil
}

// appenderFor is one open Appender and the columns it was made for.
type appenderFor struct {
	app    *duckdb.Appender
	schema *arrow.Schema
}

// appender returns the writer's Appender for table and schema's columns, opening it on conn
// the first time (or when the schema changed).
func (s *Store) appender(conn driver.Conn, table string, schema *arrow.Schema) (*duckdb.Appender, error) {
	if a, ok := s.appenders[table]; ok && a.schema.Equal(schema) {
		return a.app, nil
	}
	s.dropAppender(table)
	cols := make([]string, schema.NumFields())
	for i, f := range schema.Fields() {
		cols[i] = f.Name
	}
	app, err := duckdb.NewAppenderWithColumns(conn, "", "", table, cols)
	if err != nil {
		return nil, fmt.Errorf("appender for %s: %w", table, err)
	}
	if s.appenders == nil {
		s.appenders = map[string]appenderFor{}
	}
	s.appenders[table] = appenderFor{app: app, schema: schema}
	return app, nil
}

// dropAppender closes table's Appender, discarding whatever it still buffers.
func (s *Store) dropAppender(table string) {
	a, ok := s.appenders[table]
	if !ok {
		return
	}
	delete(s.appenders, table)
	a.app.Clear()
	a.app.Close()
}

// closeAppenders closes every Appender; the writer calls it before the connection closes.
func (s *Store) closeAppenders() {
	for table := range s.appenders {
		s.dropAppender(table)
	}
}

// rowValues puts row i of rec into vals, one Go value per column as the Appender takes them.
func rowValues(rec arrow.RecordBatch, i int, vals []driver.Value) error {
	for j, col := range rec.Columns() {
		if col.IsNull(i) {
			vals[j] = nil
			continue
		}
		switch c := col.(type) {
		case *array.String, *array.Binary, *array.Int64, *array.Int32, *array.Float64, *array.Boolean:
			vals[j] = c.GetOneForMarshal(i) // string, []byte, int64, int32, float64, bool
		case *array.Timestamp:
			vals[j] = c.Value(i).ToTime(c.DataType().(*arrow.TimestampType).Unit)
		case *array.List:
			strs, ok := c.ListValues().(*array.String)
			if !ok {
				return fmt.Errorf("column %s: a list of %s has no Appender value", rec.ColumnName(j), c.ListValues().DataType())
			}
			from, to := c.ValueOffsets(i)
			l := make([]string, 0, to-from)
			for k := from; k < to; k++ {
				l = append(l, strs.Value(int(k)))
			}
			vals[j] = l
		default:
			return fmt.Errorf("column %s: %s has no Appender value", rec.ColumnName(j), col.DataType())
		}
	}
	return nil
}
