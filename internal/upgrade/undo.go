package upgrade

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/rollback"
)

// undo rolls the release back to the revision before the upgrade and
// restores the database from the run's backup (rollback.Revert, under the
// run's lock, with --rollback-timeout), unless --no-rollback. It runs to its
// end whatever ctx does; ctx only says whether a Ctrl-C caused the failure.
func (r *run) undo(ctx context.Context, step string, cause error) (*Summary, error) {
	sum, from := r.sum, r.p.Release.Version
	if errors.Is(cause, context.Canceled) || ctx.Err() != nil {
		cause = fmt.Errorf("interrupted (%v)", cause)
	}
	sum.Failure = fmt.Sprintf("%s: %v", step, cause)
	r.current() // a failed Helm upgrade wrote a revision too
	if r.NoRollback {
		return sum, errs.NeedsAttentionf("upgrade failed at %s: %v; not rolled back (--no-rollback): roll back with `helm csghub rollback %d --backup %s`",
			step, cause, from, r.entry.ID)
	}
	r.Log.Printf("upgrade failed at %s: %v; rolling back to revision %d and restoring backup %s", step, cause, from, r.entry.ID)
	timeout := r.RollbackTimeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	rv := &rollback.Revert{Release: r.Release, Kube: r.Kube, Lock: r.lk, To: from, Dir: r.BackupDir,
		Timeout: timeout, TimeoutFlag: "--rollback-timeout", Finish: true, Operation: "upgrade",
		MakeRoom: true,
		Step: func(name string, f func() (string, error)) error {
			_, err := r.j.step(name, f)
			return err
		},
		Progress: r.Progress, Log: r.Log, PGImage: r.PGImage, PGPodTimeout: r.PGPodTimeout}
	if r.entry.Manifest.HasDatabase() {
		rv.Backup = r.entry
	}
	out, err := rv.Run(context.WithoutCancel(ctx))
	if out.Release == nil {
		r.current()
		// The database is left as the new version has it, matching the
		// workloads: restoring it under the new version would be worse.
		return sum, r.rollbackFailed(step, cause, errors.Unwrap(err))
	}
	sum.Revision, sum.Status = out.Release.Version, out.Release.Info.Status.String()
	sum.Undone = append(sum.Undone, fmt.Sprintf("release rolled back to chart %s (revision %d)", sum.From, sum.Revision))
	if out.Restore != nil {
		sum.Undone = append(sum.Undone, "database restored from backup "+r.entry.ID)
	}
	switch rollback.FailedStep(err) {
	case rollback.StepRestore:
		return sum, r.undoIncomplete(step, cause, "database restore: "+errors.Unwrap(err).Error())
	case rollback.StepReadiness:
		return sum, r.undoIncomplete(step, cause, "readiness after rollback: "+errors.Unwrap(err).Error())
	}
	sum.RolledBack = true
	return sum, errs.RolledBackf("upgrade failed at %s: %v; rolled back: %v; backup %s", step, cause, sum.Undone, r.entry.Path)
}

// current makes the summary's revision and status the release's as they are
// now (the summary says "revision: FROM -> this").
func (r *run) current() {
	if last, err := r.Release.Last(); err == nil {
		r.sum.Revision, r.sum.Status = last.Version, last.Info.Status.String()
	}
}

func (r *run) undoIncomplete(step string, cause error, problem string) error {
	return errs.NeedsAttentionf("upgrade failed at %s: %v; the automatic rollback did not complete: %v; backup %s",
		step, cause, []string{problem}, r.entry.Path)
}

// rollbackFailed explains an automatic rollback whose Helm step failed: which
// revision is current, that the database was NOT restored, and the one
// command that finishes.
func (r *run) rollbackFailed(step string, cause, rbErr error) error {
	cur := "unknown"
	if last, err := r.Release.Last(); err == nil {
		cur = fmt.Sprintf("%d (chart %s, %s)", last.Version, helmenv.ChartVersion(last), last.Info.Status)
	}
	var b *backup.Entry
	if r.entry.Manifest.HasDatabase() {
		b = r.entry
	}
	finish := rollback.FinishCommand(r.Release, r.p.Release.Version, r.BackupDir, b, r.RecreateStatefulSets)
	return errs.NeedsAttentionf("upgrade failed at %s: %v; the automatic rollback failed: helm rollback: %v; the release is at revision %s and the database was NOT restored (it is as the new version left it); once the cause is fixed, finish with: %s",
		step, cause, rbErr, cur, finish)
}
