package connector

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hookbridge/hookbridge/connector/store"
	"github.com/hookbridge/hookbridge/internal/suggest"
	"github.com/hookbridge/hookbridge/schemas"
)

//go:embed default.yaml
var defaultConfig []byte

// DefaultConfig returns the configuration `hookbridge serve` runs with when no file is given:
// listen on 127.0.0.1:8080, store into ./hookbridge.duckdb, accept POST /webhooks/rokt
// without authentication (loopback only).
func DefaultConfig() []byte { return bytes.Clone(defaultConfig) }

// Config is hookbridge's configuration file.
type Config struct {
	// Listen is the webhook listener's address (host:port).
	Listen string `yaml:"listen"`
	// Data is the DuckDB file.
	Data string `yaml:"data"`
	// AllowUnauthenticated lets a source without auth run on a non-loopback listener.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated"`
	// PluginsDir holds external sink plugins (hookbridge-sink-NAME executables).
	PluginsDir string         `yaml:"plugins_dir"`
	Admin      AdminConfig    `yaml:"admin"`
	Limits     LimitsConfig   `yaml:"limits"`
	DuckDB     DuckDBConfig   `yaml:"duckdb"`
	Sources    []SourceConfig `yaml:"sources"`
	Sinks      []SinkConfig   `yaml:"sinks"`
	// ExportsDir is where the server writes exports and snapshots before handing them over:
	// the only folder SQL may write to (default: hookbridge-exports beside the data file).
	ExportsDir string          `yaml:"exports_dir"`
	Analytics  AnalyticsConfig `yaml:"analytics"`

	// file is where the configuration came from, for error messages.
	file string
	// lines maps a key path ("sources[0].auth.token") to its line in file.
	lines map[string]int
	// warnings are what Validate found suspicious but allowed.
	warnings []string
}

// Warnings lists what the last validation found suspicious but allowed, each naming its line
// and key; `config check` prints them and `serve` logs them.
func (c *Config) Warnings() []string { return c.warnings }

// AnalyticsConfig configures the analytics views.
type AnalyticsConfig struct {
	// TimeZone is the IANA zone of subscribes_by_weekday_hour's local rows (default UTC).
	TimeZone string `yaml:"timezone"`
}

// AdminConfig configures the admin API and dashboard.
type AdminConfig struct {
	// Token is the bearer token; required when the admin API listens off loopback.
	Token Secret `yaml:"token"`
	// Listen gives the admin API its own listener; empty serves it on Listen.
	Listen string `yaml:"listen"`
	// PublicURL is where browsers reach the admin API and dashboard through a reverse proxy
	// (https://hookbridge.example.com).
	PublicURL string `yaml:"public_url"`
}

// LimitsConfig bounds the memory and time a request may use.
type LimitsConfig struct {
	// QueueEvents bounds requests waiting for the writer (default 8192); beyond it the
	// receiver answers 503 with Retry-After.
	QueueEvents int `yaml:"queue_events"`
	// QueueBytes bounds the bodies waiting for the writer (default 64MiB).
	QueueBytes ByteSize `yaml:"queue_bytes"`
	// ReadTimeout bounds reading one request (default 30s).
	ReadTimeout Duration `yaml:"read_timeout"`
	// GroupWait is how long the writer lets a commit group gather requests when it is not
	// full (default 2ms; 0s commits at once): fewer, larger commits under a steady stream,
	// for at most that much more per acknowledgement.
	GroupWait *Duration `yaml:"group_wait"`
}

// GroupWaitOrDefault is GroupWait, or 2ms when the configuration leaves it out.
func (l LimitsConfig) GroupWaitOrDefault() time.Duration {
	if l.GroupWait == nil {
		return 2 * time.Millisecond
	}
	return time.Duration(*l.GroupWait)
}

// DuckDBConfig tunes the database.
type DuckDBConfig struct {
	// MemoryLimit is DuckDB's memory_limit (default: a quarter of the machine's memory, at
	// least 1GB).
	MemoryLimit string `yaml:"memory_limit"`
	// Threads is DuckDB's threads setting (default 2).
	Threads int `yaml:"threads"`
	// CheckpointWAL is the WAL size at which an idle writer checkpoints (default 16MiB).
	CheckpointWAL ByteSize `yaml:"checkpoint_wal"`
}

