package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opencsgs/helm-csghub/internal/testenv"
)

type planJSON struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Refused string `json:"refused"`
	Lookups int    `json:"lookups"`
	Steps   []struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Status  string `json:"status"`
	} `json:"steps"`
}

func stepNames(p planJSON) []string {
	var out []string
	for _, s := range p.Steps {
		if s.Version != "" {
			out = append(out, "v"+s.Version+" "+s.Name)
		} else {
			out = append(out, s.Name)
		}
	}
	return out
}

func getPlan(t *testing.T, e *testenv.Env, args ...string) planJSON {
	t.Helper()
	r := e.Plugin(append([]string{"plan", "-o", "json"}, args...)...)
	if r.Code != 0 {
		t.Fatalf("plan %v: exit %d: %s", args, r.Code, r.Stderr)
	}
	var p planJSON
	if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil {
		t.Fatalf("plan json: %v\n%s", err, r.Stdout)
	}
	return p
}

// The plan lists the migrations between the deployed and the target version in
// order, refuses downgrades and unknown versions, and changes nothing.
func TestPlan(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	before := e.ResourceVersions(e.Namespace)
	p := getPlan(t, e, "--version", "2.0.0")
	got := strings.Join(stepNames(p), ", ")
	if !strings.HasPrefix(got, "live-objects, backup, v1.16.0 envoy-gateway-crds, v1.17.0 helm-takeover, ") ||
		!strings.HasSuffix(got, "helm-upgrade, readiness, verify") || p.From != "1.15.0" || p.To != "2.0.0" {
		t.Fatalf("plan 1.15.0 -> 2.0.0: %s (%s -> %s)", got, p.From, p.To)
	}
	// default target: the newest version in the repository
	if latest := getPlan(t, e); latest.To != "2.4.0" {
		t.Fatalf("default target %s, want the newest 2.4.0", latest.To)
	}
	table := e.Plugin("plan", "--version", "1.17.0")
	if table.Code != 0 || !strings.Contains(table.Stdout, "v1.16.0 envoy-gateway-crds") || strings.Contains(table.Stdout, "v2.0.0") {
		t.Fatalf("plan table to 1.17.0: %s %s", table.Stdout, table.Stderr)
	}
	for _, c := range []struct {
		version string
		code    int
		want    string
	}{
		{"1.14.0", 3, "nearest: 1.15.0"},
		{"1.99.0", 3, "not available"},
		{"two", 2, "not a semantic version"},
	} {
		r := e.Plugin("plan", "--version", c.version)
		if r.Code != c.code || !strings.Contains(r.Stderr, c.want) {
			t.Errorf("plan --version %s: exit %d %q; want exit %d with %q", c.version, r.Code, r.Stderr, c.code, c.want)
		}
	}
	testenv.RequireUnchanged(t, before, e.ResourceVersions(e.Namespace), "plan")
}

// From 1.17.0 to 2.0.0 only the later steps are planned, and the CRD step,
// which runs on every upgrade; a downgrade is refused with a pointer to rollback.
func TestPlanFrom117(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.17.0")
	got := strings.Join(stepNames(getPlan(t, e, "--version", "2.0.0")), ", ")
	if strings.Contains(got, "v1.17.0") || !strings.HasPrefix(got, "live-objects, backup, v1.16.0 envoy-gateway-crds, v2.0.0 ") {
		t.Fatalf("plan 1.17.0 -> 2.0.0 lists earlier migrations: %s", got)
	}
	r := e.Plugin("plan", "--version", "1.16.0")
	if r.Code != 4 || !strings.Contains(r.Stderr, "rollback") {
		t.Fatalf("downgrade: exit %d %q; want 4 pointing to rollback", r.Code, r.Stderr)
	}
}

func crd(t *testing.T, e *testenv.Env, name string) *unstructured.Unstructured {
	t.Helper()
	o, err := e.C.Dynamic.Resource(crdGVR).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("CRD %s: %v", name, err)
	}
	return o
}

