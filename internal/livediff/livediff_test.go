package livediff

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"
)

func obj(apiVersion, kind, ns, name string, fields map[string]any) *unstructured.Unstructured {
	o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind,
		"metadata": map[string]any{"name": name}}}
	if ns != "" {
		o.SetNamespace(ns)
	}
	for k, v := range fields {
		o.Object[k] = v
	}
	return o
}

func jobSpec(image string) map[string]any {
	return map[string]any{"template": map[string]any{"spec": map[string]any{
		"restartPolicy": "OnFailure", "containers": []any{map[string]any{"name": "init", "image": image}}}}}
}

func owned(o *unstructured.Unstructured, release string) *unstructured.Unstructured {
	o.SetLabels(map[string]string{ManagedByLabel: "Helm"})
	o.SetAnnotations(map[string]string{ReleaseNameAnn: release, ReleaseNSAnn: "csghub"})
	return o
}

func snapshot(t *testing.T, targets []*unstructured.Unstructured, live ...runtime.Object) *Snapshot {
	t.Helper()
	s, _ := snapshotClients(t, targets, live...)
	return s
}

func snapshotClients(t *testing.T, targets []*unstructured.Unstructured, live ...runtime.Object) (*Snapshot, Clients) {
	t.Helper()
	mapper := meta.NewDefaultRESTMapper(nil)
	for _, m := range []struct {
		gvk   schema.GroupVersionKind
		scope meta.RESTScope
	}{
		{schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}, meta.RESTScopeNamespace},
		{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}, meta.RESTScopeNamespace},
		{schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, meta.RESTScopeNamespace},
		{schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}, meta.RESTScopeRoot},
		{schema.GroupVersionKind{Group: "operator.knative.dev", Version: "v1beta1", Kind: "KnativeServing"}, meta.RESTScopeNamespace},
	} {
		mapper.Add(m.gvk, m.scope)
	}
	lists := map[schema.GroupVersionResource]string{
		{Group: "batch", Version: "v1", Resource: "jobs"}:                                "JobList",
		{Group: "apps", Version: "v1", Resource: "statefulsets"}:                         "StatefulSetList",
		{Version: "v1", Resource: "configmaps"}:                                          "ConfigMapList",
		{Version: "v1", Resource: "namespaces"}:                                          "NamespaceList",
		{Group: "operator.knative.dev", Version: "v1beta1", Resource: "knativeservings"}: "KnativeServingList",
	}
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), lists, live...)
	c := Clients{Dynamic: dyn, Mapper: mapper}
	s, err := Take(context.Background(), c, "csghub", targets)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// Guard.Check + Clear: the finished Job is deleted (and gone), the running one
// refused unless DeleteRunningJobs, an unchanged one left alone.
func TestGuardClear(t *testing.T) {
	done := map[string]any{"conditions": []any{map[string]any{"type": "Complete", "status": "True"}}}
	live := []runtime.Object{
		obj("batch/v1", "Job", "csghub", "a", map[string]any{"spec": jobSpec("a:1"), "status": done}),
		obj("batch/v1", "Job", "csghub", "b", map[string]any{"spec": jobSpec("b:1")}),
		obj("batch/v1", "Job", "csghub", "c", map[string]any{"spec": jobSpec("c:1"), "status": done}),
	}
	targets := []*unstructured.Unstructured{
		obj("batch/v1", "Job", "", "a", map[string]any{"spec": jobSpec("a:2")}),
		obj("batch/v1", "Job", "", "b", map[string]any{"spec": jobSpec("b:2")}),
		obj("batch/v1", "Job", "", "c", map[string]any{"spec": jobSpec("c:1")}),
		obj("v1", "ConfigMap", "", "not-compared", nil),
	}
	_, c := snapshotClients(t, targets, live...)
	ctx := context.Background()
	g := &Guard{Clients: c, Namespace: "csghub"}
	if _, err := g.Check(ctx, targets, nil); err == nil || !strings.Contains(err.Error(), "Job csghub/b") {
		t.Fatalf("running Job not refused: %v", err)
	}
	g.DeleteRunningJobs = true
	im, err := g.Check(ctx, targets, nil)
	if err != nil {
		t.Fatal(err)
	}
	deleted, err := g.Clear(ctx, im)
	if err != nil || len(deleted) != 2 {
		t.Fatalf("cleared %v, %v", deleted, err)
	}
	jobs := schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
	for name, gone := range map[string]bool{"a": true, "b": true, "c": false} {
		_, err := c.Dynamic.Resource(jobs).Namespace("csghub").Get(ctx, name, metav1.GetOptions{})
		if (err != nil) != gone {
			t.Errorf("Job %s: gone=%v, want %v", name, err != nil, gone)
		}
	}
}

