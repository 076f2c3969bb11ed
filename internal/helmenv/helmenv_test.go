package helmenv

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// kubeconfig with one context whose namespace is ctxNS ("" for none).
func writeKubeconfig(t *testing.T, ctxNS string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "config")
	data := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: ctx, context: {cluster: c, user: u, namespace: "` + ctxNS + `"}}]
current-context: ctx
`
	if err := os.WriteFile(f, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCandidates(t *testing.T) {
	cases := []struct {
		name         string
		ctxNS        string
		helmNS       string
		flag         string
		want         []string
		wantExplicit bool
	}{
		{"no -n: helm exports default", "", "default", "", []string{"default", "csghub"}, false},
		{"no HELM_NAMESPACE at all", "", "", "", []string{"default", "csghub"}, false},
		{"-n other", "", "other", "", []string{"other"}, true},
		{"-n csghub", "", "csghub", "", []string{"csghub"}, true},
		{"context namespace is the default", "team", "team", "", []string{"team", "csghub"}, false},
		{"context namespace csghub", "csghub", "csghub", "", []string{"csghub"}, false},
		{"flag on the binary wins", "", "default", "mine", []string{"mine"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", writeKubeconfig(t, c.ctxNS))
			t.Setenv("HELM_NAMESPACE", c.helmNS)
			t.Setenv("HELM_KUBECONTEXT", "")
			e := New()
			e.NamespaceFlag = c.flag
			got, explicit := e.Candidates()
			if !reflect.DeepEqual(got, c.want) || explicit != c.wantExplicit {
				t.Fatalf("Candidates() = %v, %v; want %v, %v", got, explicit, c.want, c.wantExplicit)
			}
		})
	}
}