// SourceConfig is one webhook source: POST /webhooks/{name}.
type SourceConfig struct {
	Name string `yaml:"name"`
	// Format is the payload format; rokt-calendar-v2 is the one supported.
	Format string     `yaml:"format"`
	Auth   AuthConfig `yaml:"auth"`
	// ContactFields overrides the candidate key paths of extracted fields.
	ContactFields schemas.FieldPaths `yaml:"contact_fields"`
	// MaxBody is the largest body accepted (default 1MiB); larger ones get 413.
	MaxBody ByteSize `yaml:"max_body"`
}

// AuthConfig lists a source's authentication schemes. Every configured scheme must pass;
// rotation is done inside a scheme by listing several secrets.
type AuthConfig struct {
	// Token is a shared secret in the URL: /webhooks/{source}/{token} or ?token=.
	Token Secret `yaml:"token"`
	// Tokens lists more accepted tokens, for rotation.
	Tokens []Secret `yaml:"tokens"`
	// Basic is HTTP basic authentication.
	Basic *BasicAuthConfig `yaml:"basic"`
	// StandardWebhooks verifies webhook-id/webhook-timestamp/webhook-signature headers.
	StandardWebhooks *StandardWebhooksConfig `yaml:"standard_webhooks"`
	// HMAC verifies an HMAC-SHA256 of the raw body sent in a header.
	HMAC *HMACConfig `yaml:"hmac"`
}

// Configured reports whether any scheme is set.
func (a AuthConfig) Configured() bool {
	return a.Token != "" || len(a.Tokens) > 0 || a.Basic != nil || a.StandardWebhooks != nil || a.HMAC != nil
}

// BasicAuthConfig is HTTP basic authentication.
type BasicAuthConfig struct {
	User     string `yaml:"user"`
	Password Secret `yaml:"password"`
}

// StandardWebhooksConfig is the Standard Webhooks signature scheme.
type StandardWebhooksConfig struct {
	// Secret is a whsec_… secret; Secrets lists more for rotation.
	Secret  Secret   `yaml:"secret"`
	Secrets []Secret `yaml:"secrets"`
	// Tolerance is how far webhook-timestamp may be from now (default 5m).
	Tolerance Duration `yaml:"tolerance"`
}

// HMACConfig is a generic HMAC-SHA256 signature of the raw body.
type HMACConfig struct {
	// Header carries the signature, e.g. X-Signature.
	Header string `yaml:"header"`
	// Secret is the shared key; Secrets lists more for rotation.
	Secret  Secret   `yaml:"secret"`
	Secrets []Secret `yaml:"secrets"`
	// Encoding is hex (default) or base64.
	Encoding string `yaml:"encoding"`
	// Prefix is stripped from the header value first, e.g. "sha256=".
	Prefix string `yaml:"prefix"`
}

// SinkConfig is one delivery destination.
type SinkConfig struct {
	Name   string `yaml:"name"`
	Plugin string `yaml:"plugin"`
	// Events lists the event types delivered (default: every documented type except Test).
	Events []string `yaml:"events"`
	// Trigger is "realtime" or a cron spec (robfig/cron: CRON_TZ=, @every, optional seconds).
	Trigger string `yaml:"trigger"`
	// Start is where a new sink begins: latest (default), earliest, or an RFC 3339 time.
	Start     string            `yaml:"start"`
	Batch     BatchConfig       `yaml:"batch"`
	RateLimit RateLimitConfig   `yaml:"rate_limit"`
	Retry     RetryConfig       `yaml:"retry"`
	Mapping   map[string]string `yaml:"mapping"`
	// Timeout bounds one Write (or Poll) of the plugin (default 2m). A plugin that has not
	// answered by then has its batch retried, and is health-checked, and restarted if it
	// does not answer that either.
	Timeout Duration `yaml:"timeout"`
	// Settings are the plugin's own settings, passed to it as JSON.
	Settings map[string]any `yaml:"settings"`
}

// BatchConfig bounds one request to a sink.
type BatchConfig struct {
	MaxRows int `yaml:"max_rows"`
}

