// Package upgrade is `helm csghub upgrade`: the guide's sections 2 to 4 and 6
// as one run. Preflight, backup, migrations, the Helm upgrade (SDK), readiness
// and verification; on failure after the Helm upgrade started, the release is
// rolled back and the database restored from the run's own backup.
package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"sigs.k8s.io/yaml"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/livediff"
	"github.com/opencsgs/helm-csghub/internal/lock"
	"github.com/opencsgs/helm-csghub/internal/migrate"
	"github.com/opencsgs/helm-csghub/internal/plan"
	"github.com/opencsgs/helm-csghub/internal/readiness"
	"github.com/opencsgs/helm-csghub/internal/recovery"
	"github.com/opencsgs/helm-csghub/internal/redact"
	"github.com/opencsgs/helm-csghub/internal/render"
	"github.com/opencsgs/helm-csghub/internal/restore"
	"github.com/opencsgs/helm-csghub/internal/steplog"
	"github.com/opencsgs/helm-csghub/internal/valuemigrate"
	"github.com/opencsgs/helm-csghub/internal/verify"
)

// Upgrade is one upgrade run.
type Upgrade struct {
	Release *helmenv.Release
	Kube    *kube.Client
	Plan    plan.Options
	// Timeout bounds the Helm upgrade plus readiness (and the rollback's wait).
	Timeout        time.Duration
	DryRun         bool
	NoRollback     bool
	SkipDBBackup   bool
	ForceConflicts bool
	// RecreateStatefulSets deletes (--cascade=orphan) StatefulSets whose
	// immutable fields change, so Helm recreates them; without it such a
	// change is refused in preflight.
	RecreateStatefulSets bool
	BackupDir            string
	Keep                 int
	// MigrationSkip are the migrations' switches turned off (e.g. --skip-dataflow-logs).
	MigrationSkip map[*migrate.Switch]bool
	// Events receives each step transition (JSON lines for --output json).
	Events func(Event)
	// Progress gets live progress lines on a terminal (nil: silent).
	Progress io.Writer
	// Log receives human-readable step lines (nil: silent).
	Log steplog.Func
	// Recover first rolls back a release left pending by a killed plugin
	// run (see internal/recovery).
	Recover bool

	recovered []string
	lock      *lock.Lock // held by Run; handed to the undo's restore

	// PGImage, PGPodTimeout: the client pod of an external database.
	PGImage      string
	PGPodTimeout time.Duration
}

// Summary is the one-screen result of a run.
type Summary struct {
	Release      string                   `json:"release"`
	Namespace    string                   `json:"namespace"`
	From         string                   `json:"fromVersion"`
	To           string                   `json:"toVersion"`
	FromRevision int                      `json:"fromRevision"`
	Revision     int                      `json:"revision"`
	Status       string                   `json:"status"`
	DryRun       bool                     `json:"dryRun,omitempty"`
	Backup       string                   `json:"backupId,omitempty"`
	BackupPath   string                   `json:"backupPath,omitempty"`
	Migrations   []migrate.Result         `json:"migrations"`
	Readiness    *readiness.Report        `json:"readiness,omitempty"`
	Verify       *verify.Report           `json:"verify,omitempty"`
	Warnings     []string                 `json:"warnings,omitempty"`
	Failure      string                   `json:"failure,omitempty"`
	RolledBack   bool                     `json:"rolledBack,omitempty"`
	Undone       []string                 `json:"undone,omitempty"`
	Steps        map[string]time.Duration `json:"stepDurationsNs"`
	Manifest     string                   `json:"manifest,omitempty"` // dry run: the rendered upgrade
	StaleLock    string                   `json:"staleLockTakenOver,omitempty"`
	Notes        []string                 `json:"notes,omitempty"`
	Recovered    []string                 `json:"recovered,omitempty"`
	// renamed keys carried in the values installed (runner.region -> runner.runner.region)
	Rewrites []valuemigrate.Change `json:"valueRewrites,omitempty"`
}

