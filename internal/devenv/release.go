package devenv

import (
	"context"
	"fmt"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/opencsgs/helm-csghub/internal/render"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// PlayImageInit does what the PostgreSQL image does when it starts: the csghub
// role's password from Secret `<release>-postgresql` (key POSTGRES_PASSWORD) and
// the databases listed in ConfigMap `<release>-postgresql-init` (key databases).
// Nothing runs in KWOK pods, so the stack plays it. Safe to repeat.
func (s *Stack) PlayImageInit(ctx context.Context, namespace, release string, pg *Postgres) error {
	// the hook-job player and the tests' explicit calls may overlap
	s.initMu.Lock()
	defer s.initMu.Unlock()
	cs := s.Clientset
	sec, err := cs.CoreV1().Secrets(namespace).Get(ctx, release+"-postgresql", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		// global.postgresql.enabled=false: no built-in server; the db-init Job
		// creates the databases on the external one
		return s.CreateJobDatabases(ctx, namespace, release, pg)
	}
	if err != nil {
		return fmt.Errorf("postgres secret: %w", err)
	}
	cm, err := cs.CoreV1().ConfigMaps(namespace).Get(ctx, release+"-postgresql-init", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("postgres init configmap: %w", err)
	}
	pw := string(sec.Data["POSTGRES_PASSWORD"])
	if pw == "" {
		return fmt.Errorf("secret %s-postgresql has no POSTGRES_PASSWORD", release)
	}
	conn, err := pg.Connect(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("connect postgres: %w", err)
	}
	defer conn.Close(ctx)
	// ALTER ROLE takes no bind parameters: the literal is quoted.
	if _, err := conn.Exec(ctx, "ALTER ROLE csghub PASSWORD "+QuoteLiteral(pw)); err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	for _, db := range strings.Fields(cm.Data["databases"]) {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
				return fmt.Errorf("create database %s: %w", db, err)
			}
		}
	}
	return nil
}

// ApplyUnmanaged plays the Job through which the real chart created objects
// outside Helm: every document of ConfigMap `<release>-unmanaged-resources` (key
// manifests.yaml, in order) that does not exist yet is created; existing objects
// are left untouched (the real Job's create-and-skip). No ConfigMap: nothing to do.
func (s *Stack) ApplyUnmanaged(ctx context.Context, namespace, release string) error {
	s.initMu.Lock()
	defer s.initMu.Unlock()
	cm, err := s.Clientset.CoreV1().ConfigMaps(namespace).Get(ctx, release+"-unmanaged-resources", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	objs, err := render.SplitManifest(cm.Data["manifests.yaml"])
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(s.Clientset.Discovery()))
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		var mapping *meta.RESTMapping
		// a CRD created a moment ago may take a few seconds to be served
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				mapper.Reset()
				return false, nil
			}
			mapping = m
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("unmanaged %s %s: kind not served: %w", gvk.Kind, obj.GetName(), err)
		}
		var ri dynamic.ResourceInterface = s.Dynamic.Resource(mapping.Resource)
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			ns := obj.GetNamespace()
			if ns == "" {
				ns = namespace
			}
			ri = s.Dynamic.Resource(mapping.Resource).Namespace(ns)
		}
		if _, err := ri.Create(ctx, obj, metav1.CreateOptions{FieldManager: "kubectl-job"}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating unmanaged %s %s: %w", gvk.Kind, obj.GetName(), err)
		}
	}
	return nil
}

// PlayHookJobs plays the chart's post-install/post-upgrade hook Job
// `<release>-db-init` whenever Helm creates it (its pod runs nothing under
// KWOK): the databases it creates and the objects the real chart's Jobs create
// outside Helm. Like the real Job this happens while `helm upgrade` waits for
// the hook: from chart 2.1.0 the pod carries HarnessGate, removed once played,
// so the hook cannot complete before the databases exist. It also plays the
// 2.2.0+ pre-upgrade hook `<release>-dataflow-migrations`
// (PlayDataflowMigrations). It runs until ctx ends; problems go to logf.
func (s *Stack) PlayHookJobs(ctx context.Context, namespace, release string, pg *Postgres, logf func(string, ...any)) error {
	jobs := func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
		return f.Batch().V1().Jobs().Informer()
	}
	return watchAdded(ctx, s.Clientset, namespace, "", jobs, func(obj any) {
		job, ok := obj.(*batchv1.Job)
		if !ok {
			return
		}
		if job.Name == release+"-dataflow-migrations" {
			if err := s.PlayDataflowMigrations(ctx, namespace, release, pg); err != nil && ctx.Err() == nil {
				logf("playing the dataflow-migrations hook job: %v", err)
			}
			return
		}
		if job.Name != release+"-db-init" {
			return
		}
		if err := s.PlayImageInit(ctx, namespace, release, pg); err != nil && ctx.Err() == nil {
			logf("playing the db-init job: %v", err)
		}
		if err := s.ApplyUnmanaged(ctx, namespace, release); err != nil && ctx.Err() == nil {
			logf("playing the unmanaged resources: %v", err)
		}
		// charts >= 2.1.0 gate the pod: the hook ends after the databases exist
		if err := s.ungateJobPods(ctx, namespace, job.Name); err != nil && ctx.Err() == nil {
			logf("releasing the db-init pod: %v", err)
		}
	}, nil)
}