// RateLimitConfig caps requests to a sink: Requests per Per (a rolling window) and Daily per
// UTC day.
type RateLimitConfig struct {
	Requests int      `yaml:"requests"`
	Per      Duration `yaml:"per"`
	Daily    int      `yaml:"daily"`
}

// RetryConfig is a sink's retry policy.
type RetryConfig struct {
	Schedule    []Duration `yaml:"schedule"`
	MaxAttempts int        `yaml:"max_attempts"`
	MaxAge      Duration   `yaml:"max_age"`
}

// Secret is a configuration value that is never printed.
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// Reveal returns the value.
func (s Secret) Reveal() string { return string(s) }

// Duration is a time.Duration written as "5s", "2h", ….
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 30s, 5m, 2h)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// ByteSize is a size written as "1MiB", "512KB", "1048576".
type ByteSize int64

var byteSizeRE = regexp.MustCompile(`^\s*(\d+)\s*([KMGT]i?B|B)?\s*$`)

// UnmarshalYAML parses a size with an optional unit (KB=1000, KiB=1024, …).
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	m := byteSizeRE.FindStringSubmatch(n.Value)
	if m == nil {
		return fmt.Errorf("line %d: %q is not a size (e.g. 1MiB, 512KB)", n.Line, n.Value)
	}
	v, _ := strconv.ParseInt(m[1], 10, 64)
	mult := map[string]int64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[m[2]]
	*b = ByteSize(v * mult)
	return nil
}