// Run performs the upgrade.
func (u *Upgrade) Run(ctx context.Context) (sum *Summary, err error) {
	j := &journal{emit: u.Events}
	sum = &Summary{Steps: map[string]time.Duration{}, Migrations: []migrate.Result{}, DryRun: u.DryRun}
	timed := func(name string, f func() (string, error)) error {
		d, err := j.step(name, f)
		sum.Steps[name] = d
		return err
	}

	// --- the lock: one operation per release. Taken before the plan reads the
	// release, so a second run meets the lock, not the first run's pending
	// revision or its new chart version. A dry run changes nothing: no lock.
	// Refused here, nothing started: no summary (nil) to print.
	var lk *lock.Lock
	if !u.DryRun {
		lk, err = lock.Acquire(ctx, u.Kube.Clientset, u.Release.Namespace, u.Release.Name, "upgrade")
		if err != nil {
			return nil, err
		}
		u.lock = lk
		defer lk.Release()
		if lk.Stale != "" {
			sum.StaleLock = lk.Stale
			j.add(Event{Step: "lock", Status: "warning", Detail: "took over a stale lock from " + lk.Stale})
		}
		lk.KeepInherited() // a killed run's evidence stays until we know it is obsolete
		if err := u.recoverKilledRun(ctx, lk, j); err != nil {
			return nil, err
		}
	}

	// --- plan and preflight: read-only
	var p *plan.Prepared
	if err := timed("plan", func() (string, error) {
		var err error
		p, err = plan.Prepare(ctx, u.Plan)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s -> %s, %d migration(s)", p.Current, p.Target.VersionS, len(p.Migrations)), nil
	}); err != nil {
		return nil, err
	}
	sum.Release, sum.Namespace = u.Release.Name, u.Release.Namespace
	sum.Recovered = u.recovered
	sum.From, sum.To = p.Current.String(), p.Target.VersionS
	sum.FromRevision, sum.Revision = p.Release.Version, p.Release.Version
	sum.Status = p.Release.Info.Status.String()
	if lk != nil && !p.Release.Info.Status.IsPending() {
		lk.ForgetInherited() // not pending: a killed run's mark explains nothing any more
	}
	p.Migrate.ForceConflicts = u.ForceConflicts
	p.Migrate.Progress = u.Progress
	p.Migrate.Wait = u.Timeout
	p.Migrate.BackupPending = true
	p.Migrate.Log = u.Log
	for k, v := range u.MigrationSkip {
		p.Migrate.Skip[k] = v
	}
	defer func() { sum.Notes = append(sum.Notes, p.Migrate.Notes...) }()
	sum.Rewrites = p.ValueChanges
	if err := timed("preflight", func() (string, error) {
		w, err := u.preflight(ctx, p)
		w = append(append([]string(nil), p.ValueWarnings...), w...)
		sum.Warnings = append(sum.Warnings, w...)
		for _, x := range w {
			j.add(Event{Step: "preflight", Status: "warning", Detail: x})
		}
		return fmt.Sprintf("%d warning(s)", len(w)), err
	}); err != nil {
		return sum, err
	}
	if u.DryRun {
		return sum, u.dryRun(ctx, p, sum, timed)
	}

	// --- 2. backup (Ctrl-C here: the backup removes its partial folder)
	var entry *backup.Entry
	if err := timed("backup", func() (string, error) {
		b := &backup.Backup{Release: u.Release, Kube: u.Kube, Dir: u.BackupDir, Keep: u.Keep, SkipDatabase: u.SkipDBBackup, Progress: u.Progress,
			PGImage: u.PGImage, PodTimeout: u.PGPodTimeout, Log: u.Log}
		res, err := b.Run(ctx)
		if err != nil {
			return "", err
		}
		entry = &backup.Entry{ID: res.Manifest.ID, Path: res.Path, Revision: res.Manifest.Revision, Complete: true, Manifest: res.Manifest}
		sum.Backup, sum.BackupPath = res.Manifest.ID, res.Path
		p.Migrate.BackupDir = res.Path
		j.attach(res.Path)
		if !res.Manifest.HasDatabase() {
			return "values only: " + res.Manifest.DatabaseSkipped, nil
		}
		return fmt.Sprintf("%s, %d database(s)", res.Manifest.ID, len(res.Manifest.Databases)), nil
	}); err != nil {
		return sum, err
	}
	base, err := readValues(filepath.Join(entry.Path, "values.yaml"))
	if err != nil {
		return sum, err
	}

	// --- 3. migrations (each idempotent; Ctrl-C stops before the next one)
	if err := timed("migrations", func() (string, error) {
		p.Migrate.Log = u.Log
		res, err := migrate.Run(ctx, p.Migrate, p.Migrations)
		sum.Migrations = append(sum.Migrations, res...)
		return fmt.Sprintf("%d migration(s)", len(res)), err
	}); err != nil {
		if ctx.Err() != nil {
			return sum, errs.Wrap(errs.Interrupted, fmt.Errorf("upgrade interrupted during migrations; the release is unchanged; backup %s", entry.Path))
		}
		return sum, errs.Failedf("%v (the release is unchanged; backup %s)", err, entry.Path)
	}
	if ctx.Err() != nil {
		return sum, errs.Wrap(errs.Interrupted, fmt.Errorf("upgrade interrupted before the Helm upgrade; the release is unchanged; backup %s", entry.Path))
	}

	// --- 4..6: from here a failure or Ctrl-C rolls back, and the rollback is
	// finished even if another signal comes.
	keep := context.WithoutCancel(ctx)
	// the backup's values are the deployed ones: the same rewrites apply
	values := p.UpgradeValues(base)
	sum.Rewrites = p.ValueChanges
	failed := func(step string, cause error) (*Summary, error) {
		return u.undo(keep, ctx, p, entry, sum, j, step, cause)
	}
	// Objects Helm cannot patch (finished Jobs whose pod template changes;
	// StatefulSets with --recreate-statefulsets) are deleted first; checked
	// again here because Jobs may have finished or expired since preflight.
	if err := timed("clear-immutable", func() (string, error) {
		done, err := u.clearImmutable(keep, p)
		return fmt.Sprintf("%d object(s) deleted for Helm to recreate", len(done)), err
	}); err != nil {
		return sum, errs.Preconditionf("%v (the release is unchanged; backup %s)", err, entry.Path)
	}
	if err := timed("helm-upgrade", func() (string, error) {
		up := action.NewUpgrade(p.Resolved.Helm)
		up.Namespace = u.Release.Namespace
		up.Timeout = u.Timeout
		up.MaxHistory = u.Release.Settings.MaxHistory
		up.Description = fmt.Sprintf("helm csghub upgrade %s -> %s", p.Current, p.Target.VersionS)
		// killed from here on, the release is pending: the lease says whose
		if lk != nil {
			if err := lk.SetMark(keep, &lock.Mark{Operation: "upgrade", Step: "helm-upgrade",
				Revision: p.Release.Version + 1, From: p.Release.Version, Backup: entry.ID}); err != nil {
				return "", err
			}
			defer lk.SetMark(keep, nil)
		}
		rel, err := up.RunWithContext(keep, u.Release.Name, p.Target.Chart, values)
		if err != nil {
			return "", err
		}
		sum.Revision, sum.Status = rel.Version, rel.Info.Status.String()
		return fmt.Sprintf("revision %d, chart %s", rel.Version, p.Target.VersionS), nil
	}); err != nil {
		return failed("helm-upgrade", err)
	}
	// Post-upgrade steps move data the new version needs but does not run
	// without (e.g. old log history): their failure leaves the upgrade in
	// place and asks for attention, with the command that finishes the step.
	var attention []string
	for _, m := range p.Migrations {
		if pu, ok := m.(migrate.PostUpgrade); ok {
			if err := timed("after-upgrade "+m.Name(), func() (string, error) {
				ch, err := pu.AfterUpgrade(keep, p.Migrate)
				for i := range sum.Migrations {
					if sum.Migrations[i].Name == m.Name() {
						sum.Migrations[i].Changes = append(sum.Migrations[i].Changes, ch...)
					}
				}
				for _, c := range ch {
					u.Log.Printf("  %s", c)
				}
				return fmt.Sprintf("%d change(s)", len(ch)), err
			}); err != nil {
				attention = append(attention, fmt.Sprintf("v%s %s: %v", m.Version(), m.Name(), err))
			}
		}
	}
	if err := timed("readiness", func() (string, error) {
		rep, err := u.waitReady(ctx, u.Timeout)
		sum.Readiness = rep
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d/%d pods Ready in %s", rep.Ready, rep.Total, rep.Waited.Round(time.Millisecond)), nil
	}); err != nil {
		return failed("readiness", err)
	}
	if ctx.Err() != nil {
		return failed("readiness", ctx.Err())
	}
	if err := timed("verify", func() (string, error) {
		v := &verify.Verify{Release: u.Release, Kube: u.Kube, Revision: sum.Revision}
		rep, err := v.Run(keep)
		sum.Verify = rep
		return "all checks passed", err
	}); err != nil {
		return failed("verify", err)
	}
	if ctx.Err() != nil {
		return failed("verify", ctx.Err())
	}
	if len(attention) > 0 {
		sum.Failure = strings.Join(attention, "; ")
		return sum, errs.NeedsAttentionf("upgraded to %s (revision %d), but a post-upgrade step failed: %s",
			p.Target.VersionS, sum.Revision, sum.Failure)
	}
	return sum, nil
}

