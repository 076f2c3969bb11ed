// Package plan computes what an upgrade will do: the target chart, the backup,
// the version-specific migrations in order, the Helm upgrade, readiness and
// verification, each with its reason and what it touches. Computing a plan
// changes nothing (Preview, `helm csghub plan`); Migrate (`helm csghub
// migrate`) runs a plan's migrations on their own.
package plan

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/release"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/restmapper"

	"github.com/opencsgs/helm-csghub/internal/crds"
	"github.com/opencsgs/helm-csghub/internal/diff"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/migrate"
	"github.com/opencsgs/helm-csghub/internal/readlimit"
	"github.com/opencsgs/helm-csghub/internal/render"
	"github.com/opencsgs/helm-csghub/internal/valuemigrate"
	"github.com/opencsgs/helm-csghub/internal/verify"
)

// Options select the target and the values of an upgrade.
type Options struct {
	Release *helmenv.Release
	Kube    *kube.Client
	Target  TargetOptions
	// Values are the operator's -f/--set on top of the backed-up values.
	Values values.Options
}

// Prepared is everything an upgrade or a migration run needs, read once.
type Prepared struct {
	// Resolved is the release being upgraded; Release its deployed revision.
	Resolved *helmenv.Release
	Release  *release.Release
	Current  *semver.Version
	Target   *Target
	// BaseValues are the user-supplied values of the deployed revision (what
	// the backup stores as values.yaml); Overrides the operator's -f/--set.
	BaseValues map[string]any
	Overrides  map[string]any
	// Values is BaseValues, with the value rewrites of the versions crossed
	// applied, and Overrides on top: what the upgrade installs.
	Values map[string]any
	// ValueChanges are the rewrites applied to BaseValues (renamed keys
	// carried); ValueWarnings what the operator should look at: settings not
	// carried, old keys in this run's -f/--set, keys the target does not know.
	ValueChanges  []valuemigrate.Change
	ValueWarnings []string
	sources       []valuemigrate.Source
	Migrations    []migrate.Migration
	Migrate       *migrate.Context
	// Live compares the target with the live objects (one snapshot).
	Live *Live

	// render is the one render of the target for the whole run (see Render).
	render    func() (*render.Result, error)
	rendered  *render.Result
	renderErr error
	// renderValues renders the target with other values, the same way
	// (lookups answered from the same cache): the diff's "without the value
	// rewrites" render.
	renderValues func(vals map[string]any) (*render.Result, error)
}

// Render is the target rendered once for the whole run, as Helm's upgrade
// will render it: lookups answered by the cluster, the server's
// capabilities, IsUpgrade and the next revision (see package render). The
// plan, the live-objects check, the takeovers and --dry-run all read it.
func (p *Prepared) Render() (*render.Result, error) {
	if p.render == nil { // a Prepared not made by Prepare (unit tests)
		return nil, errors.New("the target was not rendered")
	}
	return p.render()
}

