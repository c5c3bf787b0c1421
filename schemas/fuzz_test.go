package schemas

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzDecode checks that no body makes the decoder panic, that every refusal is a
// *DecodeError, and that every accepted body round-trips: its row survives an Arrow record,
// and decoding the row's raw column again gives the same row.
func FuzzDecode(f *testing.F) {
	paths, _ := filepath.Glob("testdata/bodies/*")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	dec := mustDecoder(f, nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		in := bytes.Clone(body)
		ev, err := dec.Decode(body)
		if !bytes.Equal(in, body) {
			t.Fatal("Decode modified its input")
		}
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Rule == "" {
				t.Fatalf("refusal is %T %v, want *DecodeError with a rule", err, err)
			}
			return
		}
		if ev.ID == "" || ev.Type == "" {
			t.Fatalf("accepted without id or type: %+v", ev)
		}
		row := ev.Row("fuzz", fixedReceivedAt)
		row.Seq = 1
		rec, err := BuildRecord(nil, Schema(), []Row{row})
		if err != nil {
			t.Fatal(err)
		}
		back, err := RowsFromRecord(rec)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normalizeEmpty(back[0]), normalizeEmpty(row)) {
			t.Fatalf("Arrow round trip changed the row:\n got %+v\nwant %+v", back[0], row)
		}
		again, err := dec.Decode(row.Raw)
		if err != nil {
			t.Fatalf("raw column no longer decodes: %v", err)
		}
		row2 := again.Row("fuzz", fixedReceivedAt)
		row2.Seq = 1
		if !reflect.DeepEqual(row2, row) {
			t.Fatalf("re-decoding raw gives another row:\n got %+v\nwant %+v", row2, row)
		}
	})
}

// normalizeEmpty makes a nil and an empty list alike: Arrow keeps an empty list as empty, and
// the decoder never produces an empty non-nil list except through tags it skipped.
func normalizeEmpty(r Row) Row {
	for _, l := range []*[]string{&r.TagIDs, &r.TagNames, &r.Flags} {
		if *l != nil && len(*l) == 0 {
			*l = nil
		}
	}
	return r
}
