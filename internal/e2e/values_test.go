package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opencsgs/helm-csghub/internal/diff"
	"github.com/opencsgs/helm-csghub/internal/testenv"
)

// deployedValues is `helm get values -o json` of the release.
func deployedValues(t *testing.T, e *testenv.Env) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(e.MustHelm("get", "values", e.Release, "-n", e.Namespace, "-o", "json")), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func dig(m map[string]any, path string) (any, bool) {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// Values set at install under keys a later chart renamed are carried to the
// new keys by the upgrade (the runner keeps its configuration); plan lists
// each rewrite; an old key passed with --set in the run is warned about and
// left as passed; a key the target does not know is warned about by name and
// nothing else changes.
func TestUpgradeCarriesRenamedValues(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("2.0.0", "--set", "runner.region=eu-west-7", "--set", "runner.model.deployTimeout=1800",
		"--set", "server.agent.langflow.host=http://agents.example", "--set", "legacyThing.enabled=true")
	if cfg := runnerConfig(t, e); cfg["REGION"]+" "+cfg["MODEL_DEPLOY_TIMEOUT_MINUTES"] != "eu-west-7 1800" {
		t.Fatalf("runner config at 2.0.0: %v", cfg)
	}

	// plan: the rewrites, the warnings; it changes nothing
	r := e.Plugin("plan", "--version", "2.4.0", "--set", "runner.interval=30", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("plan: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	var pl struct {
		Steps []struct {
			Name    string   `json:"name"`
			Touches []string `json:"touches"`
		} `json:"steps"`
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &pl); err != nil {
		t.Fatal(err)
	}
	var rewrites []string
	for _, s := range pl.Steps {
		if s.Name == "values" {
			rewrites = s.Touches
		}
	}
	want := []string{"server.agent.langflow -> server.agenticflow", "runner.region -> runner.runner.region",
		"runner.model.deployTimeout -> runner.model.deployTimeoutInMin"}
	if strings.Join(rewrites, "; ") != strings.Join(want, "; ") {
		t.Errorf("plan's values step: %q, want %q", rewrites, want)
	}
	warnings := strings.Join(pl.Warnings, "\n")
	for _, w := range []string{"--set runner.interval: 2.4.0 reads runner.runner.interval (left as you passed it)",
		"values key legacyThing: unknown to chart 2.4.0", "values key runner.interval: unknown to chart 2.4.0"} {
		if !strings.Contains(warnings, w) {
			t.Errorf("plan warnings lack %q:\n%s", w, warnings)
		}
	}
	if strings.Contains(warnings, "runner.region") {
		t.Errorf("a carried key is warned about:\n%s", warnings)
	}
	if table := e.Plugin("plan", "--version", "2.4.0"); table.Code != 0 || !strings.Contains(table.Stdout, "runner.region -> runner.runner.region") ||
		!strings.Contains(table.Stdout, "WARNING: values key legacyThing: unknown to chart 2.4.0") {
		t.Errorf("plan table: exit %d\n%s\n%s", table.Code, table.Stdout, table.Stderr)
	}

	// plan --diff 2.0.0 -> 2.4.0: the rewrites listed, and noted on the
	// objects they keep configured (the runner's ConfigMap: its REGION is
	// not lost); the objects 2.4.0 adds and removes by name, with the
	// plugin's notes (the Dataflow StatefulSet's PVC left behind, the hook
	// emptying the Dataflow tables); the runner's API_TOKEN never printed
	rep, dr := planDiff(t, e, "--version", "2.4.0", "--set", "runner.interval=30")
	if strings.Join(rep.ValueRewrites, "; ") != strings.Join(want, "; ") {
		t.Errorf("diff valueRewrites %q, want %q", rep.ValueRewrites, want)
	}
	runnerRef := "ConfigMap " + e.Namespace + "/" + e.Release + "-runner-config"
	notes := strings.Join(rep.Notes, "\n")
	if o := rep.Find("ConfigMap", e.Namespace, e.Release+"-runner-config"); o != nil {
		notes = strings.Join(o.Notes, "\n")
		if d := strings.Join(o.Diff, "\n"); strings.Contains(d, "REGION: eu-west-7") && strings.Contains(d, "-  REGION:") {
			t.Errorf("%s: REGION changes:\n%s", runnerRef, d)
		}
	}
	if !strings.Contains(notes, "changed by the value rewrites") || !strings.Contains(notes, "runner.region -> runner.runner.region") {
		t.Errorf("%s: no note of the value rewrites: %q", runnerRef, notes)
	}
	for ref, ch := range map[string]diff.Change{
		"Deployment " + e.Namespace + "/csghub-agentichub": diff.Added,
		"StatefulSet " + e.Namespace + "/csghub-dataflow":  diff.Removed,
		"Deployment " + e.Namespace + "/csghub-dataflow":   diff.Added,
	} {
		kind, rest, _ := strings.Cut(ref, " ")
		nsName := strings.SplitN(rest, "/", 2)
		if o := rep.Find(kind, nsName[0], nsName[1]); o == nil || o.Change != ch {
			t.Errorf("diff 2.0.0 -> 2.4.0: %s want %s, got %+v", ref, ch, o)
		}
	}
	if o := rep.Find("StatefulSet", e.Namespace, "csghub-dataflow"); o != nil && !strings.Contains(strings.Join(o.Notes, " "), "data-csghub-dataflow-0") {
		t.Errorf("removed Dataflow StatefulSet without its PVC note: %v", o.Notes)
	}
	if hook := rep.Find("Job", e.Namespace, e.Release+"-dataflow-migrations"); hook == nil || hook.Change != diff.Added ||
		!strings.Contains(strings.Join(hook.Notes, " "), "csghub_dataflow") {
		t.Errorf("hook Job dataflow-migrations: %+v", hook)
	}
	cm, err := e.C.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), e.Release+"-runner-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tok := cm.Data["API_TOKEN"]; len(tok) < 8 || strings.Contains(dr.Stdout, tok) {
		t.Errorf("runner API_TOKEN (%d bytes) printed by plan --diff", len(tok))
	}
	requireNoSecrets(t, secretValues(t, e), "plan --diff 2.0.0 -> 2.4.0", dr.Stdout, dr.Stderr)

	// the upgrade installs the rewritten values
	r = e.Plugin("upgrade", "--version", "2.4.0", "--set", "runner.interval=30", "--yes", "--dir", t.TempDir(), "--timeout", "3m", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("upgrade: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	sum, _ := lastSummary(t, r.Stdout)
	var listed []string
	for _, c := range sum.Rewrites {
		listed = append(listed, c.String())
	}
	if strings.Join(listed, "; ") != strings.Join(want, "; ") {
		t.Errorf("summary rewrites %q, want %q", listed, want)
	}
	if sw := strings.Join(sum.Warnings, "\n"); !strings.Contains(sw, "values key legacyThing: unknown to chart 2.4.0") ||
		!strings.Contains(sw, "--set runner.interval: 2.4.0 reads runner.runner.interval") {
		t.Errorf("summary warnings:\n%s", sw)
	}
	vals := deployedValues(t, e)
	for path, want := range map[string]any{
		"runner.runner.region":            "eu-west-7",
		"runner.model.deployTimeoutInMin": float64(1800), // minutes, as 2.0.0 rendered it
		"server.agenticflow.host":         "http://agents.example",
		"runner.interval":                 float64(30), // the operator's --set, as passed
		"legacyThing.enabled":             true,        // unknown: warned, kept
	} {
		if got, ok := dig(vals, path); !ok || got != want {
			t.Errorf("deployed values %s = %v (%v), want %v", path, got, ok, want)
		}
	}
	for _, gone := range []string{"runner.region", "runner.model.deployTimeout", "server.agent"} {
		if got, ok := dig(vals, gone); ok {
			t.Errorf("deployed values still have %s = %v", gone, got)
		}
	}
	// the runner is configured as before the upgrade; the old --set key has no effect
	if cfg := runnerConfig(t, e); cfg["REGION"]+" "+cfg["MODEL_DEPLOY_TIMEOUT_MINUTES"]+" "+cfg["INTERVAL"] != "eu-west-7 1800 60" {
		t.Errorf("runner config at 2.4.0: %v, want REGION eu-west-7, MODEL_DEPLOY_TIMEOUT_MINUTES 1800, INTERVAL 60", cfg)
	}
}
