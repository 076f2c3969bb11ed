package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opencsgs/helm-csghub/internal/devenv"
	"github.com/opencsgs/helm-csghub/internal/testenv"
)

// dataflowRows creates Dataflow's task tables job and datasources in
// csghub_dataflow with a few rows, as Dataflow itself would have: the 2.2.0+
// pre-upgrade hook empties them.
func dataflowRows(t *testing.T, e *testenv.Env) {
	t.Helper()
	ctx := context.Background()
	conn, err := e.PG.Connect(ctx, "csghub_dataflow")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		"CREATE TABLE IF NOT EXISTS public.job (id int PRIMARY KEY, name text)",
		"INSERT INTO public.job SELECT g, 'job ' || g FROM generate_series(1, 3) g ON CONFLICT DO NOTHING",
		"CREATE TABLE IF NOT EXISTS public.datasources (id int PRIMARY KEY, uri text)",
		"INSERT INTO public.datasources VALUES (1, 's3://a'), (2, 'hive://b') ON CONFLICT DO NOTHING",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
}

// requireHookRan checks what the chart's dataflow-migrations hook did to the
// snapshot got (want: before the upgrade): each table is empty, its rows are
// in <table>_20260608; then drops those keys and the hook's ledger from got.
func requireHookRan(t *testing.T, want, got map[string]string) {
	t.Helper()
	for _, tbl := range []string{"job", "datasources"} {
		k := "csghub_dataflow.public." + tbl
		if got[k+"_20260608"] != want[k] || !strings.HasPrefix(got[k], "rows=0 ") {
			t.Errorf("hook: %s = %q, %s_20260608 = %q; want empty and the copy %q", k, got[k], k, got[k+"_20260608"], want[k])
		}
		got[k] = want[k]
		delete(got, k+"_20260608")
	}
	delete(got, "csghub_dataflow.public._migrations")
}

func migrationNames(t *testing.T, sum []struct{ Version, Name string }) string {
	var out []string
	for _, m := range sum {
		out = append(out, "v"+m.Version+" "+m.Name)
	}
	return strings.Join(out, ", ")
}

