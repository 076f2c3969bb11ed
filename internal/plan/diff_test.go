package plan

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"

	"github.com/opencsgs/helm-csghub/internal/diff"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/livediff"
	"github.com/opencsgs/helm-csghub/internal/migrate"
	"github.com/opencsgs/helm-csghub/internal/render"
)

// The PVCs a removed StatefulSet leaves: one per claim template and replica.
func TestClaimNames(t *testing.T) {
	objs, err := render.SplitManifest(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: csghub-mongo}
spec:
  replicas: 2
  volumeClaimTemplates:
  - metadata: {name: data}
  - metadata: {name: logs}
`)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(claimNames(objs[0]), ","); got != "data-csghub-mongo-0,data-csghub-mongo-1,logs-csghub-mongo-0,logs-csghub-mongo-1" {
		t.Fatalf("claims %s", got)
	}
}

// An object listed only for its drift goes where the report's order puts it.
func TestInsertSorted(t *testing.T) {
	objs := []*diff.Object{{Kind: "ConfigMap", Name: "a"}, {Kind: "Service", Name: "b"}}
	objs = insertSorted(objs, &diff.Object{Kind: "Deployment", Name: "x"})
	objs = insertSorted(objs, &diff.Object{Kind: "StatefulSet", Name: "y"})
	var got []string
	for _, o := range objs {
		got = append(got, o.Kind)
	}
	if strings.Join(got, ",") != "ConfigMap,Deployment,Service,StatefulSet" {
		t.Fatalf("order %v", got)
	}
}

// A Deployment the upgrade leaves as it is in the manifest but that was
// scaled by hand: listed for its drift (the upgrade writes replicas back),
// counted as changed; one list of Deployments answers it.
func TestDriftOnlyObject(t *testing.T) {
	manifest := func(replicas int) []*unstructured.Unstructured {
		objs, err := render.SplitManifest(fmt.Sprintf("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: csghub}\nspec: {replicas: %d}\n", replicas))
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	old, target := manifest(1), manifest(1)
	live := manifest(3)[0]
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, meta.RESTScopeNamespace)
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{{Group: "apps", Version: "v1", Resource: "deployments"}: "DeploymentList"}, live)
	p := &Prepared{Resolved: &helmenv.Release{Name: "csghub", Namespace: "csghub"}, Migrate: &migrate.Context{Dynamic: dyn, Mapper: mapper}}
	rep := diff.Compute(diff.Input{Old: old, New: target}, diff.Options{})
	if rep.HasChanges() {
		t.Fatal("identical manifests have changes")
	}
	if err := p.drift(context.Background(), rep, old, target); err != nil {
		t.Fatal(err)
	}
	o := rep.Find("Deployment", "csghub", "web")
	if o == nil || strings.Join(o.Drift, ",") != "spec.replicas" || len(o.Diff) != 0 || o.Change != diff.Changed {
		t.Fatalf("drift-only object: %+v", o)
	}
	if rep.Totals.Drifted != 1 || rep.Totals.Objects != (diff.Counts{Changed: 1}) || !rep.HasChanges() {
		t.Fatalf("totals %+v", rep.Totals)
	}
}

// The plugin's own steps are noted on the objects they concern: an object
// the takeover adopts, a finished Job deleted first, the PVCs a removed
// StatefulSet leaves, a removed object Helm keeps; a note about an object
// the upgrade does not change goes to the report.
func TestExplainPlugin(t *testing.T) {
	old, err := render.SplitManifest(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: mongo, namespace: csghub}
spec:
  volumeClaimTemplates: [{metadata: {name: data}}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: keepme, namespace: csghub, annotations: {helm.sh/resource-policy: keep}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: init, namespace: csghub}
spec: {template: {spec: {containers: [{name: a, image: a:1}]}}}
`)
	if err != nil {
		t.Fatal(err)
	}
	target, err := render.SplitManifest(`apiVersion: batch/v1
kind: Job
metadata: {name: init, namespace: csghub}
spec: {template: {spec: {containers: [{name: a, image: a:2}]}}}
---
apiVersion: v1
kind: Namespace
metadata: {name: knative-serving}
`)
	if err != nil {
		t.Fatal(err)
	}
	rep := diff.Compute(diff.Input{Old: old, New: target}, diff.Options{})
	p := &Prepared{Resolved: &helmenv.Release{Name: "csghub", Namespace: "csghub"}, Live: &Live{
		Ownership: &livediff.Ownership{Adopt: []livediff.Key{{Kind: "Namespace", Name: "knative-serving"}, {Kind: "ConfigMap", Namespace: "csghub", Name: "untouched"}}},
		Immutable: &livediff.Immutable{DeleteJobs: []livediff.Key{{Group: "batch", Kind: "Job", Namespace: "csghub", Name: "init"}}},
	}}
	p.explainPlugin(rep, old)
	notes := func(kind, ns, name string) string {
		o := rep.Find(kind, ns, name)
		if o == nil {
			t.Fatalf("%s %s/%s not in the diff", kind, ns, name)
		}
		return strings.Join(o.Notes, " | ")
	}
	for _, c := range []struct{ kind, ns, name, want string }{
		{"Namespace", "", "knative-serving", "adopted by the takeover"},
		{"Job", "csghub", "init", "deleted just before the Helm upgrade"},
		{"StatefulSet", "csghub", "mongo", "data-mongo-0"},
		{"PersistentVolumeClaim", "csghub", "keepme", "Helm leaves it in the cluster"},
	} {
		if n := notes(c.kind, c.ns, c.name); !strings.Contains(n, c.want) {
			t.Errorf("%s %s: notes %q, want %q", c.kind, c.name, n, c.want)
		}
	}
	if len(rep.Notes) != 1 || !strings.HasPrefix(rep.Notes[0], "ConfigMap csghub/untouched: ") {
		t.Errorf("report notes %q", rep.Notes)
	}
}