// Prepare resolves the release, its values, the target chart and the migration
// context. It changes nothing in the cluster.
func Prepare(ctx context.Context, o Options) (*Prepared, error) {
	res := o.Release
	rel, err := res.Last()
	if err != nil {
		return nil, err
	}
	if err := readlimit.CheckValueFiles(o.Values); err != nil {
		return nil, errs.Usagef("values: %v", err)
	}
	overrides, err := o.Values.MergeValues(getter.All(res.Settings))
	if err != nil {
		return nil, errs.Usagef("values: %v", err)
	}
	o.Target.Settings = res.Settings
	target, err := ResolveTarget(o.Target)
	if err != nil {
		return nil, err
	}
	current, err := CompareCurrent(helmenv.ChartVersion(rel), target.Version)
	if err != nil {
		return nil, err
	}
	base := rel.Config
	if base == nil {
		base = map[string]any{}
	}
	sources, err := valuemigrate.Sources(o.Values, getter.All(res.Settings))
	if err != nil {
		return nil, errs.Usagef("values: %v", err)
	}
	p := &Prepared{Resolved: res, Release: rel, Current: current, Target: target,
		BaseValues: base, Overrides: overrides, sources: sources,
		Migrations: migrate.Between(current, target.Version)}
	p.Values = p.UpgradeValues(base)

	restCfg, cs := o.Kube.Config, o.Kube.Clientset
	dyn, err := dynamic.NewForConfig(restCfg)
	if err != nil {
		return nil, err
	}
	meta, err := metadata.NewForConfig(restCfg)
	if err != nil {
		return nil, err
	}
	disc := memory.NewMemCacheClient(cs.Discovery())
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(disc)
	var once, crdOnce sync.Once
	var crdErr error
	var crdSet *crds.Set
	cluster := &render.Cluster{Dynamic: dyn, Mapper: mapper}
	p.renderValues = func(vals map[string]any) (*render.Result, error) {
		return render.Render(render.Options{Chart: target.Chart, Values: vals,
			Release: res.Name, Namespace: res.Namespace, Revision: rel.Version + 1, Discovery: disc, Cluster: cluster})
	}
	p.render = func() (*render.Result, error) {
		once.Do(func() { p.rendered, p.renderErr = p.renderValues(p.Values) })
		return p.rendered, p.renderErr
	}
	p.Migrate = &migrate.Context{
		Release: res.Name, Namespace: res.Namespace, Current: current, Target: target.Version,
		TargetChart: target.Chart, Values: p.Values, Clientset: cs, Dynamic: dyn, Metadata: meta, Discovery: disc,
		Kube:   o.Kube,
		Mapper: mapper,
		Rendered: func() ([]*unstructured.Unstructured, error) {
			r, err := p.render()
			if err != nil {
				return nil, err
			}
			return r.Objects, nil
		},
		CRDs: func() (*crds.Set, error) {
			crdOnce.Do(func() { crdSet, crdErr = crds.Collect(target.Chart, p.Values) })
			return crdSet, crdErr
		},
		Skip: map[*migrate.Switch]bool{},
	}
	p.analyzeLive(ctx)
	return p, nil
}

// UpgradeValues is what the Helm upgrade installs: base (the deployed
// revision's values, or the backup's copy of them) with the value rewrites of
// the versions crossed applied, and the operator's -f/--set on top, untouched.
// It also records the rewrites and the warnings (the last call's).
func (p *Prepared) UpgradeValues(base map[string]any) map[string]any {
	res := valuemigrate.Migrate(base, p.Current, p.Target.Version, p.sources)
	vals := MergeValues(res.Values, p.Overrides)
	p.ValueChanges, p.ValueWarnings = res.Changes, res.Warnings
	for _, k := range valuemigrate.Unknown(vals, p.Target.Chart) {
		p.ValueWarnings = append(p.ValueWarnings, fmt.Sprintf("values key %s: unknown to chart %s (not in its values.yaml or schema): it has no effect", k, p.Target.VersionS))
	}
	return vals
}

