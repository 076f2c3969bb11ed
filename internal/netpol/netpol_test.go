package netpol

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

var npResource = schema.GroupResource{Group: "networking.k8s.io", Resource: "networkpolicies"}

func policies(t *testing.T, cs *fake.Clientset, ns string) []networkingv1.NetworkPolicy {
	t.Helper()
	l, err := cs.NetworkingV1().NetworkPolicies(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// The policy selects exactly the release's PostgreSQL pod and denies all
// ingress (type Ingress, no rules); Remove deletes it and is idempotent.
func TestCreateBlocksPostgresAndRemoveDeletes(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	b, err := Create(ctx, cs, "ns", "rel")
	if err != nil {
		t.Fatal(err)
	}
	if b.Adopted || b.Namespace != "ns" {
		t.Fatalf("block %+v", b)
	}
	nps := policies(t, cs, "ns")
	if len(nps) != 1 {
		t.Fatalf("%d policies, want 1", len(nps))
	}
	np := nps[0]
	want := map[string]string{"app.kubernetes.io/instance": "rel", "app.kubernetes.io/name": "csghub", "app.kubernetes.io/service": "postgresql"}
	if np.Name != Name || !reflect.DeepEqual(np.Spec.PodSelector.MatchLabels, want) || len(np.Spec.PodSelector.MatchExpressions) != 0 {
		t.Fatalf("policy %s selects %+v, want %v", np.Name, np.Spec.PodSelector, want)
	}
	if !reflect.DeepEqual(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) || len(np.Spec.Ingress) != 0 {
		t.Fatalf("policy does not deny all ingress: types %v rules %v", np.Spec.PolicyTypes, np.Spec.Ingress)
	}
	if np.Labels[managedByLabel] != managedBy || np.Annotations[startedAnno] == "" || !strings.Contains(np.Annotations[holderAnno], "pid ") {
		t.Fatalf("policy not marked as ours: labels %v annotations %v", np.Labels, np.Annotations)
	}
	if got := policies(t, cs, "other"); len(got) != 0 {
		t.Fatalf("policy created in another namespace: %v", got)
	}
	if err := b.Remove(); err != nil {
		t.Fatal(err)
	}
	if got := policies(t, cs, "ns"); len(got) != 0 {
		t.Fatalf("policy left after Remove: %v", got)
	}
	// every exit path calls Remove, some twice: a second call is a no-op
	if err := b.Remove(); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}

// Remove runs on the way out of a cancelled (Ctrl-C) run: it must not use
// the caller's context.
func TestRemoveAfterCallerCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cs := fake.NewClientset()
	b, err := Create(ctx, cs, "ns", "rel")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := b.Remove(); err != nil {
		t.Fatal(err)
	}
	if got := policies(t, cs, "ns"); len(got) != 0 {
		t.Fatalf("policy left after a cancelled run: %v", got)
	}
}

// A policy left by a killed run is adopted, not an error, and the adopting
// run removes it.
func TestCreateAdoptsLeftover(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	if _, err := Create(ctx, cs, "ns", "rel"); err != nil {
		t.Fatal(err)
	}
	b, err := Create(ctx, cs, "ns", "rel")
	if err != nil {
		t.Fatal(err)
	}
	if !b.Adopted {
		t.Fatal("existing policy not reported as adopted")
	}
	if err := b.Remove(); err != nil {
		t.Fatal(err)
	}
	if got := policies(t, cs, "ns"); len(got) != 0 {
		t.Fatalf("adopted policy not removed: %v", got)
	}
}

// A create whose answer is lost (the server stored it, the client saw a
// timeout) must still hand back a Block, or nobody would remove the policy.
func TestCreateUnknownOutcomeStillRemovable(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	cs.PrependReactor("create", "networkpolicies", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj := a.(k8stesting.CreateAction).GetObject()
		if err := cs.Tracker().Create(a.GetResource(), obj, a.GetNamespace()); err != nil {
			t.Fatal(err)
		}
		return true, nil, apierrors.NewTimeoutError("request timed out", 1)
	})
	b, err := Create(ctx, cs, "ns", "rel")
	if err != nil || b == nil || b.Adopted {
		t.Fatalf("Create after a lost answer: %+v %v", b, err)
	}
	if err := b.Remove(); err != nil {
		t.Fatal(err)
	}
	if got := policies(t, cs, "ns"); len(got) != 0 {
		t.Fatalf("policy left: %v", got)
	}
}

