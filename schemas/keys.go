package schemas

import (
	"sort"
	"strings"

	"github.com/valyala/fastjson"
)

// KeyPaths lists the key paths a body holds, sorted and without repeats: "eventId",
// "eventDetails.subscription.subscriberEmail", arrays as "[]"
// ("eventDetails.subscription.calendarTags[].tagId"). Rokt confirms no key names for subscriber
// data, so counting these over stored bodies shows what the sender really sends. Bodies the
// decoder would refuse as not JSON give an error.
func KeyPaths(body []byte) ([]string, error) {
	b, _ := stripBOM(body)
	var p fastjson.Parser
	v, err := p.ParseBytes(b)
	if err != nil {
		fixed, changed := dropTrailingCommas(b)
		if !changed {
			return nil, err
		}
		if v, err = p.ParseBytes(fixed); err != nil {
			return nil, err
		}
	}
	seen := map[string]bool{}
	walkKeys(v, "", seen)
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

func walkKeys(v *fastjson.Value, prefix string, seen map[string]bool) {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		o.Visit(func(k []byte, m *fastjson.Value) {
			p := string(k)
			if prefix != "" {
				p = prefix + "." + p
			}
			seen[p] = true
			walkKeys(m, p, seen)
		})
	case fastjson.TypeArray:
		items, _ := v.Array()
		for _, it := range items {
			walkKeys(it, prefix+"[]", seen)
		}
	}
}

// Documented reports whether a key path (as KeyPaths writes it) is one the vendor documents.
func Documented(path string) bool {
	parts := strings.Split(path, ".")
	switch {
	case len(parts) == 1:
		return contains(envelopeKeys, parts[0])
	case parts[0] != "eventDetails":
		return false
	case len(parts) == 2:
		return contains(detailKeys, parts[1])
	case parts[1] == "subscription" && len(parts) == 3:
		return contains(subscriptionKeys, parts[2])
	case parts[1] == "subscription" && parts[2] == "calendarTags[]" && len(parts) == 4:
		return parts[3] == "tagId"
	case parts[1] == "subscriptionEvent" && len(parts) == 3:
		return contains(subscriptionEventKeys, parts[2])
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
