package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opencsgs/helm-csghub/internal/testenv"
	"github.com/opencsgs/helm-csghub/internal/upgrade"
)

// lastSummary parses the JSON lines of `upgrade -o json` and returns the summary.
func lastSummary(t *testing.T, out string) (upgrade.Summary, []upgrade.Event) {
	t.Helper()
	var sum upgrade.Summary
	var events []upgrade.Event
	found := false
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var kind struct {
			Event string `json:"event"`
		}
		if err := json.Unmarshal([]byte(line), &kind); err != nil {
			t.Fatalf("upgrade -o json printed a non-JSON line %q", line)
		}
		switch kind.Event {
		case "summary":
			found = json.Unmarshal([]byte(line), &sum) == nil
		case "step":
			var ev upgrade.Event
			json.Unmarshal([]byte(line), &ev)
			events = append(events, ev)
		}
	}
	if !found {
		t.Fatalf("no summary in upgrade output:\n%s", out)
	}
	return sum, events
}

// 1.15.0 with sample data -> 2.0.0 in one command.
func TestUpgrade115To200(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0", "--set", "server.environments.CUSTOM_SETTING=kept")
	e.LoadSampleData()
	want := testenv.TakeSnapshot(t, e.PG)
	guard := takeGuarded(t, e)
	requirePlanAsHelm(t, e, "2.0.0")
	dir := t.TempDir()
	r := e.Plugin("upgrade", "--version", "2.0.0", "--yes", "--dir", dir, "--timeout", "3m", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("upgrade: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	sum, events := lastSummary(t, r.Stdout)
	if sum.Revision != 2 || sum.To != "2.0.0" || sum.Status != "deployed" || sum.Verify == nil || !sum.Verify.OK || sum.Backup == "" {
		t.Fatalf("summary %+v", sum)
	}
	if len(events) < 10 {
		t.Errorf("only %d step events", len(events))
	}
	// CRDs installed by the v1.16.0 step, Established
	for _, name := range []string{"gateways.gateway.networking.k8s.io", "envoyproxies.gateway.envoyproxy.io"} {
		if !crdEstablished(crd(t, e, name)) {
			t.Errorf("CRD %s not Established", name)
		}
	}
	st := wantDeployed(t, e, "2.0.0", 2, "status")
	for _, p := range st.Pods {
		if p.Ready != p.Total || p.Total == 0 {
			t.Errorf("pods in %s: %d/%d Ready", p.Namespace, p.Ready, p.Total)
		}
	}
	env := e.Kubectl("-n", e.Namespace, "get", "deploy", "csghub-server", "-o", "jsonpath={.spec.template.spec.containers[0].env}")
	if !strings.Contains(env, "CUSTOM_SETTING") || !strings.Contains(env, "kept") {
		t.Errorf("custom install value lost: %s", env)
	}
	got := testenv.TakeSnapshot(t, e.PG)
	delete(got, "database csghub_dataflow_logs") // created by 2.0.0's db-init job
	testenv.RequireEqual(t, want, got, "database after upgrade")
	requireGuardedUntouched(t, e, guard, "upgrade 1.15.0 -> 2.0.0")
	l := e.Plugin("history", "--dir", dir, "-o", "json")
	if !strings.Contains(l.Stdout, sum.Backup) {
		t.Fatalf("backup %s not listed for revision 1: %s", sum.Backup, l.Stdout)
	}
	if _, err := os.Stat(filepath.Join(sum.BackupPath, "upgrade-journal.json")); err != nil {
		t.Errorf("no journal beside the backup: %v", err)
	}
	if v := e.Plugin("verify"); v.Code != 0 {
		t.Errorf("verify after upgrade: exit %d: %s%s", v.Code, v.Stdout, v.Stderr)
	}
}

// 1.16.0 -> 1.17.0 works where a plain helm upgrade fails (see TestMigrateTakeover).
// Here the docker-credential Secret 1.16's Job made was deleted: 1.17 renders
// it (its lookup finds nothing), Helm creates and owns it, nothing is refused.
func TestUpgrade116To117(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.16.0")
	takeGuarded(t, e)
	secret := e.Release + "-docker-credential"
	if err := e.C.Clientset.CoreV1().Secrets("spaces").Delete(context.Background(), secret, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	requirePlanAsHelm(t, e, "1.17.0")
	r := e.Plugin("upgrade", "--version", "1.17.0", "--yes", "--dir", t.TempDir(), "--timeout", "3m")
	if r.Code != 0 || !strings.Contains(r.Stdout, "UPGRADE SUCCEEDED") {
		t.Fatalf("upgrade 1.16 -> 1.17: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	wantDeployed(t, e, "1.17.0", 0, "status")
	s, err := e.C.Clientset.CoreV1().Secrets("spaces").Get(context.Background(), secret, metav1.GetOptions{})
	if err != nil || s.Labels["app.kubernetes.io/managed-by"] != "Helm" || s.Annotations["meta.helm.sh/release-name"] != e.Release {
		t.Fatalf("Secret spaces/%s not created by the upgrade's Helm: %v %v", secret, err, s)
	}
}

// The broken 2.0.1 never becomes Ready: the upgrade fails within --timeout and
// rolls back the release and the database, explaining why.
func TestUpgradeToBrokenReleaseRollsBack(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("2.0.0")
	e.LoadSampleData()
	e.Bulk("csghub_server", 20000)
	want := testenv.TakeSnapshot(t, e.PG)
	t0 := time.Now()
	r := e.Plugin("upgrade", "--version", "2.0.1", "--yes", "--dir", t.TempDir(), "--timeout", "20s")
	elapsed := time.Since(t0)
	if r.Code != 5 {
		t.Fatalf("upgrade to 2.0.1: exit %d, want 5 (rolled back)\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "readiness") || !strings.Contains(r.Stderr, "csghub-server") || !strings.Contains(r.Stderr, "Unschedulable") {
		t.Errorf("failure not explained: %s", r.Stderr)
	}
	if elapsed > 3*time.Minute {
		t.Errorf("took %s with --timeout 20s", elapsed)
	}
	wantDeployed(t, e, "2.0.0", 3, "after the automatic rollback")
	testenv.RequireEqual(t, want, testenv.TakeSnapshot(t, e.PG), "database after the automatic rollback")
	assertNoNetworkPolicy(t, e)
}

// A second upgrade started while one runs is refused by the lock.
func TestUpgradeLock(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("2.0.0")
	dir := t.TempDir()
	first := e.StartPlugin("upgrade", "--version", "2.0.1", "--yes", "--dir", dir, "--timeout", "15s")
	testenv.Eventually(t, 60*time.Second, "the first upgrade to take the lock", func() bool {
		_, err := e.C.Clientset.CoordinationV1().Leases(e.Namespace).Get(context.Background(), "helm-csghub-csghub", metav1.GetOptions{})
		return err == nil
	})
	second := e.Plugin("upgrade", "--version", "2.0.1", "--yes", "--dir", dir)
	if second.Code != 4 || !strings.Contains(second.Stderr, "holds the lock") || !strings.Contains(second.Stderr, "delete lease helm-csghub-csghub") {
		t.Fatalf("second upgrade: exit %d: %s", second.Code, second.Stderr)
	}
	// refused before anything started: no summary, in either format
	for _, o := range []string{"table", "json"} {
		r := e.Plugin("upgrade", "--version", "2.0.1", "--yes", "--dir", dir, "-o", o)
		if r.Code != 4 || strings.TrimSpace(r.Stdout) != "" || errorLines(r.Stderr) != 1 {
			t.Fatalf("refused upgrade -o %s printed a summary: exit %d\nstdout %q\nstderr %q", o, r.Code, r.Stdout, r.Stderr)
		}
	}
	first.Wait(t, 3*time.Minute)
	if _, err := e.C.Clientset.CoordinationV1().Leases(e.Namespace).Get(context.Background(), "helm-csghub-csghub", metav1.GetOptions{}); err == nil {
		t.Fatal("lock not released after the first upgrade ended")
	}
}

// --dry-run changes nothing: objects and database content identical.
func TestUpgradeDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.LoadSampleData()
	dir := t.TempDir()
	rvs := e.ResourceVersions(e.Namespace)
	data := testenv.TakeSnapshot(t, e.PG)
	r := e.Plugin("upgrade", "--version", "2.0.0", "--dry-run", "--dir", dir, "-o", "json")
	if r.Code != 0 {
		t.Fatalf("dry run: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	sum, _ := lastSummary(t, r.Stdout)
	if !sum.DryRun || sum.Manifest == "" || len(sum.Migrations) < 2 {
		t.Fatalf("dry-run summary: %+v", sum)
	}
	testenv.RequireUnchanged(t, rvs, e.ResourceVersions(e.Namespace), "upgrade --dry-run")
	testenv.RequireEqual(t, data, testenv.TakeSnapshot(t, e.PG), "database after upgrade --dry-run")
	if entries, _ := os.ReadDir(filepath.Join(dir, e.Namespace)); len(entries) != 0 {
		t.Fatalf("dry run wrote backups: %v", entries)
	}
}

// Bad input: one-line error, non-zero exit, nothing changed.
func TestUpgradeBadInput(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	dir := t.TempDir()
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("server:\n  replicas: [1\n"), 0o600)
	rvs := e.ResourceVersions(e.Namespace)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--nosuch"}, 2, "unknown flag"},
		{[]string{"--version", "2.0.0", "--set", "server.replicas"}, 2, "values"},
		{[]string{"--version", "2.0.0", "-f", "/nonexistent/values.yaml"}, 2, "nonexistent"},
		{[]string{"--version", "2.0.0", "-f", bad}, 2, "values"},
		{[]string{"--version", "latest-please"}, 2, "not a semantic version"},
		{[]string{"--version", "1.14.0"}, 3, "nearest"},
	} {
		r := e.Plugin(append([]string{"upgrade", "--yes", "--dir", dir}, c.args...)...)
		if r.Code != c.code || !strings.Contains(r.Stderr, c.want) || errorLines(r.Stderr) != 1 {
			t.Errorf("upgrade %v: exit %d, stderr %q; want exit %d with %q", c.args, r.Code, r.Stderr, c.code, c.want)
		}
	}
	// not enough room for the dump: refused by preflight
	e.Bulk("csghub_server", 200000)
	rvs = e.ResourceVersions(e.Namespace)
	r := e.Plugin("upgrade", "--yes", "--version", "2.0.0", "--dir", smallDisk(t, "256k"))
	if r.Code != 4 || !strings.Contains(r.Stderr, "free, the dump needs about") || errorLines(r.Stderr) != 1 {
		t.Errorf("upgrade with a full backup disk: exit %d, stderr %q", r.Code, r.Stderr)
	}
	testenv.RequireUnchanged(t, rvs, e.ResourceVersions(e.Namespace), "refused upgrades")
}

// Ctrl-C during readiness (after the Helm upgrade): the rollback is finished.
func TestUpgradeInterruptedAfterHelmUpgradeRollsBack(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("2.0.0")
	p := e.StartPlugin("upgrade", "--version", "2.0.1", "--yes", "--dir", t.TempDir(), "--timeout", "2m")
	testenv.Eventually(t, 90*time.Second, "revision 2 to exist", func() bool {
		r := e.RunHelm(nil, "status", "csghub", "-n", e.Namespace, "--revision", "2")
		return r.Code == 0
	})
	time.Sleep(time.Second)
	p.Cmd.Process.Signal(syscall.SIGINT)
	code := p.Wait(t, 3*time.Minute)
	if code != 5 {
		t.Fatalf("exit %d after Ctrl-C, want 5 (rolled back); stderr %s", code, p.Stderr)
	}
	wantDeployed(t, e, "2.0.0", 0, "after interrupted upgrade")
}

// Nothing the plugin prints holds a Secret's data: the rendered manifest of
// `upgrade --dry-run` (every output format) has each Secret's keys with
// masked values; the real PostgreSQL and MongoDB passwords appear nowhere,
// plain or base64.
func TestDryRunMasksSecretData(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	secrets := map[string]string{"postgresql": postgresPassword(t, e)}
	mongo, err := e.C.Clientset.CoreV1().Secrets(e.Namespace).Get(context.Background(), e.Release+"-mongo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	secrets["mongo"] = string(mongo.Data["MONGO_INITDB_ROOT_PASSWORD"])
	dir := t.TempDir()
	var outputs []string
	for _, args := range [][]string{
		{"upgrade", "--version", "2.0.0", "--dry-run", "--dir", dir, "-o", "json"},
		{"upgrade", "--version", "2.0.0", "--dry-run", "--dir", dir, "-o", "table"},
		{"plan", "--version", "2.0.0", "-o", "json"},
		{"migrate", "--version", "2.0.0", "--dry-run"},
	} {
		r := e.Plugin(args...)
		if r.Code != 0 {
			t.Fatalf("%v: exit %d: %s", args, r.Code, r.Stderr)
		}
		outputs = append(outputs, r.Stdout+r.Stderr)
	}
	sum, _ := lastSummary(t, outputs[0])
	if !strings.Contains(sum.Manifest, "kind: Secret") || !strings.Contains(sum.Manifest, "POSTGRES_PASSWORD: '(masked: ") {
		t.Fatalf("the dry run's manifest has no masked Secret:\n%s", sum.Manifest)
	}
	for name, pw := range secrets {
		if len(pw) < 8 {
			t.Fatalf("%s password %q too short to grep for", name, pw)
		}
		for i, out := range outputs {
			for _, form := range []string{pw, base64.StdEncoding.EncodeToString([]byte(pw))} {
				if strings.Contains(out, form) {
					t.Errorf("output %d holds the %s password (%q)", i, name, form)
				}
			}
		}
	}
}
