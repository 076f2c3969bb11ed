// Package netpol manages the NetworkPolicy that blocks traffic to PostgreSQL
// while a restore runs (the guide's `block-postgresql-access`), and finds one
// left behind by a run that was killed.
package netpol

import (
	"context"
	"fmt"
	"os"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/opencsgs/helm-csghub/internal/csghub"
)

// Name is the guide's policy name.
const Name = "block-postgresql-access"

const (
	managedByLabel = "app.kubernetes.io/managed-by"
	managedBy      = "helm-csghub"
	startedAnno    = "csghub.opencsg.com/restore-started"
	holderAnno     = "csghub.opencsg.com/restore-holder"
)

// Block is a created policy.
type Block struct {
	cs        kubernetes.Interface
	Namespace string
	// Adopted is true when the policy was already there (left by a killed run).
	Adopted bool
}

// Selector is the PostgreSQL pod's labels in the chart.
func Selector(release string) map[string]string {
	return csghub.PostgresLabels(release)
}

// Create blocks all ingress to the release's PostgreSQL pod: policy type Ingress
// with no rules. An existing policy of ours is adopted (and removed with Remove).
func Create(ctx context.Context, cs kubernetes.Interface, namespace, release string) (*Block, error) {
	host, _ := os.Hostname()
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Name:      Name,
			Namespace: namespace,
			Labels:    map[string]string{managedByLabel: managedBy},
			Annotations: map[string]string{
				startedAnno: time.Now().UTC().Format(time.RFC3339),
				holderAnno:  fmt.Sprintf("%s/pid %d", host, os.Getpid()),
			},
		},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: Selector(release)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{},
		},
	}
	// A signal arriving while the request is in flight must not leave a policy
	// the server created but the caller never learned of (and so never
	// removes): the call finishes on its own bounded context; the caller
	// checks its ctx right after.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, err := cs.NetworkingV1().NetworkPolicies(namespace).Create(cctx, np, metav1.CreateOptions{})
	if err != nil && ctx.Err() == nil {
		// unknown outcome (e.g. a timeout after the server stored it): look
		if _, gerr := cs.NetworkingV1().NetworkPolicies(namespace).Get(cctx, Name, metav1.GetOptions{}); gerr == nil && !apierrors.IsAlreadyExists(err) {
			return &Block{cs: cs, Namespace: namespace}, nil
		}
	}
	if apierrors.IsAlreadyExists(err) {
		return &Block{cs: cs, Namespace: namespace, Adopted: true}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("creating NetworkPolicy %s/%s: %w", namespace, Name, err)
	}
	return &Block{cs: cs, Namespace: namespace}, nil
}

// Remove deletes the policy. It runs on every exit path, so it ignores the
// caller's cancelled context and uses its own bounded one.
func (b *Block) Remove() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const attempts = 5
	var err error
	for i := 1; ; i++ {
		err = b.cs.NetworkingV1().NetworkPolicies(b.Namespace).Delete(ctx, Name, metav1.DeleteOptions{})
		if err == nil || apierrors.IsNotFound(err) || i == attempts {
			break
		}
		time.Sleep(time.Duration(i) * 300 * time.Millisecond)
	}
	if err == nil || apierrors.IsNotFound(err) {
		return nil
	}
	return fmt.Errorf("removing NetworkPolicy %s/%s: %w (remove it with: kubectl -n %s delete networkpolicy %s)",
		b.Namespace, Name, err, b.Namespace, Name)
}

// Leftover describes a blocking policy found outside a running restore.
type Leftover struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Started   string `json:"started,omitempty"`
	Holder    string `json:"holder,omitempty"`
	Ours      bool   `json:"createdByPlugin"`
	// RunningBy is the holder of the release lock when a run that is alive
	// holds it: the policy is that run's, not a leftover.
	RunningBy string `json:"runningBy,omitempty"`
}

// Hint is how an operator clears it (or, while the run that set it is
// alive, that it is in use).
func (l *Leftover) Hint() string {
	if l.RunningBy != "" {
		return fmt.Sprintf("NetworkPolicy %s/%s is blocking PostgreSQL while a running helm csghub operation (%s) restores it: wait for it to end; do not delete the policy",
			l.Namespace, l.Name, l.RunningBy)
	}
	return fmt.Sprintf("NetworkPolicy %s/%s is blocking PostgreSQL (left by an interrupted restore started %s by %s): "+
		"rerun `helm csghub restore` to finish the restore, or clear it with `kubectl -n %s delete networkpolicy %s`",
		l.Namespace, l.Name, orUnknown(l.Started), orUnknown(l.Holder), l.Namespace, l.Name)
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown run"
	}
	return s
}

// FindLeftover returns the blocking policy in namespace, or nil.
func FindLeftover(ctx context.Context, cs kubernetes.Interface, namespace string) (*Leftover, error) {
	np, err := cs.NetworkingV1().NetworkPolicies(namespace).Get(ctx, Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &Leftover{Namespace: namespace, Name: Name, Started: np.Annotations[startedAnno],
		Holder: np.Annotations[holderAnno], Ours: np.Labels[managedByLabel] == managedBy}, nil
}
