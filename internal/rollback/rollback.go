// Package rollback rolls a CSGHub release back to an earlier revision and
// restores the database from the backup taken at that revision: the guide's
// section 5 as one command.
package rollback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/readiness"
	"github.com/opencsgs/helm-csghub/internal/restore"
	"github.com/opencsgs/helm-csghub/internal/verify"
)

// Rollback is one rollback.
type Rollback struct {
	Env  *helmenv.Env
	Kube *kube.Client
	Dir  string // backup catalog root
	// Revision to roll back to; 0 means the previous one, as `helm rollback`.
	Revision int
	// BackupID picks the backup to restore instead of the one of Revision.
	BackupID string
	// SkipDBRestore rolls back the release only (explicit opt-out).
	SkipDBRestore bool
	Timeout       time.Duration
	Progress      io.Writer
	Log           func(format string, args ...any)

	// AllowInsecurePermissions restores a backup others can read or change.
	AllowInsecurePermissions bool
	// PGImage, PGPodTimeout: the client pod of an external database.
	PGImage      string
	PGPodTimeout time.Duration
}

// Result is a finished rollback.
type Result struct {
	From         int               `json:"fromRevision"`
	FromChart    string            `json:"fromChartVersion"`
	To           int               `json:"toRevision"`
	ToChart      string            `json:"toChartVersion"`
	NewRevision  int               `json:"newRevision"`
	Status       string            `json:"status"`
	Backup       string            `json:"backupId,omitempty"`
	Restore      *restore.Result   `json:"restore,omitempty"`
	DBRestoreOff bool              `json:"databaseRestoreSkipped,omitempty"`
	Readiness    *readiness.Report `json:"readiness,omitempty"`
	Verify       *verify.Report    `json:"verify,omitempty"`
}

// Target is a validated rollback target.
type Target struct {
	Current *release.Release
	To      *release.Release
	Backup  *backup.Entry
}

func (r *Rollback) logf(format string, args ...any) {
	if r.Log != nil {
		r.Log(format, args...)
	}
}

// Resolve validates the target revision against the history and finds the backup
// to restore; nothing is changed.
func (r *Rollback) Resolve(ctx context.Context) (*Target, error) {
	if r.Revision < 0 {
		return nil, errs.Usagef("revision must be a positive number, got %d", r.Revision)
	}
	if err := r.Env.Resolve(); err != nil {
		return nil, err
	}
	cfg, err := r.Env.ActionConfig(r.Env.Namespace)
	if err != nil {
		return nil, err
	}
	hist, err := cfg.Releases.History(r.Env.Release)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, errs.NotFoundf("release %q not found in namespace %q", r.Env.Release, r.Env.Namespace)
	}
	if err != nil {
		return nil, errs.Failedf("reading history of %q: %w", r.Env.Release, err)
	}
	sort.Slice(hist, func(i, j int) bool { return hist[i].Version < hist[j].Version })
	cur := hist[len(hist)-1]
	if cur.Info.Status.IsPending() {
		return nil, errs.Preconditionf("release %q is %s (another operation is running or was killed); wait for it, or see `helm history %s`",
			r.Env.Release, cur.Info.Status, r.Env.Release)
	}
	want := r.Revision
	if want == 0 {
		if len(hist) < 2 {
			return nil, errs.Preconditionf("release %q has only revision %d: nothing to roll back to", r.Env.Release, cur.Version)
		}
		want = hist[len(hist)-2].Version
	}
	if want == cur.Version {
		return nil, errs.Usagef("revision %d is the current revision of %q: nothing to roll back", want, r.Env.Release)
	}
	var to *release.Release
	var revs []string
	for _, h := range hist {
		revs = append(revs, fmt.Sprint(h.Version))
		if h.Version == want {
			to = h
		}
	}
	if to == nil {
		return nil, errs.NotFoundf("revision %d not found in the history of %q (revisions: %s)", want, r.Env.Release, strings.Join(revs, ", "))
	}
	t := &Target{Current: cur, To: to}
	if r.SkipDBRestore {
		return t, nil
	}
	cat := backup.Catalog{Root: r.dir()}
	if r.BackupID != "" {
		t.Backup, err = cat.Find(r.Env.Namespace, r.Env.Release, r.BackupID)
	} else {
		t.Backup, err = cat.ForRevision(r.Env.Namespace, r.Env.Release, want)
		if err == nil && t.Backup == nil {
			err = errs.Preconditionf("no backup of revision %d in %s: choose one with --backup ID (helm csghub history), or roll back the release only with --skip-db-restore",
				want, cat.ReleaseDir(r.Env.Namespace, r.Env.Release))
		}
	}
	if err != nil {
		return nil, err
	}
	if len(t.Backup.Insecure) > 0 && !r.AllowInsecurePermissions {
		return nil, backup.InsecureError(t.Backup)
	}
	if !t.Backup.Manifest.HasDatabase() {
		return nil, errs.Preconditionf("backup %s holds no database dump: choose another with --backup, or pass --skip-db-restore", t.Backup.ID)
	}
	// The full check (decompressing every dump), not restore's stored-checksum
	// one: the Helm rollback changes the release before the restore reads a
	// byte, so a dump that could fail mid-replay must be refused here.
	r.logf("verifying backup %s", t.Backup.ID)
	if err := backup.VerifyError(backup.Verify(t.Backup)); err != nil {
		return nil, err
	}
	return t, nil
}

