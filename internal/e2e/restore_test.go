package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/klauspost/compress/zstd"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/testenv"
)

func changeData(t *testing.T, e *testenv.Env) {
	t.Helper()
	e.Exec("csghub_server", "DELETE FROM bulk WHERE id % 3 = 0")
	e.Exec("csghub_server", "INSERT INTO bulk SELECT g, 'new' FROM generate_series(1000001, 1000500) g")
	e.Exec("csghub_portal", "CREATE TABLE added_after_backup (id int)")
	e.Exec("postgres", "CREATE DATABASE created_after_backup")
}

func assertNoNetworkPolicy(t *testing.T, e *testenv.Env) {
	t.Helper()
	_, err := e.C.Clientset.NetworkingV1().NetworkPolicies(e.Namespace).Get(context.Background(), "block-postgresql-access", metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("NetworkPolicy block-postgresql-access still there (err %v)", err)
	}
}

// rollback after a changed database: a new revision with the old chart, every
// table equal to the backup, no NetworkPolicy left.
func TestRollbackRestoresDatabaseExactly(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.LoadSampleData()
	e.Bulk("csghub_server", 50000)
	dir := t.TempDir()
	b := runBackup(t, e, dir)
	want := testenv.TakeSnapshot(t, e.PG)

	e.MustHelm("upgrade", "csghub", "csghub/csghub", "--version", "1.15.0", "-n", e.Namespace, "--reuse-values", "--set", "server.replicas=2", "--wait")
	changeData(t, e)

	r := e.Plugin("rollback", "1", "--dir", dir, "--yes", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("rollback: exit %d: %s", r.Code, r.Stderr)
	}
	var res struct {
		NewRevision int    `json:"newRevision"`
		ToChart     string `json:"toChartVersion"`
		Status      string `json:"status"`
		Backup      string `json:"backupId"`
		Restore     struct {
			Extra []string `json:"extraDatabases"`
		} `json:"restore"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatal(err)
	}
	if res.NewRevision != 3 || res.ToChart != "1.15.0" || res.Status != "deployed" || res.Backup != b.Manifest.ID {
		t.Fatalf("rollback result %+v", res)
	}
	got := testenv.TakeSnapshot(t, e.PG)
	delete(got, "database created_after_backup") // kept and reported, not dropped
	testenv.RequireEqual(t, want, got, "after rollback")
	if !contains(res.Restore.Extra, "created_after_backup") {
		t.Errorf("extra database not reported: %+v", res.Restore.Extra)
	}
	assertNoNetworkPolicy(t, e)
	st := parseStatus(t, e.Plugin("status", "-o", "json"))
	if st.Revision != 3 || st.ChartVersion != "1.15.0" || st.Status != "deployed" || st.Pods[0].Ready != st.Pods[0].Total {
		t.Fatalf("status after rollback %+v", st)
	}
	h := e.Plugin("history", "--dir", dir, "-o", "json")
	var rows []struct {
		Revision int      `json:"revision"`
		Backups  []string `json:"backups"`
	}
	if h.Code != 0 || json.Unmarshal([]byte(h.Stdout), &rows) != nil || len(rows) != 3 || len(rows[0].Backups) != 1 || rows[0].Backups[0] != b.Manifest.ID {
		t.Fatalf("history: exit %d: %s", h.Code, h.Stdout)
	}
}

// A client holding a connection (and writing) during the restore is terminated;
// the restore still succeeds and the result equals the backup.
func TestRestoreTerminatesOpenConnections(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.LoadSampleData()
	e.Bulk("csghub_server", 50000)
	dir := t.TempDir()
	b := runBackup(t, e, dir)
	want := testenv.TakeSnapshot(t, e.PG)
	changeData(t, e)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.PG.ConnString("csghub_server"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	writerErr := make(chan error, 1)
	go func() { // writes until its session is killed
		for {
			if _, err := conn.Exec(ctx, "INSERT INTO bulk VALUES (-1, 'writer')"); err != nil {
				writerErr <- err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	r := e.Plugin("restore", "--backup", b.Manifest.ID, "--dir", dir, "--yes")
	if r.Code != 0 {
		t.Fatalf("restore: exit %d: %s", r.Code, r.Stderr)
	}
	select {
	case err := <-writerErr:
		// terminated: the server says so (57P01), or the socket is already gone
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code != "57P01" {
			t.Errorf("writer ended with SQL error %v, want its session terminated", err)
		}
		if !errors.As(err, &pgErr) && !conn.IsClosed() {
			t.Errorf("writer ended with %v but its connection is open", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the open connection was not terminated")
	}
	got := testenv.TakeSnapshot(t, e.PG)
	delete(got, "database created_after_backup")
	testenv.RequireEqual(t, want, got, "after restore")
	assertNoNetworkPolicy(t, e)
}

// A corrupt dump is refused before anything changes: no NetworkPolicy is ever
// created and the database is untouched.
func TestRestoreRefusesCorruptBackup(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.LoadSampleData()
	e.Bulk("csghub_server", 1000)
	dir := t.TempDir()
	b := runBackup(t, e, dir)
	changeData(t, e)
	before := testenv.TakeSnapshot(t, e.PG)
	path := filepath.Join(b.Path, "db-csghub_portal.sql.zst")
	data, _ := os.ReadFile(path)
	data[len(data)/3] ^= 0x10
	os.WriteFile(path, data, 0o600)

	w, err := e.C.Clientset.NetworkingV1().NetworkPolicies(e.Namespace).Watch(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	r := e.Plugin("restore", "--backup", b.Manifest.ID, "--dir", dir, "--yes")
	if r.Code == 0 || !strings.Contains(r.Stderr, "db-csghub_portal.sql.zst") {
		t.Fatalf("restore of a corrupt backup: exit %d: %s", r.Code, r.Stderr)
	}
	select {
	case ev := <-w.ResultChan():
		if ev.Type == watch.Added {
			t.Fatal("a NetworkPolicy was created for a corrupt backup")
		}
	case <-time.After(500 * time.Millisecond):
	}
	testenv.RequireEqual(t, before, testenv.TakeSnapshot(t, e.PG), "database after refused restore")
}

// waitCopying waits until a restore streams rows (COPY) into database db.
func waitCopying(t *testing.T, e *testenv.Env, db string, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, "the restore to stream "+db, func() bool {
		var n int
		c, err := e.PG.Connect(context.Background(), "postgres")
		if err != nil {
			return false
		}
		defer c.Close(context.Background())
		c.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'COPY%'", db).Scan(&n)
		return n > 0
	})
}

// injectError copies a backup with an SQL error in the middle of one dump (the
// manifest updated so the copy verifies): the restore must fail at that error.
func injectError(t *testing.T, b backupResult, db string) string {
	t.Helper()
	return copyBackupWith(t, b, "-2", true, func(name string, raw []byte) []byte {
		if name != db {
			return raw
		}
		at := bytes.Index(raw, []byte("\nCOPY "))
		if at < 0 {
			t.Fatalf("no COPY in the dump of %s", name)
		}
		return append(append(append([]byte{}, raw[:at+1]...), []byte("SELECT 1/0;\n")...), raw[at+1:]...)
	})
}

// A restore that fails halfway: non-zero exit, the error named, the NetworkPolicy removed.
func TestRestoreFailingHalfwayRemovesNetworkPolicy(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.LoadSampleData()
	dir := t.TempDir()
	b := runBackup(t, e, dir)
	id := injectError(t, b, "csghub_server")
	if v := e.Plugin("backup", "verify", id, "--dir", dir); v.Code != 0 {
		t.Fatalf("the injected copy should verify: %s", v.Stderr)
	}
	r := e.Plugin("restore", "--backup", id, "--dir", dir, "--yes")
	if r.Code == 0 || !strings.Contains(r.Stderr, "division by zero") || errorLines(r.Stderr) != 1 {
		t.Fatalf("restore with an SQL error: exit %d: %s", r.Code, r.Stderr)
	}
	assertNoNetworkPolicy(t, e)
}

// SIGTERM during a restore removes the NetworkPolicy; SIGKILL leaves it and the
// next command reports it with how to clear it.
func TestRestoreSignals(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.Bulk("csghub_server", 600000)
	dir := t.TempDir()
	b := runBackup(t, e, dir)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			p := e.StartPlugin("restore", "--backup", b.Manifest.ID, "--dir", dir, "--yes")
			testenv.Eventually(t, 60*time.Second, "the restore to block PostgreSQL", func() bool {
				_, err := e.C.Clientset.NetworkingV1().NetworkPolicies(e.Namespace).Get(context.Background(), "block-postgresql-access", metav1.GetOptions{})
				return err == nil
			})
			// the dump streams into the copy; the live database is never touched
			waitCopying(t, e, "csghub_server__restore", 60*time.Second)
			p.Cmd.Process.Signal(sig)
			code := p.Wait(t, 60*time.Second)
			if sig == syscall.SIGTERM {
				if code != 130 || !strings.Contains(p.Stderr.String(), "rerun `helm csghub restore --backup "+b.Manifest.ID+"`") {
					t.Errorf("after SIGTERM: exit %d, want 130 with the rerun command naming --backup %s: %s", code, b.Manifest.ID, p.Stderr)
				}
				if _, err := e.C.Clientset.NetworkingV1().NetworkPolicies(e.Namespace).Get(context.Background(), "block-postgresql-access", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
					t.Fatalf("NetworkPolicy block-postgresql-access still there after SIGTERM (err %v); restore exit %d:\n%s", err, code, p.Stderr)
				}
				if left := databasesEndingWith(t, e, "__restore"); len(left) != 0 {
					t.Fatalf("copies left after SIGTERM: %v", left)
				}
				return
			}
			st := e.Plugin("status", "-o", "json")
			if st.Code != 0 || !strings.Contains(st.Stdout, `"blockingNetworkPolicy"`) ||
				!strings.Contains(st.Stderr, "kubectl -n "+e.Namespace+" delete networkpolicy block-postgresql-access") {
				t.Fatalf("status after a killed restore does not report the policy: %s\n%s", st.Stdout, st.Stderr)
			}
			// rerunning the restore finishes it, clears the policy and the copy
			// the killed run was filling
			if r := e.Plugin("restore", "--backup", b.Manifest.ID, "--dir", dir, "--yes"); r.Code != 0 || !strings.Contains(r.Stderr, "csghub_server__restore left by an interrupted restore") {
				t.Fatalf("rerun restore: exit %d: %s", r.Code, r.Stderr)
			}
			assertNoNetworkPolicy(t, e)
			if left := databasesEndingWith(t, e, "__restore"); len(left) != 0 {
				t.Fatalf("copies left after the rerun: %v", left)
			}
		})
	}
}

// Bad rollback input: one-line error, non-zero exit, nothing changed.
func TestRollbackBadInput(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.MustHelm("upgrade", "csghub", "csghub/csghub", "--version", "1.15.0", "-n", e.Namespace, "--reuse-values", "--wait")
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"rollback", "99"}, "revision 99 not found"},
		{[]string{"rollback", "abc"}, "REVISION"},
		{[]string{"rollback", "0"}, "REVISION"},
		{[]string{"rollback", "-1"}, "unknown shorthand flag"},
		{[]string{"rollback", "2"}, "current revision"},
		{[]string{"rollback", "1"}, "no backup of revision 1"},
		{[]string{"rollback", "1", "--release", "nope"}, `"nope" not found`},
	} {
		r := e.Plugin(append(c.args, "--dir", dir, "--yes")...)
		if r.Code == 0 || !strings.Contains(r.Stderr, c.want) || !oneLineError(r.Stderr) {
			t.Errorf("%v: exit %d, stderr %q; want non-zero, one line with %q", c.args, r.Code, r.Stderr, c.want)
		}
	}
	st := parseStatus(t, e.Plugin("status", "-o", "json"))
	if st.Revision != 2 || st.History != 2 {
		t.Fatalf("a refused rollback changed the release: %+v", st)
	}
}

// copyBackupWith copies a backup under a new ID (same revision, so the catalog
// trusts it), passing each dump's SQL through edit; the manifest records the
// new file's size and sha256, and the SQL's raw size and sha256 only with
// rawToo (without, like the hand-made copy, they stay the original's).
func copyBackupWith(t *testing.T, b backupResult, suffix string, rawToo bool, edit func(db string, sql []byte) []byte) string {
	t.Helper()
	m := b.Manifest
	m.ID = m.ID + suffix
	dst := filepath.Join(filepath.Dir(b.Path), m.ID)
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	for i, d := range m.Dumps {
		rc, err := backup.OpenDump(filepath.Join(b.Path, d.Name))
		if err != nil {
			t.Fatal(err)
		}
		var sql bytes.Buffer
		sql.ReadFrom(rc)
		rc.Close()
		var z bytes.Buffer
		zw, _ := zstd.NewWriter(&z)
		raw := edit(d.Database, sql.Bytes())
		zw.Write(raw)
		zw.Close()
		os.WriteFile(filepath.Join(dst, d.Name), z.Bytes(), 0o600)
		m.Dumps[i].Bytes, m.Dumps[i].SHA256 = int64(z.Len()), sha256Bytes(z.Bytes())
		if rawToo {
			m.Dumps[i].RawBytes, m.Dumps[i].RawSHA256 = int64(len(raw)), sha256Bytes(raw)
		}
	}
	for _, f := range []string{"values.yaml", "values-all.yaml"} {
		data, _ := os.ReadFile(filepath.Join(b.Path, f))
		os.WriteFile(filepath.Join(dst, f), data, 0o600)
	}
	data, _ := json.MarshalIndent(m, "", "  ")
	os.WriteFile(filepath.Join(dst, "manifest.json"), data, 0o600)
	return m.ID
}

// A dump cut in half whose stored checksum was updated (raw size left) is
// proven incomplete before any DROP: exit 4, no NetworkPolicy, every
// database (csghub_xnet included) as it was.
func TestRestoreProvesEveryDumpBeforeDrop(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.LoadSampleData()
	e.Bulk("csghub_xnet", 5000)
	e.Bulk("csghub_server", 2000) // changeData edits it
	dir := t.TempDir()
	b := runBackup(t, e, dir)
	id := copyBackupWith(t, b, "-2", false, func(db string, sql []byte) []byte {
		if db == "csghub_xnet" {
			return sql[:len(sql)/2]
		}
		return sql
	})
	changeData(t, e)
	before := testenv.TakeSnapshot(t, e.PG)
	w, err := e.C.Clientset.NetworkingV1().NetworkPolicies(e.Namespace).Watch(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	r := e.Plugin("restore", "--backup", id, "--dir", dir, "--yes")
	if r.Code != 4 || !oneLineError(lastLine(r.Stderr)) || !strings.Contains(r.Stderr, "db-csghub_xnet.sql.zst") ||
		!strings.Contains(r.Stderr, "bytes of SQL, manifest says") {
		t.Fatalf("restore of a backup with a cut dump: exit %d, want 4 naming the dump: %s", r.Code, r.Stderr)
	}
	select {
	case ev := <-w.ResultChan():
		if ev.Type == watch.Added {
			t.Fatal("a NetworkPolicy was created for a backup with a cut dump")
		}
	case <-time.After(500 * time.Millisecond):
	}
	testenv.RequireEqual(t, before, testenv.TakeSnapshot(t, e.PG), "database after the refused restore")
}

// lastLine is the plugin's last stderr line (step lines come before the error).
func lastLine(stderr string) string {
	lines := strings.Split(pluginStderr(stderr), "\n")
	return lines[len(lines)-1]
}

// databases lists the server's databases whose name ends with suffix.
func databasesEndingWith(t *testing.T, e *testenv.Env, suffix string) []string {
	t.Helper()
	c, err := e.PG.Connect(context.Background(), "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	rows, err := c.Query(context.Background(), "SELECT datname FROM pg_database WHERE right(datname, length($1)) = $1 ORDER BY 1", suffix)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// No database is dropped before its replacement exists (issue 27 item 3):
//   - a manifest whose dumps' database names were swapped (re-hashed copy)
//     is refused by `backup verify` and by restore before any change (exit 4);
//   - a dump that fails half-way (an SQL error in its middle) leaves every
//     live database as it was (exit 1, not 6 "could not be undone"), and its
//     partial copy is removed;
//   - with PostgreSQL down the restore exits 1 saying the databases are
//     unchanged (nothing was dropped);
//   - the copies a killed run left (<db>__restore, and <db>__old of a
//     completed swap) are removed by the next restore, which lands exactly.
func TestRestoreNeverDropsBeforeReplacement(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.LoadSampleData()
	e.Bulk("csghub_server", 3000)
	dir := t.TempDir()
	b := runBackup(t, e, dir)
	want := testenv.TakeSnapshot(t, e.PG)
	changeData(t, e)
	before := testenv.TakeSnapshot(t, e.PG)

	// swapped names: each file still matches its checksums
	swapped := b
	swapped.Manifest.Dumps = append([]backup.Dump{}, b.Manifest.Dumps...)
	var xnet, portal int
	for i, d := range swapped.Manifest.Dumps {
		switch d.Database {
		case "csghub_xnet":
			xnet = i
		case "csghub_portal":
			portal = i
		}
	}
	swapped.Manifest.Dumps[xnet].Database, swapped.Manifest.Dumps[portal].Database = "csghub_portal", "csghub_xnet"
	swappedID := copyBackupWith(t, swapped, "-swapped", true, func(_ string, sql []byte) []byte { return sql })
	if v := e.Plugin("backup", "verify", swappedID, "--dir", dir); v.Code != 4 || !strings.Contains(v.Stderr, "the manifest says") {
		t.Fatalf("backup verify of swapped names: exit %d, want 4: %s", v.Code, v.Stderr)
	}
	if r := e.Plugin("restore", "--backup", swappedID, "--dir", dir, "--yes"); r.Code != 4 || !oneLineError(lastLine(r.Stderr)) || !strings.Contains(r.Stderr, "the manifest says") {
		t.Fatalf("restore of swapped names: exit %d, want 4: %s", r.Code, r.Stderr)
	}
	testenv.RequireEqual(t, before, testenv.TakeSnapshot(t, e.PG), "after the refused restore of swapped names")

	// an error half-way through csghub_server's dump
	brokenID := injectError(t, b, "csghub_server")
	r := e.Plugin("restore", "--backup", brokenID, "--dir", dir, "--yes")
	if r.Code != 1 || errorLines(r.Stderr) != 1 || !strings.Contains(r.Stderr, "division by zero") || !strings.Contains(r.Stderr, "live databases are unchanged") {
		t.Fatalf("restore failing half-way: exit %d, want 1 saying the databases are unchanged: %s", r.Code, r.Stderr)
	}
	testenv.RequireEqual(t, before, testenv.TakeSnapshot(t, e.PG), "after a restore that failed half-way")
	if left := databasesEndingWith(t, e, "__restore"); len(left) != 0 {
		t.Fatalf("copies left after a failed restore: %v", left)
	}
	assertNoNetworkPolicy(t, e)

	// a killed run's leftovers: removed, and the restore lands exactly
	e.Exec("postgres", "CREATE DATABASE csghub_server__restore")
	e.Exec("postgres", "CREATE DATABASE csghub_portal__old")
	if r := e.Plugin("restore", "--backup", b.Manifest.ID, "--dir", dir, "--yes"); r.Code != 0 || !strings.Contains(r.Stderr, "csghub_server__restore left by an interrupted restore") {
		t.Fatalf("restore over a killed run's leftovers: exit %d: %s", r.Code, r.Stderr)
	}
	got := testenv.TakeSnapshot(t, e.PG)
	delete(got, "database created_after_backup")
	testenv.RequireEqual(t, want, got, "after the restore")
	for _, suffix := range []string{"__restore", "__old"} {
		if left := databasesEndingWith(t, e, suffix); len(left) != 0 {
			t.Fatalf("databases %v left after a restore", left)
		}
	}

	// PostgreSQL down: nothing can have been dropped
	if err := e.PG.Stop(); err != nil {
		t.Fatal(err)
	}
	r = e.Plugin("restore", "--backup", b.Manifest.ID, "--dir", dir, "--yes")
	if r.Code != 1 || errorLines(r.Stderr) != 1 || !strings.Contains(r.Stderr, "live databases are unchanged") {
		t.Fatalf("restore with PostgreSQL down: exit %d, want 1 saying the databases are unchanged: %s", r.Code, r.Stderr)
	}
	assertNoNetworkPolicy(t, e)
}