func TestFindImmutableJobs(t *testing.T) {
	done := map[string]any{"conditions": []any{map[string]any{"type": "Complete", "status": "True"}}}
	liveFinished := obj("batch/v1", "Job", "csghub", "csghub-casdoor", map[string]any{"spec": jobSpec("casdoor:v1.15.0"), "status": done})
	liveRunning := obj("batch/v1", "Job", "csghub", "csghub-server", map[string]any{"spec": jobSpec("server:v1.15.0"), "status": map[string]any{"active": int64(1)}})
	liveSame := obj("batch/v1", "Job", "csghub", "csghub-same", map[string]any{"spec": jobSpec("same:1"), "status": done})
	// the API server's defaults and the Job controller's labels are not changes
	tmpl := liveSame.Object["spec"].(map[string]any)["template"].(map[string]any)
	tmpl["metadata"] = map[string]any{"labels": map[string]any{"batch.kubernetes.io/job-name": "csghub-same"}}
	tmpl["spec"].(map[string]any)["dnsPolicy"] = "ClusterFirst"
	targets := []*unstructured.Unstructured{
		obj("batch/v1", "Job", "", "csghub-casdoor", map[string]any{"spec": jobSpec("casdoor:v2.0.0")}),
		obj("batch/v1", "Job", "", "csghub-server", map[string]any{"spec": jobSpec("server:v2.0.0")}),
		obj("batch/v1", "Job", "", "csghub-same", map[string]any{"spec": jobSpec("same:1")}),
		obj("batch/v1", "Job", "", "csghub-new", map[string]any{"spec": jobSpec("new:1")}),
	}
	s := snapshot(t, targets, liveFinished, liveRunning, liveSame)
	if s.Lists != 1 {
		t.Errorf("%d lists for one kind in one namespace", s.Lists)
	}
	im := FindImmutable(s, "csghub", targets, nil)
	if len(im.DeleteJobs) != 1 || im.DeleteJobs[0].Name != "csghub-casdoor" {
		t.Errorf("finished Jobs to delete: %v", im.DeleteJobs)
	}
	if len(im.RunningJobs) != 1 || im.RunningJobs[0].Key.Name != "csghub-server" {
		t.Errorf("running Jobs: %v", im.RunningJobs)
	}
	if err := (&Guard{}).Refusal(im); err == nil || !strings.Contains(err.Error(), "csghub-server") {
		t.Errorf("refusal %v", err)
	}
	if err := (&Guard{DeleteRunningJobs: true}).Refusal(im); err != nil {
		t.Errorf("automatic rollback refused: %v", err)
	}
	// a field dropped since the previous manifest is a change Helm would patch
	prev := []*unstructured.Unstructured{obj("batch/v1", "Job", "", "csghub-same", map[string]any{"spec": jobSpec("same:1")})}
	prev[0].Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["nodeSelector"] = map[string]any{"a": "b"}
	if im := FindImmutable(s, "csghub", targets[2:3], prev); len(im.DeleteJobs) != 1 {
		t.Errorf("dropped field not seen: %+v", im)
	}
}

// Issue 27 item 1: a Job the target renders that the previous manifest lacks
// (2.4.0 renamed csghub-casdoor to csghub-casdoor-migrate; rolling back to
// 2.0.0 brings it back) is patched by Helm against the live object, whose
// template carries the Job controller's labels: "field is immutable" even
// with the same template. A finished one is deleted for Helm to recreate; a
// running one is a blocker.
func TestFindImmutableJobNotInPrevious(t *testing.T) {
	done := map[string]any{"conditions": []any{map[string]any{"type": "Complete", "status": "True"}}}
	live := obj("batch/v1", "Job", "csghub", "csghub-casdoor", map[string]any{"spec": jobSpec("casdoor:v2.0.0"), "status": done})
	tmpl := live.Object["spec"].(map[string]any)["template"].(map[string]any)
	tmpl["metadata"] = map[string]any{"labels": map[string]any{"batch.kubernetes.io/job-name": "csghub-casdoor"}}
	running := obj("batch/v1", "Job", "csghub", "csghub-server", map[string]any{"spec": jobSpec("server:v2.0.0"), "status": map[string]any{"active": int64(1)}})
	targets := []*unstructured.Unstructured{
		obj("batch/v1", "Job", "", "csghub-casdoor", map[string]any{"spec": jobSpec("casdoor:v2.0.0")}),
		obj("batch/v1", "Job", "", "csghub-server", map[string]any{"spec": jobSpec("server:v2.0.0")}),
	}
	previous := []*unstructured.Unstructured{
		obj("batch/v1", "Job", "", "csghub-casdoor-migrate", map[string]any{"spec": jobSpec("casdoor:v2.4.0")}),
		obj("batch/v1", "Job", "", "csghub-server-migrate", map[string]any{"spec": jobSpec("server:v2.4.0")}),
	}
	s := snapshot(t, targets, live, running)
	im := FindImmutable(s, "csghub", targets, previous)
	if len(im.DeleteJobs) != 1 || im.DeleteJobs[0].Name != "csghub-casdoor" {
		t.Errorf("finished Job not in the previous manifest not deleted: %+v", im.DeleteJobs)
	}
	if len(im.RunningJobs) != 1 || im.RunningJobs[0].Key.Name != "csghub-server" {
		t.Errorf("running Job not in the previous manifest not a blocker: %+v", im.RunningJobs)
	}
	// unknown previous manifest (nil): only a template change counts
	if im := FindImmutable(s, "csghub", targets, nil); !im.Empty() {
		t.Errorf("without a previous manifest: %+v", im)
	}
	// likewise a StatefulSet (2.0.0's Dataflow; 2.4.0 has a Deployment of that
	// name): patched against the live object, refused; recreated (orphan)
	liveSTS := obj("apps/v1", "StatefulSet", "csghub", "csghub-dataflow", map[string]any{"spec": sts("csghub-dataflow", "10Gi")})
	target := []*unstructured.Unstructured{obj("apps/v1", "StatefulSet", "", "csghub-dataflow", map[string]any{"spec": sts("csghub-dataflow", "10Gi")})}
	prevDeploy := []*unstructured.Unstructured{obj("apps/v1", "Deployment", "", "csghub-dataflow", nil)}
	im = FindImmutable(snapshot(t, target, liveSTS), "csghub", target, prevDeploy)
	if len(im.StatefulSets) != 1 || !strings.Contains(im.StatefulSets[0].Reason, "not in the manifest Helm patches from") {
		t.Errorf("StatefulSet not in the previous manifest: %+v", im)
	}
}

