package cli

import (
	"github.com/spf13/pflag"
	"helm.sh/helm/v3/pkg/cli/values"

	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/migrate"
	"github.com/opencsgs/helm-csghub/internal/plan"
)

// targetFlags select the target chart and values, shared by plan, migrate and upgrade.
type targetFlags struct {
	version      string
	chart        string
	noRepoUpdate bool
	values       values.Options
}

func (t *targetFlags) bind(fs *pflag.FlagSet, withValues bool) {
	fs.StringVar(&t.version, "version", "", "target chart version (default: the newest in the repository)")
	fs.StringVar(&t.chart, "chart", plan.DefaultChart, "target chart: REPO/NAME, a chart folder or .tgz, or oci://...")
	fs.BoolVar(&t.noRepoUpdate, "no-repo-update", false, "use the cached repository index as it is (offline)")
	if withValues {
		fs.StringSliceVarP(&t.values.ValueFiles, "values", "f", nil, "values file on top of the backed-up values (can repeat)")
		fs.StringArrayVar(&t.values.Values, "set", nil, "set values on top (key=value, can repeat)")
		fs.StringArrayVar(&t.values.StringValues, "set-string", nil, "set STRING values on top (can repeat)")
		fs.StringArrayVar(&t.values.FileValues, "set-file", nil, "set values from files on top (key=path, can repeat)")
		fs.StringArrayVar(&t.values.JSONValues, "set-json", nil, "set JSON values on top (key=json, can repeat)")
	}
}

func (t *targetFlags) options(rel *helmenv.Release, kc *kube.Client, warn func(string, ...any)) plan.Options {
	return plan.Options{
		Release: rel, Kube: kc,
		Target: plan.TargetOptions{Chart: t.chart, Version: t.version, NoRepoUpdate: t.noRepoUpdate,
			Warn: warn},
		Values: t.values,
	}
}

func parseVersionFlag(s string) (any, error) { return plan.ParseVersion(s) }

// switchFlags are the opt-outs the registered migrations offer (e.g.
// --skip-dataflow-logs), bound for one command.
type switchFlags map[*migrate.Switch]*bool

func (s *switchFlags) bind(fs *pflag.FlagSet, command string) {
	*s = switchFlags{}
	for _, sw := range migrate.Switches() {
		if help := sw.Help[command]; help != "" {
			v := new(bool)
			fs.BoolVar(v, sw.Flag, false, help)
			(*s)[sw] = v
		}
	}
}

// off is the set of switches given on the command line.
func (s switchFlags) off() map[*migrate.Switch]bool {
	out := map[*migrate.Switch]bool{}
	for sw, v := range s {
		if *v {
			out[sw] = true
		}
	}
	return out
}
