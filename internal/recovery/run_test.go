package recovery

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/release"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv/helmenvtest"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/lock"
)

// killedRun is a release left pending-upgrade at revision 2 (from 1) by an
// upgrade killed inside its Helm step: the lease it held, with its mark,
// stopped being renewed an hour ago. The run took no database backup.
func killedRun(t *testing.T, kc *kubefake.FailingKubeClient) (*Recovery, *fake.Clientset) {
	t.Helper()
	if kc == nil {
		kc = helmenvtest.Fake()
	}
	holder, secs := "upgrade elsewhere pid 1", int32(30)
	then := metav1.NewMicroTime(time.Now().Add(-time.Hour))
	cs := fake.NewClientset(
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: lock.Name("csghub"), Namespace: "ns", Annotations: map[string]string{
			"helm-csghub.opencsg.com/operation": "upgrade", "helm-csghub.opencsg.com/step": "helm-upgrade",
			"helm-csghub.opencsg.com/pending-revision": "2", "helm-csghub.opencsg.com/from-revision": "1", "helm-csghub.opencsg.com/backup": ""}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, AcquireTime: &then, RenewTime: &then}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "portal", Namespace: "ns"},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}})
	hr := helmenvtest.Memory(t, kc, helmenvtest.Rev(1, "1.0.0", release.StatusDeployed), helmenvtest.Rev(2, "2.0.0", release.StatusPendingUpgrade))
	live := helmenvtest.Live()
	return &Recovery{Release: hr, Kube: &kube.Client{Clientset: cs}, Dir: t.TempDir(), Timeout: 2 * time.Second, Live: &live}, cs
}

func plan(t *testing.T, r *Recovery) *Plan {
	t.Helper()
	p, err := r.Check(context.Background(), nil)
	if err != nil || p == nil || p.To.Version != 1 {
		t.Fatalf("Check = %+v, %v", p, err)
	}
	return p
}

// Recovered: rolled back to revision 1, the killed run's revision marked
// failed, the lease (and its mark) gone, pods awaited.
func TestRunRecovers(t *testing.T) {
	r, cs := killedRun(t, nil)
	res, err := r.Run(context.Background(), plan(t, r))
	if err != nil {
		t.Fatal(err)
	}
	if got := helmenvtest.History(t, r.Release); got != "1.0.0 superseded, 2.0.0 failed, 1.0.0 deployed" {
		t.Fatalf("history %s", got)
	}
	if res.NewRevision != 3 || len(res.Done) != 3 || !strings.Contains(res.Done[1], "the run took no database backup") || res.Done[2] != "1/1 pods Ready" {
		t.Fatalf("result %+v", res)
	}
	if info, _ := lock.Inspect(context.Background(), cs, "ns", "csghub"); info != nil {
		t.Fatalf("lease left: %+v", info)
	}
}

// Helm's rollback fails: exit 6, and the killed run's lease put back with
// its mark for the next try.
func TestRunHelmRollbackFailsKeepsTheEvidence(t *testing.T) {
	kc := helmenvtest.Fake()
	kc.UpdateError = errors.New("admission webhook denied")
	r, cs := killedRun(t, kc)
	_, err := r.Run(context.Background(), plan(t, r))
	if errs.ExitCode(err) != 6 || !strings.Contains(err.Error(), "recovering: helm rollback to revision 1: ") || !strings.Contains(err.Error(), "admission webhook denied") {
		t.Fatalf("Run = %v (exit %d)", err, errs.ExitCode(err))
	}
	info, _ := lock.Inspect(context.Background(), cs, "ns", "csghub")
	if info == nil || info.Alive || info.Mark == nil || info.Mark.Revision != 2 || info.Holder != "upgrade elsewhere pid 1" {
		t.Fatalf("the killed run's lease was not put back: %+v", info)
	}
	// Helm wrote its failed revision 3; the mark stays for the next try
	if got := helmenvtest.History(t, r.Release); got != "1.0.0 deployed, 2.0.0 superseded, 1.0.0 failed" {
		t.Fatalf("history %s", got)
	}
}

