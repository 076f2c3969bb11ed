package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/opencsgs/helm-csghub/internal/lock"
	"github.com/opencsgs/helm-csghub/internal/testenv"
)

// waitLease watches the release's lease until cond holds for it (a watch,
// not a poll: a signal test kills the run right after the lease changes).
func waitLease(t *testing.T, e *testenv.Env, timeout time.Duration, what string, cond func(*coordinationv1.Lease) bool) *coordinationv1.Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	leases := e.C.Clientset.CoordinationV1().Leases(e.Namespace)
	sel := fields.OneTermEqualSelector("metadata.name", "helm-csghub-"+e.Release).String()
	for {
		l, err := leases.List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if len(l.Items) == 1 && cond(&l.Items[0]) {
			return &l.Items[0]
		}
		w, err := leases.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: l.ResourceVersion})
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		for ev := range w.ResultChan() {
			if l, ok := ev.Object.(*coordinationv1.Lease); ok && ev.Type != watch.Deleted && cond(l) {
				w.Stop()
				return l
			}
		}
		w.Stop() // the server ended the watch: list again
		if ctx.Err() != nil {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// markStep is the step a lease's mark names ("" when none).
func markStep(l *coordinationv1.Lease) string {
	return l.Annotations["helm-csghub.opencsg.com/step"]
}

// Issue 27 item 2: a `migrate` killed (SIGKILL) during its migrations leaves
// its lease marked; status names the one command that finishes (the same
// migrate again) and the lease's run as stopped; that command finishes the
// CRDs the killed run had half applied and clears the mark: status is clean.
// Then an `upgrade` killed before its Helm step (its backup): status names
// the same upgrade again, which upgrades.
func TestKilledMigrationsFinishedByStatusCommand(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.Bulk("csghub_server", 100000) // the upgrade's backup lasts a second or two
	// v1.16.0 applies the target chart's 49 CRDs (about 5 MB): seconds, while
	// the kill follows the mark by milliseconds
	p := e.StartPlugin("migrate", "--version", "1.16.0")
	waitLease(t, e, 2*time.Minute, "migrate's mark on its lease", func(l *coordinationv1.Lease) bool { return markStep(l) == "migrate" })
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	p.Wait(t, 30*time.Second)
	if strings.Contains(p.Stdout.String(), "envoy-gateway-crds") {
		t.Fatalf("the migrations ended before the kill:\n%s", p.Stdout)
	}

	st := e.Plugin("status")
	if st.Code != 0 || !strings.Contains(st.Stdout, "LEFT BY A STOPPED RUN: migrate") {
		t.Fatalf("status after the killed migrate: exit %d\n%s%s", st.Code, st.Stdout, st.Stderr)
	}
	todo := parseTodo(t, e)
	if want := "a killed `helm csghub migrate`"; !strings.Contains(todo, want) || !strings.Contains(todo, "half applied") {
		t.Fatalf("status TO DO %q, want %q and the migrations half applied", todo, want)
	}
	args := printedCommand(t, todo)
	if got := strings.Join(args, " "); got != "csghub migrate --version 1.16.0 -n "+e.Namespace {
		t.Fatalf("printed command %q", got)
	}
	r := e.RunHelm(nil, args...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "v1.16.0 envoy-gateway-crds") || !strings.Contains(r.Stderr, "took over a stale lock from migrate") {
		t.Fatalf("the command status printed: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, name := range []string{"gateways.gateway.networking.k8s.io", "envoyproxies.gateway.envoyproxy.io"} {
		if !crdEstablished(crd(t, e, name)) {
			t.Errorf("CRD %s not Established after the rerun", name)
		}
	}
	assertNoLease(t, e)
	if s := e.Plugin("status", "-o", "json"); strings.Contains(s.Stdout, `"todo"`) || strings.Contains(s.Stdout, `"lease"`) {
		t.Fatalf("status after the rerun is not clean:\n%s", s.Stdout)
	}

	dir := t.TempDir()
	p = e.StartPlugin("upgrade", "--version", "1.16.0", "--yes", "--dir", dir)
	waitLease(t, e, 2*time.Minute, "the upgrade's mark before its Helm step", func(l *coordinationv1.Lease) bool { return markStep(l) == "before-helm-upgrade" })
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	p.Wait(t, 30*time.Second)
	if pendingRevision(e) != "" {
		t.Fatalf("the Helm step started before the kill: pending %s", pendingRevision(e))
	}
	todo = parseTodo(t, e)
	if want := "stopped before its Helm step: the release is unchanged at revision 1"; !strings.Contains(todo, want) {
		t.Fatalf("status TO DO %q, want %q", todo, want)
	}
	args = printedCommand(t, todo)
	if got := strings.Join(args, " "); got != "csghub upgrade --version 1.16.0 -n "+e.Namespace+" --dir "+dir {
		t.Fatalf("printed command %q", got)
	}
	if r := e.RunHelm(nil, append(args, "--yes")...); r.Code != 0 {
		t.Fatalf("the command status printed: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	wantDeployed(t, e, "1.16.0", 2, "after the upgrade run again")
	assertNoLease(t, e)
	if s := e.Plugin("status", "-o", "json"); strings.Contains(s.Stdout, `"todo"`) || strings.Contains(s.Stdout, `"lease"`) {
		t.Fatalf("status after the upgrade is not clean:\n%s", s.Stdout)
	}
}

// cordon makes every node of the test's cluster unschedulable until the
// returned func (also run at cleanup: the next test gets the cluster): new
// pods stay Pending, so a Helm step waiting for them lasts its timeout.
func cordon(t *testing.T, e *testenv.Env) func() {
	t.Helper()
	set := func(on bool) error {
		nodes, err := e.C.Clientset.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, n := range nodes.Items {
			patch := fmt.Sprintf(`{"spec":{"unschedulable":%v}}`, on)
			if _, err := e.C.Clientset.CoreV1().Nodes().Patch(context.Background(), n.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := set(true); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	undo := func() {
		once.Do(func() {
			if err := set(false); err != nil {
				t.Errorf("uncordoning the nodes: %v", err)
			}
		})
	}
	t.Cleanup(undo)
	return undo
}

// Issue 27 item 2: `helm csghub rollback` SIGKILLed in its Helm step (its
// pods cannot be scheduled, so Helm waits) leaves the release
// pending-rollback; status names the one command that recovers; that command
// rolls back to the killed rollback's own target, restores its backup, marks
// the pending revision failed and leaves status clean.
func TestRollbackKilledInHelmStep(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.LoadSampleData()
	e.Bulk("csghub_server", 1000)
	dir := t.TempDir()
	b := runBackup(t, e, dir)
	want := testenv.TakeSnapshot(t, e.PG)
	// revision 2: another server pod template, so rolling back needs a new pod
	e.MustHelm("upgrade", e.Release, "csghub/csghub", "--version", "1.15.0", "-n", e.Namespace, "--reuse-values",
		"--set", "server.environments.KILLED_ROLLBACK_TEST=1", "--wait", "--timeout", "2m")
	changeData(t, e)

	uncordon := cordon(t, e)
	p := e.StartPlugin("rollback", "1", "--dir", dir, "--yes", "--timeout", "10m")
	testenv.Eventually(t, 2*time.Minute, "revision 3 pending-rollback", func() bool { return pendingRevision(e) == "3" })
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	p.Wait(t, 30*time.Second)
	if pendingRevision(e) != "3" {
		t.Fatalf("the Helm step ended before the kill: release not pending\n%s", p.Stderr)
	}
	uncordon()

	todo := parseTodo(t, e)
	wantTodo := "revision 3 was left pending-rollback by a killed `helm csghub rollback`"
	if !strings.Contains(todo, wantTodo) || !strings.Contains(todo, "to roll back to revision 1 and restore its backup "+b.Manifest.ID) {
		t.Fatalf("status TO DO %q, want %q ... revision 1 ... backup %s", todo, wantTodo, b.Manifest.ID)
	}
	args := printedCommand(t, todo)
	r := e.RunHelm(nil, append(args, "--yes", "--timeout", "2m")...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "RECOVERED:") || !strings.Contains(r.Stdout, "databases restored from the run's backup "+b.Manifest.ID) {
		t.Fatalf("the command status printed (%v): exit %d\n%s%s", args, r.Code, r.Stdout, r.Stderr)
	}
	wantDeployed(t, e, "1.15.0", 4, "after the recovery")
	if pendingRevision(e) != "" || revisionStatus(t, e, "3") != "failed" {
		t.Fatalf("after the recovery: pending %q, revision 3 %s", pendingRevision(e), revisionStatus(t, e, "3"))
	}
	got := testenv.TakeSnapshot(t, e.PG)
	delete(got, "database created_after_backup") // kept and reported, not dropped
	testenv.RequireEqual(t, want, got, "database after the recovery")
	assertNoNetworkPolicy(t, e)
	assertNoLease(t, e)
	if s := e.Plugin("status", "-o", "json"); strings.Contains(s.Stdout, `"todo"`) || strings.Contains(s.Stdout, `"lease"`) {
		t.Fatalf("status after the recovery is not clean:\n%s", s.Stdout)
	}
}

// Issue 27 item 6: a restore stopped (SIGSTOP) while it streams a dump into
// its copy loses its lease (3 s here, HELM_CSGHUB_LEASE_SECONDS; 30 s by
// default); a second restore takes the lease over and finishes; the first,
// resumed (SIGCONT), stops before its next change (the copies it would drop
// may be the second's) and exits 6 naming the lost lock, in one line. The
// databases are the backup's, nothing is left behind, status is clean.
func TestRestoreStoppedLosesItsLease(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.LoadSampleData()
	e.Bulk("csghub_server", 200000)
	dir := t.TempDir()
	b := runBackup(t, e, dir)
	want := testenv.TakeSnapshot(t, e.PG)
	changeData(t, e)

	short := []string{"HELM_CSGHUB_LEASE_SECONDS=3"}
	first := e.StartPluginWith(short, "restore", "--backup", b.Manifest.ID, "--dir", dir, "--yes")
	waitCopying(t, e, "csghub_server__restore", 60*time.Second)
	if err := first.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Cmd.Process.Signal(syscall.SIGCONT) })
	testenv.Eventually(t, 15*time.Second, "the stopped restore's lease to expire", func() bool {
		info, err := lock.Inspect(context.Background(), e.C.Clientset, e.Namespace, e.Release)
		return err == nil && info != nil && !info.Alive
	})

	second := e.RunHelm(short, "csghub", "restore", "--backup", b.Manifest.ID, "--dir", dir, "--yes")
	if second.Code != 0 || !strings.Contains(second.Stderr, "took over a stale lock from restore") {
		t.Fatalf("the second restore: exit %d\n%s", second.Code, second.Stderr)
	}
	if err := first.Cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	code := first.Wait(t, 60*time.Second)
	if code != 6 || errorLines(first.Stderr.String()) != 1 || !strings.Contains(first.Stderr.String(), "lost the lock on release") ||
		!strings.Contains(first.Stderr.String(), "stopped before") {
		t.Fatalf("the resumed first restore: exit %d (want 6, one line naming the lost lock)\n%s", code, first.Stderr)
	}
	got := testenv.TakeSnapshot(t, e.PG)
	delete(got, "database created_after_backup") // kept and reported, not dropped
	testenv.RequireEqual(t, want, got, "database after both restores")
	assertNoNetworkPolicy(t, e)
	for _, suffix := range []string{"__restore", "__old"} {
		if left := databasesEndingWith(t, e, suffix); len(left) != 0 {
			t.Fatalf("left behind: %v", left)
		}
	}
	assertNoLease(t, e)
	if s := e.Plugin("status", "-o", "json"); strings.Contains(s.Stdout, `"todo"`) || strings.Contains(s.Stdout, `"lease"`) {
		t.Fatalf("status after both restores is not clean:\n%s", s.Stdout)
	}
}