// recoverKilledRun, with --recover, rolls back a release a killed plugin run left
// pending (proven by the lease it took over) before the upgrade starts.
func (u *Upgrade) recoverKilledRun(ctx context.Context, lk *lock.Lock, j *journal) error {
	if !u.Recover {
		return nil
	}
	rec := &recovery.Recovery{Release: u.Release, Kube: u.Kube, Dir: u.BackupDir, Timeout: u.Timeout, Progress: u.Progress, Log: u.Log, Lock: lk}
	mark := lk.Inherited
	if mark == nil {
		mark = &lock.Mark{} // no killed run's lease: a pending release is refused
	}
	p, err := rec.Check(ctx, mark)
	if err != nil || p == nil {
		return err
	}
	_, err = j.step("recover", func() (string, error) {
		res, err := rec.Run(ctx, p)
		if err != nil {
			return "", err
		}
		u.recovered = res.Done
		return strings.Join(res.Done, "; "), nil
	})
	return err
}

// waitReady waits for the release namespace and knative-serving (when present).
func (u *Upgrade) waitReady(ctx context.Context, timeout time.Duration) (*readiness.Report, error) {
	nss := []string{u.Release.Namespace}
	if ok, err := kube.NamespaceExists(ctx, u.Kube.Clientset, kube.KnativeNamespace); err == nil && ok && u.Release.Namespace != kube.KnativeNamespace {
		nss = append(nss, kube.KnativeNamespace)
	}
	w := &readiness.Waiter{Clientset: u.Kube.Clientset, Namespaces: nss, Timeout: timeout, Progress: u.Progress}
	return w.Wait(ctx)
}

