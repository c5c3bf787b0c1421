package connector

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestDefaultConfig(t *testing.T) {
	cfg, err := Load("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.Data != "./hookbridge.duckdb" || len(cfg.Sources) != 1 || cfg.Sources[0].Name != "rokt" {
		t.Errorf("default: %+v", cfg)
	}
	if cfg.Sources[0].Auth.Configured() {
		t.Error("the default source needs no auth")
	}
	if cfg.Sources[0].MaxBody != 1<<20 {
		t.Errorf("default max_body %d", cfg.Sources[0].MaxBody)
	}
}

func TestExampleConfigParses(t *testing.T) {
	example := "../../shared/hookbridge.example.yaml"
	if _, err := os.Stat(example); err != nil {
		t.Skipf("shared example not beside the project: %v", err)
	}
	vars := map[string]string{}
	for _, k := range []string{"HOOKBRIDGE_ADMIN_TOKEN", "ROKT_WEBHOOK_TOKEN", "HUBSPOT_TOKEN", "MAILCHIMP_API_KEY", "PARTNER_WEBHOOK_SECRET", "WAREHOUSE_DSN"} {
		vars[k] = strings.Repeat("x", 20) + k
	}
	cfg, err := Load(example, env(vars))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Sources[0].Auth.Token.Reveal() != vars["ROKT_WEBHOOK_TOKEN"] {
		t.Error("${ROKT_WEBHOOK_TOKEN} not interpolated")
	}
	if len(cfg.Sinks) != 5 || cfg.Sinks[0].Mapping["postcode"] != "zip" {
		t.Errorf("sinks: %+v", cfg.Sinks)
	}
	if got := cfg.Sinks[0].Settings["token"]; got != vars["HUBSPOT_TOKEN"] {
		t.Errorf("sink settings interpolation: %v", got)
	}
	if time.Duration(cfg.Sinks[0].Retry.MaxAge) != 72*time.Hour || len(cfg.Sinks[0].Retry.Schedule) != 7 {
		t.Errorf("retry: %+v", cfg.Sinks[0].Retry)
	}
	if cfg.Sources[0].MaxBody != 1<<20 {
		t.Errorf("max_body 1MiB: %d", cfg.Sources[0].MaxBody)
	}
}