// String writes b in the largest binary unit that divides it ("2MiB"), else in bytes.
func (b ByteSize) String() string {
	for _, u := range []struct {
		name string
		size ByteSize
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b >= u.size && b%u.size == 0 {
			return strconv.FormatInt(int64(b/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// Load reads a configuration file; name "" means the built-in default. getenv resolves
// ${NAME} references. The result is validated; errors name the file, line and key.
func Load(name string, getenv func(string) string) (*Config, error) {
	data, file := defaultConfig, "built-in default"
	if name != "" {
		var err error
		if data, err = os.ReadFile(name); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		file = name
	}
	return Parse(data, file, getenv)
}

// PluginsDir reads only plugins_dir from the configuration file name (default ./plugins),
// resolving ${ENV} references in that value alone, so listing plugins needs none of the
// configuration's secrets.
func PluginsDir(name string, getenv func(string) string) (string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return "", fmt.Errorf("config: %s: %w", name, err)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return "./plugins", nil
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != "plugins_dir" {
			continue
		}
		v := m.Content[i+1]
		if missing := interpolate(v, "plugins_dir", getenv, nil); len(missing) > 0 {
			return "", fmt.Errorf("config: %s: %s", name, missing[0])
		}
		if v.Kind == yaml.ScalarNode && v.Value != "" {
			return v.Value, nil
		}
	}
	return "./plugins", nil
}

// Parse parses and validates configuration text; file names it in errors.
func Parse(data []byte, file string, getenv func(string) string) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		if unquotedEnvInFlow.Match(data) {
			return nil, fmt.Errorf("config: %s: %w (a ${NAME} inside { } or [ ] must be quoted: \"${NAME}\")", file, err)
		}
		return nil, fmt.Errorf("config: %s: %w", file, err)
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("config: %s is empty", file)
	}
	// Unknown keys and unset variables are reported together, in line order.
	problems := unknownKeys(root.Content[0], reflect.TypeFor[Config](), "")
	cfg := &Config{file: file, lines: map[string]int{}}
	indexLines(root.Content[0], cfg.lines)
	problems = interpolate(root.Content[0], "", getenv, problems)
	if len(problems) > 0 {
		return nil, inLineOrder(&ValidationError{File: file, Problems: problems})
	}
	if err := root.Content[0].Decode(cfg); err != nil {
		values := map[string][]string{}
		indexValues(root.Content[0], values)
		return nil, &ValidationError{File: file, Problems: cfg.decodeProblems(err, values)}
	}
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// unknownKeys lists every mapping key below n that t (the Go type the node decodes into)
// has no field for, with its line, its path and the nearest known key. Free-form maps (a
// sink's settings, checked by its plugin) are not looked into.
func unknownKeys(n *yaml.Node, t reflect.Type, path string) []string {
	return (&keyWalk{open: map[*yaml.Node]bool{}}).unknown(n, t, path)
}

// keyWalk is one unknownKeys walk. open holds the nodes being checked (an alias to one of
// them loops); budget bounds alias expansions (nested merge keys can multiply them).
type keyWalk struct {
	open   map[*yaml.Node]bool
	budget int
}

func (w *keyWalk) unknown(n *yaml.Node, t reflect.Type, path string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		w.budget++
		if w.open[n.Alias] || w.budget > 10000 {
			return []string{fmt.Sprintf("line %d: %s: the alias *%s refers to the mapping it is in (or expands too often)", n.Line, path, n.Value)}
		}
		n = n.Alias // *name: the anchored node, checked where it is used
	}
	w.open[n] = true
	defer delete(w.open, n)
	var problems []string
	switch {
	case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
		for i, c := range n.Content {
			problems = append(problems, w.unknown(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		fields := yamlFields(t, map[string]reflect.Type{})
		names := make([]string, 0, len(fields))
		for name := range fields {
			names = append(names, name)
		}
		sort.Strings(names)
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn := n.Content[i]
			if kn.Kind == yaml.AliasNode && kn.Alias != nil {
				kn = kn.Alias
			}
			if kn.Kind != yaml.ScalarNode {
				problems = append(problems, fmt.Sprintf("line %d: %s: a key must be a plain name", n.Content[i].Line, path))
				continue
			}
			key := kn.Value
			if key == "<<" && kn.Tag == "!!merge" {
				// A merge key (<<: *defaults, or a list of them) adds the merged mappings'
				// keys to this one.
				merged := []*yaml.Node{n.Content[i+1]}
				if m := n.Content[i+1]; m.Kind == yaml.SequenceNode {
					merged = m.Content
				}
				for _, m := range merged {
					problems = append(problems, w.unknown(m, t, path)...)
				}
				continue
			}
			p := key
			if path != "" {
				p = path + "." + key
			}
			ft, ok := fields[key]
			if !ok {
				msg := fmt.Sprintf("line %d: %s: unknown key", n.Content[i].Line, p)
				if near := suggest.Nearest(key, names); near != "" {
					msg += fmt.Sprintf(" (did you mean %s?)", near)
				}
				problems = append(problems, msg)
				continue
			}
			problems = append(problems, w.unknown(n.Content[i+1], ft, p)...)
		}
	}
	return problems
}

// yamlFields adds the YAML keys of struct type t, and the types they decode into, to fields:
// a field's tag names it (an untagged field goes by its lower-cased name, as yaml.v3 does), and
// an ",inline" struct's keys are its own.
func yamlFields(t reflect.Type, fields map[string]reflect.Type) map[string]reflect.Type {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-":
		case strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Struct:
			yamlFields(f.Type, fields)
		case name == "":
			fields[strings.ToLower(f.Name)] = f.Type
		default:
			fields[name] = f.Type
		}
	}
	return fields
}

var decodeLineRE = regexp.MustCompile(`^line (\d+): `)

// inLineOrder sorts v's problems by the line each names, and returns v.
func inLineOrder(v *ValidationError) *ValidationError {
	sort.SliceStable(v.Problems, func(i, j int) bool { return problemLine(v.Problems[i]) < problemLine(v.Problems[j]) })
	return v
}

// problemLine is the line a problem starts with ("line 12: …"), or 0.
func problemLine(p string) int {
	if m := decodeLineRE.FindStringSubmatch(p); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

// decodeProblems turns yaml's decoding errors ("line 12: cannot unmarshal …") into problems
// that also name the key: the one whose value on that line is the value the error quotes, or
// the only key written on that line. values maps "line\x00value" to the paths of the scalar
// values written there.
func (c *Config) decodeProblems(err error, values map[string][]string) []string {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	onLine := map[int][]string{}
	for _, paths := range values {
		for _, p := range paths {
			l := c.lines[p]
			onLine[l] = append(onLine[l], p)
		}
	}
	for i, m := range msgs {
		m = typeNameRE.ReplaceAllString(m, "")
		if sm := decodeLineRE.FindStringSubmatch(m); sm != nil {
			line, _ := strconv.Atoi(sm[1])
			var candidates []string
			if tag := unmarshalTagRE.FindStringSubmatch(m); tag != nil {
				candidates = values[fmt.Sprintf("%d\x00%s", line, tag[1])]
			} else if v, ok := quotedValue(m[len(sm[0]):]); ok {
				candidates = values[fmt.Sprintf("%d\x00%s", line, v)]
			}
			if len(candidates) != 1 {
				candidates = onLine[line]
			}
			if len(candidates) == 1 {
				m = fmt.Sprintf("line %d: %s: %s", line, candidates[0], m[len(sm[0]):])
			}
		}
		msgs[i] = m
	}
	return msgs
}

// unmarshalTagRE finds the tag of a list or mapping yaml could not decode.
var unmarshalTagRE = regexp.MustCompile(`cannot unmarshal (!!map|!!seq) `)

var quotedRE = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|`[^`]*`")

// quotedValue is the first value an error message quotes, as "…" (Go-quoted) or `…`.
func quotedValue(msg string) (string, bool) {
	q := quotedRE.FindString(msg)
	if q == "" {
		return "", false
	}
	if q[0] == '`' {
		return q[1 : len(q)-1], true
	}
	v, err := strconv.Unquote(q)
	return v, err == nil
}

