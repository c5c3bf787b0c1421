package store

import (
	"context"
	"crypto/rand"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/duckdb/duckdb-go/v2"
)

// ErrNotReadOnly refuses a statement that is not a query.
var ErrNotReadOnly = errors.New("only read statements (SELECT, WITH, SHOW, DESCRIBE, SUMMARIZE, EXPLAIN) are allowed")

// QueryColumn names and types one result column.
type QueryColumn struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// QueryResult is the answer to Query.
type QueryResult struct {
	Columns []QueryColumn `json:"columns"`
	Rows    [][]any       `json:"rows"`
	// Truncated is set when the result had more rows than the limit.
	Truncated bool `json:"truncated"`
}

// Query runs one read-only statement inside a read-only transaction and returns at most
// limit rows; it is interrupted after timeout. args bind the statement's ? parameters. Files outside the allowed directories, other
// databases and settings are out of reach (see lockDown).
func (s *Store) Query(ctx context.Context, q string, limit int, timeout time.Duration, args ...any) (*QueryResult, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	res := &QueryResult{Rows: [][]any{}}
	err := s.readOnly(ctx, q, func(c driver.Conn, stmt *duckdb.Stmt) error {
		rows, err := stmt.QueryContext(ctx, namedArgs(args))
		if err != nil {
			return err
		}
		defer rows.Close()
		names := rows.Columns()
		typed, _ := rows.(driver.RowsColumnTypeDatabaseTypeName)
		for i, n := range names {
			col := QueryColumn{Name: n}
			if typed != nil {
				col.Type = typed.ColumnTypeDatabaseTypeName(i)
			}
			res.Columns = append(res.Columns, col)
		}
		for {
			dest := make([]driver.Value, len(names))
			if err := rows.Next(dest); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
			if limit > 0 && len(res.Rows) == limit {
				res.Truncated = true
				return nil
			}
			row := make([]any, len(dest))
			for i, v := range dest {
				row[i] = plainValue(v)
			}
			res.Rows = append(res.Rows, row)
		}
	})
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return nil, fmt.Errorf("store: query ran past its %s time limit", timeout)
		}
		return nil, fmt.Errorf("store: %w", err)
	}
	return res, nil
}

// readOnly prepares q on its own connection, checks that it only reads, and runs fn inside a
// read-only transaction.
func (s *Store) readOnly(ctx context.Context, q string, fn func(driver.Conn, *duckdb.Stmt) error) error {
	return s.rawConn(ctx, func(c driver.Conn) error {
		st, err := c.Prepare(q)
		if err != nil {
			if strings.Contains(err.Error(), "multi-statement") {
				return fmt.Errorf("send one statement at a time: %w", err)
			}
			return err
		}
		stmt := st.(*duckdb.Stmt)
		defer stmt.Close()
		typ, err := stmt.StatementType()
		if err != nil {
			return err
		}
		if writesBehindASelect(q) {
			return fmt.Errorf("%w (checkpoint functions write to the database)", ErrNotReadOnly)
		}
		if typ == duckdb.STATEMENT_TYPE_EXPLAIN {
			// EXPLAIN ANALYZE runs the statement it explains: that one must read only too.
			if err := explainsARead(c, q); err != nil {
				return err
			}
		} else if typ != duckdb.STATEMENT_TYPE_SELECT {
			return ErrNotReadOnly
		}
		ex := c.(driver.ExecerContext)
		if _, err := ex.ExecContext(ctx, "BEGIN TRANSACTION READ ONLY", nil); err != nil {
			return err
		}
		defer ex.ExecContext(context.Background(), "ROLLBACK", nil)
		return fn(c, stmt)
	})
}

// explainPrefix matches what comes before the statement an EXPLAIN explains: the keyword,
// ANALYZE and an option list such as (FORMAT json). Comments are refused before it is
// applied: DuckDB ends and nests them by other rules than a regular expression can follow.
var explainPrefix = regexp.MustCompile(`(?i)^\s*EXPLAIN(\s+ANALY[SZ]E)?\s`)
var explainOptions = regexp.MustCompile(`^\s*\(\s*[a-z_]+(\s+[a-z0-9_'"]+)?(\s*,\s*[a-z_]+(\s+[a-z0-9_'"]+)?)*\s*\)\s`)

// explainsARead reports ErrNotReadOnly unless the statement q explains is a read. It fails
// closed: an EXPLAIN holding a comment, or one whose text after the prefix does not prepare as
// a SELECT, is refused.
func explainsARead(c driver.Conn, q string) error {
	if strings.Contains(q, "--") || strings.Contains(q, "/*") || strings.ContainsAny(q, "\r\v\f") {
		return fmt.Errorf("%w (an EXPLAIN is taken without comments)", ErrNotReadOnly)
	}
	m := explainPrefix.FindStringIndex(q)
	if m == nil {
		return ErrNotReadOnly
	}
	rest := q[m[1]:]
	if isSelect(c, rest) {
		return nil
	}
	if o := explainOptions.FindStringIndex(strings.ToLower(rest)); o != nil && isSelect(c, rest[o[1]:]) {
		return nil
	}
	return ErrNotReadOnly
}

