package schemas

// Flag marks one irregularity the decoder tolerated. Flags are stored with every event (the
// flags column) so analysts and operators can find bodies that needed help.
type Flag uint32

// The documented flags, in the order they are listed in the flags column.
const (
	// FlagBOM: the body started with a UTF-8 byte order mark, which was stripped.
	FlagBOM Flag = 1 << iota
	// FlagLenientJSON: the body parsed only after commas before } or ] were removed.
	FlagLenientJSON
	// FlagUnknownType: eventType is not one of the documented types; only the envelope was
	// decoded.
	FlagUnknownType
	// FlagTypeAlias: eventType was a known misspelling or mis-cased form, normalised.
	FlagTypeAlias
	// FlagTypeDrift: a value had another JSON type than documented (a number where a string
	// is expected, say) and was converted.
	FlagTypeDrift
	// FlagMissingRequired: a member the vendor marks "always present" was missing or null.
	FlagMissingRequired
	// FlagShapeMismatch: an object the event type requires was missing or not an object
	// (for example a SubscriptionEventRemoved without its subscription).
	FlagShapeMismatch
	// FlagNoSubscriptionRef: a non-Test event carried no calendarSubscriptionId anywhere.
	FlagNoSubscriptionRef
	// FlagUnknownKey: the body had keys the vendor does not document and no FieldPaths name.
	FlagUnknownKey
	// FlagNullValue: a member that is not an envelope key was null.
	FlagNullValue
	// FlagInvalidTime: a date-time value could not be parsed; its column is null.
	FlagInvalidTime
	// FlagInvalidEmail: an email value was found but does not look like an address.
	FlagInvalidEmail
	// FlagInvalidUTF8: a string was not valid UTF-8; bad bytes became U+FFFD in its column
	// (the raw body keeps them).
	FlagInvalidUTF8
	// FlagKeyCase: a documented key matched only when compared case-insensitively.
	FlagKeyCase
	// FlagIDConflict: eventDetails and the subscription object name different subscriptions;
	// the eventDetails one is used.
	FlagIDConflict

	flagEnd
)

var flagNames = [...]string{
	"bom", "lenient_json", "unknown_type", "type_alias", "type_drift", "missing_required",
	"shape_mismatch", "no_subscription_ref", "unknown_key", "null_value", "invalid_time",
	"invalid_email", "invalid_utf8", "key_case", "id_conflict",
}

// Flags is a set of Flag values.
type Flags uint32

// Has reports whether f contains flag.
func (f Flags) Has(flag Flag) bool { return uint32(f)&uint32(flag) != 0 }

// Set adds flag to f.
func (f *Flags) Set(flag Flag) { *f |= Flags(flag) }

// String returns the flag's name as stored in the flags column.
func (f Flag) String() string {
	for i := range flagNames {
		if Flag(1)<<i == f {
			return flagNames[i]
		}
	}
	return "unknown_flag"
}

// Names lists the flags in documented order; nil when there are none.
func (f Flags) Names() []string {
	if f == 0 {
		return nil
	}
	out := make([]string, 0, 4)
	for i := range flagNames {
		if f.Has(Flag(1) << i) {
			out = append(out, flagNames[i])
		}
	}
	return out
}

// FlagNames returns every documented flag name in order.
func FlagNames() []string { return append([]string(nil), flagNames[:]...) }

// ParseFlags is the inverse of Flags.Names; unknown names are ignored.
func ParseFlags(names []string) Flags {
	var f Flags
	for _, n := range names {
		for i := range flagNames {
			if flagNames[i] == n {
				f.Set(Flag(1) << i)
			}
		}
	}
	return f
}
