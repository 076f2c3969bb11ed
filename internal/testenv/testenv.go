// Package testenv gives end-to-end tests the real stack of internal/devenv: a
// package's TestMain calls Main once (a pool of clusters per test package);
// each test calls t.Parallel and then NewEnv for a cluster of its own, its
// namespace, release and PostgreSQL server. A missing piece fails the run
// loudly: these tests never skip.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/opencsgs/helm-csghub/internal/devenv"
)

// pool holds the clusters no test is using: NewEnv takes one for the test,
// the test's cleanup gives it back. Nil until Main started them.
var pool chan *devenv.Stack

// DefaultClusters is the pool size when CSGHUB_TEST_CLUSTERS is unset.
//
// Measured on the 2-core, 24 GiB machine, shared and loaded (load average
// 11-13), six e2e tests took 599 s one after the other on one cluster and
// 316 s on three clusters (1.9x): a test spends most of its time waiting on
// helm --wait, KWOK, the namespace and CRD deletions and the plugin's own
// waits, not on the CPU; each test ran 10-50% longer beside the others. A
// cluster (etcd, kube-apiserver with the charts' CRDs, controller-manager,
// scheduler, KWOK) takes well under 1 GiB, so memory does not bound it.
const DefaultClusters = 3

// Main starts a pool of clusters (CSGHUB_TEST_CLUSTERS, default
// DefaultClusters) at once, runs the package's tests and stops them. Each
// cluster is its own etcd, kube-apiserver, controller-manager, scheduler and
// KWOK on free ports, with its own state dir and Helm homes; the built
// binaries, the PostgreSQL template, the chart repository, the portal
// stand-in and the plugin binary are shared. Unless -test.parallel is given,
// as many tests run at once as there are clusters: the charts' cluster-scoped
// objects (CRDs, ClusterRoles, knative-serving) allow one release per
// cluster, so a test never shares its cluster.
func Main(m *testing.M) {
	flag.Parse()
	n, err := clusters()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: FATAL: %v\n", err)
		os.Exit(1)
	}
	stacks, stop, err := startPool(n)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: FATAL: cannot start the local stack: %v\n", err)
		os.Exit(1)
	}
	pool = make(chan *devenv.Stack, len(stacks))
	for _, s := range stacks {
		pool <- s
	}
	parallelGiven := false
	flag.Visit(func(f *flag.Flag) { parallelGiven = parallelGiven || f.Name == "test.parallel" })
	if !parallelGiven {
		_ = flag.Set("test.parallel", strconv.Itoa(n))
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

// clusters is the pool size from CSGHUB_TEST_CLUSTERS.
func clusters() (int, error) {
	v := os.Getenv("CSGHUB_TEST_CLUSTERS")
	if v == "" {
		return DefaultClusters, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 16 {
		return 0, fmt.Errorf("CSGHUB_TEST_CLUSTERS=%q: want a number of clusters from 1 to 16", v)
	}
	return n, nil
}

func startPool(n int) ([]*devenv.Stack, func(), error) {
	t0 := time.Now()
	root, err := devenv.RepoRoot()
	if err != nil {
		return nil, nil, err
	}
	base := os.Getenv("CSGHUB_TEST_DIR")
	if base == "" {
		base = filepath.Join(root, ".cache", "run")
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp(base, "e2e-")
	if err != nil {
		return nil, nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil { // postgres traverses it
		return nil, nil, err
	}
	stacks := make([]*devenv.Stack, n)
	for i := range stacks {
		ports, err := devenv.FreeClusterPorts()
		if err != nil {
			return nil, nil, err
		}
		s, err := devenv.New(root, filepath.Join(dir, fmt.Sprintf("c%d", i)), ports)
		if err != nil {
			return nil, nil, err
		}
		prefix := fmt.Sprintf("testenv c%d: ", i)
		s.Log = func(format string, args ...any) { fmt.Fprintf(os.Stderr, prefix+format+"\n", args...) }
		s.StopWith(os.Getpid())
		stacks[i] = s
	}
	var listeners []net.Listener
	stop := func() {
		for _, l := range listeners {
			l.Close()
		}
		var wg sync.WaitGroup
		for _, s := range stacks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.StopCluster(); err != nil {
					fmt.Fprintf(os.Stderr, "testenv: stopping cluster %s: %v\n", s.Dir, err)
				}
			}()
		}
		wg.Wait()
		if os.Getenv("CSGHUB_TEST_KEEP") != "1" {
			_ = os.RemoveAll(dir)
		}
	}
	first := stacks[0]
	if err := first.Build(); err != nil {
		return nil, nil, err
	}
	if err := first.InitPostgres(); err != nil {
		return nil, nil, err
	}
	for _, s := range stacks[1:] {
		s.Helm3, s.Helm4, s.Kubectl, s.PGTemplate = first.Helm3, first.Helm4, first.Kubectl, first.PGTemplate
	}
	// the clusters start at once (mostly waiting on their components), while
	// this goroutine packages the charts and builds the plugin
	started := make(chan error, n)
	for _, s := range stacks {
		go func() { started <- s.StartCluster() }()
	}
	fail := func(err error) ([]*devenv.Stack, func(), error) {
		for range n {
			<-started
		}
		stop()
		return nil, nil, err
	}
	repo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	listeners = append(listeners, repo)
	repoURL := "http://" + repo.Addr().String()
	repoDir := filepath.Join(dir, "chart-repo")
	if err := first.PackageCharts(repoDir, repoURL); err != nil {
		return fail(err)
	}
	go func() { _ = devenv.ServeRepo(repo, repoDir) }()
	portal, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	listeners = append(listeners, portal)
	go func() { _ = devenv.ServePortalOn(portal) }()
	if err := first.InstallPlugin(); err != nil {
		return fail(err)
	}
	for _, s := range stacks[1:] {
		if err := s.InstallBuiltPlugin(); err != nil {
			return fail(err)
		}
	}
	var errs []error
	for range n {
		if err := <-started; err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		stop()
		return nil, nil, err
	}
	for _, s := range stacks {
		s.RepoURL = repoURL
		if err := s.PortalForward(context.Background(), portal.Addr().(*net.TCPAddr).Port); err != nil {
			stop()
			return nil, nil, err
		}
	}
	fmt.Fprintf(os.Stderr, "testenv: %d cluster(s) ready in %.1fs\n", n, time.Since(t0).Seconds())
	return stacks, stop, nil
}

// acquire takes a cluster from the pool for t until t ends.
func acquire(t testing.TB) *devenv.Stack {
	t.Helper()
	if pool == nil {
		t.Fatal("testenv: the stack is not running: the package's TestMain must call testenv.Main")
	}
	t0 := time.Now()
	s := <-pool
	if d := time.Since(t0); d > time.Second {
		t.Logf("testenv: waited %.1fs for a cluster", d.Seconds())
	}
	// registered first, so it runs last: the cluster goes back clean
	t.Cleanup(func() { pool <- s })
	return s
}

// Env is one test's slice of the stack: its namespace, its release, its own
// PostgreSQL server standing behind the pod `<release>-postgresql-0`, and a helm
// CLI (v3 by default) with the plugin installed.
type Env struct {
	T         testing.TB
	C         *devenv.Stack
	Namespace string
	Release   string
	Helm      string // helm binary used by RunHelm/Plugin
	PG        *devenv.Postgres
	// Components play the release's portal, server, Casdoor, MinIO, Redis
	// and Gitaly behind their pods (see devenv.Components).
	Components *devenv.Components
	// Mongo stands behind `<release>-mongo-0` once a chart with MongoDB is
	// installed (FerretDB, see AfterDeploy).
	Mongo *devenv.Mongo
	// ExtraEnv is added to every helm invocation (e.g. HELM_DRIVER).
	ExtraEnv []string
	// External: PG stands for an external server (global.postgresql.enabled=
	// false) reached through the plugin's client pods, not behind
	// `<release>-postgresql-0`; ExternalPassword is csghub's password over TCP.
	External         bool
	ExternalPassword string
}

var testSeq atomic.Int32

// Option changes NewEnv.
type Option func(*Env)

// WithExternalPostgres makes the test's server an external PostgreSQL: the
// release is installed with ExternalValues, and the plugin's client pods'
// exec reaches the server with the credentials of their Secret.
func WithExternalPostgres() Option { return func(e *Env) { e.External = true } }

// WithNamespace uses a fixed namespace instead of a generated one.
func WithNamespace(ns string) Option { return func(e *Env) { e.Namespace = ns } }

// NewEnv gives the test its namespace, a fresh PostgreSQL server and the KWOK
// rules that make pod `<release>-postgresql-0` reach it. Everything is removed
// when the test ends.
func NewEnv(t testing.TB, opts ...Option) *Env {
	t.Helper()
	s := acquire(t)
	t0 := time.Now()
	// Start from a clean cluster whatever the previous test's cleanup did
	// (timed out, or skipped with CSGHUB_TEST_KEEP=1): the charts' cluster-scoped
	// objects allow one release at a time. With the cleanup's 3 minutes this
	// outlasts kube-apiserver's 5-minute CRD resync (see devenv's waitCRDsGone).
	if err := deleteWithin(4*time.Minute, s.DeleteClusterScoped); err != nil {
		t.Fatalf("testenv: the cluster is not clean: %v", err)
	}
	clean := time.Since(t0)
	n := testSeq.Add(1)
	e := &Env{T: t, C: s, Release: "csghub", Helm: s.Helm3, Namespace: fmt.Sprintf("t%02d-%s", n, slug(t.Name()))}
	for _, o := range opts {
		o(e)
	}
	ctx := context.Background()
	_, err := s.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: e.Namespace, Labels: map[string]string{"csghub-e2e": "true"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace %s: %v", e.Namespace, err)
	}
	t.Cleanup(e.cleanup)
	pg, err := s.StartPostgres(filepath.Join(s.Dir, fmt.Sprintf("pg-%02d", n)))
	if err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	t.Cleanup(func() {
		if err := pg.Remove(); err != nil {
			t.Errorf("remove postgres: %v", err)
		}
	})
	e.PG = pg
	if e.External {
		e.ExternalPassword = fmt.Sprintf("ext-%d-%d", n, time.Now().UnixNano())
		conn, err := pg.Connect(ctx, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		_, err = conn.Exec(ctx, "ALTER ROLE csghub PASSWORD "+devenv.QuoteLiteral(e.ExternalPassword))
		conn.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "testenv: "+format+"\n", args...) }
		if err := s.PlayClientPods(pctx, e.Namespace, e.Release, logf); err != nil {
			t.Fatal(err)
		}
	} else if err := s.AttachPod(ctx, e.Namespace, e.Release+"-postgresql-0", pg, 5432); err != nil {
		t.Fatal(err)
	}
	e.playHookJobs()
	comps, err := s.StartComponents(ctx, e.Namespace, e.Release, filepath.Join(s.Dir, fmt.Sprintf("components-%02d", n)),
		func(format string, args ...any) { fmt.Fprintf(os.Stderr, "testenv: "+format+"\n", args...) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := comps.Close(); err != nil {
			t.Errorf("components: %v", err)
		}
	})
	e.Components = comps
	// the fixed cost of a test, to see where the suite's time goes
	t.Logf("testenv: cluster %s, namespace %s ready in %.1fs (%.1fs making the cluster clean)",
		filepath.Base(s.Dir), e.Namespace, time.Since(t0).Seconds(), clean.Seconds())
	return e
}

// ExternalValues writes a values file pointing the chart at the external
// server (127.0.0.1 and its port: KWOK runs the client pods' exec here) and
// returns the helm arguments using it.
func (e *Env) ExternalValues() []string {
	e.T.Helper()
	return e.ExternalValuesAs("csghub", e.ExternalPassword)
}

// ExternalValuesAs is ExternalValues connecting as user with password.
func (e *Env) ExternalValuesAs(user, password string) []string {
	e.T.Helper()
	f := filepath.Join(e.T.TempDir(), "external-pg.yaml")
	v := fmt.Sprintf("global:\n  postgresql:\n    enabled: false\n    external:\n      host: 127.0.0.1\n      port: %d\n      user: %q\n      password: %q\n      sslmode: disable\n",
		e.PG.Port, user, password)
	if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
		e.T.Fatal(err)
	}
	return []string{"-f", f}
}