// v1.16.0 step: every CRD of the target chart installed and Established, an
// older CRD updated (with --force-conflicts when another manager owns it), a
// second run changes nothing, --dry-run changes nothing.
func TestMigrateCRDs(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	// an older Gateway API CRD already in the cluster, applied by another tool
	oldCRD := filepathJoin(e.C.Root, "testdata/charts/csghub-1.16.0/charts/gateway-helm/crds/gatewayapi-crds.yaml")
	e.Kubectl("apply", "--server-side", "--field-manager=other-tool", "-f", oldCRD)
	// the apiextensions controller updates a new CRD's status right after creation
	e.Kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", oldCRD)
	time.Sleep(time.Second)
	if v := crd(t, e, "gateways.gateway.networking.k8s.io").GetAnnotations()["gateway.networking.k8s.io/bundle-version"]; v != "v1.4.1" {
		t.Fatalf("old CRD bundle-version %q", v)
	}

	before := e.ResourceVersions(e.Namespace)
	dry := e.Plugin("migrate", "--version", "2.0.0", "--dry-run")
	if dry.Code != 0 || !strings.Contains(dry.Stdout, "create CustomResourceDefinition envoyproxies.gateway.envoyproxy.io") {
		t.Fatalf("migrate --dry-run: exit %d\n%s%s", dry.Code, dry.Stdout, dry.Stderr)
	}
	testenv.RequireUnchanged(t, before, e.ResourceVersions(e.Namespace), "migrate --dry-run")

	// without a backup of the deployed revision the v2.0.0 Dataflow logs step
	// has nowhere to export to: refused before anything changes
	nobackup := e.Plugin("migrate", "--version", "2.0.0")
	if nobackup.Code != 4 || !strings.Contains(nobackup.Stderr, "helm csghub backup") {
		t.Fatalf("migrate without a backup: exit %d %s", nobackup.Code, nobackup.Stderr)
	}
	testenv.RequireUnchanged(t, before, e.ResourceVersions(e.Namespace), "migrate refused for want of a backup")
	if b := e.Plugin("backup"); b.Code != 0 {
		t.Fatalf("backup: exit %d %s", b.Code, b.Stderr)
	}

	conflict := e.Plugin("migrate", "--version", "2.0.0")
	if conflict.Code == 0 || !strings.Contains(conflict.Stderr, "--force-conflicts") {
		t.Fatalf("migrate over a CRD owned by another manager: exit %d %s", conflict.Code, conflict.Stderr)
	}
	r := e.Plugin("migrate", "--version", "2.0.0", "--force-conflicts", "-o", "json")
	if r.Code != 0 || !strings.Contains(r.Stdout, "dataflow-logs.jsonl.zst") {
		t.Fatalf("migrate --force-conflicts: exit %d: %s\n%s", r.Code, r.Stderr, r.Stdout)
	}
	for _, name := range []string{"gatewayclasses.gateway.networking.k8s.io", "gateways.gateway.networking.k8s.io",
		"httproutes.gateway.networking.k8s.io", "envoyproxies.gateway.envoyproxy.io", "backendtrafficpolicies.gateway.envoyproxy.io"} {
		c := crd(t, e, name)
		if !crdEstablished(c) {
			t.Errorf("CRD %s not Established", name)
		}
	}
	if v := crd(t, e, "gateways.gateway.networking.k8s.io").GetAnnotations()["gateway.networking.k8s.io/bundle-version"]; v != "v1.5.0" {
		t.Errorf("older CRD not updated: bundle-version %q, want v1.5.0", v)
	}
	ep := crd(t, e, "envoyproxies.gateway.envoyproxy.io")
	if !strings.Contains(mustJSON(ep.Object), "ipFamily") {
		t.Errorf("envoyproxies CRD lacks the 2.0.0 schema property ipFamily")
	}

	after := e.ResourceVersions(e.Namespace)
	again := e.Plugin("migrate", "--version", "2.0.0")
	if again.Code != 0 || !strings.Contains(again.Stdout, "v1.16.0 envoy-gateway-crds: already applied") {
		t.Fatalf("second migrate: exit %d\n%s%s", again.Code, again.Stdout, again.Stderr)
	}
	testenv.RequireUnchanged(t, after, e.ResourceVersions(e.Namespace), "second migrate")
}

