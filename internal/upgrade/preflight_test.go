package upgrade

import (
	"context"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/lock"
	"github.com/opencsgs/helm-csghub/internal/netpol"
)

// Issue 27 item 10: preflight's refusal for the restore's NetworkPolicy.
// Without a live lease it is an interrupted restore's (the delete command);
// a dry run (no lock of its own) that meets a live lease calls it in use by
// that run (wait; never delete); a real upgrade holds the lease itself.
func TestPolicyRefusal(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	left := func() *netpol.Leftover { return &netpol.Leftover{Namespace: "ns", Name: netpol.Name, Ours: true} }
	err := policyRefusal(ctx, cs, "ns", "csghub", true, left())
	if errs.ExitCode(err) != 4 || !strings.Contains(err.Error(), "left by an interrupted restore") || !strings.Contains(err.Error(), "delete networkpolicy") {
		t.Fatalf("no run alive: %v", err)
	}
	l, err := lock.Acquire(ctx, cs, "ns", "csghub", "restore")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	err = policyRefusal(ctx, cs, "ns", "csghub", true, left())
	if errs.ExitCode(err) != 4 || !strings.Contains(err.Error(), "while a running helm csghub operation (restore ") || strings.Contains(err.Error(), "delete networkpolicy") {
		t.Fatalf("dry run while a restore runs: %v", err)
	}
	if err := policyRefusal(ctx, cs, "ns", "csghub", false, left()); !strings.Contains(err.Error(), "left by an interrupted restore") {
		t.Fatalf("an upgrade holding the lease: %v", err)
	}
}
