// Package readiness waits, by watching (informers, no sleep-polling), until the
// guide's condition holds: every pod that is not a Job's pod is Ready in the
// release namespace and in knative-serving, and every Deployment and
// StatefulSet there has rolled out. On timeout it explains each laggard.
package readiness

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/kube"
)

// Waiter waits for readiness.
type Waiter struct {
	Clientset  kubernetes.Interface
	Namespaces []string
	Timeout    time.Duration
	// Progress gets a live "n/m Ready" line (nil: silent).
	Progress io.Writer
}

// ForRelease waits for the pods of the release namespace ns and, when it
// exists, of knative-serving (CSGHub's Knative services run there).
func ForRelease(ctx context.Context, cs kubernetes.Interface, ns string, timeout time.Duration, progress io.Writer) (*Report, error) {
	nss := []string{ns}
	if ok, err := kube.NamespaceExists(ctx, cs, kube.KnativeNamespace); err == nil && ok && ns != kube.KnativeNamespace {
		nss = append(nss, kube.KnativeNamespace)
	}
	w := &Waiter{Clientset: cs, Namespaces: nss, Timeout: timeout, Progress: progress}
	return w.Wait(ctx)
}

// Laggard is a pod or workload that is not ready, with why.
type Laggard struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Reason    string `json:"reason"`
	LastEvent string `json:"lastEvent,omitempty"`
}

func (l Laggard) String() string {
	s := fmt.Sprintf("%s %s/%s: %s", l.Kind, l.Namespace, l.Name, l.Reason)
	if l.LastEvent != "" {
		s += " (last event: " + l.LastEvent + ")"
	}
	return s
}

// Report is the outcome of a wait.
type Report struct {
	Ready    int           `json:"readyPods"`
	Total    int           `json:"pods"`
	Waited   time.Duration `json:"waitedNs"`
	ReadyAt  time.Time     `json:"readyAt"`
	Laggards []Laggard     `json:"notReady,omitempty"`
}

type state struct {
	ready, total int
	laggards     []Laggard
}

// Wait blocks until everything is ready, ctx ends or Timeout passes.
func (w *Waiter) Wait(ctx context.Context) (*Report, error) {
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}
	type listers struct {
		pods   cache.Indexer
		deps   cache.Indexer
		stss   cache.Indexer
		ns     string
		synced []cache.InformerSynced
	}
	var all []listers
	stop := make(chan struct{})
	defer close(stop)
	for _, ns := range w.Namespaces {
		f := informers.NewSharedInformerFactoryWithOptions(w.Clientset, 0, informers.WithNamespace(ns))
		pi, di, si := f.Core().V1().Pods().Informer(), f.Apps().V1().Deployments().Informer(), f.Apps().V1().StatefulSets().Informer()
		for _, inf := range []cache.SharedIndexInformer{pi, di, si} {
			if _, err := inf.AddEventHandler(handler); err != nil {
				return nil, err
			}
		}
		f.Start(stop)
		all = append(all, listers{pods: pi.GetIndexer(), deps: di.GetIndexer(), stss: si.GetIndexer(), ns: ns,
			synced: []cache.InformerSynced{pi.HasSynced, di.HasSynced, si.HasSynced}})
	}
	for _, l := range all {
		if !cache.WaitForCacheSync(ctx.Done(), l.synced...) {
			return nil, w.timeoutErr(ctx, t0, nil)
		}
	}
	eval := func() state {
		var s state
		for _, l := range all {
			for _, o := range l.pods.List() {
				p := o.(*corev1.Pod)
				if !kube.CountsForReadiness(p) {
					continue
				}
				s.total++
				if kube.IsPodReady(p) {
					s.ready++
				} else {
					s.laggards = append(s.laggards, Laggard{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, Reason: podReason(p)})
				}
			}
			for _, o := range l.deps.List() {
				if why := deploymentNotRolledOut(o.(*appsv1.Deployment)); why != "" {
					d := o.(*appsv1.Deployment)
					s.laggards = append(s.laggards, Laggard{Kind: "Deployment", Namespace: d.Namespace, Name: d.Name, Reason: why})
				}
			}
			for _, o := range l.stss.List() {
				if why := statefulSetNotRolledOut(o.(*appsv1.StatefulSet)); why != "" {
					st := o.(*appsv1.StatefulSet)
					s.laggards = append(s.laggards, Laggard{Kind: "StatefulSet", Namespace: st.Namespace, Name: st.Name, Reason: why})
				}
			}
		}
		sort.Slice(s.laggards, func(i, j int) bool { return s.laggards[i].String() < s.laggards[j].String() })
		return s
	}
	tick := time.NewTicker(500 * time.Millisecond) // progress refresh only; readiness is event-driven
	defer tick.Stop()
	var last state
	for {
		last = eval()
		if len(last.laggards) == 0 && last.total > 0 {
			now := time.Now()
			w.progress(last, t0, "\n")
			return &Report{Ready: last.ready, Total: last.total, Waited: now.Sub(t0), ReadyAt: now}, nil
		}
		select {
		case <-changed:
		case <-tick.C:
			w.progress(last, t0, "")
		case <-ctx.Done():
			w.progress(last, t0, "\n")
			return nil, w.timeoutErr(ctx, t0, &last)
		}
	}
}

