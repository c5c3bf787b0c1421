package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestProgressBar: off a terminal a bar writes only its final line, once; on a terminal it
// redraws in place with \r and ends the line once.
func TestProgressBar(t *testing.T) {
	var pipe syncBuffer
	bar := newProgressBar(&pipe, "importing x")
	for _, n := range []int{0, 10, 50, 99, 100} {
		bar.update(n, 100)
		time.Sleep(110 * time.Millisecond) // past the redraw interval
	}
	bar.update(100, 100) // commands end with the final state again
	if out := pipe.String(); strings.Contains(out, "\r") || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "importing x [") || !strings.Contains(out, "100/100") {
		t.Errorf("off a terminal the bar wrote %q, want one final line", out)
	}

	var tty syncBuffer
	bar = &progressBar{w: &tty, tty: true, label: "importing y", start: time.Now()}
	bar.update(10, 100)
	time.Sleep(110 * time.Millisecond)
	bar.update(100, 100)
	bar.update(100, 100)
	if out := tty.String(); strings.Count(out, "\r") != 2 || strings.Count(out, "\n") != 1 || strings.Count(out, "100/100") != 1 {
		t.Errorf("on a terminal the bar wrote %q, want two redraws and one final line", out)
	}
}

// TestElapsedLineOnATerminal: on a terminal the elapsed time is redrawn every second.
func TestElapsedLineOnATerminal(t *testing.T) {
	var tty syncBuffer
	stop := elapsedLineOn(&tty, true, "writing c.parquet")
	time.Sleep(1100 * time.Millisecond)
	stop()
	if out := tty.String(); !strings.HasPrefix(out, "\rwriting c.parquet … 1s") || strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Errorf("on a terminal the elapsed line was %q", out)
	}
}

// TestIsTerminal: a pipe and a buffer are not terminals.
func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) || isTerminal(&syncBuffer{}) {
		t.Error("a pipe or a buffer taken for a terminal")
	}
}
