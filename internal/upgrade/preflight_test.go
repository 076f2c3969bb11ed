package upgrade

import (
	"context"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/release"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/lock"
	"github.com/opencsgs/helm-csghub/internal/migrate"
	"github.com/opencsgs/helm-csghub/internal/netpol"
	"github.com/opencsgs/helm-csghub/internal/plan"
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

// Issue 27 item 2: the mark an upgrade leaves before its Helm step names the
// same upgrade again, with the flags that change what it does (not the
// defaults, never a --set value: only a note), the release and catalog.
func TestRerunMark(t *testing.T) {
	rel := &helmenv.Release{Name: "csghub", Namespace: "ns"}
	r := &run{Upgrade: &Upgrade{Release: rel, Plan: plan.Options{Release: rel}, BackupDir: "/b", Keep: backup.DefaultKeep,
		Timeout: DefaultTimeout, RollbackTimeout: 20 * time.Minute, VerifyTimeout: 45 * time.Second, ForceConflicts: true,
		MigrationSkip: map[*migrate.Switch]bool{{Flag: "skip-dataflow-logs"}: true}},
		p: &plan.Prepared{Target: &plan.Target{VersionS: "2.4.0"}, Release: &release.Release{Version: 7}}}
	m := r.rerunMark()
	want := "helm csghub upgrade --version 2.4.0 --skip-dataflow-logs --force-conflicts --rollback-timeout=20m0s --verify-timeout=45s -n ns --dir /b"
	if m.Step != lock.StepUpgrade || m.Operation != "upgrade" || m.From != 7 || m.Command != want || m.Note != "" {
		t.Fatalf("mark %+v\nwant command %s", m, want)
	}
	r.Plan.Values.Values = []string{"global.password=s3cret"}
	if m := r.rerunMark(); strings.Contains(m.Command, "s3cret") || !strings.Contains(m.Note, "--set") {
		t.Fatalf("a --set value: %+v", m)
	}
}
