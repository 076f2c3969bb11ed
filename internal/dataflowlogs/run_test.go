package dataflowlogs

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/helmenv/helmenvtest"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/lock"
)

// fixture is release "csghub" in namespace "ns" with the given revisions
// (chart version each) in Helm's Secrets on a fake clientset, and an empty
// backup catalog.
type fixture struct {
	cs  *fake.Clientset
	rel *helmenv.Release
	kc  *kube.Client
	cat backup.Catalog
}

func newFixture(t *testing.T, charts ...string) *fixture {
	t.Helper()
	var revs []*release.Release
	for i, v := range charts {
		status := release.StatusSuperseded
		if i == len(charts)-1 {
			status = release.StatusDeployed
		}
		revs = append(revs, &release.Release{Name: "csghub", Namespace: "ns", Version: i + 1, Info: &release.Info{Status: status},
			Chart: &chart.Chart{Metadata: &chart.Metadata{Name: "csghub", Version: v, APIVersion: "v2"}}})
	}
	cs := fake.NewClientset()
	return &fixture{cs: cs, kc: &kube.Client{Clientset: cs}, cat: backup.Catalog{Root: t.TempDir()}, rel: helmenvtest.Secrets(t, cs.CoreV1().Secrets("ns"), helmenvtest.Fake(), revs...)}
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// backup writes a backup folder of revision rev taken at t0+hours: complete
// (with a manifest) or not, with an export in its manifest or not.
func (f *fixture) backup(t *testing.T, rev, hours int, complete, export bool) string {
	t.Helper()
	id := backupID(rev, hours)
	dir := filepath.Join(f.cat.ReleaseDir("ns", "csghub"), id)
	if !complete {
		dir += ".partial"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if complete {
		m := &backup.Manifest{FormatVersion: backup.FormatVersion, ID: id, Revision: rev, Release: "csghub", Namespace: "ns"}
		if export {
			m.Extra = []backup.File{{Name: ExportFile, SHA256: "0", Bytes: 1}}
		}
		data, _ := json.Marshal(m)
		if err := os.WriteFile(filepath.Join(dir, "manifest.json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

func backupID(rev, hours int) string {
	return fmt.Sprintf("%d-%s", rev, t0.Add(time.Duration(hours)*time.Hour).Format("20060102T150405Z"))
}

// Export's default backup is the newest complete one of the deployed
// revision: not an older revision's, not a newer partial one, not a later
// revision's; with none it is refused (exit 4) naming `helm csghub backup`.
func TestExportTarget(t *testing.T) {
	f := newFixture(t, "1.16.0", "1.17.0") // revision 2 deployed
	f.backup(t, 1, 0, true, false)
	want := f.backup(t, 2, 1, true, false)
	f.backup(t, 2, 2, false, false) // partial: never written into
	f.backup(t, 3, 3, true, false)  // a revision that is not deployed
	e, err := exportTarget(f.cat, f.rel, "")
	if err != nil || e.ID != want {
		t.Fatalf("exportTarget = %v, %v; want %s", e, err, want)
	}
	old := backupID(1, 0)
	if e, err := exportTarget(f.cat, f.rel, old); err != nil || e.ID != old {
		t.Fatalf("--backup %s = %v, %v", old, e, err)
	}

	none := newFixture(t, "1.16.0", "1.17.0")
	none.backup(t, 1, 0, true, false)
	_, err = exportTarget(none.cat, none.rel, "")
	if errs.ExitCode(err) != 4 || !strings.Contains(err.Error(), "no backup of revision 2") || !strings.Contains(err.Error(), "helm csghub backup") {
		t.Fatalf("no backup of the deployed revision: %v (exit %d)", err, errs.ExitCode(err))
	}
}

// Import's default backup is the newest complete one holding an export (a
// newer backup without one is passed over); --backup naming a backup
// without an export, or no backup with one, is not found (exit 3).
func TestImportSource(t *testing.T) {
	f := newFixture(t, "1.17.0", "2.0.0")
	f.backup(t, 1, 0, true, true)
	want := f.backup(t, 1, 1, true, true)
	f.backup(t, 1, 2, false, false)
	plain := f.backup(t, 2, 3, true, false)
	e, err := importSource(f.cat, "ns", "csghub", "")
	if err != nil || e.ID != want {
		t.Fatalf("importSource = %v, %v; want %s", e, err, want)
	}
	_, err = importSource(f.cat, "ns", "csghub", plain)
	if errs.ExitCode(err) != 3 || !strings.Contains(err.Error(), "holds no Dataflow logs export") {
		t.Fatalf("--backup without an export: %v (exit %d)", err, errs.ExitCode(err))
	}
	none := newFixture(t, "2.0.0")
	none.backup(t, 1, 0, true, false)
	_, err = importSource(none.cat, "ns", "csghub", "")
	if errs.ExitCode(err) != 3 || !strings.Contains(err.Error(), "dataflow-logs export") {
		t.Fatalf("no export anywhere: %v (exit %d)", err, errs.ExitCode(err))
	}
}

// leases lists the lease names in ns.
func leases(t *testing.T, f *fixture) []string {
	t.Helper()
	l, err := f.cs.CoordinationV1().Leases("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range l.Items {
		out = append(out, x.Name)
	}
	return out
}

// On chart >= 2.2 there is no logs database: import is refused (exit 4)
// before it reads a backup or takes the lock; on 2.0 it goes on (here to
// "no backup holds an export").
func TestImportRefusedFromChart22(t *testing.T) {
	for _, v := range []string{"2.2.0", "2.4.0"} {
		f := newFixture(t, "2.0.0", v)
		f.backup(t, 1, 0, true, true)
		f.cs.ClearActions()
		_, err := (&Import{Release: f.rel, Kube: f.kc, Dir: f.cat.Root, Wait: time.Second}).Run(context.Background())
		if errs.ExitCode(err) != 4 || !strings.Contains(err.Error(), "chart "+v+" has no "+LogsDatabase) || !strings.Contains(err.Error(), "nothing to import into") {
			t.Fatalf("chart %s: %v (exit %d)", v, err, errs.ExitCode(err))
		}
		for _, a := range f.cs.Actions() {
			if a.GetResource().Resource == "leases" {
				t.Fatalf("chart %s: the refusal touched the lock: %s", v, a.GetVerb())
			}
		}
	}
	f := newFixture(t, "1.17.0", "2.0.0")
	_, err := (&Import{Release: f.rel, Kube: f.kc, Dir: f.cat.Root, Wait: time.Second}).Run(context.Background())
	if errs.ExitCode(err) != 3 || !strings.Contains(err.Error(), "holds a Dataflow logs export") {
		t.Fatalf("chart 2.0.0: %v (exit %d), want the backup selection's not found", err, errs.ExitCode(err))
	}
}

// Export takes the release lock itself: refused (exit 4, nothing read from
// MongoDB) while another operation holds it; otherwise taken for the export
// and released after it, whatever the export's outcome.
func TestExportTakesTheLock(t *testing.T) {
	f := newFixture(t, "1.17.0")
	ctx := context.Background()
	if _, err := f.cs.AppsV1().StatefulSets("ns").Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "csghub-mongo", Namespace: "ns"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.backup(t, 1, 0, true, false)
	x := &Export{Release: f.rel, Kube: f.kc, Dir: f.cat.Root}

	held, err := lock.Acquire(ctx, f.cs, "ns", "csghub", "upgrade")
	if err != nil {
		t.Fatal(err)
	}
	f.cs.ClearActions()
	_, err = x.Run(ctx)
	if errs.ExitCode(err) != 4 || !strings.Contains(err.Error(), "another operation holds the lock") {
		t.Fatalf("lock held: %v (exit %d)", err, errs.ExitCode(err))
	}
	for _, a := range f.cs.Actions() {
		if a.GetResource().Resource == "secrets" && a.GetVerb() == "get" {
			t.Fatal("export read the MongoDB credentials while another operation held the lock")
		}
	}
	held.Release()

	// no MongoDB Secret: the export itself fails (exit 1) under the lock
	f.cs.ClearActions()
	_, err = x.Run(ctx)
	if errs.ExitCode(err) != 1 || !strings.Contains(err.Error(), "exporting the Dataflow logs") {
		t.Fatalf("export: %v (exit %d)", err, errs.ExitCode(err))
	}
	var took bool
	for _, a := range f.cs.Actions() {
		if a.GetResource().Resource == "leases" && a.GetVerb() == "create" {
			took = true
		}
	}
	if !took {
		t.Fatal("export ran without taking the lock")
	}
	if l := leases(t, f); len(l) != 0 {
		t.Fatalf("lock left behind: %v", l)
	}
}

// Issue 27 item 2: an import marks its lease before it changes anything
// (killed, status names `dataflow-logs import --backup ID` to finish); a
// failed one leaves no mark of its own, and puts back a killed import's.
func TestImportMarksItsLease(t *testing.T) {
	f := newFixture(t, "1.17.0", "2.0.0")
	id := f.backup(t, 1, 0, true, true) // its export file is missing: the import fails
	ctx := context.Background()
	var marked []string
	f.cs.PrependReactor("update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		l := a.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease)
		marked = append(marked, l.Annotations["helm-csghub.opencsg.com/step"]+": "+l.Annotations["helm-csghub.opencsg.com/command"])
		return false, nil, nil
	})
	im := &Import{Release: f.rel, Kube: f.kc, Dir: f.cat.Root, Wait: time.Second}
	// the manifest lists an export the backup does not hold: corrupt, exit 4
	// (as backup verify says)
	if _, err := im.Run(ctx); errs.ExitCode(err) != 4 || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("import of a missing export: %v (exit %d)", err, errs.ExitCode(err))
	}
	want := lock.StepImport + ": helm csghub dataflow-logs import --backup " + id + " -n ns --dir " + f.cat.Root
	if len(marked) == 0 || marked[0] != want {
		t.Fatalf("marks written %q, want first %q", marked, want)
	}
	if l := leases(t, f); len(l) != 0 {
		t.Fatalf("lock left behind by a failed import: %v", l)
	}

	// a killed import's lease: taken over, put back as it was after a failure
	holder, secs := "dataflow-logs import elsewhere pid 1", int32(30)
	then := metav1.NewMicroTime(time.Now().Add(-time.Hour))
	killed := map[string]string{"helm-csghub.opencsg.com/operation": "dataflow-logs import", "helm-csghub.opencsg.com/step": lock.StepImport,
		"helm-csghub.opencsg.com/backup": id, "helm-csghub.opencsg.com/command": "c"}
	if _, err := f.cs.CoordinationV1().Leases("ns").Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: lock.Name("csghub"), Namespace: "ns", Annotations: killed},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &then}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := im.Run(ctx); errs.ExitCode(err) != 4 {
		t.Fatalf("second import: %v", err)
	}
	info, err := lock.Inspect(ctx, f.cs, "ns", "csghub")
	if err != nil || info == nil || info.Holder != holder || info.Mark == nil || info.Mark.Command != "c" {
		t.Fatalf("the killed import's mark after a failed import: %+v %v", info, err)
	}
}