// A refused create surfaces the API error (kept for errors.Is/As) and
// leaves nothing behind.
func TestCreateAPIErrorSurfaces(t *testing.T) {
	cs := fake.NewClientset()
	forbidden := apierrors.NewForbidden(npResource, Name, errors.New("no RBAC"))
	cs.PrependReactor("create", "networkpolicies", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, forbidden
	})
	b, err := Create(context.Background(), cs, "ns", "rel")
	if err == nil || b != nil {
		t.Fatalf("Create = %+v, %v; want an error", b, err)
	}
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "creating NetworkPolicy ns/"+Name) {
		t.Fatalf("error %q does not carry the API error", err)
	}
	if got := policies(t, cs, "ns"); len(got) != 0 {
		t.Fatalf("policy left after a failed create: %v", got)
	}
}

// Remove retries a failing delete, then gives up with the API error and the
// kubectl command that clears the policy by hand.
func TestRemoveRetriesThenSurfacesAPIError(t *testing.T) {
	cs := fake.NewClientset()
	b, err := Create(context.Background(), cs, "ns", "rel")
	if err != nil {
		t.Fatal(err)
	}
	fails := 2
	cs.PrependReactor("delete", "networkpolicies", func(k8stesting.Action) (bool, runtime.Object, error) {
		if fails > 0 {
			fails--
			return true, nil, apierrors.NewServiceUnavailable("etcd leader changed")
		}
		return false, nil, nil
	})
	if err := b.Remove(); err != nil {
		t.Fatalf("Remove after two transient failures: %v", err)
	}
	if got := policies(t, cs, "ns"); len(got) != 0 {
		t.Fatalf("policy left: %v", got)
	}

	b, err = Create(context.Background(), cs, "ns", "rel")
	if err != nil {
		t.Fatal(err)
	}
	deletes := 0
	cs.PrependReactor("delete", "networkpolicies", func(k8stesting.Action) (bool, runtime.Object, error) {
		deletes++
		return true, nil, apierrors.NewForbidden(npResource, Name, errors.New("no RBAC"))
	})
	err = b.Remove()
	if err == nil || !apierrors.IsForbidden(err) {
		t.Fatalf("Remove = %v, want the API error", err)
	}
	if !strings.Contains(err.Error(), "kubectl -n ns delete networkpolicy "+Name) {
		t.Fatalf("error %q lacks the manual fix", err)
	}
	if deletes != 5 {
		t.Fatalf("%d delete attempts, want 5", deletes)
	}
}

func TestFindLeftover(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	if l, err := FindLeftover(ctx, cs, "ns"); l != nil || err != nil {
		t.Fatalf("no policy: %+v %v", l, err)
	}
	if _, err := Create(ctx, cs, "ns", "rel"); err != nil {
		t.Fatal(err)
	}
	l, err := FindLeftover(ctx, cs, "ns")
	if err != nil || l == nil || !l.Ours || l.Started == "" || l.Holder == "" || l.Namespace != "ns" {
		t.Fatalf("leftover %+v %v", l, err)
	}
	if !strings.Contains(l.Hint(), "kubectl -n ns delete networkpolicy "+Name) {
		t.Fatalf("hint %q", l.Hint())
	}
	// someone else's policy of the same name: found, not claimed as ours
	other := fake.NewClientset(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: Name, Namespace: "ns"}})
	l, err = FindLeftover(ctx, other, "ns")
	if err != nil || l == nil || l.Ours || !strings.Contains(l.Hint(), "an unknown run") {
		t.Fatalf("foreign leftover %+v %v", l, err)
	}
	cs.PrependReactor("get", "networkpolicies", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(npResource, Name, errors.New("no RBAC"))
	})
	if _, err := FindLeftover(ctx, cs, "ns"); !apierrors.IsForbidden(err) {
		t.Fatalf("API error not surfaced: %v", err)
	}
}
