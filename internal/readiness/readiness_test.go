package readiness

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/opencsgs/helm-csghub/internal/errs"
)

func pod(ns, name string, ready bool, phase corev1.PodPhase) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Status: corev1.PodStatus{Phase: phase,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
}

func waiting(p *corev1.Pod, reason string) *corev1.Pod {
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main",
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "back-off"}}}}
	return p
}

// Ready pods are counted; Job pods (by label or owner) and finished pods
// (Succeeded, Failed) take no part, even though they are not Ready.
func TestWaitCountsLongRunningPodsOnly(t *testing.T) {
	jobByLabel := pod("ns", "migrate-abc", false, corev1.PodRunning)
	jobByLabel.Labels = map[string]string{"job-name": "migrate"}
	jobByOwner := pod("ns", "init-xyz", false, corev1.PodRunning)
	jobByOwner.OwnerReferences = []metav1.OwnerReference{{Kind: "Job", Name: "init", APIVersion: "batch/v1"}}
	cs := fake.NewClientset(
		pod("ns", "portal", true, corev1.PodRunning),
		pod("ns", "server", true, corev1.PodRunning),
		pod("ns", "done", false, corev1.PodSucceeded),
		pod("ns", "crashed", false, corev1.PodFailed),
		jobByLabel, jobByOwner,
		pod("knative-serving", "activator", true, corev1.PodRunning),
		pod("elsewhere", "not-watched", false, corev1.PodRunning),
	)
	var out bytes.Buffer
	w := &Waiter{Clientset: cs, Namespaces: []string{"ns", "knative-serving"}, Timeout: 5 * time.Second, Progress: &out}
	rep, err := w.Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ready != 3 || rep.Total != 3 || len(rep.Laggards) != 0 || rep.ReadyAt.IsZero() {
		t.Fatalf("report %+v, want 3/3 Ready", rep)
	}
	if !strings.Contains(out.String(), "pods Ready 3/3") {
		t.Fatalf("progress %q lacks the n/m line", out.String())
	}
}

// Timeout: a Failed error (exit 1) naming each laggard, why it lags and its
// last event; the progress line showed n/m.
func TestWaitTimeoutNamesLaggards(t *testing.T) {
	now := metav1.Now()
	cs := fake.NewClientset(
		pod("ns", "portal", true, corev1.PodRunning),
		waiting(pod("ns", "server", false, corev1.PodRunning), "CrashLoopBackOff"),
		&corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "server.1", Namespace: "ns"},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "server", Namespace: "ns"},
			Reason:         "BackOff", Message: "restarting failed container", LastTimestamp: now},
	)
	var out bytes.Buffer
	w := &Waiter{Clientset: cs, Namespaces: []string{"ns"}, Timeout: time.Second, Progress: &out}
	t0 := time.Now()
	rep, err := w.Wait(context.Background())
	if rep != nil || err == nil {
		t.Fatalf("Wait = %+v, %v; want a timeout", rep, err)
	}
	if time.Since(t0) > 10*time.Second {
		t.Fatalf("timeout of 1s took %s", time.Since(t0))
	}
	if errs.KindOf(err) != errs.Failed || errs.ExitCode(err) != 1 {
		t.Fatalf("kind %v exit %d, want Failed/1", errs.KindOf(err), errs.ExitCode(err))
	}
	var te *TimeoutError
	if !errors.As(err, &te) || len(te.Laggards) != 1 {
		t.Fatalf("error %v: want one laggard", err)
	}
	l := te.Laggards[0]
	if l.Kind != "Pod" || l.Name != "server" || !strings.Contains(l.Reason, "CrashLoopBackOff") || l.LastEvent != "BackOff: restarting failed container" {
		t.Fatalf("laggard %+v", l)
	}
	if !strings.Contains(err.Error(), "not ready after") || !strings.Contains(err.Error(), "Pod ns/server") {
		t.Fatalf("message %q", err)
	}
	if !strings.Contains(out.String(), "pods Ready 1/2") || !strings.Contains(out.String(), "waiting for ns/server") {
		t.Fatalf("progress %q", out.String())
	}
}

// No pods at all is not "ready" (0/0): the wait runs to its timeout.
func TestWaitNoPodsIsNotReady(t *testing.T) {
	w := &Waiter{Clientset: fake.NewClientset(), Namespaces: []string{"ns"}, Timeout: 200 * time.Millisecond}
	if _, err := w.Wait(context.Background()); errs.KindOf(err) != errs.Failed {
		t.Fatalf("empty namespace: %v, want a timeout", err)
	}
}

