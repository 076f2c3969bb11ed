package upgrade

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"time"
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
	dir    string
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

// attach starts persisting into dir (the backup folder).
func (j *journal) attach(dir string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.dir = dir
	j.flushLocked()
}

func (j *journal) flushLocked() {
	if j.dir == "" {
		return
	}
	data, err := json.MarshalIndent(j.events, "", "  ")
	if err != nil {
		return
	}
	tmp := filepath.Join(j.dir, "."+journalName+".tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return
	}
	_ = os.Rename(tmp, filepath.Join(j.dir, journalName))
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
