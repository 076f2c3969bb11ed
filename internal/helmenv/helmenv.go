// Package helmenv turns the environment Helm hands a plugin into clients: the Helm
// SDK's action.Configuration for release storage and client-go for the cluster.
//
// Helm strips -n/--namespace, --kube-context and --kubeconfig from a plugin's
// arguments and exports HELM_NAMESPACE, HELM_KUBECONTEXT and KUBECONFIG instead;
// cli.New() reads exactly those, so the plugin sees what `helm` itself would.
package helmenv

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/storage/driver"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/opencsgs/helm-csghub/internal/errs"
)

// Defaults from the CSGHub upgrade guide: `helm ... csghub -n csghub`.
const (
	DefaultRelease   = "csghub"
	DefaultNamespace = "csghub"
)

// Env is Helm's environment plus the release this run is about.
type Env struct {
	Settings *cli.EnvSettings
	Release  string
	// NamespaceFlag is -n given to the binary itself (when run outside Helm).
	NamespaceFlag string
	// Debug mirrors HELM_DEBUG / --debug.
	Debug bool

	restConfig *rest.Config
	clientset  kubernetes.Interface
}

// New reads Helm's environment variables (HELM_NAMESPACE, HELM_KUBECONTEXT,
// KUBECONFIG, HELM_DRIVER, HELM_DEBUG, HELM_DATA_HOME, ...).
func New() *Env {
	s := cli.New()
	applyRateLimit(s)
	return &Env{Settings: s, Release: DefaultRelease, Debug: s.Debug}
}

// Driver is Helm's release storage driver (HELM_DRIVER, default "secret").
func (e *Env) Driver() string { return os.Getenv("HELM_DRIVER") }

// RESTConfig is the client-go configuration for the selected context.
func (e *Env) RESTConfig() (*rest.Config, error) {
	if e.restConfig != nil {
		return e.restConfig, nil
	}
	cfg, err := e.Settings.RESTClientGetter().ToRESTConfig()
	if err != nil {
		return nil, errs.Preconditionf("kubernetes configuration: %w", err)
	}
	e.restConfig = cfg
	return cfg, nil
}

// Clientset is a typed client for the selected context.
func (e *Env) Clientset() (kubernetes.Interface, error) {
	if e.clientset != nil {
		return e.clientset, nil
	}
	cfg, err := e.RESTConfig()
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, errs.Preconditionf("kubernetes client: %w", err)
	}
	e.clientset = cs
	return cs, nil
}

// ActionConfig is a Helm SDK configuration for namespace ns.
func (e *Env) ActionConfig(ns string) (*action.Configuration, error) {
	cfg := new(action.Configuration)
	logf := func(format string, v ...any) {
		if e.Debug {
			slog.Debug(fmt.Sprintf(format, v...))
		}
	}
	if err := cfg.Init(e.Settings.RESTClientGetter(), ns, e.Driver(), logf); err != nil {
		return nil, errs.Preconditionf("helm storage in namespace %q: %w", ns, err)
	}
	return cfg, nil
}

// contextNamespace is the namespace Helm falls back to when no -n is given: the
// current kube context's namespace, else "default". Helm exports that value as
// HELM_NAMESPACE too, so a plugin cannot tell `-n default` from no -n at all.
func (e *Env) contextNamespace() string {
	// Not Settings.RESTClientGetter(): its loader returns HELM_NAMESPACE itself.
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = e.Settings.KubeConfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: e.Settings.KubeContext}
	ns, _, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).Namespace()
	if err != nil || ns == "" {
		return "default"
	}
	return ns
}

// Candidates lists the namespaces to look for the release in, and whether the
// choice was explicit. Rules (documented in the README):
//   - -n given to the binary, or HELM_NAMESPACE differing from Helm's own
//     default: that namespace only.
//   - otherwise Helm's default namespace first, then the guide's "csghub".
func (e *Env) Candidates() (namespaces []string, explicit bool) {
	if e.NamespaceFlag != "" {
		return []string{e.NamespaceFlag}, true
	}
	helmNS := os.Getenv("HELM_NAMESPACE")
	def := e.contextNamespace()
	if helmNS != "" && helmNS != def {
		return []string{helmNS}, true
	}
	if def == DefaultNamespace {
		return []string{def}, false
	}
	return []string{def, DefaultNamespace}, false
}

// Resolve finds where the release lives and returns it with Helm's storage
// for that namespace: the one resolved release a run passes to every
// operation. With an explicit namespace it is used as given (the release may
// not exist yet: callers check). Without one, the release is searched in
// Helm's default namespace and in "csghub"; it must exist in exactly one.
func (e *Env) Resolve() (*Release, error) {
	ns, err := e.findNamespace()
	if err != nil {
		return nil, err
	}
	e.Settings.SetNamespace(ns)
	cfg, err := e.ActionConfig(ns)
	if err != nil {
		return nil, err
	}
	return &Release{Name: e.Release, Namespace: ns, Settings: e.Settings, Helm: cfg}, nil
}

func (e *Env) findNamespace() (string, error) {
	cands, explicit := e.Candidates()
	if explicit {
		return cands[0], nil
	}
	var found []string
	for _, ns := range cands {
		ok, err := e.releaseExists(ns)
		if err != nil {
			return "", err
		}
		if ok {
			found = append(found, ns)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", errs.NotFoundf("release %q not found in namespace %s (give the namespace with -n)",
			e.Release, strings.Join(quoteAll(cands), " or "))
	default:
		return "", errs.Preconditionf("release %q exists in namespaces %s: say which with -n NAMESPACE (Helm passes a plugin the same HELM_NAMESPACE for -n %s and for no -n)",
			e.Release, strings.Join(quoteAll(found), " and "), found[0])
	}
}

func (e *Env) releaseExists(ns string) (bool, error) {
	cfg, err := e.ActionConfig(ns)
	if err != nil {
		return false, err
	}
	_, err = cfg.Releases.History(e.Release)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, driver.ErrReleaseNotFound):
		return false, nil
	default:
		return false, errs.Preconditionf("reading Helm releases in namespace %q: %w", ns, err)
	}
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}
