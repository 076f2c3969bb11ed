package e2e

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opencsgs/helm-csghub/internal/testenv"
)

var ksGVR = schema.GroupVersionResource{Group: "operator.knative.dev", Version: "v1beta1", Resource: "knativeservings"}

// waitJobsFinished waits until the chart's init Jobs (ordinary resources, as in
// the real chart) are Complete: kwok completes their pods, the Job controller
// of kube-controller-manager finishes them. Returns their images.
func waitJobsFinished(t *testing.T, e *testenv.Env) map[string]string {
	t.Helper()
	names := []string{e.Release + "-casdoor", e.Release + "-server"}
	deadline := time.Now().Add(90 * time.Second)
	for {
		images := map[string]string{}
		for _, n := range names {
			j, err := e.C.Clientset.BatchV1().Jobs(e.Namespace).Get(context.Background(), n, metav1.GetOptions{})
			if err != nil {
				break
			}
			for _, c := range j.Status.Conditions {
				if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
					images[n] = j.Spec.Template.Spec.Containers[0].Image
				}
			}
		}
		if len(images) == len(names) {
			return images
		}
		if time.Now().After(deadline) {
			t.Fatalf("init Jobs %v not Complete after 90s (have %v)", names, images)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// Issue 12 part 1: right after an upgrade 1.15.0 -> 2.0.0 the init Jobs of
// 2.0.0 still exist (ttlSecondsAfterFinished 300) and their pod template is
// immutable; `rollback 1` at once deletes them first and succeeds: release
// deployed at 1.15.0, database equal to the backup, no NetworkPolicy.
func TestRollbackAtOnceAfterUpgrade(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.LoadSampleData()
	e.Bulk("csghub_server", 5000)
	waitJobsFinished(t, e) // 1.15.0's Jobs: the upgrade itself must make room for 2.0.0's
	want := testenv.TakeSnapshot(t, e.PG)
	dir := t.TempDir()
	r := e.Plugin("upgrade", "--version", "2.0.0", "--yes", "--dir", dir, "--timeout", "3m", "--skip-dataflow-logs")
	if r.Code != 0 {
		t.Fatalf("upgrade: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if imgs := waitJobsFinished(t, e); !strings.HasSuffix(imgs[e.Release+"-casdoor"], ":v2.0.0") {
		t.Fatalf("after the upgrade the init Jobs are not 2.0.0's: %v", imgs)
	}
	changeData(t, e)

	r = e.Plugin("rollback", "1", "--dir", dir, "--yes", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("rollback 1 right after the upgrade: exit %d\n%s", r.Code, r.Stderr)
	}
	var res struct {
		NewRevision int      `json:"newRevision"`
		ToChart     string   `json:"toChartVersion"`
		Status      string   `json:"status"`
		Cleared     []string `json:"cleared"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatal(err)
	}
	if res.NewRevision != 3 || res.ToChart != "1.15.0" || res.Status != "deployed" ||
		!strings.Contains(strings.Join(res.Cleared, "; "), "Job "+e.Namespace+"/"+e.Release+"-casdoor") {
		t.Fatalf("rollback result %+v", res)
	}
	got := testenv.TakeSnapshot(t, e.PG)
	delete(got, "database created_after_backup")
	// 2.0.0's PostgreSQL creates csghub_dataflow_logs; it is not in the
	// 1.15.0 backup and the restore drops no database it did not back up
	delete(got, "database csghub_dataflow_logs")
	testenv.RequireEqual(t, want, got, "after rollback at once")
	assertNoNetworkPolicy(t, e)
	if imgs := waitJobsFinished(t, e); !strings.HasSuffix(imgs[e.Release+"-casdoor"], ":v1.15.0") {
		t.Fatalf("the rollback did not recreate 1.15.0's init Jobs: %v", imgs)
	}
	wantDeployed(t, e, "1.15.0", 3, "status")
}

// Issue 12 part 5: 1.17.0 renders KnativeServing knative-serving as a hook
// (Helm never owns it), 2.0.0 as an ordinary resource once its CRD exists (a
// lookup, as the real chart): plan lists it for the takeover and the upgrade
// adopts it. Issue 23: a render whose lookups find nothing takes the hook
// branch and never adopts it, so Helm's upgrade failed.
func TestUpgrade117To200AdoptsHookObject(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.17.0")
	ctx := context.Background()
	ks, err := e.C.Dynamic.Resource(ksGVR).Namespace("knative-serving").Get(ctx, "knative-serving", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("1.17.0's hook did not create KnativeServing knative-serving: %v", err)
	}
	if ks.GetAnnotations()["meta.helm.sh/release-name"] != "" {
		t.Fatalf("hook object carries Helm ownership: %v", ks.GetAnnotations())
	}
	guard := takeGuarded(t, e)
	p := getPlan(t, e, "--version", "2.0.0")
	var live string
	for _, s := range p.Steps {
		if s.Name == "live-objects" {
			live = s.Status
		}
	}
	if !strings.HasPrefix(live, "ok") || !strings.Contains(live, "KnativeServing knative-serving/knative-serving") {
		t.Fatalf("plan's live-objects step: %q", live)
	}
	r := e.Plugin("upgrade", "--version", "2.0.0", "--yes", "--dir", t.TempDir(), "--timeout", "3m", "--skip-dataflow-logs")
	if r.Code != 0 {
		t.Fatalf("upgrade 1.17.0 -> 2.0.0: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	ks, err = e.C.Dynamic.Resource(ksGVR).Namespace("knative-serving").Get(ctx, "knative-serving", metav1.GetOptions{})
	if err != nil || ks.GetAnnotations()["meta.helm.sh/release-name"] != e.Release {
		t.Fatalf("KnativeServing not adopted: %v %v", err, ks)
	}
	// its CRD exists, so 2.0.0 renders it as an ordinary object: it is in
	// the new revision's manifest (the 1.17 hook annotation stays on the live
	// object, as with a plain helm upgrade: Helm's patch removes only what
	// the previous manifest had)
	if m := e.MustHelm("get", "manifest", e.Release, "-n", e.Namespace); !strings.Contains(m, "kind: KnativeServing") {
		t.Errorf("KnativeServing not in revision 2's manifest: the render took the hook branch")
	}
	requireGuardedUntouched(t, e, guard, "upgrade 1.17.0 -> 2.0.0")
}

// Issue 12 part 5: an object the target renders that exists without this
// release's ownership and that CSGHub did not make (created by hand, or owned
// by another release) is refused in preflight, before the backup: nothing
// written, nothing changed.
func TestUpgradeRefusesForeignObject(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	ctx := context.Background()
	for _, c := range []struct {
		name        string
		annotations map[string]string
		want        string
	}{
		{"by hand", nil, "without this release's Helm ownership"},
		{"other release", map[string]string{"meta.helm.sh/release-name": "other", "meta.helm.sh/release-namespace": "elsewhere"}, "owned by Helm release elsewhere/other"},
	} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "envoy-gateway-config", Namespace: e.Namespace, Annotations: c.annotations},
			Data: map[string]string{"made": c.name}}
		if _, err := e.C.Clientset.CoreV1().ConfigMaps(e.Namespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		before := e.ResourceVersions(e.Namespace)
		dir := t.TempDir()
		r := e.Plugin("upgrade", "--version", "2.0.0", "--yes", "--dir", dir, "--timeout", "2m", "--skip-dataflow-logs")
		if r.Code != 4 || !strings.Contains(r.Stderr, "ConfigMap "+e.Namespace+"/envoy-gateway-config") || !strings.Contains(r.Stderr, c.want) || errorLines(r.Stderr) != 1 {
			t.Fatalf("%s: exit %d, want 4 naming the ConfigMap and %q:\n%s", c.name, r.Code, c.want, r.Stderr)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%s: a backup was written: %v", c.name, entries)
		}
		testenv.RequireUnchanged(t, before, e.ResourceVersions(e.Namespace), "refused upgrade ("+c.name+")")
		st := parseStatus(t, e.Plugin("status", "-o", "json"))
		if st.Revision != 1 || st.ChartVersion != "1.15.0" {
			t.Fatalf("%s: release changed: %+v", c.name, st)
		}
		if err := e.C.Clientset.CoreV1().ConfigMaps(e.Namespace).Delete(ctx, cm.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// Issue 12 part 1: a StatefulSet change the API server refuses (the volume
// claim template's size) is shown in plan and refused before the backup;
// --recreate-statefulsets deletes it with --cascade=orphan and the upgrade
// recreates it, the PostgreSQL pod kept.
func TestUpgradeStatefulSetImmutableChange(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("2.0.0")
	ctx := context.Background()
	pod, err := e.C.Clientset.CoreV1().Pods(e.Namespace).Get(ctx, e.Release+"-postgresql-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	set := []string{"--version", "2.0.0", "--set", "postgresql.persistence.size=60Gi"}
	p := getPlan(t, e, set...)
	live := "(no live-objects step)"
	for _, s := range p.Steps {
		if s.Name == "live-objects" {
			live = s.Status
		}
	}
	if !strings.HasPrefix(live, "refused") || !strings.Contains(live, "--cascade=orphan") {
		t.Fatalf("plan's live-objects step: %q", live)
	}
	dir := t.TempDir()
	r := e.Plugin(append([]string{"upgrade", "--yes", "--dir", dir, "--timeout", "2m"}, set...)...)
	if r.Code != 4 || !strings.Contains(r.Stderr, "StatefulSet "+e.Namespace+"/"+e.Release+"-postgresql") || !strings.Contains(r.Stderr, "--recreate-statefulsets") {
		t.Fatalf("exit %d, want 4 naming the StatefulSet:\n%s", r.Code, r.Stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a backup was written: %v", entries)
	}
	r = e.Plugin(append([]string{"upgrade", "--yes", "--dir", dir, "--timeout", "3m", "--recreate-statefulsets"}, set...)...)
	if r.Code != 0 {
		t.Fatalf("with --recreate-statefulsets: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	sts, err := e.C.Clientset.AppsV1().StatefulSets(e.Namespace).Get(ctx, e.Release+"-postgresql", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if q := sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "60Gi" {
		t.Fatalf("StatefulSet not recreated with 60Gi: %s", q.String())
	}
	after, err := e.C.Clientset.CoreV1().Pods(e.Namespace).Get(ctx, e.Release+"-postgresql-0", metav1.GetOptions{})
	if err != nil || after.UID != pod.UID {
		t.Errorf("the PostgreSQL pod was not kept (orphaned then adopted): %v", err)
	}
}

// Issue 12 part 1: a rollback whose Helm step fails after the release changed
// (here an admission policy refuses 1.15.0's server Deployment) says which
// revision is current, that the database was NOT restored, and the one
// command that finishes; status of the failed release prints that command
// too (issue 27 item 10), and it finishes.
func TestRollbackHelmFailureLeavesClearState(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.LoadSampleData()
	e.Bulk("csghub_server", 5000)
	want := testenv.TakeSnapshot(t, e.PG)
	dir := t.TempDir()
	r := e.Plugin("upgrade", "--version", "2.0.0", "--yes", "--dir", dir, "--timeout", "3m", "--skip-dataflow-logs")
	if r.Code != 0 {
		t.Fatalf("upgrade: exit %d\n%s", r.Code, r.Stderr)
	}
	waitJobsFinished(t, e)
	changeData(t, e)
	changed := testenv.TakeSnapshot(t, e.PG)

	policy := filepathJoin(t.TempDir(), "deny.yaml")
	name := "deny-csghub-115-" + e.Namespace
	doc := `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: ` + name + `}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}
  validations:
  - expression: "!object.spec.template.spec.containers.exists(c, c.image.endsWith(':v1.15.0'))"
    message: "test policy: no 1.15.0 server"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: ` + name + `}
spec:
  policyName: ` + name + `
  validationActions: [Deny]
  matchResources:
    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ` + e.Namespace + `}}