// walkYAML calls visit for every node below n (n included) with its key path
// ("sources[0].auth.token") and, for a mapping's value, the node of its key.
func walkYAML(n *yaml.Node, path string, key *yaml.Node, visit func(path string, key, n *yaml.Node)) {
	visit(path, key, n)
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "." + p
			}
			walkYAML(n.Content[i+1], p, n.Content[i], visit)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			walkYAML(c, fmt.Sprintf("%s[%d]", path, i), nil, visit)
		}
	}
}

// indexValues records, for every scalar value below n that belongs to a key, its path under
// "line\x00value".
func indexValues(n *yaml.Node, values map[string][]string) {
	walkYAML(n, "", nil, func(path string, key, n *yaml.Node) {
		switch {
		case n.Kind == yaml.ScalarNode && path != "":
			k := fmt.Sprintf("%d\x00%s", n.Line, n.Value)
			values[k] = append(values[k], path)
		case key != nil:
			// A list or mapping written on its key's line is found by its tag ("events: {a:
			// b}" where a list belongs: "cannot unmarshal !!map into []string").
			k := fmt.Sprintf("%d\x00%s", key.Line, n.ShortTag())
			values[k] = append(values[k], path)
		}
	})
}

var typeNameRE = regexp.MustCompile(` in type [\w.]+| into [\w.]+`)

// indexLines records the line of every key path below n (a list item's: the item's line).
func indexLines(n *yaml.Node, lines map[string]int) {
	walkYAML(n, "", nil, func(path string, key, n *yaml.Node) {
		switch {
		case key != nil:
			lines[path] = key.Line
		case path != "":
			lines[path] = n.Line
		}
	})
}

var envRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// interpolate replaces ${NAME} (or ${NAME:-default}) in every scalar value below n (whose key
// path is path); $$ is a literal $. It returns missing with a problem, naming the key, for
// every reference to an unset
// variable without a default. Values taken from the environment are strings.
func interpolate(n *yaml.Node, path string, getenv func(string) string, missing []string) []string {
	walkYAML(n, path, nil, func(path string, _, n *yaml.Node) {
		if n.Kind != yaml.ScalarNode || !strings.Contains(n.Value, "$") {
			return
		}
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
			if ref == "$$" {
				return "$"
			}
			m := envRef.FindStringSubmatch(ref)
			if v := getenv(m[1]); v != "" {
				return v
			}
			if m[2] != "" {
				return m[3]
			}
			missing = append(missing, fmt.Sprintf("line %d: %s: environment variable %s is not set (export it, or write ${%s:-default})", n.Line, path, m[1], m[1]))
			return ""
		})
	})
	return missing
}

