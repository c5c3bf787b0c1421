package schemas

import "time"

// Rejection is a request body the receiver refused with a 4xx answer. It is kept in the
// store's rejected table for inspection, because nothing a sender transmits is thrown away.
type Rejection struct {
	Source     string
	ReceivedAt time.Time
	// Status is the HTTP status the sender got.
	Status int
	// Reason is the refusal rule: a decoder Rule, or a receiver reason such as too_large.
	Reason string
	// Detail says what exactly was wrong.
	Detail string
	// EventID is the envelope's eventId when the body got that far.
	EventID     string
	ContentType string
	UserAgent   string
	RemoteAddr  string
	// BodySize is the full size of the body; Body may be cut at the source's size limit.
	BodySize int64
	Body     []byte
}
