package migrate

import (
	"context"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

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

// Inside Run (upgrade, migrate) the CRD step sends only what changes, with
// one list of the cluster's CRDs and no server-side dry run: a CRD identical
// to the chart's (API server defaults added) is not sent, an outdated one is
// applied server-side, a missing one is created, a newer one on the cluster
// is left alone.
func TestCRDStepSendsOnlyWhatChanged(t *testing.T) {
	current := liveCRD(t, "gateways", "v1.5.0", "v1")
	spec := current.Object["spec"].(map[string]any)
	spec["conversion"] = map[string]any{"strategy": "None"}
	names := spec["names"].(map[string]any)
	names["singular"], names["listKind"] = "thing", "ThingList"
	outdated := liveCRD(t, "httproutes", "v1.4.1", "v1")
	newer := liveCRD(t, "grpcroutes", "v1.6.0", "v1")
	ch := &chart.Chart{Metadata: &chart.Metadata{APIVersion: "v2", Name: "c", Version: "2.0.0"}, Files: []*chart.File{
		{Name: "crds/a.yaml", Data: []byte(crdDoc("gateways", "v1.5.0") + "---\n" + crdDoc("httproutes", "v1.5.0") + "---\n" +
			crdDoc("grpcroutes", "v1.5.0") + "---\n" + crdDoc("tlsroutes", "v1.5.0"))},
	}}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{crdGVR: "CustomResourceDefinitionList"}, current, outdated, newer)
	// the API server answers an apply or a create with the object, Established
	reply := func(obj *unstructured.Unstructured) *unstructured.Unstructured {
		obj = obj.DeepCopy()
		obj.Object["status"] = map[string]any{"conditions": []any{map[string]any{"type": "Established", "status": "True"}}}
		return obj
	}
	var sent []string
	dyn.PrependReactor("patch", "customresourcedefinitions", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.PatchAction)
		if p.GetPatchType() != types.ApplyPatchType {
			t.Errorf("patch type %s", p.GetPatchType())
		}
		sent = append(sent, "apply "+p.GetName())
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(p.GetPatch()); err != nil {
			t.Fatal(err)
		}
		return true, reply(obj), nil
	})
	dyn.PrependReactor("create", "customresourcedefinitions", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj := a.(k8stesting.CreateAction).GetObject().(*unstructured.Unstructured)
		sent = append(sent, "create "+obj.GetName())
		return true, reply(obj), nil
	})
	c := &Context{TargetChart: ch, Dynamic: dyn, Mapper: nil}
	res, err := Run(context.Background(), c, []Migration{envoyGatewayCRDs{}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, ch := range res[0].Changes {
		got[ch.Name] = ch.Action
	}
	want := map[string]string{"gateways.gateway.networking.k8s.io": "unchanged", "httproutes.gateway.networking.k8s.io": "update",
		"grpcroutes.gateway.networking.k8s.io": "keep", "tlsroutes.gateway.networking.k8s.io": "create"}
	for n, a := range want {
		if got[n] != a {
			t.Errorf("%s: %q, want %q (all: %v)", n, got[n], a, got)
		}
	}
	sort.Strings(sent)
	if strings.Join(sent, ",") != "apply httproutes.gateway.networking.k8s.io,create tlsroutes.gateway.networking.k8s.io" {
		t.Errorf("sent %v, want the outdated CRD applied and the missing one created only", sent)
	}
	lists := 0
	for _, a := range dyn.Actions() {
		switch a.GetVerb() {
		case "list":
			lists++
		case "patch", "create":
		default:
			t.Errorf("unexpected request %s %s", a.GetVerb(), a.GetResource().Resource)
		}
		if p, ok := a.(k8stesting.PatchActionImpl); ok && (len(p.PatchOptions.DryRun) > 0 || p.PatchOptions.FieldManager != FieldManager) {
			t.Errorf("patch %s: options %+v, want no dry run and field manager %s", p.Name, p.PatchOptions, FieldManager)
		}
		if cr, ok := a.(k8stesting.CreateActionImpl); ok && (len(cr.CreateOptions.DryRun) > 0 || cr.CreateOptions.FieldManager != FieldManager) {
			t.Errorf("create: options %+v, want no dry run and field manager %s", cr.CreateOptions, FieldManager)
		}
	}
	if lists != 1 {
		t.Errorf("%d lists of the CRDs for the check and the apply, want 1", lists)
	}
	if l, err := dyn.Resource(crdGVR).Get(context.Background(), "grpcroutes.gateway.networking.k8s.io", metav1.GetOptions{}); err != nil ||
		l.GetAnnotations()["gateway.networking.k8s.io/bundle-version"] != "v1.6.0" {
		t.Errorf("the newer CRD was changed: %v %v", l, err)
	}
}