func (r *Rollback) dir() string {
	if r.Dir != "" {
		return r.Dir
	}
	return backup.DefaultDir()
}

// Run validates, rolls the release back with Helm (waiting for its resources)
// and restores the database.
func (r *Rollback) Run(ctx context.Context) (*Result, error) {
	t, err := r.Resolve(ctx)
	if err != nil {
		return nil, err
	}
	res := &Result{From: t.Current.Version, FromChart: helmenv.ChartVersion(t.Current),
		To: t.To.Version, ToChart: helmenv.ChartVersion(t.To), DBRestoreOff: r.SkipDBRestore}
	if t.Backup != nil {
		res.Backup = t.Backup.ID
	}
	if ctx.Err() != nil {
		return nil, errs.Wrap(errs.Interrupted, errors.New("rollback interrupted before it started, nothing changed"))
	}
	cfg, err := r.Env.ActionConfig(r.Env.Namespace)
	if err != nil {
		return nil, err
	}
	rb := action.NewRollback(cfg)
	rb.Version = t.To.Version
	rb.Wait = true
	rb.Timeout = r.Timeout
	rb.MaxHistory = r.Env.Settings.MaxHistory
	r.logf("rolling back %s from revision %d (chart %s) to revision %d (chart %s)", r.Env.Release,
		res.From, res.FromChart, res.To, res.ToChart)
	// Helm's rollback runs to its end even on Ctrl-C (it takes no context), so
	// the release is never left pending-rollback by us.
	if err := rb.Run(r.Env.Release); err != nil {
		return nil, errs.NeedsAttentionf("helm rollback to revision %d: %v", t.To.Version, err)
	}
	last, err := r.Env.LastRelease(cfg)
	if err != nil {
		return nil, err
	}
	res.NewRevision, res.Status = last.Version, last.Info.Status.String()
	r.logf("release %s at revision %d (%s)", r.Env.Release, res.NewRevision, res.Status)
	if t.Backup != nil {
		if ctx.Err() != nil {
			return res, errs.Wrap(errs.Interrupted, fmt.Errorf("interrupted after the Helm rollback: the database was NOT restored; run `helm csghub restore --backup %s`", t.Backup.ID))
		}
		rs := &restore.Restore{Env: r.Env, Kube: r.Kube, Dir: r.Dir, Entry: t.Backup, Verified: true, AllowInsecurePermissions: r.AllowInsecurePermissions, Progress: r.Progress, Log: r.Log,
			PGImage: r.PGImage, PodTimeout: r.PGPodTimeout}
		if res.Restore, err = rs.Run(ctx); err != nil {
			return res, err
		}
	}
	// readiness and verification, as after an upgrade
	nss := []string{r.Env.Namespace}
	if ok, _ := kube.NamespaceExists(ctx, r.Kube.Clientset, kube.KnativeNamespace); ok && r.Env.Namespace != kube.KnativeNamespace {
		nss = append(nss, kube.KnativeNamespace)
	}
	r.logf("waiting for pods in %s", strings.Join(nss, ", "))
	w := &readiness.Waiter{Clientset: r.Kube.Clientset, Namespaces: nss, Timeout: r.Timeout, Progress: r.Progress}
	if res.Readiness, err = w.Wait(ctx); err != nil {
		return res, errs.NeedsAttentionf("rolled back to revision %d but not ready: %v", res.NewRevision, err)
	}
	r.logf("verifying")
	v := &verify.Verify{Env: r.Env, Kube: r.Kube, Revision: res.NewRevision}
	if res.Verify, err = v.Run(ctx); err != nil {
		return res, errs.NeedsAttentionf("rolled back to revision %d but %v", res.NewRevision, err)
	}
	return res, nil
}
