package kube

import (
	"context"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// KnativeNamespace holds Knative Serving's pods, which the guide waits for too.
const KnativeNamespace = "knative-serving"

// NotJobPods is the guide's selector `-l '!job-name'`: Job pods run to completion
// and never become Ready, so they are left out of readiness.
const NotJobPods = "!job-name"

// PodSummary is the readiness of the long-running pods of one namespace.
type PodSummary struct {
	Namespace string   `json:"namespace"`
	Ready     int      `json:"ready"`
	Total     int      `json:"total"`
	NotReady  []string `json:"notReady,omitempty"`
}

// IsPodReady reports the pod's Ready condition.
func IsPodReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// CountsForReadiness reports whether a pod takes part in readiness: not a Job's
// pod (by label, as the guide, or by owner) and not finished.
func CountsForReadiness(p *corev1.Pod) bool {
	if _, ok := p.Labels["job-name"]; ok {
		return false
	}
	for _, o := range p.OwnerReferences {
		if o.Kind == "Job" {
			return false
		}
	}
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

// SummarizePods lists the namespace's long-running pods and counts the Ready ones.
func SummarizePods(ctx context.Context, cs kubernetes.Interface, ns string) (PodSummary, error) {
	sum := PodSummary{Namespace: ns}
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: NotJobPods})
	if err != nil {
		return sum, err
	}
	for i := range list.Items {
		p := &list.Items[i]
		if !CountsForReadiness(p) {
			continue
		}
		sum.Total++
		if IsPodReady(p) {
			sum.Ready++
		} else {
			sum.NotReady = append(sum.NotReady, p.Name)
		}
	}
	sort.Strings(sum.NotReady)
	return sum, nil
}

// NamespaceExists reports whether ns exists.
func NamespaceExists(ctx context.Context, cs kubernetes.Interface, ns string) (bool, error) {
	_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}
