package recovery

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/opencsgs/helm-csghub/internal/backup"
)

func TestHelmStepStartedReadsTheJournal(t *testing.T) {
	dir := t.TempDir()
	e := &backup.Entry{Path: dir}
	if !helmStepStarted(e) {
		t.Fatal("no journal: must assume the Helm step started (restore is the safe side)")
	}
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, "upgrade-journal.json"), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`[{"step":"backup","status":"done"},{"step":"migrations","status":"started"}]`)
	if helmStepStarted(e) {
		t.Fatal("journal without helm-upgrade taken as started")
	}
	write(`[{"step":"migrations","status":"done"},{"step":"helm-upgrade","status":"started"}]`)
	if !helmStepStarted(e) {
		t.Fatal("started helm-upgrade not seen")
	}
}
