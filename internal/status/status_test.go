package status

import (
	"strings"
	"testing"
	"time"

	"github.com/opencsgs/helm-csghub/internal/lock"
)

func TestTodo(t *testing.T) {
	r := &Report{Release: "csghub", Namespace: "csghub", Revision: 3, Status: "pending-upgrade"}
	if got := todo(r, true, 2, ""); !strings.Contains(got, "helm rollback csghub 2 -n csghub") {
		t.Fatalf("pending without a lease: %q", got)
	}
	r.Lease = &lock.Info{Holder: "upgrade h pid 1", Renewed: time.Now(), Mark: &lock.Mark{Operation: "upgrade", Step: "helm-upgrade", Revision: 3, From: 2, Backup: "2-x"}}
	if got := todo(r, true, 2, ""); !strings.Contains(got, "killed `helm csghub upgrade`") || !strings.Contains(got, "helm csghub rollback") {
		t.Fatalf("pending from a killed run: %q", got)
	}
	r.Lease.Alive = true
	if got := todo(r, true, 2, ""); !strings.Contains(got, "wait for it") {
		t.Fatalf("pending while a run holds the lock: %q", got)
	}
	r.Lease.Alive = false
	if got := todo(r, false, 3, ""); !strings.Contains(got, "leftover lock") {
		t.Fatalf("leftover lease: %q", got)
	}
	// a killed rollback (issue 27 item 2): the command its mark names
	r.Status = "pending-rollback"
	r.Lease.Mark = &lock.Mark{Operation: "rollback", Step: "rollback", Revision: 3, From: 2, To: 1, Backup: "1-x", Command: "helm csghub rollback -n csghub --dir /b"}
	if got := todo(r, true, 2, ""); !strings.Contains(got, "killed `helm csghub rollback`") || !strings.Contains(got, "run `helm csghub rollback -n csghub --dir /b` to roll back to revision 1 and restore its backup 1-x") {
		t.Fatalf("pending from a killed rollback: %q", got)
	}
	// killed while restoring: not pending, the restore command
	r.Status = "deployed"
	r.Lease.Mark = &lock.Mark{Operation: "restore", Step: lock.StepRestore, Backup: "1-x", Command: "helm csghub restore --backup 1-x -n csghub"}
	if got := todo(r, false, 3, ""); !strings.Contains(got, "half restored") || !strings.Contains(got, "run `helm csghub restore --backup 1-x -n csghub`") {
		t.Fatalf("killed restore: %q", got)
	}
	// a killed migrate (issue 27 item 2): its command, and what it cannot say
	r.Lease.Mark = &lock.Mark{Operation: "migrate", Step: lock.StepMigrate, Command: "helm csghub migrate --version 2.0.0 -n csghub",
		Note: "with the killed run's --set flags"}
	if got := todo(r, false, 3, ""); got != "a killed `helm csghub migrate` (upgrade h pid 1) stopped at migrate: the migrations may be half applied; "+
		"run `helm csghub migrate --version 2.0.0 -n csghub` to finish them (each checks what is already applied) with the killed run's --set flags" {
		t.Fatalf("killed migrate: %q", got)
	}
	// ... whatever else the release is: the killed run's command first
	if got := todo(r, false, 3, "revision 3 is failed"); !strings.Contains(got, "helm csghub migrate --version 2.0.0") {
		t.Fatalf("killed migrate on a failed release: %q", got)
	}
	// an upgrade killed before its Helm step: the same upgrade again, while
	// the release is still where it came from
	r.Lease.Mark = &lock.Mark{Operation: "upgrade", Step: lock.StepUpgrade, From: 3, Revision: 3, Command: "helm csghub upgrade --version 2.4.0 -n csghub"}
	if got := todo(r, false, 3, ""); !strings.Contains(got, "stopped before its Helm step: the release is unchanged at revision 3") ||
		!strings.Contains(got, "run `helm csghub upgrade --version 2.4.0 -n csghub` to upgrade again") {
		t.Fatalf("upgrade killed before its Helm step: %q", got)
	}
	r.Lease.Mark.From = 2 // the release moved on since: the mark explains nothing
	if got := todo(r, false, 3, ""); !strings.Contains(got, "leftover lock") {
		t.Fatalf("obsolete upgrade mark: %q", got)
	}
	r.Lease.Mark = &lock.Mark{Operation: "dataflow-logs import", Step: lock.StepImport, Backup: "1-x", Command: "helm csghub dataflow-logs import --backup 1-x -n csghub"}
	if got := todo(r, false, 3, ""); !strings.Contains(got, "partly imported; run `helm csghub dataflow-logs import --backup 1-x -n csghub` to finish") {
		t.Fatalf("killed import: %q", got)
	}
	// a pending mark whose revision is no longer pending explains nothing
	r.Lease.Mark = &lock.Mark{Operation: "upgrade", Step: "helm-upgrade", Revision: 3, From: 2, Command: "helm csghub rollback"}
	if got := todo(r, false, 3, ""); !strings.Contains(got, "leftover lock") {
		t.Fatalf("obsolete mark: %q", got)
	}
	r.Lease = nil
	if got := todo(r, false, 3, ""); got != "" {
		t.Fatalf("nothing to do: %q", got)
	}
}
