package helmenv

import (
	"errors"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"

	"github.com/opencsgs/helm-csghub/internal/errs"
)

// Release is the release one run is about, resolved once by Env.Resolve and
// handed to every operation: its name, its namespace and Helm's storage there.
// Operations read it and never change it, so each sees the same release
// without reading Helm's storage again to find it.
type Release struct {
	Name      string
	Namespace string
	// Settings are Helm's environment: value getters, chart downloads and
	// MaxHistory (HELM_MAX_HISTORY) for the revisions we write.
	Settings *cli.EnvSettings
	// Helm is the SDK configuration of Namespace: release storage and kube client.
	Helm *action.Configuration
}

// Flags are the flags that name r (and dir, the backup catalog, when not
// "": a folder, --dir; a bucket, --backup-location) in a command the
// plugin prints for the operator to run.
func (r *Release) Flags(dir string) string {
	s := " -n " + r.Namespace
	if r.Name != DefaultRelease {
		s += " --release " + r.Name
	}
	switch {
	case strings.HasPrefix(dir, "s3://"): // a bucket location (backup.IsBucket; backup imports this package)
		s += " --backup-location " + dir
	case dir != "":
		s += " --dir " + dir
	}
	return s
}

// Last is the newest revision of the release (whatever its status).
func (r *Release) Last() (*release.Release, error) {
	rel, err := r.Helm.Releases.Last(r.Name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, errs.NotFoundf("release %q not found in namespace %q", r.Name, r.Namespace)
	}
	if err != nil {
		return nil, errs.Failedf("reading release %q: %w", r.Name, err)
	}
	return rel, nil
}

// History is every stored revision of the release, oldest first.
func (r *Release) History() ([]*release.Release, error) {
	hist, err := r.Helm.Releases.History(r.Name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, errs.NotFoundf("release %q not found in namespace %q", r.Name, r.Namespace)
	}
	if err != nil {
		return nil, errs.Failedf("reading history of %q: %w", r.Name, err)
	}
	sort.Slice(hist, func(i, j int) bool { return hist[i].Version < hist[j].Version })
	return hist, nil
}

// Pending says revision rev is stored with a pending-* status; when the
// history cannot be read it says yes (the safe side for evidence of a killed
// run: kept, not dropped).
func (r *Release) Pending(rev int) bool {
	rel, err := r.Helm.Releases.Get(r.Name, rev)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return false
	}
	return err != nil || rel.Info.Status.IsPending()
}

// ChartVersion is the chart version of rel ("" when unknown).
func ChartVersion(rel *release.Release) string {
	if rel == nil || rel.Chart == nil || rel.Chart.Metadata == nil {
		return ""
	}
	return rel.Chart.Metadata.Version
}
