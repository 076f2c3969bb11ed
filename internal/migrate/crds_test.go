package migrate

import (
	"context"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/opencsgs/helm-csghub/internal/render"
)

const testCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: %NAME%
  annotations:
    gateway.networking.k8s.io/bundle-version: %BUNDLE%
spec:
  group: gateway.networking.k8s.io
  names:
    kind: Thing
    plural: %PLURAL%
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
`

func crdDoc(plural, bundle string) string {
	r := strings.NewReplacer("%NAME%", plural+".gateway.networking.k8s.io", "%BUNDLE%", bundle, "%PLURAL%", plural)
	return r.Replace(testCRD)
}

func liveCRD(t *testing.T, plural, bundle string, stored ...string) *unstructured.Unstructured {
	t.Helper()
	objs, err := render.DecodeFile([]byte(crdDoc(plural, bundle)))
	if err != nil {
		t.Fatal(err)
	}
	o := objs[0]
	st := []any{}
	for _, s := range stored {
		st = append(st, s)
	}
	o.Object["status"] = map[string]any{"storedVersions": st,
		"conditions": []any{map[string]any{"type": "Established", "status": "True"}}}
	return o
}

func crdContext(t *testing.T, live ...runtime.Object) *Context {
	ch := &chart.Chart{Metadata: &chart.Metadata{APIVersion: "v2", Name: "c", Version: "2.0.0"}, Files: []*chart.File{
		{Name: "crds/a.yaml", Data: []byte(crdDoc("gateways", "v1.5.0") + "---\n" + crdDoc("httproutes", "v1.5.0") + "---\n" + crdDoc("grpcroutes", "v1.5.0"))},
	}}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{crdGVR: "CustomResourceDefinitionList"}, live...)
	return &Context{TargetChart: ch, Dynamic: dyn}
}

// Missing CRDs are created, a newer one on the cluster is kept (and noted),
// with one list of the cluster's CRDs.
func TestCRDStepNeverDowngrades(t *testing.T) {
	c := crdContext(t, liveCRD(t, "gateways", "v1.6.0", "v1"))
	applied, detail, err := envoyGatewayCRDs{}.Check(context.Background(), c)
	if err != nil || applied || detail != "2 to create, 0 to update, 0 current; 1 newer on the cluster, left alone: gateways.gateway.networking.k8s.io" {
		t.Fatalf("Check = %v %q %v", applied, detail, err)
	}
	if len(c.Notes) != 1 || !strings.Contains(c.Notes[0], "gateways.gateway.networking.k8s.io: newer on the cluster than the target chart's (bundle-version v1.6.0 > v1.5.0)") {
		t.Fatalf("notes %v", c.Notes)
	}
	envoyGatewayCRDs{}.Check(context.Background(), c)
	if len(c.Notes) != 1 {
		t.Fatalf("a second check repeated the note: %v", c.Notes)
	}
	lists := 0
	for _, a := range c.Dynamic.(*dynamicfake.FakeDynamicClient).Actions() {
		if a.GetVerb() != "list" {
			t.Errorf("unexpected request %s", a.GetVerb())
		}
		lists++
	}
	if lists != 2 {
		t.Errorf("%d list requests for two checks", lists)
	}
}

// An update that drops a version the cluster still stores is refused, naming it.
func TestCRDStepRefusesDroppingStoredVersion(t *testing.T) {
	old := liveCRD(t, "httproutes", "v1.4.1", "v1beta1", "v1")
	vs := old.Object["spec"].(map[string]any)["versions"].([]any)
	beta := map[string]any{"name": "v1beta1", "served": true, "storage": false, "schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object"}}}
	old.Object["spec"].(map[string]any)["versions"] = append(vs, beta)
	c := crdContext(t, old)
	err := envoyGatewayCRDs{}.Preflight(context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), "CustomResourceDefinition httproutes.gateway.networking.k8s.io: the target chart's copy (from c, versions v1) drops version(s) v1beta1 that the cluster still lists in status.storedVersions") {
		t.Fatalf("Preflight = %v", err)
	}
	if _, err := (envoyGatewayCRDs{}).Apply(context.Background(), c); err == nil {
		t.Fatal("Apply did not refuse")
	}
}

// A CRD the cluster has exactly as the chart's (defaults added by the API
// server) is current without a dry-run request.
func TestCRDStepCurrentWithoutRequests(t *testing.T) {
	var live []runtime.Object
	for _, p := range []string{"gateways", "httproutes", "grpcroutes"} {
		l := liveCRD(t, p, "v1.5.0", "v1")
		spec := l.Object["spec"].(map[string]any)
		spec["conversion"] = map[string]any{"strategy": "None"}
		names := spec["names"].(map[string]any)
		names["singular"], names["listKind"] = "thing", "ThingList"
		l.SetManagedFields(nil)
		live = append(live, l)
	}
	c := crdContext(t, live...)
	applied, detail, err := envoyGatewayCRDs{}.Check(context.Background(), c)
	if err != nil || !applied || detail != "all 3 CRDs present and current" {
		t.Fatalf("Check = %v %q %v", applied, detail, err)
	}
	if n := len(c.Dynamic.(*dynamicfake.FakeDynamicClient).Actions()); n != 1 {
		t.Fatalf("%d requests, want the one list", n)
	}
}
