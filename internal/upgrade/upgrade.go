// Package upgrade is `helm csghub upgrade`: the guide's sections 2 to 4 and 6
// as one run. Preflight, backup, migrations, the Helm upgrade (SDK), readiness
// and verification; on failure after the Helm upgrade started, the release is
// rolled back and the database restored from the run's own backup.
package upgrade

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"filippo.io/age"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/release"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/budget"
	"github.com/opencsgs/helm-csghub/internal/diff"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/livediff"
	"github.com/opencsgs/helm-csghub/internal/lock"
	"github.com/opencsgs/helm-csghub/internal/migrate"
	"github.com/opencsgs/helm-csghub/internal/plan"
	"github.com/opencsgs/helm-csghub/internal/readiness"
	"github.com/opencsgs/helm-csghub/internal/readlimit"
	"github.com/opencsgs/helm-csghub/internal/recovery"
	"github.com/opencsgs/helm-csghub/internal/redact"
	"github.com/opencsgs/helm-csghub/internal/render"
	"github.com/opencsgs/helm-csghub/internal/rollback"
	"github.com/opencsgs/helm-csghub/internal/steplog"
	"github.com/opencsgs/helm-csghub/internal/valuemigrate"
	"github.com/opencsgs/helm-csghub/internal/verify"
)

// DefaultTimeout is the CLI's --timeout and --rollback-timeout.
const DefaultTimeout = 10 * time.Minute

// Upgrade is one upgrade run.
type Upgrade struct {
	Release *helmenv.Release
	Kube    *kube.Client
	Plan    plan.Options
	// Timeout is one allowance for the waits of the run (the Helm upgrade,
	// the post-upgrade steps' waits, readiness); moving data (the backup) is
	// not counted. RollbackTimeout is the automatic rollback's own allowance
	// (its Helm rollback and readiness), so it can finish when Timeout is
	// spent; 0 is the CLI's default, 10 minutes.
	Timeout         time.Duration
	RollbackTimeout time.Duration
	// VerifyTimeout, when set, is each verification check's own time after
	// the upgrade, retries included (verify's --timeout): how long a failing
	// check may keep the upgrade from its rollback. 0: what Timeout leaves.
	VerifyTimeout  time.Duration
	DryRun         bool
	NoRollback     bool
	SkipDBBackup   bool
	ForceConflicts bool
	// RecreateStatefulSets deletes (--cascade=orphan) StatefulSets whose
	// immutable fields change, so Helm recreates them; without it such a
	// change is refused in preflight.
	RecreateStatefulSets bool
	BackupDir            string
	BackupSSE            backup.SSE // server-side encryption of a bucket location
	// BackupEncryptTo encrypts the backup to these age recipients (the
	// caller made sure the key that opens it was given: CheckCanDecrypt).
	BackupEncryptTo []age.Recipient
	Keep            int
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

	// PGImage, PGPodTimeout: the client pod of an external database.
	PGImage      string
	PGPodTimeout time.Duration
	// Diff, with DryRun, adds what the Helm upgrade changes object by object
	// (upgrade --dry-run --diff, as plan --diff).
	Diff *diff.Options
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
	// Diff: dry run with --diff, what the Helm upgrade changes.
	Diff *diff.Report `json:"diff,omitempty"`
}

// run is one upgrade run's state: each step below is a method that reads and
// fills it.
type run struct {
	*Upgrade
	j      *journal
	sum    *Summary
	lk     *lock.Lock // nil in a dry run
	p      *plan.Prepared
	entry  *backup.Entry  // the run's own backup
	values map[string]any // what the Helm upgrade installs
	wait   *budget.Budget // --timeout: the waits of the forward run
	// attention collects post-upgrade steps that failed (the upgrade stays).
	attention []string
}

