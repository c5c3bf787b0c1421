package schemas

import (
	"strings"
	"testing"
	"time"
)

func TestMapping(t *testing.T) {
	m, err := NewMapping(map[string]string{
		"email":          "email",
		"first_name":     "firstname",
		"postcode":       "zip",
		"calendar_title": "rokt_calendar",
		"tag_ids":        "rokt_tags",
		"removed_at":     "unsubscribed_on",
		"event_start":    "event_start_local",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.Columns(), ","); got != "calendar_title,tag_ids,email,first_name,postcode,removed_at,event_start" {
		t.Errorf("columns in column order: %s", got)
	}
	removed := time.Date(2025, 9, 29, 7, 42, 11, 318204000, time.UTC)
	start := time.Date(2025, 5, 9, 19, 10, 0, 0, time.UTC)
	r := Row{Email: "a@example.com", FirstName: "Ann", CalendarTitle: "Fixtures", TagIDs: []string{"t1"}, RemovedAt: &removed, EventStart: &start}
	got := m.Apply(&r)
	want := map[string]any{"email": "a@example.com", "firstname": "Ann", "rokt_calendar": "Fixtures", "rokt_tags": []string{"t1"},
		"unsubscribed_on": "2025-09-29T07:42:11.318204Z", "event_start_local": "2025-05-09T19:10:00"}
	if len(got) != len(want) {
		t.Errorf("Apply = %v, want %v (null postcode left out)", got, want)
	}
	for k, v := range want {
		if s, ok := v.([]string); ok {
			if g, _ := got[k].([]string); strings.Join(g, ",") != strings.Join(s, ",") {
				t.Errorf("%s = %v, want %v", k, got[k], v)
			}
			continue
		}
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
}

func TestMappingValidation(t *testing.T) {
	tests := []struct {
		m    map[string]string
		want []string
	}{
		{map[string]string{"emial": "email"}, []string{`unknown column "emial"`, `did you mean "email"`}},
		{map[string]string{"first_name": " "}, []string{`column "first_name" maps to an empty field name`}},
		{map[string]string{"first_name": "name", "last_name": "name"}, []string{`columns "first_name" and "last_name" both map to field "name"`}},
		{map[string]string{"zzzzzzzz": "x", "qqqqqqqq": "y"}, []string{`unknown column "qqqqqqqq"`, `unknown column "zzzzzzzz"`}},
	}
	for _, tt := range tests {
		_, err := NewMapping(tt.m)
		if err == nil {
			t.Errorf("%v accepted", tt.m)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q lacks %q", err, w)
			}
		}
	}
}
