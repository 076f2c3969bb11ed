package plan

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv/helmenvtest"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/lock"
	"github.com/opencsgs/helm-csghub/internal/migrate"
)

// The external-database check runs only when the values (chart defaults
// with the release's own on top) say PostgreSQL is external: in-cluster it
// touches nothing; external, it starts the client pods (here refused before
// any pod: no host is set, exit 4).
func TestCheckExternalDBOnlyForExternalPostgres(t *testing.T) {
	ch := &chart.Chart{Metadata: &chart.Metadata{Name: "csghub", Version: "1.17.0"},
		Values: map[string]any{"global": map[string]any{"postgresql": map[string]any{"enabled": true}}}}
	external := map[string]any{"global": map[string]any{"postgresql": map[string]any{"enabled": false}}}
	ctx := context.Background()

	cs := fake.NewClientset()
	kc := &kube.Client{Clientset: cs}
	in := &release.Release{Name: "csghub", Namespace: "ns", Version: 1, Chart: ch}
	if err := checkExternalDB(ctx, kc, "ns", "csghub", in, "", time.Second, nil); err != nil {
		t.Fatalf("in-cluster PostgreSQL: %v, want no check", err)
	}
	if a := cs.Actions(); len(a) != 0 {
		t.Fatalf("in-cluster PostgreSQL: the check touched the cluster: %v", a)
	}

	ext := &release.Release{Name: "csghub", Namespace: "ns", Version: 1, Chart: ch, Config: external}
	err := checkExternalDB(ctx, kc, "ns", "csghub", ext, "", time.Second, nil)
	if errs.ExitCode(err) != 4 || !strings.Contains(err.Error(), "global.postgresql.external.host is not set") {
		t.Fatalf("external PostgreSQL without a host: %v (exit %d), want the check's refusal", err, errs.ExitCode(err))
	}
}

// migrateFixture: no release stored (so Prepare stops at "not found", exit
// 3, before it needs a chart or a REST config), a fake clientset for the lock.
func migrateFixture(t *testing.T) (*Migrate, *fake.Clientset) {
	cs := fake.NewClientset()
	return &Migrate{Options: Options{Release: helmenvtest.Secrets(t, cs.CoreV1().Secrets("ns"), helmenvtest.Fake()), Kube: &kube.Client{Clientset: cs}}}, cs
}

// migrate takes the release lock itself, before it reads anything: refused
// (exit 4) while another operation holds it; taken and released otherwise.
// A bad --version is a usage error (exit 2) whoever holds the lock; a dry
// run changes nothing and takes no lock.
func TestMigrateTakesTheLock(t *testing.T) {
	ctx := context.Background()
	m, cs := migrateFixture(t)
	held, err := lock.Acquire(ctx, cs, "ns", "csghub", "upgrade")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Run(ctx); errs.ExitCode(err) != 4 || !strings.Contains(err.Error(), "another operation holds the lock") {
		t.Fatalf("lock held: %v (exit %d)", err, errs.ExitCode(err))
	}
	m.Target.Version = "2.0.0.0"
	if _, err := m.Run(ctx); errs.ExitCode(err) != 2 {
		t.Fatalf("bad --version with the lock held: %v (exit %d), want the usage error", err, errs.ExitCode(err))
	}
	m.Target.Version = ""
	m.DryRun = true
	if _, err := m.Run(ctx); errs.ExitCode(err) != 3 {
		t.Fatalf("dry run with the lock held: %v (exit %d), want to go on to the release (not found)", err, errs.ExitCode(err))
	}
	held.Release()

	m.DryRun = false
	cs.ClearActions()
	if _, err := m.Run(ctx); errs.ExitCode(err) != 3 {
		t.Fatalf("free lock: %v (exit %d), want the release's not found", err, errs.ExitCode(err))
	}
	var took bool
	for _, a := range cs.Actions() {
		took = took || (a.GetResource().Resource == "leases" && a.GetVerb() == "create")
	}
	if !took {
		t.Fatal("migrate ran without taking the lock")
	}
	if l, _ := cs.CoordinationV1().Leases("ns").List(ctx, metav1.ListOptions{}); len(l.Items) != 0 {
		t.Fatalf("lock left behind: %v", l.Items)
	}
}

// Issue 27 item 2: the mark a migrate run leaves on its lease names the one
// command that runs it again: its version, chart, -f and --set-file paths
// made absolute, its switches, the release and catalog; never a --set value
// (a password may be one), only a note that they are needed.
func TestMigrateMark(t *testing.T) {
	m, _ := migrateFixture(t)
	m.Release.Name, m.Dir = "other", "/backups"
	dir := t.TempDir()
	vf := filepath.Join(dir, "my values.yaml")
	if err := os.WriteFile(vf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	m.Values.ValueFiles = []string{"my values.yaml", "https://example.com/v.yaml"}
	m.Values.FileValues = []string{"a.b=my values.yaml"}
	mk := m.mark("2.0.0")
	want := "helm csghub migrate --version 2.0.0 -f '" + vf + "' -f https://example.com/v.yaml --set-file 'a.b=" + vf + "' -n ns --release other --dir /backups"
	if mk.Step != lock.StepMigrate || mk.Operation != "migrate" || mk.Command != want || mk.Note != "" {
		t.Fatalf("mark %+v\nwant command %s", mk, want)
	}
	m.Values.Values = []string{"global.password=s3cret"}
	m.Values.JSONValues = []string{`x={"token":"t0ken"}`}
	m.Target.Chart, m.Target.NoRepoUpdate = "oci://r/csghub", true
	m.Skip = map[*migrate.Switch]bool{{Flag: "skip-dataflow-logs"}: true, {Flag: "skip-x"}: false}
	mk = m.mark("2.4.0")
	if !strings.HasPrefix(mk.Command, "helm csghub migrate --version 2.4.0 --chart oci://r/csghub --no-repo-update ") ||
		!strings.Contains(mk.Command, " --skip-dataflow-logs -n ns") || strings.Contains(mk.Command, "skip-x") ||
		!strings.Contains(mk.Note, "--set") {
		t.Fatalf("mark %+v", mk)
	}
	for _, secret := range []string{"s3cret", "t0ken"} {
		if strings.Contains(mk.Command+mk.Note, secret) {
			t.Fatalf("a --set value on the lease: %+v", mk)
		}
	}
}
