// Package quiesce stops a release's writers while its external database is
// restored: a NetworkPolicy cannot fence a server outside the cluster, so every
// Deployment and StatefulSet of the release is scaled to 0 and back. The
// replicas to go back to are kept on each object (an annotation) before it is
// scaled down, so a run killed in between is found again and undone by the
// next one.
package quiesce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/opencsgs/helm-csghub/internal/csghub"
)

// Annotations on a scaled-down workload.
const (
	ReplicasAnno = "csghub.opencsg.com/replicas-before-restore"
	holderAnno   = "csghub.opencsg.com/scaled-down-by"
)

// Workload is one Deployment or StatefulSet and the replicas it had.
type Workload struct {
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Replicas int32  `json:"replicas"`
	Holder   string `json:"scaledDownBy,omitempty"`
}

func (w Workload) String() string { return fmt.Sprintf("%s/%s", strings.ToLower(w.Kind), w.Name) }

// Guard is a set of scaled-down workloads; Resume scales them back.
type Guard struct {
	cs        kubernetes.Interface
	Namespace string
	Workloads []Workload
	// Adopted were already scaled down by a run that was killed.
	Adopted []Workload
}

// Selector picks the release's workloads (the chart labels every object so).
func Selector(release string) string { return csghub.InstanceSelector(release) }