func TestConfigErrorsNameKeyAndLine(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string
	}{
		{"unknown key", "listen: 127.0.0.1:8080\nsources:\n  - name: rokt\n    formt: rokt-calendar-v2\n", nil,
			[]string{"line 4: sources[0].formt: unknown key (did you mean format?)"}},
		{"unknown sink key", "sources:\n  - name: rokt\nsinks:\n  - name: crm\n    plugin: jsonl\n    triger: realtime\n  - name: other\n    plugin: jsonl\n    retry:\n      max_attempt: 3\n", nil,
			[]string{"2 problems", "line 6: sinks[0].triger: unknown key (did you mean trigger?)", "line 10: sinks[1].retry.max_attempt: unknown key (did you mean max_attempts?)"}},
		{"unknown key and missing env", "sinks:\n  - name: crm\n    plugin: jsonl\n    triger: realtime\nsources:\n  - name: rokt\n    auth:\n      token: ${ROKT_TOKEN}\n", nil,
			[]string{"2 problems:\n  line 4: sinks[0].triger: unknown key (did you mean trigger?)\n  line 8: sources[0].auth.token: environment variable ROKT_TOKEN"}},
		{"anchors and merge keys", "sources:\n  - &rokt\n    name: rokt\n    max_body: 1MiB\n  - <<: *rokt\n    name: other\nsinks:\n  - name: a\n    plugin: jsonl\n    retry: &retry {max_attempts: 3}\n  - name: b\n    plugin: jsonl\n    retry: *retry\n", nil, nil},
		{"merge key typo", "x-defaults: &d\n  name: rokt\n  formt: rokt-calendar-v2\nsources:\n  - <<: *d\n", nil,
			[]string{"line 1: x-defaults: unknown key", "line 3: sources[0].formt: unknown key (did you mean format?)"}},
		{"flow style size", "limits: {queue_bytes: lots, read_timeout: 1s}\nsources: [{name: rokt}]\n", nil, []string{"line 1: limits.queue_bytes:", `"lots" is not a size`}},
		{"flow style int", "limits: {group_wait: 1ms, queue_events: many}\nsources: [{name: rokt}]\n", nil, []string{"line 1: limits.queue_events:", "many"}},
		{"sink timeout", "sources:\n  - name: rokt\nsinks:\n  - name: crm\n    plugin: jsonl\n    timeout: 2h\n", nil, []string{"line 6: sinks[0].timeout:", "at most 1h"}},
		{"alias loop", "sources: [&s {name: rokt, <<: *s}]\n", nil, []string{"line 1: sources[0]", "refers to the mapping it is in"}},
		{"mapping for a list", "sources:\n  - name: rokt\nsinks:\n  - name: crm\n    plugin: jsonl\n    events: {a: b}\n", nil, []string{"line 6: sinks[0].events: cannot unmarshal !!map"}},
		{"every missing env", "admin:\n  token: ${ADMIN_TOKEN}\nsources:\n  - name: rokt\n    auth:\n      token: ${ROKT_TOKEN}\n", nil,
			[]string{"2 problems", "line 2: admin.token: environment variable ADMIN_TOKEN", "line 6: sources[0].auth.token: environment variable ROKT_TOKEN"}},
		{"event type case", "sources:\n  - name: rokt\nsinks:\n  - name: crm\n    plugin: jsonl\n    events: [Subscribe, Unsubscibe, subscribe]\n", nil,
			[]string{`line 6: sinks[0].events[2]: "subscribe" is written Subscribe`}},
		{"undocumented event type", "sources:\n  - name: rokt\nsinks:\n  - name: crm\n    plugin: jsonl\n    events: [Subscribe, CalendarArchived]\n", nil, nil},
		{"missing env", "listen: 127.0.0.1:8080\nsources:\n  - name: rokt\n    auth:\n      token: ${ROKT_TOKEN}\n", nil,
			[]string{"line 5", "sources[0].auth.token", "ROKT_TOKEN is not set"}},
		{"env default", "listen: ${LISTEN:-127.0.0.1:9999}\nsources:\n  - name: rokt\n", nil, nil},
		{"short token", "sources:\n  - name: rokt\n    auth:\n      token: abc\n", nil,
			[]string{"line 4", "sources[0].auth.token", "at least 16"}},
		{"token with /", "sources:\n  - name: rokt\n    auth:\n      token: Abcd/ef0123456789xyz=\n", nil,
			[]string{"line 4", "sources[0].auth.token", `cannot hold "/"`}},
		{"base64 token", "sources:\n  - name: rokt\n    auth:\n      token: Ab+cdef0123456789xyz==\n", nil, nil},
		{"queue smaller than a body", "limits:\n  queue_bytes: 10\nsources:\n  - name: rokt\n", nil,
			[]string{"line 2: limits.queue_bytes:", "larger than the largest max_body (1MiB)"}},
		{"queue just over a body", "limits:\n  queue_bytes: 2MiB\nsources:\n  - name: rokt\n    max_body: 2000KiB\n", nil, nil},
		{"read timeout", "limits:\n  read_timeout: 1ns\nsources:\n  - name: rokt\n", nil, []string{"line 2: limits.read_timeout:", "between 1s and 24h"}},
		{"negative read timeout", "limits:\n  read_timeout: -5s\nsources:\n  - name: rokt\n", nil, []string{"line 2: limits.read_timeout:"}},
		{"threads", "duckdb:\n  threads: -3\nsources:\n  - name: rokt\n", nil, []string{"line 2: duckdb.threads:", "between 1 and 256"}},
		{"memory limit", "duckdb:\n  memory_limit: lots\nsources:\n  - name: rokt\n", nil, []string{"line 2: duckdb.memory_limit:", `"lots"`, "4GB"}},
		{"bare env in a flow mapping", "sources:\n  - name: rokt\nsinks:\n  - name: crm\n    plugin: jsonl\n    settings: {path: ${OUT}}\n", map[string]string{"OUT": "/tmp/x"},
			[]string{`must be quoted: "${NAME}"`}},
		{"quoted env in a flow mapping", "sources:\n  - name: rokt\nsinks:\n  - name: crm\n    plugin: jsonl\n    settings: {path: \"${OUT}\"}\n", map[string]string{"OUT": "/tmp/x"}, nil},
		{"public url with a path", "admin:\n  public_url: https://example.com/hookbridge\nsources:\n  - name: rokt\n", nil, []string{"line 2: admin.public_url:", "without a path"}},
		{"public url", "admin:\n  public_url: https://hookbridge.example.com\nsources:\n  - name: rokt\n", nil, nil},
		{"memory limit taken", "duckdb:\n  memory_limit: 512MiB\nsources:\n  - name: rokt\n", nil, nil},
		{"bad name", "sources:\n  - name: Rokt Source\n", nil, []string{"line 2", "sources[0].name"}},
		{"duplicate source", "sources:\n  - name: rokt\n  - name: rokt\n", nil, []string{"line 3", "defined twice"}},
		{"off loopback without auth", "listen: 0.0.0.0:8080\nadmin:\n  token: 0123456789abcdef0\nsources:\n  - name: rokt\n", nil,
			[]string{"sources[0].auth", "no authentication", "allow_unauthenticated"}},
		{"off loopback allowed", "listen: 0.0.0.0:8080\nallow_unauthenticated: true\nadmin:\n  token: 0123456789abcdef0\nsources:\n  - name: rokt\n", nil, nil},
		{"admin off loopback needs a token", "listen: 0.0.0.0:8080\nsources:\n  - name: rokt\n    auth:\n      token: 0123456789abcdef0\n", nil,
			[]string{"admin.token", "needs a token"}},
		{"bad duration", "sources:\n  - name: rokt\n    auth:\n      standard_webhooks:\n        secret: whsec_AAAA\n        tolerance: soon\n", nil,
			[]string{"line 6: sources[0].auth.standard_webhooks.tolerance:", "not a duration"}},
		{"secret prefix", "sources:\n  - name: rokt\n    auth:\n      standard_webhooks:\n        secret: AAAA\n", nil,
			[]string{"line 5", "whsec_"}},
		{"bad size", "sources:\n  - name: rokt\n    max_body: lots\n", nil, []string{"line 3: sources[0].max_body:", "not a size"}},
		{"group wait too long", "limits:\n  group_wait: 1s\nsources:\n  - name: rokt\n", nil, []string{"limits.group_wait", "100ms"}},
		{"no group wait", "limits:\n  group_wait: 0s\nsources:\n  - name: rokt\n", nil, nil},
		{"contact field", "sources:\n  - name: rokt\n    contact_fields:\n      shoe_size: [subscription.shoe]\n", nil,
			[]string{"line 3", "shoe_size"}},
		{"sink mapping", "sources:\n  - name: rokt\nsinks:\n  - name: crm\n    plugin: hubspot\n    mapping:\n      emial: email\n", nil,
			[]string{"line 6", "sinks[0].mapping", `did you mean "email"`}},
		{"hmac encoding", "sources:\n  - name: rokt\n    auth:\n      hmac:\n        header: X-Sig\n        secret: k\n        encoding: rot13\n", nil,
			[]string{"line 7", "hex or base64"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "test.yaml", env(tt.env))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want an error with %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), "test.yaml") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// TestEventTypeNearMissIsAWarning: a name a few letters from a documented type may be a typo
