package store

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// queryOne runs q on s and returns its result, failing the test on an error.
func queryOne(t *testing.T, s *Store, q string) *QueryResult {
	t.Helper()
	res, err := s.Query(context.Background(), q, 10, time.Minute)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if len(res.Rows) != 1 {
		t.Fatalf("%s: %d rows, want 1", q, len(res.Rows))
	}
	return res
}

// throughJSON is res as the CLI has it from the admin API: written by MarshalJSON, decoded
// with UseNumber.
func throughJSON(t *testing.T, res *QueryResult) *QueryResult {
	t.Helper()
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var back QueryResult
	if err := dec.Decode(&back); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return &back
}

// TestQueryShowsValuesAsDuckDBWritesThem: a DATE shows as a day, a TIMESTAMP without a zone,
// an INTERVAL, a UUID, a DECIMAL and an infinite date as DuckDB casts them to text (and
// export's CSV writes them); a TIMESTAMPTZ as RFC 3339 in UTC. JSON carries the same strings,
// and a result decoded from it (the admin API's answer) shows the same.
func TestQueryShowsValuesAsDuckDBWritesThem(t *testing.T) {
	s := openStore(t, Options{})
	for _, c := range []struct {
		expr string
		want string // "" for the text DuckDB casts expr to
	}{
		{"DATE '2025-10-10'", "2025-10-10"},
		{"DATE '2025-10-10'", ""},
		{"TIME '10:11:12.5'", ""},
		{"TIME '10:11:12'", ""},
		{"TIMETZ '10:11:12+05:30'", "10:11:12+05:30"},
		{"TIMESTAMP '2025-07-01 19:00:00'", "2025-07-01 19:00:00"},
		{"TIMESTAMP '2025-07-01 19:00:00.25'", ""},
		{"timezone('Australia/Melbourne', TIMESTAMPTZ '2025-07-01 09:00:00+00')", "2025-07-01 19:00:00"},
		{"TIMESTAMP_S '2025-01-01 10:00:00'", ""},
		{"TIMESTAMP_MS '2025-01-01 10:00:00.123'", ""},
		{"TIMESTAMP_NS '2025-01-01 10:00:00.123456789'", ""},
		{"TIMESTAMPTZ '2025-07-01 19:00:00.25+00'", "2025-07-01T19:00:00.25Z"},
		{"TIMESTAMPTZ '2025-07-01 19:00:00+10'", "2025-07-01T09:00:00Z"},
		{"'infinity'::DATE", ""},
		{"'-infinity'::DATE", ""},
		{"'infinity'::TIMESTAMP", ""},
		{"'-infinity'::TIMESTAMP_NS", ""},
		{"'infinity'::TIMESTAMPTZ", "infinity"},
		{"INTERVAL 90 MINUTE", "01:30:00"},
		{"INTERVAL '1 day 2 hours'", "1 day 02:00:00"},
		{"INTERVAL '1 month 3 days'", "1 month 3 days"},
		{"INTERVAL '0 seconds'", ""},
		{"INTERVAL '-90 minutes'", ""},
		{"INTERVAL '-1 day 2 hours'", ""},
		{"INTERVAL '-14 months'", ""},
		{"INTERVAL '-1 month'", ""},
		{"INTERVAL '36 hours'", ""},
		{"INTERVAL '1.5 seconds'", ""},
		{"INTERVAL '1 year 2 months 3 days 04:05:06.000007'", ""},
		{"uuid '0a1b2c3d-0000-4000-8000-000000000001'", "0a1b2c3d-0000-4000-8000-000000000001"},
		{"uuid '00000000-0000-0000-0000-000000000000'", ""},
		{"123.40::DECIMAL(10,2)", "123.40"},
		{"-0.05::DECIMAL(4,2)", ""},
		{"0::DECIMAL(4,2)", ""},
		{"170141183460469231731687303715884105727::HUGEINT", ""},
	} {
		res := queryOne(t, s, "SELECT "+c.expr+" AS v, CAST("+c.expr+" AS VARCHAR) AS text")
		want := c.want
		if want == "" {
			want = res.Rows[0][1].(string)
		}
		for path, r := range map[string]*QueryResult{"the file": res, "the admin API": throughJSON(t, res)} {
			v := r.Display()[0][0]
			if got := Text(v, "NULL"); got != want {
				t.Errorf("%s (%s) from %s shows %q, want %q", c.expr, res.Columns[0].Type, path, got, want)
			}
			b, _ := json.Marshal(v)
			if got := strings.Trim(string(b), `"`); got != want {
				t.Errorf("%s (%s) from %s is %s in JSON, want %q", c.expr, res.Columns[0].Type, path, b, want)
			}
		}
	}
}