// v1.17.0 step: a plain helm upgrade 1.16.0 -> 1.17.0 fails on ownership; after
// migrate it succeeds; the lws webhooks were deleted; a CRD owned by another
// release is refused and left untouched; a second run changes nothing.
func TestMigrateTakeover(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.16.0")
	plain := []string{"upgrade", "csghub", "csghub/csghub", "--version", "1.17.0", "-n", e.Namespace, "--reuse-values"}
	if r := e.RunHelm(nil, plain...); r.Code == 0 || !strings.Contains(r.Stderr, "invalid ownership metadata") {
		t.Fatalf("plain helm upgrade 1.16 -> 1.17: exit %d, want Helm's ownership error: %s", r.Code, r.Stderr)
	}
	// a CRD annotated for another release: refused, named, untouched
	e.Kubectl("annotate", "crd", "workflows.argoproj.io", "meta.helm.sh/release-name=other", "meta.helm.sh/release-namespace=elsewhere")
	rv := crd(t, e, "workflows.argoproj.io").GetResourceVersion()
	before := e.ResourceVersions(e.Namespace, "knative-serving")
	r := e.Plugin("migrate", "--version", "1.17.0")
	if r.Code == 0 || !strings.Contains(r.Stderr, "workflows.argoproj.io") || !strings.Contains(r.Stderr, "elsewhere/other") {
		t.Fatalf("migrate with a foreign-owned CRD: exit %d: %s", r.Code, r.Stderr)
	}
	if crd(t, e, "workflows.argoproj.io").GetResourceVersion() != rv {
		t.Fatal("foreign-owned CRD was modified")
	}
	testenv.RequireUnchanged(t, before, e.ResourceVersions(e.Namespace, "knative-serving"), "refused migrate")
	e.Kubectl("annotate", "crd", "workflows.argoproj.io", "meta.helm.sh/release-name-", "meta.helm.sh/release-namespace-")

	dry := e.Plugin("migrate", "--version", "1.17.0", "--dry-run")
	if dry.Code != 0 || !strings.Contains(dry.Stdout, "adopt CustomResourceDefinition workflows.argoproj.io") ||
		!strings.Contains(dry.Stdout, "delete MutatingWebhookConfiguration lws-mutating-webhook-configuration") {
		t.Fatalf("migrate --dry-run: exit %d\n%s%s", dry.Code, dry.Stdout, dry.Stderr)
	}
	r = e.Plugin("migrate", "--version", "1.17.0")
	if r.Code != 0 || !strings.Contains(r.Stdout, "adopt CustomResourceDefinition services.serving.knative.dev") {
		t.Fatalf("migrate: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, w := range []string{"mutatingwebhookconfiguration/lws-mutating-webhook-configuration", "validatingwebhookconfiguration/lws-validating-webhook-configuration"} {
		if res := testenv.RunCmd(t, e.C.KubectlEnv(), e.C.Root, e.C.Kubectl, "get", w); res.Code == 0 {
			t.Errorf("%s still exists after the takeover", w)
		}
	}
	after := e.ResourceVersions(e.Namespace, "knative-serving")
	again := e.Plugin("migrate", "--version", "1.17.0")
	if again.Code != 0 || !strings.Contains(again.Stdout, "already applied") {
		t.Fatalf("second migrate: %s%s", again.Stdout, again.Stderr)
	}
	testenv.RequireUnchanged(t, after, e.ResourceVersions(e.Namespace, "knative-serving"), "second migrate")
	// the init Jobs' pod template is immutable: a plain helm upgrade within their
	// TTL needs them gone first (the plugin's upgrade does this itself)
	e.Kubectl("-n", e.Namespace, "delete", "job", e.Release+"-casdoor", e.Release+"-server", "--cascade=background")
	e.MustHelm(append(plain, "--wait", "--timeout", "120s")...)
	e.AfterDeploy()
}

func crdEstablished(c *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(c.Object, "status", "conditions")
	for _, x := range conds {
		m, _ := x.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
