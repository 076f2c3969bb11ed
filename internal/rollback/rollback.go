// Package rollback rolls a CSGHub release back to an earlier revision and
// restores the database from the backup taken at that revision: the guide's
// section 5 as one command.
package rollback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/release"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/budget"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/livediff"
	"github.com/opencsgs/helm-csghub/internal/lock"
	"github.com/opencsgs/helm-csghub/internal/readiness"
	"github.com/opencsgs/helm-csghub/internal/render"
	"github.com/opencsgs/helm-csghub/internal/restore"
	"github.com/opencsgs/helm-csghub/internal/steplog"
	"github.com/opencsgs/helm-csghub/internal/verify"
)

// Rollback is one rollback.
type Rollback struct {
	Release *helmenv.Release
	Kube    *kube.Client
	Dir     string // backup catalog root
	// Revision to roll back to; 0 means the previous one, as `helm rollback`.
	Revision int
	// BackupID picks the backup to restore instead of the one of Revision.
	BackupID string
	// SkipDBRestore rolls back the release only (explicit opt-out).
	SkipDBRestore bool
	// RecreateStatefulSets deletes (--cascade=orphan) StatefulSets whose
	// immutable fields differ in the target revision, so Helm recreates them.
	RecreateStatefulSets bool
	Timeout              time.Duration
	Progress             io.Writer
	Log                  steplog.Func

	// AllowInsecurePermissions restores a backup others can read or change.
	AllowInsecurePermissions bool
	// PGImage, PGPodTimeout: the client pod of an external database.
	PGImage      string
	PGPodTimeout time.Duration
	// Target is what Prepare found (the caller confirmed it); nil: Run prepares.
	Target *Target
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
	// Cleared are objects deleted first because Helm cannot patch them
	// (finished Jobs whose pod template differs, StatefulSets with
	// --recreate-statefulsets); the rollback recreates them.
	Cleared []string `json:"cleared,omitempty"`
}

// Target is a validated rollback target.
type Target struct {
	Current *release.Release
	To      *release.Release
	Backup  *backup.Entry
}

// previousDeployed is the newest revision before the current one that was
// deployed (superseded since): `helm rollback` without a revision takes N-1
// even when that upgrade failed, which would bring back a version that never
// ran. 0 when there is none.
func previousDeployed(hist []*release.Release) int {
	for i := len(hist) - 2; i >= 0; i-- {
		switch hist[i].Info.Status {
		case release.StatusSuperseded, release.StatusDeployed:
			return hist[i].Version
		}
	}
	return 0
}

