package plan

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v3/pkg/release"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/migrate"
	"github.com/opencsgs/helm-csghub/internal/verify"
)

func versions(ss ...string) []*semver.Version {
	var out []*semver.Version
	for _, s := range ss {
		out = append(out, semver.MustParse(s))
	}
	return out
}

func TestPickVersion(t *testing.T) {
	avail := versions("1.15.0", "1.16.0", "1.17.0", "2.0.0", "2.0.1", "2.1.0-rc.1")
	if v, err := pickVersion(avail, nil); err != nil || v.String() != "2.0.1" {
		t.Fatalf("newest stable = %v, %v; want 2.0.1 (pre-releases skipped)", v, err)
	}
	if v, err := pickVersion(avail, semver.MustParse("1.17.0")); err != nil || v.String() != "1.17.0" {
		t.Fatalf("pick 1.17.0 = %v, %v", v, err)
	}
	_, err := pickVersion(avail, semver.MustParse("1.18.0"))
	if errs.KindOf(err) != errs.NotFound || !strings.Contains(err.Error(), "nearest: ") || !strings.Contains(err.Error(), "1.17.0, 2.0.0") {
		t.Fatalf("unknown version error: %v", err)
	}
}

func TestParseVersionAndDowngrade(t *testing.T) {
	if _, err := ParseVersion("v2.0.0"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"latest", "2.0", ""} {
		if _, err := ParseVersion(bad); errs.KindOf(err) != errs.Usage {
			t.Errorf("ParseVersion(%q) = %v, want a usage error", bad, err)
		}
	}
	if _, err := CompareCurrent("2.0.0", semver.MustParse("1.17.0")); errs.KindOf(err) != errs.Precondition || !strings.Contains(err.Error(), "rollback") {
		t.Fatalf("downgrade: %v", err)
	}
	if _, err := CompareCurrent("1.15.0", semver.MustParse("2.0.0")); err != nil {
		t.Fatal(err)
	}
}

// Overrides merge into the backed-up values like a later -f file.
func TestMergeValues(t *testing.T) {
	base := map[string]any{"server": map[string]any{"replicas": 1, "env": map[string]any{"A": "1"}}, "keep": true}
	over := map[string]any{"server": map[string]any{"env": map[string]any{"B": "2"}}, "new": "x"}
	want := map[string]any{"server": map[string]any{"replicas": 1, "env": map[string]any{"A": "1", "B": "2"}}, "keep": true, "new": "x"}
	if got := MergeValues(base, over); !reflect.DeepEqual(got, want) {
		t.Fatalf("MergeValues = %v, want %v", got, want)
	}
	if base["new"] != nil || len(base["server"].(map[string]any)["env"].(map[string]any)) != 1 {
		t.Fatal("MergeValues modified its input")
	}
}

// A target that does not render is a precondition (exit 4) naming the render
// error on one line and the --set/-f hint.
func TestCheckRender(t *testing.T) {
	p := &Prepared{Target: &Target{Ref: "csghub/csghub", VersionS: "2.0.0"}, Migrate: &migrate.Context{
		Rendered: func() ([]*unstructured.Unstructured, error) {
			return nil, errors.New("rendering csghub-2.0.0: template: csghub/charts/loki/templates/secret.yaml:12:13: executing ...\nerror calling include: no template \"common.gateway.config\"")
		}}}
	err := p.CheckRender()
	if errs.KindOf(err) != errs.Precondition || errs.KindOf(err).ExitCode() != 4 || strings.Contains(err.Error(), "\n") ||
		!strings.Contains(err.Error(), `the target chart csghub/csghub 2.0.0 does not render`) ||
		!strings.Contains(err.Error(), `no template "common.gateway.config"`) || !strings.Contains(err.Error(), "--set key=value or -f values.yaml") {
		t.Fatalf("CheckRender = %v", err)
	}
	p.Migrate.Rendered = func() ([]*unstructured.Unstructured, error) { return nil, nil }
	if err := p.CheckRender(); err != nil {
		t.Fatal(err)
	}
}

// plan's verify step describes the checks verify runs, all eight of them,
// not the two of an older plugin (issue 27 item 14).
func TestVerifyStepDescribesTheChecksRun(t *testing.T) {
	p := &Prepared{Resolved: &helmenv.Release{Name: "csghub", Namespace: "csghub"}, Release: &release.Release{Version: 1},
		Current: semver.MustParse("1.15.0"), Target: &Target{Ref: "csghub/csghub", VersionS: "2.0.0"}, Live: &Live{Err: errors.New("not compared here")},
		Migrate: &migrate.Context{Rendered: func() ([]*unstructured.Unstructured, error) { return nil, nil }}}
	pl := p.Build(context.Background(), "a backup")
	var step *Step
	for i := range pl.Steps {
		if pl.Steps[i].Name == "verify" {
			step = &pl.Steps[i]
		}
	}
	if step == nil {
		t.Fatal("no verify step")
	}
	for _, name := range verify.Names {
		if !strings.Contains(step.Reason, name+" (") {
			t.Errorf("verify step %q does not describe check %s", step.Reason, name)
		}
	}
	if !strings.Contains(step.Reason, "the 8 checks") {
		t.Errorf("verify step %q", step.Reason)
	}
}
