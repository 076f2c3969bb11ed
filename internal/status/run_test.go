package status

import (
	"context"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	helmtime "helm.sh/helm/v3/pkg/time"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/lock"
	"github.com/opencsgs/helm-csghub/internal/netpol"
)

// run runs s and fails the test when status wrote anything to the cluster.
func run(ctx context.Context, t *testing.T, s *Status) (*Report, error) {
	t.Helper()
	cs := s.Clientset.(*fake.Clientset)
	cs.ClearActions()
	rep, err := s.Run(ctx)
	for _, a := range cs.Actions() {
		if v := a.GetVerb(); v != "get" && v != "list" && v != "watch" {
			t.Errorf("status wrote: %s %s", v, a.GetResource().Resource)
		}
	}
	return rep, err
}

func rel(version int, chartVersion string, st release.Status) *release.Release {
	return &release.Release{Name: "csghub", Namespace: "ns", Version: version,
		Info:  &release.Info{Status: st, LastDeployed: helmTime(version)},
		Chart: &chart.Chart{Metadata: &chart.Metadata{Name: "csghub", Version: chartVersion, AppVersion: "v" + chartVersion, APIVersion: "v2"}}}
}

func pod(ns, name string, ready bool, labels map[string]string) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}}}
}

func newStatus(t *testing.T, cs *fake.Clientset, revs ...*release.Release) *Status {
	t.Helper()
	st := storage.Init(driver.NewSecrets(cs.CoreV1().Secrets("ns")))
	for _, r := range revs {
		if err := st.Create(r); err != nil {
			t.Fatal(err)
		}
	}
	return &Status{Release: &helmenv.Release{Name: "csghub", Namespace: "ns", Helm: &action.Configuration{Releases: st}}, Clientset: cs}
}

// The report: newest revision, its chart, history length, n/m Ready pods per
// namespace (Job pods left out, knative-serving when present), a leftover
// NetworkPolicy and the lease with the advice for a pending release.
func TestRunReport(t *testing.T) {
	cs := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "knative-serving"}},
		pod("ns", "portal", true, nil), pod("ns", "server", false, nil),
		pod("ns", "migrate-x", false, map[string]string{"job-name": "migrate"}),
		pod("knative-serving", "activator", true, nil),
	)
	s := newStatus(t, cs, rel(1, "1.16.0", release.StatusSuperseded), rel(2, "1.17.0", release.StatusPendingUpgrade))
	ctx := context.Background()
	if _, err := netpol.Create(ctx, cs, "ns", "csghub"); err != nil {
		t.Fatal(err)
	}
	l, err := lock.Acquire(ctx, cs, "ns", "csghub", "upgrade")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	rep, err := run(ctx, t, s)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Revision != 2 || rep.ChartVersion != "1.17.0" || rep.AppVersion != "v1.17.0" || rep.Status != "pending-upgrade" || rep.History != 2 || rep.Namespace != "ns" || !rep.Updated.Equal(helmTime(2).Time) {
		t.Fatalf("report %+v", rep)
	}
	if len(rep.Pods) != 2 || rep.Pods[0].Ready != 1 || rep.Pods[0].Total != 2 || strings.Join(rep.Pods[0].NotReady, ",") != "server" ||
		rep.Pods[1].Namespace != "knative-serving" || rep.Pods[1].Ready != 1 || rep.Pods[1].Total != 1 {
		t.Fatalf("pods %+v", rep.Pods)
	}
	if rep.AllReady() {
		t.Fatal("AllReady with server not Ready")
	}
	if rep.BlockingPolicy == nil || !rep.BlockingPolicy.Ours {
		t.Fatalf("leftover NetworkPolicy not reported: %+v", rep.BlockingPolicy)
	}
	// issue 27 item 10: the policy of a run that is alive is not a leftover
	if h := rep.BlockingPolicy.Hint(); rep.BlockingPolicy.RunningBy == "" || !strings.Contains(h, "while a running helm csghub operation") || strings.Contains(h, "delete networkpolicy") {
		t.Fatalf("policy of a live run described as %q", h)
	}
	if rep.Lease == nil || !rep.Lease.Alive || !strings.Contains(rep.Todo, "revision 2 is pending-upgrade while upgrade") {
		t.Fatalf("lease %+v todo %q", rep.Lease, rep.Todo)
	}
}

// A healthy release: everything Ready, nothing to do, no leftovers.
func TestRunHealthy(t *testing.T) {
	cs := fake.NewClientset(pod("ns", "portal", true, nil))
	s := newStatus(t, cs, rel(1, "1.17.0", release.StatusDeployed))
	rep, err := run(context.Background(), t, s)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.AllReady() || rep.Todo != "" || rep.BlockingPolicy != nil || rep.Lease != nil || len(rep.Pods) != 1 || len(rep.ScaledDown) != 0 || len(rep.PGClients) != 0 {
		t.Fatalf("report %+v", rep)
	}
}

