package devenv

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Mongo is a FerretDB server (the MongoDB wire protocol, documents kept in a
// PostgreSQL of its own) standing in for the chart's `<release>-mongo-0`,
// which runs nothing under KWOK.
type Mongo struct {
	// URL reaches it directly, with the root user (for seeding and checks).
	URL   string
	Port  int
	state string
	pg    *Postgres
	stack *Stack
}

// BuildFerretDB builds (or finds cached) FerretDB.
func (s *Stack) BuildFerretDB() error {
	return s.step("build FerretDB", func() error {
		_, err := s.Script(nil, "scripts/ferretdb.sh", "build")
		return err
	})
}

// StartMongo starts a FerretDB under dir with the root user and password of
// Secret `<release>-mongo` (as the mongo image creates them from
// MONGO_INITDB_ROOT_*) and makes KWOK's port-forward to the pod's 27017
// reach it.
func (s *Stack) StartMongo(ctx context.Context, namespace, release, dir string) (*Mongo, error) {
	sec, err := s.Clientset.CoreV1().Secrets(namespace).Get(ctx, release+"-mongo", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("mongo secret: %w", err)
	}
	m, err := s.StartFerretDB(ctx, dir, string(sec.Data["MONGO_INITDB_ROOT_USERNAME"]), string(sec.Data["MONGO_INITDB_ROOT_PASSWORD"]))
	if err != nil {
		return nil, err
	}
	if err := s.ForwardPod(ctx, namespace, release+"-mongo-0", 27017, m.Port); err != nil {
		_ = m.Stop()
		return nil, err
	}
	return m, nil
}

// StartFerretDB starts a FerretDB on a free port under dir, over a
// PostgreSQL of its own, with root user user/pass (no cluster needed).
func (s *Stack) StartFerretDB(ctx context.Context, dir, user, pass string) (*Mongo, error) {
	pg, err := s.StartPostgres(filepath.Join(dir, "pg"))
	if err != nil {
		return nil, err
	}
	m := &Mongo{state: filepath.Join(dir, "ferretdb"), pg: pg, stack: s}
	fail := func(err error) (*Mongo, error) {
		_ = m.Stop()
		return nil, err
	}
	conn, err := pg.Connect(ctx, "postgres")
	if err != nil {
		return fail(err)
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{"ferretdb"}.Sanitize())
	conn.Close(ctx)
	if err != nil {
		return fail(fmt.Errorf("create ferretdb database: %w", err))
	}
	ports, err := FreePorts(1)
	if err != nil {
		return fail(err)
	}
	m.Port = ports[0]
	pgURL := fmt.Sprintf("postgres://csghub@/ferretdb?host=%s&port=%d", pg.Host, pg.Port)
	out, err := s.Script([]string{"FDB_USER=" + user, "FDB_PASSWORD=" + pass}, "scripts/ferretdb.sh", "start", m.state, strconv.Itoa(m.Port), pgURL)
	if err != nil {
		return fail(err)
	}
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "MONGO_URL="); ok {
			m.URL = v
		}
	}
	if m.URL == "" {
		return fail(fmt.Errorf("ferretdb.sh start printed no MONGO_URL"))
	}
	return m, nil
}

// Stop stops FerretDB and removes its PostgreSQL (idempotent).
func (m *Mongo) Stop() error {
	_, err := m.stack.Script(nil, "scripts/ferretdb.sh", "stop", m.state)
	if rmErr := m.pg.Remove(); err == nil {
		err = rmErr
	}
	return err
}

// ForwardPod makes KWOK's port-forward to podPort of namespace/pod connect
// to 127.0.0.1:target (a port nothing listens on makes the pod unreachable).
// An existing rule for the pod is replaced.
func (s *Stack) ForwardPod(ctx context.Context, namespace, pod string, podPort, target int) error {
	pf := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "PortForward",
		"metadata": map[string]any{"name": pod, "namespace": namespace},
		"spec": map[string]any{"forwards": []any{map[string]any{
			"ports":  []any{int64(podPort)},
			"target": map[string]any{"port": int64(target), "address": "127.0.0.1"},
		}}},
	}}
	_ = s.Dynamic.Resource(pfGVR).Namespace(namespace).Delete(ctx, pod, metav1.DeleteOptions{})
	if _, err := s.Dynamic.Resource(pfGVR).Namespace(namespace).Create(ctx, pf, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create kwok PortForward for %s/%s: %w", namespace, pod, err)
	}
	return nil
}
