package rollback

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	helmkube "helm.sh/helm/v3/pkg/kube"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/release"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv/helmenvtest"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/lock"
	"github.com/opencsgs/helm-csghub/internal/netpol"
)

// The release is stored as Helm stores it (Secrets of its default storage
// driver) in client-go's fake clientset, the same one the plugin's own client
// sees; Helm's kube client is its fake. A refused rollback may read but must
// make no write: the clientset records every action.

type fixture struct {
	cs  *fake.Clientset
	kc  *kubefake.FailingKubeClient
	rb  *Rollback
	dir string
}

// unreachable is Helm's fake kube client with a cluster that does not answer.
type unreachable struct{ *kubefake.FailingKubeClient }

func (unreachable) IsReachable() error { return errors.New("kubernetes cluster unreachable") }

var rel = helmenvtest.Rev

// newFixture stores revs as Helm would, in the cluster the rollback sees.
func newFixture(t *testing.T, revs ...*release.Release) *fixture {
	t.Helper()
	cs := fake.NewClientset()
	kc := helmenvtest.Fake()
	hr := helmenvtest.Secrets(t, cs.CoreV1().Secrets("ns"), kc, revs...)
	cs.ClearActions()
	dir := t.TempDir()
	return &fixture{cs: cs, kc: kc, dir: dir,
		rb: &Rollback{Release: hr, Kube: &kube.Client{Clientset: cs, Config: &rest.Config{Host: "https://127.0.0.1:1"}}, Dir: dir, Timeout: time.Second}}
}

// writes are the changes made to the cluster (Helm's storage included).
func (f *fixture) writes() []string {
	var out []string
	for _, a := range f.cs.Actions() {
		if v := a.GetVerb(); v != "get" && v != "list" && v != "watch" {
			out = append(out, v+" "+a.GetResource().Resource)
		}
	}
	return out
}

// onlyLock: the only writes were taking the release lock, marking it (for
// the Helm step, in case the run is killed there) and releasing it.
func (f *fixture) onlyLock() bool {
	w := f.writes()
	if len(w) < 2 {
		return false
	}
	for _, x := range w[1 : len(w)-1] {
		if x != "update leases" {
			return false
		}
	}
	return w[0] == "create leases" && w[len(w)-1] == "delete leases"
}

func (f *fixture) history(t *testing.T) string { return helmenvtest.History(t, f.rb.Release) }

