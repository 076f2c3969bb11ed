// Package lock keeps two plugin operations (upgrade, rollback, restore, backup,
// migrate, dataflow-logs) from running on one release at once, with a
// coordination.k8s.io Lease in the release namespace: visible to every
// operator with kubectl, renewed while the operation runs, and taken over
// only once its holder stopped renewing it.
package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/steplog"
)

// Duration is how long a lease stays valid without renewal: how long a run
// that was stopped or cut off keeps the lock from others. 30 s, or
// EnvLeaseSeconds (set by FromEnv, before any lock is taken).
var Duration = 30 * time.Second

// EnvLeaseSeconds sets Duration: longer for a slow or flaky link to the API
// server; the end-to-end tests shorten it to exercise a takeover in seconds.
const EnvLeaseSeconds = "HELM_CSGHUB_LEASE_SECONDS"

// FromEnv sets Duration from EnvLeaseSeconds when it is set: a whole number
// of seconds from 3 to 3600, else a usage error.
func FromEnv() error {
	v, ok := os.LookupEnv(EnvLeaseSeconds)
	if !ok || v == "" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 3 || n > 3600 {
		return errs.Usagef("%s=%q: want a whole number of seconds from 3 to 3600", EnvLeaseSeconds, v)
	}
	Duration = time.Duration(n) * time.Second
	return nil
}

// Name is the Lease guarding release.
func Name(release string) string { return "helm-csghub-" + release }

// Lock is a held lease.
type Lock struct {
	cs        kubernetes.Interface
	namespace string
	name      string
	holder    string
	stop      chan struct{}
	wg        sync.WaitGroup
	// Stale describes a dead holder whose lease was taken over ("" when none).
	Stale string
	// Inherited is the mark a dead holder left (nil: none): it was killed
	// inside a Helm step and its release may be pending (see Mark).
	Inherited *Mark

	staleSpec     *coordinationv1.LeaseSpec
	keepInherited bool

	mu      sync.Mutex
	renewed time.Time // last time the lease was written as ours
	lost    string    // who took it over, once the renewal saw it
}

// Mark records on the lease, while a Helm step runs, what a killed run leaves
// behind: the revision Helm is writing (pending until the step ends), the
// revision it came from, and the run's backup. It is how a later run knows
// that a pending revision is a dead plugin run's own.
//
// A run also marks the steps after its Helm step whose interruption leaves
// something to finish (StepRestore: databases half replayed). Every mark
// carries Command, the one command that recovers the run if it dies there,
// which status prints.
type Mark struct {
	Operation string `json:"operation"`
	Step      string `json:"step"`
	Revision  int    `json:"pendingRevision"`
	From      int    `json:"fromRevision"`
	// To is the revision a recovery rolls back to when it is not From (a
	// rollback's target); 0: From.
	To      int    `json:"rollbackTo,omitempty"`
	Backup  string `json:"backup,omitempty"`
	Command string `json:"command,omitempty"`
	// Note follows Command where the command cannot say everything (a
	// killed migrate's or upgrade's --set flags, never recorded: they may
	// hold secrets).
	Note string `json:"note,omitempty"`
}

// StepRestore marks a run replaying a backup: killed there, the databases
// may be half restored, and replaying the backup again (Command) finishes.
const StepRestore = "restore"

// StepMigrate marks a migrate run: killed there, the migrations may be
// half applied, and running them again (Command; each checks what is
// already applied) finishes.
const StepMigrate = "migrate"

// StepUpgrade marks an upgrade before its Helm step (backup, migrations):
// killed there, the release is unchanged at From, its migrations may be
// half applied, and running the upgrade again (Command) finishes.
const StepUpgrade = "before-helm-upgrade"

// StepImport marks a Dataflow logs import: killed there, some collections
// are imported (each in one transaction), and importing again finishes.
const StepImport = "dataflow-logs import"

// Target is the revision a recovery of the killed run rolls back to.
func (m *Mark) Target() int {
	if m.To != 0 {
		return m.To
	}
	return m.From
}

// HelmStep says the mark was set inside a Helm step: the release may be
// pending at Revision.
func (m *Mark) HelmStep() bool { return m.Step == "helm-upgrade" || m.Step == "rollback" }

const markPrefix = "helm-csghub.opencsg.com/"

