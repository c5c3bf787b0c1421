package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql/driver"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
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
	// Rows holds Go values: time.Time for dates and times, []any for lists, map[string]any
	// for structs. Display gives them in the forms shown, which JSON carries.
	Rows [][]any `json:"rows"`
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
		types := make([]*colType, len(names))
		for i, n := range names {
			col := QueryColumn{Name: n}
			if typed != nil {
				col.Type = typed.ColumnTypeDatabaseTypeName(i)
			}
			res.Columns = append(res.Columns, col)
			types[i] = parseType(col.Type)
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
				row[i] = plainValue(types[i], v)
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
				// The driver's own text goes on to suggest a Go API ("try using PrepareContext").
				return errors.New("send one statement at a time")
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

// plainValue turns a driver value into the one Rows holds: the Go value the dashboard reads
// (time.Time for dates and times, []any for a list, map[string]any for a struct, numbers),
// a string for bytes that are text, and a UUID's canonical string. t is the value's type.
// Display makes the forms shown from these.
func plainValue(t *colType, v driver.Value) any {
	switch x := v.(type) {
	case []byte:
		if t.is("UUID") && len(x) == 16 {
			var u duckdb.UUID
			copy(u[:], x)
			return u.String()
		}
		if utf8.Valid(x) {
			return string(x)
		}
		return x
	case duckdb.UUID:
		return x.String()
	case *duckdb.UUID:
		return x.String()
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plainValue(t.elemType(), e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = plainValue(t.field(k), e)
		}
		return out
	case duckdb.Union:
		return duckdb.Union{Tag: x.Tag, Value: plainValue(t.field(x.Tag), x.Value)}
	case time.Time, duckdb.Decimal, *big.Int, duckdb.OrderedMap:
		// Display needs these whole: a DECIMAL's scale, a MAP's entries. Their String, which
		// fmt gives, reads as before.
		return v
	case fmt.Stringer:
		return x.String()
	}
	return v
}

// Display returns the result's rows with each value in the form hookbridge shows it, chosen
// by its column's type. The admin API sends these forms (see MarshalJSON); the CLI prints
// them as they are in JSON, and through Text in a table or CSV. The forms:
//
//   - DATE: 2025-10-10. TIME: 19:00:00.5. TIMETZ: 19:00:00+10:00.
//   - TIMESTAMP (and TIMESTAMP_S, _MS, _NS), a wall-clock time in no zone: 2025-07-01 19:00:00,
//     as DuckDB and export's CSV write it; a fraction only when there is one, and no zone.
//   - TIMESTAMPTZ, an instant: RFC 3339 in UTC, 2025-07-01T19:00:00Z.
//   - An infinite date or timestamp: infinity or -infinity.
//   - INTERVAL: as DuckDB writes it: 01:30:00, 1 day 02:00:00, 1 month 3 days.
//   - UUID: 0a1b2c3d-0000-4000-8000-000000000001.
//   - DECIMAL, HUGEINT and UHUGEINT: an exact JSON number; a DECIMAL with all its scale's
//     digits (123.40), as DuckDB writes it.
//   - LIST and ARRAY: a JSON array. STRUCT: a JSON object, its fields in the type's order.
//     MAP: a JSON object keyed by each key's text, in key order (the order of a JSON object
//     does not survive decoding, on the way through the admin API). UNION: its value. Their
//     elements take these forms too.
//
// Other values keep their Go form. A value already in its shown form is left as it is, so
// Display serves a result decoded from the admin API's JSON (with UseNumber) as well.
func (r QueryResult) Display() [][]any {
	types := make([]*colType, len(r.Columns))
	for j, c := range r.Columns {
		types[j] = parseType(c.Type)
	}
	out := make([][]any, len(r.Rows))
	for i, row := range r.Rows {
		shown := make([]any, len(row))
		for j, v := range row {
			var t *colType
			if j < len(types) {
				t = types[j]
			}
			shown[j] = display(t, v)
		}
		out[i] = shown
	}
	return out
}

// MarshalJSON writes the result with Display's rows, so the admin API answers with the forms
// the CLI shows. Rows keeps its Go values for callers in the process (the dashboard).
func (r QueryResult) MarshalJSON() ([]byte, error) {
	type plain QueryResult
	p := plain(r)
	p.Rows = r.Display()
	return json.Marshal(p)
}

// Text is v, a value of Display's rows, as the text of a table or CSV cell: a string as it
// is, a list or an object as JSON with a space after each comma and colon ([1, 2],
// {"a": 1, "b": "2025-01-01"}), bytes that are not text in base64, as JSON carries them.
// null stands for NULL.
func Text(v any, null string) string {
	switch x := v.(type) {
	case nil:
		return null
	case string:
		return x
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case []any, object, map[string]any:
		var b strings.Builder
		writeText(&b, v)
		return b.String()
	}
	return fmt.Sprint(v)
}

// writeText writes a value inside a list or an object as JSON, with a space after each comma
// and colon.
func writeText(b *strings.Builder, v any) {
	switch x := v.(type) {
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeText(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		writeText(b, sortedObject(nil, x))
	case object:
		b.WriteByte('{')
		for i, m := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeText(b, m.key)
			b.WriteString(": ")
			writeText(b, m.value)
		}
		b.WriteByte('}')
	default:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			enc.Encode(fmt.Sprint(v))
		}
		b.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	}
}