// writeBackup puts a backup of revision rev in the catalog; dumps lists
// dump files the manifest names (not written: a cut backup).
func (f *fixture) writeBackup(t *testing.T, rev int, mode os.FileMode, dumps ...string) string {
	t.Helper()
	id := map[int]string{1: "1-20260101T000000Z", 2: "2-20260102T000000Z"}[rev]
	dir := filepath.Join(f.dir, "ns", "csghub", id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	m := &backup.Manifest{FormatVersion: backup.FormatVersion, ID: id, Release: "csghub", Namespace: "ns", Revision: rev,
		Values: writeFile(t, dir, "values.yaml"), AllValues: writeFile(t, dir, "all-values.yaml")}
	for _, d := range dumps {
		m.Databases = append(m.Databases, d)
		m.Dumps = append(m.Dumps, backup.Dump{Database: d, File: backup.File{Name: "db-" + d + ".sql.zst", Bytes: 10, SHA256: strings.Repeat("0", 64)}})
	}
	if len(dumps) == 0 {
		m.DatabaseSkipped = "--skip-db-backup"
	}
	data, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return id
}

func writeFile(t *testing.T, dir, name string) backup.File {
	t.Helper()
	data := []byte("global: {}\n")
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return backup.File{Name: name, Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
}

var twoRevs = func() []*release.Release {
	return []*release.Release{rel(1, "1.0.0", release.StatusSuperseded), rel(2, "2.0.0", release.StatusDeployed)}
}

// Every refusal: the documented exit code, a one-line message, and nothing
// changed (no write to Helm's storage or the cluster, no NetworkPolicy).
func TestRunRefusesAndChangesNothing(t *testing.T) {
	cases := []struct {
		name    string
		revs    []*release.Release
		setup   func(t *testing.T, f *fixture)
		exit    int
		message string
	}{
		{name: "negative revision", revs: twoRevs(), setup: func(t *testing.T, f *fixture) { f.rb.Revision = -1 },
			exit: 2, message: "revision must be a positive number"},
		{name: "release not found", exit: 3, message: `release "csghub" not found in namespace "ns"`},
		{name: "pending release", revs: []*release.Release{rel(1, "1.0.0", release.StatusSuperseded), rel(2, "2.0.0", release.StatusPendingUpgrade)},
			exit: 4, message: `release "csghub" is pending-upgrade`},
		{name: "nothing to roll back to", revs: []*release.Release{rel(1, "1.0.0", release.StatusDeployed)},
			exit: 4, message: "has only revision 1"},
		{name: "current revision", revs: twoRevs(), setup: func(t *testing.T, f *fixture) { f.rb.Revision = 2 },
			exit: 2, message: "revision 2 is the current revision"},
		{name: "revision not found", revs: twoRevs(), setup: func(t *testing.T, f *fixture) { f.rb.Revision = 7 },
			exit: 3, message: "revision 7 not found in the history of \"csghub\" (revisions: 1, 2)"},
		{name: "no backup of the revision", revs: twoRevs(), exit: 4, message: "no backup of revision 1"},
		{name: "only a backup of another revision", revs: twoRevs(), setup: func(t *testing.T, f *fixture) { f.writeBackup(t, 2, 0o700, "csghub_server") },
			exit: 4, message: "no backup of revision 1"},
		{name: "backup without database", revs: twoRevs(), setup: func(t *testing.T, f *fixture) { f.writeBackup(t, 1, 0o700) },
			exit: 4, message: "holds no database dump"},
		{name: "backup cut (dump missing)", revs: twoRevs(), setup: func(t *testing.T, f *fixture) { f.writeBackup(t, 1, 0o700, "csghub_server") },
			exit: 4, message: "backup 1-20260101T000000Z is corrupt: db-csghub_server.sql.zst"},
		{name: "backup readable by others", revs: twoRevs(), setup: func(t *testing.T, f *fixture) { f.writeBackup(t, 1, 0o755, "csghub_server") },
			exit: 4, message: "readable or writable by others"},
		{name: "--backup unknown", revs: twoRevs(), setup: func(t *testing.T, f *fixture) { f.rb.BackupID = "1-20250101T000000Z" },
			exit: 3, message: `backup "1-20250101T000000Z" not found`},
		{name: "--backup incomplete", revs: twoRevs(), setup: func(t *testing.T, f *fixture) {
			id := f.writeBackup(t, 1, 0o700, "csghub_server")
			if err := os.Rename(filepath.Join(f.dir, "ns", "csghub", id), filepath.Join(f.dir, "ns", "csghub", id+".partial")); err != nil {
				t.Fatal(err)
			}
			f.rb.BackupID = id + ".partial"
		}, exit: 4, message: "is not usable: incomplete"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, c.revs...)
			if c.setup != nil {
				c.setup(t, f)
			}
			before := ""
			if len(c.revs) > 0 {
				before = f.history(t)
			}
			res, err := f.rb.Run(context.Background())
			if errs.ExitCode(err) != c.exit || res != nil {
				t.Fatalf("Run = %+v, %v (exit %d), want exit %d", res, err, errs.ExitCode(err), c.exit)
			}
			if !strings.Contains(err.Error(), c.message) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("message %q, want one line with %q", err, c.message)
			}
			if len(c.revs) > 0 && f.history(t) != before {
				t.Fatalf("history changed: %s -> %s", before, f.history(t))
			}
			if w := f.writes(); len(w) != 0 {
				t.Fatalf("a refused rollback wrote: %v", w)
			}
		})
	}
}

// Ctrl-C before anything started: exit 130, nothing changed.
func TestRunInterruptedBeforeStart(t *testing.T) {
	f := newFixture(t, twoRevs()...)
	f.rb.SkipDBRestore = true
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.rb.Run(ctx)
	if errs.ExitCode(err) != 130 || !strings.Contains(err.Error(), "nothing changed") {
		t.Fatalf("Run = %v (exit %d)", err, errs.ExitCode(err))
	}
	if f.history(t) != "1.0.0 superseded, 2.0.0 deployed" || !f.onlyLock() {
		t.Fatalf("changed: %s, writes %v (want only the lock taken and released)", f.history(t), f.writes())
	}
}