// HarnessGate is the scheduling gate on the pods of the mirror charts' hook
// Jobs that change data (2.2.0+ `<release>-dataflow-migrations`): the pod is
// scheduled, and so completes under KWOK, only once the harness has played it.
const HarnessGate = "csghub.opencsg.com/test-harness"

// PlayDataflowMigrations plays the 2.2.0+ pre-upgrade hook Job
// `<release>-dataflow-migrations` as its shell loop does: each script of
// ConfigMap `<release>-dataflow-migrations`, in name order, runs on database
// csghub_dataflow as user csghub unless table _migrations records it, and is
// then recorded. Then the gate of the Job's pods is removed so the Job
// completes and Helm, which waits for the hook, goes on.
func (s *Stack) PlayDataflowMigrations(ctx context.Context, namespace, release string, pg *Postgres) error {
	name := release + "-dataflow-migrations"
	cm, err := s.Clientset.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("configmap %s: %w", name, err)
	}
	if err := runMigrationScripts(ctx, pg, "csghub_dataflow", cm.Data); err != nil {
		return err
	}
	return s.ungateJobPods(ctx, namespace, name)
}

func runMigrationScripts(ctx context.Context, pg *Postgres, db string, scripts map[string]string) error {
	conn, err := pg.Connect(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	names := make([]string, 0, len(scripts))
	for n := range scripts {
		if strings.HasSuffix(n, ".sql") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		// the ledger does not exist before the first script creates it
		var ledger, done bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass('_migrations') IS NOT NULL").Scan(&ledger); err != nil {
			return err
		}
		if ledger {
			if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM _migrations WHERE name = $1)", n).Scan(&done); err != nil {
				return err
			}
		}
		if done {
			continue
		}
		if _, err := conn.Exec(ctx, scripts[n]); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		if _, err := conn.Exec(ctx, "INSERT INTO _migrations (name) VALUES ($1)", n); err != nil {
			return fmt.Errorf("recording %s: %w", n, err)
		}
	}
	return nil
}

// ungateJobPods removes HarnessGate from the pods of Job name as they appear
// (the Job controller creates them a moment after the Job), until one was
// released or a minute passed.
func (s *Stack) ungateJobPods(ctx context.Context, namespace, name string) error {
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := s.Clientset.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + name})
		if err != nil {
			return false, nil
		}
		released := false
		for _, p := range pods.Items {
			if len(p.Spec.SchedulingGates) == 0 {
				released = true
				continue
			}
			patch := []byte(`{"spec":{"schedulingGates":null}}`)
			if _, err := s.Clientset.CoreV1().Pods(namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err == nil {
				released = true
			}
		}
		return released, nil
	})
}

// LoadSampleData fills pg's databases with the deterministic sample rows.
func (s *Stack) LoadSampleData(pg *Postgres) error {
	_, err := s.Script(pg.Env(), "scripts/sample-data.sh")
	return err
}

var (
	crdGVR    = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	mwcGVR    = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"}
	vwcGVR    = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"}
	crdGroups = []string{".argoproj.io", ".knative.dev", ".leaderworkerset.x-k8s.io", ".gateway.networking.k8s.io", ".gateway.networking.x-k8s.io",
		".gateway.envoyproxy.io", ".monitoring.coreos.com", ".monitoring.grafana.com"}
)