// display is v, a value of type t (nil when not known), in the form Display shows.
func display(t *colType, v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case time.Time:
		return timeText(t, x)
	case duckdb.Interval:
		return intervalText(x)
	case []byte, duckdb.UUID, *duckdb.UUID:
		return plainValue(t, x)
	case duckdb.Decimal:
		return json.Number(decimalText(x))
	case *big.Int:
		return json.Number(x.String())
	case float64:
		return floatText(x)
	case float32:
		return floatText(float64(x))
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = display(t.elemType(), e)
		}
		return out
	case map[string]any:
		if t.is("STRUCT") && len(t.fields) == len(x) {
			o := make(object, 0, len(x))
			for _, f := range t.fields {
				e, ok := x[f.name]
				if !ok {
					break
				}
				o = append(o, member{f.name, display(f.typ, e)})
			}
			if len(o) == len(x) {
				return o
			}
		}
		return sortedObject(t, x)
	case duckdb.OrderedMap:
		keys, values := x.Keys(), x.Values()
		o := make(object, len(keys))
		for i, k := range keys {
			var kt *colType
			if t != nil {
				kt = t.key
			}
			o[i] = member{Text(display(kt, k), "NULL"), display(t.elemType(), values[i])}
		}
		slices.SortStableFunc(o, func(a, b member) int { return strings.Compare(a.key, b.key) })
		return o
	case duckdb.Union:
		return display(t.field(x.Tag), x.Value)
	}
	return v
}

// floatText is a FLOAT or DOUBLE in one form wherever it stands (a cell, a list, JSON): the
// shortest that reads back exactly, with an exponent from a millionth down and from a million
// up (1.5, 1.23456789e+08, 1e-07), as a JSON number; "inf", "-inf" or "nan" as text, which
// JSON has no number for.
func floatText(x float64) any {
	switch {
	case math.IsNaN(x):
		return "nan"
	case math.IsInf(x, 1):
		return "inf"
	case math.IsInf(x, -1):
		return "-inf"
	}
	return json.Number(strconv.FormatFloat(x, 'g', -1, 64))
}

// sortedObject is m as an object in key order, its values of a MAP's value type when t is a
// MAP.
func sortedObject(t *colType, m map[string]any) object {
	var vt *colType
	if t.is("MAP") {
		vt = t.elem
	}
	o := make(object, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		o = append(o, member{k, display(vt, m[k])})
	}
	return o
}

// object is a STRUCT or a MAP as Display shows it: a JSON object whose members keep their
// order.
type object []member

type member struct {
	key   string
	value any
}

