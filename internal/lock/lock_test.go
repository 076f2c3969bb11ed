package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/opencsgs/helm-csghub/internal/errs"
)

func TestDeadLocalHolder(t *testing.T) {
	host, _ := os.Hostname()
	if deadLocalHolder(fmt.Sprintf("upgrade %s pid %d", host, os.Getpid())) {
		t.Fatal("this live process taken for dead")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if !deadLocalHolder(fmt.Sprintf("restore %s pid %d", host, cmd.Process.Pid)) {
		t.Fatal("an exited process not recognised as dead")
	}
	if deadLocalHolder(fmt.Sprintf("upgrade other-host pid %d", cmd.Process.Pid)) {
		t.Fatal("a holder on another machine judged dead")
	}
	if deadLocalHolder("garbage") {
		t.Fatal("unparsable holder judged dead")
	}
}

// A killed run's mark survives a takeover by a run that does not recover
// (KeepInherited puts the lease back as found), and is cleared by one that
// does (SetMark nil).
func TestMarkIsInheritedAndKept(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	holder := fmt.Sprintf("upgrade %s pid %d", host, dead.Process.Pid)
	mark := &Mark{Operation: "upgrade", Step: "helm-upgrade", Revision: 3, From: 2, Backup: "2-20260101T000000Z"}
	secs := int32(30)
	now := metav1.NewMicroTime(time.Now())
	_, err := cs.CoordinationV1().Leases("ns").Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: Name("csghub"), Namespace: "ns", Annotations: mark.annotations()},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &now},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := Inspect(ctx, cs, "ns", "csghub")
	if err != nil || info.Alive || info.Mark == nil || *info.Mark != *mark {
		t.Fatalf("inspect: %+v %v", info, err)
	}
	l, err := Acquire(ctx, cs, "ns", "csghub", "upgrade")
	if err != nil || l.Inherited == nil || *l.Inherited != *mark || l.Stale == "" {
		t.Fatalf("acquire: %+v %v", l, err)
	}
	l.KeepInherited()
	l.Release()
	if info, _ := Inspect(ctx, cs, "ns", "csghub"); info == nil || info.Holder != holder || info.Mark == nil {
		t.Fatalf("the killed run's lease was not put back: %+v", info)
	}
	l, err = Acquire(ctx, cs, "ns", "csghub", "rollback")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetMark(ctx, nil); err != nil {
		t.Fatal(err)
	}
	l.Release()
	if info, _ := Inspect(ctx, cs, "ns", "csghub"); info != nil {
		t.Fatalf("lease left after the recovery: %+v", info)
	}
}

// The renewal updates the lease too: a SetMark that meets its write (a
// conflict) is retried on the lease as it is now, not failed (an upgrade
// would roll back for it).
func TestSetMarkRetriesAConflict(t *testing.T) {
	cs := fake.NewClientset()
	l, err := Acquire(context.Background(), cs, "ns", "csghub", "upgrade")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	conflicts := 2
	cs.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts == 0 {
			return false, nil, nil
		}
		conflicts--
		return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, Name("csghub"), errors.New("the object has been modified"))
	})
	if err := l.SetMark(context.Background(), &Mark{Operation: "upgrade", Step: "helm-upgrade", Revision: 2, From: 1}); err != nil {
		t.Fatalf("SetMark after a conflict: %v", err)
	}
	info, _ := Inspect(context.Background(), cs, "ns", "csghub")
	if info == nil || info.Mark == nil || info.Mark.Revision != 2 {
		t.Fatalf("mark not written: %+v", info)
	}
}

// Issue 27 item 7: an inherited Helm-step mark whose revision is no longer
// pending is forgotten (Release deletes the lease); one still pending, or a
// restore's mark, is kept.
func TestForgetObsolete(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		mark    Mark
		pending bool
		kept    bool
	}{
		{"pending revision recovered by other means", Mark{Operation: "upgrade", Step: "helm-upgrade", Revision: 3, From: 2}, false, false},
		{"still pending", Mark{Operation: "upgrade", Step: "helm-upgrade", Revision: 3, From: 2}, true, true},
		{"killed restore", Mark{Operation: "restore", Step: StepRestore, Backup: "b"}, false, true},
	} {
		cs := fake.NewClientset()
		holder, secs := "upgrade elsewhere pid 1", int32(30)
		then := metav1.NewMicroTime(time.Now().Add(-time.Hour))
		if _, err := cs.CoordinationV1().Leases("ns").Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: Name("csghub"), Namespace: "ns", Annotations: c.mark.annotations()},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &then}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		l, err := Take(ctx, cs, "ns", "csghub", "rollback", nil)
		if err != nil {
			t.Fatal(err)
		}
		l.ForgetObsolete(func(rev int) bool { return c.pending && rev == 3 })
		l.Release()
		info, _ := Inspect(ctx, cs, "ns", "csghub")
		if kept := info != nil && info.Mark != nil && *info.Mark == c.mark; kept != c.kept {
			t.Errorf("%s: lease after the run %+v, want kept=%v", c.name, info, c.kept)
		}
	}
}

