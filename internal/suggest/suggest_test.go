package suggest

import "testing"

func TestNearest(t *testing.T) {
	known := []string{"trigger", "events", "max_attempts", "Unsubscribe", "Subscribe"}
	for _, tt := range []struct{ name, want string }{
		{"triger", "trigger"},
		{"max_attempt", "max_attempts"},
		{"Unsubscibe", "Unsubscribe"},
		{"SUBSCRIBE", "Subscribe"},
		{"settings", ""}, // more than three edits from everything
		{"", ""},
	} {
		if got := Nearest(tt.name, known); got != tt.want {
			t.Errorf("Nearest(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"flaw", "lawn", 2}} {
		if got := Distance(tt.a, tt.b); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
