// Package steplog is the one shape of the step lines operations print for
// people: a printf-style function that may be nil (silent, as with -o json),
// and the rule that keeps a message on one line.
package steplog

import "strings"

// Func receives one human-readable line per step; nil discards them.
type Func func(format string, args ...any)

// Printf calls f when it is set: operations log without checking for nil.
func (f Func) Printf(format string, args ...any) {
	if f != nil {
		f(format, args...)
	}
}

// OneLine keeps a message to one line: its first line, trimmed, with "(…)"
// when more lines followed (a server error may span many).
func OneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i]) + " (…)"
	}
	return s
}
