package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opencsgs/helm-csghub/internal/diff"
	"github.com/opencsgs/helm-csghub/internal/testenv"
)

// planDiff runs plan --diff -o json and returns the diff.
func planDiff(t *testing.T, e *testenv.Env, args ...string) (*diff.Report, testenv.Result) {
	t.Helper()
	r := e.Plugin(append([]string{"plan", "--diff", "-o", "json"}, args...)...)
	if r.Code != 0 {
		t.Fatalf("plan --diff %v: exit %d\n%s", args, r.Code, r.Stderr)
	}
	var pl struct {
		Diff *diff.Report `json:"diff"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &pl); err != nil || pl.Diff == nil {
		t.Fatalf("plan --diff -o json: %v\n%s", err, r.Stdout)
	}
	return pl.Diff, r
}

// secretValues are the release's live Secrets' values that are secrets
// (keys naming a password, token or key; 8 bytes or more), plain and base64.
func secretValues(t *testing.T, e *testenv.Env) []string {
	t.Helper()
	list, err := e.C.Clientset.CoreV1().Secrets(e.Namespace).List(context.Background(), metav1.ListOptions{LabelSelector: "owner!=helm"})
	if err != nil {
		t.Fatal(err)
	}
	secretKey := regexp.MustCompile(`(?i)pass|token|secret|key`)
	var out []string
	for _, s := range list.Items {
		for k, v := range s.Data {
			if secretKey.MatchString(k) && len(v) >= 8 {
				out = append(out, string(v), base64.StdEncoding.EncodeToString(v))
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("the release has no secret values to look for")
	}
	return out
}

func requireNoSecrets(t *testing.T, secrets []string, what string, outputs ...string) {
	t.Helper()
	for _, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s printed a secret value (%d bytes)", what, len(s))
			}
		}
	}
}

// plan --diff on the real stack, 1.15.0 -> 2.0.0: the objects the upgrade
// adds, changes and removes by name, with the plugin's notes next to them
// (the PVC Helm leaves behind the MongoDB StatefulSet); a live Deployment
// edited by hand is reported as drift; no secret value is printed (table,
// JSON, upgrade --dry-run --diff) unless --show-secrets; exit 0, or 2 with
// --detailed-exitcode; nothing changes.
func TestPlanDiff(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	ns := e.Namespace
	e.Kubectl("-n", ns, "set", "image", "deployment/csghub-server", "server=hand/edited:1")
	e.Kubectl("-n", ns, "rollout", "status", "deployment/csghub-server", "--timeout=60s")
	before := e.ResourceVersions(ns)
	secrets := secretValues(t, e)

	rep, r := planDiff(t, e, "--version", "2.0.0")
	want := map[string]diff.Change{
		"Deployment " + ns + "/csghub-server":       diff.Changed,
		"StatefulSet " + ns + "/csghub-mongo":       diff.Removed,
		"Service " + ns + "/csghub-mongo":           diff.Removed,
		"Ingress " + ns + "/csghub-portal":          diff.Removed,
		"HTTPRoute " + ns + "/csghub-portal":        diff.Added,
		"ConfigMap " + ns + "/csghub-runner-config": diff.Added,
		"Secret " + ns + "/csghub-postgresql":       diff.Changed,
	}
	got := map[string]*diff.Object{}
	for _, o := range rep.Objects {
		got[o.Ref()] = o
	}
	for ref, ch := range want {
		if o := got[ref]; o == nil || o.Change != ch {
			t.Errorf("diff: %s want %s, got %+v", ref, ch, o)
		}
	}
	server := got["Deployment "+ns+"/csghub-server"]
	if server != nil {
		if !contains(server.Fields, "image") || !regexp.MustCompile(`(?m)^\+\s+image: \S+:v2\.0\.0$`).MatchString(strings.Join(server.Diff, "\n")) {
			t.Errorf("csghub-server: fields %v, diff:\n%s", server.Fields, strings.Join(server.Diff, "\n"))
		}
		if strings.Join(server.Drift, ",") != "spec.template.spec.containers[server].image" {
			t.Errorf("csghub-server drift %v, want the hand-edited image", server.Drift)
		}
	}
	if rep.Totals.Drifted != 1 {
		t.Errorf("%d objects with drift, want 1 (csghub-server)", rep.Totals.Drifted)
	}
	if mongo := got["StatefulSet "+ns+"/csghub-mongo"]; mongo == nil || !strings.Contains(strings.Join(mongo.Notes, " "), "data-csghub-mongo-0") {
		t.Errorf("removed mongo StatefulSet without the PVC note: %+v", mongo)
	}
	// the plugin's step next to the object it concerns: the init Job
	// deleted first (finished, its pod template changes)
	if job := got["Job "+ns+"/csghub-server"]; job == nil || !strings.Contains(strings.Join(job.Notes, " "), "deleted just before the Helm upgrade") {
		t.Errorf("Job csghub-server without the delete-first note: %+v", job)
	}
	if pg := got["Secret "+ns+"/csghub-postgresql"]; pg == nil || !pg.Masked {
		t.Errorf("Secret csghub-postgresql not masked: %+v", pg)
	}
	if len(rep.Hooks) == 0 || rep.Totals.CRDs.Added == 0 || !rep.HasChanges() {
		t.Errorf("hooks %d, CRDs %+v", len(rep.Hooks), rep.Totals.CRDs)
	}
	requireNoSecrets(t, secrets, "plan --diff -o json", r.Stdout, r.Stderr)

	// the table: summary lines, drift, totals; no colour off a terminal
	table := e.Plugin("plan", "--version", "2.0.0", "--diff", "--context", "1")
	if table.Code != 0 {
		t.Fatalf("plan --diff: exit %d %s", table.Code, table.Stderr)
	}
	for _, w := range []string{"~ Deployment " + ns + "/csghub-server (", "- StatefulSet " + ns + "/csghub-mongo", "+ HTTPRoute " + ns + "/csghub-portal",
		"drift: changed by hand", "(masked: ", "Objects: "} {
		if !strings.Contains(table.Stdout, w) {
			t.Errorf("plan --diff table lacks %q", w)
		}
	}
	if strings.Contains(table.Stdout, "\x1b[") {
		t.Error("colour printed off a terminal")
	}
	requireNoSecrets(t, secrets, "plan --diff", table.Stdout, table.Stderr)

	// --detailed-exitcode: 2, the same output
	if d := e.Plugin("plan", "--version", "2.0.0", "--diff", "--detailed-exitcode", "-o", "json"); d.Code != 2 || !json.Valid([]byte(d.Stdout)) || pluginStderr(d.Stderr) != "" {
		t.Errorf("--detailed-exitcode with changes: exit %d, stderr %s", d.Code, d.Stderr)
	}
	if bad := e.Plugin("plan", "--detailed-exitcode"); bad.Code != 2 || !strings.Contains(bad.Stderr, "go with --diff") {
		t.Errorf("--detailed-exitcode without --diff: exit %d %s", bad.Code, bad.Stderr)
	}

	// upgrade --dry-run --diff: the same report in the summary, masked
	up := e.Plugin("upgrade", "--version", "2.0.0", "--dry-run", "--diff", "-o", "json", "--skip-dataflow-logs")
	if up.Code != 0 {
		t.Fatalf("upgrade --dry-run --diff: exit %d\n%s", up.Code, up.Stderr)
	}
	sum, _ := lastSummary(t, up.Stdout)
	if sum.Diff == nil || sum.Diff.Find("StatefulSet", ns, "csghub-mongo") == nil || sum.Diff.Totals.Drifted != 1 {
		t.Errorf("upgrade --dry-run --diff summary diff: %+v", sum.Diff)
	}
	requireNoSecrets(t, secrets, "upgrade --dry-run --diff", up.Stdout, up.Stderr)

	// --show-secrets: only when asked
	shown := e.Plugin("plan", "--version", "2.0.0", "--diff", "--show-secrets", "--context", "1000", "-o", "json")
	found := false
	for _, s := range secrets {
		found = found || strings.Contains(shown.Stdout, s)
	}
	if shown.Code != 0 || !found || strings.Contains(shown.Stdout, "(masked: ") {
		t.Errorf("--show-secrets: exit %d, a secret value printed: %v", shown.Code, found)
	}
	testenv.RequireUnchanged(t, before, e.ResourceVersions(ns), "plan --diff")
}
