package crds

import (
	"fmt"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opencsgs/helm-csghub/internal/render"
)

// crdYAML writes a CRD with the given annotation (key=value or ""), versions
// and spec properties.
func crdYAML(name, annotation string, versions []string, props ...string) string {
	group := name[strings.Index(name, ".")+1:]
	plural := name[:strings.Index(name, ".")]
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: %s\n", name)
	if annotation != "" {
		k, v, _ := strings.Cut(annotation, "=")
		fmt.Fprintf(&b, "  annotations:\n    %s: %s\n", k, v)
	}
	fmt.Fprintf(&b, "spec:\n  group: %s\n  names:\n    kind: K%s\n    plural: %s\n  scope: Namespaced\n  versions:\n", group, plural, plural)
	for i, v := range versions {
		fmt.Fprintf(&b, "  - name: %s\n    served: true\n    storage: %v\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            properties:\n", v, i == 0)
		for _, p := range props {
			fmt.Fprintf(&b, "              %s:\n                type: string\n", p)
		}
	}
	return b.String()
}

func obj(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	o, err := render.DecodeFile([]byte(y))
	if err != nil || len(o) != 1 {
		t.Fatalf("decode: %v", err)
	}
	return o[0]
}

func file(name string, docs ...string) *chart.File {
	return &chart.File{Name: name, Data: []byte(strings.Join(docs, "\n---\n"))}
}

func mk(name, version string, values map[string]any, deps []*chart.Dependency, files []*chart.File, subs ...*chart.Chart) *chart.Chart {
	c := &chart.Chart{Metadata: &chart.Metadata{APIVersion: "v2", Name: name, Version: version, Dependencies: deps}, Values: values, Files: files}
	c.SetDependencies(subs...)
	return c
}

const (
	gwOld = "gateway.networking.k8s.io/bundle-version=v1.4.1"
	gwNew = "gateway.networking.k8s.io/bundle-version=v1.5.0"
)

// testChart is shaped like CSGHub's: gateway-helm vendored as `envoy` and
// again inside `runner` (an older copy), loki disabled with the monitoring
// CRDs in a nested subchart, a tagged subchart.
func testChart() *chart.Chart {
	gateway := func(bundle string, extra ...string) *chart.Chart {
		return mk("gateway-helm", "1.0.0", map[string]any{}, nil, []*chart.File{
			file("crds/gatewayapi-crds.yaml", crdYAML("gateways.gateway.networking.k8s.io", bundle, []string{"v1", "v1beta1"}, append([]string{"gatewayClassName"}, extra...)...),
				crdYAML("httproutes.gateway.networking.k8s.io", bundle, []string{"v1"}, "hostnames")),
			file("crds/generated/gateway.envoyproxy.io_envoyproxies.yaml", crdYAML("envoyproxies.gateway.envoyproxy.io", "", []string{"v1alpha1"}, "provider")),
			file("templates/x.yaml", "kind: ConfigMap"),
		})
	}
	agent := mk("grafana-agent-operator", "0.5.1", map[string]any{}, nil, []*chart.File{
		file("crds/monitoring.coreos.com_podmonitors.yaml", crdYAML("podmonitors.monitoring.coreos.com", "", []string{"v1"}, "selector")),
	})
	loki := mk("loki", "6.29.0", map[string]any{"monitoring": map[string]any{"installOperator": true}},
		[]*chart.Dependency{{Name: "grafana-agent-operator", Version: "0.5.1", Condition: "monitoring.installOperator"}}, nil, agent)
	runner := mk("runner", "2.0.0", map[string]any{"envoy": map[string]any{"enabled": true}},
		[]*chart.Dependency{{Name: "gateway-helm", Alias: "envoy", Version: "1.0.0", Condition: "envoy.enabled"}}, nil, gateway(gwOld))
	extras := mk("extras", "1.0.0", map[string]any{}, nil, []*chart.File{
		file("crds/things.example.com.yaml", crdYAML("things.example.com", "", []string{"v1"}, "a")),
	})
	return mk("csghub", "2.0.0",
		map[string]any{"envoy": map[string]any{"enabled": true}, "loki": map[string]any{"enabled": false}, "runner": map[string]any{"enabled": true}},
		[]*chart.Dependency{
			{Name: "gateway-helm", Alias: "envoy", Version: "1.0.0", Condition: "envoy.enabled"},
			{Name: "loki", Version: "6.29.0", Condition: "loki.enabled"},
			{Name: "runner", Version: "2.0.0", Condition: "runner.enabled"},
			{Name: "extras", Version: "1.0.0", Tags: []string{"extras"}},
		}, nil, gateway(gwNew, "defaultScope"), loki, runner, extras)
}