// Helm's rollback fails (here: the cluster does not answer its reachability
// check): exit 6, the release unchanged at revision 2, the database not
// restored, and the one command that finishes.
func TestRunHelmRollbackFailsExit6(t *testing.T) {
	f := newFixture(t, twoRevs()...)
	f.rb.Release.Helm.KubeClient = unreachable{f.kc}
	f.rb.SkipDBRestore = true
	f.rb.Dir = ""
	_, err := f.rb.Run(context.Background())
	if errs.ExitCode(err) != 6 {
		t.Fatalf("Run = %v (exit %d), want 6", err, errs.ExitCode(err))
	}
	for _, want := range []string{"helm rollback to revision 1", "the release is unchanged at revision 2 (chart 2.0.0)",
		"no database restore was asked for", "helm csghub rollback 1 -n ns --skip-db-restore"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("message %q lacks %q", err, want)
		}
	}
	if f.history(t) != "1.0.0 superseded, 2.0.0 deployed" || !f.onlyLock() {
		t.Fatalf("changed: %s, writes %v (want only the lock taken and released)", f.history(t), f.writes())
	}
	if _, err := f.cs.NetworkingV1().NetworkPolicies("ns").Get(context.Background(), netpol.Name, metav1.GetOptions{}); err == nil {
		t.Fatal("NetworkPolicy created")
	}
}

// Resolve picks the previous revision and the newest complete backup of it.
func TestResolvePicksPreviousRevisionAndItsBackup(t *testing.T) {
	f := newFixture(t, rel(1, "1.0.0", release.StatusSuperseded), rel(2, "2.0.0", release.StatusSuperseded), rel(3, "2.1.0", release.StatusDeployed))
	f.rb.SkipDBRestore = true
	tg, err := f.rb.Prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tg.Current.Version != 3 || tg.To.Version != 2 || tg.Backup != nil {
		t.Fatalf("target: current %d to %d backup %v", tg.Current.Version, tg.To.Version, tg.Backup)
	}
}

// Issue 27 item 10: without a REVISION the rollback skips a failed previous
// revision (an upgrade that never ran) for the newest that was deployed;
// with none ever deployed it refuses (exit 4) and changes nothing.
func TestResolveSkipsFailedPreviousRevision(t *testing.T) {
	f := newFixture(t, rel(1, "1.0.0", release.StatusSuperseded), rel(2, "2.0.0", release.StatusSuperseded),
		rel(3, "2.4.0", release.StatusFailed), rel(4, "2.0.0", release.StatusDeployed))
	f.rb.SkipDBRestore = true
	tg, err := f.rb.Prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tg.To.Version != 2 {
		t.Fatalf("rollback without REVISION targets %d, want 2 (3 failed)", tg.To.Version)
	}
	f = newFixture(t, rel(1, "1.0.0", release.StatusFailed), rel(2, "1.0.0", release.StatusDeployed))
	f.rb.SkipDBRestore = true
	if _, err := f.rb.Prepare(context.Background()); errs.ExitCode(err) != 4 || !strings.Contains(err.Error(), "no earlier revision was ever deployed") {
		t.Fatalf("only failed before: %v", err)
	}
	if w := f.writes(); len(w) != 0 {
		t.Fatalf("writes: %v", w)
	}
}

// prepared is the target of rolling twoRevs back to revision 1, as the
// caller confirmed it, restoring backup b (nil: --skip-db-restore).
func (f *fixture) prepared(t *testing.T, b *backup.Entry) {
	t.Helper()
	h, err := f.rb.Release.History()
	if err != nil {
		t.Fatal(err)
	}
	f.rb.SkipDBRestore = b == nil
	f.rb.Target = &Target{Current: h[1], To: h[0], Backup: b}
}

// after checks what a rollback that got past Helm leaves: the new revision,
// the lock released, no NetworkPolicy.
func (f *fixture) after(t *testing.T, history string) {
	t.Helper()
	if got := f.history(t); got != history {
		t.Fatalf("history %s, want %s", got, history)
	}
	if info, _ := lock.Inspect(context.Background(), f.cs, "ns", "csghub"); info != nil {
		t.Fatalf("lock left: %+v", info)
	}
	if _, err := f.cs.NetworkingV1().NetworkPolicies("ns").Get(context.Background(), netpol.Name, metav1.GetOptions{}); err == nil {
		t.Fatal("NetworkPolicy left behind")
	}
}