// MergeValues deep-merges override onto base (maps merge, anything else
// replaces), as successive -f files do in Helm.
func MergeValues(base, override map[string]any) map[string]any {
	out := make(map[string]any, len(base))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range override {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = MergeValues(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// Step is one entry of the plan.
type Step struct {
	Name    string   `json:"name"`
	Version string   `json:"version,omitempty"` // migrations only
	Reason  string   `json:"reason"`
	Touches []string `json:"touches,omitempty"`
	// Status of a migration: "to apply", "already applied", or the check's error.
	Status string `json:"status,omitempty"`
}

// Plan is what an upgrade will do.
type Plan struct {
	Release   string `json:"release"`
	Namespace string `json:"namespace"`
	Revision  int    `json:"revision"`
	From      string `json:"from"`
	To        string `json:"to"`
	Chart     string `json:"chart"`
	Steps     []Step `json:"steps"`
	// Refused says why an upgrade to this target would be refused before
	// anything changes (the target does not render with the values).
	Refused string `json:"refused,omitempty"`
	// Warnings about the values: settings not carried, old keys in -f/--set,
	// keys the target chart does not know.
	Warnings []string `json:"warnings,omitempty"`
	// Lookups the target's templates made while rendering, answered by the
	// cluster in LookupRequests API requests (repeats answered once).
	Lookups        int `json:"lookups"`
	LookupRequests int `json:"lookupRequests"`
	// Diff is what the Helm upgrade changes, object by object (plan --diff).
	Diff *diff.Report `json:"diff,omitempty"`
}

// valuesStep lists the value rewrites (nil when there are none).
func (p *Prepared) valuesStep() *Step {
	if len(p.ValueChanges) == 0 {
		return nil
	}
	st := &Step{Name: "values",
		Reason: fmt.Sprintf("chart versions after %s renamed keys of the deployed values, which the Helm upgrade installs as its base: carried to the new keys (your -f/--set are never rewritten)", p.Current)}
	for _, c := range p.ValueChanges {
		st.Touches = append(st.Touches, c.String())
	}
	st.Status = fmt.Sprintf("%d rewrite(s), applied to the values the upgrade installs", len(p.ValueChanges))
	return st
}

// CheckRender renders the target chart with the values the upgrade would
// install, as Helm's upgrade will (Render; the render is kept: the takeover
// steps use it too). A target that does not render
// would fail at the Helm upgrade, after the backup and the migrations; it is
// refused here, before anything changes, as a precondition (exit 4).
func (p *Prepared) CheckRender() error {
	if _, err := p.Migrate.Rendered(); err != nil {
		msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
		return errs.Preconditionf("the target chart %s does not render with the deployed revision's values and your -f/--set: %s; "+
			"give the values it needs with --set key=value or -f values.yaml (plan shows the result), or choose another --version", p.Target, msg)
	}
	return nil
}

// Build lists the steps. Each migration is checked (read-only) so the plan says
// whether it still has work to do.
func (p *Prepared) Build(ctx context.Context, backupNote string) *Plan {
	pl := &Plan{Release: p.Resolved.Name, Namespace: p.Resolved.Namespace, Revision: p.Release.Version,
		From: p.Current.String(), To: p.Target.VersionS, Chart: p.Target.Ref}
	pl.Steps = append(pl.Steps, p.liveStep())
	if vs := p.valuesStep(); vs != nil {
		pl.Steps = append(pl.Steps, *vs)
	}
	pl.Warnings = p.ValueWarnings
	pl.Steps = append(pl.Steps, Step{Name: "backup",
		Reason:  "Helm values and PostgreSQL dump of revision " + fmt.Sprint(p.Release.Version) + ", so the upgrade can be undone (guide section 2)",
		Touches: []string{backupNote}})
	for _, m := range p.Migrations {
		d := m.Describe(p.Migrate)
		st := Step{Name: m.Name(), Version: m.Version().String(), Reason: d.Reason, Touches: d.Touches}
		applied, detail, err := m.Check(ctx, p.Migrate)
		switch {
		case err != nil:
			st.Status = "cannot apply: " + err.Error()
		case applied:
			st.Status = "already applied: " + detail
		default:
			st.Status = "to apply: " + detail
		}
		pl.Steps = append(pl.Steps, st)
	}
	up := Step{Name: "helm-upgrade", Reason: fmt.Sprintf("helm upgrade %s %s --version %s with the backed-up values and the given -f/--set on top",
		p.Resolved.Name, p.Target.Ref, p.Target.VersionS), Touches: []string{"release " + p.Resolved.Namespace + "/" + p.Resolved.Name}}
	if err := p.CheckRender(); err != nil {
		pl.Refused = err.Error()
		up.Status = "refused: " + err.Error()
	} else {
		up.Status = "the target renders with these values"
		if r, _ := p.Render(); r != nil {
			pl.Lookups, pl.LookupRequests = r.Lookups, r.Requests
			up.Status += fmt.Sprintf(" (as Helm's upgrade will: %d lookup(s) answered by the cluster in %d request(s), %d object(s), %d hook(s))",
				r.Lookups, r.Requests, len(r.Objects), len(r.Hooks))
		}
	}
	pl.Steps = append(pl.Steps, up,
		Step{Name: "readiness", Reason: "wait until every pod (not Job pods) in " + p.Resolved.Namespace + " and knative-serving is Ready and Deployments/StatefulSets are rolled out",
			Touches: []string{"namespace " + p.Resolved.Namespace, "namespace knative-serving"}},
		// the checks `verify` runs, from its own list: a check added there is described here too
		Step{Name: "verify", Reason: fmt.Sprintf("the %d checks of `helm csghub verify`: %s", len(verify.Names), verify.Describe()),
			Touches: []string{"port-forwards to the portal, csghub-server, Casdoor, PostgreSQL, MinIO, Redis and Gitaly (read only)"}},
	)
	return pl
}
