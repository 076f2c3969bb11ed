package rollback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/release"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/budget"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/lock"
	"github.com/opencsgs/helm-csghub/internal/readiness"
	"github.com/opencsgs/helm-csghub/internal/restore"
	"github.com/opencsgs/helm-csghub/internal/steplog"
)

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
	// Budget is the one allowance of the Helm rollback's wait and the
	// readiness wait (the restore between them is not counted).
	Budget *budget.Budget
	// Finish: once Helm has rolled back, the restore runs to its end even on
	// Ctrl-C (an automatic undo). Otherwise Ctrl-C stops before the restore.
	Finish bool
	// BeforeHelm runs first, inside the Helm step (making room for objects
	// Helm cannot patch back).
	BeforeHelm func(context.Context) error
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
	step := r.Step
	if step == nil {
		step = func(_ string, f func() (string, error)) error { _, err := f(); return err }
	}
	var after error
	if err := step(StepHelm, func() (string, error) {
		last, err := r.helm(ctx)
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
			out.Restore = res
			return fmt.Sprintf("%d database(s) restored from %s", len(res.Databases), r.Backup.ID), nil
		}); err != nil {
			return out, &StepError{Step: StepRestore, Err: err}
		}
	}
	if err := step(StepReadiness, func() (string, error) {
		r.Log.Printf("waiting for pods")
		err := r.Budget.Wait(func(left time.Duration) error {
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
// to its end even on Ctrl-C (it takes no context), so the release is never
// left pending-rollback by us.
func (r *Revert) helm(ctx context.Context) (*release.Release, error) {
	if r.BeforeHelm != nil {
		if err := r.BeforeHelm(ctx); err != nil {
			return nil, err
		}
	}
	rb := action.NewRollback(r.Release.Helm)
	rb.Version = r.To
	rb.Wait = true
	rb.MaxHistory = r.Release.Settings.MaxHistory
	if err := r.Budget.Wait(func(left time.Duration) error {
		rb.Timeout = left
		return rb.Run(r.Release.Name)
	}); err != nil {
		return nil, err
	}
	return r.Release.Last()
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
	finish := fmt.Sprintf("helm csghub rollback %d -n %s", to, rel.Namespace)
	if rel.Name != helmenv.DefaultRelease {
		finish += " --release " + rel.Name
	}
	if dir != "" {
		finish += " --dir " + dir
	}
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
