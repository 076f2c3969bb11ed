// Package lock keeps two plugin operations (upgrade, rollback, restore) from
// running on one release at once, with a coordination.k8s.io Lease in the
// release namespace: visible to every operator with kubectl, renewed while the
// operation runs, and taken over only once its holder stopped renewing it.
package lock

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/opencsgs/helm-csghub/internal/errs"
)

// Duration is how long a lease stays valid without renewal.
const Duration = 30 * time.Second

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
		// the holder stopped renewing (killed): take over, keeping its name for the report
		l.Stale = fmt.Sprintf("%s (last renewed %s)", holder, renewed.UTC().Format(time.RFC3339))
		cur.Spec = lease.Spec
		if _, err = leases.Update(ctx, cur, metav1.UpdateOptions{}); apierrors.IsConflict(err) {
			return nil, errs.Preconditionf("another operation took the lock on release %q just now", release)
		}
	}
	if apierrors.IsNotFound(err) {
		return nil, errs.NotFoundf("namespace %q not found (release %q)", namespace, release)
	}
	if err != nil {
		return nil, errs.Failedf("taking lock %s/%s: %w", namespace, l.name, err)
	}
	l.wg.Add(1)
	go l.renew()
	return l, nil
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
			if err == nil && cur.Spec.HolderIdentity != nil && *cur.Spec.HolderIdentity == l.holder {
				now := metav1.NewMicroTime(time.Now())
				cur.Spec.RenewTime = &now
				_, _ = l.cs.CoordinationV1().Leases(l.namespace).Update(ctx, cur, metav1.UpdateOptions{})
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
	rv := cur.ResourceVersion
	_ = l.cs.CoordinationV1().Leases(l.namespace).Delete(ctx, l.name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
}
