package verify

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv/helmenvtest"
	"github.com/opencsgs/helm-csghub/internal/kube"
)

// verifyFixture is release "csghub" in namespace "ns" as Helm stores it
// (Secrets of the default driver, held by client-go's fake clientset), read
// through a resolved release whose Helm configuration is those Secrets and a
// kube client that only answers Helm's reachability check. The checks that
// need the network are left out with --check/--skip-check or skipped through
// the values; what is tested is selection, skipping, aggregation and the
// exit code.
func verifyFixture(t *testing.T, values map[string]any, revs ...*release.Release) *Verify {
	t.Helper()
	for _, r := range revs {
		r.Config = values
	}
	cs := fake.NewClientset()
	return &Verify{Release: helmenvtest.Secrets(t, cs.CoreV1().Secrets("ns"), helmenvtest.Fake(), revs...), Kube: &kube.Client{Clientset: cs}}
}

func rel(version int, st release.Status) *release.Release {
	return &release.Release{Name: "csghub", Namespace: "ns", Version: version, Info: &release.Info{Status: st},
		Chart: &chart.Chart{Metadata: &chart.Metadata{Name: "csghub", Version: "1.17.0", APIVersion: "v2"}}}
}

func byName(rep *Report) map[string]Check {
	m := map[string]Check{}
	for _, c := range rep.Checks {
		m[c.Name] = c
	}
	return m
}

var allExternal = map[string]any{"global": map[string]any{
	"postgresql": map[string]any{"enabled": false},
	"redis":      map[string]any{"enabled": false},
	"gitaly":     map[string]any{"enabled": false},
}}

// Every check is reported, in order; those not selected say why; components
// the release does not run are skipped, not failed; skipped checks leave the
// report OK (exit 0).
func TestRunSelectionAndSkippedComponents(t *testing.T) {
	v := verifyFixture(t, allExternal, rel(1, release.StatusSuperseded), rel(2, release.StatusDeployed))
	v.Only = []string{CheckRelease, CheckDatabase, CheckRedis, CheckGitaly, CheckAPI}
	v.Skip = []string{CheckAPI}
	v.Revision = 2
	rep, err := v.Run(context.Background())
	if err != nil || !rep.OK {
		t.Fatalf("Run = %+v, %v", rep, err)
	}
	var names []string
	for _, c := range rep.Checks {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != strings.Join(Names, ",") {
		t.Fatalf("checks %v, want all in order %v", names, Names)
	}
	got := byName(rep)
	want := map[string]struct {
		st     Status
		detail string
	}{
		CheckRelease:       {Passed, "revision 2 deployed (chart 1.17.0)"},
		CheckWebUI:         {Skipped, "not selected (--check)"},
		CheckAPI:           {Skipped, "left out (--skip-check)"},
		CheckLogin:         {Skipped, "not selected (--check)"},
		CheckDatabase:      {Skipped, "external PostgreSQL (global.postgresql.enabled=false): not checked"},
		CheckObjectStorage: {Skipped, "not selected (--check)"},
		CheckRedis:         {Skipped, "external Redis (global.redis.enabled=false): not checked"},
		CheckGitaly:        {Skipped, "external Gitaly (global.gitaly.enabled=false): not checked"},
	}
	for n, w := range want {
		if got[n].Status != w.st || got[n].Detail != w.detail {
			t.Errorf("%s: %s %q, want %s %q", n, got[n].Status, got[n].Detail, w.st, w.detail)
		}
	}
	// --output json: the documented field names and values
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"ok":true`, `"name":"release","status":"passed","detail":"revision 2 deployed (chart 1.17.0)","durationMs":`, `"name":"redis","status":"skipped"`} {
		if !strings.Contains(string(data), s) {
			t.Fatalf("json %s lacks %s", data, s)
		}
	}
}

// A failed check fails the report: exit 1, the error names each failed check
// with its detail, and the report (with every check) still comes back.
func TestRunFailedCheckIsExit1(t *testing.T) {
	cases := []struct {
		name   string
		revs   []*release.Release
		want   int
		detail string
	}{
		{"wrong revision", []*release.Release{rel(1, release.StatusSuperseded), rel(2, release.StatusDeployed)}, 3, "revision 2 deployed, expected 3"},
		{"not deployed", []*release.Release{rel(1, release.StatusSuperseded), rel(2, release.StatusFailed)}, 0, "revision 2 is failed, not deployed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := verifyFixture(t, allExternal, c.revs...)
			v.Only = []string{CheckRelease, CheckRedis}
			v.Revision = c.want
			rep, err := v.Run(context.Background())
			if errs.ExitCode(err) != 1 || rep == nil || rep.OK {
				t.Fatalf("Run = %+v, %v (exit %d), want a failed report", rep, err, errs.ExitCode(err))
			}
			if got := byName(rep)[CheckRelease]; got.Status != Failed || got.Detail != c.detail {
				t.Fatalf("release check %+v", got)
			}
			if f := rep.Failed(); len(f) != 1 || f[0].Name != CheckRelease {
				t.Fatalf("failed %+v", f)
			}
			if byName(rep)[CheckRedis].Status != Skipped || len(rep.Checks) != len(Names) {
				t.Fatalf("other checks not reported: %+v", rep.Checks)
			}
			if err.Error() != "verification failed: release: "+c.detail {
				t.Fatalf("error %q", err)
			}
		})
	}
}

// No such release: exit 3 (not found), not a failed check; an unknown
// --check name: exit 2 before anything is read.
func TestRunRefusals(t *testing.T) {
	v := verifyFixture(t, nil)
	if rep, err := v.Run(context.Background()); errs.ExitCode(err) != 3 || rep != nil {
		t.Fatalf("missing release: %+v, %v (exit %d)", rep, err, errs.ExitCode(err))
	}
	v.Only = []string{"s3"}
	if rep, err := v.Run(context.Background()); errs.ExitCode(err) != 2 || rep != nil {
		t.Fatalf("unknown check: %+v, %v (exit %d)", rep, err, errs.ExitCode(err))
	}
}

func TestRedactSquash(t *testing.T) {
	if got := redact(squash("denied:\n  key SK-secret-long\tand SK-secret"), []string{"SK-secret", "SK-secret-long", "ab"}); got != "denied: key *** and ***" {
		t.Fatalf("got %q", got)
	}
	if !(Check{Status: Skipped}).OK() || (Check{Status: Failed}).OK() {
		t.Fatal("Check.OK: skipped must count as OK, failed not")
	}
}