// Run performs the upgrade: the list of its steps.
func (u *Upgrade) Run(ctx context.Context) (*Summary, error) {
	r := &run{Upgrade: u, j: &journal{emit: u.Events}, wait: budget.New("--timeout", u.Timeout),
		sum: &Summary{Steps: map[string]time.Duration{}, Migrations: []migrate.Result{}, DryRun: u.DryRun}}
	// The lock first: one operation per release, taken before the plan reads
	// the release, so a second run meets the lock, not the first run's
	// pending revision. A dry run changes nothing: no lock. Refused here,
	// nothing started: no summary (nil) to print.
	if !u.DryRun {
		defer r.unlock()
		if err := r.lock(ctx); err != nil {
			return nil, err
		}
	}
	if err := r.timed(ctx, "plan", r.prepare); err != nil {
		return nil, err
	}
	defer func() { r.sum.Notes = append(r.sum.Notes, r.p.Migrate.Notes...) }()
	if err := r.timed(ctx, "preflight", r.preflightChecks); err != nil {
		return r.sum, err
	}
	if u.DryRun {
		return r.sum, r.dryRun(ctx)
	}
	// killed from here to its Helm step (whose mark replaces this one), the
	// release is unchanged and the migrations may be half applied: status
	// names this upgrade again
	if err := r.lk.SetMark(ctx, r.rerunMark()); err != nil {
		return r.sum, err
	}
	// Ctrl-C during the backup: it removes its partial folder.
	if err := r.timed(ctx, "backup", r.backup); err != nil {
		return r.sum, err
	}
	if err := r.migrations(ctx); err != nil {
		return r.sum, err
	}
	// From here a failure or Ctrl-C rolls back, and the rollback is finished
	// even if another signal comes.
	keep := context.WithoutCancel(ctx)
	if err := r.timed(keep, "clear-immutable", r.clearImmutable); err != nil {
		return r.sum, errs.Preconditionf("%v (the release is unchanged; backup %s)", err, r.entry.Path)
	}
	if err := r.timed(keep, "helm-upgrade", r.helmUpgrade); err != nil {
		return r.undo(ctx, "helm-upgrade", err)
	}
	r.afterUpgrade(keep)
	if err := r.checked(ctx, "readiness", ctx, r.readiness); err != nil {
		return r.undo(ctx, "readiness", err)
	}
	if err := r.checked(ctx, "verify", keep, r.verify); err != nil {
		return r.undo(ctx, "verify", err)
	}
	if len(r.attention) > 0 {
		r.sum.Failure = strings.Join(r.attention, "; ")
		return r.sum, errs.NeedsAttentionf("upgraded to %s (revision %d), but a post-upgrade step failed: %s",
			r.p.Target.VersionS, r.sum.Revision, r.sum.Failure)
	}
	return r.sum, nil
}

type stepFunc func(context.Context) (string, error)

// timed runs f as the journal step name, recording its duration.
func (r *run) timed(ctx context.Context, name string, f stepFunc) error {
	d, err := r.j.step(name, func() (string, error) { return f(ctx) })
	r.sum.Steps[name] = d
	return err
}

// checked is timed with f's context (stepCtx), then a Ctrl-C on ctx that
// came meanwhile fails the step too.
func (r *run) checked(ctx context.Context, name string, stepCtx context.Context, f stepFunc) error {
	if err := r.timed(stepCtx, name, f); err != nil {
		return err
	}
	return ctx.Err()
}

func (r *run) lock(ctx context.Context) error {
	lk, err := lock.Acquire(ctx, r.Kube.Clientset, r.Release.Namespace, r.Release.Name, "upgrade")
	if err != nil {
		return err
	}
	r.lk = lk
	if lk.Stale != "" {
		r.sum.StaleLock = lk.Stale
		r.j.add(Event{Step: "lock", Status: "warning", Detail: "took over a stale lock from " + lk.Stale})
	}
	lk.KeepInherited() // a killed run's evidence stays until we know it is obsolete
	return r.recoverKilledRun(ctx)
}

func (r *run) unlock() {
	if r.lk != nil {
		r.lk.Release()
	}
}

