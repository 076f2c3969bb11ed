// Package status reports a CSGHub release as the upgrade guide inspects it by
// hand: `helm status`, `helm history` and `kubectl get pods -l '!job-name'`.
package status

import (
	"context"
	"fmt"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/release"
	"k8s.io/client-go/kubernetes"

	"github.com/opencsgs/helm-csghub/internal/dbpod"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/lock"
	"github.com/opencsgs/helm-csghub/internal/netpol"
	"github.com/opencsgs/helm-csghub/internal/quiesce"
	"github.com/opencsgs/helm-csghub/internal/rollback"
)

// Report is the status of one release.
type Report struct {
	Release      string            `json:"release"`
	Namespace    string            `json:"namespace"`
	Revision     int               `json:"revision"`
	Chart        string            `json:"chart"`
	ChartVersion string            `json:"chartVersion"`
	AppVersion   string            `json:"appVersion"`
	Status       string            `json:"status"`
	Updated      time.Time         `json:"updated"`
	History      int               `json:"historyLength"`
	Pods         []kube.PodSummary `json:"pods"`
	// BlockingPolicy is the restore's NetworkPolicy: left by an interrupted
	// restore, or (RunningBy) in use by a running one.
	BlockingPolicy *netpol.Leftover `json:"blockingNetworkPolicy,omitempty"`
	// Lease is the plugin's operation lock when one exists: held by a
	// running operation, or left by a killed one.
	Lease *lock.Info `json:"lease,omitempty"`
	// Todo says what to do about a pending release or a leftover lease.
	Todo string `json:"todo,omitempty"`
	// PGClients are PostgreSQL client pods/Secrets of an external-database
	// backup or restore (a live run's, or one left by a killed run).
	PGClients []dbpod.Leftover `json:"pgClients,omitempty"`
	// ScaledDown are workloads still scaled to 0 by a restore of an external
	// database that did not finish.
	ScaledDown []quiesce.Workload `json:"scaledDown,omitempty"`
}

// AllReady reports whether every counted pod is Ready.
func (r *Report) AllReady() bool {
	for _, p := range r.Pods {
		if p.Ready != p.Total {
			return false
		}
	}
	return true
}

// Status reads the release and its pods. It changes nothing.
type Status struct {
	Release   *helmenv.Release
	Clientset kubernetes.Interface
}

// Run builds the report.
func (s *Status) Run(ctx context.Context) (*Report, error) {
	ns := s.Release.Namespace
	hist, err := s.Release.History()
	if err != nil {
		return nil, err
	}
	latest := hist[len(hist)-1]
	rep := &Report{
		Release:   latest.Name,
		Namespace: ns,
		Revision:  latest.Version,
		Status:    latest.Info.Status.String(),
		Updated:   latest.Info.LastDeployed.Time,
		History:   len(hist),
	}
	if md := latest.Chart.Metadata; md != nil {
		rep.Chart, rep.ChartVersion, rep.AppVersion = md.Name, md.Version, md.AppVersion
	}

	cs := s.Clientset
	sum, err := kube.SummarizePods(ctx, cs, ns)
	if err != nil {
		return nil, errs.Failedf("listing pods in %q: %w", ns, err)
	}
	rep.Pods = append(rep.Pods, sum)
	if rep.BlockingPolicy, err = netpol.FindLeftover(ctx, cs, ns); err != nil {
		return nil, errs.Failedf("looking for a leftover NetworkPolicy: %w", err)
	}
	if rep.PGClients, err = dbpod.FindLeftoverClients(ctx, cs, ns, s.Release.Name); err != nil {
		return nil, errs.Failedf("looking for PostgreSQL client pods: %w", err)
	}
	if rep.ScaledDown, err = quiesce.FindLeftover(ctx, cs, ns, s.Release.Name); err != nil {
		return nil, errs.Failedf("looking for scaled-down workloads: %w", err)
	}
	if rep.Lease, err = lock.Inspect(ctx, cs, ns, s.Release.Name); err != nil {
		return nil, err
	}
	if rep.BlockingPolicy != nil && rep.Lease != nil && rep.Lease.Alive {
		rep.BlockingPolicy.RunningBy = rep.Lease.Holder
	}
	rep.Todo = todo(rep, latest.Info.Status.IsPending(), lastGood(hist), failedTodo(s.Release, hist, rep.Lease))
	if ns != kube.KnativeNamespace {
		ok, err := kube.NamespaceExists(ctx, cs, kube.KnativeNamespace)
		if err != nil {
			return nil, errs.Failedf("looking up namespace %q: %w", kube.KnativeNamespace, err)
		}
		if ok {
			ks, err := kube.SummarizePods(ctx, cs, kube.KnativeNamespace)
			if err != nil {
				return nil, errs.Failedf("listing pods in %q: %w", kube.KnativeNamespace, err)
			}
			rep.Pods = append(rep.Pods, ks)
		}
	}
	return rep, nil
}

