package upgrade

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Masterminds/semver/v3"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/budget"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv/helmenvtest"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/lock"
	"github.com/opencsgs/helm-csghub/internal/migrate"
	"github.com/opencsgs/helm-csghub/internal/netpol"
	"github.com/opencsgs/helm-csghub/internal/plan"
)

// These tests drive upgrade's failure handling with fakes: Helm's
// action.Configuration on the memory storage driver with Helm's fake kube
// client, and client-go's fake clientset for pods, leases and policies.

func readyPod(name string, ready bool) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}}}
}

type undoCase struct {
	r   *run
	u   *Upgrade
	cs  *fake.Clientset
	sum *Summary
	j   *journal
}

// failedUpgrade is the state after a Helm upgrade from chart 1.0.0
// (revision 1) to 2.0.0 (revision 2) whose later step failed, the run
// holding the release lock.
func failedUpgrade(t *testing.T, kc *kubefake.FailingKubeClient, pods ...*corev1.Pod) *undoCase {
	t.Helper()
	if kc == nil {
		kc = helmenvtest.Fake()
	}
	hr := helmenvtest.Memory(t, kc, helmenvtest.Rev(1, "1.0.0", release.StatusSuperseded), helmenvtest.Rev(2, "2.0.0", release.StatusDeployed))
	objs := make([]runtime.Object, 0, len(pods))
	for _, p := range pods {
		objs = append(objs, p)
	}
	cs := fake.NewClientset(objs...)
	entry := &backup.Entry{ID: "1-20260101T000000Z", Path: filepath.Join(t.TempDir(), "1-20260101T000000Z"), Revision: 1, Complete: true,
		Manifest: &backup.Manifest{ID: "1-20260101T000000Z", Revision: 1, DatabaseSkipped: "--skip-db-backup"}}
	first, _ := hr.Helm.Releases.Get("csghub", 1)
	lk, err := lock.Acquire(context.Background(), cs, "ns", "csghub", "upgrade")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lk.Release)
	u := &Upgrade{Release: hr, Kube: &kube.Client{Clientset: cs, Config: &rest.Config{Host: "https://127.0.0.1:1"}},
		Timeout: time.Minute, RollbackTimeout: 2 * time.Second, BackupDir: filepath.Dir(entry.Path)}
	sum := &Summary{From: "1.0.0", To: "2.0.0", FromRevision: 1, Revision: 2, Steps: map[string]time.Duration{}}
	j := &journal{}
	r := &run{Upgrade: u, j: j, sum: sum, lk: lk, entry: entry, p: &plan.Prepared{Resolved: hr, Release: first},
		wait: budget.New("--timeout", u.Timeout)}
	r.wait.Charge(u.Timeout) // the forward run's --timeout is spent: the undo has its own
	return &undoCase{r: r, u: u, cs: cs, sum: sum, j: j}
}

// has reports whether the journal recorded step reaching status.
func (j *journal) has(step, status string) bool {
	for _, e := range j.events {
		if e.Step == step && e.Status == status {
			return true
		}
	}
	return false
}

func (c *undoCase) run(step string, cause error) error {
	_, err := c.r.undo(context.Background(), step, cause)
	return err
}

// lockHeld fails unless the run still holds the release lock: the undo runs
// under it and leaves releasing it to Run.
func (c *undoCase) lockHeld(t *testing.T) {
	t.Helper()
	info, err := lock.Inspect(context.Background(), c.cs, "ns", "csghub")
	if err != nil || info == nil || !strings.HasPrefix(info.Holder, "upgrade ") {
		t.Fatalf("the run's lock is gone after the undo: %+v, %v", info, err)
	}
}

func (c *undoCase) noPolicy(t *testing.T) {
	t.Helper()
	if _, err := c.cs.NetworkingV1().NetworkPolicies("ns").Get(context.Background(), netpol.Name, metav1.GetOptions{}); err == nil {
		t.Fatal("NetworkPolicy left behind")
	}
}

