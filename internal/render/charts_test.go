package render

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
)

func renderMirror(t *testing.T, version string, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	return renderMirrorOn(t, version, values, nil)
}

// renderMirrorOn renders with the capabilities of a cluster serving apis.
func renderMirrorOn(t *testing.T, version string, values map[string]any, disc discovery.DiscoveryInterface) []*unstructured.Unstructured {
	t.Helper()
	ch, err := loader.Load(filepath.Join("..", "..", "testdata", "charts", "csghub-"+version))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Render(Options{Chart: ch, Values: values, Release: "csghub", Namespace: "csghub", Discovery: disc})
	if err != nil {
		t.Fatal(err)
	}
	return res.Objects
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// The mirror charts reproduce the real chart's hazards for live comparison:
// init Jobs as ordinary resources whose pod template changes between versions,
// and KnativeServing as a hook in 1.17 (absent from the manifest) but an
// ordinary resource from 2.0.
func TestMirrorChartsInitJobsAndKnativeServing(t *testing.T) {
	templates := map[string]string{}
	for _, v := range []string{"1.15.0", "1.16.0", "1.17.0", "2.0.0", "2.0.1"} {
		objs := renderMirror(t, v, nil)
		for _, name := range []string{"csghub-casdoor", "csghub-server"} {
			job := find(objs, "Job", name)
			if job == nil {
				t.Fatalf("%s: no Job %s in the manifest", v, name)
			}
			if _, hook := job.GetAnnotations()["helm.sh/hook"]; hook {
				t.Errorf("%s: Job %s is a hook", v, name)
			}
			if ttl, _, _ := unstructured.NestedFieldNoCopy(job.Object, "spec", "ttlSecondsAfterFinished"); fmt.Sprint(ttl) != "300" {
				t.Errorf("%s: Job %s ttlSecondsAfterFinished %v", v, name, ttl)
			}
			img, _, _ := unstructured.NestedSlice(job.Object, "spec", "template", "spec", "containers")
			s := img[0].(map[string]any)["image"].(string)
			if prev, ok := templates[name]; ok && prev == s {
				t.Errorf("%s: Job %s pod template unchanged from the previous version (%s)", v, name, s)
			}
			templates[name] = s
		}
		ks := find(objs, "KnativeServing", "knative-serving")
		crd := find(objs, "CustomResourceDefinition", "knativeservings.operator.knative.dev")
		switch {
		case strings.HasPrefix(v, "1.15") || strings.HasPrefix(v, "1.16"):
			if ks != nil || crd != nil {
				t.Errorf("%s renders KnativeServing or its CRD", v)
			}
		case v == "1.17.0":
			if ks != nil || crd == nil {
				t.Errorf("1.17.0: KnativeServing must be a hook (not in the manifest) and its CRD ordinary: ks=%v crd=%v", ks != nil, crd != nil)
			}
		default:
			// hook or ordinary by a lookup of its CRD (see
			// TestRenderKnativeServingHookOrNotByCRDLookup): with the CRD
			// live an ordinary object in knative-serving
			if crd == nil {
				t.Errorf("%s: no KnativeServing CRD", v)
			}
			c, _ := fakeCluster(t, obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "knativeservings.operator.knative.dev", nil))
			ks = find(renderOn(t, v, c).Objects, "KnativeServing", "knative-serving")
			if ks == nil || ks.GetNamespace() != "knative-serving" {
				t.Errorf("%s: KnativeServing knative-serving must be an ordinary resource once its CRD exists", v)
			} else if _, hook := ks.GetAnnotations()["helm.sh/hook"]; hook {
				t.Errorf("%s: KnativeServing is a hook", v)
			}
		}
	}
}

func TestMirrorChartsBenchExtraObjects(t *testing.T) {
	base := len(renderMirror(t, "2.0.0", nil))
	objs := renderMirror(t, "2.0.0", map[string]any{"bench": map[string]any{"extraObjects": 240}})
	if len(objs) != base+240 {
		t.Fatalf("bench.extraObjects=240: %d objects, want %d", len(objs), base+240)
	}
	t.Logf("2.0.0 renders %d objects, %d with bench.extraObjects=240", base, len(objs))
}
