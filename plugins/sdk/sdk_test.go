package sdk

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/schemas"
)

func TestDecodeSettings(t *testing.T) {
	type S struct {
		Path  string `json:"path"`
		Limit int    `json:"limit"`
	}
	var s S
	if err := DecodeSettings(json.RawMessage(`{"path":"x","limit":3}`), &s); err != nil || s.Limit != 3 {
		t.Fatalf("%v %+v", err, s)
	}
	for raw, field := range map[string]string{`{"pth":"x"}`: "pth", `{"limit":"many"}`: "limit", `[1]`: "(settings)"} {
		var se *SettingsError
		if err := DecodeSettings(json.RawMessage(raw), &S{}); !errors.As(err, &se) || se.Field != field {
			t.Errorf("%s: %v, want a settings error naming %s", raw, err, field)
		}
	}
	if err := DecodeSettings(nil, &S{}); err != nil {
		t.Errorf("empty settings: %v", err)
	}
}

// TestLogLinesAreWhatGoPluginReads checks the plugin log format against what go-plugin's host
// parses: @level, @message, @timestamp in its exact layout, attributes as keys.
func TestLogLinesAreWhatGoPluginReads(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(&buf, slog.LevelDebug).With("sink", "crm")
	log.Warn("rate limited", "wait", 2*time.Second, "err", errors.New("429"))
	log.Debug("detail")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines: %q", lines)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	if m["@level"] != "warn" || m["@message"] != "rate limited" || m["sink"] != "crm" || m["wait"] != "2s" || m["err"] != "429" {
		t.Errorf("line %v", m)
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000000Z07:00", m["@timestamp"].(string)); err != nil {
		t.Errorf("timestamp layout: %v", err)
	}
	if !strings.Contains(lines[1], `"@level":"debug"`) {
		t.Errorf("debug line %s", lines[1])
	}
}

func TestBatchMarksAndIPC(t *testing.T) {
	rows := []schemas.Row{{Seq: 1, EventID: "a", EventType: "Subscribe", Email: "a@example.com"}, {Seq: 2, EventID: "b", EventType: "Test"}}
	schema, _ := schemas.SchemaFor([]string{"seq", "event_id", "event_type", "email"})
	rec, err := schemas.BuildRecord(nil, schema, rows)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	payload, err := EncodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeRecord(payload)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Release()
	m, _ := schemas.NewMapping(map[string]string{"email": "Email"})
	b := NewBatch("id", 1, back, m)
	got, err := b.Rows()
	if err != nil || len(got) != 2 || got[0].Email != "a@example.com" {
		t.Fatalf("rows %v %+v", err, got)
	}
	if f := b.Fields(&got[0]); f["Email"] != "a@example.com" {
		t.Errorf("fields %v", f)
	}
	b.Retry(2, time.Second, "later", 429)
	b.Fail(1, "bad", 400)
	b.Fail(2, "worse", 400)
	res := b.Results()
	if len(res) != 2 || res[0].Seq != 2 || res[0].Outcome != Failed || res[1].Seq != 1 {
		t.Errorf("results %+v", res)
	}
}

