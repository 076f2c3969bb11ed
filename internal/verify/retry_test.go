package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"
)

// flaky fails its first n runs with err, then passes.
func flaky(n int, err error) (func(context.Context) (string, error), *int) {
	calls := 0
	return func(context.Context) (string, error) {
		calls++
		if calls <= n {
			return "", err
		}
		return "answered", nil
	}, &calls
}

// Issue 27 item 12: a connection-level failure (EOF through a port-forward,
// refused, reset) is tried again within the check's time and, once it
// answers, the check passed and says after how many attempts; a check that
// keeps failing is a real failure; a wrong answer is not retried.
func TestRunCheckRetriesConnectionFailures(t *testing.T) {
	defer func(p time.Duration) { retryPause = p }(retryPause)
	retryPause = 10 * time.Millisecond
	v := &Verify{Timeout: 2 * time.Second}
	eof := fmt.Errorf("GET / on csghub-portal (pod p:80) through port-forward: %w", io.EOF)
	for _, cause := range []error{eof, syscall.ECONNREFUSED, errors.New("dial tcp 127.0.0.1:1: connect: connection reset by peer"),
		errors.New("no ready endpoint of service csghub-redis (1 endpoint(s))")} {
		run, calls := flaky(2, cause)
		var c Check
		v.runCheck(context.Background(), &c, run)
		if c.Status != Passed || *calls != 3 || c.Attempts != 3 || !strings.Contains(c.Detail, "passed after 3 attempts") {
			t.Errorf("%v: %+v after %d calls, want passed after 3 attempts", cause, c, *calls)
		}
	}
	// still refused when the time is up: failed, saying so
	v.Timeout = 200 * time.Millisecond
	run, calls := flaky(1000, syscall.ECONNREFUSED)
	var c Check
	t0 := time.Now()
	v.runCheck(context.Background(), &c, run)
	if c.Status != Failed || *calls < 2 || !strings.Contains(c.Detail, "connection refused") || !strings.Contains(c.Detail, "attempts") || time.Since(t0) > time.Second {
		t.Errorf("a component that keeps refusing: %+v after %d calls in %s", c, *calls, time.Since(t0))
	}
	// Retry (an upgrade: what --timeout leaves) stretches the window
	v.Retry = 600 * time.Millisecond
	run, calls = flaky(1000, syscall.ECONNREFUSED)
	c = Check{}
	t0 = time.Now()
	v.runCheck(context.Background(), &c, run)
	if d := time.Since(t0); c.Status != Failed || d < 500*time.Millisecond || d > 1500*time.Millisecond {
		t.Errorf("with Retry 600ms: %+v in %s", c, d)
	}
	// a wrong answer is a failure at once
	v.Retry = 0
	run, calls = flaky(1000, errors.New("portal answers 502"))
	c = Check{}
	v.runCheck(context.Background(), &c, run)
	if c.Status != Failed || *calls != 1 || c.Attempts != 1 {
		t.Errorf("a wrong answer: %+v after %d calls, want one", c, *calls)
	}
}

// A connection that hangs (KWOK's port-forward does not pass on that the far
// end closed) is given up after its attempt's share of the timeout and tried
// anew, not waited on for the whole window: the check passes after 2
// attempts, well within its timeout.
func TestRunCheckRetriesAHungAttempt(t *testing.T) {
	defer func(p, m time.Duration) { retryPause, minAttempt = p, m }(retryPause, minAttempt)
	retryPause, minAttempt = 10*time.Millisecond, 10*time.Millisecond
	v := &Verify{Timeout: 600 * time.Millisecond} // 200 ms an attempt
	calls := 0
	run := func(ctx context.Context) (string, error) {
		if calls++; calls == 1 {
			<-ctx.Done()
			return "", fmt.Errorf("GET / through port-forward: %w", ctx.Err())
		}
		return "answered", nil
	}
	var c Check
	t0 := time.Now()
	v.runCheck(context.Background(), &c, run)
	if d := time.Since(t0); c.Status != Passed || c.Attempts != 2 || !strings.Contains(c.Detail, "passed after 2 attempts") ||
		!strings.Contains(c.Detail, "no answer within 200ms") || d < 200*time.Millisecond || d > 500*time.Millisecond {
		t.Fatalf("%+v in %s, want passed after 2 attempts in about 200ms", c, d)
	}
	// hanging every time: failed when the window is spent, saying why
	calls = -1000
	c = Check{}
	v.runCheck(context.Background(), &c, func(ctx context.Context) (string, error) { <-ctx.Done(); return "", ctx.Err() })
	if c.Status != Failed || c.Attempts < 2 || !strings.Contains(c.Detail, "attempts") {
		t.Fatalf("always hung: %+v", c)
	}
	if v.Timeout = time.Minute; v.attemptTimeout() != 10*time.Second {
		t.Fatalf("attempt of a 1m check: %s, want the 10s cap", v.attemptTimeout())
	}
}