// todo is the advice for a pending release, a leftover lease or a failed
// release (failed: failedTodo's; "" when there is nothing to do).
func todo(r *Report, pending bool, good int, failed string) string {
	l := r.Lease
	killed := l != nil && !l.Alive
	switch {
	case pending && killed && l.Mark != nil && l.Mark.HelmStep() && l.Mark.Revision == r.Revision:
		cmd := l.Mark.Command
		if cmd == "" { // a lease marked before marks named their command
			cmd = "helm csghub rollback"
		}
		s := fmt.Sprintf("revision %d was left %s by a killed `helm csghub %s` (%s): run `%s` to roll back to revision %d",
			r.Revision, r.Status, l.Mark.Operation, l.Holder, cmd, l.Mark.Target())
		if l.Mark.Backup != "" {
			s += " and restore its backup " + l.Mark.Backup
		}
		return s
	case killed && l.Mark != nil && l.Mark.Step == lock.StepRestore && l.Mark.Command != "":
		return fmt.Sprintf("a killed `helm csghub %s` (%s) was restoring backup %s: the databases may be half restored; run `%s` to finish",
			l.Mark.Operation, l.Holder, l.Mark.Backup, l.Mark.Command)
	case killed && l.Mark != nil && l.Mark.Step == lock.StepUpgrade && l.Mark.From == r.Revision && !pending && l.Mark.Command != "":
		s := fmt.Sprintf("a killed `helm csghub upgrade` (%s) stopped before its Helm step: the release is unchanged at revision %d, its migrations may be half applied; run `%s` to upgrade again (each migration checks what is already applied)",
			l.Holder, r.Revision, l.Mark.Command)
		if l.Mark.Note != "" {
			s += " " + l.Mark.Note
		}
		return s
	case killed && l.Mark != nil && !l.Mark.HelmStep() && l.Mark.Step != lock.StepUpgrade && l.Mark.Command != "":
		s := fmt.Sprintf("a killed `helm csghub %s` (%s) stopped at %s", l.Mark.Operation, l.Holder, l.Mark.Step)
		switch l.Mark.Step {
		case lock.StepMigrate:
			s += ": the migrations may be half applied; run `" + l.Mark.Command + "` to finish them (each checks what is already applied)"
		case lock.StepImport:
			s += ": the logs are partly imported; run `" + l.Mark.Command + "` to finish (collections imported before are recorded)"
		default:
			s += ": run `" + l.Mark.Command + "`"
		}
		if l.Mark.Note != "" {
			s += " " + l.Mark.Note
		}
		return s
	case pending && l != nil && l.Alive:
		return fmt.Sprintf("revision %d is %s while %s runs: wait for it", r.Revision, r.Status, l.Holder)
	case pending:
		return fmt.Sprintf("revision %d is %s and no helm csghub run holds or left the lock: another client is writing it or was killed; check `helm history %s -n %s` and, once nothing runs, `helm rollback %s %d -n %s`",
			r.Revision, r.Status, r.Release, r.Namespace, r.Release, good, r.Namespace)
	case failed != "":
		return failed
	case killed:
		return fmt.Sprintf("leftover lock of a stopped run (%s, last renewed %s): the next helm csghub run takes it over; or `kubectl -n %s delete lease %s`",
			l.Holder, l.Renewed.UTC().Format(time.RFC3339), r.Namespace, lock.Name(r.Release))
	}
	return ""
}

// failedTodo is the advice for a release whose newest revision is failed (a
// failed upgrade, or a rollback whose Helm step failed, the plugin's or plain
// Helm's): the one command that goes back, `helm csghub rollback N`, N the
// revision a failed rollback was going to (its record carries N's manifest)
// or else the newest deployed one. "" when the release is not failed.
func failedTodo(rel *helmenv.Release, hist []*release.Release, l *lock.Info) string {
	cur := hist[len(hist)-1]
	if cur.Info.Status != release.StatusFailed {
		return ""
	}
	what := fmt.Sprintf("revision %d (chart %s) is failed", cur.Version, helmenv.ChartVersion(cur))
	if l != nil && l.Alive {
		return fmt.Sprintf("%s while %s runs: wait for it", what, l.Holder)
	}
	to := rollbackTarget(hist)
	if to == nil {
		return what + " and no earlier revision was deployed: fix the cause (`helm csghub history` says it) and run the upgrade again"
	}
	return fmt.Sprintf("%s (why: `helm csghub history`): once the cause is fixed, run `%s` to roll back to revision %d (chart %s) and restore its backup",
		what, rollback.RevisionCommand(rel, to.Version), to.Version, helmenv.ChartVersion(to))
}

// rollbackTarget is where a failed newest revision goes back to: the
// revision a failed Helm rollback was going to (Helm's rollback record is a
// copy of its target's manifest, and marks the revision it left superseded
// even when it fails), else the newest deployed or superseded one. nil: none.
func rollbackTarget(hist []*release.Release) *release.Release {
	cur := hist[len(hist)-1]
	for i := len(hist) - 2; i >= 0; i-- {
		if h := hist[i]; h.Manifest == cur.Manifest && h.Manifest != "" && h.Info.Status != release.StatusFailed {
			return h
		}
	}
	for i := len(hist) - 2; i >= 0; i-- {
		// a failed upgrade a failed rollback marked superseded is no way back
		h := hist[i]
		if st := h.Info.Status; (st == release.StatusDeployed || st == release.StatusSuperseded) && !strings.Contains(h.Info.Description, " failed") {
			return h
		}
	}
	return nil
}

// lastGood is the newest deployed or superseded revision.
func lastGood(hist []*release.Release) int {
	best := 0
	for _, h := range hist {
		if st := h.Info.Status; (st == release.StatusDeployed || st == release.StatusSuperseded) && h.Version > best {
			best = h.Version
		}
	}
	return best
}
