package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/opencsgs/helm-csghub/internal/testenv"
)

type statusJSON struct {
	Release      string `json:"release"`
	Namespace    string `json:"namespace"`
	Revision     int    `json:"revision"`
	Chart        string `json:"chart"`
	ChartVersion string `json:"chartVersion"`
	Status       string `json:"status"`
	History      int    `json:"historyLength"`
	Pods         []struct {
		Namespace string `json:"namespace"`
		Ready     int    `json:"ready"`
		Total     int    `json:"total"`
	} `json:"pods"`
}

func parseStatus(t *testing.T, r testenv.Result) statusJSON {
	t.Helper()
	if r.Code != 0 {
		t.Fatalf("status: exit %d: %s", r.Code, r.Stderr)
	}
	var s statusJSON
	if err := json.Unmarshal([]byte(r.Stdout), &s); err != nil {
		t.Fatalf("status json: %v\n%s", err, r.Stdout)
	}
	return s
}

// wantDeployed fails the test unless the release is deployed with chart
// version at revision rev (0: any revision); when names the moment checked.
func wantDeployed(t *testing.T, e *testenv.Env, version string, rev int, when string) statusJSON {
	t.Helper()
	st := parseStatus(t, e.Plugin("status", "-o", "json"))
	if st.ChartVersion != version || st.Status != "deployed" || (rev != 0 && st.Revision != rev) {
		t.Fatalf("%s: release %+v, want chart %s deployed (revision %d; 0: any)", when, st, version, rev)
	}
	return st
}

func assertInstalled115(t *testing.T, s statusJSON, ns string) {
	t.Helper()
	if s.Release != "csghub" || s.Namespace != ns || s.Revision != 1 || s.Chart != "csghub" ||
		s.ChartVersion != "1.15.0" || s.Status != "deployed" || s.History != 1 {
		t.Fatalf("status = %+v, want csghub in %s, revision 1, chart csghub 1.15.0, deployed, history 1", s, ns)
	}
	if len(s.Pods) == 0 || s.Pods[0].Namespace != ns || s.Pods[0].Total == 0 || s.Pods[0].Ready != s.Pods[0].Total {
		t.Fatalf("pods = %+v, want all Ready in %s", s.Pods, ns)
	}
}

// The plugin installs and runs under Helm 3 and Helm 4 and reports a 1.15.0 release.
func TestPluginUnderHelm3AndHelm4(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	for _, helm := range []struct{ name, bin string }{{"helm3", e.C.Helm3}, {"helm4", e.C.Helm4}} {
		t.Run(helm.name, func(t *testing.T) {
			e.Helm = helm.bin
			v := e.RunHelm(nil, "csghub", "version", "-o", "json")
			if v.Code != 0 {
				t.Fatalf("helm csghub version: exit %d: %s", v.Code, v.Stderr)
			}
			var info map[string]string
			if err := json.Unmarshal([]byte(v.Stdout), &info); err != nil {
				t.Fatalf("version json: %v: %s", err, v.Stdout)
			}
			if info["version"] != "0.1.0" || !strings.HasPrefix(info["helmSDK"], "v3.") || !strings.HasPrefix(info["goVersion"], "go1.") {
				t.Fatalf("version = %v", info)
			}
			st := parseStatus(t, e.Plugin("status", "-o", "json"))
			assertInstalled115(t, st, e.Namespace)
			table := e.Plugin("status")
			if table.Code != 0 || !strings.Contains(table.Stdout, "csghub-1.15.0") ||
				!strings.Contains(table.Stdout, "deployed") || !strings.Contains(table.Stdout, "Ready") {
				t.Fatalf("status table: exit %d\n%s%s", table.Code, table.Stdout, table.Stderr)
			}
		})
	}
	e.Helm = e.C.Helm3
}

// `helm -n other csghub status` looks in "other" only.
func TestNamespaceFromHelmFlag(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	r := e.RunHelm(nil, "-n", "other", "csghub", "status")
	if r.Code != 3 || !strings.Contains(r.Stderr, `"other"`) || !oneLineError(r.Stderr) {
		t.Fatalf("status in other namespace: exit %d, stderr %q; want exit 3, one line naming \"other\"", r.Code, r.Stderr)
	}
	// upgrade takes its lock first: a namespace that does not exist is "not found" too
	r = e.RunHelm(nil, "-n", "other", "csghub", "upgrade", "--version", "2.0.0", "--yes", "--dir", t.TempDir())
	if r.Code != 3 || !strings.Contains(r.Stderr, `"other"`) || !oneLineError(r.Stderr) {
		t.Fatalf("upgrade in other namespace: exit %d, stderr %q; want exit 3, one line naming \"other\"", r.Code, r.Stderr)
	}
	assertInstalled115(t, parseStatus(t, e.RunHelm(nil, "-n", e.Namespace, "csghub", "status", "-o", "json")), e.Namespace)
}

