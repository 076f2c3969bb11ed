package valuemigrate

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"
	"sigs.k8s.io/yaml"
)

func v(s string) *semver.Version { return semver.MustParse(s) }

func parse(t *testing.T, s string) map[string]any {
	t.Helper()
	m := map[string]any{}
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func changes(r *Result) string {
	var out []string
	for _, c := range r.Changes {
		out = append(out, c.String())
	}
	return strings.Join(out, "; ")
}

func TestRegistryIsOrdered(t *testing.T) {
	for i := 1; i < len(registry); i++ {
		if registry[i].version.LessThan(registry[i-1].version) {
			t.Fatalf("registry out of order at %s", registry[i].From)
		}
	}
}

// Each real rename, applied when crossed: the value is at the new key, the old
// key is gone, and the change is listed.
func TestEachRewrite(t *testing.T) {
	cases := []struct {
		name, from, to, in, want, listed string
	}{
		{"langflow", "2.0.0", "2.1.0",
			"server: {agent: {langflow: {host: http://a, token: t}}}",
			"server: {agenticflow: {host: http://a, token: t}}",
			"server.agent.langflow -> server.agenticflow"},
		{"scale to zero", "2.1.0", "2.2.0",
			"runner: {knative: {serving: {domain: d, autoscaler: {scaleToZeroGracePeriod: 30m}}}}",
			"runner: {knative: {serving: {domain: d, autoscaler: {scaleToZeroPodRetentionPeriod: 30m}}}}",
			"runner.knative.serving.autoscaler.scaleToZeroGracePeriod -> runner.knative.serving.autoscaler.scaleToZeroPodRetentionPeriod"},
		{"runner regrouped", "2.0.0", "2.4.0",
			`runner: {enabled: true, region: r1, interval: 30, namespace: sp, mergingNamespace: single, applicationEndpoint: http://lb,
			  networkInterface: eth1, storageClassName: fast, extraBuildArgs: [--a], usePublicDomain: false, pipIndexUrl: http://pip,
			  gpuModelLabel: {typeLabel: t, capacityLabel: c}, model: {deployTimeout: "90", registry: reg.io}}`,
			`runner: {enabled: true, runner: {region: r1, interval: 30, namespace: sp, mergingNamespace: single, applicationEndpoint: http://lb,
			  networkInterface: eth1, storageClassName: fast, imageBuilderKanikoArgs: [--a]},
			  space: {usePublicDomain: false, pipIndexUrl: http://pip, gpuModelLabel: {typeLabel: t, capacityLabel: c}},
			  model: {deployTimeoutInMin: "90", dockerRegBase: reg.io}}`,
			"runner.region -> runner.runner.region"},
		{"gateway auth", "2.2.2", "2.2.3",
			"loki: {gateway: {enabled: true, basicAuth: {htpasswd: 'u:x'}}}\nprometheus: {enabled: true, gateway: {enabled: true, basicAuth: {htpasswd: 'p:y'}}}",
			"loki: {gateway: {enabled: true}, gatewayAuth: {enabled: true, htpasswd: 'u:x'}}\nprometheus: {enabled: true, gatewayAuth: {enabled: true, htpasswd: 'p:y'}}",
			"loki.gateway.enabled -> loki.gatewayAuth.enabled (copied: both keys are read)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := parse(t, c.in)
			before := parse(t, c.in)
			r := Migrate(in, v(c.from), v(c.to), nil)
			if want := parse(t, c.want); !reflect.DeepEqual(r.Values, want) {
				t.Errorf("values:\n got %v\nwant %v", r.Values, want)
			}
			if !strings.Contains(changes(r), c.listed) {
				t.Errorf("changes %q lack %q", changes(r), c.listed)
			}
			if len(r.Warnings) != 0 {
				t.Errorf("warnings: %v", r.Warnings)
			}
			if !reflect.DeepEqual(in, before) {
				t.Errorf("the input was changed: %v", in)
			}
		})
	}
}

