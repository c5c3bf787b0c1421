package plugins

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/schemas"
)

// fixtureRows decodes the vendor fixtures and repeats them to n rows with distinct seqs.
func fixtureRows(b *testing.B, n int) []schemas.Row {
	b.Helper()
	files, _ := filepath.Glob("../../shared/fixtures/rokt/*.json")
	if len(files) == 0 {
		b.Skip("no fixtures beside the project")
	}
	dec, _ := schemas.NewDecoder(nil)
	var base []schemas.Row
	for _, f := range files {
		body, _ := os.ReadFile(f)
		ev, err := dec.Decode(body)
		if err != nil {
			b.Fatal(err)
		}
		r := ev.Row("rokt", time.Now())
		r.Email, r.EmailKey, r.FirstName, r.LastName, r.Postcode, r.Status = "fan@example.com", "fan@example.com", "Fan", "Example", "3121", "subscribed"
		base = append(base, r)
	}
	rows := make([]schemas.Row, n)
	for i := range rows {
		rows[i] = base[i%len(base)]
		rows[i].Seq = int64(i + 1)
		rows[i].EventID = fmt.Sprintf("%s-%d", rows[i].EventID, i)
	}
	return rows
}

// crmColumns are what a typical CRM mapping sends.
var crmColumns = []string{"seq", "event_id", "event_type", "email", "email_key", "first_name", "last_name", "postcode", "calendar_title", "status"}

func record(b *testing.B, cols []string, rows []schemas.Row) arrow.RecordBatch {
	schema, err := schemas.SchemaFor(cols)
	if err != nil {
		b.Fatal(err)
	}
	rec, err := schemas.BuildRecord(nil, schema, rows)
	if err != nil {
		b.Fatal(err)
	}
	return rec
}

// BenchmarkPluginBoundary sends rows through a real plugin process (Arrow IPC over gRPC to a
// sink that decodes each row with Batch.Each and drops it) and, as the baseline, does the same
// Arrow IPC encode, decode and row decoding in-process. It reports rows/s of both and their ratio, for
// the projected CRM columns and for full rows with the raw body. Targets: ≥ 1 million rows/s at
// 10,000-row batches, ≥ 0.5 of the baseline.
func BenchmarkPluginBoundary(b *testing.B) {
	c, err := Start(context.Background(), self("discard"), slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Configure(context.Background(), "bench", nil, nil); err != nil {
		b.Fatal(err)
	}
	full := append([]string(nil), crmColumns...)
	for _, col := range schemas.Schema().Fields() {
		if !contains(full, col.Name) {
			full = append(full, col.Name)
		}
	}
	for _, cols := range []struct {
		name string
		cols []string
	}{{"crm_columns", crmColumns}, {"full_rows_with_raw", full}} {
		for _, n := range []int{100, 1000, 10000} {
			rows := fixtureRows(b, n)
			rec := record(b, cols.cols, rows)
			b.Run(fmt.Sprintf("%s/%d", cols.name, n), func(b *testing.B) {
				var plugin, local time.Duration // per call: the framework calls this with growing b.N
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					if _, err := c.Write(context.Background(), "bench", 1, rec); err != nil {
						b.Fatal(err)
					}
					t1 := time.Now()
					payload, err := sdk.EncodeRecord(rec)
					if err != nil {
						b.Fatal(err)
					}
					back, err := sdk.DecodeRecord(payload)
					if err != nil {
						b.Fatal(err)
					}
					if err := sdk.NewBatch("bench", 1, back, nil).Each(func(*schemas.Row) error { return nil }); err != nil {
						b.Fatal(err)
					}
					back.Release()
					plugin += t1.Sub(t0)
					local += time.Since(t1)
				}
				rowsPerSec := func(d time.Duration) float64 { return float64(n*b.N) / d.Seconds() }
				b.ReportMetric(rowsPerSec(plugin), "plugin_rows/s")
				b.ReportMetric(rowsPerSec(local), "in_process_rows/s")
				b.ReportMetric(float64(local)/float64(plugin), "plugin/in_process")
			})
			rec.Release()
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