// prepare is the plan (read-only), with the migrations' options of this run.
func (r *run) prepare(ctx context.Context) (string, error) {
	p, err := plan.Prepare(ctx, r.Plan)
	if err != nil {
		return "", err
	}
	r.p = p
	s := r.sum
	s.Release, s.Namespace = r.Release.Name, r.Release.Namespace
	s.From, s.To = p.Current.String(), p.Target.VersionS
	s.FromRevision, s.Revision = p.Release.Version, p.Release.Version
	s.Status = p.Release.Info.Status.String()
	s.Rewrites = p.ValueChanges
	if r.lk != nil {
		// not pending: a killed Helm step's mark explains nothing any more (a
		// killed migrate's or import's stays until its work is done again;
		// the Helm step below clears every mark)
		r.lk.ForgetObsolete(r.Release.Pending)
	}
	p.Migrate.ForceConflicts = r.ForceConflicts
	p.Migrate.Progress = r.Progress
	p.Migrate.BackupPending = true
	p.Migrate.Log = r.Log
	for k, v := range r.MigrationSkip {
		p.Migrate.Skip[k] = v
	}
	return fmt.Sprintf("%s -> %s, %d migration(s)", p.Current, p.Target.VersionS, len(p.Migrations)), nil
}

func (r *run) preflightChecks(ctx context.Context) (string, error) {
	w, err := r.preflight(ctx, r.p)
	w = append(append([]string(nil), r.p.ValueWarnings...), w...)
	r.sum.Warnings = append(r.sum.Warnings, w...)
	for _, x := range w {
		r.j.add(Event{Step: "preflight", Status: "warning", Detail: x})
	}
	return fmt.Sprintf("%d warning(s)", len(w)), err
}

// backup is the run's own backup; the journal is kept beside it from now on.
func (r *run) backup(ctx context.Context) (string, error) {
	b := &backup.Backup{Release: r.Release, Kube: r.Kube, Dir: r.BackupDir, SSE: r.BackupSSE, EncryptTo: r.BackupEncryptTo, Keep: r.Keep, SkipDatabase: r.SkipDBBackup, Progress: r.Progress,
		PGImage: r.PGImage, PodTimeout: r.PGPodTimeout, Log: r.Log}
	res, err := b.Run(ctx)
	if err != nil {
		return "", err
	}
	r.entry = res.Entry()
	r.sum.Backup, r.sum.BackupPath = res.Manifest.ID, res.Path
	r.p.Migrate.Backup = r.entry // the migrations' exports go into it (a folder or a bucket)
	r.j.attach(r.entry)
	if !res.Manifest.HasDatabase() {
		return "values only: " + res.Manifest.DatabaseSkipped, nil
	}
	return fmt.Sprintf("%s, %d database(s)", res.Manifest.ID, len(res.Manifest.Databases)), nil
}

// migrations runs the migrations (each idempotent; Ctrl-C stops before the
// next one) and builds the values to install from the backed-up ones.
func (r *run) migrations(ctx context.Context) error {
	base, err := readValues(r.entry)
	if err != nil {
		return err
	}
	if err := r.timed(ctx, "migrations", r.migrate); err != nil {
		if ctx.Err() != nil {
			return errs.Wrap(errs.Interrupted, fmt.Errorf("upgrade interrupted during migrations; the release is unchanged; backup %s", r.entry.Path))
		}
		return errs.Failedf("%v (the release is unchanged; backup %s)", err, r.entry.Path)
	}
	if ctx.Err() != nil {
		return errs.Wrap(errs.Interrupted, fmt.Errorf("upgrade interrupted before the Helm upgrade; the release is unchanged; backup %s", r.entry.Path))
	}
	// the backup's values are the deployed ones: the same rewrites apply
	r.values = r.p.UpgradeValues(base)
	r.sum.Rewrites = r.p.ValueChanges
	return nil
}

