package sdk

import (
	"bytes"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// EncodeRecord writes rec as an Arrow IPC stream (schema and one record batch).
func EncodeRecord(rec arrow.RecordBatch) ([]byte, error) {
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(rec.Schema()))
	if err := w.Write(rec); err != nil {
		return nil, fmt.Errorf("sdk: encode batch: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("sdk: encode batch: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeRecord reads the record EncodeRecord wrote. The caller releases it.
func DecodeRecord(b []byte) (arrow.RecordBatch, error) {
	r, err := ipc.NewReader(bytes.NewReader(b), ipc.WithAllocator(memory.DefaultAllocator))
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