// DeleteClusterScoped removes what the test charts create outside namespaces
// (CRDs, lws webhooks, the knative-serving and lws-system namespaces) and
// waits until they are gone, so the next test starts without them: a CRD is
// deleted in the background (its custom resources first), and the next
// test's `helm install` would otherwise find it terminating, still annotated
// with the previous test's release, and refuse to adopt it. The error names
// what was still there when ctx ended.
func (s *Stack) DeleteClusterScoped(ctx context.Context) error {
	crds, _ := s.testCRDs(ctx)
	for _, name := range crds {
		_ = s.Dynamic.Resource(crdGVR).Delete(ctx, name, metav1.DeleteOptions{})
	}
	if err := s.waitCRDsGone(ctx); err != nil {
		return err
	}
	for _, gvr := range []schema.GroupVersionResource{mwcGVR, vwcGVR} {
		list, err := s.Dynamic.Resource(gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			continue
		}
		for _, w := range list.Items {
			if strings.Contains(w.GetName(), "lws") {
				_ = s.Dynamic.Resource(gvr).Delete(ctx, w.GetName(), metav1.DeleteOptions{})
			}
		}
	}
	for _, ns := range []string{"knative-serving", "lws-system", "spaces"} {
		if err := s.DeleteNamespace(ctx, ns); err != nil {
			return err
		}
	}
	return nil
}

// waitCRDsGone waits until no test CRD is left. A CRD still terminating after
// a few seconds gets an annotation, because kube-apiserver's CRD finalizer can
// drop it until its 5-minute resync: seen in CI after one "storage is
// (re)initializing" failure, and in its source a retry that reads its stale
// cached copy gets a conflict and returns without requeueing, while its update
// handler ignores changes to the Terminating condition alone. Any other
// change requeues it.
func (s *Stack) waitCRDsGone(ctx context.Context) error {
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		left, err := s.testCRDs(ctx)
		if err == nil && len(left) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("CRDs still there after cleanup: %s (%v)", s.describeCRDs(left), ctx.Err())
		}
		if time.Since(start) < 3*time.Second {
			continue
		}
		nudge := fmt.Sprintf(`{"metadata":{"annotations":{"csghub-e2e/nudge":"%d"}}}`, time.Now().UnixNano())
		for _, name := range left {
			_, _ = s.Dynamic.Resource(crdGVR).Patch(ctx, name, types.MergePatchType, []byte(nudge), metav1.PatchOptions{})
		}
		start = time.Now()
	}
}

// testCRDs names the CRDs of the groups the test charts install. It lists
// metadata only: the charts' CRDs are about 7 MB of JSON with their schemas,
// and the cleanup asks every 200 ms while they terminate.
func (s *Stack) testCRDs(ctx context.Context) ([]string, error) {
	crds, err := s.Metadata.Resource(crdGVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, crd := range crds.Items {
		for _, g := range crdGroups {
			if strings.HasSuffix(crd.Name, g) {
				out = append(out, crd.Name)
			}
		}
	}
	return out, nil
}

// describeCRDs names each CRD with its Terminating condition, if any.
func (s *Stack) describeCRDs(names []string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var parts []string
	for _, name := range names {
		d := name
		crd, err := s.Dynamic.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			parts = append(parts, d+" ["+err.Error()+"]")
			continue
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == "Terminating" {
				d += fmt.Sprintf(" [Terminating=%v %v: %v]", m["status"], m["reason"], m["message"])
			}
		}
		parts = append(parts, d)
	}
	return strings.Join(parts, ", ")
}

// DeleteNamespace deletes ns and waits until it is gone; the error says it
// was still there when ctx ended.
//
// While it waits, it deletes the namespace's pods at once and touches the
// namespace each second. Left alone, the namespace controller looks again
// only after its estimate when content is left: the pods' 30-second grace
// period, or 15 s for content with finalizers (a PVC's pvc-protection);
// measured, that was 6 to 50 s of each test's cleanup, the cluster idle.
// KWOK removes a pod deleted with no grace period at once, and an update of
// the namespace queues it for the controller again.
func (s *Stack) DeleteNamespace(ctx context.Context, ns string) error {
	err := s.Clientset.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	zero := int64(0)
	for i := 1; ; i++ {
		if _, err := s.Clientset.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("namespace %s still there after cleanup (%v)", ns, ctx.Err())
		}
		if i%5 == 0 {
			_ = s.Clientset.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
			nudge := fmt.Sprintf(`{"metadata":{"annotations":{"csghub-e2e/nudge":"%d"}}}`, time.Now().UnixNano())
			_, _ = s.Clientset.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(nudge), metav1.PatchOptions{})
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// QuoteLiteral quotes s as an SQL string literal.
func QuoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// TempDir makes a fresh directory under the stack's state dir.
func (s *Stack) TempDir(prefix string) (string, error) {
	d, err := os.MkdirTemp(s.Dir, prefix)
	if err != nil {
		return "", err
	}
	return d, os.Chmod(d, 0o755)
}
