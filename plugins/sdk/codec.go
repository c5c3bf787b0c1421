package sdk

import (
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the codec writeCodec wraps
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/hookbridge/hookbridge/plugins/proto/sinkpb"
)

// writeCodec is gRPC's protobuf codec, except for a WriteRequest, which it encodes and
// decodes itself so that the batch is not copied: the host sends arrow_ipc as it is, behind
// the few bytes of the other fields, and the plugin's arrow_ipc points into the received
// message. At 10,000-row batches the copy took a fifth of a plugin's time. The record decoded
// from it points there too (DecodeRecord copies nothing), and the message is the plugin's own.
type writeCodec struct {
	encoding.CodecV2
	bufs *batchBuffers // where requests are read into; nil: fresh memory each time
}

// Marshal encodes v; a WriteRequest's arrow_ipc is sent from where it is and must not change
// until the call returns.
func (c writeCodec) Marshal(v any) (mem.BufferSlice, error) {
	req, ok := v.(*sinkpb.WriteRequest)
	if !ok {
		return c.CodecV2.Marshal(v)
	}
	var head []byte
	if req.BatchId != "" {
		head = protowire.AppendTag(head, 1, protowire.BytesType)
		head = protowire.AppendString(head, req.BatchId)
	}
	if req.Attempt != 0 {
		head = protowire.AppendTag(head, 2, protowire.VarintType)
		head = protowire.AppendVarint(head, uint64(int64(req.Attempt)))
	}
	if len(req.ArrowIpc) == 0 {
		return mem.BufferSlice{mem.SliceBuffer(head)}, nil
	}
	head = protowire.AppendTag(head, 3, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(len(req.ArrowIpc)))
	return mem.BufferSlice{mem.SliceBuffer(head), mem.SliceBuffer(req.ArrowIpc)}, nil
}

func newWriteCodec(bufs *batchBuffers) writeCodec {
	return writeCodec{encoding.GetCodecV2("proto"), bufs}
}

// Unmarshal decodes data into v.
func (c writeCodec) Unmarshal(data mem.BufferSlice, v any) error {
	req, ok := v.(*sinkpb.WriteRequest)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	if c.bufs == nil {
		return unmarshalWrite(data.Materialize(), req)
	}
	buf := c.bufs.get(data.Len())
	data.CopyTo(buf)
	if err := unmarshalWrite(buf, req); err != nil {
		c.bufs.put(buf)
		return err
	}
	c.bufs.lend(req, buf)
	return nil
}

// batchBuffers recycles the memory WriteRequests are read into, so that a plugin does not
// zero a few fresh megabytes for every batch. A buffer comes back only once nothing holds it:
// the record decoded from it gives it back when its last array is released, however long a
// sink keeps the record.
type batchBuffers struct {
	mu   sync.Mutex
	free [][]byte
	lent map[*sinkpb.WriteRequest][]byte
}

// keepBuffers is how many free buffers batchBuffers keeps; maxLent how many requests it
// tracks between their decoding and their Write.
const (
	keepBuffers = 4
	maxLent     = 64
)

func (p *batchBuffers) get(n int) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, b := range p.free {
		if cap(b) >= n {
			p.free = append(p.free[:i], p.free[i+1:]...)
			return b[:n]
		}
	}
	return make([]byte, n)
}

func (p *batchBuffers) put(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < keepBuffers {
		p.free = append(p.free, b)
	}
}

func (p *batchBuffers) lend(req *sinkpb.WriteRequest, b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lent == nil || len(p.lent) >= maxLent {
		// Requests whose Write never ran (none, without interceptors) leave their buffers to
		// the garbage collector rather than here.
		p.lent = map[*sinkpb.WriteRequest][]byte{}
	}
	p.lent[req] = b
}

// owner returns what the record decoded from req holds its buffer through (nil when req was
// not read into one of these buffers), and stops tracking req: the record does from now on.
func (p *batchBuffers) owner(req *sinkpb.WriteRequest) memory.Allocator {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.lent[req]
	if !ok {
		return nil
	}
	delete(p.lent, req)
	return &lentBuffer{pool: p, buf: b}
}

// lentBuffer gives buf back to pool when the record body sliced from it is freed. It
// allocates nothing itself.
type lentBuffer struct {
	pool *batchBuffers
	buf  []byte
	once sync.Once
}

func (l *lentBuffer) Allocate(size int) []byte             { return make([]byte, size) }
func (l *lentBuffer) Reallocate(size int, b []byte) []byte { return append(b[:0:0], b...)[:size] }
func (l *lentBuffer) Free([]byte)                          { l.once.Do(func() { l.pool.put(l.buf) }) }

// unmarshalWrite decodes a WriteRequest from b, with ArrowIpc a slice of b. Unknown fields
// are skipped.
func unmarshalWrite(b []byte, req *sinkpb.WriteRequest) error {
	req.Reset()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("sdk: write request: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return fmt.Errorf("sdk: write request: batch_id: %w", protowire.ParseError(m))
			}
			if !utf8.Valid(v) {
				return errors.New("sdk: write request: batch_id is not UTF-8")
			}
			req.BatchId, n = string(v), m
		case num == 2 && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return fmt.Errorf("sdk: write request: attempt: %w", protowire.ParseError(m))
			}
			req.Attempt, n = int32(v), m
		case num == 3 && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return fmt.Errorf("sdk: write request: arrow_ipc: %w", protowire.ParseError(m))
			}
			req.ArrowIpc, n = v, m
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("sdk: write request: field %d: %w", num, protowire.ParseError(n))
			}
		}
		b = b[n:]
	}
	return nil
}
