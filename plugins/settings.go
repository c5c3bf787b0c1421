package plugins

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/hookbridge/hookbridge/internal/suggest"
)

// SettingsProblem is one way a sink's settings break its plugin's settings schema.
type SettingsProblem struct {
	// Field is the setting's path inside the settings object ("url", "headers.X-Team").
	Field   string
	Message string
}

// CheckSettings checks settings against a plugin's settings schema without starting the
// plugin, so a configuration can be checked before anything runs. It understands the part of
// JSON Schema plugins use: type, properties, required, additionalProperties, enum, minimum,
// maximum, pattern, items and format "uri". A check only the plugin's own code makes (a
// secret's encoding, say) still happens when the sink starts, or with `hookbridge sinks check`.
func CheckSettings(schema json.RawMessage, settings map[string]any) ([]SettingsProblem, error) {
	if len(bytes.TrimSpace(schema)) == 0 || string(bytes.TrimSpace(schema)) == "null" {
		return nil, nil // a plugin that describes no settings schema takes any
	}
	var s jsonSchema
	if err := json.Unmarshal(schema, &s); err != nil {
		return nil, fmt.Errorf("plugins: settings schema: %w", err)
	}
	var obj any = settings
	if settings == nil {
		obj = map[string]any{}
	}
	var problems []SettingsProblem
	s.check("", obj, &problems)
	return problems, nil
}

// jsonSchema is the subset of JSON Schema CheckSettings reads.
type jsonSchema struct {
	Type                 schemaTypes            `json:"type"`
	Properties           map[string]*jsonSchema `json:"properties"`
	Required             []string               `json:"required"`
	AdditionalProperties json.RawMessage        `json:"additionalProperties"`
	Enum                 []any                  `json:"enum"`
	Minimum              *float64               `json:"minimum"`
	Maximum              *float64               `json:"maximum"`
	Pattern              string                 `json:"pattern"`
	Format               string                 `json:"format"`
	Items                *jsonSchema            `json:"items"`
}

// schemaTypes is JSON Schema's "type": one name, or a list of names.
type schemaTypes []string

// UnmarshalJSON reads "string" or ["string", "null"].
func (t *schemaTypes) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*t = schemaTypes{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("type: want a name or a list of names")
	}
	*t = list
	return nil
}

func (t schemaTypes) String() string {
	parts := make([]string, len(t))
	for i, n := range t {
		parts[i] = article(n)
	}
	return strings.Join(parts, " or ")
}

func (s *jsonSchema) check(path string, v any, problems *[]SettingsProblem) {
	add := func(field, format string, args ...any) {
		*problems = append(*problems, SettingsProblem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if v == nil {
		return // an empty value leaves the plugin's default
	}
	if m, ok := v.(map[any]any); ok {
		for k := range m {
			if _, ok := k.(string); !ok {
				add(path, "a key (%v) is not text: write it in quotes", k)
				return
			}
		}
	}
	if len(s.Type) > 0 && !slices.ContainsFunc(s.Type, func(t string) bool { return hasType(t, v) }) {
		add(path, "is %s, want %s", describe(v), s.Type)
		return
	}
	if len(s.Enum) > 0 {
		got, _ := json.Marshal(v)
		var names []string
		for _, e := range s.Enum {
			want, _ := json.Marshal(e)
			if bytes.Equal(got, want) { // the same type and value: "1" is not 1
				names = nil
				break
			}
			names = append(names, string(want))
		}
		if names != nil {
			msg := fmt.Sprintf("%s is not one of %s", got, strings.Join(names, ", "))
			texts := make([]string, len(s.Enum))
			for i, e := range s.Enum {
				texts[i] = fmt.Sprint(e)
			}
			switch near := suggest.Nearest(fmt.Sprint(v), texts); {
			case near == fmt.Sprint(v):
				msg += " (quote it, or not: the value is right, its type is not)"
			case near != "":
				msg += fmt.Sprintf(" (did you mean %s?)", near)
			}
			add(path, "%s", msg)
		}
	}
	switch v := v.(type) {
	case string:
		if s.Pattern != "" {
			if re, err := regexp.Compile(s.Pattern); err == nil && !re.MatchString(v) {
				add(path, "does not match %s", s.Pattern)
			}
		}
		if s.Format == "uri" {
			if u, err := url.Parse(v); err != nil || u.Scheme == "" || u.Host == "" {
				add(path, "%q is not an absolute URL (e.g. https://example.com/hooks)", v)
			}
		}
	case map[string]any:
		s.checkObject(path, v, problems)
	case []any:
		if s.Items != nil {
			for i, item := range v {
				s.Items.check(fmt.Sprintf("%s[%d]", path, i), item, problems)
			}
		}
	default:
		if f, ok := number(v); ok {
			if s.Minimum != nil && f < *s.Minimum {
				add(path, "is %v, below the minimum %v", v, *s.Minimum)
			}
			if s.Maximum != nil && f > *s.Maximum {
				add(path, "is %v, above the maximum %v", v, *s.Maximum)
			}
		}
	}
}

func (s *jsonSchema) checkObject(path string, obj map[string]any, problems *[]SettingsProblem) {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	for _, r := range s.Required {
		if v, ok := obj[r]; !ok || v == nil || v == "" {
			*problems = append(*problems, SettingsProblem{Field: join(r), Message: "is required"})
		}
	}
	var extra *jsonSchema
	closed := string(s.AdditionalProperties) == "false"
	if len(s.AdditionalProperties) > 0 && !closed {
		if err := json.Unmarshal(s.AdditionalProperties, &extra); err != nil {
			extra = nil // `true`: anything goes
		}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	known := make([]string, 0, len(s.Properties))
	for k := range s.Properties {
		known = append(known, k)
	}
	sort.Strings(known)
	for _, k := range keys {
		if ps, ok := s.Properties[k]; ok {
			ps.check(join(k), obj[k], problems)
			continue
		}
		switch {
		case closed:
			msg := "is not a setting of this sink"
			if near := suggest.Nearest(k, known); near != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", near)
			}
			*problems = append(*problems, SettingsProblem{Field: join(k), Message: msg})
		case extra != nil:
			extra.check(join(k), obj[k], problems)
		}
	}
}

// hasType reports whether v, as YAML decodes it, is of JSON Schema type t ("" is any).
func hasType(t string, v any) bool {
	switch t {
	case "":
		return true
	case "null":
		return v == nil
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "number":
		_, ok := number(v)
		return ok
	case "integer":
		f, ok := number(v)
		return ok && f == math.Trunc(f)
	}
	return true // a type this checker does not know is left to the plugin
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("the text %q", v)
	case bool:
		return fmt.Sprintf("%v", v)
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	}
	if _, ok := number(v); ok {
		return fmt.Sprintf("the number %v", v)
	}
	return fmt.Sprintf("%v", v)
}

func article(t string) string {
	switch t {
	case "integer", "object", "array":
		return "an " + t
	case "boolean":
		return "true or false"
	case "null":
		return "nothing"
	}
	return "a " + t
}
