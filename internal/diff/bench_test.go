package diff

import (
	"bytes"
	"path/filepath"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opencsgs/helm-csghub/internal/render"
)

// mirrorInput renders two mirror charts (testdata/charts) client-side with
// bench.extraObjects=n, as a deployed release and its target.
func mirrorInput(tb testing.TB, from, to string, n int) Input {
	tb.Helper()
	renderOne := func(v string) ([]*unstructured.Unstructured, []*unstructured.Unstructured) {
		ch, err := loader.Load(filepath.Join("..", "..", "testdata", "charts", "csghub-"+v))
		if err != nil {
			tb.Fatal(err)
		}
		res, err := render.Render(render.Options{Chart: ch, Values: map[string]any{"bench": map[string]any{"extraObjects": n}},
			Release: "csghub", Namespace: "csghub"})
		if err != nil {
			tb.Fatal(err)
		}
		var hooks []*unstructured.Unstructured
		for _, h := range res.Hooks {
			objs, err := render.SplitManifest(h.Manifest)
			if err != nil {
				tb.Fatal(err)
			}
			hooks = append(hooks, objs...)
		}
		return res.Objects, hooks
	}
	in := Input{}
	in.Old, in.OldHooks = renderOne(from)
	in.New, in.NewHooks = renderOne(to)
	return in
}

// The diff of a real-size release (about 270 objects): 1.15.0 -> 2.0.0 of
// the mirror charts with bench.extraObjects=240, computed and printed.
func BenchmarkDiffRealSize(b *testing.B) {
	in := mirrorInput(b, "1.15.0", "2.0.0", 240)
	b.ReportMetric(float64(len(in.New)), "objects")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := Compute(in, Options{Context: 3})
		var out bytes.Buffer
		Write(&out, r, false)
	}
}

// The mirror charts' 1.15.0 -> 2.0.0: the objects the real chart changes.
func TestMirrorCharts(t *testing.T) {
	r := Compute(mirrorInput(t, "1.15.0", "2.0.0", 0), Options{Context: 3})
	var out bytes.Buffer
	Write(&out, r, false)
	t.Log(out.String())
}
