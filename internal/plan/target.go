package plan

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/helmpath"
	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"

	"github.com/opencsgs/helm-csghub/internal/errs"
)

// DefaultChart is the guide's chart reference (`helm repo add csghub ...`).
const DefaultChart = "csghub/csghub"

// Target is the chart an upgrade installs.
type Target struct {
	Ref       string          `json:"chart"`
	Version   *semver.Version `json:"-"`
	VersionS  string          `json:"version"`
	Path      string          `json:"path"` // local file or folder the chart was loaded from
	Chart     *chart.Chart    `json:"-"`
	Available []string        `json:"-"` // versions the source offers, newest first
}

// TargetOptions select the target chart.
type TargetOptions struct {
	Settings *cli.EnvSettings
	// Chart is a repository reference (repo/name), a local folder or .tgz, or an
	// oci:// reference. Empty: DefaultChart.
	Chart string
	// Version is the target version; empty: the newest the source offers.
	Version string
	// NoRepoUpdate uses the cached repository index as it is (offline).
	NoRepoUpdate bool
	// Warn receives non-fatal notes (stale index, ...).
	Warn func(format string, args ...any)
}

// ParseVersion accepts "2.0.0" and "v2.0.0"; anything else is a usage error.
func ParseVersion(s string) (*semver.Version, error) {
	v, err := semver.StrictNewVersion(strings.TrimPrefix(strings.TrimSpace(s), "v"))
	if err != nil {
		return nil, errs.Usagef("--version %q is not a semantic version like 2.0.0", s)
	}
	return v, nil
}

// ResolveTarget finds and loads the target chart.
func ResolveTarget(o TargetOptions) (*Target, error) {
	ref := o.Chart
	if ref == "" {
		ref = DefaultChart
	}
	var want *semver.Version
	if o.Version != "" {
		v, err := ParseVersion(o.Version)
		if err != nil {
			return nil, err
		}
		want = v
	}
	if o.Warn == nil {
		o.Warn = func(string, ...any) {}
	}
	switch {
	case registry.IsOCI(ref):
		return resolveOCI(o, ref, want)
	case isLocal(ref):
		return resolveLocal(ref, want)
	default:
		return resolveRepo(o, ref, want)
	}
}

func isLocal(ref string) bool {
	if strings.HasPrefix(ref, ".") || strings.HasPrefix(ref, "/") || strings.HasSuffix(ref, ".tgz") {
		return true
	}
	_, err := os.Stat(ref)
	return err == nil
}

func resolveLocal(ref string, want *semver.Version) (*Target, error) {
	ch, err := loader.Load(ref)
	if err != nil {
		return nil, errs.Usagef("--chart %s: %v", ref, err)
	}
	v, err := semver.NewVersion(ch.Metadata.Version)
	if err != nil {
		return nil, errs.Usagef("--chart %s: chart version %q is not semantic", ref, ch.Metadata.Version)
	}
	if want != nil && !v.Equal(want) {
		return nil, errs.Usagef("--chart %s is version %s, not --version %s", ref, v, want)
	}
	abs, _ := filepath.Abs(ref)
	return &Target{Ref: ref, Version: v, VersionS: v.String(), Path: abs, Chart: ch, Available: []string{v.String()}}, nil
}

// resolveRepo reads the repository index (refreshed first, as the guide's
// `helm repo update csghub`), picks the version and downloads the chart.
func resolveRepo(o TargetOptions, ref string, want *semver.Version) (*Target, error) {
	repoName, chartName, ok := strings.Cut(ref, "/")
	if !ok || repoName == "" || chartName == "" || strings.Contains(chartName, "/") {
		return nil, errs.Usagef("--chart %q: expected REPO/CHART (e.g. csghub/csghub), a chart folder or .tgz, or oci://...", ref)
	}
	s := o.Settings
	rf, err := repo.LoadFile(s.RepositoryConfig)
	if err != nil || !rf.Has(repoName) {
		return nil, errs.Preconditionf("chart repository %q is not configured: add it with `helm repo add %s <url>` (as in the CSGHub guide)", repoName, repoName)
	}
	entry := rf.Get(repoName)
	indexPath := filepath.Join(s.RepositoryCache, helmpath.CacheIndexFile(repoName))
	if !o.NoRepoUpdate {
		cr, err := repo.NewChartRepository(entry, getter.All(s))
		if err == nil {
			cr.CachePath = s.RepositoryCache
			_, err = cr.DownloadIndexFile()
		}
		if err != nil {
			o.Warn("could not refresh repository %q (%v); using the cached index", repoName, err)
		}
	}
	idx, err := repo.LoadIndexFile(indexPath)
	if err != nil {
		return nil, errs.Preconditionf("repository %q has no usable index (run `helm repo update %s`): %v", repoName, repoName, err)
	}
	var versions []*semver.Version
	for _, cv := range idx.Entries[chartName] {
		if v, err := semver.NewVersion(cv.Version); err == nil {
			versions = append(versions, v)
		}
	}
	if len(versions) == 0 {
		return nil, errs.NotFoundf("chart %q not found in repository %q", chartName, repoName)
	}
	pick, err := pickVersion(versions, want)
	if err != nil {
		return nil, err
	}
	path, err := locate(nil, pick.Original(), ref, s)
	if err != nil {
		return nil, errs.Failedf("downloading %s %s: %w", ref, pick, err)
	}
	ch, err := loader.Load(path)
	if err != nil {
		return nil, errs.Failedf("loading %s: %w", path, err)
	}
	return &Target{Ref: ref, Version: pick, VersionS: pick.String(), Path: path, Chart: ch, Available: versionStrings(versions)}, nil
}