func TestCollectLikeHelm(t *testing.T) {
	ch := testChart()
	set, err := Collect(ch, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(set.Names(), " ")
	want := "envoyproxies.gateway.envoyproxy.io gateways.gateway.networking.k8s.io httproutes.gateway.networking.k8s.io things.example.com"
	if got != want {
		t.Fatalf("default values: %s\nwant %s", got, want)
	}
	if set.SkippedCount != 1 || len(set.Skipped) != 1 || set.Skipped[0] != "loki/grafana-agent-operator: podmonitors.monitoring.coreos.com" {
		t.Errorf("skipped: %d %v", set.SkippedCount, set.Skipped)
	}
	// the chart given is not rewritten: a second call with other values sees every subchart
	if len(ch.Dependencies()) != 4 || ch.Metadata.Dependencies[0].Name != "gateway-helm" {
		t.Fatalf("Collect changed the chart: %d deps, first %q", len(ch.Dependencies()), ch.Metadata.Dependencies[0].Name)
	}
	on, err := Collect(ch, map[string]any{"loki": map[string]any{"enabled": true}, "tags": map[string]any{"extras": false}})
	if err != nil {
		t.Fatal(err)
	}
	got = strings.Join(on.Names(), " ")
	if !strings.Contains(got, "podmonitors.monitoring.coreos.com") || strings.Contains(got, "things.example.com") || on.SkippedCount != 1 {
		t.Fatalf("loki enabled, tag extras off: %s (skipped %v)", got, on.Skipped)
	}
	// the nested condition is read in the subchart's values, overridable from the parent
	off, _ := Collect(ch, map[string]any{"loki": map[string]any{"enabled": true, "monitoring": map[string]any{"installOperator": false}}})
	if strings.Contains(strings.Join(off.Names(), " "), "podmonitors") {
		t.Fatalf("nested condition off still installs podmonitors: %v", off.Names())
	}
	// duplicates disappear with the runner's copy disabled
	single, _ := Collect(ch, map[string]any{"runner": map[string]any{"envoy": map[string]any{"enabled": false}}})
	if d := single.Duplicates(); len(d) != 0 {
		t.Fatalf("runner.envoy.enabled=false: duplicates %v", d[0].Choice)
	}
}

func TestCollectDedupe(t *testing.T) {
	set, err := Collect(testChart(), nil)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]*CRD{}
	for _, c := range set.CRDs {
		by[c.Name] = c
	}
	gw := by["gateways.gateway.networking.k8s.io"]
	if gw.Source() != "envoy" || len(gw.Others) != 1 || gw.Others[0].Source() != "runner/envoy" ||
		!strings.Contains(gw.Choice, "envoy's copy won: newer than runner/envoy's (bundle-version v1.5.0 > v1.4.1)") {
		t.Errorf("gateways: from %s, choice %q", gw.Source(), gw.Choice)
	}
	if gw.Obj.GetAnnotations()[BundleVersion] != "v1.5.0" {
		t.Errorf("gateways: the older copy won")
	}
	ep := by["envoyproxies.gateway.envoyproxy.io"]
	if len(ep.Others) != 1 || ep.Choice != "2 identical copies (envoy, runner/envoy): applied once" {
		t.Errorf("envoyproxies: %q", ep.Choice)
	}
	if by["things.example.com"].Choice != "" {
		t.Errorf("single copy has a choice: %q", by["things.example.com"].Choice)
	}
}

