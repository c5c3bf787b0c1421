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
