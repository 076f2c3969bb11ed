// Package errs defines the typed errors of helm-csghub and the exit code each maps to.
// Commands return these; main maps them to a process exit status, so scripts and
// runbooks can branch on the kind of failure without parsing messages.
package errs

import (
	"context"
	"errors"
	"fmt"
)

// Kind classifies a failure. Its exit code is documented in the README.
type Kind int

const (
	// Failed is an operation that failed for a reason not covered below.
	Failed Kind = iota + 1
	// Usage is bad input: unknown flag or subcommand, malformed value, missing argument.
	Usage
	// NotFound is a release, revision, backup or pod that does not exist.
	NotFound
	// Precondition is a state that forbids the operation: release not deployed, namespace
	// ambiguous, lock held, leftover NetworkPolicy, insufficient permissions, a target chart
	// that does not render with the values, a CRD update that would drop a stored version.
	Precondition
	// RolledBack is an operation that failed and was undone automatically.
	RolledBack
	// NeedsAttention is an operation that failed and could not be fully undone.
	NeedsAttention
	// Interrupted is a run stopped by SIGINT or SIGTERM (after cleaning up).
	Interrupted
)

// ExitCode is the process exit status for a Kind.
func (k Kind) ExitCode() int {
	switch k {
	case Usage:
		return 2
	case NotFound:
		return 3
	case Precondition:
		return 4
	case RolledBack:
		return 5
	case NeedsAttention:
		return 6
	case Interrupted:
		return 130
	default:
		return 1
	}
}

func (k Kind) String() string {
	switch k {
	case Usage:
		return "usage error"
	case NotFound:
		return "not found"
	case Precondition:
		return "precondition failed"
	case RolledBack:
		return "failed and rolled back"
	case NeedsAttention:
		return "failed, needs attention"
	case Interrupted:
		return "interrupted"
	default:
		return "failed"
	}
}

// Error is an error with a Kind. Msg is the single line shown to the operator;
// Err, when set, is the cause kept for errors.Is/As (Msg already includes its text
// when the error was built with a %w verb).
type Error struct {
	Kind Kind
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	if e.Err != nil {
		return e.Err.Error()
	}
	return e.Kind.String()
}

func (e *Error) Unwrap() error { return e.Err }

func newf(k Kind, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &Error{Kind: k, Msg: err.Error(), Err: errors.Unwrap(err)}
}

// Usagef returns a Usage error. %w is honoured.
func Usagef(format string, args ...any) error { return newf(Usage, format, args...) }

// NotFoundf returns a NotFound error.
func NotFoundf(format string, args ...any) error { return newf(NotFound, format, args...) }

// Preconditionf returns a Precondition error.
func Preconditionf(format string, args ...any) error { return newf(Precondition, format, args...) }

// Failedf returns a Failed error.
func Failedf(format string, args ...any) error { return newf(Failed, format, args...) }

// NeedsAttentionf returns a NeedsAttention error.
func NeedsAttentionf(format string, args ...any) error { return newf(NeedsAttention, format, args...) }

// RolledBackf returns a RolledBack error.
func RolledBackf(format string, args ...any) error { return newf(RolledBack, format, args...) }

// Wrap gives err a Kind, keeping its message. A nil err stays nil.
func Wrap(k Kind, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: k, Err: err}
}

// KindOf reports the Kind of err: the outermost typed error wins; a cancelled
// context counts as Interrupted, also inside a plain Failed (an API call
// that Ctrl-C cut short, e.g. `reading pod ...: context canceled`: the run
// did not fail, it was stopped); anything else is Failed.
func KindOf(err error) Kind {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		if e.Kind == Failed && errors.Is(err, context.Canceled) {
			return Interrupted
		}
		return e.Kind
	}
	if errors.Is(err, context.Canceled) {
		return Interrupted
	}
	return Failed
}

// ExitCode is the exit status for err (0 for nil).
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	return KindOf(err).ExitCode()
}
