package quiesce

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func dep(name string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"app.kubernetes.io/instance": "rel"}},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"svc": name}}},
	}
}

func replicas(t *testing.T, cs *fake.Clientset, name string) (int32, map[string]string) {
	t.Helper()
	d, err := cs.AppsV1().Deployments("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return *d.Spec.Replicas, d.Annotations
}

func TestStopResumeAndLeftover(t *testing.T) {
	ctx := context.Background()
	other := dep("not-ours", 2)
	other.Labels = map[string]string{"app.kubernetes.io/instance": "another"}
	cs := fake.NewSimpleClientset(dep("server", 2), dep("idle", 0), other)
	g, err := Stop(ctx, cs, "ns", "rel", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n, a := replicas(t, cs, "server"); n != 0 || a[ReplicasAnno] != "2" {
		t.Fatalf("server after Stop: replicas %d annotations %v", n, a)
	}
	if n, _ := replicas(t, cs, "not-ours"); n != 2 {
		t.Fatalf("another release's workload scaled: %d", n)
	}
	// a killed run: the annotation is what is left; the next run adopts it
	left, err := FindLeftover(ctx, cs, "ns", "rel")
	if err != nil || len(left) != 1 || left[0].Name != "server" || left[0].Replicas != 2 {
		t.Fatalf("leftover %+v %v", left, err)
	}
	g2, err := Stop(ctx, cs, "ns", "rel", time.Second)
	if err != nil || len(g2.Adopted) != 1 {
		t.Fatalf("adopt: %+v %v", g2, err)
	}
	if err := g2.Resume(); err != nil {
		t.Fatal(err)
	}
	if n, a := replicas(t, cs, "server"); n != 2 || a[ReplicasAnno] != "" {
		t.Fatalf("server after Resume: replicas %d annotations %v", n, a)
	}
	if n, _ := replicas(t, cs, "idle"); n != 0 {
		t.Fatalf("idle workload changed: %d", n)
	}
	if err := g.Resume(); err != nil { // twice is safe
		t.Fatal(err)
	}
	if left, _ := FindLeftover(ctx, cs, "ns", "rel"); len(left) != 0 {
		t.Fatalf("left after Resume: %+v", left)
	}
}
