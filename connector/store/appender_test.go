package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/hookbridge/hookbridge/schemas"
)

// The Appender (small groups) and the Arrow view (large ones) must store every column of
// every fixture identically: wall-clock and UTC times, lists, nulls, the raw body.
func TestAppenderStoresWhatTheArrowPathStores(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(fixtures, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("fixtures: %v %v", files, err)
	}
	b, err := schemas.NewBuilder(memory.NewGoAllocator(), schemas.Schema())
	if err != nil {
		t.Fatal(err)
	}
	bodies := []string{event("varied", "Subscribe", "s1", "Ünïcode@Example.com")}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, string(raw))
	}
	for i, body := range bodies {
		r := decode(t, body)
		r.Seq = int64(i + 1)
		b.Append(r)
	}
	rec := b.NewRecord()
	defer rec.Release()

	dump := func(insert func(tx *Tx) error) []string {
		s := openStore(t, Options{})
		if err := s.Apply(context.Background(), func(ctx context.Context, tx *Tx) error { return insert(tx) }); err != nil {
			t.Fatal(err)
		}
		rows, err := s.DB().Query("SELECT * FROM events ORDER BY seq")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		var out []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var line []string
			for i, v := range vals {
				line = append(line, fmt.Sprintf("%s=%#v", cols[i], v))
			}
			out = append(out, strings.Join(line, " "))
		}
		return out
	}
	viaArrow := dump(func(tx *Tx) error { return tx.insertView(context.Background(), "events", rec) })
	viaAppender := dump(func(tx *Tx) error { return tx.appendRecord(context.Background(), "events", rec) })
	if len(viaArrow) != len(bodies) {
		t.Fatalf("%d rows through Arrow, want %d", len(viaArrow), len(bodies))
	}
	if !reflect.DeepEqual(viaArrow, viaAppender) {
		for i := range viaArrow {
			if i < len(viaAppender) && viaArrow[i] != viaAppender[i] {
				t.Errorf("row %d differs:\narrow:    %s\nappender: %s", i, viaArrow[i], viaAppender[i])
			}
		}
		t.Fatalf("%d rows through the Appender, %d through Arrow", len(viaAppender), len(viaArrow))
	}
}
