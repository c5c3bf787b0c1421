package plugins

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

// Two plugins writing lines in pieces, as go-plugin forwards them, never interleave mid-line.
func TestOutputKeepsLinesWhole(t *testing.T) {
	var buf bytes.Buffer
	out := NewOutput(&buf)
	long := strings.Repeat("x", 5000)
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &lineWriter{out: out}
			for i := 0; i < 200; i++ {
				line := []byte(name + long + name + "\n")
				for len(line) > 0 { // in the 1 KiB pieces go-plugin sends
					n := min(len(line), 1024)
					w.Write(line[:n])
					line = line[n:]
				}
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 400 {
		t.Fatalf("%d lines, want 400", len(lines))
	}
	for i, l := range lines {
		if l != "a"+long+"a" && l != "b"+long+"b" {
			t.Fatalf("line %d is mixed: %.20s…%.20s", i, l, l[len(l)-20:])
		}
	}
}
