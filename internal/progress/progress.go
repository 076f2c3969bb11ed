// Package progress shows long work on a terminal: bytes moved with rate and
// elapsed time, refreshed in place. Off a terminal (or with --output json) it
// prints nothing, so scripts see only results.
package progress

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Bytes displays a byte counter until Stop.
type Bytes struct {
	w     io.Writer
	label atomic.Value // string
	n     *atomic.Int64
	start time.Time
	stop  chan struct{}
	done  sync.WaitGroup
	unit  string // "" for bytes; else the name of what is counted
}

// StartBytes shows counter under label on w every interval. w == nil: silent.
func StartBytes(w io.Writer, label string, counter *atomic.Int64) *Bytes {
	return start(w, label, "", counter)
}

// StartCount displays counter as a number of unit (e.g. "rows") with its rate.
func StartCount(w io.Writer, label, unit string, counter *atomic.Int64) *Bytes {
	return start(w, label, unit, counter)
}

func start(w io.Writer, label, unit string, counter *atomic.Int64) *Bytes {
	b := &Bytes{w: w, n: counter, start: time.Now(), stop: make(chan struct{}), unit: unit}
	b.label.Store(label)
	if w == nil {
		return b
	}
	b.done.Add(1)
	go func() {
		defer b.done.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				b.print("\n")
				return
			case <-t.C:
				b.print("")
			}
		}
	}()
	return b
}

// SetLabel changes what is being counted (e.g. the database being dumped).
func (b *Bytes) SetLabel(s string) { b.label.Store(s) }

func (b *Bytes) print(end string) {
	el := time.Since(b.start)
	n := b.n.Load()
	rate := float64(n) / el.Seconds()
	if b.unit != "" {
		fmt.Fprintf(b.w, "\r\033[K%s: %d %s, %.0f/s, %s%s", b.label.Load(), n, b.unit, rate, el.Round(100*time.Millisecond), end)
		return
	}
	fmt.Fprintf(b.w, "\r\033[K%s: %s, %s/s, %s%s", b.label.Load(), HumanBytes(n), HumanBytes(int64(rate)), el.Round(100*time.Millisecond), end)
}

// Stop ends the display with a final line.
func (b *Bytes) Stop() {
	if b.w == nil {
		return
	}
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	b.done.Wait()
}

// HumanBytes formats n with binary units.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
