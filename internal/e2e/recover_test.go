package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opencsgs/helm-csghub/internal/testenv"
)

// pendingRevision lists the revisions Helm's storage holds as pending-* ("": none).
func pendingRevision(e *testenv.Env) string {
	l, err := e.C.Clientset.CoreV1().Secrets(e.Namespace).List(context.Background(), metav1.ListOptions{LabelSelector: "owner=helm,status in (pending-upgrade,pending-rollback,pending-install)"})
	if err != nil || len(l.Items) == 0 {
		return ""
	}
	var revs []string
	for _, s := range l.Items {
		revs = append(revs, s.Labels["version"])
	}
	sort.Strings(revs)
	return strings.Join(revs, ",")
}

// revisionStatus is the status Helm's storage holds for revision rev.
func revisionStatus(t *testing.T, e *testenv.Env, rev string) string {
	t.Helper()
	l, err := e.C.Clientset.CoreV1().Secrets(e.Namespace).List(context.Background(), metav1.ListOptions{LabelSelector: "owner=helm,version=" + rev})
	if err != nil || len(l.Items) != 1 {
		t.Fatalf("revision %s: %v (%d records)", rev, err, len(l.Items))
	}
	return l.Items[0].Labels["status"]
}

// A plugin run SIGKILLed inside its Helm upgrade step leaves the release
// pending-upgrade. status says so and shows the dead run's lease; upgrade
// without --recover refuses (and keeps the evidence); `helm csghub rollback`
// rolls back to the revision the run came from and restores the run's
// backup. A pending release that no plugin run left is still refused.
func TestRecoverKilledUpgrade(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("2.0.0")
	e.LoadSampleData()
	want := testenv.TakeSnapshot(t, e.PG)
	dir := t.TempDir()
	p := e.StartPlugin("upgrade", "--version", "2.0.1", "--yes", "--dir", dir, "--timeout", "10m")
	testenv.Eventually(t, 3*time.Minute, "revision 2 pending-upgrade", func() bool { return pendingRevision(e) == "2" })
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	p.Wait(t, 30*time.Second)
	if pendingRevision(e) != "2" {
		t.Fatal("the Helm step ended before the kill: release not pending")
	}
	e.Exec("csghub_server", "CREATE TABLE written_by_the_new_version (x int)") // what 2.0.1 might have written

	st := e.Plugin("status")
	if st.Code != 0 || !strings.Contains(st.Stdout, "pending-upgrade") || !strings.Contains(st.Stdout, "LEFT BY A STOPPED RUN") ||
		!strings.Contains(st.Stdout, "helm csghub rollback") {
		t.Fatalf("status of the pending release: exit %d:\n%s%s", st.Code, st.Stdout, st.Stderr)
	}
	up := e.Plugin("upgrade", "--version", "2.0.1", "--yes", "--dir", dir)
	if up.Code != 4 || errorLines(up.Stderr) != 1 || !strings.Contains(up.Stderr, "--recover") {
		t.Fatalf("upgrade of the pending release without --recover: exit %d: %s", up.Code, up.Stderr)
	}
	rb := e.Plugin("rollback", "--yes", "--dir", dir, "--timeout", "2m")
	if rb.Code != 0 || !strings.Contains(rb.Stdout, "RECOVERED:") || !strings.Contains(rb.Stdout, "rolled back to revision 1") ||
		!strings.Contains(rb.Stdout, "databases restored from the run's backup") {
		t.Fatalf("rollback of the killed run: exit %d:\n%s%s", rb.Code, rb.Stdout, rb.Stderr)
	}
	s := parseStatus(t, e.Plugin("status", "-o", "json"))
	if s.Status != "deployed" || s.ChartVersion != "2.0.0" || s.Revision != 3 {
		t.Fatalf("after the recovery: %+v", s)
	}
	testenv.RequireEqual(t, want, testenv.TakeSnapshot(t, e.PG), "database after the recovery")
	if st := revisionStatus(t, e, "2"); st != "failed" {
		t.Fatalf("the killed run's revision 2 is %s after the recovery, want failed", st)
	}
	assertNoNetworkPolicy(t, e)
	if _, err := e.C.Clientset.CoordinationV1().Leases(e.Namespace).Get(context.Background(), "helm-csghub-csghub", metav1.GetOptions{}); err == nil {
		t.Fatal("the lease is left after the recovery")
	}

	// plain helm killed in its upgrade: pending, but not the plugin's
	cmd := pluginlessHelm(e, "upgrade", e.Release, "csghub/csghub", "--version", "2.0.1", "-n", e.Namespace, "--reuse-values", "--wait", "--timeout", "10m")
	testenv.Eventually(t, 3*time.Minute, "revision 4 pending-upgrade", func() bool { return pendingRevision(e) == "4" })
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	before := testenv.TakeSnapshot(t, e.PG)
	rb = e.Plugin("rollback", "--yes", "--dir", dir)
	if rb.Code != 4 || !oneLineError(rb.Stderr) || !strings.Contains(rb.Stderr, "no killed helm csghub run left it") {
		t.Fatalf("rollback of a release plain helm left pending: exit %d: %s", rb.Code, rb.Stderr)
	}
	up = e.Plugin("upgrade", "--version", "2.0.1", "--yes", "--dir", dir, "--recover")
	if up.Code != 4 || errorLines(up.Stderr) != 1 || !strings.Contains(up.Stderr, "no killed helm csghub run left it") {
		t.Fatalf("upgrade --recover of a release plain helm left pending: exit %d: %s", up.Code, up.Stderr)
	}
	if pendingRevision(e) != "4" {
		t.Fatal("the refused commands changed the pending release")
	}
	testenv.RequireEqual(t, before, testenv.TakeSnapshot(t, e.PG), "database after the refused recoveries")
	if st := e.Plugin("status"); !strings.Contains(st.Stdout, "no helm csghub run holds or left the lock") {
		t.Fatalf("status of a release plain helm left pending:\n%s", st.Stdout)
	}
	e.MustHelm("rollback", e.Release, "3", "-n", e.Namespace)
}