`
	if err := os.WriteFile(policy, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	e.Kubectl("apply", "-f", policy)
	t.Cleanup(func() {
		testenv.RunCmd(t, e.C.KubectlEnv(), e.C.Root, e.C.Kubectl, "delete", "-f", policy, "--ignore-not-found")
	})
	time.Sleep(3 * time.Second) // the policy is enforced once the API server has loaded it

	r = e.Plugin("rollback", "1", "--dir", dir, "--yes")
	if r.Code != 6 || errorLines(r.Stderr) != 1 {
		t.Fatalf("rollback against the policy: exit %d, want 6 with one line:\n%s", r.Code, r.Stderr)
	}
	for _, s := range []string{"release is now at revision 3 (chart 1.15.0, failed)", "database was NOT restored",
		"finish with: helm csghub rollback 1 -n " + e.Namespace + " --dir " + dir + " --backup "} {
		if !strings.Contains(r.Stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.Stderr)
		}
	}
	testenv.RequireEqual(t, changed, testenv.TakeSnapshot(t, e.PG), "database after the failed rollback (untouched)")
	assertNoNetworkPolicy(t, e)

	// issue 27 item 10: status of the failed release names the command that
	// goes back (the failed rollback's target, its backup); --dir is ours
	todo := parseTodo(t, e)
	if want := "revision 3 (chart 1.15.0) is failed"; !strings.Contains(todo, want) || !strings.Contains(todo, "run `helm csghub rollback 1 -n "+e.Namespace+"`") {
		t.Fatalf("status of the failed release: TO DO %q", todo)
	}

	e.Kubectl("delete", "-f", policy)
	time.Sleep(3 * time.Second)
	args := printedCommand(t, todo)
	r = e.RunHelm(nil, append(args, "--dir", dir, "--yes")...)
	if r.Code != 0 {
		t.Fatalf("the command status printed %v: exit %d\n%s", args, r.Code, r.Stderr)
	}
	got := testenv.TakeSnapshot(t, e.PG)
	delete(got, "database created_after_backup")
	// created by 2.0.0's PostgreSQL; restore leaves databases the backup does
	// not hold as they are (docs/backups.md)
	delete(got, "database csghub_dataflow_logs")
	testenv.RequireEqual(t, want, got, "after finishing the rollback")
	wantDeployed(t, e, "1.15.0", 0, "status")
	if st := e.Plugin("status", "-o", "json"); strings.Contains(st.Stdout, `"todo"`) || strings.Contains(st.Stdout, `"lease"`) {
		t.Fatalf("status after the recovery is not clean:\n%s", st.Stdout)
	}
}
