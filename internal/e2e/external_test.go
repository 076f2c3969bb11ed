package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/dbpod"
	"github.com/opencsgs/helm-csghub/internal/devenv"
	"github.com/opencsgs/helm-csghub/internal/quiesce"
	"github.com/opencsgs/helm-csghub/internal/testenv"
)

// argvWatch samples every process's argv while a command runs and records
// any that holds secret.
type argvWatch struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	hits []string
	n    int
}

func watchArgv(secret string) *argvWatch {
	w := &argvWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			files, _ := filepath.Glob("/proc/[0-9]*/cmdline")
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil || len(b) == 0 {
					continue
				}
				w.mu.Lock()
				w.n++
				if strings.Contains(string(b), secret) {
					w.hits = append(w.hits, strings.ReplaceAll(string(b), "\x00", " "))
				}
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *argvWatch) check(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	if len(w.hits) > 0 {
		t.Fatalf("password in argv of %d process sample(s), first: %q", len(w.hits), w.hits[0])
	}
	if w.n == 0 {
		t.Fatal("argv sampler read no process")
	}
}

// assertNoClientLeft: no client pod or Secret, no workload still scaled down.
func assertNoClientLeft(t *testing.T, e *testenv.Env) {
	t.Helper()
	ctx := context.Background()
	left, err := dbpod.FindLeftoverClients(ctx, e.C.Clientset, e.Namespace, e.Release)
	if err != nil || len(left) > 0 {
		t.Fatalf("client pods/Secrets left: %+v (err %v)", left, err)
	}
	scaled, err := quiesce.FindLeftover(ctx, e.C.Clientset, e.Namespace, e.Release)
	if err != nil || len(scaled) > 0 {
		t.Fatalf("workloads left scaled down: %+v (err %v)", scaled, err)
	}
}