func (m *Mark) annotations() map[string]string {
	a := map[string]string{markPrefix + "operation": m.Operation, markPrefix + "step": m.Step,
		markPrefix + "pending-revision": fmt.Sprint(m.Revision), markPrefix + "from-revision": fmt.Sprint(m.From),
		markPrefix + "backup": m.Backup}
	if m.To != 0 {
		a[markPrefix+"rollback-to"] = fmt.Sprint(m.To)
	}
	if m.Command != "" {
		a[markPrefix+"command"] = m.Command
	}
	if m.Note != "" {
		a[markPrefix+"note"] = m.Note
	}
	return a
}

func markOf(a map[string]string) *Mark {
	if a[markPrefix+"step"] == "" {
		return nil
	}
	m := &Mark{Operation: a[markPrefix+"operation"], Step: a[markPrefix+"step"], Backup: a[markPrefix+"backup"],
		Command: a[markPrefix+"command"], Note: a[markPrefix+"note"]}
	fmt.Sscan(a[markPrefix+"pending-revision"], &m.Revision)
	fmt.Sscan(a[markPrefix+"from-revision"], &m.From)
	fmt.Sscan(a[markPrefix+"rollback-to"], &m.To)
	return m
}

// setMark replaces the mark annotations of a with m's (nil: none).
func setMark(a map[string]string, m *Mark) map[string]string {
	for k := range a {
		if strings.HasPrefix(k, markPrefix) {
			delete(a, k)
		}
	}
	if m == nil {
		return a
	}
	if a == nil {
		a = map[string]string{}
	}
	for k, v := range m.annotations() {
		a[k] = v
	}
	return a
}

// Info is a lease as status shows it, read without taking it.
type Info struct {
	Holder  string    `json:"holder"`
	Renewed time.Time `json:"renewed"`
	// Alive: renewed within its duration and not a dead process on this machine.
	Alive bool  `json:"alive"`
	Mark  *Mark `json:"mark,omitempty"`
}

// Inspect reads the release's lease (nil when there is none).
func Inspect(ctx context.Context, cs kubernetes.Interface, namespace, release string) (*Info, error) {
	cur, err := cs.CoordinationV1().Leases(namespace).Get(ctx, Name(release), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, errs.Failedf("reading lock %s/%s: %w", namespace, Name(release), err)
	}
	holder, renewed := describe(cur)
	return &Info{Holder: holder, Renewed: renewed, Alive: !expired(cur) && !deadLocalHolder(holder), Mark: markOf(cur.Annotations)}, nil
}

