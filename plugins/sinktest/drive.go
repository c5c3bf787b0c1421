package sinktest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/schemas"
)

// Outcome is what Drive made of the rows.
type Outcome struct {
	// Delivered holds the seqs that went through; Failed the rows refused for good.
	Delivered map[int64]bool
	Failed    map[int64]sdk.RowResult
	// Writes counts Write calls; SinkDowns those that reported the destination down;
	// Retries the rows sent again.
	Writes, SinkDowns, Retries int
}

// Drive sends rows through a configured sink the way hookbridge's delivery engine does, in
// process: batches of at most the spec's MaxBatchRows with no two rows of one key, a batch
// sent again unchanged (same id) after the sink reports itself down, rows marked Retry sent
// again in a later batch, rejected batches split in halves, until every row is delivered or
// failed. Waits the sink asks for are honoured up to maxWait, so tests with real destination
// waits stay short. It fails the test after 10,000 writes.
func Drive(t testing.TB, sink sdk.Sink, m map[string]string, rows []schemas.Row, maxWait time.Duration) Outcome {
	t.Helper()
	sp := sink.Spec()
	out := Outcome{Delivered: map[int64]bool{}, Failed: map[int64]sdk.RowResult{}}
	queue := slices.Clone(rows)
	size := sp.MaxBatchRows
	if size <= 0 {
		size = 500
	}
	batchNo := 0
	// send writes one batch until it is settled; it returns the rows to send again and
	// whether the batch was rejected as a whole.
	send := func(batch []schemas.Row) ([]schemas.Row, bool) {
		batchNo++
		id := fmt.Sprintf("drive-%d", batchNo)
		for attempt := 1; ; attempt++ {
			if out.Writes++; out.Writes > 10000 {
				t.Fatalf("sinktest.Drive: 10,000 writes and %d rows still undelivered", len(queue)+len(batch))
			}
			rec := Record(t, sp, m, batch)
			b := sdk.NewBatch(id, attempt, rec, mapping(t, m))
			err := sink.Write(context.Background(), b)
			rec.Release()
			if sd, ok := sdk.AsSinkDown(err); ok {
				out.SinkDowns++
				if sd.Pause {
					t.Fatalf("sinktest.Drive: the sink paused itself: %v", err)
				}
				time.Sleep(min(max(sd.RetryAfter, time.Millisecond), maxWait))
				continue
			}
			if br, ok := sdk.AsRejected(err); ok {
				if len(batch) == 1 {
					out.Failed[batch[0].Seq] = sdk.RowResult{Seq: batch[0].Seq, Outcome: sdk.Failed, Reason: br.Reason, StatusCode: br.StatusCode}
					return nil, false
				}
				return batch, true
			}
			if err != nil {
				out.Retries += len(batch)
				time.Sleep(min(10*time.Millisecond, maxWait))
				return batch, false
			}
			marked := map[int64]sdk.RowResult{}
			for _, r := range b.Results() {
				marked[r.Seq] = r
			}
			var again []schemas.Row
			var wait time.Duration
			for _, r := range batch {
				res, ok := marked[r.Seq]
				switch {
				case !ok:
					out.Delivered[r.Seq] = true
				case res.Outcome == sdk.Failed:
					out.Failed[r.Seq] = res
				case res.Outcome == sdk.Retry:
					out.Retries++
					again = append(again, r)
					wait = max(wait, res.RetryAfter)
				default:
					t.Fatalf("sinktest.Drive: outcome %d for row %d is not supported here", res.Outcome, r.Seq)
				}
			}
			time.Sleep(min(wait, maxWait))
			return again, false
		}
	}
	for len(queue) > 0 {
		var batch []schemas.Row
		keys := map[string]bool{}
		var rest []schemas.Row
		for _, r := range queue {
			k := fmt.Sprint(r.Seq)
			if sp.KeyColumn != "" {
				v, _ := r.Value(sp.KeyColumn)
				if s, ok := v.(string); ok && s != "" {
					k = s
				}
			}
			if len(batch) < size && !keys[k] {
				keys[k] = true
				batch = append(batch, r)
			} else {
				rest = append(rest, r)
			}
		}
		again, rejected := send(batch)
		if rejected {
			size = max(1, len(batch)/2) // the engine splits a rejected batch
		} else if sp.MaxBatchRows > 0 {
			size = sp.MaxBatchRows
		}
		queue = append(again, rest...)
	}
	return out
}
