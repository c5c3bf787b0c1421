package schemas

import "bytes"

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// stripBOM removes a leading UTF-8 byte order mark.
func stripBOM(b []byte) ([]byte, bool) {
	if bytes.HasPrefix(b, utf8BOM) {
		return b[len(utf8BOM):], true
	}
	return b, false
}

// dropTrailingCommas returns b without the commas that sit directly (whitespace aside) before
// a closing } or ], outside string literals. It reports whether anything was removed; when
// nothing was, b itself is returned.
func dropTrailingCommas(b []byte) ([]byte, bool) {
	var out []byte
	inString, escaped := false, false
	last := 0 // start of the part of b not yet copied to out
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case ',':
			j := i + 1
			for j < len(b) && isSpace(b[j]) {
				j++
			}
			if j < len(b) && (b[j] == '}' || b[j] == ']') {
				if out == nil {
					out = make([]byte, 0, len(b))
				}
				out = append(out, b[last:i]...)
				last = i + 1
			}
		}
	}
	if out == nil {
		return b, false
	}
	return append(out, b[last:]...), true
}

// looksTruncated reports whether b ends inside a string or with brackets left open: the
// marks of a body cut short in transit, which a redelivery can repair.
func looksTruncated(b []byte) bool {
	// Only a body that starts as JSON does can have been cut short; anything else (binary,
	// a form post) is simply not JSON.
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' && t[0] != '[' {
		return false
	}
	depth := 0
	inString, escaped := false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		}
	}
	return inString || depth > 0
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
