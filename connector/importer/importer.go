// Package importer loads JSON-lines files of webhook bodies (what `hookbridge simulate --out`
// writes, or an export of another system) through the same decoder, de-duplication and writer
// as live webhooks, keeping each body's original receive time.
package importer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hookbridge/hookbridge/schemas"
)

// Line is one line of an import file.
type Line struct {
	// ReceivedAt is when the body was (or would have been) received; it becomes received_at.
	ReceivedAt time.Time `json:"received_at"`
	// Source names the webhook source (default "rokt").
	Source string `json:"source"`
	// Body is the request body exactly as sent, as a JSON string.
	Body string `json:"body"`
}

// Store is what an import needs of the store.
type Store interface {
	IngestBatch(ctx context.Context, rows []*schemas.Row) (seqs []int64, dups []bool, err error)
	Reject(ctx context.Context, rej *schemas.Rejection) error
	// WaitState returns once subscription state is merged up to seq.
	WaitState(ctx context.Context, seq int64) error
	// BeginBulk and EndBulk bracket a large load: state is rebuilt once at the end instead
	// of merged batch by batch.
	BeginBulk()
	EndBulk(ctx context.Context) error
}

// bulkAfter is how many lines an import reads before it switches the store to bulk mode:
// small imports keep subscription state current as they go.
const bulkAfter = 50000

// Progress counts an import's lines.
type Progress struct {
	Lines      int64 `json:"lines"`
	Accepted   int64 `json:"accepted"`
	Duplicates int64 `json:"duplicates"`
	// Refused bodies are kept in the rejected table, as live refusals are.
	Refused int64 `json:"refused"`
	// Malformed lines are not JSON lines of the import format; they are reported, not kept.
	Malformed int64 `json:"malformed"`
	Bytes     int64 `json:"bytes"`
}

// Options tune an import.
type Options struct {
	// Decoders by source; sources without one use the default field paths.
	Decoders map[string]*schemas.Decoder
	// Batch is how many rows go in one commit (default 5000).
	Batch int
	// MaxLine bounds one line (default 8 MiB).
	MaxLine int
	// Progress is called after every batch.
	Progress func(Progress)
	// Bulk lets an import past bulkAfter lines switch the store to bulk mode (see
	// Store.BeginBulk): much faster, but deliveries wait for the import to end.
	Bulk bool
}

// Import reads lines from r until EOF.
func Import(ctx context.Context, r io.Reader, st Store, opts Options) (_ Progress, err error) {
	if opts.Batch <= 0 {
		opts.Batch = 5000
	}
	if opts.MaxLine <= 0 {
		opts.MaxLine = 8 << 20
	}
	def, err := schemas.NewDecoder(nil)
	if err != nil {
		return Progress{}, fmt.Errorf("importer: %w", err)
	}
	var p Progress
	var last int64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 256<<10), opts.MaxLine)
	// One batch commits while the next is decoded.
	type done struct {
		seqs []int64
		dups []bool
		err  error
	}
	var inflight chan done
	wait := func() error {
		if inflight == nil {
			return nil
		}
		d := <-inflight
		inflight = nil
		if d.err != nil {
			return fmt.Errorf("importer: %w", d.err)
		}
		for _, s := range d.seqs {
			last = max(last, s)
		}
		for _, dup := range d.dups {
			if dup {
				p.Duplicates++
			} else {
				p.Accepted++
			}
		}
		if opts.Progress != nil {
			opts.Progress(p)
		}
		return nil
	}
	batch := make([]*schemas.Row, 0, opts.Batch)
	flush := func() error {
		if err := wait(); err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		ch := make(chan done, 1)
		go func(rows []*schemas.Row) {
			seqs, dups, err := st.IngestBatch(ctx, rows)
			ch <- done{seqs, dups, err}
		}(batch)
		inflight = ch
		batch = make([]*schemas.Row, 0, opts.Batch)
		return nil
	}
	bulk := false
	defer func() {
		// On an early return: let the batch in flight finish, then end bulk mode.
		wait()
		if bulk {
			if eerr := st.EndBulk(ctx); eerr != nil {
				err = errors.Join(err, fmt.Errorf("importer: rebuild state: %w", eerr))
			}
		}
	}()
	for sc.Scan() {
		if err := ctx.Err(); err != nil {
			return p, err
		}
		if p.Lines == bulkAfter && opts.Bulk {
			st.BeginBulk()
			bulk = true
		}
		p.Lines++
		p.Bytes += int64(len(sc.Bytes())) + 1
		var l Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.ReceivedAt.IsZero() {
			p.Malformed++
			continue
		}
		if l.Source == "" {
			l.Source = "rokt"
		}
		dec := opts.Decoders[l.Source]
		if dec == nil {
			dec = def
		}
		body := []byte(l.Body)
		ev, err := dec.Decode(body)
		if err != nil {
			var de *schemas.DecodeError
			if !errors.As(err, &de) {
				return p, err
			}
			rej := &schemas.Rejection{Source: l.Source, ReceivedAt: l.ReceivedAt, Status: 400, Reason: string(de.Rule), Detail: de.Detail + " (import)", BodySize: int64(len(body)), Body: body}
			if err := st.Reject(ctx, rej); err != nil {
				return p, fmt.Errorf("importer: %w", err)
			}
			p.Refused++
			continue
		}
		row := ev.Row(l.Source, l.ReceivedAt)
		batch = append(batch, &row)
		if len(batch) == opts.Batch {
			if err := flush(); err != nil {
				return p, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return p, fmt.Errorf("importer: line %d: %w", p.Lines+1, err)
	}
	if err := flush(); err != nil {
		return p, err
	}
	if err := wait(); err != nil {
		return p, err
	}
	if bulk {
		bulk = false
		if err := st.EndBulk(ctx); err != nil {
			return p, fmt.Errorf("importer: rebuild state: %w", err)
		}
	}
	// Queries right after an import should see the subscriptions it changed.
	return p, st.WaitState(ctx, last)
}
