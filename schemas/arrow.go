package schemas

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Schema returns the Arrow schema of the store's events table: every column that is not a
// delivery column, in order.
func Schema() *arrow.Schema {
	names := make([]string, 0, len(columns))
	for _, c := range columns {
		if !c.Delivery {
			names = append(names, c.Name)
		}
	}
	s, _ := SchemaFor(names)
	return s
}

// DeliverySchema returns the schema of batches sent to sinks before projection: the stored
// columns followed by the delivery columns.
func DeliverySchema() *arrow.Schema {
	names := make([]string, len(columns))
	for i, c := range columns {
		names[i] = c.Name
	}
	s, _ := SchemaFor(names)
	return s
}

// SchemaFor returns a schema holding the named columns in the given order.
func SchemaFor(names []string) (*arrow.Schema, error) {
	fields := make([]arrow.Field, 0, len(names))
	var unknown []string
	for _, n := range names {
		c, ok := columnByName[n]
		if !ok {
			unknown = append(unknown, n)
			continue
		}
		// seq, event_id, event_type, source and received_at are never null.
		nullable := !(n == "seq" || n == "event_id" || n == "event_type" || n == "source" || n == "received_at")
		fields = append(fields, arrow.Field{Name: c.Name, Type: c.Type, Nullable: nullable})
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("schemas: unknown columns %s", strings.Join(unknown, ", "))
	}
	md := arrow.NewMetadata([]string{MetadataSchemaVersion}, []string{SchemaVersion})
	return arrow.NewSchema(fields, &md), nil
}

// Builder appends Rows to an Arrow record of a schema made of normalised columns. It is not
// safe for concurrent use.
type Builder struct {
	schema  *arrow.Schema
	rb      *array.RecordBuilder
	cols    []*Column
	reuse   bool
	dataLen []int // per column, the bytes of values the last record held
}

// NewBuilder returns a Builder for schema, whose fields must all be normalised columns (a
// schema from SchemaFor, say). mem may be nil for the default allocator.
func NewBuilder(mem memory.Allocator, schema *arrow.Schema) (*Builder, error) {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	b := &Builder{schema: schema}
	for _, f := range schema.Fields() {
		c, ok := columnByName[f.Name]
		if !ok {
			return nil, fmt.Errorf("schemas: builder: unknown column %q", f.Name)
		}
		if !arrow.TypeEqual(c.Type, f.Type) {
			return nil, fmt.Errorf("schemas: builder: column %q is %s, not %s", f.Name, c.Type, f.Type)
		}
		b.cols = append(b.cols, c)
	}
	b.rb = array.NewRecordBuilder(mem, schema)
	return b, nil
}

// Append adds r as the next row.
func (b *Builder) Append(r *Row) {
	for i, c := range b.cols {
		c.app(b.rb.Field(i), r)
	}
}

// Len returns how many rows were appended since the last NewRecord.
func (b *Builder) Len() int {
	if len(b.cols) == 0 {
		return 0
	}
	return b.rb.Field(0).Len()
}

// NewRecord returns the rows appended so far as a record and resets the builder. The caller
// releases the record.
func (b *Builder) NewRecord() arrow.RecordBatch {
	if !b.reuse {
		return b.rb.NewRecordBatch()
	}
	n := b.Len()
	if b.dataLen == nil {
		b.dataLen = make([]int, len(b.cols))
	}
	total := 0
	for i := range b.cols {
		b.dataLen[i] = 0
		if d, ok := b.rb.Field(i).(interface{ DataLen() int }); ok {
			b.dataLen[i] = d.DataLen()
			total += b.dataLen[i]
		}
	}
	rec := b.rb.NewRecordBatch()
	if n == 0 || n > reserveRows || total > reserveBytes {
		return rec
	}
	for i := range b.cols {
		f := b.rb.Field(i)
		f.Reserve(n)
		if d, ok := f.(interface{ ReserveData(int) }); ok && b.dataLen[i] > 0 {
			d.ReserveData(b.dataLen[i])
		}
	}
	return rec
}

// ReuseCapacity makes every NewRecord reserve room for as many rows and string bytes as the
// record it returns, for a builder that makes records of about the same size again and again
// (the store's commit groups): its buffers then do not grow by doubling from empty each time.
// Records over reserveRows rows or reserveBytes bytes of strings reserve nothing, so an
// import's large record does not leave its size reserved.
func (b *Builder) ReuseCapacity() { b.reuse = true }