// watchZero records, per Deployment, whether it was seen at 0 replicas.
func watchZero(t *testing.T, e *testenv.Env) (seen func() map[string]bool, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := e.C.Clientset.AppsV1().Deployments(e.Namespace).Watch(ctx, metav1.ListOptions{LabelSelector: quiesce.Selector(e.Release)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	zero := map[string]bool{}
	go func() {
		for ev := range w.ResultChan() {
			d, ok := ev.Object.(*appsv1.Deployment)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			mu.Lock()
			if d.Spec.Replicas != nil && *d.Spec.Replicas == 0 {
				zero[d.Name] = true
			}
			if _, ok := zero[d.Name]; !ok {
				zero[d.Name] = false
			}
			mu.Unlock()
		}
	}()
	return func() map[string]bool {
			mu.Lock()
			defer mu.Unlock()
			out := map[string]bool{}
			for k, v := range zero {
				out[k] = v
			}
			return out
		}, func() {
			cancel()
			w.Stop()
		}
}

func deploymentReplicas(t *testing.T, e *testenv.Env) map[string]int32 {
	t.Helper()
	list, err := e.C.Clientset.AppsV1().Deployments(e.Namespace).List(context.Background(), metav1.ListOptions{LabelSelector: quiesce.Selector(e.Release)})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int32{}
	for _, d := range list.Items {
		out[d.Name] = *d.Spec.Replicas
	}
	return out
}

// External PostgreSQL: backup through a client pod, change rows, rollback
// restores every table exactly with the writers stopped (watched) and back
// after; nothing left; the password never in argv or output.
func TestExternalPostgresRollbackRestoresExactly(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t, testenv.WithExternalPostgres())
	e.Install("1.15.0", e.ExternalValues()...)
	e.LoadSampleData()
	e.Bulk("csghub_server", 20000)
	dir := t.TempDir()
	argv := watchArgv(e.ExternalPassword)
	r := e.Plugin("backup", "--dir", dir, "-o", "json")
	if r.Code != 0 {
		t.Fatalf("backup: exit %d: %s", r.Code, r.Stderr)
	}
	var b struct {
		Manifest backup.Manifest `json:"manifest"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Manifest.Servers) != 1 || b.Manifest.Servers[0].Port != e.PG.Port || b.Manifest.Servers[0].NoRolePasswords ||
		!contains(b.Manifest.Databases, "csghub_server") || contains(b.Manifest.Databases, "postgres") {
		t.Fatalf("manifest servers %+v databases %v", b.Manifest.Servers, b.Manifest.Databases)
	}
	if strings.Contains(r.Stdout+r.Stderr, e.ExternalPassword) {
		t.Fatal("password in backup output")
	}
	assertNoClientLeft(t, e)
	want := testenv.TakeSnapshot(t, e.PG)
	before := deploymentReplicas(t, e)

	e.MustHelm("upgrade", "csghub", "csghub/csghub", "--version", "1.15.0", "-n", e.Namespace, "--reuse-values", "--set", "portal.replicas=2", "--wait")
	changeData(t, e)

	seen, stop := watchZero(t, e)
	r = e.Plugin("rollback", "1", "--dir", dir, "--yes", "-o", "json")
	stop()
	argv.check(t)
	if r.Code != 0 {
		t.Fatalf("rollback: exit %d: %s", r.Code, r.Stderr)
	}
	if strings.Contains(r.Stdout+r.Stderr, e.ExternalPassword) {
		t.Fatal("password in rollback output")
	}
	for name, zero := range seen() {
		if !zero {
			t.Errorf("Deployment %s never seen at 0 replicas during the restore", name)
		}
	}
	if len(seen()) == 0 {
		t.Fatal("no Deployment watched")
	}
	got := testenv.TakeSnapshot(t, e.PG)
	delete(got, "database created_after_backup") // not the release's: left alone
	testenv.RequireEqual(t, want, got, "after rollback")
	if after := deploymentReplicas(t, e); !equalReplicas(before, after) {
		t.Fatalf("replicas after rollback %v, want %v", after, before)
	}
	assertNoClientLeft(t, e)
}

func equalReplicas(a, b map[string]int32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// SIGTERM mid-restore: replicas back, client pod and Secret gone, exit 130.
// SIGKILL: status names what is left; a rerun clears it.
func TestExternalPostgresRestoreSignals(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t, testenv.WithExternalPostgres())
	e.Install("1.15.0", e.ExternalValues()...)
	e.Bulk("csghub_server", 600000)
	dir := t.TempDir()
	b := runBackup(t, e, dir)
	before := deploymentReplicas(t, e)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			p := e.StartPlugin("restore", "--backup", b.Manifest.ID, "--dir", dir, "--yes")
			waitCopying(t, e, "csghub_server__restore", 90*time.Second) // the copy, never the live database
			p.Cmd.Process.Signal(sig)
			code := p.Wait(t, 90*time.Second)
			if sig == syscall.SIGTERM {
				if code != 130 {
					t.Fatalf("exit %d after SIGTERM, want 130:\n%s", code, p.Stderr)
				}
				assertNoClientLeft(t, e)
				if after := deploymentReplicas(t, e); !equalReplicas(before, after) {
					t.Fatalf("replicas after SIGTERM %v, want %v", after, before)
				}
				return
			}
			st := e.Plugin("status", "-o", "json")
			if st.Code != 0 || !strings.Contains(st.Stdout, `"scaledDown"`) || !strings.Contains(st.Stdout, `"pgClients"`) ||
				!strings.Contains(st.Stderr, "kubectl -n "+e.Namespace+" scale deployment/") {
				t.Fatalf("status after a killed restore does not report what is left: %s\n%s", st.Stdout, st.Stderr)
			}
			if r := e.Plugin("restore", "--backup", b.Manifest.ID, "--dir", dir, "--yes"); r.Code != 0 {
				t.Fatalf("rerun restore: exit %d: %s", r.Code, r.Stderr)
			}
			assertNoClientLeft(t, e)
			if after := deploymentReplicas(t, e); !equalReplicas(before, after) {
				t.Fatalf("replicas after the rerun %v, want %v", after, before)
			}
		})
	}
}

// A user that may not read pg_authid (as on managed services): the backup
// succeeds without role passwords and says so. A server that does not
// answer: one-line error, exit 4, nothing left.
func TestExternalPostgresManagedAndUnreachable(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t, testenv.WithExternalPostgres())
	// app reads the release's tables but not pg_authid, as a managed
	// service's user (pg_read_all_data would let it read pg_authid too)
	e.Exec("postgres", "CREATE ROLE app LOGIN PASSWORD 'app-pw-e2e'")
	e.Install("1.15.0", e.ExternalValuesAs("app", "app-pw-e2e")...)
	e.LoadSampleData()
	grantReadAll(t, e, "app")
	dir := t.TempDir()
	r := e.Plugin("backup", "--dir", dir)
	if r.Code != 0 {
		t.Fatalf("backup as a non-superuser: exit %d: %s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "roles WITHOUT passwords") {
		t.Fatalf("summary does not say the roles have no passwords:\n%s", r.Stdout)
	}
	b := runBackup(t, e, dir)
	if len(b.Manifest.Servers) != 1 || !b.Manifest.Servers[0].NoRolePasswords {
		t.Fatalf("manifest does not record the missing role passwords: %+v", b.Manifest.Servers)
	}
	assertNoClientLeft(t, e)

	if err := e.PG.Stop(); err != nil {
		t.Fatal(err)
	}
	r = e.Plugin("backup", "--dir", dir)
	if r.Code != 4 || errorLines(r.Stderr) != 1 || !strings.Contains(r.Stderr, "does not answer from the cluster") {
		t.Fatalf("unreachable server: exit %d: %s", r.Code, r.Stderr)
	}
	assertNoClientLeft(t, e)
}

// grantReadAll lets role read every table and sequence of the release's
// databases (and nothing else).
func grantReadAll(t *testing.T, e *testenv.Env, role string) {
	t.Helper()
	ctx := context.Background()
	c, err := e.PG.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := c.Query(ctx, "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'")
	if err != nil {
		t.Fatal(err)
	}
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	c.Close(ctx)
	if err != nil || len(dbs) == 0 {
		t.Fatalf("databases %v: %v", dbs, err)
	}
	grant := `DO $$ DECLARE s text; BEGIN
  FOR s IN SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema' LOOP
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I; GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I; GRANT SELECT ON ALL SEQUENCES IN SCHEMA %I TO %I',
      s, $1, s, $1, s, $1);
  END LOOP; END $$`
	for _, db := range dbs {
		e.Exec(db, strings.ReplaceAll(grant, "$1", devenv.QuoteLiteral(role)))
	}
}
