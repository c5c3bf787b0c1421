package sdk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// EncodeRecord writes rec as an Arrow IPC stream (schema and one record batch).
func EncodeRecord(rec arrow.RecordBatch) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, EncodedSize(rec)))
	w := ipc.NewWriter(buf, ipc.WithSchema(rec.Schema()))
	if err := w.Write(rec); err != nil {
		return nil, fmt.Errorf("sdk: encode batch: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("sdk: encode batch: %w", err)
	}
	return buf.Bytes(), nil
}

// EncodedSize estimates, from above, the bytes EncodeRecord writes for rec (its buffers,
// padded, plus the schema and message headers) without encoding it. A slice counts only its
// own values, not the parent's buffers it shares.
func EncodedSize(rec arrow.RecordBatch) int {
	n := 4096 + 256*int(rec.NumCols())
	for _, col := range rec.Columns() {
		n += dataSize(col.Data(), col.Data().Offset(), col.Len())
	}
	return n
}

// dataSize estimates the IPC bytes of length values of d from offset on.
func dataSize(d arrow.ArrayData, offset, length int) int {
	pad := func(b int) int { return (b + 7) &^ 7 }
	n := pad((length + 7) / 8) // validity
	if length == 0 {
		return n
	}
	offsets := func() []int32 { return arrow.Int32Traits.CastFromBytes(d.Buffers()[1].Bytes()) }
	switch t := d.DataType().(type) {
	case arrow.FixedWidthDataType:
		n += pad((length*t.BitWidth() + 7) / 8)
	case *arrow.StringType, *arrow.BinaryType:
		offs := offsets()
		n += pad(4*(length+1)) + pad(int(offs[offset+length]-offs[offset]))
	case *arrow.ListType:
		offs := offsets()
		child := d.Children()[0]
		n += pad(4*(length+1)) + dataSize(child, child.Offset()+int(offs[offset]), int(offs[offset+length]-offs[offset]))
	default: // other layouts: every buffer whole
		for _, b := range d.Buffers() {
			if b != nil {
				n += pad(b.Len())
			}
		}
		for _, c := range d.Children() {
			n += dataSize(c, c.Offset(), c.Len())
		}
	}
	return n
}

// DecodeRecord reads the record EncodeRecord wrote. The record's buffers point into b (no
// copy is made), so b must not change while the record is in use. The caller releases it.
func DecodeRecord(b []byte) (arrow.RecordBatch, error) {
	return decodeRecord(b, nil)
}

// decodeRecord is DecodeRecord; when owner is not nil, the record's buffers hold b through
// it, and owner.Free is called once nothing holds them any more.
func decodeRecord(b []byte, owner memory.Allocator) (arrow.RecordBatch, error) {
	r, err := ipc.NewReaderFromMessageReader(&sliceMessages{b: b, owner: owner}, ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return nil, fmt.Errorf("sdk: decode batch: %w", err)
	}
	defer r.Release()
	if !r.Next() {
		if err := r.Err(); err != nil {
			return nil, fmt.Errorf("sdk: decode batch: %w", err)
		}
		return nil, fmt.Errorf("sdk: decode batch: no record")
	}
	rec := r.RecordBatch()
	rec.Retain()
	return rec, nil
}

// sliceMessages reads the messages of an IPC stream held in memory, each one's metadata and
// body sliced from the stream instead of copied out of it (ipc.NewReader copies every body).
type sliceMessages struct {
	b     []byte
	msg   *ipc.Message
	owner memory.Allocator // when set, a record body is counted against it (see decodeRecord)
}

// ipcContinuation marks a message's length in the IPC stream format.
const ipcContinuation = 0xFFFFFFFF

func (r *sliceMessages) Message() (*ipc.Message, error) {
	if r.msg != nil {
		r.msg.Release()
		r.msg = nil
	}
	if len(r.b) < 4 {
		return nil, io.EOF
	}
	n, off := binary.LittleEndian.Uint32(r.b), 4
	if n == ipcContinuation {
		if len(r.b) < 8 {
			return nil, io.ErrUnexpectedEOF
		}
		n, off = binary.LittleEndian.Uint32(r.b[4:]), 8
	}
	if n == 0 {
		return nil, io.EOF // end of stream
	}
	if uint64(off)+uint64(n) > uint64(len(r.b)) {
		return nil, fmt.Errorf("arrow ipc: message metadata of %d bytes runs past the stream", n)
	}
	meta := memory.NewBufferBytes(r.b[off : off+int(n)])
	// The body's length is in the metadata: read it from a message without a body first.
	head := ipc.NewMessage(meta, memory.NewBufferBytes(nil))
	bodyLen := head.BodyLen()
	head.Release()
	start := uint64(off) + uint64(n)
	if bodyLen < 0 || start+uint64(bodyLen) > uint64(len(r.b)) {
		return nil, fmt.Errorf("arrow ipc: message body of %d bytes runs past the stream", bodyLen)
	}
	bodyBytes := r.b[start : start+uint64(bodyLen)]
	body := memory.NewBufferBytes(bodyBytes)
	if r.owner != nil && bodyLen > 0 {
		body = memory.NewBufferWithAllocator(bodyBytes, r.owner)
		defer body.Release() // the message holds it now, then the arrays sliced from it
	}
	r.msg = ipc.NewMessage(meta, body)
	r.b = r.b[start+uint64(bodyLen):]
	return r.msg, nil
}

// Retain and Release are no-ops beyond the current message: the stream is plain memory.
func (r *sliceMessages) Retain() {}

func (r *sliceMessages) Release() {
	if r.msg != nil {
		r.msg.Release()
		r.msg = nil
	}
}
