package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/opencsgs/helm-csghub/internal/errs"
)

// maxAnswer bounds what the prompt reads: an answer is "y" or "yes"; an
// input that never ends a line (/dev/zero, a stuck pipe) must not grow memory.
const maxAnswer = 64

// confirm asks before a change that overwrites data. With --yes it proceeds; on
// a terminal it asks; otherwise (scripts, CI, /dev/null) it refuses, so nothing
// destructive happens without an explicit yes. Ctrl-C or SIGTERM at the prompt
// ends the run at once (exit 130) with nothing changed.
func (a *App) confirm(ctx context.Context, yes bool, what string) error {
	if yes {
		return nil
	}
	f, ok := a.Stdin.(*os.File)
	if !ok || !isTerminal(f) {
		return errs.Usagef("%s: not asking on a non-interactive input; pass --yes to confirm", what)
	}
	fmt.Fprintf(a.Stderr, "%s\nProceed? [y/N] ", what)
	answer := make(chan string, 1)
	// the read cannot be cancelled; the process exits with the goroutine in it
	go func() { answer <- readAnswer(f) }()
	select {
	case <-ctx.Done():
		fmt.Fprintln(a.Stderr)
		return errs.Wrap(errs.Interrupted, errors.New("interrupted at the confirmation prompt, nothing changed"))
	case line := <-answer:
		if s := strings.ToLower(strings.TrimSpace(line)); s == "y" || s == "yes" {
			return nil
		}
		return errs.Usagef("not confirmed, nothing changed")
	}
}

// readAnswer reads one line of at most maxAnswer bytes, one byte at a time so
// nothing after the line is consumed; a longer line is no answer.
func readAnswer(r io.Reader) string {
	var b []byte
	one := make([]byte, 1)
	for len(b) <= maxAnswer {
		n, err := r.Read(one)
		if n == 1 {
			if one[0] == '\n' {
				return string(b)
			}
			b = append(b, one[0])
		}
		if err != nil {
			return string(b)
		}
	}
	return "" // too long: not an answer
}

// isTerminal reports whether f is a terminal (isatty), not merely a
// character device such as /dev/null or /dev/zero.
func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
