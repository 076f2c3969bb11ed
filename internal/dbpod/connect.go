package dbpod

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opencsgs/helm-csghub/internal/csghub"
	"github.com/opencsgs/helm-csghub/internal/kube"
)

// Conn is a pgx connection to the release's PostgreSQL through a port-forward.
type Conn struct {
	*pgx.Conn
	User string
	fw   *kube.Forward
}

// Close ends the connection and its port-forward.
func (c *Conn) Close(ctx context.Context) {
	_ = c.Conn.Close(ctx)
	c.fw.Close()
}

// Connect opens a pgx connection to database db of the release's PostgreSQL,
// as an application would: through a port-forward to the database pod, with
// the user and password of Secret `<release>-postgresql`. The password only
// ever sits in the pgx config, never in a string that could be printed.
func Connect(ctx context.Context, kc *kube.Client, namespace, release, db string) (*Conn, error) {
	sec, err := kc.Clientset.CoreV1().Secrets(namespace).Get(ctx, csghub.PostgresSecret(release), metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("secret %s-postgresql: %w", release, err)
	}
	user := string(sec.Data["POSTGRES_USER"])
	if user == "" {
		user = DefaultUser
	}
	fw, err := kc.PortForward(ctx, namespace, csghub.PostgresPod(release), 5432)
	if err != nil {
		return nil, err
	}
	cc, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d sslmode=disable connect_timeout=10", fw.LocalPort))
	if err != nil {
		fw.Close()
		return nil, err
	}
	cc.Database = db
	cc.User = user
	cc.Password = string(sec.Data["POSTGRES_PASSWORD"])
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		fw.Close()
		return nil, fmt.Errorf("connecting to database %s through a port-forward as %s: %w", db, user, err)
	}
	return &Conn{Conn: conn, User: user, fw: fw}, nil
}