// undo rolls the release back to the revision before the upgrade and restores
// the database from the run's backup, unless --no-rollback.
func (u *Upgrade) undo(keep, ctx context.Context, p *plan.Prepared, entry *backup.Entry, sum *Summary, j *journal, step string, cause error) (*Summary, error) {
	if errors.Is(cause, context.Canceled) || ctx.Err() != nil {
		cause = fmt.Errorf("interrupted (%v)", cause)
	}
	sum.Failure = fmt.Sprintf("%s: %v", step, cause)
	if u.NoRollback {
		return sum, errs.NeedsAttentionf("upgrade failed at %s: %v; not rolled back (--no-rollback): roll back with `helm csghub rollback %d --backup %s`",
			step, cause, p.Release.Version, entry.ID)
	}
	u.Log.Printf("upgrade failed at %s: %v; rolling back to revision %d and restoring backup %s", step, cause, p.Release.Version, entry.ID)
	var problems []string
	_, err := j.step("rollback", func() (string, error) {
		if err := u.clearForRollback(keep, p); err != nil {
			return "", err
		}
		rb := action.NewRollback(p.Resolved.Helm)
		rb.Version = p.Release.Version
		rb.Wait = true
		rb.Timeout = u.Timeout
		rb.MaxHistory = u.Release.Settings.MaxHistory
		if err := rb.Run(u.Release.Name); err != nil {
			return "", err
		}
		last, err := u.Release.Last()
		if err != nil {
			return "", err
		}
		sum.Revision, sum.Status = last.Version, last.Info.Status.String()
		return fmt.Sprintf("revision %d (chart %s) %s", last.Version, helmenv.ChartVersion(last), last.Info.Status), nil
	})
	if err != nil {
		// The database is left as the new version has it, matching the
		// workloads: restoring it under the new version would be worse.
		return sum, u.rollbackFailed(p, entry, step, cause, err)
	}
	sum.Undone = append(sum.Undone, fmt.Sprintf("release rolled back to chart %s (revision %d)", sum.From, sum.Revision))
	if entry.Manifest.HasDatabase() {
		_, err = j.step("restore", func() (string, error) {
			rs := &restore.Restore{Release: u.Release, Kube: u.Kube, Dir: u.BackupDir, Entry: entry, Progress: u.Progress, Log: u.Log, Lock: u.lock,
				PGImage: u.PGImage, PodTimeout: u.PGPodTimeout}
			res, err := rs.Run(keep)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%d database(s) restored from %s", len(res.Databases), entry.ID), nil
		})
		if err != nil {
			problems = append(problems, "database restore: "+err.Error())
		} else {
			sum.Undone = append(sum.Undone, "database restored from backup "+entry.ID)
		}
	}
	if len(problems) == 0 {
		if _, err := j.step("readiness-after-rollback", func() (string, error) {
			rep, err := u.waitReady(keep, u.Timeout)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%d/%d pods Ready", rep.Ready, rep.Total), nil
		}); err != nil {
			problems = append(problems, "readiness after rollback: "+err.Error())
		}
	}
	if len(problems) > 0 {
		return sum, errs.NeedsAttentionf("upgrade failed at %s: %v; the automatic rollback did not complete: %v; backup %s",
			step, cause, problems, entry.Path)
	}
	sum.RolledBack = true
	return sum, errs.RolledBackf("upgrade failed at %s: %v; rolled back: %v; backup %s", step, cause, sum.Undone, entry.Path)
}

