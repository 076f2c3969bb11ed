package rollback

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv/helmenvtest"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/netpol"
)

// Rollback builds its own Helm action config from Helm's environment (a new
// one per call), so the releases are served the way Helm reads them: Secrets
// of the default storage driver, held by client-go's fake clientset and
// served read-only by a minimal API server. Every other request is recorded
// (and answered 404): a refused rollback must make none that writes.

type apiServer struct {
	store    *fake.Clientset // the release Secrets
	mu       sync.Mutex
	requests []string // requests other than listing Secrets
}

func (a *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/api/v1/namespaces/ns/secrets" {
		l, err := a.store.CoreV1().Secrets("ns").List(r.Context(), metav1.ListOptions{LabelSelector: r.URL.Query().Get("labelSelector")})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		l.APIVersion, l.Kind = "v1", "SecretList"
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(l)
		return
	}
	a.mu.Lock()
	a.requests = append(a.requests, r.Method+" "+r.URL.Path)
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`))
}

func (a *apiServer) writes() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, r := range a.requests {
		if !strings.HasPrefix(r, "GET ") {
			out = append(out, r)
		}
	}
	return out
}

type fixture struct {
	api *apiServer
	cs  *fake.Clientset // the cluster the plugin's own client sees
	rb  *Rollback
	dir string
}

func rel(version int, chartVersion string, st release.Status) *release.Release {
	return &release.Release{Name: "csghub", Namespace: "ns", Version: version,
		Info:     &release.Info{Status: st},
		Chart:    &chart.Chart{Metadata: &chart.Metadata{Name: "csghub", Version: chartVersion, APIVersion: "v2"}},
		Manifest: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: csghub-" + chartVersion + "\n"}
}

// newFixture stores revs as Helm would and points Helm's environment at them.
func newFixture(t *testing.T, revs ...*release.Release) *fixture {
	t.Helper()
	api := &apiServer{store: fake.NewClientset()}
	st := storage.Init(driver.NewSecrets(api.store.CoreV1().Secrets("ns")))
	for _, r := range revs {
		if err := st.Create(r); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	hr := helmenvtest.Release(t, srv.URL, "secret")
	cs := fake.NewClientset()
	dir := t.TempDir()
	return &fixture{api: api, cs: cs, dir: dir,
		rb: &Rollback{Release: hr, Kube: &kube.Client{Clientset: cs, Config: &rest.Config{Host: srv.URL}}, Dir: dir, Timeout: time.Second}}
}

// history is the stored revisions as "chart status", oldest first.
func (f *fixture) history(t *testing.T) string {
	t.Helper()
	h, err := storage.Init(driver.NewSecrets(f.api.store.CoreV1().Secrets("ns"))).History("csghub")
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(h))
	for _, r := range h {
		out[r.Version-1] = r.Chart.Metadata.Version + " " + r.Info.Status.String()
	}
	return strings.Join(out, ", ")
}

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
			if w := f.api.writes(); len(w) != 0 {
				t.Fatalf("a refused rollback wrote: %v", w)
			}
			if len(f.cs.Actions()) != 0 {
				t.Fatalf("a refused rollback touched the cluster: %v", f.cs.Actions())
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
	if f.history(t) != "1.0.0 superseded, 2.0.0 deployed" || len(f.api.writes()) != 0 {
		t.Fatalf("changed: %s, writes %v", f.history(t), f.api.writes())
	}
}

// Helm's rollback fails (here: the cluster does not answer its reachability
// check): exit 6, the release unchanged at revision 2, the database not
// restored, and the one command that finishes.
func TestRunHelmRollbackFailsExit6(t *testing.T) {
	f := newFixture(t, twoRevs()...)
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
	if f.history(t) != "1.0.0 superseded, 2.0.0 deployed" || len(f.api.writes()) != 0 {
		t.Fatalf("changed: %s, writes %v", f.history(t), f.api.writes())
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