// playHookJobs plays the db-init hook Job while the test runs (see devenv.Stack.PlayHookJobs).
func (e *Env) playHookJobs() {
	ctx, cancel := context.WithCancel(context.Background())
	e.T.Cleanup(cancel)
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "testenv: "+format+"\n", args...) }
	if err := e.C.PlayHookJobs(ctx, e.Namespace, e.Release, e.PG, logf); err != nil {
		e.T.Fatal(err)
	}
}

// HelmEnv is the environment of this test's helm invocations.
func (e *Env) HelmEnv() []string {
	env := append(e.C.HelmEnv(e.Helm), "HELM_NAMESPACE="+e.Namespace)
	return append(env, e.ExtraEnv...)
}

// Result is a finished command.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// RunHelm runs the helm CLI with args and extra environment; a non-zero exit is
// returned, not fatal (callers assert on Result).
func (e *Env) RunHelm(env []string, args ...string) Result {
	e.T.Helper()
	return RunCmd(e.T, append(e.HelmEnv(), env...), e.C.Root, e.Helm, args...)
}

// MustHelm runs helm and fails the test on a non-zero exit.
func (e *Env) MustHelm(args ...string) string {
	e.T.Helper()
	r := e.RunHelm(nil, args...)
	if r.Code != 0 {
		e.T.Fatalf("helm %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// Plugin runs `helm -n <namespace> csghub args...`.
func (e *Env) Plugin(args ...string) Result {
	e.T.Helper()
	t0 := time.Now()
	r := e.RunHelm(nil, append([]string{"-n", e.Namespace, "csghub"}, args...)...)
	// where a slow test spends its time, in the run's output
	e.T.Logf("testenv: helm csghub %s: exit %d in %.1fs", strings.Join(args[:min(len(args), 2)], " "), r.Code, time.Since(t0).Seconds())
	return r
}

// AddRepo registers the test chart repository as "csghub", as the guide's
// `helm repo add csghub ...` does.
func (e *Env) AddRepo() {
	e.T.Helper()
	e.MustHelm("repo", "add", "csghub", e.C.RepoURL, "--force-update")
}

// Install installs chart version v of csghub/csghub, plays the image's database
// init and the unmanaged-resources Job, and waits for the pods.
func (e *Env) Install(v string, extra ...string) {
	e.T.Helper()
	t0 := time.Now()
	e.AddRepo()
	args := append([]string{"install", e.Release, "csghub/csghub", "--version", v, "-n", e.Namespace, "--wait", "--timeout", "120s"}, extra...)
	e.MustHelm(args...)
	t1 := time.Now()
	e.AfterDeploy()
	e.T.Logf("testenv: installed %s in %.1fs (helm install %.1fs)", v, time.Since(t0).Seconds(), t1.Sub(t0).Seconds())
}

// AfterDeploy plays what KWOK pods cannot do after an install or upgrade.
func (e *Env) AfterDeploy() {
	e.T.Helper()
	ctx := context.Background()
	if err := e.C.PlayImageInit(ctx, e.Namespace, e.Release, e.PG); err != nil {
		e.T.Fatal(err)
	}
	if err := e.C.ApplyUnmanaged(ctx, e.Namespace, e.Release); err != nil {
		e.T.Fatal(err)
	}
	if err := e.Components.Sync(ctx); err != nil {
		e.T.Fatal(err)
	}
	// the init Jobs finish, as they would before an operator's next command
	if err := e.C.WaitJobsFinished(ctx, e.Namespace, 90*time.Second); err != nil {
		e.T.Fatal(err)
	}
	e.attachMongo()
}

// attachMongo starts the test's FerretDB behind `<release>-mongo-0` the first
// time the release runs MongoDB (charts up to 1.17), as the pod would be.
func (e *Env) attachMongo() {
	e.T.Helper()
	if e.Mongo != nil {
		return
	}
	ctx := context.Background()
	_, err := e.C.Clientset.AppsV1().StatefulSets(e.Namespace).Get(ctx, e.Release+"-mongo", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return
	}
	if err != nil {
		e.T.Fatal(err)
	}
	m, err := e.C.StartMongo(ctx, e.Namespace, e.Release, filepath.Join(e.C.Dir, "mongo-"+e.Namespace))
	if err != nil {
		e.T.Fatalf("start FerretDB for %s-mongo-0: %v", e.Release, err)
	}
	e.Mongo = m
	e.T.Cleanup(func() {
		if err := m.Stop(); err != nil {
			e.T.Errorf("stop FerretDB: %v", err)
		}
	})
}

// MongoUnreachable points KWOK's port-forward to `<release>-mongo-0` at a
// port nothing listens on: the pod exists and is Ready, its MongoDB refuses.
func (e *Env) MongoUnreachable() {
	e.T.Helper()
	ports, err := devenv.FreePorts(1)
	if err != nil {
		e.T.Fatal(err)
	}
	if err := e.C.ForwardPod(context.Background(), e.Namespace, e.Release+"-mongo-0", 27017, ports[0]); err != nil {
		e.T.Fatal(err)
	}
}

// LoadSampleData fills the databases with the deterministic sample rows.
func (e *Env) LoadSampleData() {
	e.T.Helper()
	if err := e.C.LoadSampleData(e.PG); err != nil {
		e.T.Fatalf("sample data: %v", err)
	}
}

// Kubectl runs the built kubectl and fails the test on error.
func (e *Env) Kubectl(args ...string) string {
	e.T.Helper()
	r := RunCmd(e.T, e.C.KubectlEnv(), e.C.Root, e.C.Kubectl, args...)
	if r.Code != 0 {
		e.T.Fatalf("kubectl %s: exit %d: %s", strings.Join(args, " "), r.Code, r.Stderr)
	}
	return r.Stdout
}

// WaitPodsReady waits until every non-Job pod of the namespace is Ready.
func (e *Env) WaitPodsReady(timeout time.Duration) {
	e.T.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pods, err := e.C.Clientset.CoreV1().Pods(e.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "!job-name"})
		if err != nil {
			return false, nil
		}
		for i := range pods.Items {
			if !podReady(&pods.Items[i]) {
				return false, nil
			}
		}
		return len(pods.Items) > 0, nil
	})
	if err != nil {
		e.T.Fatalf("pods in %s not Ready within %s", e.Namespace, timeout)
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// cleanup uninstalls the release, removes the cluster-scoped objects the test
// charts create and deletes the namespace, waiting until it is gone so a fixed
// namespace can be reused.
func (e *Env) cleanup() {
	if os.Getenv("CSGHUB_TEST_KEEP") == "1" && e.T.Failed() {
		e.T.Logf("CSGHUB_TEST_KEEP=1: leaving namespace %s", e.Namespace)
		return
	}
	t0 := time.Now()
	_ = RunCmd(e.T, e.HelmEnv(), e.C.Root, e.Helm, "uninstall", e.Release, "-n", e.Namespace, "--wait", "--timeout", "60s")
	t1 := time.Now()
	// the cluster-scoped objects and the namespace go away independently: wait for both at once
	var clusterScoped time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := deleteWithin(3*time.Minute, e.C.DeleteClusterScoped); err != nil {
			e.T.Logf("cleanup: %v; the next test waits for them", err)
		}
		clusterScoped = time.Since(t1)
	}()
	if err := deleteWithin(2*time.Minute, func(ctx context.Context) error { return e.C.DeleteNamespace(ctx, e.Namespace) }); err != nil {
		e.T.Errorf("cleanup: %v", err)
	}
	namespace := time.Since(t1)
	<-done
	e.T.Logf("testenv: cleanup %.1fs (uninstall %.1fs, then at once: cluster-scoped objects %.1fs, namespace %.1fs)",
		time.Since(t0).Seconds(), t1.Sub(t0).Seconds(), clusterScoped.Seconds(), namespace.Seconds())
}

// deleteWithin runs one of the stack's deleting waits with its own time bound.
func deleteWithin(d time.Duration, del func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return del(ctx)
}

// RunCmd runs a command (10-minute bound) and returns its result; only a
// failure to start it fails the test.
func RunCmd(t testing.TB, env []string, dir, name string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(devenv.GoBin())+":"+os.Getenv("PATH"))
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		t.Fatalf("run %s %s: %v", name, strings.Join(args, " "), err)
	}
	return r
}