func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.Data == "" {
		c.Data = "./hookbridge.duckdb"
	}
	if c.PluginsDir == "" {
		c.PluginsDir = "./plugins"
	}
	if c.Analytics.TimeZone == "" {
		c.Analytics.TimeZone = "UTC"
	}
	if c.Limits.QueueEvents == 0 {
		c.Limits.QueueEvents = 8192
	}
	if c.Limits.QueueBytes == 0 {
		c.Limits.QueueBytes = 64 << 20
	}
	if c.Limits.ReadTimeout == 0 {
		c.Limits.ReadTimeout = Duration(30 * time.Second)
	}

	if c.DuckDB.MemoryLimit == "" {
		c.DuckDB.MemoryLimit = defaultMemoryLimit()
	}
	if c.DuckDB.Threads == 0 {
		c.DuckDB.Threads = 2
	}
	if c.DuckDB.CheckpointWAL == 0 {
		c.DuckDB.CheckpointWAL = 16 << 20
	}
	for i := range c.Sources {
		s := &c.Sources[i]
		if s.Format == "" {
			s.Format = "rokt-calendar-v2"
		}
		if s.MaxBody == 0 {
			s.MaxBody = 1 << 20
		}
		if s.Auth.StandardWebhooks != nil && s.Auth.StandardWebhooks.Tolerance == 0 {
			s.Auth.StandardWebhooks.Tolerance = Duration(5 * time.Minute)
		}
		if s.Auth.HMAC != nil && s.Auth.HMAC.Encoding == "" {
			s.Auth.HMAC.Encoding = "hex"
		}
	}
}

// ValidationError is a list of problems, each naming the key and line.
type ValidationError struct {
	File     string
	Problems []string
}

// Error lists every problem, one per line, after the file's name.
func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return fmt.Sprintf("config: %s: %s", e.File, e.Problems[0])
	}
	return fmt.Sprintf("config: %s: %d problems:\n  %s", e.File, len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// problem records a problem with the key at path.
func (c *Config) problem(v *ValidationError, path, format string, args ...any) {
	v.Problems = append(v.Problems, c.locate(path)+": "+fmt.Sprintf(format, args...))
}

// warn records something suspicious but allowed at the key at path.
func (c *Config) warn(path, format string, args ...any) {
	c.warnings = append(c.warnings, c.locate(path)+": "+fmt.Sprintf(format, args...))
}

// locate is "line N: path", N being the line of path in the file, or of its nearest parent
// key written there; just path when neither is.
func (c *Config) locate(path string) string {
	key := path
	for key != "" {
		if line, ok := c.lines[key]; ok {
			return fmt.Sprintf("line %d: %s", line, path)
		}
		if i := strings.LastIndexAny(key, ".["); i > 0 {
			key = key[:i]
		} else {
			key = ""
		}
	}
	return path
}

// unquotedEnvInFlow finds a ${NAME} written bare inside a flow collection ({token: ${T}}),
// where YAML reads its braces as the collection's own.
var unquotedEnvInFlow = regexp.MustCompile(`[{\[,][^"'\n]*:?\s*\$\{`)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Validate checks the configuration without touching the network. Sink settings are checked
// by their plugins when the sinks start.
func (c *Config) Validate() error {
	v := &ValidationError{File: c.file}
	c.warnings = nil
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		c.problem(v, "listen", "%q is not host:port (e.g. 127.0.0.1:8080)", c.Listen)
	}
	if c.Admin.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
			c.problem(v, "admin.listen", "%q is not host:port", c.Admin.Listen)
		}
	}
	adminAddr := c.Listen
	if c.Admin.Listen != "" {
		adminAddr = c.Admin.Listen
	}
	if !IsLoopback(adminAddr) && c.Admin.Token == "" {
		c.problem(v, "admin.token", "the admin API listens on %s, off loopback, so it needs a token (set admin.token: ${HOOKBRIDGE_ADMIN_TOKEN})", adminAddr)
	}
	if c.Admin.Token != "" && len(c.Admin.Token) < 16 {
		c.problem(v, "admin.token", "use at least 16 characters")
	}
	if c.Admin.PublicURL != "" {
		if u, err := url.Parse(c.Admin.PublicURL); err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
			c.problem(v, "admin.public_url", "%q is not an http(s) address without a path (e.g. https://hookbridge.example.com)", c.Admin.PublicURL)
		}
	}
	if _, err := time.LoadLocation(c.Analytics.TimeZone); err != nil {
		c.problem(v, "analytics.timezone", "%q is not an IANA time zone (e.g. Australia/Melbourne)", c.Analytics.TimeZone)
	}
	if c.Limits.QueueEvents < 1 {
		c.problem(v, "limits.queue_events", "must be at least 1")
	}
	var largest ByteSize
	for _, s := range c.Sources {
		largest = max(largest, s.MaxBody)
	}
	if c.Limits.QueueBytes < largest+512 {
		// A body larger than the queue's bound could never be queued: every one would get 503.
		c.problem(v, "limits.queue_bytes", "must be larger than the largest max_body (%s) by 512 bytes, or such a body could never be taken", largest)
	}
	if t := time.Duration(c.Limits.ReadTimeout); t < time.Second || t > 24*time.Hour {
		c.problem(v, "limits.read_timeout", "must be between 1s and 24h (it also bounds an import sent to the admin API)")
	}
	if c.DuckDB.Threads < 1 || c.DuckDB.Threads > 256 {
		c.problem(v, "duckdb.threads", "must be between 1 and 256")
	}
	if c.DuckDB.MemoryLimit == defaultMemoryLimit() {
		// The default is known to work: no DuckDB is started to check it.
	} else if err := store.CheckMemoryLimit(context.Background(), c.DuckDB.MemoryLimit); err != nil {
		c.problem(v, "duckdb.memory_limit", "%v", err)
	}
	if w := c.Limits.GroupWaitOrDefault(); w < 0 || w > 100*time.Millisecond {
		c.problem(v, "limits.group_wait", "must be between 0s and 100ms (every acknowledgement may wait that long)")
	}
	if len(c.Sources) == 0 {
		c.problem(v, "sources", "at least one source is needed (e.g. name: rokt)")
	}
	seen := map[string]bool{}
	for i := range c.Sources {
		c.validateSource(v, i, seen)
	}
	sinkNames := map[string]bool{}
	for i, s := range c.Sinks {
		p := fmt.Sprintf("sinks[%d]", i)
		if !nameRE.MatchString(s.Name) {
			c.problem(v, p+".name", "%q: use lower-case letters, digits, - and _", s.Name)
		} else if sinkNames[s.Name] {
			c.problem(v, p+".name", "sink %q is defined twice", s.Name)
		}
		sinkNames[s.Name] = true
		if s.Plugin == "" {
			c.problem(v, p+".plugin", "name the plugin (a built-in such as jsonl, or an external hookbridge-sink-NAME)")
		}
		if len(s.Mapping) > 0 {
			if _, err := schemas.NewMapping(s.Mapping); err != nil {
				c.problem(v, p+".mapping", "%s", strings.TrimPrefix(err.Error(), "schemas: mapping: "))
			}
		}
		c.validateSink(v, i)
	}
	if len(v.Problems) > 0 {
		return v
	}
	return nil
}

