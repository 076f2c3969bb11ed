package upgrade

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/opencsgs/helm-csghub/internal/backup"
)

// Event is one step transition, emitted as a JSON line with --output json and
// recorded in the journal.
type Event struct {
	Time     time.Time     `json:"time"`
	Step     string        `json:"step"`
	Status   string        `json:"status"` // started, done, skipped, failed, warning
	Detail   string        `json:"detail,omitempty"`
	Duration time.Duration `json:"durationNs,omitempty"`
}

// journal keeps the run's events and, once the backup folder exists, rewrites
// journal.json there after every event (atomically), so even a killed run
// leaves a record beside its backup.
type journal struct {
	mu     sync.Mutex
	events []Event
	into   *backup.Entry // the run's backup, once it exists
	emit   func(Event)
}

const journalName = "upgrade-journal.json"

func (j *journal) add(e Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	j.events = append(j.events, e)
	if j.emit != nil {
		j.emit(e)
	}
	j.flushLocked()
}

// attach starts persisting beside backup e (its folder, or its bucket prefix).
func (j *journal) attach(e *backup.Entry) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.into = e
	j.flushLocked()
}

func (j *journal) flushLocked() {
	if j.into == nil {
		return
	}
	data, err := json.MarshalIndent(j.events, "", "  ")
	if err != nil {
		return
	}
	// bounded: a journal write must not hold the run up on a slow bucket
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = j.into.WriteFile(ctx, journalName, append(data, '\n'))
}

// step runs f as a named step, recording start, end, duration and result.
func (j *journal) step(name string, f func() (string, error)) (time.Duration, error) {
	j.add(Event{Step: name, Status: "started"})
	t0 := time.Now()
	detail, err := f()
	d := time.Since(t0)
	if err != nil {
		j.add(Event{Step: name, Status: "failed", Detail: err.Error(), Duration: d})
		return d, err
	}
	j.add(Event{Step: name, Status: "done", Detail: detail, Duration: d})
	return d, nil
}
