package parallel

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestForEachBoundsConcurrencyAndStopsOnError(t *testing.T) {
	var running, peak atomic.Int32
	items := make([]int, 20)
	err := ForEach(context.Background(), 3, items, func(ctx context.Context, _ int) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		running.Add(-1)
		return nil
	})
	if err != nil || peak.Load() > 3 || peak.Load() < 2 {
		t.Fatalf("err %v, peak %d (want 2..3)", err, peak.Load())
	}
	var calls atomic.Int32
	boom := errors.New("boom")
	err = ForEach(context.Background(), 1, items, func(ctx context.Context, i int) error {
		calls.Add(1)
		return boom
	})
	if !errors.Is(err, boom) || calls.Load() != 1 {
		t.Fatalf("err %v after %d calls; want boom after 1", err, calls.Load())
	}
}
