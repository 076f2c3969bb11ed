// Package helmenvtest gives unit tests a resolved release as the operations
// receive it: release "csghub" in namespace "ns" over Helm's memory or Secrets
// driver, with Helm's fake kube client.
package helmenvtest

import (
	"io"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/kube"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"
	corev1 "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/livediff"
)

// Rev is revision version of release "csghub" in namespace "ns": chart
// chartVersion, status st, one ConfigMap as its manifest.
func Rev(version int, chartVersion string, st release.Status) *release.Release {
	return &release.Release{Name: "csghub", Namespace: "ns", Version: version,
		Info:     &release.Info{Status: st},
		Chart:    &chart.Chart{Metadata: &chart.Metadata{Name: "csghub", Version: chartVersion, APIVersion: "v2"}},
		Config:   map[string]any{},
		Manifest: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: csghub-" + chartVersion + "\n"}
}

// Fake is Helm's fake kube client (Helm's own calls to the cluster), its
// output discarded; set its *Error fields or WaitDuration to fail or slow it.
func Fake() *kubefake.FailingKubeClient {
	return &kubefake.FailingKubeClient{PrintingKubeClient: kubefake.PrintingKubeClient{Out: io.Discard}}
}

// Memory is release "csghub" in namespace "ns" with revs in Helm's memory
// storage driver and kc as Helm's kube client.
func Memory(t testing.TB, kc kube.Interface, revs ...*release.Release) *helmenv.Release {
	t.Helper()
	d := driver.NewMemory()
	d.SetNamespace("ns")
	return stored(t, d, kc, revs)
}

// Secrets is Memory with Helm's default storage: Secrets, here of a fake
// clientset (which then records Helm's reads and writes).
func Secrets(t testing.TB, s corev1.SecretInterface, kc kube.Interface, revs ...*release.Release) *helmenv.Release {
	t.Helper()
	return stored(t, driver.NewSecrets(s), kc, revs)
}

func stored(t testing.TB, d driver.Driver, kc kube.Interface, revs []*release.Release) *helmenv.Release {
	t.Helper()
	cfg := &action.Configuration{Releases: storage.Init(d), KubeClient: kc,
		Capabilities: chartutil.DefaultCapabilities, Log: func(string, ...any) {}}
	for _, r := range revs {
		if err := cfg.Releases.Create(r); err != nil {
			t.Fatal(err)
		}
	}
	return &helmenv.Release{Name: "csghub", Namespace: "ns", Settings: cli.New(), Helm: cfg}
}

// History is the stored revisions of r as "chart status", oldest first.
func History(t testing.TB, r *helmenv.Release) string {
	t.Helper()
	h, err := r.History()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(h))
	for i, x := range h {
		out[i] = helmenv.ChartVersion(x) + " " + x.Info.Status.String()
	}
	return strings.Join(out, ", ")
}

// Live is livediff's clients over client-go's fake dynamic client holding
// objs (Jobs and StatefulSets of namespace "ns"), for the code that compares
// manifests with the live objects and deletes what Helm cannot patch.
func Live(objs ...runtime.Object) livediff.Clients {
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}, meta.RESTScopeNamespace)
	mapper.Add(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}, meta.RESTScopeNamespace)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, meta.RESTScopeNamespace)
	lists := map[schema.GroupVersionResource]string{
		{Group: "batch", Version: "v1", Resource: "jobs"}:        "JobList",
		{Group: "apps", Version: "v1", Resource: "statefulsets"}: "StatefulSetList",
		{Version: "v1", Resource: "configmaps"}:                  "ConfigMapList",
	}
	return livediff.Clients{Dynamic: dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), lists, objs...), Mapper: mapper}
}

// FinishedJob is Job name in namespace "ns" running image, Complete, with the
// labels the Job controller adds to its pod template.
func FinishedJob(name, image string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "batch/v1", "kind": "Job",
		"metadata": map[string]any{"name": name, "namespace": "ns"},
		"spec": map[string]any{"template": map[string]any{
			"metadata": map[string]any{"labels": map[string]any{"batch.kubernetes.io/job-name": name}},
			"spec":     map[string]any{"restartPolicy": "OnFailure", "containers": []any{map[string]any{"name": "init", "image": image}}}}},
		"status": map[string]any{"conditions": []any{map[string]any{"type": "Complete", "status": "True"}}}}}
}

// JobManifest is the manifest document of Job name running image, as a chart renders it.
func JobManifest(name, image string) string {
	return "---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: " + name + "\nspec:\n  template:\n    spec:\n      restartPolicy: OnFailure\n      containers:\n      - name: init\n        image: " + image + "\n"
}
