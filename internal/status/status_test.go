package status

import (
	"strings"
	"testing"
	"time"

	"github.com/opencsgs/helm-csghub/internal/lock"
)

func TestTodo(t *testing.T) {
	r := &Report{Release: "csghub", Namespace: "csghub", Revision: 3, Status: "pending-upgrade"}
	if got := todo(r, true, 2); !strings.Contains(got, "helm rollback csghub 2 -n csghub") {
		t.Fatalf("pending without a lease: %q", got)
	}
	r.Lease = &lock.Info{Holder: "upgrade h pid 1", Renewed: time.Now(), Mark: &lock.Mark{Operation: "upgrade", Revision: 3, From: 2, Backup: "2-x"}}
	if got := todo(r, true, 2); !strings.Contains(got, "killed `helm csghub upgrade`") || !strings.Contains(got, "helm csghub rollback") {
		t.Fatalf("pending from a killed run: %q", got)
	}
	r.Lease.Alive = true
	if got := todo(r, true, 2); !strings.Contains(got, "wait for it") {
		t.Fatalf("pending while a run holds the lock: %q", got)
	}
	r.Lease.Alive = false
	if got := todo(r, false, 3); !strings.Contains(got, "leftover lock") {
		t.Fatalf("leftover lease: %q", got)
	}
	r.Lease = nil
	if got := todo(r, false, 3); got != "" {
		t.Fatalf("nothing to do: %q", got)
	}
}