// or a type the sender has not documented: it is allowed, with a warning naming its line.
func TestEventTypeNearMissIsAWarning(t *testing.T) {
	yaml := "sources:\n  - name: rokt\nsinks:\n  - name: crm\n    plugin: jsonl\n    events: [Subscribe, Unsubscibe, SubscriptionEventMoved, CalendarArchived]\n"
	cfg, err := Parse([]byte(yaml), "w.yaml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`line 6: sinks[0].events[1]: "Unsubscibe" is not a documented event type (did you mean Unsubscribe?)`,
		`line 6: sinks[0].events[2]: "SubscriptionEventMoved" is not a documented event type (did you mean SubscriptionEventRemoved?)`,
	}
	got := cfg.Warnings()
	if len(got) != len(want) {
		t.Fatalf("warnings %q, want %d", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("warning %q, want %q", got[i], want[i])
		}
	}
	if err := cfg.Validate(); err != nil || len(cfg.Warnings()) != len(want) {
		t.Errorf("validating again: %v, %d warnings", err, len(cfg.Warnings()))
	}
}

// TestSinkTimeoutReachesTheEngine: a sink's timeout bounds its plugin's writes.
func TestSinkTimeoutReachesTheEngine(t *testing.T) {
	cfg, err := Parse([]byte("sources:\n  - name: rokt\nsinks:\n  - name: crm\n    plugin: jsonl\n    timeout: 45s\n"), "t.yaml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	so, err := sinkOptions(cfg.Sinks[0], &OpenedSink{})
	if err != nil {
		t.Fatal(err)
	}
	if so.Timeout != 45*time.Second {
		t.Errorf("timeout %v, want 45s", so.Timeout)
	}
}

func TestSecretsAreNotPrinted(t *testing.T) {
	cfg, err := Parse([]byte("sources:\n  - name: rokt\n    auth:\n      token: ${T}\n"), "x.yaml", env(map[string]string{"T": "super-secret-token-value"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{cfg.Sources[0].Auth.Token.String(), fmt.Sprintf("%v", cfg.Sources[0].Auth), fmt.Sprintf("%+v", cfg.Sources[0])} {
		if strings.Contains(s, "super-secret") {
			t.Errorf("secret printed: %s", s)
		}
	}
	if cfg.Sources[0].Auth.Token.Reveal() != "super-secret-token-value" {
		t.Error("Reveal lost the value")
	}
}

// Without a memory_limit the store gets a quarter of the memory it may use (the machine's,
// or a lower container limit), never under 1GB.
func TestDefaultMemoryLimit(t *testing.T) {
	meminfo := "MemTotal:       24576000 kB\nMemFree:  1000 kB\n"
	for _, tt := range []struct{ meminfo, cgroup, want string }{
		{meminfo, "", "6000MB"},
		{meminfo, "max\n", "6000MB"},
		{meminfo, "8589934592\n", "2048MB"},     // an 8 GiB container
		{meminfo, "2147483648\n", "1024MB"},     // 2 GiB: the floor
		{meminfo, "99999999999999\n", "6000MB"}, // v1's "no limit" is a huge number
		{"", "", "1024MB"},
		{"", "17179869184", "4096MB"},
	} {
		if got := memoryLimitFrom(tt.meminfo, tt.cgroup); got != tt.want {
			t.Errorf("meminfo %q, cgroup %q: %s, want %s", tt.meminfo, tt.cgroup, got, tt.want)
		}
	}
	if _, err := fmt.Sscanf(defaultMemoryLimit(), "%dMB", new(int)); err != nil {
		t.Errorf("default memory limit %q", defaultMemoryLimit())
	}
}

// Every YAML example in the READMEs parses: a reader copies them into a configuration.
func TestREADMEYAMLExamplesParse(t *testing.T) {
	files, _ := filepath.Glob("../sinks/*/README.md")
	files = append(files, "../README.md")
	blocks := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, part := range strings.Split(string(b), "```yaml\n")[1:] {
			block, _, _ := strings.Cut(part, "```")
			var n yaml.Node
			if err := yaml.Unmarshal([]byte(block), &n); err != nil {
				t.Errorf("%s, YAML example %d: %v", f, i+1, err)
			}
			blocks++
			// An example is also a configuration, or a part of one: with a source added
			// where it has none and every ${NAME} set, it must pass validation (unknown keys,
			// values) as it is written.
			if !strings.Contains(block, "sources:") {
				block = "sources:\n  - name: rokt\n" + block
			}
			setAll := func(string) string { return "example-value-0123456789abcdef" }
			if _, err := Parse([]byte(block), f, setAll); err != nil {
				t.Errorf("%s, YAML example %d does not validate: %v", f, i+1, err)
			}
		}
	}
	if blocks < 5 {
		t.Fatalf("found %d YAML examples; the READMEs have more", blocks)
	}
}

// A token with "+" works as a path segment but not as ?token= (where "+" reads as a space):
// it is taken, with a warning saying so.
func TestTokenWithPlusIsAWarning(t *testing.T) {
	cfg, err := Parse([]byte("sources:\n  - name: rokt\n    auth:\n      token: Ab+cdef0123456789xyz==\n"), "t.yaml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if w := cfg.Warnings(); len(w) != 1 || !strings.Contains(w[0], "line 4: sources[0].auth.token") || !strings.Contains(w[0], "not as ?token=") {
		t.Errorf("warnings: %q", w)
	}
}