// Only the versions crossed (from < v <= to) apply.
func TestOnlyVersionsCrossed(t *testing.T) {
	in := "runner: {region: r1}\nserver: {agent: {langflow: {host: h}}}"
	for _, c := range []struct{ from, to, want string }{
		{"2.0.0", "2.1.0", "server.agent.langflow -> server.agenticflow"},
		{"2.1.0", "2.2.1", ""},
		{"2.2.1", "2.2.2", "runner.region -> runner.runner.region"},
		{"2.2.2", "2.4.0", ""}, // from 2.2.2 the runner keys are already the new ones
		{"1.15.0", "2.4.0", "server.agent.langflow -> server.agenticflow; runner.region -> runner.runner.region"},
	} {
		if got := changes(Migrate(parse(t, in), v(c.from), v(c.to), nil)); got != c.want {
			t.Errorf("%s -> %s: %q, want %q", c.from, c.to, got, c.want)
		}
	}
}

// Applying twice changes nothing more: the old key is gone.
func TestIdempotent(t *testing.T) {
	in := parse(t, "runner: {region: r1, model: {deployTimeout: 30}}")
	once := Migrate(in, v("2.0.0"), v("2.4.0"), nil)
	twice := Migrate(once.Values, v("2.0.0"), v("2.4.0"), nil)
	if !reflect.DeepEqual(once.Values, twice.Values) || len(twice.Changes) != 0 || len(twice.Warnings) != 0 {
		t.Fatalf("second run: %v, changes %v, warnings %v", twice.Values, twice.Changes, twice.Warnings)
	}
}

// The new key already set in the values: that value is kept, the old one is
// dropped with a warning naming both (no warning when they agree).
func TestNewKeyAlreadySetIsKept(t *testing.T) {
	r := Migrate(parse(t, "runner: {region: old, runner: {region: new}}"), v("2.0.0"), v("2.4.0"), nil)
	if want := parse(t, "runner: {runner: {region: new}}"); !reflect.DeepEqual(r.Values, want) {
		t.Errorf("values %v, want %v", r.Values, want)
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "runner.region=old not carried") || !strings.Contains(r.Warnings[0], "runner.runner.region is already set to new") {
		t.Errorf("warnings %v", r.Warnings)
	}
	r = Migrate(parse(t, "runner: {region: same, runner: {region: same}}"), v("2.0.0"), v("2.4.0"), nil)
	if len(r.Warnings) != 0 {
		t.Errorf("equal values warned: %v", r.Warnings)
	}
}

// Values passed in this run are never rewritten; an old key there is warned,
// naming the flag and where the target reads it.
func TestPassedValuesUntouchedAndWarned(t *testing.T) {
	passed := []Source{{Flag: "--set", Values: parse(t, "runner: {region: mine}")},
		{Flag: "-f custom.yaml", Values: parse(t, "runner: {model: {deployTimeout: 20}}")}}
	before := parse(t, "runner: {region: mine}")
	r := Migrate(parse(t, "runner: {enabled: true}"), v("2.0.0"), v("2.3.0"), passed)
	if !reflect.DeepEqual(passed[0].Values, before) {
		t.Errorf("passed values changed: %v", passed[0].Values)
	}
	want := []string{"--set runner.region: 2.3.0 reads runner.runner.region (left as you passed it)",
		"-f custom.yaml runner.model.deployTimeout: 2.3.0 reads runner.model.deployTimeoutInMin (left as you passed it)"}
	if !reflect.DeepEqual(r.Warnings, want) {
		t.Errorf("warnings\n got %q\nwant %q", r.Warnings, want)
	}
	if len(r.Changes) != 0 {
		t.Errorf("changes %v", r.Changes)
	}
}