// TestQueryShowsNestedValues: a STRUCT shows as a JSON object with its fields in order, a
// LIST as a JSON array, a MAP as an object in key order, a UNION as its value; their
// elements take the forms of their types. The admin API's answer shows the same.
func TestQueryShowsNestedValues(t *testing.T) {
	s := openStore(t, Options{})
	for _, c := range []struct{ expr, want string }{
		{`{'b': 1, 'a': DATE '2025-01-01', 'q"x': 'y', 'n': NULL}`, `{"b": 1, "a": "2025-01-01", "q\"x": "y", "n": null}`},
		{"[DATE '2025-01-01', NULL]", `["2025-01-01", null]`},
		{"[TIMESTAMP '2025-01-01 10:00:00']", `["2025-01-01 10:00:00"]`},
		{"[1, 2]", "[1, 2]"},
		{"[1, 2]::INTEGER[2]", "[1, 2]"},
		{"['a', 'b']", `["a", "b"]`},
		{"[uuid '0a1b2c3d-0000-4000-8000-000000000001']", `["0a1b2c3d-0000-4000-8000-000000000001"]`},
		{"MAP {'k': INTERVAL 1 HOUR, 'a': INTERVAL 1 DAY}", `{"a": "1 day", "k": "01:00:00"}`},
		{"[{'z': [123.40::DECIMAL(10,2)], 'y': {'x': TIMESTAMPTZ '2025-01-01 00:00:00+00'}}]", `[{"z": [123.40], "y": {"x": "2025-01-01T00:00:00Z"}}]`},
		{"union_value(t := TIME '01:02:03')", "01:02:03"},
		// Floating point: one form on its own, in a list and through the API; JSON has no
		// infinity or NaN, so those are text.
		{"123456789.0::DOUBLE", "1.23456789e+08"},
		{"[123456789.0::DOUBLE, 0.0000001, 1e21, 1.5::FLOAT, 250.0::DOUBLE]", "[1.23456789e+08, 1e-07, 1e+21, 1.5, 250]"},
		{"{'x': 0.25::DOUBLE}", `{"x": 0.25}`},
		{"'inf'::DOUBLE", "inf"},
		{"['-inf'::DOUBLE, 'nan'::DOUBLE]", `["-inf", "nan"]`},
	} {
		res := queryOne(t, s, "SELECT "+c.expr+" AS v")
		local := res.Display()[0][0]
		if got := Text(local, "NULL"); got != c.want {
			t.Errorf("%s (%s) shows %s, want %s", c.expr, res.Columns[0].Type, got, c.want)
		}
		remote := throughJSON(t, res).Display()[0][0]
		if got := Text(remote, "NULL"); got != c.want {
			t.Errorf("%s (%s) from the admin API shows %s, want %s", c.expr, res.Columns[0].Type, got, c.want)
		}
		lj, _ := json.Marshal(local)
		rj, _ := json.Marshal(remote)
		if !bytes.Equal(lj, rj) {
			t.Errorf("%s: JSON %s from the file, %s from the admin API", c.expr, lj, rj)
		}
	}
}

// TestQueryRowsKeepGoValues: Rows keeps the Go values the dashboard reads (a DATE and a
// TIMESTAMPTZ as time.Time, a list as []any); only Display and JSON change their form.
func TestQueryRowsKeepGoValues(t *testing.T) {
	s := openStore(t, Options{})
	res := queryOne(t, s, "SELECT DATE '2025-10-10', TIMESTAMPTZ '2025-07-01 19:00:00+00', ['a'], uuid '0a1b2c3d-0000-4000-8000-000000000001'")
	row := res.Rows[0]
	if d, ok := row[0].(time.Time); !ok || !d.Equal(time.Date(2025, 10, 10, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("DATE in Rows is %#v, want a time.Time", row[0])
	}
	if _, ok := row[1].(time.Time); !ok {
		t.Errorf("TIMESTAMPTZ in Rows is %#v, want a time.Time", row[1])
	}
	if l, ok := row[2].([]any); !ok || !reflect.DeepEqual(l, []any{"a"}) {
		t.Errorf("list in Rows is %#v, want []any{\"a\"}", row[2])
	}
	if row[3] != "0a1b2c3d-0000-4000-8000-000000000001" {
		t.Errorf("UUID in Rows is %#v, want its canonical string", row[3])
	}
}

// TestParseType: type names with quoted, nested and bracketed parts parse into their
// elements and fields.
func TestParseType(t *testing.T) {
	typ := parseType(`STRUCT("a ""q"", b" INTEGER, "c[" MAP(VARCHAR, DATE[]), d DECIMAL(10,2))[][3]`)
	if typ.name != "LIST" || typ.elem.name != "LIST" {
		t.Fatalf("outer type %q of %q, want LIST of LIST", typ.name, typ.elem.name)
	}
	st := typ.elem.elem
	if st.name != "STRUCT" || len(st.fields) != 3 {
		t.Fatalf("struct %+v, want 3 fields", st)
	}
	for i, want := range []string{`a "q", b`, "c[", "d"} {
		if st.fields[i].name != want {
			t.Errorf("field %d is %q, want %q", i, st.fields[i].name, want)
		}
	}
	if m := st.field("c["); !m.is("MAP") || !m.key.is("VARCHAR") || !m.elem.is("LIST") || !m.elem.elem.is("DATE") {
		t.Errorf("field c[ is %+v, want MAP(VARCHAR, DATE[])", m)
	}
	if !st.field("d").is("DECIMAL") || !st.field(`a "q", b`).is("INTEGER") {
		t.Errorf("fields d and a: %+v %+v", st.field("d"), st.field(`a "q", b`))
	}
}