func resolveOCI(o TargetOptions, ref string, want *semver.Version) (*Target, error) {
	rc, err := registry.NewClient(registry.ClientOptCredentialsFile(o.Settings.RegistryConfig), registry.ClientOptWriter(io.Discard))
	if err != nil {
		return nil, errs.Failedf("registry client: %w", err)
	}
	tags, err := rc.Tags(strings.TrimPrefix(ref, "oci://"))
	if err != nil {
		return nil, errs.Failedf("listing versions of %s: %w", ref, err)
	}
	var versions []*semver.Version
	for _, t := range tags {
		if v, err := semver.NewVersion(t); err == nil {
			versions = append(versions, v)
		}
	}
	pick, err := pickVersion(versions, want)
	if err != nil {
		return nil, err
	}
	path, err := locate(rc, pick.Original(), ref, o.Settings)
	if err != nil {
		return nil, errs.Failedf("pulling %s %s: %w", ref, pick, err)
	}
	ch, err := loader.Load(path)
	if err != nil {
		return nil, errs.Failedf("loading %s: %w", path, err)
	}
	return &Target{Ref: ref, Version: pick, VersionS: pick.String(), Path: path, Chart: ch, Available: versionStrings(versions)}, nil
}

// locate downloads the chart; Helm's downloader prints to stdout, which must
// stay clean for --output json, so stdout is parked for the call.
func locate(rc *registry.Client, version, ref string, s *cli.EnvSettings) (string, error) {
	// action.Install carries the registry client into ChartPathOptions.
	inst := action.NewInstall(&action.Configuration{})
	if rc != nil {
		inst.SetRegistryClient(rc)
	}
	inst.ChartPathOptions.Version = version
	saved := os.Stdout
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err == nil {
		os.Stdout = devnull
		defer func() { os.Stdout = saved; devnull.Close() }()
	}
	return inst.ChartPathOptions.LocateChart(ref, s)
}

// pickVersion returns want when offered, the newest stable version when want is
// nil, and otherwise an error listing the nearest offered versions.
func pickVersion(versions []*semver.Version, want *semver.Version) (*semver.Version, error) {
	sort.Sort(sort.Reverse(semver.Collection(versions)))
	if want == nil {
		for _, v := range versions {
			if v.Prerelease() == "" {
				return v, nil
			}
		}
		return versions[0], nil
	}
	for _, v := range versions {
		if v.Equal(want) {
			return v, nil
		}
	}
	return nil, errs.NotFoundf("version %s is not available; nearest: %s", want, strings.Join(nearest(versions, want, 3), ", "))
}

// nearest lists up to n versions on each side of want.
func nearest(desc []*semver.Version, want *semver.Version, n int) []string {
	asc := append([]*semver.Version(nil), desc...)
	sort.Sort(semver.Collection(asc))
	i := sort.Search(len(asc), func(i int) bool { return !asc[i].LessThan(want) })
	lo, hi := max(0, i-n), min(len(asc), i+n)
	var out []string
	for _, v := range asc[lo:hi] {
		out = append(out, v.String())
	}
	return out
}

func versionStrings(vs []*semver.Version) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}

// CompareCurrent refuses a downgrade (that is a rollback) and returns the
// current version parsed.
func CompareCurrent(current string, target *semver.Version) (*semver.Version, error) {
	cur, err := semver.NewVersion(current)
	if err != nil {
		return nil, errs.Preconditionf("the deployed chart version %q is not semantic", current)
	}
	if target.LessThan(cur) {
		return nil, errs.Preconditionf("target %s is older than the deployed %s: that is a rollback, use `helm csghub rollback` (see `helm csghub history`)", target, cur)
	}
	return cur, nil
}

// String describes the target.
func (t *Target) String() string { return fmt.Sprintf("%s %s", t.Ref, t.VersionS) }