// Rolled back, pods not Ready within --timeout: exit 6 saying what was
// done; the killed run's mark is cleared (its revision is recovered).
func TestRunNotReadyAfterRecovery(t *testing.T) {
	r, cs := killedRun(t, nil)
	if err := cs.CoreV1().Pods("ns").Delete(context.Background(), "portal", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods("ns").Create(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "portal", Namespace: "ns"},
		Status: corev1.PodStatus{Phase: corev1.PodPending}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.Timeout = 500 * time.Millisecond
	_, err := r.Run(context.Background(), plan(t, r))
	if errs.ExitCode(err) != 6 || !strings.Contains(err.Error(), "recovered (pending revision 2 rolled back to revision 1") || !strings.Contains(err.Error(), "but not ready") {
		t.Fatalf("Run = %v (exit %d)", err, errs.ExitCode(err))
	}
	if info, _ := lock.Inspect(context.Background(), cs, "ns", "csghub"); info != nil {
		t.Fatalf("lease left: %+v", info)
	}
	if got := helmenvtest.History(t, r.Release); got != "1.0.0 superseded, 2.0.0 failed, 1.0.0 deployed" {
		t.Fatalf("history %s", got)
	}
}

// Issue 27 item 1: the killed run was upgrading to a chart that renames the
// init Job (2.4.0: csghub-casdoor-migrate); revision 1's csghub-casdoor,
// finished, still exists. It is not in the pending revision's manifest, so
// Helm would patch the live Job ("field is immutable"): the recovery deletes
// it first, against the manifests of revision 1 (rolled back to) and the
// pending revision 2, and Helm recreates it.
func TestRunClearsJobRenamedBack(t *testing.T) {
	r, _ := killedRun(t, nil)
	for v, job := range map[int]string{1: "csghub-casdoor", 2: "csghub-casdoor-migrate"} {
		rel, err := r.Release.Helm.Releases.Get("csghub", v)
		if err != nil {
			t.Fatal(err)
		}
		rel.Manifest += helmenvtest.JobManifest(job, "casdoor:v"+rel.Chart.Metadata.Version)
		if err := r.Release.Helm.Releases.Update(rel); err != nil {
			t.Fatal(err)
		}
	}
	live := helmenvtest.Live(helmenvtest.FinishedJob("csghub-casdoor", "casdoor:v1.0.0"))
	r.Live = &live
	if _, err := r.Run(context.Background(), plan(t, r)); err != nil {
		t.Fatal(err)
	}
	jobs := schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
	if _, err := live.Dynamic.Resource(jobs).Namespace("ns").Get(context.Background(), "csghub-casdoor", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("revision 1's finished Job csghub-casdoor was not deleted before the Helm rollback: %v", err)
	}
}

// Issue 27 item 2: a `helm csghub rollback 1` killed inside its Helm step
// left revision 3 pending-rollback, its lease marked (from revision 2, to
// revision 1). The recovery finishes that rollback: back to revision 1 (not
// to 2, where the killed run came from), revision 3 marked failed.
func TestRunRecoversKilledRollback(t *testing.T) {
	kc := helmenvtest.Fake()
	holder, secs := "rollback elsewhere pid 1", int32(30)
	then := metav1.NewMicroTime(time.Now().Add(-time.Hour))
	cs := fake.NewClientset(
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: lock.Name("csghub"), Namespace: "ns", Annotations: map[string]string{
			"helm-csghub.opencsg.com/operation": "rollback", "helm-csghub.opencsg.com/step": "rollback",
			"helm-csghub.opencsg.com/pending-revision": "3", "helm-csghub.opencsg.com/from-revision": "2",
			"helm-csghub.opencsg.com/rollback-to": "1", "helm-csghub.opencsg.com/backup": ""}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, AcquireTime: &then, RenewTime: &then}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "portal", Namespace: "ns"},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}})
	hr := helmenvtest.Memory(t, kc, helmenvtest.Rev(1, "1.0.0", release.StatusSuperseded), helmenvtest.Rev(2, "2.0.0", release.StatusDeployed),
		helmenvtest.Rev(3, "1.0.0", release.StatusPendingRollback))
	live := helmenvtest.Live()
	r := &Recovery{Release: hr, Kube: &kube.Client{Clientset: cs}, Dir: t.TempDir(), Timeout: 2 * time.Second, Live: &live}
	p, err := r.Check(context.Background(), nil)
	if err != nil || p == nil || p.To.Version != 1 || p.Pending.Version != 3 {
		t.Fatalf("Check = %+v, %v; want pending 3 recovered to 1", p, err)
	}
	res, err := r.Run(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if got := helmenvtest.History(t, hr); got != "1.0.0 superseded, 2.0.0 superseded, 1.0.0 failed, 1.0.0 deployed" {
		t.Fatalf("history %s", got)
	}
	if res.NewRevision != 4 {
		t.Fatalf("result %+v", res)
	}
	if info, _ := lock.Inspect(context.Background(), cs, "ns", "csghub"); info != nil {
		t.Fatalf("lease left: %+v", info)
	}
}