// A failed step is undone: Helm rolls the release back to the revision
// before the upgrade (a new revision with the old chart), pods are Ready
// again, exit 5 and the summary says what was undone.
func TestUndoRollsBackExit5(t *testing.T) {
	c := failedUpgrade(t, nil, readyPod("portal", true))
	err := c.run("verify", errors.New("portal answers 502"))
	if errs.KindOf(err) != errs.RolledBack || errs.ExitCode(err) != 5 {
		t.Fatalf("undo = %v (exit %d), want RolledBack/5", err, errs.ExitCode(err))
	}
	if got := helmenvtest.History(t, c.u.Release); got != "1.0.0 superseded, 2.0.0 superseded, 1.0.0 deployed" {
		t.Fatalf("history after undo: %s", got)
	}
	if !c.sum.RolledBack || c.sum.Revision != 3 || c.sum.Status != "deployed" {
		t.Fatalf("summary %+v", c.sum)
	}
	if len(c.sum.Undone) != 1 || c.sum.Undone[0] != "release rolled back to chart 1.0.0 (revision 3)" {
		t.Fatalf("undone %q", c.sum.Undone)
	}
	if c.sum.Failure != "verify: portal answers 502" || !strings.Contains(err.Error(), "upgrade failed at verify: portal answers 502; rolled back") {
		t.Fatalf("failure %q, error %q", c.sum.Failure, err)
	}
	for _, step := range []string{"rollback", "readiness-after-rollback"} {
		if !c.j.has(step, "done") {
			t.Fatalf("journal lacks %s done: %+v", step, c.j.events)
		}
	}
	c.noPolicy(t)
	c.lockHeld(t)
}

// --no-rollback: nothing is undone, exit 6 with the command that rolls back.
func TestUndoNoRollbackExit6(t *testing.T) {
	c := failedUpgrade(t, nil, readyPod("portal", true))
	c.u.NoRollback = true
	err := c.run("readiness", errors.New("not ready"))
	if errs.ExitCode(err) != 6 {
		t.Fatalf("undo = %v (exit %d), want 6", err, errs.ExitCode(err))
	}
	if got := helmenvtest.History(t, c.u.Release); got != "1.0.0 superseded, 2.0.0 deployed" {
		t.Fatalf("history changed with --no-rollback: %s", got)
	}
	if !strings.Contains(err.Error(), "helm csghub rollback 1 --backup 1-20260101T000000Z") || c.sum.RolledBack || len(c.sum.Undone) != 0 {
		t.Fatalf("error %q summary %+v", err, c.sum)
	}
}

// The Helm rollback itself fails: exit 6, the database NOT restored, the
// current revision named and the one command that finishes.
func TestUndoHelmRollbackFailsExit6(t *testing.T) {
	kc := helmenvtest.Fake()
	kc.UpdateError = errors.New("admission webhook denied")
	c := failedUpgrade(t, kc, readyPod("portal", true))
	err := c.run("readiness", errors.New("not ready"))
	if errs.KindOf(err) != errs.NeedsAttention {
		t.Fatalf("undo = %v, want NeedsAttention", err)
	}
	msg := err.Error()
	for _, want := range []string{"the automatic rollback failed", "admission webhook denied", "the database was NOT restored",
		"the release is at revision 3 (chart 1.0.0, failed)", "finish with: helm csghub rollback 1 -n ns --dir " + c.u.BackupDir + " --skip-db-restore"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("message %q lacks %q", msg, want)
		}
	}
	if c.sum.RolledBack || len(c.sum.Undone) != 0 {
		t.Fatalf("summary claims an undo: %+v", c.sum)
	}
	// the summary's revision is where the release is, not where it was
	if c.sum.FromRevision != 1 || c.sum.Revision != 3 || c.sum.Status != "failed" {
		t.Fatalf("summary says revision %d -> %d (%s), want 1 -> 3 (failed)", c.sum.FromRevision, c.sum.Revision, c.sum.Status)
	}
	if !c.j.has("rollback", "failed") || c.j.has("readiness-after-rollback", "started") {
		t.Fatalf("journal %+v", c.j.events)
	}
	c.noPolicy(t)
}

// The release is gone from storage: the rollback cannot start; exit 6.
func TestUndoReleaseGoneExit6(t *testing.T) {
	c := failedUpgrade(t, nil)
	c.u.Release.Helm = helmenvtest.Memory(t, helmenvtest.Fake()).Helm
	err := c.run("helm-upgrade", errors.New("boom"))
	if errs.ExitCode(err) != 6 || !strings.Contains(err.Error(), "release is at revision unknown") {
		t.Fatalf("undo = %v (exit %d)", err, errs.ExitCode(err))
	}
}

