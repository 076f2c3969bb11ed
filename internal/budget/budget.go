// Package budget shares one time allowance (a --timeout) among the waits of a
// run: each wait gets what the earlier ones left, so `--timeout 10m` bounds
// the run's waiting to 10 minutes, not 10 minutes per wait. Only the waits
// are counted; data transfer between them (a backup, a restore) is not, as it
// shows its progress and stops on Ctrl-C.
package budget

import (
	"fmt"
	"time"
)

// Budget is one allowance. The zero value has nothing to spend.
type Budget struct {
	flag  string
	total time.Duration
	used  time.Duration
	now   func() time.Time
}

// New is an allowance of total, set by flag (named in the error when spent).
func New(flag string, total time.Duration) *Budget {
	return &Budget{flag: flag, total: total, now: time.Now}
}

// Left is what the waits so far have not used.
func (b *Budget) Left() time.Duration {
	if b.used >= b.total {
		return 0
	}
	return b.total - b.used
}

// Charge counts d as spent (a wait the step measured itself).
func (b *Budget) Charge(d time.Duration) {
	if d > 0 {
		b.used += d
	}
}

// Spent is a *SpentError when nothing is left, else nil.
func (b *Budget) Spent() error {
	if b.Left() <= 0 {
		return &SpentError{Flag: b.flag, Total: b.total}
	}
	return nil
}

// Wait runs f, a wait bounded by what is left, and counts the time it took.
// When nothing is left f is not run: the step fails at once with a
// *SpentError naming the flag.
func (b *Budget) Wait(f func(left time.Duration) error) error {
	if err := b.Spent(); err != nil {
		return err
	}
	left := b.Left()
	t0 := b.now()
	err := f(left)
	b.Charge(b.now().Sub(t0))
	return err
}

// SpentError is a wait that could not start: the allowance is used up.
type SpentError struct {
	Flag  string
	Total time.Duration
}

func (e *SpentError) Error() string {
	return fmt.Sprintf("no time left of %s %s: the earlier waits of this run used it all (give a longer %s)", e.Flag, e.Total, e.Flag)
}