// SetMark records m on the lease (nil clears it). The renewal updates the
// lease every few seconds too: a write that meets it (a conflict) is retried
// on the lease as it is now.
func (l *Lock) SetMark(ctx context.Context, m *Mark) error {
	leases := l.cs.CoordinationV1().Leases(l.namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := leases.Get(ctx, l.name, metav1.GetOptions{})
		if err != nil {
			return errs.Failedf("reading lock %s/%s: %w", l.namespace, l.name, err)
		}
		if cur.Spec.HolderIdentity == nil || *cur.Spec.HolderIdentity != l.holder {
			return errs.Preconditionf("lock %s/%s was taken by %s", l.namespace, l.name, *cur.Spec.HolderIdentity)
		}
		cur.Annotations = setMark(cur.Annotations, m)
		_, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	var typed *errs.Error
	if err != nil && !errors.As(err, &typed) { // the update's own error
		return errs.Failedf("updating lock %s/%s: %w", l.namespace, l.name, err)
	}
	if err != nil {
		return err
	}
	if m == nil {
		l.Inherited, l.keepInherited = nil, false
	}
	return nil
}

// EndMark ends this run's own marks: the lease carries again the mark it
// inherited from a killed run, while that one is still unresolved (nil
// Inherited: none).
func (l *Lock) EndMark(ctx context.Context) error {
	inherited, keep := l.Inherited, l.keepInherited
	err := l.SetMark(ctx, l.Inherited)
	l.Inherited, l.keepInherited = inherited, keep
	return err
}

// KeepInherited makes Release put an inherited mark back as it was found
// (holder, times and mark), instead of deleting the lease: the pending
// revision it explains was not recovered by this run.
func (l *Lock) KeepInherited() { l.keepInherited = l.Inherited != nil }

// ForgetObsolete forgets an inherited mark that explains nothing any more:
// a Helm step's whose revision is not pending (pending says so; the run was
// recovered, or finished, by other means). Release then deletes the lease
// instead of putting it back for good.
func (l *Lock) ForgetObsolete(pending func(rev int) bool) {
	if m := l.Inherited; m != nil && m.HelmStep() && !pending(m.Revision) {
		l.keepInherited = false
	}
}

// ForgetFinished forgets an inherited mark of step (StepMigrate, StepImport,
// StepRestore) once this run did that step's work again to its end: the
// killed run is finished. Release then deletes the lease.
func (l *Lock) ForgetFinished(step string) {
	if m := l.Inherited; m != nil && m.Step == step {
		l.keepInherited = false
	}
}

// ForgetInherited undoes KeepInherited: Release deletes the lease.
func (l *Lock) ForgetInherited() { l.keepInherited = false }

// Take is how every operation that changes a release takes its lock: Acquire,
// a line when the lease of a dead holder was taken over, and that holder's
// mark kept (a killed run's evidence, for its recovery) unless the caller
// learns it is obsolete and calls ForgetInherited.
func Take(ctx context.Context, cs kubernetes.Interface, namespace, release, operation string, log steplog.Func) (*Lock, error) {
	l, err := Acquire(ctx, cs, namespace, release, operation)
	if err != nil {
		return nil, err
	}
	if l.Stale != "" {
		log.Printf("WARNING: took over a stale lock from %s", l.Stale)
	}
	l.KeepInherited()
	return l, nil
}

// Acquire takes the lease for operation on release. A live lease of another
// holder is refused with who holds it and how to clear it.
func Acquire(ctx context.Context, cs kubernetes.Interface, namespace, release, operation string) (*Lock, error) {
	host, _ := os.Hostname()
	l := &Lock{cs: cs, namespace: namespace, name: Name(release),
		holder: fmt.Sprintf("%s %s pid %d", operation, host, os.Getpid()), stop: make(chan struct{})}
	now := metav1.NewMicroTime(time.Now())
	secs := int32(Duration / time.Second)
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: l.name, Namespace: namespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "helm-csghub", "app.kubernetes.io/instance": release}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &l.holder, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now},
	}
	leases := cs.CoordinationV1().Leases(namespace)
	_, err := leases.Create(ctx, lease, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		cur, gerr := leases.Get(ctx, l.name, metav1.GetOptions{})
		if gerr != nil {
			return nil, errs.Failedf("reading lock %s/%s: %w", namespace, l.name, gerr)
		}
		holder, renewed := describe(cur)
		if !expired(cur) && !deadLocalHolder(holder) {
			return nil, errs.Preconditionf("another operation holds the lock on release %q: %s (renewed %s ago); wait for it, or if it is dead: kubectl -n %s delete lease %s",
				release, holder, time.Since(renewed).Round(time.Second), namespace, l.name)
		}
		// the holder stopped renewing (killed): take over, keeping its name
		// for the report and its mark (annotations) as evidence
		l.Stale = fmt.Sprintf("%s (last renewed %s)", holder, renewed.UTC().Format(time.RFC3339))
		l.Inherited = markOf(cur.Annotations)
		l.staleSpec = cur.Spec.DeepCopy()
		cur.Spec = lease.Spec
		if _, err = leases.Update(ctx, cur, metav1.UpdateOptions{}); apierrors.IsConflict(err) {
			return nil, errs.Preconditionf("another operation took the lock on release %q just now", release)
		}
	}
	if apierrors.IsNotFound(err) {
		return nil, errs.NotFoundf("namespace %q not found (release %q)", namespace, release)
	}
	if apierrors.IsForbidden(err) {
		// a permission the run needs, like pods/exec: a precondition (exit 4)
		return nil, errs.Preconditionf("not allowed to take the release lock (create/update Lease %s/%s): %v", namespace, l.name, err)
	}
	if err != nil {
		return nil, errs.Failedf("taking lock %s/%s: %w", namespace, l.name, err)
	}
	l.renewed = now.Time
	l.wg.Add(1)
	go l.renew()
	return l, nil
}

