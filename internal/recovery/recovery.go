// Package recovery undoes what a killed plugin run left: a release pending
// because the run died inside its Helm step. The run's own lease is the proof
// that the pending revision is the plugin's: a holder that is gone, with the
// mark the run set before its Helm step (lock.Mark: the pending revision, the
// revision it came from, its backup). A pending revision without that proof
// is refused, as before: another client may still be writing it.
package recovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/release"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/livediff"
	"github.com/opencsgs/helm-csghub/internal/lock"
	"github.com/opencsgs/helm-csghub/internal/readlimit"
	"github.com/opencsgs/helm-csghub/internal/restore"
	"github.com/opencsgs/helm-csghub/internal/rollback"
	"github.com/opencsgs/helm-csghub/internal/steplog"
)

// Recovery rolls a release left pending by a killed plugin run back to the
// revision the run came from, and restores the run's backup when the run's
// journal shows its Helm step had started.
type Recovery struct {
	Release *helmenv.Release
	Kube    *kube.Client
	Dir     string // backup catalog root
	// Timeout is one allowance for the Helm rollback's wait and the readiness
	// wait, set by TimeoutFlag (default "--timeout"; named when spent).
	Timeout     time.Duration
	TimeoutFlag string
	Progress    io.Writer
	Log         steplog.Func
	// Lock is the release lock the caller already holds, having taken over
	// the killed run's lease (an upgrade with --recover); nil: Run takes it.
	Lock *lock.Lock
	// PGImage, PGPodTimeout: the client pod of an external database.
	PGImage      string
	PGPodTimeout time.Duration
	// Live reads and deletes the live Jobs and StatefulSets in the rollback's
	// way (nil: built from Kube).
	Live *livediff.Clients
}

// Plan is a pending release proven to be a dead plugin run's.
type Plan struct {
	Pending     *release.Release
	To          *release.Release
	Mark        lock.Mark
	Backup      *backup.Entry // nil: the run had none with a database
	HelmStarted bool
}

// Result says what was done.
type Result struct {
	PendingRevision int             `json:"pendingRevision"`
	PendingStatus   string          `json:"pendingStatus"`
	RolledBackTo    int             `json:"rolledBackTo"`
	NewRevision     int             `json:"newRevision"`
	Status          string          `json:"status"`
	Backup          string          `json:"backupId,omitempty"`
	Restore         *restore.Result `json:"restore,omitempty"`
	Done            []string        `json:"done"`
}

// Check returns nil when the release is not pending, a Plan when it is and a
// dead plugin run wrote the pending revision, and a Precondition error when
// it is pending for another reason. mark is the mark of a lease the caller
// has already taken over (an empty Mark: there was none; nil: the lease is
// read, and must not be alive).
func (r *Recovery) Check(ctx context.Context, mark *lock.Mark) (*Plan, error) {
	hist, err := r.Release.History()
	if err != nil {
		return nil, err
	}
	cur := hist[len(hist)-1]
	if !cur.Info.Status.IsPending() {
		return nil, nil
	}
	name, ns := r.Release.Name, r.Release.Namespace
	notOurs := func(why string) error {
		return errs.Preconditionf("release %q is %s at revision %d and %s: another operation may be running; check `helm history %s -n %s` and, once nothing runs, `helm rollback %s %d -n %s`",
			name, cur.Info.Status, cur.Version, why, name, ns, name, lastDeployed(hist), ns)
	}
	if mark == nil {
		info, err := lock.Inspect(ctx, r.Kube.Clientset, ns, name)
		if err != nil {
			return nil, err
		}
		switch {
		case info == nil || info.Mark == nil:
			return nil, notOurs("no killed helm csghub run left it (no lease of one)")
		case info.Alive:
			return nil, errs.Preconditionf("release %q is %s at revision %d: %s still holds the lock and is running; wait for it", name, cur.Info.Status, cur.Version, info.Holder)
		}
		mark = info.Mark
	}
	if !mark.HelmStep() {
		return nil, notOurs("no killed helm csghub run left it (no lease of one)")
	}
	if mark.Revision != cur.Version {
		return nil, notOurs(fmt.Sprintf("the killed helm csghub run's lease names revision %d, not this one", mark.Revision))
	}
	p := &Plan{Pending: cur, Mark: *mark}
	for _, h := range hist {
		if h.Version == mark.Target() {
			p.To = h
		}
	}
	if p.To == nil {
		return nil, errs.Preconditionf("revision %d, which the killed run was going back to or came from, is no longer in Helm's history: roll back by hand (`helm rollback %s REVISION -n %s`)", mark.Target(), name, ns)
	}
	if mark.Backup != "" {
		e, err := backup.CatalogAt(r.Dir).Find(ns, name, mark.Backup)
		if err != nil {
			return nil, fmt.Errorf("the killed run's backup: %w", err)
		}
		if e.Manifest.HasDatabase() {
			p.Backup = e
		}
		// a killed rollback had not restored yet: its backup is always due;
		// an upgrade's only once its Helm step started (its journal says)
		p.HelmStarted = mark.Step != "helm-upgrade" || helmStepStarted(e)
	}
	return p, nil
}

