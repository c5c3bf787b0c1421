package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// acceptedRows decodes every accepted body in testdata into rows with seq set.
func acceptedRows(t *testing.T) []Row {
	t.Helper()
	dec := mustDecoder(t, nil)
	paths, _ := filepath.Glob("testdata/bodies/*")
	var rows []Row
	for _, p := range paths {
		if strings.HasPrefix(filepath.Base(p), "refused_") {
			continue
		}
		ev, err := dec.Decode(readBody(t, filepath.Base(p)))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		r := ev.Row("rokt", fixedReceivedAt.Add(time.Duration(len(rows))*time.Second))
		r.Seq = int64(len(rows) + 1)
		rows = append(rows, r)
	}
	return rows
}

func TestRecordRoundTrip(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rows := acceptedRows(t)
	// Fill the delivery columns on a few rows, including empty lists and zero counts.
	n, zero := int64(2), int64(0)
	ended := time.Date(2025, 9, 29, 7, 42, 11, 0, time.UTC)
	rows[0].Status, rows[0].ContactStatus, rows[0].ContactActiveSubscriptions = StatusSubscribed, StatusSubscribed, &n
	rows[0].ContactCalendars, rows[0].ContactEndedCalendars = []string{"a", "b"}, []string{}
	rows[1].Status, rows[1].UnsubscribedAt, rows[1].ContactActiveSubscriptions = StatusUnsubscribed, &ended, &zero

	rec, err := BuildRecord(mem, DeliverySchema(), rows)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	if int(rec.NumRows()) != len(rows) {
		t.Fatalf("record has %d rows, want %d", rec.NumRows(), len(rows))
	}
	back, err := RowsFromRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if !reflect.DeepEqual(rows[i], back[i]) {
			t.Errorf("row %d (%s) changed in the round trip:\n got %+v\nwant %+v", i, rows[i].EventID, back[i], rows[i])
		}
	}
}

// EachRow gives the rows RowsFromRecord gives, whatever the chunk boundaries, and what it
// hands out survives the reuse of its Rows.
func TestEachRowMatchesRowsFromRecord(t *testing.T) {
	rows := acceptedRows(t)
	n := int64(1)
	rows[0].ContactCalendars, rows[1].ContactCalendars, rows[2].ContactEndedCalendars = []string{"a", "b"}, []string{}, []string{"c"}
	rows[0].ContactActiveSubscriptions = &n
	rec, err := BuildRecord(nil, DeliverySchema(), rows)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	want, err := RowsFromRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []int{1, 3, len(rows) - 1, eachChunk} {
		var got []Row
		if err := eachRow(rec, chunk, func(r *Row) error { got = append(got, *r); return nil }); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("chunks of %d: rows differ from RowsFromRecord", chunk)
			for i := range min(len(got), len(want)) {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("row %d:\n got %+v\nwant %+v", i, got[i], want[i])
				}
			}
		}
	}
	stop := errors.New("enough")
	seen := 0
	if err := EachRow(rec, func(*Row) error { seen++; return stop }); !errors.Is(err, stop) || seen != 1 {
		t.Errorf("fn's error: %v after %d rows", err, seen)
	}
}

func TestIPCKeepsSchemaVersion(t *testing.T) {
	rows := acceptedRows(t)[:3]
	rec, err := BuildRecord(nil, Schema(), rows)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(rec.Schema()))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	w.Close()
	r, err := ipc.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	md := r.Schema().Metadata()
	if v, ok := md.GetValue(MetadataSchemaVersion); !ok || v != SchemaVersion {
		t.Errorf("schema version metadata %q %v", v, ok)
	}
	if !r.Next() {
		t.Fatal("no record")
	}
	back, err := RowsFromRecord(r.RecordBatch())
	if err != nil {
		t.Fatal(err)
	}
	if back[2].EventID != rows[2].EventID || !bytes.Equal(back[2].Raw, rows[2].Raw) {
		t.Errorf("IPC round trip lost data")
	}
}

func TestSchemas(t *testing.T) {
	stored := Schema()
	for _, f := range stored.Fields() {
		if c, _ := LookupColumn(f.Name); c.Delivery {
			t.Errorf("delivery column %s in the stored schema", f.Name)
		}
	}
	if !DeliverySchema().HasField("contact_status") || stored.HasField("status") {
		t.Error("delivery columns belong to DeliverySchema only")
	}
	for _, name := range []string{"seq", "event_id", "event_type", "source", "received_at", "occurred_at", "account_id", "account_code",
		"subscription_id", "calendar_id", "calendar_code", "calendar_title", "tag_ids", "email", "email_key", "postcode", "flags", "raw"} {
		if !stored.HasField(name) {
			t.Errorf("stored schema lacks %s", name)
		}
	}
	proj, err := SchemaFor([]string{"email", "seq"})
	if err != nil || proj.NumFields() != 2 || proj.Field(0).Name != "email" {
		t.Fatalf("projection: %v %v", proj, err)
	}
	rec, err := BuildRecord(nil, proj, acceptedRows(t)[:2])
	if err != nil {
		t.Fatal(err)
	}
	rec.Release()
	if _, err := SchemaFor([]string{"email", "shoe_size"}); err == nil || !strings.Contains(err.Error(), "shoe_size") {
		t.Errorf("unknown column accepted: %v", err)
	}
	bad := arrow.NewSchema([]arrow.Field{{Name: "email", Type: arrow.PrimitiveTypes.Int64}}, nil)
	if _, err := NewBuilder(nil, bad); err == nil {
		t.Error("a column of the wrong type was accepted")
	}
}

