package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/testenv"
)

type backupResult struct {
	Manifest backup.Manifest `json:"manifest"`
	Path     string          `json:"path"`
	Pruned   []string        `json:"pruned"`
}

func runBackup(t *testing.T, e *testenv.Env, dir string, extra ...string) backupResult {
	t.Helper()
	r := e.Plugin(append([]string{"backup", "--dir", dir, "-o", "json"}, extra...)...)
	if r.Code != 0 {
		t.Fatalf("backup: exit %d: %s", r.Code, r.Stderr)
	}
	var res backupResult
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("backup json: %v\n%s", err, r.Stdout)
	}
	return res
}

func postgresPassword(t *testing.T, e *testenv.Env) string {
	t.Helper()
	sec, err := e.C.Clientset.CoreV1().Secrets(e.Namespace).Get(context.Background(), e.Release+"-postgresql", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return string(sec.Data["POSTGRES_PASSWORD"])
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

// restoreByHand replays a backup into a scratch server the way docs/backups.md tells
// an operator to: zstd -dc | psql, roles first.
func restoreByHand(t *testing.T, e *testenv.Env, b backupResult) *testenv.Snapshot {
	t.Helper()
	scratch, err := e.C.StartPostgres(filepath.Join(e.C.Dir, "scratch-"+strconv.FormatInt(time.Now().UnixNano(), 36)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { scratch.Remove() })
	for _, d := range b.Manifest.Dumps {
		f := filepath.Join(b.Path, d.Name)
		// docs/backups.md's commands: roles without stopping (the csghub role exists),
		// then each database dropped and replayed from its dump
		script := `zstd -dc "$1" | psql -X -q -v ON_ERROR_STOP=0 -U csghub -d postgres >/dev/null`
		if d.Database != "" {
			script = `psql -X -q -v ON_ERROR_STOP=1 -U csghub -d template1 -c "DROP DATABASE IF EXISTS \"$2\" WITH (FORCE)" &&
				zstd -dc "$1" | psql -X -q -v ON_ERROR_STOP=1 -U csghub -d template1 >/dev/null`
		}
		cmd := exec.Command("bash", "-c", script, "restore", f, d.Database)
		cmd.Env = append(os.Environ(), scratch.Env()...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("restore %s by hand: %v\n%s", d.Name, err, out)
		}
	}
	snap := testenv.TakeSnapshot(t, scratch)
	return &snap
}

// Backup of a 1.15.0 release: manifest right, verify passes, the dump restores
// into a scratch server with identical content, modes 0700/0600, no password
// anywhere (outputs, files, any process's argv while it runs).
func TestBackupOfRelease(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0", "--set", "server.replicas=1")
	e.LoadSampleData()
	e.Bulk("csghub_server", 20000)
	dir := filepath.Join(t.TempDir(), "backups")
	password := postgresPassword(t, e)

	// watch every process's argv while the backup runs
	stop := make(chan struct{})
	leaked := make(chan string, 1)
	go func() {
		for {
			select {
			case <-stop:
				close(leaked)
				return
			default:
			}
			procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
			for _, p := range procs {
				if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), password) {
					select {
					case leaked <- p + ": " + strings.ReplaceAll(string(b), "\x00", " "):
					default:
					}
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	r := e.Plugin("backup", "--dir", dir, "-o", "json")
	close(stop)
	if l, ok := <-leaked; ok && l != "" {
		t.Errorf("password seen in a process's argv: %s", l)
	}
	if r.Code != 0 {
		t.Fatalf("backup: exit %d: %s", r.Code, r.Stderr)
	}
	if strings.Contains(r.Stdout+r.Stderr, password) {
		t.Error("password printed by backup")
	}
	var b backupResult
	if err := json.Unmarshal([]byte(r.Stdout), &b); err != nil {
		t.Fatal(err)
	}
	m := b.Manifest
	if m.Release != "csghub" || m.Namespace != e.Namespace || m.Revision != 1 || m.Chart != "csghub" ||
		m.ChartVersion != "1.15.0" || m.AppVersion == "" || !strings.HasPrefix(m.PostgresVersion, "15.") ||
		m.StartedAt.IsZero() || m.FinishedAt.Before(m.StartedAt) || m.PluginVersion != "0.1.0" || m.Compression != "zstd" {
		t.Fatalf("manifest fields wrong: %+v", m)
	}
	wantID := fmt.Sprintf("1-%s", m.StartedAt.Format("20060102T150405Z"))
	if m.ID != wantID || b.Path != filepath.Join(dir, e.Namespace, "csghub", wantID) {
		t.Fatalf("id %s path %s; want %s under %s/%s/csghub", m.ID, b.Path, wantID, dir, e.Namespace)
	}
	for _, db := range []string{"csghub_server", "csghub_portal", "csghub_casdoor", "postgres"} {
		if !contains(m.Databases, db) {
			t.Errorf("database %s missing from %v", db, m.Databases)
		}
	}
	if len(m.Dumps) != len(m.Databases)+1 {
		t.Errorf("%d dumps for %d databases (+ globals)", len(m.Dumps), len(m.Databases))
	}
	if got := sha256File(t, filepath.Join(b.Path, "values.yaml")); got != m.Values.SHA256 {
		t.Errorf("values sha256 %s, manifest %s", got, m.Values.SHA256)
	}
	values, _ := os.ReadFile(filepath.Join(b.Path, "values.yaml"))
	if !strings.Contains(string(values), "replicas: 1") {
		t.Errorf("user values not in values.yaml:\n%s", values)
	}
	helmValues := e.MustHelm("get", "values", "csghub", "-n", e.Namespace, "-o", "yaml")
	if strings.TrimSpace(helmValues) != strings.TrimSpace(string(values)) {
		t.Errorf("values.yaml differs from helm get values:\n%s\nvs\n%s", values, helmValues)
	}

	// modes: folders 0700, files 0600; no temporary leftovers
	err := filepath.Walk(filepath.Join(dir, e.Namespace), func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		if strings.HasSuffix(p, ".tmp") || strings.HasSuffix(p, ".partial") {
			t.Errorf("leftover %s", p)
		}
		if !fi.IsDir() {
			data, _ := os.ReadFile(p)
			if strings.Contains(string(data), password) && !strings.HasSuffix(p, ".zst") {
				t.Errorf("password stored in %s", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	if v := e.Plugin("backup", "verify", m.ID, "--dir", dir); v.Code != 0 {
		t.Fatalf("backup verify: exit %d: %s%s", v.Code, v.Stdout, v.Stderr)
	}
	// the dump restored by hand into a scratch server equals the source
	testenv.RequireEqual(t, testenv.TakeSnapshot(t, e.PG), *restoreByHand(t, e, b), "scratch restore")

	l := e.Plugin("backup", "list", "--dir", dir, "-o", "json")
	var list []backup.Entry
	if l.Code != 0 || json.Unmarshal([]byte(l.Stdout), &list) != nil || len(list) != 1 || !list[0].Complete || list[0].ID != m.ID {
		t.Fatalf("backup list: exit %d: %s", l.Code, l.Stdout)
	}
}

// One flipped byte in a dump: verify fails and names the file.
func TestBackupVerifyDetectsCorruption(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.LoadSampleData()
	dir := t.TempDir()
	b := runBackup(t, e, dir)
	name := "db-csghub_server.sql.zst"
	path := filepath.Join(b.Path, name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	v := e.Plugin("backup", "verify", b.Manifest.ID, "--dir", dir)
	if v.Code == 0 || !strings.Contains(v.Stderr, name) || !oneLineError(v.Stderr) {
		t.Fatalf("verify of a corrupt backup: exit %d, stderr %q; want non-zero naming %s", v.Code, v.Stderr, name)
	}
}

// SIGKILL mid-dump leaves no complete-looking backup; SIGINT leaves nothing.
func TestBackupKilledOrInterruptedMidDump(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.Bulk("csghub_server", 600000)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			p := e.StartPlugin("backup", "--dir", dir)
			relDir := filepath.Join(dir, e.Namespace, "csghub")
			testenv.Eventually(t, 60*time.Second, "the dump to be under way", func() bool {
				files, _ := filepath.Glob(filepath.Join(relDir, "*.partial", ".db-csghub_server.sql.zst.tmp"))
				if len(files) == 0 {
					return false
				}
				fi, err := os.Stat(files[0])
				return err == nil && fi.Size() > 64*1024
			})
			if p.Done() {
				t.Fatal("backup finished before it could be interrupted")
			}
			p.Cmd.Process.Signal(sig)
			code := p.Wait(t, 30*time.Second)
			entries, _ := os.ReadDir(relDir)
			l := e.Plugin("backup", "list", "--dir", dir, "-o", "json")
			var list []backup.Entry
			if err := json.Unmarshal([]byte(l.Stdout), &list); err != nil {
				t.Fatalf("list: %v: %s %s", err, l.Stdout, l.Stderr)
			}
			for _, it := range list {
				if it.Complete {
					t.Fatalf("a complete backup exists after %s: %+v", sig, it)
				}
			}
			if sig == syscall.SIGINT {
				if code != 130 {
					t.Errorf("exit %d after SIGINT, want 130; stderr %s", code, p.Stderr)
				}
				if len(entries) != 0 {
					t.Errorf("SIGINT left %d folder(s) behind", len(entries))
				}
				return
			}
			if len(list) != 1 || list[0].Complete {
				t.Fatalf("after SIGKILL backup list = %+v, want one incomplete entry", list)
			}
			if v := e.Plugin("backup", "verify", list[0].ID, "--dir", dir); v.Code == 0 {
				t.Fatal("verify accepted the killed backup")
			}
			table := e.Plugin("backup", "list", "--dir", dir)
			if !strings.Contains(table.Stdout, "NOT USABLE") {
				t.Fatalf("backup list table does not flag the killed backup:\n%s", table.Stdout)
			}
		})
	}
}

// Retention keeps --keep backups, never the newest nor a rollback target:
// the only backup of the previous revision survives any number of backups
// of the current one, and `rollback` to it still restores the database.
func TestBackupRetention(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.LoadSampleData()
	dir := t.TempDir()
	var ids []string
	for i := 0; i < 4; i++ {
		b := runBackup(t, e, dir, "--keep", "3")
		ids = append(ids, b.Manifest.ID)
		time.Sleep(1100 * time.Millisecond) // distinct timestamps
	}
	list := backupList(t, e, dir)
	if len(list) != 3 || list[0].ID != ids[1] || list[2].ID != ids[3] {
		t.Fatalf("after 4 backups with --keep 3: %v, want %v", entryIDs(list), ids[1:])
	}
	for _, k := range []string{"1", "0", "-1"} {
		if r := e.Plugin("backup", "--dir", dir, "--keep", k); r.Code != 2 || !oneLineError(r.Stderr) {
			t.Fatalf("--keep %s: exit %d, want 2 (%s)", k, r.Code, r.Stderr)
		}
	}
	if got := backupList(t, e, dir); len(got) != 3 {
		t.Fatalf("refused --keep changed the catalog: %v", entryIDs(got))
	}

	// revision 2; then three backups of it with the default --keep 3
	want := testenv.TakeSnapshot(t, e.PG)
	e.MustHelm("upgrade", e.Release, "csghub/csghub", "--version", "1.15.0", "-n", e.Namespace, "--reuse-values", "--set", "server.replicas=1")
	rev1 := ids[3]
	for i := 0; i < 3; i++ {
		runBackup(t, e, dir)
		time.Sleep(1100 * time.Millisecond)
	}
	list = backupList(t, e, dir)
	var kept *backup.Entry
	for i := range list {
		if list[i].ID == rev1 {
			kept = &list[i]
		}
	}
	if kept == nil {
		t.Fatalf("the only complete backup of revision 1 (%s) was pruned: %v", rev1, entryIDs(list))
	}
	if !strings.Contains(kept.Kept, "rollback target") {
		t.Fatalf("backup list does not say why %s is kept: %q", rev1, kept.Kept)
	}
	if tbl := e.Plugin("backup", "list", "--dir", dir); !strings.Contains(tbl.Stdout, "KEPT: rollback target: newest backup of revision 1") {
		t.Fatalf("backup list table does not mark the rollback target:\n%s", tbl.Stdout)
	}
	e.Exec("csghub_server", "CREATE TABLE after_backup (x int)")
	if r := e.Plugin("rollback", "1", "--yes", "--dir", dir, "--timeout", "2m"); r.Code != 0 {
		t.Fatalf("rollback 1 after the retention runs: exit %d: %s", r.Code, r.Stderr)
	}
	testenv.RequireEqual(t, want, testenv.TakeSnapshot(t, e.PG), "database after rollback 1")
}

func backupList(t *testing.T, e *testenv.Env, dir string) []backup.Entry {
	t.Helper()
	l := e.Plugin("backup", "list", "--dir", dir, "-o", "json")
	var list []backup.Entry
	if err := json.Unmarshal([]byte(l.Stdout), &list); err != nil {
		t.Fatalf("backup list: exit %d %v: %s %s", l.Code, err, l.Stdout, l.Stderr)
	}
	return list
}

// Faults: each a one-line error, non-zero exit, nothing left in the catalog.
func TestBackupFaults(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.Bulk("csghub_server", 400000)
	noFile := func(t *testing.T, dir string) {
		t.Helper()
		var found []string
		filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				found = append(found, p)
			}
			return nil
		})
		if len(found) > 0 {
			t.Fatalf("files left behind: %v", found)
		}
	}
	oneLine := func(t *testing.T, r testenv.Result, want string) {
		t.Helper()
		if r.Code == 0 || !oneLineError(r.Stderr) || !strings.Contains(r.Stderr, want) {
			t.Fatalf("exit %d, stderr %q; want non-zero, one line containing %q", r.Code, r.Stderr, want)
		}
	}
	t.Run("release not found", func(t *testing.T) {
		dir := t.TempDir()
		oneLine(t, e.Plugin("backup", "--dir", dir, "--release", "nope"), `"nope" not found`)
		noFile(t, dir)
	})
	t.Run("destination unwritable", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "a-file")
		os.WriteFile(file, nil, 0o600)
		// one exit code for an unusable backup folder: 4, as upgrade's preflight
		r := e.Plugin("backup", "--dir", filepath.Join(file, "sub"))
		oneLine(t, r, "not a directory")
		u := e.Plugin("upgrade", "--yes", "--version", "2.0.0", "--dir", filepath.Join(file, "sub"))
		if r.Code != 4 || u.Code != 4 || errorLines(u.Stderr) != 1 || !strings.Contains(u.Stderr, "is not writable") {
			t.Fatalf("unwritable --dir: backup exit %d, upgrade exit %d (%s); want 4 for both", r.Code, u.Code, u.Stderr)
		}
	})
	t.Run("destination full", func(t *testing.T) {
		dir := smallDisk(t, "512k")
		r := e.Plugin("backup", "--dir", dir)
		if r.Code == 0 || !oneLineError(r.Stderr) || !strings.Contains(r.Stderr, "no space left") {
			t.Fatalf("backup onto a full disk: exit %d, stderr %q", r.Code, r.Stderr)
		}
		noFile(t, dir)
	})
	t.Run("postgres down", func(t *testing.T) {
		dir := t.TempDir()
		if err := e.PG.Stop(); err != nil {
			t.Fatal(err)
		}
		r := e.Plugin("backup", "--dir", dir)
		// bring it back for the next cases
		if _, err := e.C.Script(nil, "scripts/pg.sh", "start", e.PG.DataDir, strconv.Itoa(e.PG.Port)); err != nil {
			t.Fatal(err)
		}
		oneLine(t, r, "psql")
		noFile(t, dir)
	})
	t.Run("dump fails halfway", func(t *testing.T) {
		dir := t.TempDir()
		p := e.StartPlugin("backup", "--dir", dir)
		testenv.Eventually(t, 60*time.Second, "pg_dump of csghub_server to run", func() bool {
			var n int
			c, err := e.PG.Connect(context.Background(), "postgres")
			if err != nil {
				return false
			}
			defer c.Close(context.Background())
			c.QueryRow(context.Background(), "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pg_dump' AND datname = 'csghub_server'").Scan(&n)
			return n > 0
		})
		code := p.Wait(t, 60*time.Second)
		if code == 0 || !strings.Contains(p.Stderr.String(), "csghub_server") {
			t.Fatalf("dump killed halfway: exit %d, stderr %s", code, p.Stderr)
		}
		noFile(t, dir)
	})
	t.Run("database pod missing", func(t *testing.T) {
		dir := t.TempDir()
		e.Kubectl("-n", e.Namespace, "delete", "statefulset", "csghub-postgresql", "--wait=true")
		e.Kubectl("-n", e.Namespace, "wait", "--for=delete", "pod/csghub-postgresql-0", "--timeout=60s")
		oneLine(t, e.Plugin("backup", "--dir", dir), "csghub-postgresql-0 not found")
		noFile(t, dir)
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func entryIDs(list []backup.Entry) []string {
	var out []string
	for _, e := range list {
		out = append(out, e.ID)
	}
	return out
}

func sha256Bytes(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// A user who may read the release but not exec into pods gets a one-line
// permission error and no backup.
func TestBackupExecForbiddenByRBAC(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	ctx := context.Background()
	cs := e.C.Clientset
	ns := e.Namespace
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets", "pods", "configmaps", "services"},
			Verbs: []string{"get", "list", "watch"}},
			// the release lock (backup takes it), so the exec check is reached
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update", "delete"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "reader", Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "reader", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.LoadFromFile(e.C.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cur := cfg.Contexts[cfg.CurrentContext]
	cfg.AuthInfos["reader"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts["reader"] = &clientcmdapi.Context{Cluster: cur.Cluster, AuthInfo: "reader"}
	cfg.CurrentContext = "reader"
	kc := filepath.Join(t.TempDir(), "reader.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, kc); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := e.RunHelm([]string{"KUBECONFIG=" + kc}, "-n", ns, "csghub", "backup", "--dir", dir)
	if r.Code != 4 || !oneLineError(r.Stderr) || !strings.Contains(r.Stderr, "not allowed to exec") {
		t.Fatalf("backup without pods/exec: exit %d, stderr %q; want exit 4 and a one-line permission error", r.Code, r.Stderr)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, ns, "csghub")); len(entries) != 0 {
		t.Fatalf("backup folder left: %v", entries)
	}
}

// smallDisk mounts a tmpfs of the given size (the tests run as root, as CI does)
// and unmounts it when the test ends.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a small tmpfs (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

// The catalog trusts a backup's manifest, not its folder name: revision 1's
// backup renamed to revision 2's name is not usable (verify, list, rollback
// 2 refuse it; nothing changes). A backup others can read is reported by
// verify and list and refused by restore unless --allow-insecure-permissions.
func TestCatalogTrust(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.LoadSampleData()
	dir := t.TempDir()
	b1 := runBackup(t, e, dir)
	for i := 0; i < 2; i++ { // revisions 2 and 3
		e.MustHelm("upgrade", e.Release, "csghub/csghub", "--version", "1.15.0", "-n", e.Namespace, "--reuse-values", "--set", fmt.Sprintf("server.replicas=%d", 1+i%2))
	}
	fake := "2-" + strings.SplitN(b1.Manifest.ID, "-", 2)[1]
	copyDir(t, b1.Path, filepath.Join(filepath.Dir(b1.Path), fake))
	before := testenv.TakeSnapshot(t, e.PG)

	v := e.Plugin("backup", "verify", fake, "--dir", dir)
	if v.Code != 4 || !oneLineError(v.Stderr) || !strings.Contains(v.Stderr, "not trusted: its manifest says") || !strings.Contains(v.Stderr, "revision 1") {
		t.Fatalf("verify of a renamed backup: exit %d: %s", v.Code, v.Stderr)
	}
	var renamed *backup.Entry
	list := backupList(t, e, dir)
	for i := range list {
		if list[i].ID == fake {
			renamed = &list[i]
		}
	}
	if renamed == nil || renamed.Complete || !strings.Contains(renamed.Problem, "not trusted") {
		t.Fatalf("backup list shows the renamed backup as %+v", renamed)
	}
	if tbl := e.Plugin("backup", "list", "--dir", dir); !strings.Contains(tbl.Stdout, "NOT USABLE: not trusted") {
		t.Fatalf("backup list table:\n%s", tbl.Stdout)
	}
	rb := e.Plugin("rollback", "2", "--yes", "--dir", dir)
	if rb.Code != 4 || !oneLineError(rb.Stderr) || !strings.Contains(rb.Stderr, "no backup of revision 2") {
		t.Fatalf("rollback 2 with only a renamed backup: exit %d: %s", rb.Code, rb.Stderr)
	}
	if r := e.Plugin("restore", "--backup", fake, "--dir", dir, "--yes"); r.Code != 4 || !oneLineError(r.Stderr) {
		t.Fatalf("restore of a renamed backup: exit %d: %s", r.Code, r.Stderr)
	}
	st := parseStatus(t, e.Plugin("status", "-o", "json"))
	if st.Revision != 3 || st.Status != "deployed" {
		t.Fatalf("release changed by refused commands: %+v", st)
	}
	testenv.RequireEqual(t, before, testenv.TakeSnapshot(t, e.PG), "database after the refused commands")

	// permissions others can read
	os.RemoveAll(filepath.Join(filepath.Dir(b1.Path), fake))
	os.Chmod(b1.Path, 0o755)
	os.Chmod(filepath.Join(b1.Path, "globals.sql.zst"), 0o644)
	v = e.Plugin("backup", "verify", b1.Manifest.ID, "--dir", dir)
	if v.Code != 0 || !strings.Contains(v.Stdout, "WARNING: readable or writable by others: folder 0755, globals.sql.zst 0644") {
		t.Fatalf("verify of a 0755 backup: exit %d: %s %s", v.Code, v.Stdout, v.Stderr)
	}
	if tbl := e.Plugin("backup", "list", "--dir", dir); !strings.Contains(tbl.Stdout, "WARNING: readable by others (folder 0755, globals.sql.zst 0644)") {
		t.Fatalf("backup list table:\n%s", tbl.Stdout)
	}
	r := e.Plugin("restore", "--backup", b1.Manifest.ID, "--dir", dir, "--yes")
	if r.Code != 4 || !oneLineError(r.Stderr) || !strings.Contains(r.Stderr, "--allow-insecure-permissions") {
		t.Fatalf("restore of a 0755 backup: exit %d: %s", r.Code, r.Stderr)
	}
	assertNoNetworkPolicy(t, e)
	testenv.RequireEqual(t, before, testenv.TakeSnapshot(t, e.PG), "database after the refused restore")
	e.Exec("csghub_server", "CREATE TABLE after_backup (x int)")
	if r := e.Plugin("restore", "--backup", b1.Manifest.ID, "--dir", dir, "--yes", "--allow-insecure-permissions"); r.Code != 0 {
		t.Fatalf("restore --allow-insecure-permissions: exit %d: %s", r.Code, r.Stderr)
	}
	testenv.RequireEqual(t, before, testenv.TakeSnapshot(t, e.PG), "database after restore --allow-insecure-permissions")

	// issue 27 item 10: a release folder others may write into (the backup
	// can be swapped for another one) is reported and refused like the rest
	os.Chmod(b1.Path, 0o700)
	os.Chmod(filepath.Join(b1.Path, "globals.sql.zst"), 0o600)
	relDir := filepath.Dir(b1.Path)
	os.Chmod(relDir, 0o777)
	defer os.Chmod(relDir, 0o700)
	v = e.Plugin("backup", "verify", b1.Manifest.ID, "--dir", dir)
	if v.Code != 0 || !strings.Contains(v.Stdout, "parent folder "+relDir+" 0777, writable by others") {
		t.Fatalf("verify with a 0777 release folder: exit %d: %s %s", v.Code, v.Stdout, v.Stderr)
	}
	if r := e.Plugin("restore", "--backup", b1.Manifest.ID, "--dir", dir, "--yes"); r.Code != 4 || !strings.Contains(r.Stderr, "chmod go-w "+relDir) {
		t.Fatalf("restore with a 0777 release folder: exit %d: %s", r.Code, r.Stderr)
	}
}

// copyDir copies a backup folder (flat) keeping its files' modes.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.Mkdir(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	items, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		data, err := os.ReadFile(filepath.Join(src, it.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, it.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// `backup` takes the release lock (issue 27 item 4): while a restore reads
// the oldest backup, a `backup --keep 2` that would prune it is refused
// (exit 4, lock held) instead of deleting it under the restore, which
// finishes.
func TestBackupWaitsForRestoreLock(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.Bulk("csghub_server", 400000)
	dir := t.TempDir()
	oldest := runBackup(t, e, dir)
	runBackup(t, e, dir)
	p := e.StartPlugin("restore", "--backup", oldest.Manifest.ID, "--dir", dir, "--yes")
	waitCopying(t, e, "csghub_server__restore", 60*time.Second)
	r := e.Plugin("backup", "--dir", dir, "--keep", "2")
	if r.Code != 4 || !oneLineError(r.Stderr) || !strings.Contains(r.Stderr, "holds the lock") {
		t.Errorf("backup during a restore: exit %d, want 4 (lock held): %s", r.Code, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(oldest.Path, "manifest.json")); err != nil {
		t.Errorf("the backup being restored was pruned: %v", err)
	}
	if code := p.Wait(t, 120*time.Second); code != 0 {
		t.Fatalf("restore: exit %d: %s", code, p.Stderr)
	}
	// and once the restore is done, backup and its retention run
	res := runBackup(t, e, dir, "--keep", "2")
	if len(res.Pruned) != 1 || res.Pruned[0] != oldest.Manifest.ID {
		t.Fatalf("pruned %v after the restore, want [%s]", res.Pruned, oldest.Manifest.ID)
	}
}