// dryRun shows the migrations (server-side dry run) and renders the upgrade
// through the Helm SDK's dry run; nothing changes.
func (u *Upgrade) dryRun(ctx context.Context, p *plan.Prepared, sum *Summary, timed func(string, func() (string, error)) error) error {
	if err := timed("migrations (dry run)", func() (string, error) {
		p.Migrate.DryRun = true
		res, err := migrate.Run(ctx, p.Migrate, p.Migrations)
		sum.Migrations = append(sum.Migrations, res...)
		return fmt.Sprintf("%d migration(s)", len(res)), err
	}); err != nil {
		return err
	}
	return timed("helm-upgrade (dry run)", func() (string, error) {
		up := action.NewUpgrade(p.Resolved.Helm)
		up.Namespace = u.Release.Namespace
		up.DryRun = true
		up.DryRunOption = "server"
		rel, err := up.RunWithContext(ctx, u.Release.Name, p.Target.Chart, p.Values)
		if err == nil {
			sum.Manifest = redact.Manifest(rel.Manifest) // Secrets' data masked
			return fmt.Sprintf("would be revision %d with chart %s", rel.Version, p.Target.VersionS), nil
		}
		// Before the migrations ran for real the server cannot validate what
		// they would fix (kinds of CRDs not installed yet): render client-side.
		manifest, rerr := render.Manifest(render.Options{Chart: p.Target.Chart, Values: p.Values,
			Release: u.Release.Name, Namespace: u.Release.Namespace, Discovery: u.Kube.Clientset.Discovery()})
		if rerr != nil {
			return "", rerr
		}
		sum.Manifest = redact.Manifest(manifest)
		sum.Notes = append(sum.Notes, "rendered client-side: the server-side dry run needs the migrations applied first ("+steplog.OneLine(err.Error())+")")
		return fmt.Sprintf("would be revision %d with chart %s (client-side render)", p.Release.Version+1, p.Target.VersionS), nil
	})
}

