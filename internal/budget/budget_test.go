package budget

import (
	"errors"
	"testing"
	"time"
)

// clock is a fake time source each wait advances by what it "waited".
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func fake(total time.Duration) (*Budget, *clock) {
	c := &clock{t: time.Unix(0, 0)}
	b := New("--timeout", total)
	b.now = c.now
	return b, c
}

// Each wait gets what the earlier ones left; time between waits is free.
func TestWaitsShareOneAllowance(t *testing.T) {
	b, c := fake(10 * time.Minute)
	var got []time.Duration
	wait := func(took time.Duration) func(time.Duration) error {
		return func(left time.Duration) error {
			got = append(got, left)
			c.t = c.t.Add(took)
			return nil
		}
	}
	if err := b.Wait(wait(4 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(time.Hour) // a restore between the waits: not counted
	if err := b.Wait(wait(5 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	b.Charge(30 * time.Second) // a wait measured by the step itself
	if err := b.Wait(wait(0)); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{10 * time.Minute, 6 * time.Minute, 30 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits were given %v, want %v", got, want)
		}
	}
	if b.Left() != 30*time.Second {
		t.Fatalf("left %s, want 30s", b.Left())
	}
}

// Spent: the next wait does not run and fails naming the flag; a wait that
// overran (it returned late) leaves nothing, not a negative allowance.
func TestSpentAllowanceFailsTheNextWait(t *testing.T) {
	b, c := fake(time.Minute)
	err := b.Wait(func(time.Duration) error {
		c.t = c.t.Add(2 * time.Minute)
		return errors.New("timed out")
	})
	if err == nil || err.Error() != "timed out" {
		t.Fatalf("the wait's own error is lost: %v", err)
	}
	if b.Left() != 0 {
		t.Fatalf("left %s after an overrun, want 0", b.Left())
	}
	ran := false
	err = b.Wait(func(time.Duration) error { ran = true; return nil })
	var se *SpentError
	if ran || !errors.As(err, &se) || err.Error() != "no time left of --timeout 1m0s: the earlier waits of this run used it all (give a longer --timeout)" {
		t.Fatalf("wait after the allowance was spent: ran %v, err %v", ran, err)
	}
	if z := (&Budget{}); z.Wait(func(time.Duration) error { return nil }) == nil {
		t.Fatal("a zero Budget let a wait run")
	}
}