// isSelect reports whether q prepares as one SELECT statement.
func isSelect(c driver.Conn, q string) bool {
	st, err := c.Prepare(q)
	if err != nil {
		return false
	}
	defer st.Close()
	typ, err := st.(*duckdb.Stmt).StatementType()
	return err == nil && typ == duckdb.STATEMENT_TYPE_SELECT
}

// writesBehindASelect reports table functions a SELECT can call that write: a checkpoint
// rewrites the database file (force_checkpoint also aborts the writer's transaction).
// Matched on the text, so a query that merely names them is refused too.
func writesBehindASelect(q string) bool {
	return strings.Contains(strings.ToLower(q), "checkpoint")
}

// plainValue turns driver values into JSON-friendly ones.
func plainValue(v driver.Value) any {
	switch x := v.(type) {
	case []byte:
		if utf8.Valid(x) {
			return string(x)
		}
		return x
	case duckdb.UUID:
		return x.String()
	case *duckdb.UUID:
		return x.String()
	case fmt.Stringer:
		if _, isTime := v.(time.Time); !isTime {
			return x.String()
		}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plainValue(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = plainValue(e)
		}
		return out
	}
	return v
}

// Export writes the result of a read-only query (or a whole table or view) to a new file in
// dir, in Parquet or CSV, and returns its path. dir must be one of the allowed directories.
func (s *Store) Export(ctx context.Context, q, table, format, dir string) (string, error) {
	if (q == "") == (table == "") {
		return "", errors.New("store: export needs a query or a table")
	}
	if table != "" {
		if err := s.checkTable(ctx, table); err != nil {
			return "", err
		}
		q = "SELECT * FROM " + quoteIdent(table)
	}
	var opts string
	switch format {
	case "parquet":
		opts = "(FORMAT parquet, COMPRESSION zstd)"
	case "csv":
		opts = "(FORMAT csv, HEADER true)"
	default:
		return "", fmt.Errorf("store: export format %q: use parquet or csv", format)
	}
	path := filepath.Join(dir, "export-"+randomName()+"."+format)
	err := s.readOnly(ctx, q, func(c driver.Conn, _ *duckdb.Stmt) error {
		// The query was checked alone; COPY only wraps it.
		_, err := c.(driver.ExecerContext).ExecContext(ctx, fmt.Sprintf("COPY (%s) TO '%s' %s", strings.TrimRight(strings.TrimSpace(q), ";"), escapeLiteral(path), opts), nil)
		return err
	})
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("store: export: %w", err)
	}
	return path, nil
}

// Snapshot writes a consistent copy of the whole database to a new DuckDB file in dir (one of
// the allowed directories) and returns its path. It reads one MVCC snapshot and does not stop
// the writer.
func (s *Store) Snapshot(ctx context.Context, dir string) (string, error) {
	path := filepath.Join(dir, "snapshot-"+randomName()+".duckdb")
	alias := "hookbridge_snapshot_" + randomName()
	err := s.rawConn(ctx, func(c driver.Conn) error {
		ex := c.(driver.ExecerContext)
		var name string
		q := c.(driver.QueryerContext)
		rows, err := q.QueryContext(ctx, "SELECT current_database()", nil)
		if err != nil {
			return err
		}
		dest := []driver.Value{nil}
		err = rows.Next(dest)
		rows.Close()
		if err != nil {
			return fmt.Errorf("read the database's name: %w", err)
		}
		name, _ = dest[0].(string)
		if _, err := ex.ExecContext(ctx, fmt.Sprintf("ATTACH '%s' AS %s", escapeLiteral(path), alias), nil); err != nil {
			return err
		}
		defer ex.ExecContext(context.Background(), "DETACH "+alias, nil)
		_, err = ex.ExecContext(ctx, fmt.Sprintf("COPY FROM DATABASE %s TO %s", quoteIdent(name), alias), nil)
		return err
	})
	if err != nil {
		os.Remove(path)
		os.Remove(path + ".wal")
		return "", fmt.Errorf("store: snapshot: %w", err)
	}
	return path, nil
}

func (s *Store) checkTable(ctx context.Context, table string) error {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT table_name AS n FROM duckdb_tables() WHERE NOT internal AND schema_name = 'main'
		UNION ALL SELECT view_name FROM duckdb_views() WHERE NOT internal AND schema_name = 'main') WHERE n = ?`, table).Scan(&n)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("store: no table or view %q (try events, subscriptions, rejected, deliveries, mailing_list, subscriptions_daily)", table)
	}
	return nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func escapeLiteral(s string) string { return strings.ReplaceAll(s, "'", "''") }

func randomName() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}
