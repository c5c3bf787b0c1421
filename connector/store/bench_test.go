package store

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/schemas"
)

// BenchmarkGroupCommit measures one group commit (the writer's unit of work under load) of
// n fresh Subscribe events, from the queue to the answer, on a real DuckDB file. ns/op is the
// cost of one group; rows/s follows from it.
func BenchmarkGroupCommit(b *testing.B) {
	for _, n := range []int{1, 64, 512} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			s, err := Open(context.Background(), Options{Path: filepath.Join(b.TempDir(), "hb.duckdb"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			dec, err := schemas.NewDecoder(nil)
			if err != nil {
				b.Fatal(err)
			}
			at := time.Now()
			next := 0
			group := func() []*schemas.Row {
				rows := make([]*schemas.Row, n)
				for i := range rows {
					next++
					ev, err := dec.Decode([]byte(event(fmt.Sprintf("bench-%d", next), "Subscribe", fmt.Sprintf("sub-%d", next%5000), fmt.Sprintf("u%d@example.com", next%5000))))
					if err != nil {
						b.Fatal(err)
					}
					r := ev.Row("rokt", at)
					rows[i] = &r
				}
				return rows
			}
			for range 20 { // warm up: a table that is not empty, state merged once
				if _, _, err := s.IngestBatch(context.Background(), group()); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				rows := group()
				b.StartTimer()
				if _, _, err := s.IngestBatch(context.Background(), rows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkMergeSubscriptions merges 100 changes into a subscriptions table of 200,000 rows,
// the writer's periodic state merge under load: changes to existing subscriptions that carry
// no tags (an Unsubscribe, a calendar-event change), the same with new tags, and new
// subscriptions.
func BenchmarkMergeSubscriptions(b *testing.B) {
	s, err := Open(context.Background(), Options{Path: filepath.Join(b.TempDir(), "hb.duckdb"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Apply(context.Background(), func(ctx context.Context, tx *Tx) error {
		return tx.exec(ctx, `INSERT INTO subscriptions (subscription_id, status, account_id, calendar_id, calendar_code, tag_ids, tag_names, email, email_key,
				first_seen_at, last_seen_at, first_seq, last_seq, last_event_type, events)
			SELECT 'sub-' || i, 'subscribed', 'a', 'c', 'code-' || (i % 50), ['t-' || (i % 7), 't-' || (i % 11)], ['Tag ' || (i % 7)], 'u' || i || '@example.com', 'u' || i || '@example.com',
				now(), now(), i, i, 'Subscribe', 1
			FROM range(200000) t(i)`) // then, as a rebuild does, the writer learns the ids
	}); err != nil {
		b.Fatal(err)
	}
	if err := s.Apply(context.Background(), s.noteSubscriptionIDs); err != nil {
		b.Fatal(err)
	}
	next := 200000
	for _, kind := range []string{"existing", "existing_tagged", "new_tagged"} {
		withTags := kind != "existing"
		b.Run(kind, func(b *testing.B) {
			now := time.Now()
			for n := range b.N {
				deltas := make([]*subDelta, 100)
				for i := range deltas {
					id := (n*100 + i) * 7 % 200000
					if kind == "new_tagged" {
						id, next = next, next+1
					}
					d := &subDelta{id: fmt.Sprintf("sub-%d", id), firstSeen: now, lastSeen: now, firstSeq: int64(300000 + n*100 + i), lastSeq: int64(300000 + n*100 + i), lastType: "SubscriptionEventAdded", events: 1, fields: fields{calendarCode: "code-x"}}
					if withTags {
						d.tagIDs, d.tagNames, d.lastType = []string{"t-new"}, []string{"New"}, "SubscriptionDetailsUpdated"
					}
					deltas[i] = d
				}
				if err := s.Apply(context.Background(), func(ctx context.Context, tx *Tx) error { return s.mergeSubscriptions(ctx, tx, deltas) }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