func (c *Config) validateSource(v *ValidationError, i int, seen map[string]bool) {
	s := &c.Sources[i]
	p := fmt.Sprintf("sources[%d]", i)
	switch {
	case !nameRE.MatchString(s.Name):
		c.problem(v, p+".name", "%q: use lower-case letters, digits, - and _ (it becomes /webhooks/NAME)", s.Name)
	case seen[s.Name]:
		c.problem(v, p+".name", "source %q is defined twice", s.Name)
	}
	seen[s.Name] = true
	if s.Format != "rokt-calendar-v2" {
		c.problem(v, p+".format", "%q is not supported (supported: rokt-calendar-v2)", s.Format)
	}
	if s.MaxBody < 1024 || s.MaxBody > 64<<20 {
		c.problem(v, p+".max_body", "must be between 1KiB and 64MiB")
	}
	if err := s.ContactFields.Validate(); err != nil {
		c.problem(v, p+".contact_fields", "%v", err)
	}
	a := s.Auth
	for j, t := range append([]Secret{a.Token}, a.Tokens...) {
		if t == "" && j == 0 {
			continue
		}
		if len(t) < 16 {
			c.problem(v, p+".auth.token", "tokens must have at least 16 characters (it is the only thing protecting the endpoint)")
			break
		}
		if i := strings.IndexAny(string(t), "/?#% \t\r\n"); i >= 0 {
			// A token travels as a path segment or a query value: these split or end either.
			c.problem(v, p+".auth.token", "a token cannot hold %q, which a URL splits it at (generate one with: openssl rand -hex 24)", string(t)[i:i+1])
			break
		}
		if i := strings.IndexAny(string(t), "+&"); i >= 0 {
			c.warn(p+".auth.token", "a token with %q matches only as the last path segment (/webhooks/NAME/TOKEN), not as ?token=, where it is read as another character", string(t)[i:i+1])
		}
	}
	if a.Basic != nil && (a.Basic.User == "" || a.Basic.Password == "") {
		c.problem(v, p+".auth.basic", "needs user and password")
	}
	if sw := a.StandardWebhooks; sw != nil {
		secrets := append([]Secret{sw.Secret}, sw.Secrets...)
		n := 0
		for _, sec := range secrets {
			if sec == "" {
				continue
			}
			n++
			if !strings.HasPrefix(string(sec), "whsec_") {
				c.problem(v, p+".auth.standard_webhooks.secret", "Standard Webhooks secrets start with whsec_")
			}
		}
		if n == 0 {
			c.problem(v, p+".auth.standard_webhooks.secret", "is required")
		}
	}
	if h := a.HMAC; h != nil {
		if h.Header == "" {
			c.problem(v, p+".auth.hmac.header", "name the header that carries the signature (e.g. X-Signature)")
		}
		if h.Secret == "" && len(h.Secrets) == 0 {
			c.problem(v, p+".auth.hmac.secret", "is required")
		}
		if h.Encoding != "hex" && h.Encoding != "base64" {
			c.problem(v, p+".auth.hmac.encoding", "%q: use hex or base64", h.Encoding)
		}
	}
	if !a.Configured() && !IsLoopback(c.Listen) && !c.AllowUnauthenticated {
		c.problem(v, p+".auth", "source %q has no authentication and hookbridge listens on %s, off loopback; configure auth (e.g. token: ${ROKT_WEBHOOK_TOKEN}) or set allow_unauthenticated: true", s.Name, c.Listen)
	}
}