const rolledBack = "1.0.0 superseded, 2.0.0 superseded, 1.0.0 deployed"

// Helm's rollback fails after it wrote the new revision (an update the
// cluster refuses): exit 6, the failed revision and the command named.
func TestRunHelmRollbackFailsMidwayExit6(t *testing.T) {
	f := newFixture(t, twoRevs()...)
	f.kc.UpdateError = errors.New("admission webhook denied")
	f.prepared(t, nil)
	res, err := f.rb.Run(context.Background())
	if errs.ExitCode(err) != 6 || res != nil {
		t.Fatalf("Run = %+v, %v (exit %d), want 6", res, err, errs.ExitCode(err))
	}
	for _, want := range []string{"admission webhook denied", "the release is now at revision 3 (chart 1.0.0, failed)",
		"finish with: helm csghub rollback 1 -n ns --dir " + f.dir + " --skip-db-restore"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("message %q lacks %q", err, want)
		}
	}
	f.after(t, "1.0.0 superseded, 2.0.0 superseded, 1.0.0 failed")
}

// Rolled back, but the restore cannot start (no database pod): its own exit
// code (3), the release at the new revision, nothing left behind.
func TestRunRestoreFailsAfterHelmRollback(t *testing.T) {
	f := newFixture(t, twoRevs()...)
	f.prepared(t, &backup.Entry{ID: "1-20260101T000000Z", Path: t.TempDir(), Revision: 1, Complete: true,
		Manifest: &backup.Manifest{ID: "1-20260101T000000Z", Revision: 1, Databases: []string{"csghub_server"},
			Dumps: []backup.Dump{{Database: "csghub_server"}}}})
	res, err := f.rb.Run(context.Background())
	if errs.ExitCode(err) != 3 || !strings.Contains(err.Error(), "database pod ns/csghub-postgresql-0 not found") {
		t.Fatalf("Run = %v (exit %d)", err, errs.ExitCode(err))
	}
	if res == nil || res.NewRevision != 3 || res.Restore != nil || res.Readiness != nil {
		t.Fatalf("result %+v", res)
	}
	f.after(t, rolledBack)
}

// Ctrl-C during Helm's rollback: Helm finishes, the restore does not start:
// exit 130 naming the command that restores.
func TestRunInterruptedAfterHelmRollback(t *testing.T) {
	f := newFixture(t, twoRevs()...)
	ctx, cancel := context.WithCancel(context.Background())
	f.rb.Release.Helm.KubeClient = cancelOnWait{f.kc, cancel}
	f.prepared(t, &backup.Entry{ID: "1-20260101T000000Z", Path: t.TempDir(), Revision: 1, Complete: true,
		Manifest: &backup.Manifest{ID: "1-20260101T000000Z", Revision: 1, Databases: []string{"csghub_server"},
			Dumps: []backup.Dump{{Database: "csghub_server"}}}})
	_, err := f.rb.Run(ctx)
	if errs.ExitCode(err) != 130 || !strings.Contains(err.Error(), "the database was NOT restored; run `helm csghub restore --backup 1-20260101T000000Z`") {
		t.Fatalf("Run = %v (exit %d)", err, errs.ExitCode(err))
	}
	f.after(t, rolledBack)
}

// cancelOnWait is Ctrl-C while Helm waits for the rolled-back resources.
type cancelOnWait struct {
	*kubefake.FailingKubeClient
	cancel func()
}

func (c cancelOnWait) Wait(r helmkube.ResourceList, d time.Duration) error {
	c.cancel()
	return c.FailingKubeClient.Wait(r, d)
}

