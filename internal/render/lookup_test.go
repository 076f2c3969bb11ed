package render

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
)

// fakeCluster is a dynamic client over objs with a RESTMapper for the kinds
// the mirror charts look up; requests counts what reached it.
func fakeCluster(t *testing.T, objs ...*unstructured.Unstructured) (*Cluster, *int) {
	t.Helper()
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "Secret"}, meta.RESTScopeNamespace)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, meta.RESTScopeNamespace)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}, meta.RESTScopeRoot)
	mapper.Add(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}, meta.RESTScopeRoot)
	var ros []runtime.Object
	for _, o := range objs {
		ros = append(ros, o)
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		{Version: "v1", Resource: "secrets"}:                                                  "SecretList",
		{Version: "v1", Resource: "configmaps"}:                                               "ConfigMapList",
		{Version: "v1", Resource: "namespaces"}:                                               "NamespaceList",
		{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}: "CustomResourceDefinitionList",
	}, ros...)
	n := new(int)
	dyn.PrependReactor("*", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		*n++
		return false, nil, nil
	})
	return &Cluster{Dynamic: dyn, Mapper: mapper}, n
}

func obj(apiVersion, kind, namespace, name string, fields map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind}}
	for k, v := range fields {
		u.Object[k] = v
	}
	u.SetNamespace(namespace)
	u.SetName(name)
	return u
}

func renderOn(t *testing.T, version string, c *Cluster) *Result {
	t.Helper()
	ch, err := loader.Load(filepath.Join("..", "..", "testdata", "charts", "csghub-"+version))
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Chart: ch, Values: map[string]any{}, Release: "csghub", Namespace: "csghub", Revision: 7}
	if c != nil {
		opts.Cluster = c
	}
	res, err := Render(opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func hookNamed(res *Result, kind, name string) bool {
	for _, h := range res.Hooks {
		if h.Kind == kind && h.Name == name {
			return true
		}
	}
	return false
}

// The runner's docker-credential Secret (1.17+) is rendered only when the
// lookup does not find it: a 1.15 install's auto-configure Job made it, so
// the upgrade renders nothing there. Client-side, the lookup finds nothing.
func TestRenderLookupSkipsExistingDockerCredential(t *testing.T) {
	secret := obj("v1", "Secret", "spaces", "csghub-docker-credential", map[string]any{"type": "kubernetes.io/dockerconfigjson"})
	spaces := obj("v1", "Namespace", "", "spaces", nil)
	for _, v := range []string{"1.17.0", "2.0.0", "2.4.0"} {
		if find(renderOn(t, v, nil).Objects, "Secret", "csghub-docker-credential") == nil {
			t.Errorf("%s client-side: no Secret csghub-docker-credential (the lookup finds nothing, the chart renders it)", v)
		}
		empty, _ := fakeCluster(t)
		res := renderOn(t, v, empty)
		if s := find(res.Objects, "Secret", "csghub-docker-credential"); s == nil || s.GetNamespace() != "spaces" {
			t.Errorf("%s on a cluster without it: Secret csghub-docker-credential not rendered in spaces: %v", v, s)
		}
		if find(res.Objects, "Namespace", "spaces") == nil {
			t.Errorf("%s on a cluster without it: Namespace spaces not rendered", v)
		}
		c, _ := fakeCluster(t, secret.DeepCopy(), spaces.DeepCopy())
		res = renderOn(t, v, c)
		if find(res.Objects, "Secret", "csghub-docker-credential") != nil {
			t.Errorf("%s with the Secret live: rendered anyway (Helm's upgrade would not)", v)
		}
		if find(res.Objects, "Namespace", "spaces") != nil {
			t.Errorf("%s with Namespace spaces live: rendered anyway", v)
		}
	}
	// up to 1.16 the chart never renders it: the auto-configure Job does
	for _, v := range []string{"1.15.0", "1.16.0"} {
		if find(renderOn(t, v, nil).Objects, "Secret", "csghub-docker-credential") != nil {
			t.Errorf("%s renders the docker-credential Secret (its Job makes it)", v)
		}
	}
}

// From 2.0.0 KnativeServing is a post-upgrade hook while its CRD does not
// exist and an ordinary object once it does (a lookup of the CRD with
// .Release.IsUpgrade); 1.17 always renders it as a hook.
func TestRenderKnativeServingHookOrNotByCRDLookup(t *testing.T) {
	crd := obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "knativeservings.operator.knative.dev", nil)
	for _, v := range []string{"2.0.0", "2.4.0"} {
		with, _ := fakeCluster(t, crd.DeepCopy())
		res := renderOn(t, v, with)
		ks := find(res.Objects, "KnativeServing", "knative-serving")
		if ks == nil || hookNamed(res, "KnativeServing", "knative-serving") {
			t.Fatalf("%s with the CRD: KnativeServing not an ordinary object (objects: %v)", v, ks != nil)
		}
		if a := ks.GetAnnotations(); a["meta.helm.sh/release-name"] != "csghub" || a["helm.sh/hook"] != "" {
			t.Errorf("%s: ordinary KnativeServing annotations %v", v, a)
		}
		without, _ := fakeCluster(t)
		res = renderOn(t, v, without)
		if find(res.Objects, "KnativeServing", "knative-serving") != nil || !hookNamed(res, "KnativeServing", "knative-serving") {
			t.Errorf("%s without the CRD: KnativeServing should be a post-upgrade hook", v)
		}
		if res = renderOn(t, v, nil); find(res.Objects, "KnativeServing", "knative-serving") != nil {
			t.Errorf("%s client-side: the lookup finds nothing, so the chart takes the hook branch", v)
		}
	}
	with, _ := fakeCluster(t, crd.DeepCopy())
	if res := renderOn(t, "1.17.0", with); !hookNamed(res, "KnativeServing", "knative-serving") {
		t.Errorf("1.17.0: KnativeServing is not a hook")
	}
}

