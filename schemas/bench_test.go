package schemas

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// benchEnvelope is what plain encoding/json decodes the benchmark body into: the same typed
// structs the decoder fills.
type benchEnvelope struct {
	EventID      string           `json:"eventId"`
	EventType    string           `json:"eventType"`
	EventDetails SubscribeDetails `json:"eventDetails"`
}

func benchBody(b *testing.B) []byte {
	body, err := os.ReadFile("testdata/bench_subscribe.json")
	if err != nil {
		b.Fatal(err)
	}
	return body
}

func benchEncodingJSON(b *testing.B) {
	body := benchBody(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var env benchEnvelope
		if err := json.Unmarshal(body, &env); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func benchDecode(b *testing.B) {
	body := benchBody(b)
	dec := mustDecoder(b, nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := dec.Decode(body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// benchDecodeAppend is the ingest path: decode, flatten to a Row, append to an Arrow record of
// the stored schema, cutting a record every 1,024 rows as the store's group commit would.
func benchDecodeAppend(b *testing.B) {
	body := benchBody(b)
	dec := mustDecoder(b, nil)
	bld, err := NewBuilder(memory.NewGoAllocator(), Schema())
	if err != nil {
		b.Fatal(err)
	}
	bld.ReuseCapacity() // as the store's builder does
	defer bld.Release()
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev, err := dec.Decode(body)
		if err != nil {
			b.Fatal(err)
		}
		row := ev.Row("rokt", now)
		row.Seq = int64(i)
		bld.Append(&row)
		if bld.Len() == 1024 {
			bld.NewRecord().Release()
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDecode compares the decoder with plain encoding/json into the same typed structs.
// The ratio sub-benchmark interleaves both, 64 events at a time, and reports decode_append's
// cost per event as a multiple of encoding/json's (target: at most 1.5).
func BenchmarkDecode(b *testing.B) {
	b.Run("encoding_json", benchEncodingJSON)
	b.Run("decode", benchDecode)
	b.Run("decode_append", benchDecodeAppend)
	b.Run("ratio", func(b *testing.B) {
		body := benchBody(b)
		dec := mustDecoder(b, nil)
		bld, err := NewBuilder(memory.NewGoAllocator(), Schema())
		if err != nil {
			b.Fatal(err)
		}
		bld.ReuseCapacity()
		defer bld.Release()
		now := time.Now()
		var base, ours time.Duration
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			for j := 0; j < 64; j++ {
				var env benchEnvelope
				if err := json.Unmarshal(body, &env); err != nil {
					b.Fatal(err)
				}
			}
			t1 := time.Now()
			for j := 0; j < 64; j++ {
				ev, err := dec.Decode(body)
				if err != nil {
					b.Fatal(err)
				}
				row := ev.Row("rokt", now)
				bld.Append(&row)
			}
			bld.NewRecord().Release()
			t2 := time.Now()
			base += t1.Sub(t0)
			ours += t2.Sub(t1)
		}
		b.ReportMetric(float64(ours)/float64(base), "decode_append/encoding_json")
	})
}