// Rolled back, but the pods do not come back Ready: exit 6, the release
// rollback is reported as undone, not the whole upgrade.
func TestUndoNotReadyAfterRollbackExit6(t *testing.T) {
	// Helm's rollback waits 2s of the 3s --rollback-timeout: readiness
	// gets the 1s left, not 3s more
	kc := helmenvtest.Fake()
	kc.WaitDuration = 2 * time.Second
	c := failedUpgrade(t, kc, readyPod("portal", false))
	c.u.RollbackTimeout = 3 * time.Second
	t0 := time.Now()
	err := c.run("verify", errors.New("boom"))
	if d := time.Since(t0); d > 3600*time.Millisecond {
		t.Fatalf("the undo took %s: its waits must share --rollback-timeout (3s)", d)
	}
	if errs.ExitCode(err) != 6 || !strings.Contains(err.Error(), "readiness after rollback") {
		t.Fatalf("undo = %v (exit %d)", err, errs.ExitCode(err))
	}
	if c.sum.RolledBack || len(c.sum.Undone) != 1 || !strings.HasPrefix(c.sum.Undone[0], "release rolled back") {
		t.Fatalf("summary %+v", c.sum)
	}
	if got := helmenvtest.History(t, c.u.Release); got != "1.0.0 superseded, 2.0.0 superseded, 1.0.0 deployed" {
		t.Fatalf("history: %s", got)
	}
}

// The run's backup cannot be restored (a dump missing): the release is rolled
// back, the database restore reported as failed, exit 6, no NetworkPolicy
// left and readiness not awaited.
func TestUndoRestoreFailsExit6(t *testing.T) {
	c := failedUpgrade(t, nil, readyPod("portal", true))
	c.r.entry.Manifest.DatabaseSkipped = ""
	c.r.entry.Manifest.Databases = []string{"csghub_server"}
	c.r.entry.Manifest.Dumps = []backup.Dump{{Database: "csghub_server", File: backup.File{Name: "csghub_server.sql.gz", Bytes: 10, SHA256: strings.Repeat("0", 64)}}}
	if err := os.MkdirAll(c.r.entry.Path, 0o700); err != nil {
		t.Fatal(err)
	}
	err := c.run("verify", errors.New("boom"))
	// the restore ran under the run's lock: taking its own, it would have
	// met ours ("another operation holds the lock") before reading the backup
	if errs.ExitCode(err) != 6 || !strings.Contains(err.Error(), "database restore: backup 1-20260101T000000Z is corrupt") {
		t.Fatalf("undo = %v (exit %d)", err, errs.ExitCode(err))
	}
	if c.sum.RolledBack || len(c.sum.Undone) != 1 {
		t.Fatalf("summary %+v", c.sum)
	}
	if !c.j.has("restore", "failed") || c.j.has("readiness-after-rollback", "started") {
		t.Fatalf("journal %+v", c.j.events)
	}
	c.noPolicy(t)
}

// A Ctrl-C that caused the failure is named as an interruption; the undo
// still runs to its end (exit 5).
func TestUndoAfterInterruptStillRollsBack(t *testing.T) {
	c := failedUpgrade(t, nil, readyPod("portal", true))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.r.undo(ctx, "readiness", context.Canceled)
	if errs.ExitCode(err) != 5 || !strings.Contains(c.sum.Failure, "interrupted") {
		t.Fatalf("undo after Ctrl-C = %v (exit %d), failure %q", err, errs.ExitCode(err), c.sum.Failure)
	}
}

// Another operation holds the release lock: refused before anything is read
// or changed, exit 4, no summary; the other holder keeps its lock.
func TestRunLockHeldExit4(t *testing.T) {
	hr := helmenvtest.Memory(t, nil)
	cs := fake.NewClientset()
	other, err := lock.Acquire(context.Background(), cs, "ns", "csghub", "restore")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Release()
	u := &Upgrade{Release: hr, Kube: &kube.Client{Clientset: cs}, Plan: plan.Options{Release: hr, Kube: &kube.Client{Clientset: cs}}}
	sum, err := u.Run(context.Background())
	if errs.ExitCode(err) != 4 || sum != nil || !strings.Contains(err.Error(), "another operation holds the lock") {
		t.Fatalf("Run = %+v, %v (exit %d)", sum, err, errs.ExitCode(err))
	}
	info, _ := lock.Inspect(context.Background(), cs, "ns", "csghub")
	if info == nil || !strings.HasPrefix(info.Holder, "restore ") {
		t.Fatalf("the holder's lock was disturbed: %+v", info)
	}
}

// No such release: exit 3, and the lock the run took is released.
func TestRunReleaseNotFoundExit3(t *testing.T) {
	hr := helmenvtest.Memory(t, nil)
	cs := fake.NewClientset()
	u := &Upgrade{Release: hr, Kube: &kube.Client{Clientset: cs}, Plan: plan.Options{Release: hr, Kube: &kube.Client{Clientset: cs}}}
	sum, err := u.Run(context.Background())
	if errs.ExitCode(err) != 3 || sum != nil {
		t.Fatalf("Run = %+v, %v (exit %d), want not found", sum, err, errs.ExitCode(err))
	}
	if info, _ := lock.Inspect(context.Background(), cs, "ns", "csghub"); info != nil {
		t.Fatalf("lock left after a refused run: %+v", info)
	}
}