// Kept values: the PostgreSQL Secret's password and the runner ConfigMap's
// API token come from the live objects, so the render equals what exists.
func TestRenderLookupKeepsLiveSecretAndConfigMapData(t *testing.T) {
	pw := base64.StdEncoding.EncodeToString([]byte("live-password-123"))
	secret := obj("v1", "Secret", "csghub", "csghub-postgresql", map[string]any{"data": map[string]any{"POSTGRES_PASSWORD": pw}})
	cm := obj("v1", "ConfigMap", "csghub", "csghub-runner-config", map[string]any{"data": map[string]any{"API_TOKEN": "live-token"}})
	c, _ := fakeCluster(t, secret, cm)
	res := renderOn(t, "2.0.0", c)
	s := find(res.Objects, "Secret", "csghub-postgresql")
	if s == nil {
		t.Fatal("no Secret csghub-postgresql")
	}
	got, _, _ := unstructured.NestedString(s.Object, "data", "POSTGRES_PASSWORD")
	if got != pw {
		t.Errorf("rendered POSTGRES_PASSWORD %q, live %q", got, pw)
	}
	rc := find(res.Objects, "ConfigMap", "csghub-runner-config")
	if tok, _, _ := unstructured.NestedString(rc.Object, "data", "API_TOKEN"); tok != "live-token" {
		t.Errorf("runner API_TOKEN %q, want the live one", tok)
	}
	a := renderOn(t, "2.0.0", nil)
	b := renderOn(t, "2.0.0", nil)
	ta, _, _ := unstructured.NestedString(find(a.Objects, "ConfigMap", "csghub-runner-config").Object, "data", "API_TOKEN")
	tb, _, _ := unstructured.NestedString(find(b.Objects, "ConfigMap", "csghub-runner-config").Object, "data", "API_TOKEN")
	if ta == "" || ta == tb {
		t.Errorf("client-side API_TOKEN should be new on every render: %q, %q", ta, tb)
	}
}

// Repeated lookups of one object cost one request; every lookup is counted;
// the client refuses writes; .Release.Revision and IsUpgrade are Helm's.
func TestClusterCountsCachesAndIsReadOnly(t *testing.T) {
	c, sent := fakeCluster(t, obj("v1", "Secret", "csghub", "x", nil))
	res := renderOn(t, "2.0.0", c)
	if res.Lookups == 0 || res.Requests == 0 || res.Requests > res.Lookups {
		t.Errorf("lookups %d, requests %d", res.Lookups, res.Requests)
	}
	if *sent != res.Requests {
		t.Errorf("requests counted %d, sent %d", res.Requests, *sent)
	}
	before := *sent
	ri, _, err := c.GetClientFor("v1", "Secret")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := ri.Namespace("csghub").Get(ctx, "x", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if *sent != before+1 {
		t.Errorf("3 lookups of one object sent %d requests, want 1", *sent-before)
	}
	if _, err := ri.Namespace("csghub").Create(ctx, obj("v1", "Secret", "csghub", "y", nil), metav1.CreateOptions{}); err == nil {
		t.Error("Create through the lookup client succeeded")
	}
	if err := ri.Namespace("csghub").Delete(ctx, "x", metav1.DeleteOptions{}); err == nil {
		t.Error("Delete through the lookup client succeeded")
	}
	if _, _, err := c.GetClientFor("example.com/v1", "Nothing"); err == nil {
		t.Error("a kind the cluster does not serve mapped")
	}
}
