package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/testenv"
)

// Exec and port-forward through client-go reach the test's PostgreSQL the way
// they reach the real database pod.
func TestExecAndPortForwardToPostgresPod(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := &kube.Client{Config: e.C.Config, Clientset: e.C.Clientset}
	pod := "csghub-postgresql-0"

	t.Run("psql", func(t *testing.T) {
		var out bytes.Buffer
		err := c.Exec(ctx, kube.ExecRequest{Namespace: e.Namespace, Pod: pod,
			Command: []string{"psql", "-U", "csghub", "-d", "postgres", "-Atc", "select datname from pg_database where datname = 'csghub_server'"},
			Stdout:  &out})
		if err != nil || strings.TrimSpace(out.String()) != "csghub_server" {
			t.Fatalf("exec psql: %v, output %q", err, out.String())
		}
	})
	t.Run("exit code", func(t *testing.T) {
		err := c.Exec(ctx, kube.ExecRequest{Namespace: e.Namespace, Pod: pod, Command: []string{"sh", "-c", "echo boom >&2; exit 3"}})
		var ee *kube.ExitError
		if !errors.As(err, &ee) || ee.Code != 3 || ee.Stderr != "boom" {
			t.Fatalf("exit code: got %v, want ExitError code 3 with stderr boom", err)
		}
	})
	t.Run("stdin until EOF", func(t *testing.T) {
		var script strings.Builder
		for i := 1; i <= 2000; i++ {
			fmt.Fprintf(&script, "select %d;\n", i)
		}
		var out bytes.Buffer
		done := make(chan error, 1)
		go func() {
			done <- c.Exec(ctx, kube.ExecRequest{Namespace: e.Namespace, Pod: pod,
				Command: []string{"psql", "-U", "csghub", "-d", "postgres", "-At", "-v", "ON_ERROR_STOP=1"},
				Stdin:   strings.NewReader(script.String()), Stdout: &out})
		}()
		select {
		case err := <-done:
			lines := strings.Fields(out.String())
			if err != nil || len(lines) != 2000 || lines[1999] != "2000" {
				t.Fatalf("stdin: err %v, %d lines (last %q)", err, len(lines), lastOf(lines))
			}
		case <-time.After(60 * time.Second):
			t.Fatal("exec with stdin did not end: EOF was not delivered to the command")
		}
	})
	t.Run("port-forward", func(t *testing.T) {
		sec, err := e.C.Clientset.CoreV1().Secrets(e.Namespace).Get(ctx, "csghub-postgresql", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fw, err := c.PortForward(ctx, e.Namespace, pod, 5432)
		if err != nil {
			t.Fatal(err)
		}
		defer fw.Close()
		cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=csghub dbname=postgres sslmode=disable", fw.LocalPort))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Password = string(sec.Data["POSTGRES_PASSWORD"])
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatalf("pgx through port-forward: %v", err)
		}
		defer conn.Close(ctx)
		var one int
		if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("SELECT 1: %v %d", err, one)
		}
		// a wrong password is refused: TCP really authenticates, as in the real pod
		cfg.Password = "wrong"
		if bad, err := pgx.ConnectConfig(ctx, cfg); err == nil {
			bad.Close(ctx)
			t.Fatal("connection with a wrong password succeeded")
		}
	})
}

func lastOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}