// The automatic rollback has its own allowance (--rollback-timeout): the
// forward run's --timeout is spent in every case here, yet the undo
// runs; when the Helm rollback's wait uses up --rollback-timeout, the
// readiness after it fails at once naming that flag: exit 6, the release
// rolled back, the lock still the run's.
func TestUndoRollbackTimeoutIsItsOwnBudget(t *testing.T) {
	kc := helmenvtest.Fake()
	kc.WaitDuration = 400 * time.Millisecond
	c := failedUpgrade(t, kc, readyPod("portal", true))
	c.u.RollbackTimeout = 300 * time.Millisecond
	if c.r.wait.Spent() == nil {
		t.Fatal("fixture: the forward budget should be spent")
	}
	err := c.run("readiness", errors.New("not ready"))
	if errs.ExitCode(err) != 6 || !strings.Contains(err.Error(), "readiness after rollback: no time left of --rollback-timeout 300ms") {
		t.Fatalf("undo = %v (exit %d)", err, errs.ExitCode(err))
	}
	if got := helmenvtest.History(t, c.u.Release); got != "1.0.0 superseded, 2.0.0 superseded, 1.0.0 deployed" {
		t.Fatalf("history: %s", got)
	}
	if !c.j.has("rollback", "done") || !c.j.has("readiness-after-rollback", "failed") {
		t.Fatalf("journal %+v", c.j.events)
	}
	c.lockHeld(t)
}

// The forward run's waits share --timeout: once it is spent, readiness
// fails at once naming --timeout, without waiting.
func TestReadinessFailsWhenTimeoutSpent(t *testing.T) {
	c := failedUpgrade(t, nil, readyPod("portal", false))
	c.r.wait = budget.New("--timeout", time.Hour)
	c.r.wait.Charge(time.Hour)
	t0 := time.Now()
	_, err := c.r.readiness(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no time left of --timeout 1h0m0s") || time.Since(t0) > time.Second {
		t.Fatalf("readiness with --timeout spent = %v after %s", err, time.Since(t0))
	}
	c.r.wait = budget.New("--timeout", time.Hour)
	c.r.wait.Charge(time.Hour - 200*time.Millisecond)
	t0 = time.Now()
	if _, err := c.r.readiness(context.Background()); err == nil || c.r.wait.Left() != 0 || time.Since(t0) > time.Second {
		t.Fatalf("readiness with 200ms left = %v after %s, left %s: it must get what is left, no more", err, time.Since(t0), c.r.wait.Left())
	}
}

// postStep is a post-upgrade step that waits waited (as it reports it) for
// what the new version creates, then moves data (not counted).
type postStep struct {
	name   string
	waited time.Duration
	got    *[]time.Duration
}

func (s postStep) Version() *semver.Version                      { return semver.MustParse("2.0.0") }
func (s postStep) Name() string                                  { return s.name }
func (s postStep) Describe(*migrate.Context) migrate.Description { return migrate.Description{} }
func (s postStep) Check(context.Context, *migrate.Context) (bool, string, error) {
	return true, "", nil
}
func (s postStep) Apply(context.Context, *migrate.Context) ([]migrate.Change, error) {
	return nil, nil
}
func (s postStep) AfterUpgrade(_ context.Context, c *migrate.Context) ([]migrate.Change, error) {
	*s.got = append(*s.got, c.Wait)
	c.Waited += s.waited
	return nil, nil
}

// The post-upgrade steps' waits share --timeout with the others: each gets
// what is left and what it waited is counted; once it is spent, the next
// step fails naming --timeout (the upgrade stays: attention, exit 6).
func TestPostUpgradeWaitsShareTimeout(t *testing.T) {
	c := failedUpgrade(t, nil)
	var got []time.Duration
	c.r.p.Migrate = &migrate.Context{}
	c.r.p.Migrations = []migrate.Migration{postStep{"a", 4 * time.Minute, &got}, postStep{"b", 6 * time.Minute, &got}, postStep{"c", 0, &got}}
	c.r.wait = budget.New("--timeout", 10*time.Minute)
	c.r.afterUpgrade(context.Background())
	if len(got) != 2 || got[0] != 10*time.Minute || got[1] != 6*time.Minute {
		t.Fatalf("the steps were given %v, want [10m 6m] (c not run)", got)
	}
	if len(c.r.attention) != 1 || !strings.Contains(c.r.attention[0], "v2.0.0 c: no time left of --timeout 10m0s") {
		t.Fatalf("attention %q", c.r.attention)
	}
}