// Describe is the one-line summary for the confirmation prompt.
func (p *Plan) Describe(name string) string {
	s := fmt.Sprintf("Release %q is %s at revision %d, left by a killed `helm csghub %s` (its lease). Recover: roll back to revision %d (chart %s)",
		name, p.Pending.Info.Status, p.Pending.Version, p.Mark.Operation, p.To.Version, helmenv.ChartVersion(p.To))
	if p.Backup != nil && p.HelmStarted {
		s += " and restore the databases from the run's backup " + p.Backup.ID
	}
	return s + "."
}

// Run recovers: Helm rollback (waiting for the resources), the restore, then
// readiness. The killed run's lease is taken over (or the caller's Lock
// used) and its mark cleared once done.
func (r *Recovery) Run(ctx context.Context, p *Plan) (*Result, error) {
	l := r.Lock
	if l == nil {
		var err error
		if l, err = lock.Take(ctx, r.Kube.Clientset, r.Release.Namespace, r.Release.Name, "rollback", nil); err != nil {
			return nil, err
		}
		defer l.Release()
		if l.Inherited == nil || *l.Inherited != p.Mark {
			return nil, errs.Preconditionf("the lock of release %q changed while preparing the recovery: run `helm csghub rollback` again", r.Release.Name)
		}
		r.Log.Printf("recovering from a killed run: %s", l.Stale)
	}
	res := &Result{PendingRevision: p.Pending.Version, PendingStatus: p.Pending.Info.Status.String(), RolledBackTo: p.To.Version}
	if p.Backup != nil && p.HelmStarted {
		// proven before anything changes, as a rollback does
		r.Log.Printf("verifying backup %s", p.Backup.ID)
		if err := backup.VerifyError(backup.VerifyContext(ctx, p.Backup)); err != nil {
			return nil, err
		}
	}
	r.Log.Printf("rolling back %s from pending revision %d to revision %d (chart %s)", r.Release.Name, p.Pending.Version, p.To.Version, helmenv.ChartVersion(p.To))
	rv := &rollback.Revert{Release: r.Release, Kube: r.Kube, Lock: l, To: p.To.Version, Verified: true, Dir: r.Dir,
		Timeout: r.Timeout, TimeoutFlag: r.timeoutFlag(), Finish: true, AfterHelm: func(context.Context) error { return r.markFailed(p) },
		Operation: "rollback", MakeRoom: true, Live: r.Live,
		Progress: r.Progress, Log: r.Log, PGImage: r.PGImage, PGPodTimeout: r.PGPodTimeout}
	if p.Backup != nil && p.HelmStarted {
		rv.Backup = p.Backup
		res.Backup = p.Backup.ID
	}
	out, err := rv.Run(ctx)
	if out.Release != nil {
		l.ForgetInherited() // not pending any more: the killed run's mark explains nothing
		res.NewRevision, res.Status = out.Release.Version, out.Release.Info.Status.String()
		res.Done = append(res.Done, fmt.Sprintf("pending revision %d rolled back to revision %d (chart %s): now revision %d, %s",
			p.Pending.Version, p.To.Version, helmenv.ChartVersion(p.To), out.Release.Version, out.Release.Info.Status))
	}
	res.Restore = out.Restore
	switch step := rollback.FailedStep(err); {
	case step == rollback.StepHelm:
		l.KeepInherited() // still pending: the evidence stays for the next try
		return res, errs.NeedsAttentionf("recovering: helm rollback to revision %d: %v", p.To.Version, errors.Unwrap(err))
	case err != nil && step != rollback.StepReadiness:
		return res, errors.Unwrap(err) // the restore's error, or marking the pending revision failed
	}
	switch {
	case rv.Backup != nil:
		res.Done = append(res.Done, fmt.Sprintf("databases restored from the run's backup %s", p.Backup.ID))
	case p.Backup != nil:
		res.Done = append(res.Done, "database not restored: the run's journal shows its Helm step had not started")
	default:
		res.Done = append(res.Done, "database not restored: the run took no database backup")
	}
	if err := l.SetMark(context.WithoutCancel(ctx), nil); err != nil {
		return res, err
	}
	if err != nil {
		return res, errs.NeedsAttentionf("recovered (%s) but not ready: %v", strings.Join(res.Done, "; "), errors.Unwrap(err))
	}
	res.Done = append(res.Done, fmt.Sprintf("%d/%d pods Ready", out.Readiness.Ready, out.Readiness.Total))
	return res, nil
}

