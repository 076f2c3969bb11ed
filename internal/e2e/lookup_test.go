package e2e

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opencsgs/helm-csghub/internal/testenv"
)

// guarded is what the chart decides with `lookup` (see
// testdata/charts/README.md): Secret spaces/<release>-docker-credential,
// which 1.15/1.16's auto-configure Job makes outside Helm and 1.17+ renders
// only when it is absent, and the runner ConfigMap's API_TOKEN, kept from
// its live data.
type guarded struct {
	secretRV, token string
}

func takeGuarded(t *testing.T, e *testenv.Env) guarded {
	t.Helper()
	ctx := context.Background()
	s, err := e.C.Clientset.CoreV1().Secrets("spaces").Get(ctx, e.Release+"-docker-credential", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Secret spaces/%s-docker-credential: %v", e.Release, err)
	}
	g := guarded{secretRV: s.ResourceVersion}
	if cm, err := e.C.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, e.Release+"-runner-config", metav1.GetOptions{}); err == nil {
		g.token = cm.Data["API_TOKEN"]
	}
	return g
}

// requireGuardedUntouched: the upgrade neither rendered nor changed the
// lookup-guarded Secret, and the kept token is the one that was live.
func requireGuardedUntouched(t *testing.T, e *testenv.Env, before guarded, when string) {
	t.Helper()
	after := takeGuarded(t, e)
	if after.secretRV != before.secretRV {
		t.Errorf("%s: Secret spaces/%s-docker-credential changed (resourceVersion %s -> %s): Helm's upgrade renders it only when absent",
			when, e.Release, before.secretRV, after.secretRV)
	}
	if before.token != "" && after.token != before.token {
		t.Errorf("%s: runner API_TOKEN %q -> %q: the chart keeps the live one", when, before.token, after.token)
	}
}

// requirePlanAsHelm: plan renders the target as Helm's upgrade will (lookups
// answered by the cluster), so it lists no conflict for the lookup-guarded
// objects and says how many lookups it made.
func requirePlanAsHelm(t *testing.T, e *testenv.Env, version string) {
	t.Helper()
	p := getPlan(t, e, "--version", version)
	if p.Refused != "" || p.Lookups == 0 {
		t.Fatalf("plan to %s: refused %q, %d lookups", version, p.Refused, p.Lookups)
	}
	for _, s := range p.Steps {
		if s.Name == "live-objects" && (!strings.HasPrefix(s.Status, "ok") || strings.Contains(s.Status, "docker-credential")) {
			t.Fatalf("plan to %s, live-objects: %s", version, s.Status)
		}
	}
}