func (r *run) migrate(ctx context.Context) (string, error) {
	if r.lk != nil { // a dry run holds no lock and changes nothing
		if err := r.lk.Held(ctx, "the migrations"); err != nil {
			return "", err
		}
	}
	res, err := migrate.Run(ctx, r.p.Migrate, r.p.Migrations)
	r.sum.Migrations = append(r.sum.Migrations, res...)
	if err == nil && r.lk != nil {
		r.lk.ForgetFinished(lock.StepMigrate) // they ran again: a killed migrate's are done
	}
	return fmt.Sprintf("%d migration(s)", len(res)), err
}

// rerunMark is the mark of the upgrade before its Helm step: the command
// that runs it again, with the flags that change what it does.
func (r *run) rerunMark() *lock.Mark {
	var extra []string
	for _, f := range []struct {
		on   bool
		flag string
	}{{r.SkipDBBackup, "--skip-db-backup"}, {r.ForceConflicts, "--force-conflicts"},
		{r.RecreateStatefulSets, "--recreate-statefulsets"}, {r.NoRollback, "--no-rollback"}} {
		if f.on {
			extra = append(extra, f.flag)
		}
	}
	if r.Keep != 0 && r.Keep != backup.DefaultKeep {
		extra = append(extra, fmt.Sprintf("--keep=%d", r.Keep))
	}
	if r.Timeout != 0 && r.Timeout != DefaultTimeout {
		extra = append(extra, "--timeout="+r.Timeout.String())
	}
	if r.RollbackTimeout != 0 && r.RollbackTimeout != DefaultTimeout {
		extra = append(extra, "--rollback-timeout="+r.RollbackTimeout.String())
	}
	if r.VerifyTimeout != 0 {
		extra = append(extra, "--verify-timeout="+r.VerifyTimeout.String())
	}
	// the backup's encryption: a mode, a key id and public keys, no secret
	// (the private key of --encrypt-to is given again with --identity or
	// $HELM_CSGHUB_AGE_IDENTITY: the upgrade asks for it)
	if r.BackupSSE.Mode != "" {
		extra = append(extra, "--sse="+r.BackupSSE.Mode)
	}
	if r.BackupSSE.KMSKeyID != "" {
		extra = append(extra, "--sse-kms-key-id="+r.BackupSSE.KMSKeyID)
	}
	for _, to := range r.BackupEncryptTo {
		extra = append(extra, fmt.Sprintf("--encrypt-to=%s", to))
	}
	cmd, note := plan.RerunCommand("upgrade", r.p.Target.VersionS, r.Plan, r.MigrationSkip, r.BackupDir, extra...)
	return &lock.Mark{Operation: "upgrade", Step: lock.StepUpgrade, From: r.p.Release.Version, Revision: r.p.Release.Version,
		Command: cmd, Note: note}
}

// clearImmutable deletes, just before the Helm upgrade, the objects Helm
// cannot patch to the target and may recreate (finished Jobs whose pod
// template changes; StatefulSets with --recreate-statefulsets); checked again
// here because Jobs may have finished or expired since preflight.
func (r *run) clearImmutable(ctx context.Context) (string, error) {
	target, err := r.p.TargetObjects()
	if err != nil {
		return "", err
	}
	done, err := r.clear(ctx, target, r.p.Release.Manifest)
	return fmt.Sprintf("%d object(s) deleted for Helm to recreate", len(done)), err
}

// helmUpgrade is the Helm upgrade; killed from its start on, the release is
// pending, and the lease's mark says whose.
func (r *run) helmUpgrade(ctx context.Context) (string, error) {
	p := r.p
	up := action.NewUpgrade(p.Resolved.Helm)
	up.Namespace = r.Release.Namespace
	up.MaxHistory = r.Release.Settings.MaxHistory
	up.Description = fmt.Sprintf("helm csghub upgrade %s -> %s", p.Current, p.Target.VersionS)
	if err := r.lk.Held(ctx, "the Helm upgrade"); err != nil {
		return "", err
	}
	if err := r.lk.SetMark(ctx, &lock.Mark{Operation: "upgrade", Step: "helm-upgrade",
		Revision: p.Release.Version + 1, From: p.Release.Version, Backup: r.entry.ID,
		Command: rollback.RecoverCommand(r.Release, r.BackupDir)}); err != nil {
		return "", err
	}
	defer r.lk.SetMark(context.WithoutCancel(ctx), nil)
	var rel *release.Release
	if err := r.wait.Wait(func(left time.Duration) (err error) {
		up.Timeout = left
		rel, err = up.RunWithContext(ctx, r.Release.Name, p.Target.Chart, r.values)
		return err
	}); err != nil {
		return "", err
	}
	r.sum.Revision, r.sum.Status = rel.Version, rel.Info.Status.String()
	return fmt.Sprintf("revision %d, chart %s", rel.Version, p.Target.VersionS), nil
}