// Stop scales every Deployment and StatefulSet of release in ns to 0 and
// waits until their pods are gone (at most wait). Each one is annotated with
// its replicas in the same patch that scales it. On error the guard returned
// (never nil) holds what was scaled down: the caller resumes it.
func Stop(ctx context.Context, cs kubernetes.Interface, ns, release string, wait time.Duration) (*Guard, error) {
	g := &Guard{cs: cs, Namespace: ns}
	found, err := list(ctx, cs, ns, release)
	if err != nil {
		return g, err
	}
	host, _ := os.Hostname()
	holder := fmt.Sprintf("%s/pid %d at %s", host, os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	var selectors []string
	for _, o := range found {
		w := o.Workload
		if w.Holder != "" { // left by a killed run: keep its replicas
			g.Adopted = append(g.Adopted, w)
		} else if o.replicas == 0 {
			continue // nothing runs; nothing to give back
		} else {
			w.Replicas = o.replicas
			w.Holder = holder
		}
		patch := map[string]any{
			"metadata": map[string]any{"annotations": map[string]any{
				ReplicasAnno: strconv.Itoa(int(w.Replicas)), holderAnno: w.Holder}},
			"spec": map[string]any{"replicas": 0},
		}
		// finish the request even on Ctrl-C, so that the guard knows of every
		// object the server changed; the caller's ctx is checked after
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		err := patchWorkload(pctx, cs, ns, w, patch)
		cancel()
		if err != nil {
			return g, fmt.Errorf("scaling %s to 0: %w", w, err)
		}
		g.Workloads = append(g.Workloads, w)
		selectors = append(selectors, o.selector)
		if ctx.Err() != nil {
			return g, ctx.Err()
		}
	}
	return g, waitGone(ctx, cs, ns, selectors, wait)
}

// Resume scales every workload of the guard back to its replicas and drops
// the annotations. It runs on every exit path, so it uses its own bounded
// context. Safe to call twice.
func (g *Guard) Resume() error {
	if g == nil || len(g.Workloads) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var failed []string
	var errsList []error
	for _, w := range g.Workloads {
		patch := map[string]any{
			"metadata": map[string]any{"annotations": map[string]any{ReplicasAnno: nil, holderAnno: nil}},
			"spec":     map[string]any{"replicas": w.Replicas},
		}
		var err error
		for i := 0; i < 5; i++ {
			if err = patchWorkload(ctx, g.cs, g.Namespace, w, patch); err == nil {
				break
			}
			time.Sleep(time.Duration(i+1) * 300 * time.Millisecond)
		}
		if err != nil {
			failed = append(failed, fmt.Sprintf("kubectl -n %s scale %s --replicas=%d", g.Namespace, w, w.Replicas))
			errsList = append(errsList, err)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("scaling back: %v (run: %s)", errors.Join(errsList...), strings.Join(failed, "; "))
	}
	g.Workloads = nil
	return nil
}

// Names lists the guard's workloads as kind/name.
func (g *Guard) Names() []string {
	var out []string
	for _, w := range g.Workloads {
		out = append(out, w.String())
	}
	return out
}

// FindLeftover lists the release's workloads still scaled down by a run that
// did not finish.
func FindLeftover(ctx context.Context, cs kubernetes.Interface, ns, release string) ([]Workload, error) {
	found, err := list(ctx, cs, ns, release)
	if err != nil {
		return nil, err
	}
	var out []Workload
	for _, o := range found {
		if o.Holder != "" {
			out = append(out, o.Workload)
		}
	}
	return out, nil
}

// Hint tells the operator how to clear leftovers.
func Hint(ns string, left []Workload) string {
	var names, cmds []string
	for _, w := range left {
		names = append(names, fmt.Sprintf("%s (was %d)", w, w.Replicas))
		cmds = append(cmds, fmt.Sprintf("kubectl -n %s scale %s --replicas=%d", ns, w, w.Replicas))
	}
	return fmt.Sprintf("scaled down by an interrupted restore: %s; rerun `helm csghub restore` (or the rollback) to finish it and scale them back, or: %s",
		strings.Join(names, ", "), strings.Join(cmds, "; "))
}

type found struct {
	Workload
	replicas int32
	selector string
}

func list(ctx context.Context, cs kubernetes.Interface, ns, release string) ([]found, error) {
	opts := metav1.ListOptions{LabelSelector: Selector(release)}
	deps, err := cs.AppsV1().Deployments(ns).List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("listing Deployments: %w", err)
	}
	sts, err := cs.AppsV1().StatefulSets(ns).List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("listing StatefulSets: %w", err)
	}
	var out []found
	add := func(kind string, m metav1.ObjectMeta, replicas *int32, sel *metav1.LabelSelector) {
		f := found{Workload: Workload{Kind: kind, Name: m.Name}, replicas: 1}
		if replicas != nil {
			f.replicas = *replicas
		}
		if v, ok := m.Annotations[ReplicasAnno]; ok {
			n, _ := strconv.Atoi(v)
			f.Replicas = int32(n)
			f.Holder = m.Annotations[holderAnno]
			if f.Holder == "" {
				f.Holder = "unknown"
			}
		}
		if s, err := metav1.LabelSelectorAsSelector(sel); err == nil {
			f.selector = s.String()
		}
		out = append(out, f)
	}
	for _, d := range deps.Items {
		add("Deployment", d.ObjectMeta, d.Spec.Replicas, d.Spec.Selector)
	}
	for _, s := range sts.Items {
		add("StatefulSet", s.ObjectMeta, s.Spec.Replicas, s.Spec.Selector)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

func patchWorkload(ctx context.Context, cs kubernetes.Interface, ns string, w Workload, patch map[string]any) error {
	data, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	switch w.Kind {
	case "Deployment":
		_, err = cs.AppsV1().Deployments(ns).Patch(ctx, w.Name, types.MergePatchType, data, metav1.PatchOptions{})
	case "StatefulSet":
		_, err = cs.AppsV1().StatefulSets(ns).Patch(ctx, w.Name, types.MergePatchType, data, metav1.PatchOptions{})
	default:
		err = fmt.Errorf("unknown kind %s", w.Kind)
	}
	return err
}

// waitGone waits until no unfinished pod matches any of the selectors
// (terminating pods count: their sessions may still be open).
func waitGone(ctx context.Context, cs kubernetes.Interface, ns string, selectors []string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		var left []string
		for _, sel := range selectors {
			if sel == "" {
				continue
			}
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				continue
			}
			for _, p := range pods.Items {
				// a finished pod (an init Job's, selected by the same labels)
				// holds no session
				if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
					continue
				}
				left = append(left, p.Name)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			sort.Strings(left)
			return fmt.Errorf("pods still running %s after scaling to 0: %s", wait, strings.Join(left, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
