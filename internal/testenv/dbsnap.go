package testenv

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/opencsgs/helm-csghub/internal/devenv"
)

// Snapshot is the content of a PostgreSQL server as the tests compare it: for
// every user table of every database its row count and a checksum of all rows,
// and every sequence's last value. Two servers with equal snapshots hold the
// same data.
type Snapshot map[string]string // "db.schema.table" -> "rows=N md5=..." ; "db.schema.seq" -> "seq=N/called"

// TakeSnapshot reads pg's content (over the socket, as superuser).
func TakeSnapshot(t testing.TB, pg *devenv.Postgres) Snapshot {
	t.Helper()
	ctx := context.Background()
	conn, err := pg.Connect(ctx, "postgres")
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap := Snapshot{}
	for _, db := range dbs {
		snap["database "+db] = "present"
		c, err := pg.Connect(ctx, db)
		if err != nil {
			t.Fatalf("snapshot %s: %v", db, err)
		}
		tables, err := c.Query(ctx, `SELECT quote_ident(schemaname) || '.' || quote_ident(relname) FROM pg_stat_user_tables ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		names, err := pgx.CollectRows(tables, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, tbl := range names {
			var n int64
			var sum string
			q := fmt.Sprintf(`SELECT count(*), coalesce(md5(string_agg(r::text, E'\n' ORDER BY r::text)), '') FROM %s r`, tbl)
			if err := c.QueryRow(ctx, q).Scan(&n, &sum); err != nil {
				t.Fatalf("snapshot %s.%s: %v", db, tbl, err)
			}
			snap[db+"."+tbl] = fmt.Sprintf("rows=%d md5=%s", n, sum)
		}
		seqs, err := c.Query(ctx, `SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename), coalesce(last_value, 0) FROM pg_sequences ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		for seqs.Next() {
			var name string
			var last int64
			if err := seqs.Scan(&name, &last); err != nil {
				t.Fatal(err)
			}
			snap[db+"."+name] = fmt.Sprintf("seq=%d", last)
		}
		seqs.Close()
		c.Close(ctx)
	}
	return snap
}

// Diff lists the differences between two snapshots (empty when equal).
func (s Snapshot) Diff(other Snapshot) []string {
	var out []string
	for k, v := range s {
		if w, ok := other[k]; !ok {
			out = append(out, fmt.Sprintf("%s: %s vs missing", k, v))
		} else if w != v {
			out = append(out, fmt.Sprintf("%s: %s vs %s", k, v, w))
		}
	}
	for k, w := range other {
		if _, ok := s[k]; !ok {
			out = append(out, fmt.Sprintf("%s: missing vs %s", k, w))
		}
	}
	sort.Strings(out)
	return out
}

// Tables counts the user tables in the snapshot (a guard against comparing two empty servers).
func (s Snapshot) Tables() int {
	n := 0
	for k, v := range s {
		if !strings.HasPrefix(k, "database ") && strings.HasPrefix(v, "rows=") {
			n++
		}
	}
	return n
}

// RequireEqual fails the test when the snapshots differ.
func RequireEqual(t testing.TB, want, got Snapshot, what string) {
	t.Helper()
	if want.Tables() == 0 {
		t.Fatalf("%s: the reference snapshot has no tables", what)
	}
	if d := want.Diff(got); len(d) > 0 {
		if len(d) > 20 {
			d = append(d[:20], fmt.Sprintf("... %d more", len(d)-20))
		}
		t.Fatalf("%s: content differs:\n  %s", what, strings.Join(d, "\n  "))
	}
}

// Exec runs SQL in db on the test's server.
func (e *Env) Exec(db, sql string, args ...any) {
	e.T.Helper()
	ctx := context.Background()
	c, err := e.PG.Connect(ctx, db)
	if err != nil {
		e.T.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		e.T.Fatalf("%s: %v", sql, err)
	}
}
