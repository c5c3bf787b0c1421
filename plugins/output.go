package plugins

import (
	"bytes"
	"io"
	"sync"
)

// Output is where the plugins' standard output goes (a jsonl sink writing to "-"): whole
// lines, one plugin's at a time, so two plugins, or a line longer than the pieces go-plugin
// forwards, never interleave mid-line. A write error (a closed pipe) drops the line instead
// of stopping the forwarding. Lines a sink wrote count as delivered once written to the
// plugin's own standard output, before they reach this one.
type Output struct {
	mu sync.Mutex
	w  io.Writer
}

// NewOutput returns an Output writing to w.
func NewOutput(w io.Writer) *Output { return &Output{w: w} }

// writeLines writes whole lines in one write, so no other plugin's come between them.
func (o *Output) writeLines(lines []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.w.Write(lines) // nowhere to report a failed write: the plugin wrote its lines already
}

// lineWriter gathers one plugin process's output into lines for an Output. go-plugin calls
// Write from one goroutine per process.
type lineWriter struct {
	out *Output
	buf []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	if end := bytes.LastIndexByte(l.buf, '\n') + 1; end > 0 {
		l.out.writeLines(l.buf[:end])
		l.buf = append(l.buf[:0], l.buf[end:]...)
	}
	return len(p), nil
}
