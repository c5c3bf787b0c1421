package schemas

import (
	"strings"
	"time"
)

// ParseTime parses the date-times Rokt Calendar sends: "YYYY-MM-DD HH:MM:SS" with a space or
// "T", 0 to 9 fractional digits, and an optional "Z" or numeric offset; a bare date is
// accepted too. zoned reports whether the value carried a zone; a zone-less value is returned
// as a wall-clock reading in time.UTC and the caller decides what it means (see the spec:
// zone-less is UTC only when the key ends in "Utc"); a zoned value keeps its offset.
func ParseTime(s string) (t time.Time, zoned bool, ok bool) {
	s = strings.TrimSpace(s)
	if len(s) == 10 {
		t, err := time.Parse(time.DateOnly, s)
		return t, false, err == nil
	}
	if len(s) < 19 {
		return time.Time{}, false, false
	}
	if s[10] == 'T' || s[10] == 't' {
		s = s[:10] + " " + s[11:]
	}
	// Find where the zone starts: after the seconds and an optional fraction.
	i := 19
	if i < len(s) && (s[i] == '.' || s[i] == ',') {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	zone := strings.TrimSpace(s[i:])
	base := s[:i]
	var layout string
	switch {
	case zone == "":
		layout = "2006-01-02 15:04:05"
	case zone == "Z" || zone == "z":
		zone, layout = "Z", "2006-01-02 15:04:05Z07:00"
	case len(zone) == 6 && zone[3] == ':':
		layout = "2006-01-02 15:04:05-07:00"
	case len(zone) == 5:
		layout = "2006-01-02 15:04:05-0700"
	case len(zone) == 3:
		layout = "2006-01-02 15:04:05-07"
	case strings.EqualFold(zone, "UTC"):
		zone, layout = "Z", "2006-01-02 15:04:05Z07:00"
	default:
		return time.Time{}, false, false
	}
	t, err := time.Parse(layout, base+zone)
	if err != nil {
		return time.Time{}, false, false
	}
	return t, zone != "", true
}
