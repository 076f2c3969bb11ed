package verify

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/kube"
)

func podOf(name string, ready bool, labels map[string]string, owner string) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: labels},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}}}
	if owner != "" {
		ctl := true
		p.OwnerReferences = []metav1.OwnerReference{{Kind: owner, Name: "x", Controller: &ctl}}
	}
	return p
}

func slice(svc string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: svc + "-abcde", Namespace: "ns",
		Labels: map[string]string{discoveryv1.LabelServiceName: svc}}, AddressType: discoveryv1.AddressTypeIPv4, Endpoints: eps}
}

func endpoint(pod string, ready bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: pod}}
}

// Issue 27 item 13: the chart's init Job pods carry their component
// Service's selector labels and may be Ready (a migration still running);
// verify must pick a pod the way the Service's endpoints do (a ready
// endpoint of its EndpointSlices), never the Job's pod.
func TestServicePodIsAReadyEndpointNotAJobPod(t *testing.T) {
	sel := map[string]string{"app.kubernetes.io/instance": "csghub", "app.kubernetes.io/name": "server"}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "csghub-server", Namespace: "ns"},
		Spec: corev1.ServiceSpec{Selector: sel, Ports: []corev1.ServicePort{{Port: 8080}}}}
	jobLabels := map[string]string{"app.kubernetes.io/instance": "csghub", "app.kubernetes.io/name": "server", "job-name": "csghub-server"}
	objs := []runtime.Object{svc,
		podOf("csghub-server-aaaaa", true, jobLabels, "Job"), // the init Job's pod, Ready, listed first
		podOf("csghub-server-bbbbb", false, sel, "ReplicaSet"),
		podOf("csghub-server-ccccc", true, sel, "ReplicaSet"),
		slice("csghub-server", endpoint("csghub-server-bbbbb", false), endpoint("csghub-server-ccccc", true)),
	}
	v := &Verify{Release: &helmenv.Release{Name: "csghub", Namespace: "ns"}, Kube: &kube.Client{Clientset: fake.NewClientset(objs...)}}
	pod, err := v.servicePod(context.Background(), svc)
	if err != nil || pod.Name != "csghub-server-ccccc" {
		t.Fatalf("picked %v, %v; want the ready endpoint csghub-server-ccccc", podName(pod), err)
	}
	// no ready endpoint: refused, naming the Service (a Job's Ready pod is no way in)
	v.Kube.Clientset = fake.NewClientset(svc, podOf("csghub-server-aaaaa", true, jobLabels, "Job"),
		slice("csghub-server", endpoint("csghub-server-bbbbb", false)))
	if pod, err := v.servicePod(context.Background(), svc); err == nil || !strings.Contains(err.Error(), "no ready endpoint of service csghub-server") {
		t.Fatalf("picked %v, %v; want no ready endpoint", podName(pod), err)
	}
}

func podName(p *corev1.Pod) string {
	if p == nil {
		return "<none>"
	}
	return p.Name
}
