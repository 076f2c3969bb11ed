package plan

import (
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"

	"github.com/opencsgs/helm-csghub/internal/valuemigrate"
)

// The upgrade's values: the deployed values rewritten, the operator's --set on
// top as passed (an old key there warned, not moved), unknown keys warned.
func TestUpgradeValues(t *testing.T) {
	ch, err := loader.Load("../../testdata/charts/csghub-2.4.0")
	if err != nil {
		t.Fatal(err)
	}
	opts := values.Options{Values: []string{"runner.interval=30"}}
	overrides, err := opts.MergeValues(getter.Providers{})
	if err != nil {
		t.Fatal(err)
	}
	src, err := valuemigrate.Sources(opts, getter.Providers{})
	if err != nil {
		t.Fatal(err)
	}
	p := &Prepared{Current: semver.MustParse("2.0.0"), Target: &Target{Version: semver.MustParse("2.4.0"), VersionS: "2.4.0", Chart: ch},
		Overrides: overrides, sources: src}
	base := map[string]any{"runner": map[string]any{"region": "eu-west-7"}, "legacyThing": map[string]any{"x": 1}}
	got := p.UpgradeValues(base)
	runner := got["runner"].(map[string]any)
	if runner["runner"].(map[string]any)["region"] != "eu-west-7" || runner["region"] != nil {
		t.Errorf("runner.region not carried: %v", runner)
	}
	if runner["interval"] != int64(30) {
		t.Errorf("--set runner.interval changed: %v", runner)
	}
	if got["legacyThing"] == nil || base["runner"].(map[string]any)["region"] != "eu-west-7" {
		t.Errorf("unknown key dropped or base changed: %v / %v", got, base)
	}
	w := strings.Join(p.ValueWarnings, "\n")
	for _, want := range []string{"--set runner.interval: 2.4.0 reads runner.runner.interval (left as you passed it)",
		"values key legacyThing: unknown to chart 2.4.0", "values key runner.interval: unknown to chart 2.4.0"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings lack %q:\n%s", want, w)
		}
	}
	if len(p.ValueChanges) != 1 || p.ValueChanges[0].String() != "runner.region -> runner.runner.region" {
		t.Errorf("changes %v", p.ValueChanges)
	}
	if st := p.valuesStep(); st == nil || st.Touches[0] != "runner.region -> runner.runner.region" {
		t.Errorf("plan step %+v", st)
	}
}