// MarshalJSON writes the object's members in order.
func (o object) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, m := range o {
		if i > 0 {
			b = append(b, ',')
		}
		k, err := json.Marshal(m.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(m.value)
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}

// infinities are the times the driver gives for DuckDB's infinity and -infinity, by type.
var infinities = map[string][2]time.Time{
	"DATE":         {time.Date(5881580, time.July, 11, 0, 0, 0, 0, time.UTC), time.Date(-5877641, time.June, 24, 0, 0, 0, 0, time.UTC)},
	"TIMESTAMP":    {time.UnixMicro(math.MaxInt64).UTC(), time.UnixMicro(-math.MaxInt64).UTC()},
	"TIMESTAMPTZ":  {time.UnixMicro(math.MaxInt64).UTC(), time.UnixMicro(-math.MaxInt64).UTC()},
	"TIMESTAMP_S":  {time.Unix(math.MaxInt64, 0).UTC(), time.Unix(-math.MaxInt64, 0).UTC()},
	"TIMESTAMP_MS": {time.UnixMilli(math.MaxInt64).UTC(), time.UnixMilli(-math.MaxInt64).UTC()},
	"TIMESTAMP_NS": {time.Unix(0, math.MaxInt64).UTC(), time.Unix(0, -math.MaxInt64).UTC()},
}

// timeText is a date or time of type t as Display shows it.
func timeText(t *colType, x time.Time) string {
	var name string
	if t != nil {
		name = t.name
	}
	if inf, ok := infinities[name]; ok {
		switch {
		case x.Equal(inf[0]):
			return "infinity"
		case x.Equal(inf[1]):
			return "-infinity"
		}
	}
	switch name {
	case "DATE":
		return x.Format(time.DateOnly)
	case "TIME":
		return x.Format("15:04:05.999999")
	case "TIMETZ":
		return x.Format("15:04:05.999999-07:00")
	case "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS":
		return x.Format("2006-01-02 15:04:05.999999999")
	}
	// TIMESTAMPTZ, and a time of a type not known.
	return x.UTC().Format(time.RFC3339Nano)
}

// intervalText is an interval as DuckDB writes it: years, months and days, then the time
// (-01:30:00, 04:05:06.000007), or 00:00:00 when all are zero.
func intervalText(iv duckdb.Interval) string {
	var parts []string
	unit := func(n int64, name string) {
		if n == 0 {
			return
		}
		s := strconv.FormatInt(n, 10) + " " + name
		if n != 1 && n != -1 {
			s += "s"
		}
		parts = append(parts, s)
	}
	unit(int64(iv.Months/12), "year")
	unit(int64(iv.Months%12), "month")
	unit(int64(iv.Days), "day")
	if iv.Micros == 0 && len(parts) > 0 {
		return strings.Join(parts, " ")
	}
	sign, u := "", uint64(iv.Micros)
	if iv.Micros < 0 {
		sign, u = "-", uint64(-iv.Micros) // math.MinInt64 negates to itself, 1<<63 as uint64
	}
	clock := fmt.Sprintf("%s%02d:%02d:%02d", sign, u/3600e6, u/60e6%60, u/1e6%60)
	if frac := u % 1e6; frac != 0 {
		clock += strings.TrimRight(fmt.Sprintf(".%06d", frac), "0")
	}
	return strings.Join(append(parts, clock), " ")
}

// decimalText is a DECIMAL with all its scale's digits, as DuckDB writes it: 123.40, -0.05.
func decimalText(d duckdb.Decimal) string {
	if d.Value == nil {
		return "0"
	}
	digits, sign := new(big.Int).Abs(d.Value).String(), ""
	if d.Value.Sign() < 0 {
		sign = "-"
	}
	scale := int(d.Scale)
	if scale == 0 {
		return sign + digits
	}
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	return sign + digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
}

// colType is a column's DuckDB type, from the name the driver gives it ("DATE",
// "DECIMAL(10,2)", "INTEGER[]", "INTEGER[3]", `STRUCT("a" INTEGER, "b" DATE)`,
// "MAP(VARCHAR, INTEGER)", `UNION("n" INTEGER)`), parsed as far as showing its values needs.
type colType struct {
	// name is the type's name without its parameters; LIST for a list or an array.
	name string
	// elem is a list's element type, or a map's value type.
	elem *colType
	// key is a map's key type.
	key *colType
	// fields are a struct's fields, or a union's members, in order.
	fields []colField
}

type colField struct {
	name string
	typ  *colType
}

// parseType parses a type name as the driver gives it.
func parseType(s string) *colType {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, "]") {
		// The brackets at the end hold only digits: the last [ opens them.
		if i := strings.LastIndexByte(s, '['); i > 0 {
			return &colType{name: "LIST", elem: parseType(s[:i])}
		}
	}
	open := strings.IndexByte(s, '(')
	if open < 0 || !strings.HasSuffix(s, ")") {
		return &colType{name: strings.ToUpper(s)}
	}
	t := &colType{name: strings.ToUpper(strings.TrimSpace(s[:open]))}
	params := splitParams(s[open+1 : len(s)-1])
	switch t.name {
	case "MAP":
		if len(params) == 2 {
			t.key, t.elem = parseType(params[0]), parseType(params[1])
		}
	case "STRUCT", "UNION":
		for _, p := range params {
			name, typ := splitField(p)
			t.fields = append(t.fields, colField{name, parseType(typ)})
		}
	}
	return t
}

// splitParams splits a type's parameter list at the commas outside parentheses, brackets
// and quoted names.
func splitParams(s string) []string {
	var params []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '(' || c == '[':
			depth++
		case c == ')' || c == ']':
			depth--
		case c == ',' && depth == 0:
			params = append(params, s[start:i])
			start = i + 1
		}
	}
	return append(params, s[start:])
}

// splitField splits a struct's field, `"name" TYPE` (a quote in the name doubled) or
// `name TYPE`, into its name and its type.
func splitField(s string) (name, typ string) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, `"`) {
		name, typ, _ = strings.Cut(s, " ")
		return name, typ
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] != '"':
			b.WriteByte(s[i])
		case i+1 < len(s) && s[i+1] == '"':
			b.WriteByte('"')
			i++
		default:
			return b.String(), s[i+1:]
		}
	}
	return b.String(), ""
}

// is reports whether t is the type named name.
func (t *colType) is(name string) bool { return t != nil && t.name == name }

// elemType is a list's element type, or a map's value type; nil when not known.
func (t *colType) elemType() *colType {
	if t == nil {
		return nil
	}
	return t.elem
}

// field is the type of a struct's field, or of a union's member; nil when not known.
func (t *colType) field(name string) *colType {
	if t == nil {
		return nil
	}
	for _, f := range t.fields {
		if f.name == name {
			return f.typ
		}
	}
	return nil
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
