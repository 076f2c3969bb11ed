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

// OneLine keeps a message to one line without losing any of it: its lines
// (a server error may span many, and the plugin's advice often follows
// them), trimmed, empty ones dropped, joined with " | ".
func OneLine(s string) string {
	var parts []string
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			parts = append(parts, line)
		}
	}
	return strings.Join(parts, " | ")
}
