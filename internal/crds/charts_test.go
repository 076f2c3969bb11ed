package crds

import (
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"

	"github.com/opencsgs/helm-csghub/internal/render"
)

// The test charts: what Helm installs with their default values, with the
// runner's gateway-helm copy enabled, and the render hazard of loki.enabled.
func TestMirrorCharts(t *testing.T) {
	for _, v := range []string{"1.16.0", "1.17.0", "2.0.0", "2.0.1"} {
		ch, err := loader.Load(filepath.Join("..", "..", "testdata", "charts", "csghub-"+v))
		if err != nil {
			t.Fatal(err)
		}
		set, err := Collect(ch, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(set.CRDs) != 20 || len(set.Duplicates()) != 0 || set.SkippedCount != 8 ||
			!strings.HasPrefix(strings.Join(set.Skipped, " "), "loki/grafana-agent-operator: ") {
			t.Errorf("%s defaults: %d CRDs, %d duplicated, skipped %d %v", v, len(set.CRDs), len(set.Duplicates()), set.SkippedCount, set.Skipped)
		}
		both, err := Collect(ch, map[string]any{"runner": map[string]any{"envoy": map[string]any{"enabled": true}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(both.CRDs) != 20 || len(both.Duplicates()) != 20 {
			t.Fatalf("%s with runner.envoy: %d CRDs, %d duplicated", v, len(both.CRDs), len(both.Duplicates()))
		}
		for _, c := range both.CRDs {
			if c.Source() != "envoy" {
				t.Errorf("%s: %s from %s (%s)", v, c.Name, c.Source(), c.Choice)
			}
			if v < "2" && !strings.HasPrefix(c.Choice, "2 identical copies (envoy, runner/envoy)") ||
				v >= "2" && !strings.HasPrefix(c.Choice, "envoy's copy won: newer than runner/envoy's (") {
				t.Errorf("%s: %s: %s", v, c.Name, c.Choice)
			}
		}
		if _, err := render.Render(render.Options{Chart: ch, Release: "csghub", Namespace: "csghub", Values: map[string]any{}}); err != nil {
			t.Errorf("%s does not render with its defaults: %v", v, err)
		}
		_, err = render.Render(render.Options{Chart: ch, Release: "csghub", Namespace: "csghub", Values: map[string]any{"loki": map[string]any{"enabled": true}}})
		if err == nil || !strings.Contains(err.Error(), `no template "common.gateway.config"`) {
			t.Errorf("%s with loki.enabled: %v", v, err)
		}
		if len(ch.Dependencies()) != 3 {
			t.Errorf("rendering changed the chart: %d dependencies", len(ch.Dependencies()))
		}
	}
}

// BenchmarkCollect: the CRD set of the 2.0.0 test chart (20 CRDs, 2.3 MB per
// gateway-helm copy, the runner's copy and loki's CRDs read for the report).
func BenchmarkCollect(b *testing.B) {
	ch, err := loader.Load(filepath.Join("..", "..", "testdata", "charts", "csghub-2.0.0"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Collect(ch, nil); err != nil {
			b.Fatal(err)
		}
	}
}