// DecodeRecord reads what EncodeRecord wrote (lists, nulls, binary included) and refuses a
// cut or corrupted stream with an error, never a panic.
func TestDecodeRecordSlicesTheStream(t *testing.T) {
	n := int64(3)
	rows := []schemas.Row{
		{Seq: 1, EventID: "a", EventType: "Subscribe", Email: "a@example.com", TagIDs: []string{"t1", "t2"}, Raw: []byte(`{"a":1}`), ContactActiveSubscriptions: &n},
		{Seq: 2, EventID: "b", EventType: "Test", TagIDs: []string{}},
		{Seq: 3, EventID: "c", EventType: "Unsubscribe", Raw: []byte{0xff, 0x00}},
	}
	rec, err := schemas.BuildRecord(nil, schemas.DeliverySchema(), rows)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	payload, err := EncodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if est := EncodedSize(rec); est < len(payload) {
		t.Errorf("EncodedSize %d is under the %d bytes written", est, len(payload))
	}
	// A slice is estimated by its own values, not by the buffers it shares with its parent.
	big := make([]schemas.Row, 200)
	for i := range big {
		big[i] = schemas.Row{Seq: int64(i), EventID: fmt.Sprint(i), EventType: "Test", Raw: bytes.Repeat([]byte("x"), 10000), TagIDs: []string{"a", "b"}}
	}
	bigRec, err := schemas.BuildRecord(nil, schemas.DeliverySchema(), big)
	if err != nil {
		t.Fatal(err)
	}
	defer bigRec.Release()
	part := bigRec.NewSlice(100, 102)
	defer part.Release()
	partPayload, err := EncodeRecord(part)
	if err != nil {
		t.Fatal(err)
	}
	if est, whole := EncodedSize(part), EncodedSize(bigRec); est < len(partPayload) || est > whole/10 {
		t.Errorf("a 2-row slice of a %d-byte record: estimated %d, written %d", whole, est, len(partPayload))
	}
	back, err := DecodeRecord(payload)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := schemas.RowsFromRecord(rec)
	got, err := schemas.RowsFromRecord(back)
	back.Release()
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded rows differ (%v):\n got %+v\nwant %+v", err, got, want)
	}
	for cut := 0; cut < len(payload)-8; cut += 7 { // the last 8 bytes end the stream
		if r, err := DecodeRecord(payload[:cut]); err == nil {
			r.Release()
			t.Errorf("a stream cut at %d of %d bytes decoded", cut, len(payload))
		}
	}
	bad := bytes.Clone(payload)
	binary.LittleEndian.PutUint32(bad[4:], 1<<30) // a schema message longer than the stream
	if _, err := DecodeRecord(bad); err == nil {
		t.Error("a corrupted length decoded")
	}
}

func TestServeArgsAnswersSpecAndVersion(t *testing.T) {
	var out bytes.Buffer
	if err := ServeArgs(stub{}, []string{"version"}, &out); err != nil || out.String() != "stub 9.9.9 (protocol 1)\n" {
		t.Errorf("version: %v %q", err, out.String())
	}
	out.Reset()
	if err := ServeArgs(stub{}, []string{"spec"}, &out); err != nil || !strings.Contains(out.String(), `"protocol": 1`) || !strings.Contains(out.String(), `"name": "stub"`) {
		t.Errorf("spec: %v %s", err, out.String())
	}
	if err := ServeArgs(stub{}, nil, &out); err == nil || !strings.Contains(err.Error(), "hookbridge starts it") {
		t.Errorf("run by hand: %v", err)
	}
}

// TestBuildsWithoutCgoOrDuckDB: plugin authors need neither a C compiler nor DuckDB.
func TestBuildsWithoutCgoOrDuckDB(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v %s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "duckdb") || strings.Contains(dep, "hookbridge/connector") {
			t.Errorf("the SDK depends on %s", dep)
		}
	}
	cmd := exec.Command("go", "build", "-o", os.DevNull, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("CGO_ENABLED=0 go build: %v %s", err, out)
	}
}

type stub struct{}

func (stub) Spec() Spec {
	return Spec{Name: "stub", Version: "9.9.9", Settings: json.RawMessage(`{"type":"object"}`)}
}
func (stub) Configure(ctx context.Context, cfg Config) error { return nil }
func (stub) Write(ctx context.Context, b *Batch) error       { return nil }
func (stub) Close(ctx context.Context) error                 { return nil }

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		" 30 ":                          30 * time.Second,
		"-5":                            0,
		"Sun, 29 Nov 2026 12:01:30 GMT": 90 * time.Second,
		"Sun, 29 Nov 2026 11:00:00 GMT": 0, // already past
		"soon":                          0,
	} {
		if got := RetryAfter(v, now); got != want {
			t.Errorf("RetryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}
