package helmenv

import (
	"testing"
)

// The REST configuration every client is built from carries the rate limit:
// HELM_QPS / HELM_BURST_LIMIT when chosen, 50/100 otherwise (Helm 3 exports
// HELM_QPS=0.00 to plugins: not a choice).
func TestRateLimit(t *testing.T) {
	kc := writeKubeconfig(t, "")
	for _, c := range []struct {
		qps, burst string
		wantQPS    float32
		wantBurst  int
	}{
		{"", "", DefaultQPS, DefaultBurst},
		{"0.00", "100", DefaultQPS, DefaultBurst},
		{"7", "9", 7, 9},
		{"200", "", 200, 200},
	} {
		t.Setenv("KUBECONFIG", kc)
		t.Setenv("HELM_QPS", c.qps)
		t.Setenv("HELM_BURST_LIMIT", c.burst)
		cfg, err := New().RESTConfig()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.QPS != c.wantQPS || cfg.Burst != c.wantBurst {
			t.Errorf("HELM_QPS=%q HELM_BURST_LIMIT=%q: QPS %v burst %d, want %v %d", c.qps, c.burst, cfg.QPS, cfg.Burst, c.wantQPS, c.wantBurst)
		}
	}
}

func TestResourceOf(t *testing.T) {
	for path, want := range map[string]string{
		"/api/v1/namespaces/csghub/secrets/x":                     "secrets",
		"/apis/apps/v1/namespaces/csghub/deployments":             "deployments",
		"/apis/apiextensions.k8s.io/v1/customresourcedefinitions": "customresourcedefinitions",
		"/api/v1/namespaces/csghub":                               "namespaces",
	} {
		if got := resourceOf(path); got != want {
			t.Errorf("resourceOf(%s) = %q, want %q", path, got, want)
		}
	}
}
