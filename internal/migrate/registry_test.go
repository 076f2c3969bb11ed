package migrate

import (
	"strings"
	"testing"
)

func names(ms []Migration) string {
	var out []string
	for _, m := range ms {
		out = append(out, "v"+m.Version().String()+" "+m.Name())
	}
	return strings.Join(out, ", ")
}

// Between picks current < v <= target, in version order.
func TestBetween(t *testing.T) {
	cases := []struct{ cur, target, want string }{
		{"1.15.0", "2.0.0", "v1.16.0 envoy-gateway-crds, v1.17.0 helm-takeover, v2.0.0 knative-serving-takeover"},
		{"1.15.0", "1.16.0", "v1.16.0 envoy-gateway-crds"},
		// the CRD step is Recurring: planned for every upgrade to >= 1.16.0
		{"1.16.0", "1.17.0", "v1.16.0 envoy-gateway-crds, v1.17.0 helm-takeover"},
		{"1.17.0", "2.0.0", "v1.16.0 envoy-gateway-crds, v2.0.0 knative-serving-takeover"},
		{"2.0.0", "2.0.1", "v1.16.0 envoy-gateway-crds"},
		{"1.16.5", "1.16.9", "v1.16.0 envoy-gateway-crds"},
		{"2.0.0", "2.0.0", "v1.16.0 envoy-gateway-crds"},
		{"1.14.0", "1.15.0", ""},
	}
	for _, c := range cases {
		got := names(Between(MustVersion(c.cur), MustVersion(c.target)))
		// migrations added later (e.g. v2.0.0 dataflow logs) may follow; the listed ones must lead in order
		if c.want == "" && got != "" || !strings.HasPrefix(got, c.want) || c.want != "" && strings.Count(got, "envoy-gateway-crds") != 1 {
			t.Errorf("Between(%s, %s) = %q, want %q", c.cur, c.target, got, c.want)
		}
	}
}

func TestRegistryIsOrdered(t *testing.T) {
	all := All()
	for i := 1; i < len(all); i++ {
		if all[i].Version().LessThan(all[i-1].Version()) {
			t.Fatalf("registry out of order: %s", names(all))
		}
	}
}