// The newer copy wins wherever it sits in Helm's order; copies that cannot be
// ordered keep Helm's first.
func TestCollectNewerWinsInAnyOrder(t *testing.T) {
	older := crdYAML("envoyproxies.gateway.envoyproxy.io", ControllerGen+"=v0.18.0", []string{"v1alpha1"}, "provider")
	newer := crdYAML("envoyproxies.gateway.envoyproxy.io", ControllerGen+"=v0.19.0", []string{"v1alpha1"}, "provider", "ipFamily")
	other := crdYAML("envoyproxies.gateway.envoyproxy.io", ControllerGen+"=v0.18.0", []string{"v1alpha1"}, "other")
	root := mk("root", "1.0.0", map[string]any{}, nil, []*chart.File{file("crds/a.yaml", older), file("crds/b.yaml", newer), file("crds/c.yaml", other)})
	set, err := Collect(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := set.CRDs[0]
	if c.File != "crds/b.yaml" || len(c.Others) != 2 || !strings.Contains(c.Choice, "controller-gen version v0.19.0 > v0.18.0") {
		t.Fatalf("winner %s, choice %q", c.File, c.Choice)
	}
	tie := mk("root", "1.0.0", map[string]any{}, nil, []*chart.File{file("crds/a.yaml", older), file("crds/c.yaml", other)})
	set, _ = Collect(tie, nil)
	if c := set.CRDs[0]; c.File != "crds/a.yaml" || !strings.Contains(c.Choice, "first in Helm's order") {
		t.Fatalf("tie: winner %s, choice %q", c.File, c.Choice)
	}
}

func TestCompare(t *testing.T) {
	v := func(ann string, versions []string, props ...string) *unstructured.Unstructured {
		return obj(t, crdYAML("gateways.gateway.networking.k8s.io", ann, versions, props...))
	}
	cases := []struct {
		name string
		a, b *unstructured.Unstructured
		want Order
	}{
		{"bundle newer", v(gwNew, []string{"v1"}), v(gwOld, []string{"v1", "v1beta1"}, "x"), Newer},
		{"bundle older", v(gwOld, []string{"v1"}, "x", "y"), v(gwNew, []string{"v1"}), Older},
		{"bundle semver, not text", v("gateway.networking.k8s.io/bundle-version=v1.10.0", []string{"v1"}), v("gateway.networking.k8s.io/bundle-version=v1.9.0", []string{"v1"}), Newer},
		{"one side unannotated: versions decide", v(gwNew, []string{"v1"}), v("", []string{"v1", "v1beta1"}), Older},
		{"more versions", v("", []string{"v1", "v1beta1"}), v("", []string{"v1"}), Newer},
		{"more properties", v(gwOld, []string{"v1"}, "a", "b"), v(gwOld, []string{"v1"}, "a"), Newer},
		{"fewer properties", v(gwOld, []string{"v1"}, "a"), v(gwOld, []string{"v1"}, "a", "b"), Older},
		{"different properties", v(gwOld, []string{"v1"}, "a"), v(gwOld, []string{"v1"}, "b"), Unknown},
		{"same", v(gwOld, []string{"v1"}, "a"), v(gwOld, []string{"v1"}, "a"), Same},
	}
	for _, c := range cases {
		if r := Compare(c.a, c.b); r.Order != c.want {
			t.Errorf("%s: %v (%s), want %v", c.name, r.Order, r.Reason, c.want)
		}
	}
}

func TestStoredVersionsDropped(t *testing.T) {
	live := obj(t, crdYAML("gateways.gateway.networking.k8s.io", gwOld, []string{"v1", "v1beta1"}))
	live.Object["status"] = map[string]any{"storedVersions": []any{"v1beta1", "v1"}}
	if d := StoredVersionsDropped(live, obj(t, crdYAML("gateways.gateway.networking.k8s.io", gwNew, []string{"v1"}))); len(d) != 1 || d[0] != "v1beta1" {
		t.Fatalf("dropped %v, want [v1beta1]", d)
	}
	if d := StoredVersionsDropped(live, obj(t, crdYAML("gateways.gateway.networking.k8s.io", gwNew, []string{"v1", "v1beta1"}))); len(d) != 0 {
		t.Fatalf("dropped %v, want none", d)
	}
}

// Current sees through the API server's defaults and numbers decoded as
// int64, and asks for an update when the spec or an annotation differs.
func TestCurrent(t *testing.T) {
	chartCRD := obj(t, crdYAML("gateways.gateway.networking.k8s.io", gwNew, []string{"v1"}, "a"))
	live := chartCRD.DeepCopy()
	spec := live.Object["spec"].(map[string]any)
	spec["conversion"] = map[string]any{"strategy": "None"}
	names := spec["names"].(map[string]any)
	names["singular"], names["listKind"] = "kgateways", "KgatewaysList"
	live.SetLabels(map[string]string{"app.kubernetes.io/managed-by": "Helm"})
	names["singular"] = "kgateways"
	chartCRD.Object["spec"].(map[string]any)["names"].(map[string]any)["singular"] = "kgateways"
	if !Current(live, chartCRD) {
		t.Fatal("defaulted live CRD not current")
	}
	newer := obj(t, crdYAML("gateways.gateway.networking.k8s.io", gwNew, []string{"v1"}, "a", "b"))
	newer.Object["spec"].(map[string]any)["names"].(map[string]any)["singular"] = "kgateways"
	if Current(live, newer) {
		t.Fatal("a new property is current")
	}
	ann := chartCRD.DeepCopy()
	ann.SetAnnotations(map[string]string{BundleVersion: "v1.6.0"})
	if Current(live, ann) {
		t.Fatal("a changed annotation is current")
	}
}

// Names of CRDs that are not installed come from a line scan, or a decode
// when the file is laid out otherwise.
func TestCRDNames(t *testing.T) {
	two := crdYAML("a.example.com", "", []string{"v1"}, "x") + "---\n# comment\n" + crdYAML("b.example.com", "", []string{"v1"}) + "---\nkind: ConfigMap\nmetadata:\n  name: not-a-crd\n"
	if got := strings.Join(crdNames([]byte(two)), " "); got != "a.example.com b.example.com" {
		t.Errorf("scan: %q", got)
	}
	indented := `{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "c.example.com"}}`
	if got := strings.Join(crdNames([]byte(indented)), " "); got != "c.example.com" {
		t.Errorf("decode fallback: %q", got)
	}
}
