package devenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// PlayImageInit does what the PostgreSQL image does when it starts: the csghub
// role's password from Secret `<release>-postgresql` (key POSTGRES_PASSWORD) and
// the databases listed in ConfigMap `<release>-postgresql-init` (key databases).
// Nothing runs in KWOK pods, so the stack plays it. Safe to repeat.
func (s *Stack) PlayImageInit(ctx context.Context, namespace, release string, pg *Postgres) error {
	cs := s.Clientset
	sec, err := cs.CoreV1().Secrets(namespace).Get(ctx, release+"-postgresql", metav1.GetOptions{})
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

// ApplyUnmanaged applies the manifests a chart keeps in ConfigMap
// `<release>-unmanaged-resources` (key manifests.yaml): objects the real chart
// created outside Helm through a kubectl Job. No ConfigMap: nothing to do.
func (s *Stack) ApplyUnmanaged(ctx context.Context, namespace, release string) error {
	cm, err := s.Clientset.CoreV1().ConfigMaps(namespace).Get(ctx, release+"-unmanaged-resources", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.Dir, "unmanaged-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(cm.Data["manifests.yaml"]); err != nil {
		return err
	}
	f.Close()
	_, err = s.Run(s.KubectlEnv(), s.Kubectl, "apply", "--server-side", "--field-manager=kubectl-job", "-f", f.Name())
	return err
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
	crdGroups = []string{".argoproj.io", ".knative.dev", ".leaderworkerset.x-k8s.io", ".gateway.networking.k8s.io", ".gateway.envoyproxy.io"}
)

// DeleteClusterScoped removes what the test charts create outside namespaces
// (CRDs, lws webhooks, the knative-serving namespace) and waits for the
// namespace to be gone, so the next test starts without them.
func (s *Stack) DeleteClusterScoped(ctx context.Context) {
	if crds, err := s.Dynamic.Resource(crdGVR).List(ctx, metav1.ListOptions{}); err == nil {
		for _, crd := range crds.Items {
			for _, g := range crdGroups {
				if strings.HasSuffix(crd.GetName(), g) {
					_ = s.Dynamic.Resource(crdGVR).Delete(ctx, crd.GetName(), metav1.DeleteOptions{})
				}
			}
		}
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
	s.DeleteNamespace(ctx, "knative-serving")
}

// DeleteNamespace deletes ns and waits until it is gone (or ctx ends).
func (s *Stack) DeleteNamespace(ctx context.Context, ns string) {
	err := s.Clientset.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return
	}
	for ctx.Err() == nil {
		if _, err := s.Clientset.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return
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