// IsLoopback reports whether a host:port address only accepts local connections.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ExportDir returns the folder for exports and snapshots.
func (c *Config) ExportDir() string {
	if c.ExportsDir != "" {
		return c.ExportsDir
	}
	return filepath.Join(filepath.Dir(c.Data), "hookbridge-exports")
}

// Decoders returns a decoder per source, with its contact_fields.
func (c *Config) Decoders() (map[string]*schemas.Decoder, error) {
	out := map[string]*schemas.Decoder{}
	for _, s := range c.Sources {
		d, err := schemas.NewDecoder(s.ContactFields)
		if err != nil {
			return nil, fmt.Errorf("connector: source %s: %w", s.Name, err)
		}
		out[s.Name] = d
	}
	return out, nil
}

// SourceNames returns the configured source names, sorted.
func (c *Config) SourceNames() []string {
	var out []string
	for _, s := range c.Sources {
		out = append(out, s.Name)
	}
	sort.Strings(out)
	return out
}

// defaultMemoryLimit is a quarter of the memory this process may use (the machine's, or its
// container's limit when lower), at least 1GB: enough for the analytics views over tens of
// millions of events (the mailing list aggregates lists, which DuckDB cannot spill to disk),
// while leaving most of it to everything else.
func defaultMemoryLimit() string {
	meminfo, _ := os.ReadFile("/proc/meminfo")
	cgroup, err := os.ReadFile("/sys/fs/cgroup/memory.max") // cgroup v2
	if err != nil {
		cgroup, _ = os.ReadFile("/sys/fs/cgroup/memory/memory.limit_in_bytes") // cgroup v1
	}
	return memoryLimitFrom(string(meminfo), string(cgroup))
}

// memoryLimitFrom is defaultMemoryLimit on the texts of /proc/meminfo and the cgroup's memory
// limit ("max" or a byte count; either may be empty).
func memoryLimitFrom(meminfo, cgroupMax string) string {
	const gib = 1 << 30
	var total int64
	for _, line := range strings.Split(meminfo, "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kb); err == nil {
				total = kb << 10
			}
		}
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(cgroupMax), 10, 64); err == nil && n > 0 && (total == 0 || n < total) {
		total = n
	}
	return fmt.Sprintf("%dMB", max(gib, total/4)>>20)
}