const (
	reserveRows  = 4096
	reserveBytes = 8 << 20
)

// Schema returns the builder's schema.
func (b *Builder) Schema() *arrow.Schema { return b.schema }

// Release frees the builder's buffers.
func (b *Builder) Release() { b.rb.Release() }

// BuildRecord is a shortcut that builds one record of schema from rows.
func BuildRecord(mem memory.Allocator, schema *arrow.Schema, rows []Row) (arrow.RecordBatch, error) {
	b, err := NewBuilder(mem, schema)
	if err != nil {
		return nil, err
	}
	defer b.Release()
	for i := range rows {
		b.Append(&rows[i])
	}
	return b.NewRecord(), nil
}

// compatible reports whether an array of type got can be read as a column of type want. It
// accepts what other Arrow producers (DuckDB) write for the same data: another time zone name
// for UTC ("Etc/UTC"), another name for a list's element field.
func compatible(want, got arrow.DataType) bool {
	if arrow.TypeEqual(want, got) {
		return true
	}
	switch w := want.(type) {
	case *arrow.TimestampType:
		g, ok := got.(*arrow.TimestampType)
		return ok && g.Unit == w.Unit && (g.TimeZone == "") == (w.TimeZone == "")
	case *arrow.ListType:
		g, ok := got.(*arrow.ListType)
		return ok && compatible(w.Elem(), g.Elem())
	}
	return false
}

// RowsFromRecord reads rec back into Rows: the inverse of Builder. Columns rec lacks stay
// zero; columns that are not normalised columns are ignored; a normalised column of an
// incompatible type is an error. The rows do not alias rec's memory.
func RowsFromRecord(rec arrow.RecordBatch) ([]Row, error) {
	readers, err := rowReaders(rec)
	if err != nil {
		return nil, err
	}
	rows := make([]Row, rec.NumRows())
	readRows(readers, 0, rows)
	return rows, nil
}

// EachRow calls fn with each row of rec, as RowsFromRecord would give them, decoding a chunk
// of rows at a time into Rows it reuses: a batch of thousands never exists as Rows all at
// once. The *Row passed to fn is overwritten after fn returns; its strings and slices are
// not (they do not alias rec), so copying the Row keeps it. fn's error stops the iteration.
func EachRow(rec arrow.RecordBatch, fn func(*Row) error) error {
	return eachRow(rec, eachChunk, fn)
}

// eachChunk rows are decoded at a time by EachRow (~200 KB of Rows).
const eachChunk = 256

func eachRow(rec arrow.RecordBatch, chunk int, fn func(*Row) error) error {
	readers, err := rowReaders(rec)
	if err != nil {
		return err
	}
	n := int(rec.NumRows())
	rows := make([]Row, min(chunk, n))
	for start := 0; start < n; start += chunk {
		part := rows[:min(chunk, n-start)]
		clear(part)
		readRows(readers, start, part)
		for i := range part {
			if err := fn(&part[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// rowReader reads one column of a record into Rows.
type rowReader struct {
	col *Column
	arr arrow.Array
}

func rowReaders(rec arrow.RecordBatch) ([]rowReader, error) {
	readers := make([]rowReader, 0, rec.NumCols())
	for i, f := range rec.Schema().Fields() {
		c, ok := columnByName[f.Name]
		if !ok {
			continue
		}
		if !compatible(c.Type, f.Type) {
			return nil, fmt.Errorf("schemas: column %q is %s, want %s", f.Name, f.Type, c.Type)
		}
		readers = append(readers, rowReader{c, rec.Column(i)})
	}
	return readers, nil
}

// readRows reads the record's rows from start on into rows.
func readRows(readers []rowReader, start int, rows []Row) {
	for _, rd := range readers {
		arr := rd.arr
		if start != 0 || len(rows) != arr.Len() {
			arr = array.NewSlice(rd.arr, int64(start), int64(start+len(rows)))
			defer arr.Release()
		}
		if rd.col.readAll != nil {
			rd.col.readAll(arr, rows)
			continue
		}
		for i := range rows {
			rd.col.read(arr, i, &rows[i])
		}
	}
}