// --kube-context selects a context from a KUBECONFIG that lists two files.
func TestKubeContextAndTwoFileKubeconfig(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	cfg, err := clientcmd.LoadFromFile(e.C.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// file 1: cluster and user, current context pointing nowhere useful
	first := clientcmdapi.NewConfig()
	for k, v := range cfg.Clusters {
		first.Clusters[k] = v
	}
	for k, v := range cfg.AuthInfos {
		first.AuthInfos[k] = v
	}
	first.Contexts["broken"] = &clientcmdapi.Context{Cluster: "nowhere", AuthInfo: "nobody"}
	first.CurrentContext = "broken"
	// file 2: the working context, named differently
	second := clientcmdapi.NewConfig()
	src := cfg.Contexts[cfg.CurrentContext]
	second.Contexts["e2e-alt"] = &clientcmdapi.Context{Cluster: src.Cluster, AuthInfo: src.AuthInfo, Namespace: e.Namespace}
	f1, f2 := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	if err := clientcmd.WriteToFile(*first, f1); err != nil {
		t.Fatal(err)
	}
	if err := clientcmd.WriteToFile(*second, f2); err != nil {
		t.Fatal(err)
	}
	env := []string{"KUBECONFIG=" + f1 + string(os.PathListSeparator) + f2}
	// the context's namespace is the release namespace: no -n needed
	st := parseStatus(t, e.RunHelm(env, "--kube-context", "e2e-alt", "csghub", "status", "-o", "json"))
	assertInstalled115(t, st, e.Namespace)
	// the broken current context is really used without --kube-context
	r := e.RunHelm(env, "-n", e.Namespace, "csghub", "status")
	if r.Code == 0 {
		t.Fatalf("status through the broken context succeeded: %s", r.Stdout)
	}
	// a context the kubeconfig does not have is bad input (exit 2), like a missing file
	r = e.RunHelm(env, "--kube-context", "nosuch", "csghub", "status")
	if r.Code != 2 || !strings.Contains(r.Stderr, `kube context "nosuch": not in the kubeconfig`) {
		t.Fatalf("--kube-context nosuch: exit %d: %s", r.Code, r.Stderr)
	}
}

// Without -n the release is found in namespace csghub; two candidates is refused.
func TestDefaultNamespaceFindsCsghub(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t, testenv.WithNamespace("csghub"))
	e.Install("1.15.0")
	noNS := []string{"HELM_NAMESPACE="} // as a shell with no -n: helm exports "default"
	st := parseStatus(t, e.RunHelm(noNS, "csghub", "status", "-o", "json"))
	assertInstalled115(t, st, "csghub")

	// a second release named csghub in "default" makes the no--n case ambiguous
	e.MustHelm("install", "csghub", "csghub/csghub", "--version", "1.15.0", "-n", "default", "--timeout", "120s")
	t.Cleanup(func() { e.RunHelm(nil, "uninstall", "csghub", "-n", "default", "--wait") })
	r := e.RunHelm(noNS, "csghub", "status")
	if r.Code != 4 || !strings.Contains(r.Stderr, `"default"`) || !strings.Contains(r.Stderr, `"csghub"`) || !strings.Contains(r.Stderr, "-n") {
		t.Fatalf("ambiguous release: exit %d, stderr %q; want exit 4 naming both namespaces and -n", r.Code, r.Stderr)
	}
	// an explicit namespace other than Helm's default resolves it
	assertInstalled115(t, parseStatus(t, e.RunHelm(nil, "-n", "csghub", "csghub", "status", "-o", "json")), "csghub")
}

// Bad input: one-line error and exit 2; unknown release: one line, non-zero.
func TestBadInput(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	for _, args := range [][]string{{"nosuchcommand"}, {"status", "--nosuchflag"}, {"status", "extra-arg"}, {"status", "-o", "yaml"}, {"version", "--output"}} {
		r := e.Plugin(args...)
		if r.Code != 2 {
			t.Errorf("helm csghub %s: exit %d, want 2 (stderr %q)", strings.Join(args, " "), r.Code, r.Stderr)
		}
		if !oneLineError(r.Stderr) {
			t.Errorf("helm csghub %s: stderr %q, want one line starting with Error:", strings.Join(args, " "), r.Stderr)
		}
	}
	r := e.Plugin("status", "--release", "nosuchrelease")
	if r.Code == 0 || !oneLineError(r.Stderr) || !strings.Contains(r.Stderr, "nosuchrelease") {
		t.Fatalf("unknown release: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if h := e.Plugin("status", "--help"); h.Code != 0 || !strings.Contains(h.Stdout, "--output") {
		t.Fatalf("status --help: exit %d: %s", h.Code, h.Stdout)
	}
}