// Held checks, before a change, that this run still holds its lease: a run
// stopped (SIGSTOP, a frozen VM) longer than the lease's duration may have
// been taken over, and must not go on. A lease past its renewal that no one
// took is renewed here. The error says what is stopped and why.
func (l *Lock) Held(ctx context.Context, before string) error {
	l.mu.Lock()
	lost, fresh := l.lost, time.Since(l.renewed) < Duration*2/3
	l.mu.Unlock()
	if lost == "" && fresh {
		return nil
	}
	if lost == "" {
		// not renewed in time: still ours if no one took it (renew it now)
		leases := l.cs.CoordinationV1().Leases(l.namespace)
		cur, err := leases.Get(ctx, l.name, metav1.GetOptions{})
		switch {
		case err != nil:
			lost = "its lease cannot be read: " + err.Error()
		case cur.Spec.HolderIdentity == nil || *cur.Spec.HolderIdentity != l.holder:
			lost, _ = describe(cur)
			lost = "taken over by " + lost
		default:
			now := metav1.NewMicroTime(time.Now())
			cur.Spec.RenewTime = &now
			if _, err := leases.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
				lost = "its lease cannot be renewed: " + err.Error()
			} else {
				l.mu.Lock()
				l.renewed = now.Time
				l.mu.Unlock()
				return nil
			}
		}
	}
	return errs.NeedsAttentionf("lost the lock on release %q (%s) while this run was stopped or cut off: stopped before %s; see `helm csghub status`",
		strings.TrimPrefix(l.name, "helm-csghub-"), lost, before)
}

func describe(l *coordinationv1.Lease) (string, time.Time) {
	holder := "unknown holder"
	if l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	var renewed time.Time
	if l.Spec.RenewTime != nil {
		renewed = l.Spec.RenewTime.Time
	}
	return holder, renewed
}

// deadLocalHolder reports a holder on this machine whose process is gone (a
// run killed with SIGKILL): no need to wait for its lease to expire.
func deadLocalHolder(holder string) bool {
	var op, host string
	var pid int
	if _, err := fmt.Sscanf(holder, "%s %s pid %d", &op, &host, &pid); err != nil || pid <= 0 {
		return false
	}
	me, _ := os.Hostname()
	return host == me && processGone(pid)
}

func expired(l *coordinationv1.Lease) bool {
	_, renewed := describe(l)
	d := Duration
	if l.Spec.LeaseDurationSeconds != nil {
		d = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	return time.Since(renewed) > d
}

func (l *Lock) renew() {
	defer l.wg.Done()
	t := time.NewTicker(Duration / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			cur, err := l.cs.CoordinationV1().Leases(l.namespace).Get(ctx, l.name, metav1.GetOptions{})
			switch {
			case err == nil && cur.Spec.HolderIdentity != nil && *cur.Spec.HolderIdentity == l.holder:
				now := metav1.NewMicroTime(time.Now())
				cur.Spec.RenewTime = &now
				if _, err := l.cs.CoordinationV1().Leases(l.namespace).Update(ctx, cur, metav1.UpdateOptions{}); err == nil {
					l.mu.Lock()
					l.renewed = now.Time
					l.mu.Unlock()
				}
			case err == nil || apierrors.IsNotFound(err):
				// another run took the lease over (or it was deleted): ours no more
				holder := "someone who deleted it"
				if err == nil {
					holder, _ = describe(cur)
				}
				l.mu.Lock()
				l.lost = "taken over by " + holder
				l.mu.Unlock()
			}
			cancel()
		}
	}
}

// Release stops renewing and deletes the lease (if still ours). It ignores the
// caller's cancellation: it runs on every exit path.
func (l *Lock) Release() {
	close(l.stop)
	l.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cur, err := l.cs.CoordinationV1().Leases(l.namespace).Get(ctx, l.name, metav1.GetOptions{})
	if err != nil || cur.Spec.HolderIdentity == nil || *cur.Spec.HolderIdentity != l.holder {
		return
	}
	if l.keepInherited && l.staleSpec != nil {
		// as found: the dead holder and its mark (not this run's own marks,
		// which describe steps that ended)
		cur.Spec = *l.staleSpec
		cur.Annotations = setMark(cur.Annotations, l.Inherited)
		_, _ = l.cs.CoordinationV1().Leases(l.namespace).Update(ctx, cur, metav1.UpdateOptions{})
		return
	}
	rv := cur.ResourceVersion
	_ = l.cs.CoordinationV1().Leases(l.namespace).Delete(ctx, l.name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
}
