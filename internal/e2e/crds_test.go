package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opencsgs/helm-csghub/internal/testenv"
)

type planSteps struct {
	Refused string `json:"refused"`
	Steps   []struct {
		Name    string   `json:"name"`
		Touches []string `json:"touches"`
		Status  string   `json:"status"`
	} `json:"steps"`
}

// liveCRDNames lists the cluster's CRDs (one list call).
func liveCRDNames(t *testing.T, e *testenv.Env) map[string]string {
	t.Helper()
	list, err := e.C.Dynamic.Resource(crdGVR).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range list.Items {
		out[c.GetName()] = c.GetResourceVersion()
	}
	return out
}

// Every upgrade applies exactly the CRDs Helm would install for the target and
// values: the disabled loki/grafana-agent-operator subchart's CRDs are not
// created; the runner's older gateway-helm copy (enabled with --set) is not
// applied over the envoy subchart's newer one, each CRD is applied once and the
// plan says which copy won; a CRD that is newer on the cluster (another tool
// installed it) is reported and left alone. 1.16.0 -> 2.0.0 does not cross
// 1.16.0: the step runs because it runs on every upgrade.
func TestUpgradeCRDsAsHelmWould(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.16.0")
	const newer = "xmeshes.gateway.networking.x-k8s.io"
	e.Kubectl("annotate", "crd", newer, "--overwrite", "gateway.networking.k8s.io/bundle-version=v1.6.0")
	newerRV := crd(t, e, newer).GetResourceVersion()
	set := []string{"--version", "2.0.0", "--set", "runner.envoy.enabled=true"}

	pr := e.Plugin(append([]string{"plan", "-o", "json"}, set...)...)
	if pr.Code != 0 {
		t.Fatalf("plan: exit %d %s", pr.Code, pr.Stderr)
	}
	var pl planSteps
	if err := json.Unmarshal([]byte(pr.Stdout), &pl); err != nil {
		t.Fatal(err)
	}
	var touches, status string
	for _, s := range pl.Steps {
		if s.Name == "envoy-gateway-crds" {
			touches, status = strings.Join(s.Touches, "\n"), s.Status
		}
	}
	for _, want := range []string{
		"CustomResourceDefinition gateways.gateway.networking.k8s.io (from envoy; envoy's copy won: newer than runner/envoy's (bundle-version v1.5.0 > v1.4.1))",
		"CustomResourceDefinition envoyproxies.gateway.envoyproxy.io (from envoy; envoy's copy won: newer than runner/envoy's (controller-gen version v0.19.0 > v0.18.0))",
		"not applied, subchart disabled: loki/grafana-agent-operator: ",
	} {
		if !strings.Contains(touches, want) {
			t.Errorf("plan lacks %q:\n%s", want, touches)
		}
	}
	if strings.Count(touches, "CustomResourceDefinition ") != 20 || !strings.Contains(status, "1 newer on the cluster, left alone: "+newer) {
		t.Errorf("plan: status %q, touches:\n%s", status, touches)
	}

	r := e.Plugin(append([]string{"upgrade", "--yes", "--dir", t.TempDir(), "--timeout", "3m", "-o", "json"}, set...)...)
	if r.Code != 0 {
		t.Fatalf("upgrade: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	sum, _ := lastSummary(t, r.Stdout)
	applied := map[string]int{}
	for _, m := range sum.Migrations {
		if m.Name != "envoy-gateway-crds" {
			continue
		}
		for _, c := range m.Changes {
			applied[c.Name]++
			if c.Name == newer && c.Action != "keep" {
				t.Errorf("newer CRD: %s", c)
			}
		}
	}
	if len(applied) != 20 {
		t.Errorf("the CRD step handled %d CRDs, want 20: %v", len(applied), applied)
	}
	for n, k := range applied {
		if k != 1 {
			t.Errorf("CRD %s handled %d times", n, k)
		}
	}
	if !strings.Contains(strings.Join(sum.Notes, "\n"), newer+": newer on the cluster") {
		t.Errorf("summary notes do not report the newer CRD: %v", sum.Notes)
	}
	live := liveCRDNames(t, e)
	for n := range live {
		if strings.HasSuffix(n, ".monitoring.coreos.com") || strings.HasSuffix(n, ".monitoring.grafana.com") {
			t.Errorf("CRD %s of the disabled loki subchart was created", n)
		}
	}
	if live[newer] != newerRV || crd(t, e, newer).GetAnnotations()["gateway.networking.k8s.io/bundle-version"] != "v1.6.0" {
		t.Errorf("the newer CRD %s was changed", newer)
	}
	for _, n := range []string{"gateways.gateway.networking.k8s.io", "securitypolicies.gateway.envoyproxy.io"} {
		c := crd(t, e, n)
		a := c.GetAnnotations()
		if !crdEstablished(c) || a["gateway.networking.k8s.io/bundle-version"] != "v1.5.0" && a["controller-gen.kubebuilder.io/version"] != "v0.19.0" {
			t.Errorf("CRD %s: not the newer copy or not Established: %v", n, a)
		}
	}
	// a second upgrade to the same version: the CRDs are current, nothing applied
	before := liveCRDNames(t, e)
	again := e.Plugin(append([]string{"migrate", "--dir", t.TempDir(), "--skip-dataflow-logs"}, set...)...)
	if again.Code != 0 || !strings.Contains(again.Stdout, "v1.16.0 envoy-gateway-crds: already applied") {
		t.Fatalf("migrate again: exit %d\n%s%s", again.Code, again.Stdout, again.Stderr)
	}
	if after := liveCRDNames(t, e); len(after) != len(before) {
		t.Errorf("second run changed the CRDs")
	} else {
		for n, rv := range before {
			if after[n] != rv {
				t.Errorf("second run changed CRD %s", n)
			}
		}
	}
}

// A target that does not render with the merged values (loki.enabled=true
// includes a define no chart has, as the real 1.16.0 with the Helm 3 SDK) is
// refused by plan and upgrade before anything changes: exit 4, the render
// error and the hint, no backup, the release at its revision.
func TestUpgradeRefusesTargetThatDoesNotRender(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	before := e.ResourceVersions(e.Namespace)
	dir := t.TempDir()
	bad := []string{"--version", "2.0.0", "--set", "loki.enabled=true"}

	pl := e.Plugin(append([]string{"plan"}, bad...)...)
	if pl.Code != 4 || !strings.Contains(pl.Stdout, "refused: the target chart") || !strings.Contains(pl.Stderr, `no template "common.gateway.config"`) {
		t.Errorf("plan: exit %d\n%s\n%s", pl.Code, pl.Stdout, pl.Stderr)
	}
	r := e.Plugin(append([]string{"upgrade", "--yes", "--dir", dir, "--timeout", "3m"}, bad...)...)
	// the plugin's last line (Helm adds its own "plugin exited" line after it)
	lines := strings.Split(pluginStderr(r.Stderr), "\n")
	last := lines[len(lines)-1]
	if r.Code != 4 || errorLines(r.Stderr) != 1 || !strings.HasPrefix(last, "Error: the target chart csghub/csghub 2.0.0 does not render") ||
		!strings.Contains(last, `no template "common.gateway.config"`) || !strings.Contains(last, "--set key=value or -f values.yaml") {
		t.Fatalf("upgrade: exit %d\n%s", r.Code, r.Stderr)
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 0 {
		t.Errorf("the refused upgrade wrote backup files: %v", files)
	}
	if list := e.Plugin("backup", "list", "--dir", dir); list.Code != 0 || !strings.HasPrefix(list.Stdout, "no backups of ") {
		t.Errorf("backup list after the refused upgrade: exit %d %s", list.Code, list.Stdout)
	}
	wantDeployed(t, e, "1.15.0", 1, "release after the refused upgrade")
	testenv.RequireUnchanged(t, before, e.ResourceVersions(e.Namespace), "refused upgrade")
	// the same target with values that render is planned without refusal
	if ok := e.Plugin("plan", "--version", "2.0.0"); ok.Code != 0 || strings.Contains(ok.Stdout, "refused") {
		t.Errorf("plan with the default values: exit %d %s %s", ok.Code, ok.Stdout, ok.Stderr)
	}
}