// Sources splits the flags as Helm parses them.
func TestSources(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "custom.yaml")
	if err := os.WriteFile(f, []byte("runner:\n  region: fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := Sources(values.Options{ValueFiles: []string{f}, Values: []string{"a.b=1,runner.interval=5"}, StringValues: []string{"runner.region=s"}}, getter.Providers{})
	if err != nil {
		t.Fatal(err)
	}
	if len(src) != 3 || src[0].Flag != "-f "+f || src[1].Flag != "--set" || src[2].Flag != "--set-string" {
		t.Fatalf("sources %+v", src)
	}
	r := Migrate(map[string]any{}, v("2.2.0"), v("2.4.0"), src)
	if len(r.Warnings) != 3 || !strings.HasPrefix(r.Warnings[1], "--set-string runner.region: 2.4.0 reads runner.runner.region") ||
		!strings.HasPrefix(r.Warnings[2], "--set runner.interval: 2.4.0 reads runner.runner.interval") {
		t.Errorf("warnings %q", r.Warnings)
	}
}

// Keys that cannot be carried are warned about and left alone; kept keys are
// listed without a warning.
func TestNotCarriedAndKept(t *testing.T) {
	r := Migrate(parse(t, "portal: {docs: {host: 10.0.0.1, port: 8003}}\nrunner: {envoy: {enabled: false}}"), v("2.0.0"), v("2.2.0"), nil)
	if want := parse(t, "portal: {docs: {host: 10.0.0.1, port: 8003}}\nrunner: {envoy: {enabled: false}}"); !reflect.DeepEqual(r.Values, want) {
		t.Errorf("values changed: %v", r.Values)
	}
	if len(r.Warnings) != 1 || !strings.HasPrefix(r.Warnings[0], "portal.docs.host (2.2.0): 2.2.0 routes /docs only to an existing Service") {
		t.Errorf("warnings %q", r.Warnings)
	}
	if got := changes(r); !strings.Contains(got, "runner.envoy.enabled (kept: still the subchart's condition") {
		t.Errorf("changes %q", got)
	}
}

func TestSecondsToMinutes(t *testing.T) {
	for _, c := range []struct {
		in, want any
	}{{1800, int64(30)}, {90, int64(2)}, {60, int64(1)}, {0, int64(0)}, {"1800", "30"}, {"61", "2"}, {float64(59.5), int64(1)}} {
		got, err := SecondsToMinutes(c.in)
		if err != nil || got != c.want {
			t.Errorf("SecondsToMinutes(%v) = %v (%T), %v; want %v", c.in, got, got, err, c.want)
		}
	}
	for _, bad := range []any{"soon", -5, []any{1}} {
		if _, err := SecondsToMinutes(bad); err == nil {
			t.Errorf("SecondsToMinutes(%v): no error", bad)
		}
	}
	// a converting rewrite lists old and new value; an unconvertible value stays, warned
	saved := registry
	defer func() { registry = saved }()
	registry = nil
	Register("9.0.0", Rewrite{From: "a.timeout", To: "a.timeoutInMin", Convert: SecondsToMinutes})
	r := Migrate(parse(t, "a: {timeout: 1800}"), v("8.0.0"), v("9.0.0"), nil)
	if fmt.Sprint(r.Values) != "map[a:map[timeoutInMin:30]]" || changes(r) != "a.timeout -> a.timeoutInMin (1800 -> 30)" {
		t.Errorf("values %v, changes %q", r.Values, changes(r))
	}
	r = Migrate(parse(t, "a: {timeout: soon}"), v("8.0.0"), v("9.0.0"), nil)
	if want := parse(t, "a: {timeout: soon}"); !reflect.DeepEqual(r.Values, want) || len(r.Warnings) != 1 {
		t.Errorf("values %v, warnings %q", r.Values, r.Warnings)
	}
}

func testChart(t *testing.T) *chart.Chart {
	envoy := &chart.Chart{Metadata: &chart.Metadata{Name: "gateway-helm", Version: "1.6.7"},
		Values: parse(t, "deployment: {replicas: 1}")}
	runner := &chart.Chart{Metadata: &chart.Metadata{Name: "runner", Version: "2.4.0",
		Dependencies: []*chart.Dependency{{Name: "gateway-helm", Alias: "envoy", Condition: "envoy.enabled"}}},
		Values: parse(t, `runner: {region: region-0}
knative: {serving: {autoscaler: {enableScaleToZero: true}}}
nodeSelector: {}`)}
	runner.SetDependencies(envoy)
	parent := &chart.Chart{Metadata: &chart.Metadata{Name: "csghub", Version: "2.4.0",
		Dependencies: []*chart.Dependency{{Name: "runner", Condition: "runner.enabled"}, {Name: "gateway-helm", Alias: "envoy", Condition: "envoy.enabled"}}},
		Values: parse(t, `global: {image: {tag: v2.4.0}}
tags: {dependencies: false}
server: {agenticflow: {}, annotations: {}, resources: {}}
runner: {enabled: true, knative: {serving: {autoscaler: {}}}}
portal: {docs: {}, replicas: 1}`),
		Schema: []byte(`{"type": "object", "properties": {
			"portal": {"type": "object", "properties": {"extraEnv": {"type": "object", "additionalProperties": {"type": "string"}}}},
			"externalDB": {"type": "object"}}}`)}
	parent.SetDependencies(runner, envoy)
	return parent
}

func TestUnknown(t *testing.T) {
	ch := testChart(t)
	vals := parse(t, `
global: {anything: {deep: 1}}
tags: {monitor: true}
server: {agenticflow: {host: h, token: x}, annotations: {a.b/c: d}, resources: {limits: {cpu: 1}}, typo: 1}
runner:
  enabled: true
  region: old-place
  runner: {region: r1, madeUp: 2}
  knative: {serving: {autoscaler: {enableScaleToZero: false, scaleToZeroGracePeriod: 5m}}}
  nodeSelector: {disk: ssd}
  envoy: {enabled: true, deployment: {replicas: 2}, nope: 1}
envoy: {enabled: false}
portal: {docs: {host: h}, replicas: 2, extraEnv: {FOO: bar}}
externalDB: {host: db}
mystery: {x: 1}
`)
	want := []string{"mystery", "runner.envoy.nope", "runner.knative.serving.autoscaler.scaleToZeroGracePeriod",
		"runner.region", "runner.runner.madeUp", "server.typo"}
	if got := Unknown(vals, ch); !reflect.DeepEqual(got, want) {
		t.Errorf("Unknown:\n got %q\nwant %q", got, want)
	}
	if got := Unknown(ch.Values, ch); len(got) != 0 {
		t.Errorf("the chart's own values flagged: %q", got)
	}
}

// On the mirror charts: an operator who copied a chart's whole values.yaml
// gets every key known after the rewrites, except what the target dropped.
func TestMirrorCharts(t *testing.T) {
	for _, c := range []struct {
		from, to string
		unknown  []string
	}{
		{"2.0.0", "2.4.0", nil},
		{"2.2.0", "2.3.0", nil},
		{"1.15.0", "2.4.0", []string{"ingress-nginx", "mongo"}}, // dropped in 1.16 and 2.0
	} {
		old, err := loader.Load("../../testdata/charts/csghub-" + c.from)
		if err != nil {
			t.Fatal(err)
		}
		target, err := loader.Load("../../testdata/charts/csghub-" + c.to)
		if err != nil {
			t.Fatal(err)
		}
		if got := Unknown(target.Values, target); len(got) != 0 {
			t.Errorf("%s flags its own keys: %q", c.to, got)
		}
		r := Migrate(old.Values, v(c.from), v(c.to), nil)
		if got := Unknown(r.Values, target); !reflect.DeepEqual(got, c.unknown) {
			t.Errorf("%s -> %s: unknown %q, want %q", c.from, c.to, got, c.unknown)
		}
		if c.from == "2.0.0" {
			// without the rewrites, the runner keys are lost
			if got := Unknown(old.Values, target); !strings.Contains(strings.Join(got, " "), "runner.region") {
				t.Errorf("unrewritten 2.0.0 values: unknown %q lack runner.region", got)
			}
		}
	}
}