func sts(serviceName, size string) map[string]any {
	return map[string]any{"serviceName": serviceName,
		"selector": map[string]any{"matchLabels": map[string]any{"app": "pg"}},
		"volumeClaimTemplates": []any{map[string]any{"metadata": map[string]any{"name": "data"},
			"spec": map[string]any{"accessModes": []any{"ReadWriteOnce"}, "resources": map[string]any{"requests": map[string]any{"storage": size}}}}}}
}

func TestFindImmutableStatefulSets(t *testing.T) {
	live := obj("apps/v1", "StatefulSet", "csghub", "csghub-postgresql", map[string]any{"spec": sts("csghub-postgresql", "10Gi")})
	live.Object["spec"].(map[string]any)["podManagementPolicy"] = "OrderedReady"
	for _, c := range []struct {
		name, svc, size, want string
	}{
		{"same (quantity spelled differently)", "csghub-postgresql", "10240Mi", ""},
		{"volume size", "csghub-postgresql", "20Gi", "spec.volumeClaimTemplates"},
		{"service name", "other", "10Gi", "spec.serviceName"},
	} {
		target := []*unstructured.Unstructured{obj("apps/v1", "StatefulSet", "", "csghub-postgresql", map[string]any{"spec": sts(c.svc, c.size)})}
		im := FindImmutable(snapshot(t, target, live.DeepCopy()), "csghub", target, nil)
		got := ""
		if len(im.StatefulSets) > 0 {
			got = im.StatefulSets[0].Reason
		}
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
		if c.want != "" && !strings.Contains(im.StatefulSets[0].Fix, "--cascade=orphan") {
			t.Errorf("%s: fix %q", c.name, im.StatefulSets[0].Fix)
		}
	}
}

func TestFindOwnership(t *testing.T) {
	targets := []*unstructured.Unstructured{
		obj("v1", "ConfigMap", "", "csghub-ours", nil),
		obj("v1", "ConfigMap", "", "csghub-by-hand", nil),
		obj("v1", "ConfigMap", "", "csghub-other", nil),
		obj("v1", "ConfigMap", "", "csghub-new", nil),
		obj("v1", "Namespace", "", "knative-serving", nil),
		obj("operator.knative.dev/v1beta1", "KnativeServing", "knative-serving", "knative-serving", nil),
	}
	byHand := obj("v1", "ConfigMap", "csghub", "csghub-by-hand", nil)
	byHand.SetManagedFields(nil)
	s := snapshot(t, targets,
		owned(obj("v1", "ConfigMap", "csghub", "csghub-ours", nil), "csghub"),
		byHand,
		owned(obj("v1", "ConfigMap", "csghub", "csghub-other", nil), "another"),
		obj("v1", "Namespace", "", "knative-serving", nil),
		obj("operator.knative.dev/v1beta1", "KnativeServing", "knative-serving", "knative-serving", nil))
	o := FindOwnership(s, "csghub", "csghub", targets)
	if o.Owned != 1 {
		t.Errorf("owned %d", o.Owned)
	}
	if got := strings.Join(o.AdoptNames(), ", "); got != "KnativeServing knative-serving/knative-serving, Namespace knative-serving" {
		t.Errorf("adopt: %s", got)
	}
	if len(o.Foreign) != 2 || !strings.Contains(o.Error(), "ConfigMap csghub/csghub-by-hand exists without this release's Helm ownership") ||
		!strings.Contains(o.Error(), "ConfigMap csghub/csghub-other owned by Helm release csghub/another") {
		t.Errorf("foreign: %s", o.Error())
	}
	s.MarkOwned(o.Adopt[0], "csghub", "csghub")
	if o2 := FindOwnership(s, "csghub", "csghub", targets); o2.Owned != 2 || len(o2.Adopt) != 1 {
		t.Errorf("after MarkOwned: owned %d adopt %v", o2.Owned, o2.Adopt)
	}
}