func TestRunReleaseNotFoundExit3(t *testing.T) {
	s := newStatus(t, fake.NewClientset())
	rep, err := run(context.Background(), t, s)
	if errs.ExitCode(err) != 3 || rep != nil || !strings.Contains(err.Error(), `release "csghub" not found in namespace "ns"`) {
		t.Fatalf("Run = %+v, %v (exit %d)", rep, err, errs.ExitCode(err))
	}
}

func TestLastGood(t *testing.T) {
	h := []*release.Release{rel(1, "a", release.StatusSuperseded), rel(2, "b", release.StatusDeployed),
		rel(3, "c", release.StatusFailed), rel(4, "d", release.StatusPendingUpgrade)}
	if got := lastGood(h); got != 2 {
		t.Fatalf("lastGood = %d, want 2 (3 failed, 4 pending)", got)
	}
	if got := lastGood(h[2:]); got != 0 {
		t.Fatalf("no good revision: %d", got)
	}
}

func helmTime(day int) helmtime.Time {
	return helmtime.Time{Time: time.Date(2026, 1, day, 0, 0, 0, 0, time.UTC)}
}

// Issue 27 item 10: a failed release gets a TO DO with the one command that
// goes back: the target of a failed rollback (its record is a copy of the
// target's manifest), else the newest revision that ran, never a failed
// upgrade a failed rollback marked superseded.
func TestRunFailedRelease(t *testing.T) {
	with := func(r *release.Release, manifest, desc string) *release.Release {
		r.Manifest, r.Info.Description = manifest, desc
		return r
	}
	for _, tc := range []struct {
		name string
		revs []*release.Release
		want string
	}{
		{"failed upgrade", []*release.Release{
			with(rel(1, "2.0.0", release.StatusDeployed), "a", "Install complete"),
			with(rel(2, "2.4.0", release.StatusFailed), "b", `Upgrade "csghub" failed: timed out`)},
			"revision 2 (chart 2.4.0) is failed (why: `helm csghub history`): once the cause is fixed, run `helm csghub rollback 1 -n ns` to roll back to revision 1 (chart 2.0.0) and restore its backup"},
		{"failed automatic rollback", []*release.Release{
			with(rel(1, "2.0.0", release.StatusSuperseded), "a", "Install complete"),
			with(rel(2, "2.0.0", release.StatusSuperseded), "c", "Upgrade complete"),
			with(rel(3, "2.4.0", release.StatusSuperseded), "b", `Upgrade "csghub" failed: timed out`),
			with(rel(4, "2.0.0", release.StatusFailed), "a", `Rollback "csghub" failed: field is immutable`)},
			"run `helm csghub rollback 1 -n ns` to roll back to revision 1 (chart 2.0.0)"},
		{"plain upgrade after a failed rollback", []*release.Release{
			with(rel(1, "2.0.0", release.StatusSuperseded), "a", "Install complete"),
			with(rel(2, "2.4.0", release.StatusSuperseded), "b", `Upgrade "csghub" failed: timed out`),
			with(rel(3, "2.0.0", release.StatusFailed), "a", `Rollback "csghub" failed: x`),
			with(rel(4, "2.4.0", release.StatusFailed), "d", `Upgrade "csghub" failed: y`)},
			"run `helm csghub rollback 1 -n ns` to roll back to revision 1"},
		{"failed install", []*release.Release{with(rel(1, "2.0.0", release.StatusFailed), "a", "Release failed")},
			"revision 1 (chart 2.0.0) is failed and no earlier revision was deployed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStatus(t, fake.NewClientset(), tc.revs...)
			rep, err := run(context.Background(), t, s)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(rep.Todo, tc.want) {
				t.Fatalf("TO DO %q\nwant %q", rep.Todo, tc.want)
			}
		})
	}

	// a run fixing it holds the lock: wait for it
	cs := fake.NewClientset()
	s := newStatus(t, cs, with(rel(1, "2.0.0", release.StatusSuperseded), "a", ""), with(rel(2, "2.4.0", release.StatusFailed), "b", ""))
	l, err := lock.Acquire(context.Background(), cs, "ns", "csghub", "rollback")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if rep, err := run(context.Background(), t, s); err != nil || rep.Todo != "revision 2 (chart 2.4.0) is failed while "+rep.Lease.Holder+" runs: wait for it" {
		t.Fatalf("failed while a run holds the lock: %v %q", err, rep.Todo)
	}
}
