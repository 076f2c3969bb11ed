package devenv

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	execGVR = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "execs"}
	pfGVR   = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "portforwards"}
)

// Postgres is a throwaway server: socket trust for the in-pod tools, password
// auth over TCP (what the plugin uses through a port-forward).
type Postgres struct {
	DataDir string
	Host    string // unix socket directory
	Port    int
	stack   *Stack
}

// StartPostgres clones the template into dataDir and starts it on a free port.
func (s *Stack) StartPostgres(dataDir string) (*Postgres, error) {
	if _, err := s.Script(nil, "scripts/pg.sh", "clone", s.PGTemplate, dataDir); err != nil {
		return nil, err
	}
	ports, err := FreePorts(1)
	if err != nil {
		return nil, err
	}
	return s.StartPostgresAt(dataDir, ports[0])
}

// StartPostgresAt starts the server in dataDir on port (idempotent).
func (s *Stack) StartPostgresAt(dataDir string, port int) (*Postgres, error) {
	out, err := s.Script(nil, "scripts/pg.sh", "start", dataDir, strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	pg := &Postgres{DataDir: dataDir, Port: port, stack: s}
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "PGHOST="); ok {
			pg.Host = v
		}
	}
	if pg.Host == "" {
		_ = pg.Stop()
		return nil, fmt.Errorf("pg.sh start printed no PGHOST: %q", out)
	}
	return pg, nil
}

// AttachedPostgres describes a server started elsewhere (host = socket dir).
func (s *Stack) AttachedPostgres(host string, port int) *Postgres {
	return &Postgres{Host: host, Port: port, stack: s}
}

// Stop stops the server (idempotent).
func (p *Postgres) Stop() error {
	_, err := p.stack.Script(nil, "scripts/pg.sh", "stop", p.DataDir)
	return err
}

// Remove stops the server and deletes its data.
func (p *Postgres) Remove() error {
	err := p.Stop()
	if rmErr := os.RemoveAll(p.DataDir); err == nil {
		err = rmErr
	}
	return err
}

// Env is the libpq environment reaching the server over its socket.
func (p *Postgres) Env() []string {
	return []string{"PGHOST=" + p.Host, "PGPORT=" + strconv.Itoa(p.Port), "PGUSER=csghub"}
}

// ConnString is a superuser connection over the unix socket.
func (p *Postgres) ConnString(db string) string {
	return fmt.Sprintf("host=%s port=%d user=csghub dbname=%s sslmode=disable", p.Host, p.Port, db)
}

// Connect opens a superuser connection to db over the socket.
func (p *Postgres) Connect(ctx context.Context, db string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, p.ConnString(db))
}

// AttachPod makes KWOK's exec into namespace/pod run commands against pg (PGHOST
// and PGPORT in the command's environment, as the real image's defaults point
// at its own server) and its port-forward to podPort reach pg's TCP port.
// Existing rules for the pod are replaced.
func (s *Stack) AttachPod(ctx context.Context, namespace, pod string, pg *Postgres, podPort int) error {
	ex := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Exec",
		"metadata": map[string]any{"name": pod, "namespace": namespace},
		"spec": map[string]any{"execs": []any{map[string]any{
			"local": map[string]any{
				"workDir": s.Dir,
				"envs": []any{
					map[string]any{"name": "PGHOST", "value": pg.Host},
					map[string]any{"name": "PGPORT", "value": strconv.Itoa(pg.Port)},
				},
			},
		}}},
	}}
	_ = s.Dynamic.Resource(execGVR).Namespace(namespace).Delete(ctx, pod, metav1.DeleteOptions{})
	if _, err := s.Dynamic.Resource(execGVR).Namespace(namespace).Create(ctx, ex, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create kwok Exec for %s/%s: %w", namespace, pod, err)
	}
	return s.ForwardPod(ctx, namespace, pod, podPort, pg.Port)
}