// --timeout is one budget: Helm's wait and readiness share it. Pods not
// Ready after Helm's wait used part of it: exit 6, "rolled back but not
// ready", within --timeout (not twice it).
func TestRunNotReadyWithinOneTimeout(t *testing.T) {
	f := newFixture(t, twoRevs()...)
	if _, err := f.cs.CoreV1().Pods("ns").Create(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "portal", Namespace: "ns"},
		Status: corev1.PodStatus{Phase: corev1.PodPending}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.kc.WaitDuration = 2 * time.Second
	f.rb.Timeout = 3 * time.Second
	f.prepared(t, nil)
	t0 := time.Now()
	res, err := f.rb.Run(context.Background())
	if errs.ExitCode(err) != 6 || !strings.Contains(err.Error(), "rolled back to revision 3 but not ready") {
		t.Fatalf("Run = %v (exit %d)", err, errs.ExitCode(err))
	}
	if d := time.Since(t0); d > 3600*time.Millisecond {
		t.Fatalf("took %s: Helm's wait and readiness must share --timeout 3s", d)
	}
	if res == nil || res.NewRevision != 3 || res.Verify != nil {
		t.Fatalf("result %+v", res)
	}
	f.after(t, rolledBack)
	// all of it spent by Helm's wait: readiness fails at once naming --timeout
	f = newFixture(t, twoRevs()...)
	f.kc.WaitDuration = 600 * time.Millisecond
	f.rb.Timeout = 500 * time.Millisecond
	f.prepared(t, nil)
	if _, err := f.rb.Run(context.Background()); errs.ExitCode(err) != 6 || !strings.Contains(err.Error(), "not ready: no time left of --timeout 500ms") {
		t.Fatalf("Run = %v (exit %d)", err, errs.ExitCode(err))
	}
}

// inspectOnWait reads the release lock while Helm waits for the rolled-back
// resources: what a SIGKILL at that moment would leave.
type inspectOnWait struct {
	*kubefake.FailingKubeClient
	cs  *fake.Clientset
	got **lock.Info
}

func (c inspectOnWait) Wait(r helmkube.ResourceList, d time.Duration) error {
	*c.got, _ = lock.Inspect(context.Background(), c.cs, "ns", "csghub")
	return c.FailingKubeClient.Wait(r, d)
}

// Issue 27 item 2: during its Helm step a rollback's lease is marked with
// the revision Helm is writing (pending-rollback if the run is killed), the
// revision it goes to and the one command that recovers; once the rollback
// is done the lease is gone.
func TestRunMarksLeaseDuringHelmStep(t *testing.T) {
	f := newFixture(t, twoRevs()...)
	var got *lock.Info
	f.rb.Release.Helm.KubeClient = inspectOnWait{f.kc, f.cs, &got}
	f.prepared(t, nil)
	// the Helm step is the subject: readiness and verify may fail (no pods here)
	if _, err := f.rb.Run(context.Background()); err != nil && !strings.Contains(err.Error(), "rolled back to revision 3") {
		t.Fatal(err)
	}
	if got == nil || got.Mark == nil {
		t.Fatalf("lease during the Helm step: %+v", got)
	}
	if m := *got.Mark; m.Operation != "rollback" || m.Step != StepHelm || m.Revision != 3 || m.From != 2 || m.Target() != 1 ||
		m.Command != "helm csghub rollback -n ns --dir "+f.dir {
		t.Fatalf("mark during the Helm step: %+v", m)
	}
	f.after(t, rolledBack)
}

// Issue 27 item 7: the lease of a killed upgrade whose revision is no longer
// pending (recovered or finished by other means) is taken over and, once the
// rollback is done, deleted: not put back for status to report for good.
func TestRunClearsObsoleteLeaseOfKilledRun(t *testing.T) {
	f := newFixture(t, twoRevs()...)
	holder, secs := "upgrade elsewhere pid 1", int32(30)
	then := metav1.NewMicroTime(time.Now().Add(-time.Hour))
	if _, err := f.cs.CoordinationV1().Leases("ns").Create(context.Background(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: lock.Name("csghub"), Namespace: "ns", Annotations: map[string]string{
			"helm-csghub.opencsg.com/operation": "upgrade", "helm-csghub.opencsg.com/step": "helm-upgrade",
			"helm-csghub.opencsg.com/pending-revision": "2", "helm-csghub.opencsg.com/from-revision": "1"}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, AcquireTime: &then, RenewTime: &then}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.prepared(t, nil)
	if _, err := f.rb.Run(context.Background()); err != nil && !strings.Contains(err.Error(), "rolled back to revision 3") {
		t.Fatal(err)
	}
	f.after(t, rolledBack)
}
