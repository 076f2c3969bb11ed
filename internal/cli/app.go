package cli

import (
	"fmt"
	"io"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/lock"
)

// resolve finds the release once and builds the cluster clients: the two
// things every command that talks to the cluster hands its operation.
func (a *App) resolve() (*helmenv.Release, *kube.Client, error) {
	if err := lock.FromEnv(); err != nil {
		return nil, nil, err
	}
	cfg, err := a.Env.RESTConfig()
	if err != nil {
		return nil, nil, err
	}
	cs, err := a.Env.Clientset()
	if err != nil {
		return nil, nil, err
	}
	rel, err := a.Env.Resolve()
	if err != nil {
		return nil, nil, err
	}
	return rel, &kube.Client{Config: cfg, Clientset: cs}, nil
}

// progressWriter is where live progress goes: stderr when it is a terminal and
// the output is for people; nowhere otherwise.
func (a *App) progressWriter(o output) io.Writer {
	if a.IsTerminal && o == outputTable {
		return a.Stderr
	}
	return nil
}

// catalogNamespace resolves the namespace for commands that read the local
// backup catalog: the release's namespace when the cluster answers, else the
// explicit namespace (so backups stay listable while the cluster is down).
// rel is nil when the cluster did not answer.
func (a *App) catalogNamespace() (ns string, rel *helmenv.Release, err error) {
	rel, err = a.Env.Resolve()
	if err == nil {
		return rel.Namespace, rel, nil
	}
	if cands, explicit := a.Env.Candidates(); explicit {
		return cands[0], nil, nil
	}
	if errs.KindOf(err) == errs.NotFound {
		return "", nil, errs.NotFoundf("%s (backups are kept per namespace: give it with -n)", err.Error())
	}
	return "", nil, err
}

// stepLogger prints one line per step on stderr for people; JSON output stays clean.
func (a *App) stepLogger(o output) func(format string, args ...any) {
	if o == outputJSON {
		return nil
	}
	return func(format string, args ...any) {
		fmt.Fprintf(a.Stderr, "==> "+format+"\n", args...)
	}
}