func readValues(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, errs.Failedf("reading backed-up values: %w", err)
	}
	m := map[string]any{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, errs.Failedf("parsing backed-up values %s: %w", path, err)
	}
	return m, nil
}

// clearImmutable deletes, just before the Helm upgrade, the objects Helm
// cannot patch to the target and may recreate.
func (u *Upgrade) clearImmutable(ctx context.Context, p *plan.Prepared) ([]string, error) {
	target, err := p.TargetObjects()
	if err != nil {
		return nil, err
	}
	previous, err := render.SplitManifest(p.Release.Manifest)
	if err != nil {
		return nil, err
	}
	g, err := u.guard(false)
	if err != nil {
		return nil, err
	}
	im, err := g.Check(ctx, target, previous)
	if err != nil {
		return nil, err
	}
	return g.Clear(ctx, im)
}

// clearForRollback makes room for the automatic rollback: the failed
// version's Jobs whose template differs are deleted, running or not.
func (u *Upgrade) clearForRollback(ctx context.Context, p *plan.Prepared) error {
	last, err := u.Release.Last()
	if err != nil {
		return err
	}
	target, err := render.SplitManifest(p.Release.Manifest)
	if err != nil {
		return err
	}
	previous, err := render.SplitManifest(last.Manifest)
	if err != nil {
		return err
	}
	g, err := u.guard(true)
	if err != nil {
		return err
	}
	im, err := g.Check(ctx, target, previous)
	if err != nil {
		return err
	}
	_, err = g.Clear(ctx, im)
	return err
}

func (u *Upgrade) guard(rollback bool) (*livediff.Guard, error) {
	c, err := livediff.NewClients(u.Kube.Config, u.Kube.Clientset)
	if err != nil {
		return nil, err
	}
	return &livediff.Guard{Clients: c, Namespace: u.Release.Namespace, RecreateStatefulSets: u.RecreateStatefulSets,
		DeleteRunningJobs: rollback, Log: u.Log}, nil
}

// rollbackFailed explains an automatic rollback whose Helm step failed: which
// revision is current, that the database was NOT restored, and the one
// command that finishes.
func (u *Upgrade) rollbackFailed(p *plan.Prepared, entry *backup.Entry, step string, cause, rbErr error) error {
	cur := "unknown"
	if last, err := u.Release.Last(); err == nil {
		cur = fmt.Sprintf("%d (chart %s, %s)", last.Version, helmenv.ChartVersion(last), last.Info.Status)
	}
	finish := fmt.Sprintf("helm csghub rollback %d -n %s", p.Release.Version, u.Release.Namespace)
	if u.Release.Name != helmenv.DefaultRelease {
		finish += " --release " + u.Release.Name
	}
	if u.BackupDir != "" {
		finish += " --dir " + u.BackupDir
	}
	if entry.Manifest.HasDatabase() {
		finish += " --backup " + entry.ID
	} else {
		finish += " --skip-db-restore"
	}
	if u.RecreateStatefulSets {
		finish += " --recreate-statefulsets"
	}
	return errs.NeedsAttentionf("upgrade failed at %s: %v; the automatic rollback failed: helm rollback: %v; the release is at revision %s and the database was NOT restored (it is as the new version left it); once the cause is fixed, finish with: %s",
		step, cause, rbErr, cur, finish)
}
