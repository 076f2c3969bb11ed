package dbpod

import (
	"context"
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/opencsgs/helm-csghub/internal/kube"
)

// A client that fails to start deletes what it created: here the pod is
// refused after its Secret (holding the password) was stored.
func TestStartClientFailureRemovesSecret(t *testing.T) {
	cs := fake.NewSimpleClientset()
	cs.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("admission webhook refused")
	})
	srv := &Server{Host: "pg.example.com", Port: 5432, User: "csghub"}
	srv.SetPassword("s3cret")
	c, err := StartClient(context.Background(), ClientOptions{Kube: &kube.Client{Clientset: cs}, Namespace: "ns", Release: "csghub", Image: "postgres:15", Server: srv})
	if err == nil || c != nil {
		t.Fatalf("StartClient = %v, %v; want an error", c, err)
	}
	secs, _ := cs.CoreV1().Secrets("ns").List(context.Background(), metav1.ListOptions{})
	if len(secs.Items) != 0 {
		t.Fatalf("Secret left after a failed start: %s", secs.Items[0].Name)
	}
}
