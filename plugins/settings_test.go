package plugins

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// settingsSchema is shaped like the built-in webhook sink's.
const settingsSchema = `{
  "type": "object", "additionalProperties": false, "required": ["url"],
  "properties": {
    "url": {"type": "string", "format": "uri"},
    "body": {"enum": ["original", "normalised"]},
    "batch": {"type": "boolean"},
    "concurrency": {"type": "integer", "minimum": 1, "maximum": 32},
    "secret": {"type": "string", "pattern": "^whsec_"},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    "tags": {"type": "array", "items": {"type": "string"}}
  }
}`

func TestCheckSettings(t *testing.T) {
	tests := []struct {
		name     string
		settings string
		want     []string // "field: message" fragments, in order; none means valid
	}{
		{"valid", `{"url": "https://example.com/hooks", "body": "normalised", "batch": true, "concurrency": 4, "secret": "whsec_AAAA", "headers": {"X-Team": "crm"}, "tags": ["a"]}`, nil},
		{"empty values leave defaults", `{"url": "https://example.com/hooks", "body": null}`, nil},
		{"unknown key", `{"url": "https://example.com/hooks", "bodi": "original"}`, []string{"bodi: is not a setting of this sink (did you mean body?)"}},
		{"enum", `{"url": "https://example.com/hooks", "body": "orignal"}`, []string{`body: "orignal" is not one of "original", "normalised" (did you mean original?)`}},
		{"not a url", `{"url": "127.0.0.1:9099/hook"}`, []string{`url: "127.0.0.1:9099/hook" is not an absolute URL`}},
		{"required", `{"body": "original"}`, []string{"url: is required"}},
		{"type", `{"url": "https://example.com", "batch": "yes", "concurrency": 2.5}`, []string{`batch: is the text "yes", want true or false`, "concurrency: is the number 2.5, want an integer"}},
		{"range", `{"url": "https://example.com", "concurrency": 64}`, []string{"concurrency: is 64, above the maximum 32"}},
		{"pattern", `{"url": "https://example.com", "secret": "AAAA"}`, []string{"secret: does not match ^whsec_"}},
		{"nested", `{"url": "https://example.com", "headers": {"X-Team": 7}, "tags": ["a", true]}`, []string{"headers.X-Team: is the number 7, want a string", "tags[1]: is true, want a string"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var settings map[string]any
			if err := json.Unmarshal([]byte(tt.settings), &settings); err != nil {
				t.Fatal(err)
			}
			problems, err := CheckSettings(json.RawMessage(settingsSchema), settings)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range problems {
				got = append(got, p.Field+": "+p.Message)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %d: got %q, want %q", i, got[i], w)
				}
			}
		})
	}
	if _, err := CheckSettings(json.RawMessage(`{"type": `), nil); err == nil {
		t.Error("a broken schema was accepted")
	}
}

// TestCheckSettingsOfYAMLValues checks values shaped as a configuration file gives them
// (ints, not float64; maps with non-text keys), and schema forms beyond the basics.
func TestCheckSettingsOfYAMLValues(t *testing.T) {
	var settings map[string]any
	if err := yaml.Unmarshal([]byte("url: https://example.com\nconcurrency: 4\nlevel: 1\nmode: \"1\"\nheaders: {1: x}\nnote: ~\nsize: ten\n"), &settings); err != nil {
		t.Fatal(err)
	}
	schema := `{"type": "object", "additionalProperties": false, "properties": {
		"url": {"type": "string", "format": "uri"},
		"concurrency": {"type": "integer", "maximum": 32},
		"level": {"enum": ["1", "2"]},
		"mode": {"enum": [1, 2, ""]},
		"headers": {"type": "object"},
		"note": {"type": ["string", "null"]},
		"size": {"type": ["integer", "null"]}}}`
	problems, err := CheckSettings(json.RawMessage(schema), settings)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.Field+": "+p.Message)
	}
	want := []string{
		"headers: a key (1) is not text: write it in quotes",
		`level: 1 is not one of "1", "2" (quote it, or not: the value is right, its type is not)`,
		`mode: "1" is not one of 1, 2, "" (quote it, or not: the value is right, its type is not)`,
		`size: is the text "ten", want an integer or nothing`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	for _, empty := range []string{"", "null"} {
		if p, err := CheckSettings(json.RawMessage(empty), map[string]any{"anything": 1}); err != nil || len(p) != 0 {
			t.Errorf("schema %q: %v %v; a plugin without a schema takes any settings", empty, p, err)
		}
	}
}