func TestRowValue(t *testing.T) {
	r := acceptedRows(t)[0]
	if v, err := r.Value("event_id"); err != nil || v != r.EventID {
		t.Errorf("Value(event_id) = %v, %v", v, err)
	}
	if v, _ := r.Value("email"); r.Email == "" && v != nil {
		t.Errorf("an empty string column must read as null, got %#v", v)
	}
	if _, err := r.Value("nope"); err == nil {
		t.Error("unknown column accepted")
	}
}

// Every stored row gives back the typed event it was made from, through Arrow and back.
func TestRowsGiveBackTheirTypedEvents(t *testing.T) {
	dec := mustDecoder(t, nil)
	rows := acceptedRows(t)
	rec, err := BuildRecord(memory.NewGoAllocator(), Schema(), rows)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	back, err := RowsFromRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	for i := range back {
		want, err := dec.Decode(rows[i].Raw)
		if err != nil {
			t.Fatal(err)
		}
		got, err := back[i].Event(dec)
		if err != nil {
			t.Fatalf("row %d (%s): %v", i, rows[i].EventID, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("row %d (%s): typed event differs:\n got %+v\nwant %+v", i, rows[i].EventID, got, want)
		}
		if got.Row(rows[i].Source, rows[i].ReceivedAt).EventID != rows[i].EventID {
			t.Errorf("row %d: the event's row has another id", i)
		}
	}
	partial := back[0]
	partial.Raw = nil
	if _, err := partial.Event(dec); !errors.Is(err, ErrNoRaw) {
		t.Errorf("a row without raw: %v, want ErrNoRaw", err)
	}
}

// The column set of every schema version is frozen in testdata/schema/vN.txt: a later version
// may only add nullable columns, and the current version's file must match the code (run with
// -update after adding a column and raising SchemaVersion; -update writes only a missing file).
func TestSchemaVersionsOnlyAddNullableColumns(t *testing.T) {
	describe := func(f arrow.Field) string { return fmt.Sprintf("%s %s nullable=%t", f.Name, f.Type, f.Nullable) }
	current := DeliverySchema()
	var lines []string
	for _, f := range current.Fields() {
		lines = append(lines, describe(f))
	}
	version, err := strconv.Atoi(SchemaVersion)
	if err != nil || version < 1 {
		t.Fatalf("SchemaVersion %q is not a positive number", SchemaVersion)
	}
	path := fmt.Sprintf("testdata/schema/v%d.txt", version)
	// -update freezes a new version only: a frozen one is never rewritten.
	if _, err := os.Stat(path); *update && os.IsNotExist(err) {
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	byName := map[string]arrow.Field{}
	for _, f := range current.Fields() {
		byName[f.Name] = f
	}
	first := map[string]bool{}
	for v := 1; v <= version; v++ {
		data, err := os.ReadFile(fmt.Sprintf("testdata/schema/v%d.txt", v))
		if err != nil {
			t.Fatalf("schema version %d is not frozen: %v (run go test -run %s -update)", v, err, t.Name())
		}
		frozen := strings.Split(strings.TrimSpace(string(data)), "\n")
		for _, line := range frozen {
			name, _, _ := strings.Cut(line, " ")
			if v == 1 {
				first[name] = true
			}
			f, ok := byName[name]
			if !ok {
				t.Errorf("column %s of schema version %d is gone", name, v)
			} else if describe(f) != line {
				t.Errorf("column %s changed since schema version %d: %q, was %q", name, v, describe(f), line)
			}
		}
		if v == version && strings.Join(frozen, "\n") != strings.Join(lines, "\n") {
			t.Errorf("the schema differs from %s: raise SchemaVersion and freeze the new version with -update", path)
		}
	}
	for _, f := range current.Fields() {
		if !first[f.Name] && !f.Nullable {
			t.Errorf("column %s, added after version 1, is not nullable", f.Name)
		}
	}
}

// A builder that keeps its capacity gives the same records, record after record, and frees
// what it reserved on Release.
func TestBuilderReuseCapacity(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rows := acceptedRows(t)
	b, err := NewBuilder(mem, Schema())
	if err != nil {
		t.Fatal(err)
	}
	b.ReuseCapacity()
	for round := 0; round < 3; round++ {
		for i := range rows {
			b.Append(&rows[i])
		}
		rec := b.NewRecord()
		back, err := RowsFromRecord(rec)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			if !reflect.DeepEqual(rows[i], back[i]) {
				t.Fatalf("round %d, row %d (%s) changed", round, i, rows[i].EventID)
			}
		}
	}
	b.Release()
}
