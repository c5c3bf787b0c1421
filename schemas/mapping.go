package schemas

import (
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/hookbridge/hookbridge/internal/suggest"
)

// Mapping maps normalised columns to a sink's field names, in column order. It is what a
// sink's `mapping:` block in the configuration becomes.
type Mapping struct {
	pairs []MappingPair
}

// MappingPair is one column → field entry.
type MappingPair struct {
	Column string
	Field  string
}

// NewMapping validates m (normalised column → destination field). Every column must exist,
// every field name must be non-empty, and no two columns may feed one field. The error names
// every offending entry and suggests the nearest column names.
func NewMapping(m map[string]string) (*Mapping, error) {
	var problems []string
	byField := map[string]string{}
	mp := &Mapping{}
	for col, field := range m {
		if _, ok := columnByName[col]; !ok {
			msg := fmt.Sprintf("unknown column %q", col)
			if near := nearestColumn(col); near != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", near)
			}
			problems = append(problems, msg)
			continue
		}
		field = strings.TrimSpace(field)
		if field == "" {
			problems = append(problems, fmt.Sprintf("column %q maps to an empty field name", col))
			continue
		}
		if other, dup := byField[field]; dup {
			a, b := other, col
			if b < a {
				a, b = b, a
			}
			problems = append(problems, fmt.Sprintf("columns %q and %q both map to field %q", a, b, field))
			continue
		}
		byField[field] = col
		mp.pairs = append(mp.pairs, MappingPair{Column: col, Field: field})
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("schemas: mapping: %s", strings.Join(problems, "; "))
	}
	order := map[string]int{}
	for i, c := range columns {
		order[c.Name] = i
	}
	sort.Slice(mp.pairs, func(i, j int) bool { return order[mp.pairs[i].Column] < order[mp.pairs[j].Column] })
	return mp, nil
}

// Pairs returns the mapping's entries in column order.
func (m *Mapping) Pairs() []MappingPair { return append([]MappingPair(nil), m.pairs...) }

// Columns returns the mapped columns in column order.
func (m *Mapping) Columns() []string {
	out := make([]string, len(m.pairs))
	for i, p := range m.pairs {
		out[i] = p.Column
	}
	return out
}

// Apply returns r's mapped values keyed by destination field, as JSON-ready values (see
// JSONValue); null columns are left out, so a destination keeps what it has.
func (m *Mapping) Apply(r *Row) map[string]any {
	out := make(map[string]any, len(m.pairs))
	for _, p := range m.pairs {
		c := columnByName[p.Column]
		if v := c.get(r); v != nil {
			out[p.Field] = jsonValue(c, v)
		}
	}
	return out
}

// Map returns the named columns of r (every stored column when names is empty) as JSON-ready
// values keyed by column name; null columns are left out.
func (r *Row) Map(names ...string) map[string]any {
	out := map[string]any{}
	if len(names) == 0 {
		for _, c := range columns {
			if !c.Delivery {
				names = append(names, c.Name)
			}
		}
	}
	for _, n := range names {
		c, ok := columnByName[n]
		if !ok {
			continue
		}
		if v := c.get(r); v != nil {
			out[n] = jsonValue(c, v)
		}
	}
	return out
}

// JSONValue renders a column value for JSON: instants as RFC 3339 in UTC, wall-clock times
// as "2006-01-02T15:04:05.999999" without a zone, the raw body as text when it is UTF-8.
func jsonValue(c *Column, v any) any {
	switch x := v.(type) {
	case time.Time:
		if ts, ok := c.Type.(*arrow.TimestampType); ok && ts.TimeZone == "" {
			return x.Format("2006-01-02T15:04:05.999999")
		}
		return x.UTC().Format(time.RFC3339Nano)
	case []byte:
		if utf8.Valid(x) {
			return string(x)
		}
		return x
	}
	return v
}

// nearestColumn suggests the column whose name is closest to name, or "".
func nearestColumn(name string) string {
	names := make([]string, len(columns))
	for i, c := range columns {
		names[i] = c.Name
	}
	return suggest.Nearest(name, names)
}
