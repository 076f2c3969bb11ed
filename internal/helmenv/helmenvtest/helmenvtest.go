// Package helmenvtest gives unit tests a Helm environment as the plugin sees
// it under `helm csghub`: a kubeconfig naming one API server, HELM_NAMESPACE,
// HELM_DRIVER, and the namespace fixed so no storage is read to find it.
package helmenvtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/opencsgs/helm-csghub/internal/helmenv"
)

// Env points KUBECONFIG at server (a test server's URL, or an address never
// contacted) with namespace "ns" and the Helm storage driver, for this test only.
func Env(t testing.TB, server, driver string) *helmenv.Env {
	t.Helper()
	kc := filepath.Join(t.TempDir(), "config")
	data := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"" + server + "\"}}]\n" +
		"users: [{name: u, user: {token: x}}]\ncontexts: [{name: ctx, context: {cluster: c, user: u}}]\ncurrent-context: ctx\n"
	if err := os.WriteFile(kc, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kc)
	t.Setenv("HELM_KUBECONTEXT", "")
	t.Setenv("HELM_NAMESPACE", "ns")
	t.Setenv("HELM_DRIVER", driver)
	e := helmenv.New()
	e.NamespaceFlag = "ns"
	return e
}

// Release is Env resolved: release "csghub" in namespace "ns", its Helm
// storage read through server with driver.
func Release(t testing.TB, server, driver string) *helmenv.Release {
	t.Helper()
	r, err := Env(t, server, driver).Resolve()
	if err != nil {
		t.Fatal(err)
	}
	return r
}