// pluginlessHelm starts the helm CLI itself in the background.
func pluginlessHelm(e *testenv.Env, args ...string) *exec.Cmd {
	e.T.Helper()
	cmd := exec.Command(e.Helm, args...)
	cmd.Dir = e.C.Root
	cmd.Env = append(os.Environ(), e.HelmEnv()...)
	if err := cmd.Start(); err != nil {
		e.T.Fatal(err)
	}
	e.T.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd
}

// stuckHook makes the 2.2.0+ pre-upgrade hook Job never finish: the harness
// that plays it (devenv.PlayDataflowMigrations) fails on a `_migrations`
// without the ledger's columns, so its pod keeps its scheduling gate and
// Helm waits for the hook until its timeout.
func stuckHook(e *testenv.Env) {
	e.Exec("csghub_dataflow", "CREATE VIEW _migrations AS SELECT 1 AS x")
}

// printedCommand is the command a TO DO line of status names (between the
// backquotes after "run "), as argv for helm (without "helm").
func printedCommand(t *testing.T, todo string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(todo, "run `")
	cmd, _, ok2 := strings.Cut(rest, "`")
	if !ok || !ok2 || !strings.HasPrefix(cmd, "helm csghub ") {
		t.Fatalf("status names no command: %q", todo)
	}
	return strings.Fields(cmd)[1:]
}

// Issue 27 item 1: 2.4.0 renames the init Jobs (csghub-casdoor ->
// csghub-casdoor-migrate). With its pre-upgrade hook stuck, the upgrade from
// 2.0.0 fails and its automatic rollback must delete 2.0.0's finished Jobs
// (not in the failed revision's manifest, so Helm would patch the live ones:
// "field is immutable"): exit 5, the summary naming the revisions as they
// are. Then the same upgrade SIGKILLed in its Helm step: the command status
// prints recovers it, through the same clearing against the pending
// revision's manifest.
func TestRollbackAcrossRenamedJobs(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("2.0.0")
	e.LoadSampleData()
	stuckHook(e)
	waitJobsFinished(t, e)
	want := testenv.TakeSnapshot(t, e.PG)
	dir := t.TempDir()
	r := e.Plugin("upgrade", "--version", "2.4.0", "--yes", "--dir", dir, "--timeout", "20s", "-o", "json")
	sum, events := lastSummary(t, r.Stdout)
	if r.Code != 5 || !sum.RolledBack || sum.FromRevision != 1 || sum.Revision != 3 || sum.Status != "deployed" {
		var failed []string
		for _, ev := range events {
			if ev.Status == "failed" {
				failed = append(failed, ev.Step+": "+ev.Detail)
			}
		}
		t.Fatalf("upgrade with a stuck hook: exit %d (want 5), revision %d -> %d (%s), want 1 -> 3 (deployed)\n%s\n%s",
			r.Code, sum.FromRevision, sum.Revision, sum.Status, strings.Join(failed, "\n"), r.Stderr)
	}
	wantDeployed(t, e, "2.0.0", 3, "after the automatic rollback")
	testenv.RequireEqual(t, want, testenv.TakeSnapshot(t, e.PG), "database after the automatic rollback")
	waitJobsFinished(t, e) // recreated by the rollback: 2.0.0's again

	p := e.StartPlugin("upgrade", "--version", "2.4.0", "--yes", "--dir", dir, "--timeout", "10m")
	testenv.Eventually(t, 3*time.Minute, "revision 4 pending-upgrade", func() bool { return pendingRevision(e) == "4" })
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	p.Wait(t, 30*time.Second)
	st := parseTodo(t, e)
	rb := e.RunHelm(nil, append(printedCommand(t, st), "--yes", "--timeout", "2m")...)
	if rb.Code != 0 || !strings.Contains(rb.Stdout, "RECOVERED:") {
		t.Fatalf("the command status printed (%s): exit %d\n%s%s", st, rb.Code, rb.Stdout, rb.Stderr)
	}
	wantDeployed(t, e, "2.0.0", 5, "after the recovery")
	if pendingRevision(e) != "" || revisionStatus(t, e, "4") != "failed" {
		t.Fatalf("after the recovery: pending %q, revision 4 %s", pendingRevision(e), revisionStatus(t, e, "4"))
	}
	testenv.RequireEqual(t, want, testenv.TakeSnapshot(t, e.PG), "database after the recovery")
	assertNoNetworkPolicy(t, e)
	assertNoLease(t, e)
}

// parseTodo is status's TO DO line.
func parseTodo(t *testing.T, e *testenv.Env) string {
	t.Helper()
	var s struct {
		Todo string `json:"todo"`
	}
	r := e.Plugin("status", "-o", "json")
	if err := json.Unmarshal([]byte(r.Stdout), &s); err != nil || s.Todo == "" {
		t.Fatalf("status: exit %d, no TO DO (%v)\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	return s.Todo
}

func assertNoLease(t *testing.T, e *testenv.Env) {
	t.Helper()
	if l, err := e.C.Clientset.CoordinationV1().Leases(e.Namespace).Get(context.Background(), "helm-csghub-"+e.Release, metav1.GetOptions{}); err == nil {
		t.Fatalf("lease left: %v %v", *l.Spec.HolderIdentity, l.Annotations)
	}
}