// afterUpgrade runs the post-upgrade steps: they move data the new version
// needs but does not run without (e.g. old log history). Their failure
// leaves the upgrade in place and asks for attention, with the command that
// finishes the step.
func (r *run) afterUpgrade(ctx context.Context) {
	for _, m := range r.p.Migrations {
		pu, ok := m.(migrate.PostUpgrade)
		if !ok {
			continue
		}
		if err := r.timed(ctx, "after-upgrade "+m.Name(), func(ctx context.Context) (string, error) {
			return r.postUpgrade(ctx, m, pu)
		}); err != nil {
			r.attention = append(r.attention, fmt.Sprintf("v%s %s: %v", m.Version(), m.Name(), err))
		}
	}
}

// postUpgrade runs one post-upgrade step; its waits get what --timeout has
// left and are counted against it (the data it moves is not).
func (r *run) postUpgrade(ctx context.Context, m migrate.Migration, pu migrate.PostUpgrade) (string, error) {
	c := r.p.Migrate
	if err := r.wait.Spent(); err != nil {
		return "", err
	}
	c.Wait = r.wait.Left()
	waited := c.Waited
	ch, err := pu.AfterUpgrade(ctx, c)
	r.wait.Charge(c.Waited - waited)
	for i := range r.sum.Migrations {
		if r.sum.Migrations[i].Name == m.Name() {
			r.sum.Migrations[i].Changes = append(r.sum.Migrations[i].Changes, ch...)
		}
	}
	for _, c := range ch {
		r.Log.Printf("  %s", c)
	}
	return fmt.Sprintf("%d change(s)", len(ch)), err
}

// readiness waits, with what --timeout has left, for the release namespace
// and knative-serving (when present).
func (r *run) readiness(ctx context.Context) (string, error) {
	err := r.wait.Wait(func(left time.Duration) (err error) {
		r.sum.Readiness, err = readiness.ForRelease(ctx, r.Kube.Clientset, r.Release.Namespace, left, r.Progress)
		return err
	})
	if err != nil {
		return "", err
	}
	rep := r.sum.Readiness
	return fmt.Sprintf("%d/%d pods Ready in %s", rep.Ready, rep.Total, rep.Waited.Round(time.Millisecond)), nil
}

func (r *run) verify(ctx context.Context) (string, error) {
	// connection-level failures (a port-forward that drops) are retried
	// with what --timeout leaves, not taken for a broken upgrade at once
	v := &verify.Verify{Release: r.Release, Kube: r.Kube, Revision: r.sum.Revision, Retry: r.wait.Left()}
	if r.VerifyTimeout > 0 {
		v.Timeout, v.Retry = r.VerifyTimeout, 0
	}
	rep, err := v.Run(ctx)
	r.sum.Verify = rep
	return "all checks passed", err
}

