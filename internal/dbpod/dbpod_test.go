package dbpod

import (
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/kube"
)

func dbPod(ready bool) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "csghub-postgresql-0", Namespace: "ns"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}}}
}

// allowExec answers SelfSubjectAccessReviews with allowed (or an error).
func allowExec(cs *fake.Clientset, allowed bool, err error) {
	cs.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authv1.SelfSubjectAccessReview).DeepCopy()
		if ra := r.Spec.ResourceAttributes; ra.Verb != "create" || ra.Resource != "pods" || ra.Subresource != "exec" || ra.Name != "csghub-postgresql-0" {
			return true, nil, errors.New("unexpected review")
		}
		r.Status.Allowed = allowed
		return true, r, err
	})
}

// CheckReady refuses, before anything changes, with the documented exit code:
// pod missing 3, not Ready or no exec right or no read right 4, API error 1.
func TestCheckReady(t *testing.T) {
	forbidden := apierrors.NewForbidden(corev1.Resource("pods"), "csghub-postgresql-0", errors.New("RBAC"))
	cases := []struct {
		name    string
		setup   func(cs *fake.Clientset)
		objs    []runtime.Object
		exit    int
		message string
	}{
		{name: "ready and exec allowed", objs: []runtime.Object{dbPod(true)}, setup: func(cs *fake.Clientset) { allowExec(cs, true, nil) }},
		{name: "missing", exit: 3, message: "database pod ns/csghub-postgresql-0 not found"},
		{name: "not ready", objs: []runtime.Object{dbPod(false)}, exit: 4, message: "is not Ready (phase Running)"},
		{name: "exec denied", objs: []runtime.Object{dbPod(true)}, setup: func(cs *fake.Clientset) { allowExec(cs, false, nil) },
			exit: 4, message: "not allowed to exec into pod ns/csghub-postgresql-0 (RBAC: create pods/exec)"},
		{name: "access review fails", objs: []runtime.Object{dbPod(true)}, setup: func(cs *fake.Clientset) { allowExec(cs, false, errors.New("etcd down")) },
			exit: 1, message: "checking exec permission: etcd down"},
		{name: "read forbidden", setup: func(cs *fake.Clientset) {
			cs.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, forbidden })
		}, exit: 4, message: "not allowed to read pod ns/csghub-postgresql-0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cs := fake.NewClientset(c.objs...)
			if c.setup != nil {
				c.setup(cs)
			}
			err := New(&kube.Client{Clientset: cs}, "ns", "csghub").CheckReady(context.Background())
			if errs.ExitCode(err) != c.exit || (c.message != "" && !strings.Contains(err.Error(), c.message)) {
				t.Fatalf("CheckReady = %v (exit %d), want exit %d with %q", err, errs.ExitCode(err), c.exit, c.message)
			}
		})
	}
}

// Commands are argv arrays: psql without ~/.psqlrc, stopping at the first
// error, as the superuser (or PGUSER of a client pod when User is empty).
func TestPsqlArgv(t *testing.T) {
	p := New(nil, "ns", "csghub")
	want := []string{"psql", "-X", "-v", "ON_ERROR_STOP=1", "-U", "csghub", "-d", "my db", "-At", "-c", "SELECT 1; DROP x"}
	if got := p.psql("my db", "-At", "-c", "SELECT 1; DROP x"); !reflect.DeepEqual(got, want) {
		t.Fatalf("psql argv %q, want %q", got, want)
	}
	p.User = ""
	if got := p.psql("db"); !reflect.DeepEqual(got, []string{"psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", "db"}) {
		t.Fatalf("client pod argv %q", got)
	}
}

func TestParseInfo(t *testing.T) {
	info, err := parseInfo("version|15.4\ncsghub_portal|8192\ncsghub_server|123456\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []Database{{Name: "csghub_portal", Bytes: 8192}, {Name: "csghub_server", Bytes: 123456}}
	if info.Version != "15.4" || !reflect.DeepEqual(info.Databases, want) {
		t.Fatalf("info %+v", info)
	}
	if _, err := parseInfo("psql: error: connection refused"); err == nil || !strings.Contains(err.Error(), "unexpected answer") {
		t.Fatalf("garbage accepted: %v", err)
	}
}

func TestErrorLines(t *testing.T) {
	stderr := "SET\npsql:<stdin>:12: ERROR:  relation \"x\" already exists\nmore\n"
	if got := firstError(stderr); got != `psql:<stdin>:12: ERROR:  relation "x" already exists` {
		t.Fatalf("firstError %q", got)
	}
	// no ERROR line: every line is kept (a connection failure's hint is on the next one)
	if got := firstError("\n  pg_dump: error: connection failed\n\tIs the server running?\n"); got != "pg_dump: error: connection failed | Is the server running?" {
		t.Fatalf("firstError without ERROR %q", got)
	}
	// the lines psql prints after its ERROR explain it: kept, on one line
	multi := "psql:<stdin>:7: ERROR:  database \"x\" is being accessed by other users\nDETAIL:  There is 1 other session using the database.\nHINT:  stop it\nNOTICE:  unrelated\n"
	if got := firstError(multi); got != `psql:<stdin>:7: ERROR:  database "x" is being accessed by other users | DETAIL:  There is 1 other session using the database. | HINT:  stop it` {
		t.Fatalf("firstError with DETAIL %q", got)
	}
	forbidden := apierrors.NewForbidden(corev1.Resource("pods"), "p", errors.New("RBAC"))
	if got := apiMessage(forbidden); got != forbidden.ErrStatus.Message {
		t.Fatalf("apiMessage %q", got)
	}
}

// stderr kept for messages is bounded; the writer never reports a short
// write (that would fail the exec stream).
func TestLimitedWriter(t *testing.T) {
	var b bytes.Buffer
	w := &limitedWriter{w: &b, n: 5}
	for _, s := range []string{"abc", "defgh", "ij"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if b.String() != "abcde" {
		t.Fatalf("kept %q, want the first 5 bytes", b.String())
	}
}

// A script counts as run to its end only when psql printed the marker the
// script ends with and no ERROR: an exit status 0 alone is not enough.
func TestScriptEnd(t *testing.T) {
	end := newScriptEnd()
	if other := newScriptEnd(); other.marker == end.marker {
		t.Fatal("two scripts got the same marker")
	}
	got, _ := io.ReadAll(end.after(strings.NewReader("SELECT 1;")))
	if want := "SELECT 1;\n\\echo '" + end.marker + "'\n"; string(got) != want {
		t.Fatalf("script %q, want %q", got, want)
	}
	ran := " set_config \n------------\n \n(1 row)\n\n" + end.marker
	if err := end.check(ran, "NOTICE:  extension exists\n"); err != nil {
		t.Fatalf("whole run refused: %v", err)
	}
	if err := end.check(ran, "ERROR:  division by zero\n"); err == nil || !strings.Contains(err.Error(), "division by zero") {
		t.Fatalf("an ERROR with exit status 0 passed: %v", err)
	}
	if err := end.check("(1 row)", "ERROR:  division by zero\n"); err == nil || !strings.Contains(err.Error(), "division by zero") {
		t.Fatalf("a stop at an error passed: %v", err)
	}
	if err := end.check("(1 row)", ""); err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Fatalf("a run without the marker passed: %v", err)
	}
	if err := end.check(newScriptEnd().marker, ""); err == nil {
		t.Fatal("another script's marker accepted")
	}
}