// Issue 27 item 2: a killed migrate's or import's mark (with its note) is
// kept by a run that does other work and forgotten by one that did the
// same work again to its end.
func TestForgetFinished(t *testing.T) {
	ctx := context.Background()
	migrate := Mark{Operation: "migrate", Step: StepMigrate, Command: "helm csghub migrate --version 2.0.0 -n ns", Note: "with the --set flags"}
	for _, c := range []struct {
		name   string
		mark   Mark
		finish string
		kept   bool
	}{
		{"migrate run again", migrate, StepMigrate, false},
		{"a restore after a killed migrate", migrate, StepRestore, true},
		{"import run again", Mark{Operation: "dataflow-logs import", Step: StepImport, Backup: "b", Command: "c"}, StepImport, false},
	} {
		cs := fake.NewClientset()
		holder, secs := "migrate elsewhere pid 1", int32(30)
		then := metav1.NewMicroTime(time.Now().Add(-time.Hour))
		if _, err := cs.CoordinationV1().Leases("ns").Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: Name("csghub"), Namespace: "ns", Annotations: c.mark.annotations()},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &then}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		l, err := Take(ctx, cs, "ns", "csghub", "migrate", nil)
		if err != nil || l.Inherited == nil || *l.Inherited != c.mark {
			t.Fatalf("%s: took %+v, %v", c.name, l, err)
		}
		// the run's own mark while it works, then done
		if err := l.SetMark(ctx, &Mark{Operation: "x", Step: StepMigrate, Command: "y"}); err != nil {
			t.Fatal(err)
		}
		l.ForgetFinished(c.finish)
		l.Release()
		info, _ := Inspect(ctx, cs, "ns", "csghub")
		if kept := info != nil && info.Mark != nil && *info.Mark == c.mark && info.Holder == holder; kept != c.kept {
			t.Errorf("%s: lease after the run %+v, want kept=%v", c.name, info, c.kept)
		}
	}
}

// Issue 27 item 6: a run stopped longer than its lease (SIGSTOP) whose lease
// another run took over is told so before its next change; one whose lease
// no one took is renewed and goes on.
func TestHeldAfterBeingStopped(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	l, err := Acquire(ctx, cs, "ns", "csghub", "restore")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if err := l.Held(ctx, "dropping database csghub_server"); err != nil {
		t.Fatalf("fresh lease: %v", err)
	}
	// stopped 40s, no one took it: renewed
	l.renewed = time.Now().Add(-40 * time.Second)
	if err := l.Held(ctx, "dropping database csghub_server"); err != nil {
		t.Fatalf("stale lease still ours: %v", err)
	}
	// stopped 40s, another restore took it over
	l.renewed = time.Now().Add(-40 * time.Second)
	cur, _ := cs.CoordinationV1().Leases("ns").Get(ctx, Name("csghub"), metav1.GetOptions{})
	other := "restore elsewhere pid 2"
	cur.Spec.HolderIdentity = &other
	if _, err := cs.CoordinationV1().Leases("ns").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = l.Held(ctx, "dropping database csghub_server")
	if err == nil || !strings.Contains(err.Error(), "lost the lock") || !strings.Contains(err.Error(), "restore elsewhere pid 2") ||
		!strings.Contains(err.Error(), "stopped before dropping database csghub_server") {
		t.Fatalf("Held after a takeover = %v", err)
	}
}

// A user who may not create the Lease gets a precondition (exit 4) naming
// the permission, as for pods/exec, not a plain failure.
func TestAcquireForbiddenIsPrecondition(t *testing.T) {
	cs := fake.NewClientset()
	cs.PrependReactor("create", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, "", errors.New("RBAC"))
	})
	_, err := Acquire(context.Background(), cs, "ns", "csghub", "backup")
	if errs.ExitCode(err) != 4 || !strings.Contains(err.Error(), "not allowed to take the release lock") {
		t.Fatalf("Acquire = %v (exit %d)", err, errs.ExitCode(err))
	}
}

// HELM_CSGHUB_LEASE_SECONDS sets the lease's duration (written on the lease,
// so a takeover waits what the holder chose); anything but 3 to 3600 whole
// seconds is a usage error, and the duration stays as it was.
func TestFromEnv(t *testing.T) {
	defer func(d time.Duration) { Duration = d }(Duration)
	for _, bad := range []string{"2", "3601", "5s", "-1", "x"} {
		t.Setenv(EnvLeaseSeconds, bad)
		if err := FromEnv(); errs.ExitCode(err) != 2 || !strings.Contains(err.Error(), EnvLeaseSeconds) || Duration != 30*time.Second {
			t.Fatalf("%q: %v (exit %d), duration %s", bad, err, errs.ExitCode(err), Duration)
		}
	}
	t.Setenv(EnvLeaseSeconds, "5")
	if err := FromEnv(); err != nil || Duration != 5*time.Second {
		t.Fatalf("5: %v, duration %s", err, Duration)
	}
	l, err := Acquire(context.Background(), fake.NewClientset(), "ns", "csghub", "restore")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	lease, _ := l.cs.CoordinationV1().Leases("ns").Get(context.Background(), Name("csghub"), metav1.GetOptions{})
	if *lease.Spec.LeaseDurationSeconds != 5 {
		t.Fatalf("lease duration %d s, want 5", *lease.Spec.LeaseDurationSeconds)
	}
}