// Prepare validates the target revision against the history and finds and
// verifies the backup to restore; nothing is changed.
func (r *Rollback) Prepare(ctx context.Context) (*Target, error) {
	if r.Revision < 0 {
		return nil, errs.Usagef("revision must be a positive number, got %d", r.Revision)
	}
	hist, err := r.Release.History()
	if err != nil {
		return nil, err
	}
	cur := hist[len(hist)-1]
	if cur.Info.Status.IsPending() {
		return nil, errs.Preconditionf("release %q is %s (another operation is running or was killed); wait for it, or see `helm history %s`",
			r.Release.Name, cur.Info.Status, r.Release.Name)
	}
	want := r.Revision
	if want == 0 {
		if len(hist) < 2 {
			return nil, errs.Preconditionf("release %q has only revision %d: nothing to roll back to", r.Release.Name, cur.Version)
		}
		if want = previousDeployed(hist); want == 0 {
			return nil, errs.Preconditionf("release %q: no earlier revision was ever deployed (all failed): give the revision to roll back to (helm csghub history)", r.Release.Name)
		}
	}
	if want == cur.Version {
		return nil, errs.Usagef("revision %d is the current revision of %q: nothing to roll back", want, r.Release.Name)
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
		return nil, errs.NotFoundf("revision %d not found in the history of %q (revisions: %s)", want, r.Release.Name, strings.Join(revs, ", "))
	}
	t := &Target{Current: cur, To: to}
	if r.SkipDBRestore {
		return t, nil
	}
	cat := backup.CatalogAt(r.Dir)
	if r.BackupID != "" {
		t.Backup, err = cat.Find(r.Release.Namespace, r.Release.Name, r.BackupID)
	} else {
		t.Backup, err = cat.ForRevision(r.Release.Namespace, r.Release.Name, want)
		if err == nil && t.Backup == nil {
			err = errs.Preconditionf("no backup of revision %d in %s: choose one with --backup ID (helm csghub history), or roll back the release only with --skip-db-restore",
				want, cat.ReleaseDir(r.Release.Namespace, r.Release.Name))
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
	r.Log.Printf("verifying backup %s", t.Backup.ID)
	if err := backup.VerifyError(backup.VerifyContext(ctx, t.Backup)); err != nil {
		return nil, err
	}
	return t, nil
}

// Run takes the release lock, rolls the release back with Helm (waiting for
// its resources) and restores the database.
func (r *Rollback) Run(ctx context.Context) (*Result, error) {
	t := r.Target
	if t == nil {
		var err error
		if t, err = r.Prepare(ctx); err != nil {
			return nil, err
		}
	}
	l, err := lock.Take(ctx, r.Kube.Clientset, r.Release.Namespace, r.Release.Name, "rollback", r.Log)
	if err != nil {
		return nil, err
	}
	l.ForgetObsolete(r.Release.Pending)
	defer l.Release()
	// the release may have moved between Prepare (and the confirmation) and the lock
	if cur, err := r.Release.Last(); err != nil {
		return nil, err
	} else if cur.Version != t.Current.Version || cur.Info.Status != t.Current.Info.Status {
		return nil, errs.Preconditionf("release %q changed while the rollback was being confirmed (now revision %d, %s): run the rollback again",
			r.Release.Name, cur.Version, cur.Info.Status)
	}
	res := &Result{From: t.Current.Version, FromChart: helmenv.ChartVersion(t.Current),
		To: t.To.Version, ToChart: helmenv.ChartVersion(t.To), DBRestoreOff: r.SkipDBRestore}
	if t.Backup != nil {
		res.Backup = t.Backup.ID
	}
	if ctx.Err() != nil {
		return nil, errs.Wrap(errs.Interrupted, errors.New("rollback interrupted before it started, nothing changed"))
	}
	// Objects Helm cannot patch to the target revision: refused, or made room
	// for, before the release changes.
	guard := &livediff.Guard{Namespace: r.Release.Namespace, RecreateStatefulSets: r.RecreateStatefulSets, Log: r.Log}
	if guard.Clients, err = r.clients(); err != nil {
		return nil, err
	}
	im, err := r.checkImmutable(ctx, guard, t)
	if err != nil {
		return nil, err
	}
	if !im.Empty() {
		r.Log.Printf("making room for the rollback")
		if res.Cleared, err = guard.Clear(ctx, im); err != nil {
			return nil, errs.Failedf("%v (the release is unchanged at revision %d, the database untouched)", err, t.Current.Version)
		}
	}
	r.Log.Printf("rolling back %s from revision %d (chart %s) to revision %d (chart %s)", r.Release.Name,
		res.From, res.FromChart, res.To, res.ToChart)
	rv := &Revert{Release: r.Release, Kube: r.Kube, Lock: l, To: t.To.Version, Backup: t.Backup, Verified: true, Operation: "rollback",
		AllowInsecurePermissions: r.AllowInsecurePermissions, Dir: r.Dir, Timeout: r.Timeout, TimeoutFlag: "--timeout",
		Progress: r.Progress, Log: r.Log, PGImage: r.PGImage, PGPodTimeout: r.PGPodTimeout}
	out, err := rv.Run(ctx)
	if out.Release != nil {
		res.NewRevision, res.Status = out.Release.Version, out.Release.Info.Status.String()
	}
	res.Restore, res.Readiness = out.Restore, out.Readiness
	if step := FailedStep(err); step == "" || step == StepReadiness {
		// rolled back and restored: whatever a killed run left is resolved
		l.ForgetInherited()
	}
	switch FailedStep(err) {
	case "":
	case StepHelm:
		return nil, r.failedHelm(t, errors.Unwrap(err))
	case StepReadiness:
		return res, errs.NeedsAttentionf("rolled back to revision %d but not ready: %v", res.NewRevision, errors.Unwrap(err))
	default:
		return res, errors.Unwrap(err)
	}
	r.Log.Printf("verifying")
	v := &verify.Verify{Release: r.Release, Kube: r.Kube, Revision: res.NewRevision}
	if res.Verify, err = v.Run(ctx); err != nil {
		return res, errs.NeedsAttentionf("rolled back to revision %d but %v", res.NewRevision, err)
	}
	return res, nil
}

func (r *Rollback) clients() (livediff.Clients, error) {
	return livediff.NewClients(r.Kube.Config, r.Kube.Clientset)
}

// checkImmutable compares the target revision's manifest with the live Jobs
// and StatefulSets; a running Job or a StatefulSet change it may not undo is
// refused before anything changes.
func (r *Rollback) checkImmutable(ctx context.Context, g *livediff.Guard, t *Target) (*livediff.Immutable, error) {
	target, err := render.SplitManifest(t.To.Manifest)
	if err != nil {
		return nil, errs.Failedf("reading the manifest of revision %d: %w", t.To.Version, err)
	}
	previous, err := render.SplitManifest(t.Current.Manifest)
	if err != nil {
		return nil, errs.Failedf("reading the manifest of revision %d: %w", t.Current.Version, err)
	}
	im, err := g.Check(ctx, target, previous)
	if err != nil {
		if im == nil {
			return nil, errs.Failedf("comparing revision %d with the cluster: %w", t.To.Version, err)
		}
		return nil, errs.Preconditionf("rollback refused, nothing changed: %v", err)
	}
	return im, nil
}

// failedHelm explains a failed Helm rollback: which revision is current, that
// the database was not restored, and the one command that finishes.
func (r *Rollback) failedHelm(t *Target, cause error) error {
	finish := FinishCommand(r.Release, t.To.Version, r.Dir, t.Backup, r.RecreateStatefulSets)
	db := "the database was NOT restored"
	if r.SkipDBRestore {
		db = "no database restore was asked for"
	}
	last, err := r.Release.Last()
	if err != nil || last.Version == t.Current.Version {
		return errs.NeedsAttentionf("helm rollback to revision %d: %v; the release is unchanged at revision %d (chart %s) and %s; once the cause is fixed: %s",
			t.To.Version, cause, t.Current.Version, helmenv.ChartVersion(t.Current), db, finish)
	}
	return errs.NeedsAttentionf("helm rollback to revision %d: %v; the release is now at revision %d (chart %s, %s) and %s (it is as chart %s left it); once the cause is fixed, finish with: %s",
		t.To.Version, cause, last.Version, helmenv.ChartVersion(last), last.Info.Status, db, helmenv.ChartVersion(t.Current), finish)
}

// The steps of a Revert, named as upgrade's journal records them (recovery
// reads that journal; users see it beside the backup).
const (
	StepHelm      = "rollback"
	StepRestore   = "restore"
	StepReadiness = "readiness-after-rollback"
)

// Revert is the way back that `rollback`, upgrade's automatic undo and the
// recovery of a killed run share: Helm rolls the release back to revision To
// (waiting for its resources), the database is restored from Backup, then
// the pods are awaited. The caller holds the release lock and words the
// failure: the error says which step failed (*StepError).
type Revert struct {
	Release *helmenv.Release
	Kube    *kube.Client
	// Lock is the release lock the caller holds (the restore runs under it).
	Lock *lock.Lock
	// To is the revision to go back to.
	To int
	// Backup is restored after the Helm rollback; nil: the database is left.
	Backup *backup.Entry
	// Verified: Backup was fully verified (backup.Verify) by the caller.
	Verified                 bool
	AllowInsecurePermissions bool
	Dir                      string // backup catalog root
	// Timeout is one budget for the Helm rollback's wait and the readiness
	// wait (the restore between them is not counted); TimeoutFlag is the flag
	// that sets it, named when it is spent.
	Timeout     time.Duration
	TimeoutFlag string
	// Finish: once Helm has rolled back, the restore runs to its end even on
	// Ctrl-C (an automatic undo). Otherwise Ctrl-C stops before the restore.
	Finish bool
	// Operation names the run on the lease's marks ("upgrade" for its undo).
	Operation string
	// MakeRoom deletes first, inside the Helm step, what Helm cannot patch
	// from the current revision's manifest to To's: changed or renamed-back
	// Jobs, finished or still running (the failed or killed version's), and
	// StatefulSets Helm cannot patch back (--cascade=orphan: pods and volumes
	// kept, Helm recreates them as To had them). The way back of a failed or
	// killed upgrade must not stop there; Rollback checks and refuses
	// before its confirmation instead.
	MakeRoom bool
	// Live reads and deletes the live objects for MakeRoom (nil: built from Kube).
	Live *livediff.Clients
	// AfterHelm runs once Helm has rolled back, before the restore; its error
	// stops the revert and is returned as it is.
	AfterHelm func(context.Context) error
	// Step runs each step, named Step*, with its one-line result (upgrade's
	// journal); nil: the steps just run.
	Step     func(name string, f func() (string, error)) error
	Progress io.Writer
	Log      steplog.Func
	// PGImage, PGPodTimeout: the client pod of an external database.
	PGImage      string
	PGPodTimeout time.Duration
}

// Reverted is what a Revert did, as far as it got.
type Reverted struct {
	// Release is the revision Helm wrote rolling back (nil: not rolled back).
	Release   *release.Release
	Restore   *restore.Result
	Readiness *readiness.Report
}

// StepError is a Revert that stopped at Step.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// FailedStep is the step of a Revert err stopped at ("" when err is not one).
func FailedStep(err error) string {
	var se *StepError
	if errors.As(err, &se) {
		return se.Step
	}
	return ""
}

// Run rolls back, restores and waits, stopping at the first step that fails.
func (r *Revert) Run(ctx context.Context) (*Reverted, error) {
	out := &Reverted{}
	b := budget.New(r.TimeoutFlag, r.Timeout)
	step := r.Step
	if step == nil {
		step = func(_ string, f func() (string, error)) error { _, err := f(); return err }
	}
	var after error
	if err := step(StepHelm, func() (string, error) {
		last, err := r.helm(ctx, b)
		if err != nil {
			return "", err
		}
		out.Release = last
		if r.AfterHelm != nil {
			after = r.AfterHelm(ctx)
		}
		return fmt.Sprintf("revision %d (chart %s) %s", last.Version, helmenv.ChartVersion(last), last.Info.Status), nil
	}); err != nil {
		return out, &StepError{Step: StepHelm, Err: err}
	}
	if after != nil {
		return out, after
	}
	r.Log.Printf("release %s at revision %d (%s)", r.Release.Name, out.Release.Version, out.Release.Info.Status)
	if r.Backup != nil {
		if err := step(StepRestore, func() (string, error) {
			res, err := r.restore(ctx)
			if err != nil {
				return "", err
			}
			if err := r.mark(context.WithoutCancel(ctx), nil); err != nil {
				return "", err
			}
			out.Restore = res
			return fmt.Sprintf("%d database(s) restored from %s", len(res.Databases), r.Backup.ID), nil
		}); err != nil {
			return out, &StepError{Step: StepRestore, Err: err}
		}
	}
	if err := step(StepReadiness, func() (string, error) {
		r.Log.Printf("waiting for pods")
		err := b.Wait(func(left time.Duration) error {
			rep, err := readiness.ForRelease(ctx, r.Kube.Clientset, r.Release.Namespace, left, r.Progress)
			out.Readiness = rep
			return err
		})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d/%d pods Ready", out.Readiness.Ready, out.Readiness.Total), nil
	}); err != nil {
		return out, &StepError{Step: StepReadiness, Err: err}
	}
	return out, nil
}

// helm is the Helm rollback, waiting for the resources. Helm's rollback runs
// to its end even on Ctrl-C (it takes no context), but a SIGKILL leaves the
// release pending-rollback: the lease is marked first, so that `helm csghub
// rollback` recovers it (rolls back to To again and restores Backup).
func (r *Revert) helm(ctx context.Context, b *budget.Budget) (*release.Release, error) {
	from, err := r.Release.Last()
	if err != nil {
		return nil, err
	}
	if r.MakeRoom {
		if err := r.makeRoom(ctx, from); err != nil {
			return nil, err
		}
	}
	m := &lock.Mark{Operation: r.Operation, Step: StepHelm, Revision: from.Version + 1, From: from.Version, To: r.To,
		Command: RecoverCommand(r.Release, r.Dir)}
	if r.Backup != nil {
		m.Backup = r.Backup.ID
	}
	if r.Lock != nil {
		if err := r.Lock.Held(ctx, "the Helm rollback"); err != nil {
			return nil, err
		}
	}
	if err := r.mark(ctx, m); err != nil {
		return nil, err
	}
	rb := action.NewRollback(r.Release.Helm)
	rb.Version = r.To
	rb.Wait = true
	rb.MaxHistory = r.Release.Settings.MaxHistory
	err = b.Wait(func(left time.Duration) error {
		rb.Timeout = left
		return rb.Run(r.Release.Name)
	})
	if err != nil {
		_ = r.mark(context.WithoutCancel(ctx), nil)
		return nil, err
	}
	last, err := r.Release.Last()
	if err != nil {
		return nil, err
	}
	// from here a killed run leaves the database to restore, not a pending release
	if r.Backup != nil {
		err = r.mark(context.WithoutCancel(ctx), &lock.Mark{Operation: r.Operation, Step: lock.StepRestore, Revision: last.Version,
			From: from.Version, To: r.To, Backup: r.Backup.ID, Command: RestoreCommand(r.Release, r.Dir, r.Backup.ID)})
	} else {
		err = r.mark(context.WithoutCancel(ctx), nil)
	}
	return last, err
}

// mark records m on the lease (nil: this run's own marks end; a killed run's
// inherited one, still unresolved, is put back).
func (r *Revert) mark(ctx context.Context, m *lock.Mark) error {
	if r.Lock == nil {
		return nil
	}
	if m == nil {
		return r.Lock.EndMark(ctx)
	}
	return r.Lock.SetMark(ctx, m)
}

// makeRoom clears what Helm cannot patch rolling back from revision from to
// revision To (their manifests against the live Jobs and StatefulSets).
func (r *Revert) makeRoom(ctx context.Context, from *release.Release) error {
	to, err := r.Release.Helm.Releases.Get(r.Release.Name, r.To)
	if err != nil {
		return fmt.Errorf("reading revision %d: %w", r.To, err)
	}
	target, err := render.SplitManifest(to.Manifest)
	if err != nil {
		return fmt.Errorf("reading the manifest of revision %d: %w", r.To, err)
	}
	previous, err := render.SplitManifest(from.Manifest)
	if err != nil {
		return fmt.Errorf("reading the manifest of revision %d: %w", from.Version, err)
	}
	var c livediff.Clients
	if r.Live != nil {
		c = *r.Live
	} else if c, err = livediff.NewClients(r.Kube.Config, r.Kube.Clientset); err != nil {
		return err
	}
	g := &livediff.Guard{Clients: c, Namespace: r.Release.Namespace, RecreateStatefulSets: true, DeleteRunningJobs: true, Log: r.Log}
	cleared, err := g.MakeRoom(ctx, target, previous)
	if len(cleared) > 0 {
		r.Log.Printf("made room for the rollback: %d object(s) deleted for Helm to recreate", len(cleared))
	}
	if err != nil {
		return err
	}
	return r.patchFromTarget(ctx, c, from, target, previous)
}

// patchFromTarget: the other objects To has, the revision rolled back from
// lacks and the cluster still holds (the failed or killed upgrade never
// replaced them) would be patched by Helm against the live object, which a
// custom resource refuses. They are added to the manifest Helm patches from
// (the failed or pending revision's record), as To renders them: Helm then
// patches them from To's own rendering, as it would have had the upgrade
// never started, and nothing is deleted.
func (r *Revert) patchFromTarget(ctx context.Context, c livediff.Clients, from *release.Release, target, previous []*unstructured.Unstructured) error {
	// custom resources only: built-in kinds take a patch against the live
	// object (the API server fills in what it drops), Jobs and StatefulSets
	// are MakeRoom's
	var crs []*unstructured.Unstructured
	for _, o := range target {
		if g := o.GroupVersionKind().Group; strings.Contains(g, ".") && (!strings.HasSuffix(g, ".k8s.io") || g == "gateway.networking.k8s.io") {
			crs = append(crs, o)
		}
	}
	if len(crs) == 0 {
		return nil
	}
	target = crs
	snap, err := livediff.Take(ctx, c, r.Release.Namespace, target)
	if err != nil {
		return fmt.Errorf("reading the live objects of revision %d: %w", r.To, err)
	}
	add := livediff.PatchedAgainstLive(snap, r.Release.Namespace, target, previous)
	if len(add) == 0 {
		return nil
	}
	var docs []string
	for _, o := range add {
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			return err
		}
		docs = append(docs, string(y))
		r.Log.Printf("  %s: patched from revision %d's rendering (revision %d does not have it)", livediff.KeyOf(o), r.To, from.Version)
	}
	from.Manifest = strings.TrimRight(from.Manifest, "\n") + "\n---\n" + strings.Join(docs, "---\n")
	if err := r.Release.Helm.Releases.Update(from); err != nil {
		return fmt.Errorf("recording revision %d's objects in revision %d: %w", r.To, from.Version, err)
	}
	return nil
}

func (r *Revert) restore(ctx context.Context) (*restore.Result, error) {
	if r.Finish {
		ctx = context.WithoutCancel(ctx)
	} else if ctx.Err() != nil {
		return nil, errs.Wrap(errs.Interrupted, fmt.Errorf("interrupted after the Helm rollback: the database was NOT restored; run `helm csghub restore --backup %s`", r.Backup.ID))
	}
	rs := &restore.Restore{Release: r.Release, Kube: r.Kube, Dir: r.Dir, Entry: r.Backup, Verified: r.Verified, Lock: r.Lock,
		AllowInsecurePermissions: r.AllowInsecurePermissions, Progress: r.Progress, Log: r.Log, PGImage: r.PGImage, PodTimeout: r.PGPodTimeout}
	return rs.Run(ctx)
}

// FinishCommand is the one command that finishes a rollback of rel to
// revision to: restoring b (nil: --skip-db-restore).
func FinishCommand(rel *helmenv.Release, to int, dir string, b *backup.Entry, recreateStatefulSets bool) string {
	finish := fmt.Sprintf("helm csghub rollback %d", to) + target(rel, dir)
	if b != nil {
		finish += " --backup " + b.ID
	} else {
		finish += " --skip-db-restore"
	}
	if recreateStatefulSets {
		finish += " --recreate-statefulsets"
	}
	return finish
}

// RecoverCommand is the one command that recovers a release a killed run left
// pending: `helm csghub rollback` with no REVISION (see internal/recovery).
func RecoverCommand(rel *helmenv.Release, dir string) string {
	return "helm csghub rollback" + target(rel, dir)
}

// RevisionCommand is the one command that rolls rel back to revision to,
// restoring the backup of that revision (status's advice for a failed release).
func RevisionCommand(rel *helmenv.Release, to int) string {
	return fmt.Sprintf("helm csghub rollback %d", to) + target(rel, "")
}

// RestoreCommand is the one command that finishes a restore of backup id
// that was killed: replaying it again.
func RestoreCommand(rel *helmenv.Release, dir, id string) string {
	return "helm csghub restore --backup " + id + target(rel, dir)
}

// target is the flags naming rel and the backup catalog dir.
func target(rel *helmenv.Release, dir string) string { return rel.Flags(dir) }