// recoverKilledRun, with --recover, rolls back a release a killed plugin run
// left pending (proven by the lease it took over) before the upgrade starts.
func (r *run) recoverKilledRun(ctx context.Context) error {
	if !r.Recover {
		return nil
	}
	rec := &recovery.Recovery{Release: r.Release, Kube: r.Kube, Dir: r.BackupDir, Timeout: r.RollbackTimeout, TimeoutFlag: "--rollback-timeout",
		Progress: r.Progress, Log: r.Log, Lock: r.lk, PGImage: r.PGImage, PGPodTimeout: r.PGPodTimeout}
	mark := r.lk.Inherited
	if mark == nil {
		mark = &lock.Mark{} // no killed run's lease: a pending release is refused
	}
	p, err := rec.Check(ctx, mark)
	if err != nil || p == nil {
		return err
	}
	_, err = r.j.step("recover", func() (string, error) {
		res, err := rec.Run(ctx, p)
		if err != nil {
			return "", err
		}
		r.sum.Recovered = res.Done
		return strings.Join(res.Done, "; "), nil
	})
	return err
}

// dryRun shows the migrations (server-side dry run) and renders the upgrade
// through the Helm SDK's dry run; nothing changes.
func (r *run) dryRun(ctx context.Context) error {
	r.p.Migrate.DryRun = true
	if err := r.timed(ctx, "migrations (dry run)", r.migrate); err != nil {
		return err
	}
	if err := r.timed(ctx, "helm-upgrade (dry run)", r.renderUpgrade); err != nil {
		return err
	}
	if r.Diff == nil {
		return nil
	}
	return r.timed(ctx, "diff", func(ctx context.Context) (string, error) {
		rep, err := r.p.Diff(ctx, *r.Diff)
		if err != nil {
			return "", errs.Failedf("comparing the release with the target: %w", err)
		}
		r.sum.Diff = rep
		t := rep.Totals
		return fmt.Sprintf("objects: %s; hooks: %s; CRDs: %s; live drift: %d", t.Objects, t.Hooks, t.CRDs, t.Drifted), nil
	})
}

func (r *run) renderUpgrade(ctx context.Context) (string, error) {
	p := r.p
	up := action.NewUpgrade(p.Resolved.Helm)
	up.Namespace = r.Release.Namespace
	up.DryRun = true
	up.DryRunOption = "server"
	rel, err := up.RunWithContext(ctx, r.Release.Name, p.Target.Chart, p.Values)
	if err == nil {
		r.sum.Manifest = redact.Manifest(rel.Manifest) // Secrets' data masked
		return fmt.Sprintf("would be revision %d with chart %s", rel.Version, p.Target.VersionS), nil
	}
	// Before the migrations ran for real the server cannot validate what
	// they would fix (kinds of CRDs not installed yet): show the run's own
	// render, made as the upgrade will render it but not validated.
	rendered, rerr := p.Render()
	if rerr != nil {
		return "", rerr
	}
	r.sum.Manifest = redact.Manifest(rendered.Manifest)
	r.sum.Notes = append(r.sum.Notes, "rendered with lookups answered by the cluster but not validated by it: the server-side dry run needs the migrations applied first ("+steplog.OneLine(err.Error())+")")
	return fmt.Sprintf("would be revision %d with chart %s (not validated by the server)", p.Release.Version+1, p.Target.VersionS), nil
}

func readValues(e *backup.Entry) (map[string]any, error) {
	data, err := e.ReadFile("values.yaml", readlimit.Values)
	if err != nil {
		return nil, errs.Failedf("reading backed-up values: %w", err)
	}
	m := map[string]any{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, errs.Failedf("parsing backed-up values %s/values.yaml: %w", e.Path, err)
	}
	return m, nil
}

// clear deletes the live objects Helm cannot patch from previousManifest to
// target (the automatic rollback does the same in rollback.Revert).
func (r *run) clear(ctx context.Context, target []*unstructured.Unstructured, previousManifest string) ([]string, error) {
	previous, err := render.SplitManifest(previousManifest)
	if err != nil {
		return nil, err
	}
	c, err := livediff.NewClients(r.Kube.Config, r.Kube.Clientset)
	if err != nil {
		return nil, err
	}
	g := &livediff.Guard{Clients: c, Namespace: r.Release.Namespace, RecreateStatefulSets: r.RecreateStatefulSets, Log: r.Log}
	return g.MakeRoom(ctx, target, previous)
}
