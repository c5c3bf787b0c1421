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

func (o *Output) writeLine(line []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.w.Write(line) // nowhere to report a failed write: the plugin wrote its line already
}

// lineWriter gathers one plugin process's output into lines for an Output. go-plugin calls
// Write from one goroutine per process.
type lineWriter struct {
	out *Output
	buf []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	start := 0
	for {
		i := bytes.IndexByte(l.buf[start:], '\n')
		if i < 0 {
			break
		}
		l.out.writeLine(l.buf[start : start+i+1])
		start += i + 1
	}
	l.buf = append(l.buf[:0], l.buf[start:]...)
	return len(p), nil
}
