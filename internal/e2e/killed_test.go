package e2e

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/opencsgs/helm-csghub/internal/testenv"
)

// waitLease watches the release's lease until cond holds for it (a watch,
// not a poll: a signal test kills the run right after the lease changes).
func waitLease(t *testing.T, e *testenv.Env, timeout time.Duration, what string, cond func(*coordinationv1.Lease) bool) *coordinationv1.Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	leases := e.C.Clientset.CoordinationV1().Leases(e.Namespace)
	sel := fields.OneTermEqualSelector("metadata.name", "helm-csghub-"+e.Release).String()
	for {
		l, err := leases.List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if len(l.Items) == 1 && cond(&l.Items[0]) {
			return &l.Items[0]
		}
		w, err := leases.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: l.ResourceVersion})
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		for ev := range w.ResultChan() {
			if l, ok := ev.Object.(*coordinationv1.Lease); ok && ev.Type != watch.Deleted && cond(l) {
				w.Stop()
				return l
			}
		}
		w.Stop() // the server ended the watch: list again
		if ctx.Err() != nil {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// markStep is the step a lease's mark names ("" when none).
func markStep(l *coordinationv1.Lease) string {
	return l.Annotations["helm-csghub.opencsg.com/step"]
}

// Issue 27 item 2: a `migrate` killed (SIGKILL) during its migrations leaves
// its lease marked; status names the one command that finishes (the same
// migrate again) and the lease's run as stopped; that command finishes the
// CRDs the killed run had half applied and clears the mark: status is clean.
func TestMigrateKilledIsFinishedByStatusCommand(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	// v1.16.0 applies the target chart's 49 CRDs (about 5 MB): seconds, while
	// the kill follows the mark by milliseconds
	p := e.StartPlugin("migrate", "--version", "1.16.0")
	waitLease(t, e, 2*time.Minute, "migrate's mark on its lease", func(l *coordinationv1.Lease) bool { return markStep(l) == "migrate" })
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	p.Wait(t, 30*time.Second)
	if strings.Contains(p.Stdout.String(), "envoy-gateway-crds") {
		t.Fatalf("the migrations ended before the kill:\n%s", p.Stdout)
	}

	st := e.Plugin("status")
	if st.Code != 0 || !strings.Contains(st.Stdout, "LEFT BY A STOPPED RUN: migrate") {
		t.Fatalf("status after the killed migrate: exit %d\n%s%s", st.Code, st.Stdout, st.Stderr)
	}
	todo := parseTodo(t, e)
	if want := "a killed `helm csghub migrate`"; !strings.Contains(todo, want) || !strings.Contains(todo, "half applied") {
		t.Fatalf("status TO DO %q, want %q and the migrations half applied", todo, want)
	}
	args := printedCommand(t, todo)
	if got := strings.Join(args, " "); got != "csghub migrate --version 1.16.0 -n "+e.Namespace {
		t.Fatalf("printed command %q", got)
	}
	r := e.RunHelm(nil, args...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "v1.16.0 envoy-gateway-crds") || !strings.Contains(r.Stderr, "took over a stale lock from migrate") {
		t.Fatalf("the command status printed: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, name := range []string{"gateways.gateway.networking.k8s.io", "envoyproxies.gateway.envoyproxy.io"} {
		if !crdEstablished(crd(t, e, name)) {
			t.Errorf("CRD %s not Established after the rerun", name)
		}
	}
	assertNoLease(t, e)
	if s := e.Plugin("status", "-o", "json"); strings.Contains(s.Stdout, `"todo"`) || strings.Contains(s.Stdout, `"lease"`) {
		t.Fatalf("status after the rerun is not clean:\n%s", s.Stdout)
	}
}