var slugRE = regexp.MustCompile(`[^a-z0-9]+`)

func slug(s string) string {
	s = strings.Trim(slugRE.ReplaceAllString(strings.ToLower(s), "-"), "-")
	s = strings.TrimPrefix(s, "test")
	s = strings.Trim(s, "-")
	if len(s) > 40 {
		s = strings.Trim(s[:40], "-")
	}
	return s
}

// Proc is the plugin binary running in the background (for signal tests).
type Proc struct {
	Cmd            *exec.Cmd
	Stdout, Stderr *bytes.Buffer
	done           chan struct{}
	Code           int
}

// StartPlugin runs the installed plugin binary directly (not through helm, so a
// signal reaches the plugin itself), with the environment helm would give it.
func (e *Env) StartPlugin(args ...string) *Proc {
	e.T.Helper()
	return e.StartPluginWith(nil, args...)
}

// StartPluginWith is StartPlugin with env (KEY=VALUE) added to its environment.
func (e *Env) StartPluginWith(env []string, args ...string) *Proc {
	e.T.Helper()
	bin := filepath.Join(e.C.Root, "bin", "helm-csghub")
	cmd := exec.Command(bin, args...)
	cmd.Dir = e.C.Root
	cmd.Env = append(append(os.Environ(), e.HelmEnv()...), env...)
	p := &Proc{Cmd: cmd, Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Stdout, p.Stderr
	if err := cmd.Start(); err != nil {
		e.T.Fatalf("start plugin: %v", err)
	}
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.Code = ee.ExitCode()
			if ee.ExitCode() == -1 {
				p.Code = -1 // killed by a signal
			}
		}
		close(p.done)
	}()
	e.T.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// Wait waits for the process to end (fails the test after timeout).
func (p *Proc) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.Code
	case <-time.After(timeout):
		t.Fatalf("plugin did not exit within %s; stderr: %s", timeout, p.Stderr)
		return 0
	}
}

// Done reports whether the process has ended.
func (p *Proc) Done() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Bulk adds a table of n rows (about 270 bytes each) to db, so that dumps and
// restores take long enough to be interrupted.
func (e *Env) Bulk(db string, n int) {
	e.T.Helper()
	e.Exec(db, fmt.Sprintf("CREATE TABLE IF NOT EXISTS bulk AS SELECT g AS id, repeat(md5(g::text), 8) AS payload FROM generate_series(1, %d) g", n))
}

// Eventually polls cond every 20ms until it is true or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
