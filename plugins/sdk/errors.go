package sdk

import (
	"errors"
	"fmt"
	"time"
)

// SinkDownError says the destination as a whole cannot take requests now.
type SinkDownError struct {
	// Err is what the destination or the sink's client said.
	Err error
	// RetryAfter is how long the destination asked to wait (0: exponential back-off).
	RetryAfter time.Duration
	// Pause stops the sink until an operator resumes it.
	Pause bool
	// StatusCode is the destination's HTTP status, if any.
	StatusCode int
}

// Error says the sink is down and why.
func (e *SinkDownError) Error() string {
	if e.Pause {
		return fmt.Sprintf("sink paused: %v", e.Err)
	}
	return fmt.Sprintf("sink unavailable: %v", e.Err)
}

// Unwrap returns Err.
func (e *SinkDownError) Unwrap() error { return e.Err }

// SinkDown reports a destination-wide failure; wait is how long to back off (0: the host
// decides). status is the destination's HTTP status, if any.
func SinkDown(err error, wait time.Duration, status int) error {
	return &SinkDownError{Err: err, RetryAfter: wait, StatusCode: status}
}

// Pause stops the sink until `hookbridge sinks resume NAME`.
func Pause(err error, status int) error {
	return &SinkDownError{Err: err, Pause: true, StatusCode: status}
}

// BatchRejectedError says the destination refused the whole request without naming rows.
type BatchRejectedError struct {
	// Reason is what the destination said.
	Reason string
	// StatusCode is the destination's HTTP status, if any.
	StatusCode int
}

// Error gives the destination's reason.
func (e *BatchRejectedError) Error() string { return "batch rejected: " + e.Reason }

// RejectBatch reports that the destination refused the request as a whole; the host splits
// the batch to find the rows at fault.
func RejectBatch(reason string, status int) error {
	return &BatchRejectedError{Reason: reason, StatusCode: status}
}

// AsSinkDown and AsRejected unwrap the typed errors.
func AsSinkDown(err error) (*SinkDownError, bool) {
	var e *SinkDownError
	ok := errors.As(err, &e)
	return e, ok
}

// AsRejected unwraps a BatchRejectedError.
func AsRejected(err error) (*BatchRejectedError, bool) {
	var e *BatchRejectedError
	ok := errors.As(err, &e)
	return e, ok
}
