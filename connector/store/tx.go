package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/duckdb/duckdb-go/v2"
)

// Tx is the writer's open transaction, handed to StateOps. It is valid only during the call.
type Tx struct {
	conn        driver.Conn
	store       *Store
	releaseView func()
}

func namedArgs(args []any) []driver.NamedValue {
	if len(args) == 0 {
		return nil
	}
	nv := make([]driver.NamedValue, len(args))
	for i, a := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return nv
}

func (t *Tx) exec(ctx context.Context, q string, args ...any) error {
	_, err := t.Exec(ctx, q, args...)
	return err
}

// Exec runs a statement and returns the number of rows it affected.
func (t *Tx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := t.conn.(driver.ExecerContext).ExecContext(ctx, q, namedArgs(args))
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// Query runs a query and calls fn with each row's values.
func (t *Tx) Query(ctx context.Context, q string, args []any, fn func(row []driver.Value) error) error {
	rows, err := t.conn.(driver.QueryerContext).QueryContext(ctx, q, namedArgs(args))
	if err != nil {
		return err
	}
	defer rows.Close()
	dest := make([]driver.Value, len(rows.Columns()))
	for {
		if err := rows.Next(dest); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := fn(dest); err != nil {
			return err
		}
	}
}

// InsertRecord appends rec's rows to table, matching columns by name. Fewer than appendBelow
// rows go through the writer's Appender, more through a temporary Arrow view registered and
// dropped inside this transaction; either way a ROLLBACK discards them.
func (t *Tx) InsertRecord(ctx context.Context, table string, rec arrow.RecordBatch) error {
	switch {
	case rec.NumRows() == 0:
		return nil
	case rec.NumRows() < appendBelow:
		return t.appendRecord(ctx, table, rec)
	default:
		return t.insertView(ctx, table, rec)
	}
}

// insertView inserts rec through an Arrow view: a fixed cost of a few milliseconds to
// register and plan, then the fastest path per row.
func (t *Tx) insertView(ctx context.Context, table string, rec arrow.RecordBatch) error {
	return t.execView(ctx, rec, fmt.Sprintf("INSERT INTO %s BY NAME SELECT * FROM %s", table, ingestView))
}

// execView runs q, which reads rec as the view ingestView, and drops the view again.
func (t *Tx) execView(ctx context.Context, rec arrow.RecordBatch, q string) error {
	if err := t.registerView(rec); err != nil {
		return err
	}
	if err := t.exec(ctx, q); err != nil {
		t.release()
		return err
	}
	return t.dropView(ctx)
}

// registerView exposes rec as the view ingestView until dropView. Only one can be
// registered at a time.
func (t *Tx) registerView(rec arrow.RecordBatch) error {
	ar, err := duckdb.NewArrowFromConn(t.conn)
	if err != nil {
		return fmt.Errorf("arrow connection: %w", err)
	}
	rdr, err := array.NewRecordReader(rec.Schema(), []arrow.RecordBatch{rec})
	if err != nil {
		return err
	}
	release, err := ar.RegisterView(rdr, ingestView)
	if err != nil {
		rdr.Release()
		return fmt.Errorf("register arrow view: %w", err)
	}
	t.releaseView = func() { release(); rdr.Release() }
	return nil
}

// dropView drops the registered view inside the transaction (DuckDB would otherwise keep it
// in the file) and frees its stream.
func (t *Tx) dropView(ctx context.Context) error {
	defer t.release()
	return t.exec(ctx, "DROP VIEW "+ingestView)
}

func (t *Tx) release() {
	if t.releaseView != nil {
		t.releaseView()
		t.releaseView = nil
	}
}

// ingestView names the Arrow view InsertRecord registers. DuckDB makes such views persistent,
// so it is dropped in the same transaction (and at start, in case an older build left one).
const ingestView = "hookbridge_ingest_batch"

// inWriterTx runs fn in a transaction on the writer connection.
func (s *Store) inWriterTx(ctx context.Context, fn func(tx *Tx) error) error {
	return s.wconn.Raw(func(dc any) error {
		tx := &Tx{conn: dc.(driver.Conn), store: s}
		if err := tx.exec(ctx, "BEGIN TRANSACTION"); err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			tx.exec(ctx, "ROLLBACK")
			return err
		}
		if err := tx.exec(ctx, "COMMIT"); err != nil {
			tx.exec(ctx, "ROLLBACK")
			return err
		}
		return nil
	})
}
