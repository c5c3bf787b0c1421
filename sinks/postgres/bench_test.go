package postgres

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookbridge/hookbridge/schemas"
)

// BenchmarkLoad compares rows/s into PostgreSQL through the sink (Arrow record → COPY into
// staging → upsert of events and subscriptions) with the baseline: the same rows COPYed
// straight from Go ([][]any, pgx.CopyFromRows) into the same kind of staging table plus the
// same upserts, in the same run. Each batch holds new events (10,000 rows).
//
//	HOOKBRIDGE_TEST_POSTGRES=… go test -tags duckdb_arrow ./sinks/postgres -run '^$' -bench Load -benchtime 20x
func BenchmarkLoad(b *testing.B) {
	dsn := testDSN(b)
	const batchRows = 10000
	ctx := context.Background()
	cols := dedupe(append([]string{"seq", "event_id", "event_type"}, New().Spec().Columns...))

	run := func(b *testing.B, load func(rows []schemas.Row, i int) error) float64 {
		var seq int64 = 1
		var elapsed time.Duration
		for i := 0; i < b.N; i++ {
			rows := genRows(seq, batchRows)
			seq += batchRows
			start := time.Now()
			if err := load(rows, i); err != nil {
				b.Fatal(err)
			}
			elapsed += time.Since(start)
		}
		return float64(b.N*batchRows) / elapsed.Seconds()
	}

	var sinkRate, baseRate float64
	b.Run("sink", func(b *testing.B) {
		schema, _ := testSchema(b, dsn)
		s := open(b, settings(dsn, schema), "bench")
		sinkRate = run(b, func(rows []schemas.Row, i int) error {
			return s.Write(ctx, batch(b, fmt.Sprint("b", i), rows, cols))
		})
		b.ReportMetric(sinkRate, "rows/s")
	})
	b.Run("baseline", func(b *testing.B) {
		schema, conn := testSchema(b, dsn)
		// Tables and staging exactly as the sink makes them.
		s := open(b, settings(dsn, schema), "bench-base")
		if err := s.ready(ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "CREATE TEMP TABLE hookbridge_stage (LIKE "+s.events+") ON COMMIT DELETE ROWS; ALTER TABLE pg_temp.hookbridge_stage ADD COLUMN status text, ADD COLUMN subscribed_at timestamptz, ADD COLUMN unsubscribed_at timestamptz"); err != nil {
			b.Fatal(err)
		}
		var copyCols []string
		for _, c := range cols {
			if col, _ := schemas.LookupColumn(c); !col.Delivery || slices.Contains(stateCols, c) {
				copyCols = append(copyCols, c)
			}
		}
		evSQL, subSQL := upsertEventsSQL(s.events, copyCols), upsertSubscriptionsSQL(s.subs, copyCols)
		baseRate = run(b, func(rows []schemas.Row, i int) error {
			vals := make([][]any, len(rows))
			for j := range rows {
				r := &rows[j]
				v := make([]any, len(copyCols))
				for k, c := range copyCols {
					x, err := r.Value(c)
					if err != nil {
						return err
					}
					if s, ok := x.(string); ok {
						x = text(s)
					}
					v[k] = x
				}
				vals[j] = v
			}
			tx, err := conn.Begin(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback(ctx)
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"hookbridge_stage"}, copyCols, pgx.CopyFromRows(vals)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, evSQL); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, subSQL); err != nil {
				return err
			}
			return tx.Commit(ctx)
		})
		b.ReportMetric(baseRate, "rows/s")
	})
	if baseRate > 0 && sinkRate > 0 {
		fmt.Printf("postgres load: sink %.0f rows/s, baseline COPY+upsert %.0f rows/s, ratio %.2f (target 0.7)\n", sinkRate, baseRate, sinkRate/baseRate)
	}
}