// A pod that becomes Ready ends the wait (event-driven, well before the timeout).
func TestWaitEndsWhenPodBecomesReady(t *testing.T) {
	cs := fake.NewClientset(pod("ns", "server", false, corev1.PodRunning))
	go func() {
		time.Sleep(200 * time.Millisecond)
		_, _ = cs.CoreV1().Pods("ns").UpdateStatus(context.Background(), pod("ns", "server", true, corev1.PodRunning), metav1.UpdateOptions{})
	}()
	w := &Waiter{Clientset: cs, Namespaces: []string{"ns"}, Timeout: 10 * time.Second}
	rep, err := w.Wait(context.Background())
	if err != nil || rep.Ready != 1 || rep.Total != 1 {
		t.Fatalf("Wait = %+v, %v", rep, err)
	}
	if rep.Waited > 5*time.Second {
		t.Fatalf("waited %s for an update after 200ms", rep.Waited)
	}
}

// Ready pods are not enough: a Deployment or StatefulSet still rolling out
// is a laggard.
func TestWaitWorkloadsNotRolledOut(t *testing.T) {
	two := int32(2)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "portal", Namespace: "ns", Generation: 2},
		Spec:   appsv1.DeploymentSpec{Replicas: &two},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 2, AvailableReplicas: 2}}
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "postgresql", Namespace: "ns", Generation: 1},
		Spec:   appsv1.StatefulSetSpec{Replicas: &two},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 1, ReadyReplicas: 1}}
	cs := fake.NewClientset(pod("ns", "portal", true, corev1.PodRunning), dep, sts)
	w := &Waiter{Clientset: cs, Namespaces: []string{"ns"}, Timeout: time.Second}
	_, err := w.Wait(context.Background())
	var te *TimeoutError
	if !errors.As(err, &te) || len(te.Laggards) != 2 {
		t.Fatalf("error %v: want the two workloads as laggards", err)
	}
	got := te.Laggards[0].String() + "; " + te.Laggards[1].String()
	for _, want := range []string{"Deployment ns/portal: 1 old replicas pending termination", "StatefulSet ns/postgresql: 1 of 2 replicas ready"} {
		if !strings.Contains(got, want) {
			t.Fatalf("laggards %q lack %q", got, want)
		}
	}
}

func TestRolloutReasons(t *testing.T) {
	one := int32(1)
	cases := []struct {
		d    appsv1.Deployment
		want string
	}{
		{appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: 3}, Status: appsv1.DeploymentStatus{ObservedGeneration: 2}}, "new spec not yet observed"},
		{appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: &one}}, "0 of 1 replicas updated"},
		{appsv1.Deployment{Status: appsv1.DeploymentStatus{Replicas: 1, UpdatedReplicas: 1}}, "0 of 1 updated replicas available"},
		{appsv1.Deployment{Status: appsv1.DeploymentStatus{Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1}}, ""},
	}
	for _, c := range cases {
		if got := deploymentNotRolledOut(&c.d); got != c.want {
			t.Errorf("deployment %+v: %q, want %q", c.d.Status, got, c.want)
		}
	}
	s := &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Replicas: &one,
		UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType}},
		Status: appsv1.StatefulSetStatus{ReadyReplicas: 1, CurrentRevision: "a", UpdateRevision: "b"}}
	if got := statefulSetNotRolledOut(s); got != "0 of 1 replicas updated" {
		t.Errorf("rolling StatefulSet: %q", got)
	}
	s.Status.CurrentRevision = "b"
	if got := statefulSetNotRolledOut(s); got != "" {
		t.Errorf("rolled-out StatefulSet: %q", got)
	}
}

// Ctrl-C is not a timeout: the context's error comes back (exit 130).
func TestWaitCancelledIsInterrupted(t *testing.T) {
	cs := fake.NewClientset(pod("ns", "server", false, corev1.PodRunning))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	w := &Waiter{Clientset: cs, Namespaces: []string{"ns"}, Timeout: 10 * time.Second}
	_, err := w.Wait(ctx)
	if !errors.Is(err, context.Canceled) || errs.ExitCode(err) != 130 {
		t.Fatalf("cancelled wait: %v (exit %d), want context.Canceled/130", err, errs.ExitCode(err))
	}
}
