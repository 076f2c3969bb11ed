package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/helmenv/helmenvtest"
)

// An API server that holds release csghub (Helm's Secrets driver, revision 1
// deployed) and answers nothing else: every other request waits for its
// client to give up, so a signal lands inside the command's first
// ctx-aware step (backup's pod check, restore's lock).
func hangingAPIServer(t *testing.T) string {
	t.Helper()
	cs := fake.NewSimpleClientset()
	d := driver.NewSecrets(cs.CoreV1().Secrets("csghub"))
	rel := helmenvtest.Rev(1, "1.15.0", release.StatusDeployed)
	rel.Namespace = "csghub"
	if err := d.Create(fmt.Sprintf("sh.helm.release.v1.%s.v%d", rel.Name, rel.Version), rel); err != nil {
		t.Fatal(err)
	}
	list, err := cs.CoreV1().Secrets("csghub").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	list.Kind, list.APIVersion = "SecretList", "v1"
	body, _ := json.Marshal(list)
	item := list.Items[0]
	item.Kind, item.APIVersion = "Secret", "v1"
	one, _ := json.Marshal(item)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/namespaces/csghub/secrets") {
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
			return
		}
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/namespaces/csghub/secrets/"+item.Name) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(one)
			return
		}
		if r.URL.Path == "/version" { // Helm's reachability check
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"major":"1","minor":"33","gitVersion":"v1.33.0"}`))
			return
		}
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second): // a request that ignored the signal: the test still ends
		}
		http.Error(w, "slow", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kc, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: csghub}}]
current-context: c
`, srv.URL)), 0o600)
	return kc
}

// Ctrl-C/SIGTERM (the cancelled context) in a command's first steps exits
// 130 with one line, not 1 "context canceled".
func TestSignalInFirstStepsExits130(t *testing.T) {
	t.Setenv("KUBECONFIG", hangingAPIServer(t))
	t.Setenv("HELM_NAMESPACE", "csghub")
	for _, args := range [][]string{
		{"backup", "--dir", t.TempDir()},
		{"restore", "--backup", "1-20260101T000000Z", "--dir", t.TempDir(), "--yes"},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(500*time.Millisecond, cancel) // what main does on SIGINT/SIGTERM
		var out, errOut bytes.Buffer
		app := &App{Env: helmenv.New(), Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader("")}
		code := Main(ctx, app, args)
		cancel()
		if code != 130 || strings.Count(strings.TrimSpace(errOut.String()), "\n") != 0 {
			t.Errorf("%v interrupted: exit %d, want 130 with one line: %q", args, code, errOut.String())
		}
	}
}