func (w *Waiter) progress(s state, t0 time.Time, end string) {
	if w.Progress == nil {
		return
	}
	slowest := ""
	for _, l := range s.laggards {
		if l.Kind == "Pod" {
			slowest = ", waiting for " + l.Namespace + "/" + l.Name
			break
		}
	}
	fmt.Fprintf(w.Progress, "\r\033[Kpods Ready %d/%d (%s)%s%s", s.ready, s.total, time.Since(t0).Round(time.Second), slowest, end)
}

// TimeoutError carries the laggards of a timed-out wait.
type TimeoutError struct {
	Waited   time.Duration
	Laggards []Laggard
}

func (e *TimeoutError) Error() string {
	var parts []string
	for _, l := range e.Laggards {
		parts = append(parts, l.String())
	}
	if len(parts) == 0 {
		return fmt.Sprintf("not ready after %s", e.Waited.Round(time.Second))
	}
	return fmt.Sprintf("not ready after %s: %s", e.Waited.Round(time.Second), strings.Join(parts, "; "))
}

func (w *Waiter) timeoutErr(ctx context.Context, t0 time.Time, s *state) error {
	if ctx.Err() == context.Canceled {
		return ctx.Err()
	}
	te := &TimeoutError{Waited: time.Since(t0)}
	if s != nil {
		te.Laggards = s.laggards
		for i := range te.Laggards {
			if te.Laggards[i].Kind == "Pod" {
				te.Laggards[i].LastEvent = lastEvent(w.Clientset, te.Laggards[i].Namespace, te.Laggards[i].Name)
			}
		}
	}
	return errs.Wrap(errs.Failed, te)
}

func podReason(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status != corev1.ConditionTrue {
			return strings.TrimSpace(fmt.Sprintf("%s %s", c.Reason, c.Message))
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Waiting != nil {
			return fmt.Sprintf("container %s %s %s", cs.Name, cs.State.Waiting.Reason, cs.State.Waiting.Message)
		}
	}
	if p.DeletionTimestamp != nil {
		return "terminating"
	}
	return "phase " + string(p.Status.Phase) + ", not Ready"
}

func deploymentNotRolledOut(d *appsv1.Deployment) string {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	switch {
	case st.ObservedGeneration < d.Generation:
		return "new spec not yet observed"
	case st.UpdatedReplicas < want:
		return fmt.Sprintf("%d of %d replicas updated", st.UpdatedReplicas, want)
	case st.Replicas > st.UpdatedReplicas:
		return fmt.Sprintf("%d old replicas pending termination", st.Replicas-st.UpdatedReplicas)
	case st.AvailableReplicas < st.UpdatedReplicas:
		return fmt.Sprintf("%d of %d updated replicas available", st.AvailableReplicas, st.UpdatedReplicas)
	}
	return ""
}

func statefulSetNotRolledOut(s *appsv1.StatefulSet) string {
	want := int32(1)
	if s.Spec.Replicas != nil {
		want = *s.Spec.Replicas
	}
	st := s.Status
	switch {
	case st.ObservedGeneration < s.Generation:
		return "new spec not yet observed"
	case st.ReadyReplicas < want:
		return fmt.Sprintf("%d of %d replicas ready", st.ReadyReplicas, want)
	case s.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType && st.UpdateRevision != "" && st.CurrentRevision != st.UpdateRevision:
		return fmt.Sprintf("%d of %d replicas updated", st.UpdatedReplicas, want)
	}
	return ""
}

// lastEvent is the newest event about a pod, as "Reason: message".
func lastEvent(cs kubernetes.Interface, ns, pod string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod})
	if err != nil || len(evs.Items) == 0 {
		return ""
	}
	sort.Slice(evs.Items, func(i, j int) bool { return eventTime(evs.Items[i]).Before(eventTime(evs.Items[j])) })
	e := evs.Items[len(evs.Items)-1]
	return strings.TrimSpace(e.Reason + ": " + e.Message)
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}