// markFailed marks the killed run's pending revision failed, as Helm does
// with an upgrade that failed: Helm's rollback supersedes only deployed
// revisions, so the record would stay pending in the history for good. Older
// pending revisions (a recovery that was itself killed left one) too.
func (r *Recovery) markFailed(p *Plan) error {
	cfg := r.Release.Helm
	hist, err := cfg.Releases.History(r.Release.Name)
	if err != nil {
		return nil
	}
	for _, pend := range hist {
		if pend.Version > p.Pending.Version || !pend.Info.Status.IsPending() {
			continue
		}
		pend.Info.Status = release.StatusFailed
		pend.Info.Description = fmt.Sprintf("left pending by a killed helm csghub %s; recovered by rollback to revision %d", p.Mark.Operation, p.To.Version)
		if err := cfg.Releases.Update(pend); err != nil {
			return errs.NeedsAttentionf("recovering: rolled back to revision %d, but marking revision %d failed: %v", p.To.Version, pend.Version, err)
		}
	}
	return nil
}

func (r *Recovery) timeoutFlag() string {
	if r.TimeoutFlag != "" {
		return r.TimeoutFlag
	}
	return "--timeout"
}

// lastDeployed is the newest revision Helm marks deployed or superseded (the
// one `helm rollback` should go to), or the one before the newest.
func lastDeployed(hist []*release.Release) int {
	for i := len(hist) - 1; i >= 0; i-- {
		if st := hist[i].Info.Status; st == release.StatusDeployed || st == release.StatusSuperseded {
			return hist[i].Version
		}
	}
	return hist[len(hist)-1].Version - 1
}

// helmStepStarted reads the upgrade journal in the run's backup: did its
// Helm step start? Without a readable journal it assumes so (restoring the
// backup taken seconds before is the safe side).
func helmStepStarted(e *backup.Entry) bool {
	data, err := e.ReadFile("upgrade-journal.json", readlimit.Metadata)
	if err != nil {
		return true
	}
	var events []struct {
		Step   string `json:"step"`
		Status string `json:"status"`
	}
	if json.Unmarshal(data, &events) != nil {
		return true
	}
	for _, e := range events {
		if e.Step == "helm-upgrade" && e.Status == "started" {
			return true
		}
	}
	return false
}