// 1.15.0 -> the newest chart (2.4.0) in one `helm csghub upgrade` with no
// --version: every step in version order, the data kept (but for what the
// chart's own 2.2.0 hook does, which is named), the Dataflow logs kept in the
// backup (2.4 has no task-log database), the volumes nothing mounts any more
// named; then `rollback 1` restores 1.15.0 and its data exactly.
func TestUpgrade115ToNewestAndBack(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	// a custom runner value of the flat layout 2.2.3 restructured (runner.runner.region from 2.3.0)
	e.Install("1.15.0", "--set", "runner.region=region-e2e")
	e.LoadSampleData()
	dataflowRows(t, e)
	if e.Mongo == nil {
		t.Fatal("no FerretDB behind csghub-mongo-0 after installing 1.15.0")
	}
	if _, err := devenv.SeedDataflowLogs(context.Background(), e.Mongo.URL, devenv.DefaultSeedTasks(), true); err != nil {
		t.Fatal(err)
	}
	waitJobsFinished(t, e)
	want := testenv.TakeSnapshot(t, e.PG)
	guard := takeGuarded(t, e)
	dir := t.TempDir()
	r := e.Plugin("upgrade", "--yes", "--dir", dir, "--timeout", "4m", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("upgrade: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	sum, _ := lastSummary(t, r.Stdout)
	if sum.To != "2.4.0" || sum.Status != "deployed" || sum.Verify == nil || !sum.Verify.OK {
		t.Fatalf("summary %+v", sum)
	}
	requireGuardedUntouched(t, e, guard, "upgrade 1.15.0 -> 2.4.0")
	var steps []struct{ Version, Name string }
	for _, m := range sum.Migrations {
		steps = append(steps, struct{ Version, Name string }{m.Version, m.Name})
	}
	got := migrationNames(t, steps)
	for _, w := range []string{"v1.16.0 envoy-gateway-crds", "v1.17.0 helm-takeover", "v2.0.0 dataflow-logs", "v2.2.0 dataflow-tables-hook", "v2.2.0 leftovers"} {
		if !strings.Contains(got, w) {
			t.Errorf("step %s missing: %s", w, got)
		}
	}
	for i := 1; i < len(sum.Migrations); i++ {
		if compareVersions(sum.Migrations[i].Version, sum.Migrations[i-1].Version) < 0 {
			t.Errorf("steps out of version order: %s", got)
		}
	}
	notes := strings.Join(sum.Notes, "\n")
	dfPVC := "data-" + e.Release + "-dataflow-0"
	if !strings.Contains(notes, "delete pvc "+dfPVC) || !strings.Contains(notes, "-mongo-0") {
		t.Errorf("orphaned PVCs not named with the delete command:\n%s", notes)
	}
	if !strings.Contains(notes, "kept in backup "+sum.Backup) || !strings.Contains(notes, e.Release+"-dataflow-migrations") {
		t.Errorf("notes do not say where the Dataflow logs are or name the hook:\n%s", notes)
	}
	// the logs are exported into the backup and kept there: 2.4.0 has no task-log database
	exported := ""
	for _, m := range sum.Migrations {
		for _, c := range m.Changes {
			if m.Name == "dataflow-logs" && c.Kind == "file" && c.Action == "create" {
				exported = c.Detail
			}
		}
	}
	if exported == "" || strings.HasPrefix(exported, "0 documents") {
		t.Errorf("Dataflow logs not exported into the backup: %+v", sum.Migrations)
	}
	if _, err := os.Stat(filepath.Join(sum.BackupPath, "dataflow-logs.jsonl.zst")); err != nil {
		t.Errorf("export not in the backup: %v", err)
	}
	if imp := e.Plugin("dataflow-logs", "import", "--dir", dir); imp.Code != 4 || !strings.Contains(imp.Stderr, "nothing to import into") {
		t.Errorf("dataflow-logs import on 2.4.0: exit %d %s", imp.Code, imp.Stderr)
	}
	// the runner's configuration as 2.4.0 renders it (its keys moved in 2.2.3)
	if cfg := runnerConfig(t, e); cfg["MODEL_DEPLOY_TIMEOUT_MINUTES"] == "" {
		t.Errorf("runner config of 2.4.0: %v", cfg)
	}
	// the custom runner.region set at install is carried to where 2.4.0 reads it
	if got, _ := dig(deployedValues(t, e), "runner.runner.region"); got != "region-e2e" || runnerConfig(t, e)["REGION"] != "region-e2e" {
		t.Errorf("runner.region not carried: deployed runner.runner.region %v, runner config %v", got, runnerConfig(t, e))
	}
	after := testenv.TakeSnapshot(t, e.PG)
	requireHookRan(t, want, after)
	for _, db := range []string{"csghub_agenticflow", "csghub_superset"} {
		if after["database "+db] != "present" {
			t.Errorf("database %s of 2.4.0 not created", db)
		}
		delete(after, "database "+db)
	}
	testenv.RequireEqual(t, want, after, "database after 1.15.0 -> 2.4.0")

	// 2.4.0 renamed the init Jobs (<release>-casdoor-migrate, ...)
	if err := e.C.WaitJobsFinished(context.Background(), e.Namespace, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	rb := e.Plugin("rollback", "1", "--dir", dir, "--yes", "-o", "json")
	if rb.Code != 0 {
		t.Fatalf("rollback 1: exit %d\n%s\n%s", rb.Code, rb.Stdout, rb.Stderr)
	}
	var res struct {
		ToChart string `json:"toChartVersion"`
		Status  string `json:"status"`
	}
	if err := json.Unmarshal([]byte(rb.Stdout), &res); err != nil || res.ToChart != "1.15.0" || res.Status != "deployed" {
		t.Fatalf("rollback result %+v (%v): %s", res, err, rb.Stdout)
	}
	back := testenv.TakeSnapshot(t, e.PG)
	// databases 2.4.0 created are not in the 1.15.0 backup: the restore drops none it did not back up
	delete(back, "database csghub_agenticflow")
	delete(back, "database csghub_superset")
	testenv.RequireEqual(t, want, back, "database after rollback 1")
	wantDeployed(t, e, "1.15.0", 0, "status after rollback")
	// the rollback installs revision 1's stored values: the old key again
	if got, _ := dig(deployedValues(t, e), "runner.region"); got != "region-e2e" {
		t.Errorf("after rollback 1: runner.region %v", got)
	}
}

// runnerConfig is ConfigMap <release>-runner-config: what the runner gets
// from the deployed values (REGION, ...).
func runnerConfig(t *testing.T, e *testenv.Env) map[string]string {
	t.Helper()
	cm, err := e.C.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), e.Release+"-runner-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm.Data
}

// compareVersions compares two x.y.z strings.
func compareVersions(a, b string) int {
	var x, y [3]int
	fmt.Sscanf(a, "%d.%d.%d", &x[0], &x[1], &x[2])
	fmt.Sscanf(b, "%d.%d.%d", &y[0], &y[1], &y[2])
	for i := range x {
		if x[i] != y[i] {
			return x[i] - y[i]
		}
	}
	return 0
}

// 2.0.0 -> 2.4.0 and 2.2.0 -> 2.4.0: the hook empties the Dataflow tables
// also after a fresh 2.2.0 install (it never ran: no ledger); the CRDs move to
// gateway-helm 1.7.5; 2.0.0's Dataflow StatefulSet volume is named.
func TestUpgrade2xTo240(t *testing.T) {
	t.Parallel()
	for _, from := range []string{"2.0.0", "2.2.0"} {
		t.Run(from, func(t *testing.T) {
			t.Parallel() // each from-version takes a cluster of its own
			e := testenv.NewEnv(t)
			e.Install(from)
			e.LoadSampleData()
			dataflowRows(t, e)
			waitJobsFinished(t, e)
			want := testenv.TakeSnapshot(t, e.PG)
			r := e.Plugin("upgrade", "--version", "2.4.0", "--yes", "--dir", t.TempDir(), "--timeout", "4m", "-o", "json")
			if r.Code != 0 {
				t.Fatalf("upgrade %s -> 2.4.0: exit %d\n%s\n%s", from, r.Code, r.Stdout, r.Stderr)
			}
			sum, _ := lastSummary(t, r.Stdout)
			if sum.To != "2.4.0" || sum.Status != "deployed" {
				t.Fatalf("summary %+v", sum)
			}
			notes := strings.Join(sum.Notes, "\n")
			if from == "2.0.0" && (!strings.Contains(notes, "delete pvc data-"+e.Release+"-dataflow-0") || !strings.Contains(notes, "Database csghub_dataflow_logs")) {
				t.Errorf("Dataflow's StatefulSet PVC or its unused logs database not named:\n%s", notes)
			}
			if a := crd(t, e, "gateways.gateway.networking.k8s.io").GetAnnotations(); a["gateway.networking.k8s.io/bundle-version"] != "v1.5.0" {
				t.Errorf("gateways CRD not gateway-helm 1.7.5's: %v", a)
			}
			got := testenv.TakeSnapshot(t, e.PG)
			requireHookRan(t, want, got)
			delete(got, "database csghub_superset")
			if from == "2.0.0" {
				delete(got, "database csghub_agenticflow")
			}
			testenv.RequireEqual(t, want, got, "database after "+from+" -> 2.4.0")
		})
	}
}

// plan from 1.17.0 to 2.4.0 lists every step in version order, the 2.2.0
// hook with "the backup is the way back".
func TestPlan117To240(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.17.0")
	r := e.Plugin("plan", "--version", "2.4.0")
	if r.Code != 0 {
		t.Fatalf("plan: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	p := getPlan(t, e, "--version", "2.4.0")
	got := strings.Join(stepNames(p), ", ")
	want := "v1.16.0 envoy-gateway-crds, v2.0.0 knative-serving-takeover, v2.0.0 dataflow-logs, v2.2.0 dataflow-tables-hook, v2.2.0 leftovers, helm-upgrade"
	if i := strings.Index(got, "v1.16.0"); i < 0 || !strings.HasPrefix(got[i:], want) {
		t.Errorf("plan 1.17.0 -> 2.4.0: %s\nwant in order: %s", got, want)
	}
	if !strings.Contains(r.Stdout, "the backup is the way back") || !strings.Contains(r.Stdout, e.Release+"-dataflow-migrations") {
		t.Errorf("plan does not name the hook that changes data:\n%s", r.Stdout)
	}
}
