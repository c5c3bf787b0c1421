package schemas

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// The fields the decoder extracts through candidate key paths, because Rokt confirms no key
// names for them. Each is also the name of the column it fills.
const (
	FieldEmail            = "email"
	FieldFirstName        = "first_name"
	FieldLastName         = "last_name"
	FieldPhone            = "phone"
	FieldPostcode         = "postcode"
	FieldCountryCode      = "country_code"
	FieldMarketingConsent = "marketing_consent"
	FieldEventStart       = "event_start"
	FieldEventEnd         = "event_end"
	FieldEventTimezone    = "event_timezone"
)

// FieldPaths maps each extracted field to its candidate key paths. A path is dotted and
// relative to eventDetails ("subscription.subscriberEmail"); the first candidate that holds a
// value (not null, not an empty string) wins. Key names are matched exactly first, then case-insensitively.
type FieldPaths map[string][]string

// DefaultFieldPaths returns the candidates used when a source's configuration names none for
// a field. They come from the keys Rokt's other APIs and its Braze integration use (spec §6.2).
func DefaultFieldPaths() FieldPaths {
	return FieldPaths{
		FieldEmail:            {"subscription.subscriberEmail", "subscription.emailAddress", "subscription.email"},
		FieldFirstName:        {"subscription.firstName", "subscription.subscriberFirstName", "subscription.first_name"},
		FieldLastName:         {"subscription.lastName", "subscription.subscriberLastName", "subscription.last_name"},
		FieldPhone:            {"subscription.phoneNumber", "subscription.phone", "subscription.mobile"},
		FieldPostcode:         {"subscription.postcode", "subscription.zip", "subscription.zipCode", "subscription.postalCode", "subscription.channelFinderZipCode"},
		FieldCountryCode:      {"subscription.countryCode", "subscription.country"},
		FieldMarketingConsent: {"subscription.marketingAllowed", "subscription.optIn1", "subscription.allowPromotionalContent", "subscription.additionalOptIn"},
		FieldEventStart:       {"subscriptionEvent.start", "subscriptionEvent.startDateTime", "subscriptionEvent.startDateTimeUtc", "subscriptionEvent.startDate"},
		FieldEventEnd:         {"subscriptionEvent.end", "subscriptionEvent.endDateTime", "subscriptionEvent.endDateTimeUtc", "subscriptionEvent.endDate"},
		FieldEventTimezone:    {"subscriptionEvent.timezoneIanaId", "subscriptionEvent.timezone", "subscriptionEvent.timeZone", "subscriptionEvent.timeZoneId"},
	}
}

// Merge returns the defaults with every field that p names replaced by p's candidates.
func (p FieldPaths) Merge() FieldPaths {
	out := DefaultFieldPaths()
	for field, paths := range p {
		out[field] = slices.Clone(paths)
	}
	return out
}

// Validate checks that every field is extractable and every path well formed.
func (p FieldPaths) Validate() error {
	known := DefaultFieldPaths()
	fields := make([]string, 0, len(p))
	for f := range p {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		if _, ok := known[f]; !ok {
			names := make([]string, 0, len(known))
			for k := range known {
				names = append(names, k)
			}
			sort.Strings(names)
			return fmt.Errorf("unknown field %q (extractable fields: %s)", f, strings.Join(names, ", "))
		}
		if len(p[f]) == 0 {
			return fmt.Errorf("field %q: at least one candidate path is needed", f)
		}
		for _, path := range p[f] {
			for _, seg := range strings.Split(path, ".") {
				if strings.TrimSpace(seg) == "" {
					return fmt.Errorf("field %q: path %q has an empty segment", f, path)
				}
			}
		}
	}
	return nil
}

// NormalizeEmail trims s and lower-cases its domain, keeping the local part (plus-addressing
// included) as sent. key is the whole address lower-cased, for matching. ok is false when s
// does not look like an address; email is then s trimmed.
func NormalizeEmail(s string) (email, key string, ok bool) {
	s = strings.TrimSpace(s)
	if len(s) >= 7 && strings.EqualFold(s[:7], "mailto:") {
		s = s[7:]
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.ContainsAny(s, " \t\r\n,;<>") {
		return s, strings.ToLower(s), false
	}
	domain := s[at+1:]
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return s, strings.ToLower(s), false
	}
	email = s[:at+1] + strings.ToLower(domain)
	return email, strings.ToLower(email), true
}

// NormalizePostcode trims s, upper-cases it and collapses inner runs of white space to one
// space ("sw1a  1aa " becomes "SW1A 1AA"). A full UK postcode written without its space gets
// it back ("B334TC" becomes "B33 4TC"), so one postcode is one value whichever way it was
// typed; the UK shape (1–2 letters, a digit, an optional letter or digit, then a digit and two
// letters) is no other country's.
func NormalizePostcode(s string) string {
	p := strings.ToUpper(strings.Join(strings.Fields(s), " "))
	// The pattern is 5 to 7 characters long: most postcodes (spaced, 4-digit, ZIP+4) skip it.
	if len(p) >= 5 && len(p) <= 7 && ukPostcodeNoSpace.MatchString(p) {
		p = p[:len(p)-3] + " " + p[len(p)-3:]
	}
	return p
}

var ukPostcodeNoSpace = regexp.MustCompile(`^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$`)

// compiledPaths is FieldPaths split into key segments once, for the decoder's hot path.
type compiledPaths struct {
	byField map[string][][]string
	// extra holds, per documented object ("" for eventDetails, "subscription",
	// "subscriptionEvent"), the lower-cased keys that configured paths name there, so they do
	// not count as unknown.
	extra map[string]map[string]bool
}

func compilePaths(p FieldPaths) compiledPaths {
	c := compiledPaths{byField: map[string][][]string{}, extra: map[string]map[string]bool{}}
	for field, paths := range p {
		for _, path := range paths {
			segs := strings.Split(path, ".")
			c.byField[field] = append(c.byField[field], segs)
			c.markKnown("", segs[0])
			if len(segs) > 1 {
				c.markKnown(segs[0], segs[1])
			}
		}
	}
	return c
}

func (c *compiledPaths) markKnown(object, key string) {
	object = strings.ToLower(object)
	if c.extra[object] == nil {
		c.extra[object] = map[string]bool{}
	}
	c.extra[object][key] = true
	c.extra[object][strings.ToLower(key)] = true
}
