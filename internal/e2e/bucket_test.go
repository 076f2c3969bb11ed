package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"github.com/minio/minio-go/v7"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/devenv"
	"github.com/opencsgs/helm-csghub/internal/testenv"
)

// The backup bucket's own MinIO server and credentials (not the chart's
// object storage, which plays the release's MinIO).
const (
	bucketUser   = "backup-operator"
	bucketSecret = "bkp-secret-Zq81x7"
	bucketName   = "csghub-backups"
)

type backupBucket struct {
	endpoint string
	client   *minio.Client
	prefix   string // the test's location prefix inside the bucket
	loc      string // s3://bucket/prefix
}

func startBackupBucket(t *testing.T, e *testenv.Env) *backupBucket {
	t.Helper()
	ports, err := devenv.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.C.StartMinIO(filepath.Join(t.TempDir(), "backup-s3"), ports[0], bucketUser, bucketSecret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.MakeBuckets(ctx, "", bucketName); err != nil {
		t.Fatal(err)
	}
	cl, err := m.Client()
	if err != nil {
		t.Fatal(err)
	}
	b := &backupBucket{endpoint: "http://" + m.Endpoint, client: cl, prefix: "ops/" + e.Namespace}
	b.loc = "s3://" + bucketName + "/" + b.prefix
	// as an operator's shell would have them: nothing on the command line
	e.ExtraEnv = append(e.ExtraEnv, "AWS_ENDPOINT_URL_S3="+b.endpoint, "AWS_ACCESS_KEY_ID="+bucketUser,
		"AWS_SECRET_ACCESS_KEY="+bucketSecret, "AWS_REGION=us-east-1", "AWS_PROFILE=", "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(t.TempDir(), "none"))
	return b
}

// keys lists the objects under the test's prefix + sub.
func (b *backupBucket) keys(t *testing.T, sub string) []string {
	t.Helper()
	var keys []string
	for o := range b.client.ListObjects(context.Background(), bucketName, minio.ListObjectsOptions{Prefix: b.prefix + "/" + sub, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, strings.TrimPrefix(o.Key, b.prefix+"/"))
	}
	return keys
}

// uploads lists the unfinished uploads of the files of backup dir (MinIO
// lists them by exact key only).
func (b *backupBucket) uploads(t *testing.T, dir string, files []string) []string {
	t.Helper()
	var keys []string
	for _, f := range files {
		for u := range b.client.ListIncompleteUploads(context.Background(), bucketName, b.prefix+"/"+dir+"/"+f, false) {
			if u.Err != nil {
				t.Fatal(u.Err)
			}
			keys = append(keys, u.Key)
		}
	}
	return keys
}

// newBackupDir waits for a backup other than those of known to have
// written its values (its dumps come next) and returns its key prefix.
func (b *backupBucket) newBackupDir(t *testing.T, relDir string, known ...string) string {
	t.Helper()
	var dir string
	testenv.Eventually(t, 60*time.Second, "a new backup in the bucket", func() bool {
		for _, k := range b.keys(t, relDir+"/") {
			id := strings.Split(strings.TrimPrefix(k, relDir+"/"), "/")[0]
			if strings.HasSuffix(k, "/values-all.yaml") && !contains(known, id) {
				dir = relDir + "/" + id
				return true
			}
		}
		return false
	})
	return dir
}

func (b *backupBucket) get(t *testing.T, key string) []byte {
	t.Helper()
	obj, err := b.client.GetObject(context.Background(), bucketName, b.prefix+"/"+key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	data, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return data
}

func (b *backupBucket) put(t *testing.T, key string, data []byte) {
	t.Helper()
	if _, err := b.client.PutObject(context.Background(), bucketName, b.prefix+"/"+key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}

func listIn(t *testing.T, e *testenv.Env, args ...string) []backup.Entry {
	t.Helper()
	r := e.Plugin(append([]string{"backup", "list", "-o", "json"}, args...)...)
	var list []backup.Entry
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &list) != nil {
		t.Fatalf("backup list: exit %d: %s %s", r.Code, r.Stdout, r.Stderr)
	}
	return list
}

// Backups kept in a bucket serve every command without a local copy: the
// upgrade's backup goes to the bucket and its automatic rollback restores
// from it; another operator (another HELM_DATA_HOME, nothing local) lists,
// verifies and rolls back from it; a killed upload never looks complete
// and the next backup removes it; a tampered object is refused before any
// DROP; retention keeps the rollback target; the credentials appear
// nowhere the plugin writes.
func TestBackupsInBucket(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("2.0.0")
	e.LoadSampleData()
	e.Bulk("csghub_server", 20000)
	b := startBackupBucket(t, e)
	e.ExtraEnv = append(e.ExtraEnv, backup.LocationEnv+"="+b.loc) // every command, no flag
	localCatalog := filepath.Join(e.C.HelmHome(e.Helm), "data", "csghub", "backups", e.Namespace)
	var outputs []string
	run := func(args ...string) testenv.Result {
		t.Helper()
		r := e.Plugin(args...)
		outputs = append(outputs, r.Stdout, r.Stderr)
		return r
	}
	want := testenv.TakeSnapshot(t, e.PG)

	// the upgrade's backup goes to the bucket; 2.0.1 never becomes Ready and
	// the automatic rollback restores the database from the bucket
	r := run("upgrade", "--version", "2.0.1", "--yes", "--timeout", "20s", "-o", "json")
	if r.Code != 5 {
		t.Fatalf("upgrade to 2.0.1: exit %d, want 5 (rolled back)\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	wantDeployed(t, e, "2.0.0", 3, "after the automatic rollback")
	testenv.RequireEqual(t, want, testenv.TakeSnapshot(t, e.PG), "database after the automatic rollback from the bucket")
	list := listIn(t, e)
	if len(list) != 1 || !list[0].Complete || list[0].Revision != 1 || !strings.HasPrefix(list[0].Path, b.loc+"/"+e.Namespace+"/csghub/") {
		t.Fatalf("catalog in the bucket: %+v", list)
	}
	first := list[0]
	objs := b.keys(t, e.Namespace+"/csghub/"+first.ID+"/")
	if !contains(objs, e.Namespace+"/csghub/"+first.ID+"/manifest.json") || !contains(objs, e.Namespace+"/csghub/"+first.ID+"/upgrade-journal.json") {
		t.Fatalf("objects of the upgrade's backup: %v", objs)
	}
	if _, err := os.Stat(localCatalog); !os.IsNotExist(err) {
		t.Fatalf("the local catalog was used: %s (%v)", localCatalog, err)
	}

	t.Run("another operator rolls back from the bucket", func(t *testing.T) {
		changeData(t, e)
		other := t.TempDir() // an empty HELM_DATA_HOME; the plugin found where it is installed
		env := []string{"HELM_DATA_HOME=" + other, "HELM_PLUGINS=" + filepath.Join(e.C.HelmHome(e.Helm), "data", "plugins"), backup.LocationEnv + "="}
		h := e.RunHelm(env, "-n", e.Namespace, "csghub", "history", "--backup-location", b.loc, "-o", "json")
		outputs = append(outputs, h.Stdout, h.Stderr)
		var rows []struct {
			Revision int      `json:"revision"`
			Backups  []string `json:"backups"`
		}
		if h.Code != 0 || json.Unmarshal([]byte(h.Stdout), &rows) != nil || len(rows) != 3 || len(rows[0].Backups) != 1 || rows[0].Backups[0] != first.ID {
			t.Fatalf("history from the bucket: exit %d: %s %s", h.Code, h.Stdout, h.Stderr)
		}
		v := e.RunHelm(env, "-n", e.Namespace, "csghub", "backup", "verify", first.ID, "--backup-location", b.loc)
		outputs = append(outputs, v.Stdout, v.Stderr)
		if v.Code != 0 {
			t.Fatalf("verify from the bucket: exit %d: %s %s", v.Code, v.Stdout, v.Stderr)
		}
		rb := e.RunHelm(env, "-n", e.Namespace, "csghub", "rollback", "1", "--backup-location", b.loc, "--yes", "-o", "json")
		outputs = append(outputs, rb.Stdout, rb.Stderr)
		if rb.Code != 0 || !strings.Contains(rb.Stdout, first.ID) {
			t.Fatalf("rollback from the bucket: exit %d: %s %s", rb.Code, rb.Stdout, rb.Stderr)
		}
		got := testenv.TakeSnapshot(t, e.PG)
		delete(got, "database created_after_backup")
		testenv.RequireEqual(t, want, got, "database after the other operator's rollback")
		if entries, _ := os.ReadDir(other); len(entries) != 0 {
			var names []string
			for _, d := range entries {
				names = append(names, d.Name())
			}
			t.Fatalf("the other operator's HELM_DATA_HOME got %v", names)
		}
	})

	t.Run("a tampered object is refused before any DROP", func(t *testing.T) {
		key := e.Namespace + "/csghub/" + first.ID + "/db-csghub_server.sql.zst"
		orig := b.get(t, key)
		bad := append([]byte(nil), orig...)
		bad[len(bad)/2] ^= 0x55
		b.put(t, key, bad)
		before := testenv.TakeSnapshot(t, e.PG)
		r := run("restore", "--backup", first.ID, "--yes")
		if r.Code != 4 || !strings.Contains(r.Stderr, "corrupt") || !strings.Contains(r.Stderr, "db-csghub_server.sql.zst") {
			t.Fatalf("restore of a tampered object: exit %d: %s", r.Code, r.Stderr)
		}
		testenv.RequireEqual(t, before, testenv.TakeSnapshot(t, e.PG), "database after the refused restore")
		b.put(t, key, orig[:len(orig)-100]) // truncated
		if v := run("backup", "verify", first.ID); v.Code != 4 {
			t.Fatalf("verify of a truncated object: exit %d: %s", v.Code, v.Stderr)
		}
		b.put(t, key, orig)

		// A dump cut in half whose stored size and sha256 were updated in
		// the manifest (its SQL size left): the restore from a bucket reads
		// each dump once, proving it as it replays into its copy, so it is
		// found before any live database is dropped: exit 4 naming it, the
		// copies removed, every database as it was.
		undo := editBucketDump(t, b, e.Namespace+"/csghub/"+first.ID, "csghub_server", false, func(sql []byte) []byte { return sql[:len(sql)/2] })
		r = run("restore", "--backup", first.ID, "--yes")
		if r.Code != 4 || !errorLine(r.Stderr, "db-csghub_server.sql.zst") || !errorLine(r.Stderr, "bytes of SQL, manifest says") ||
			!errorLine(r.Stderr, "live databases unchanged") {
			t.Fatalf("restore of a cut dump with its stored checksum updated: exit %d, want 4 naming it: %s", r.Code, r.Stderr)
		}
		testenv.RequireEqual(t, before, testenv.TakeSnapshot(t, e.PG), "database after the refused restore of a cut dump")
		undo()
		// a whole dump whose SQL fails halfway: psql stops early, the rest is
		// read to prove the dump whole, so it is an SQL failure (exit 1), not
		// a corrupt backup; the live databases unchanged
		undo = editBucketDump(t, b, e.Namespace+"/csghub/"+first.ID, "csghub_server", true, func(sql []byte) []byte {
			at := bytes.Index(sql, []byte("\nCOPY public.bulk "))
			if at < 0 {
				t.Fatal("no COPY of table bulk in the dump of csghub_server")
			}
			return append(append(append([]byte{}, sql[:at+1]...), []byte("SELECT 1/0;\n")...), sql[at+1:]...)
		})
		r = run("restore", "--backup", first.ID, "--yes")
		if r.Code != 1 || errorLines(r.Stderr) != 1 || !strings.Contains(r.Stderr, "division by zero") || !strings.Contains(r.Stderr, "live databases are unchanged") {
			t.Fatalf("restore of a dump failing halfway: exit %d, want 1: %s", r.Code, r.Stderr)
		}
		testenv.RequireEqual(t, before, testenv.TakeSnapshot(t, e.PG), "database after a restore failing halfway")
		undo()
		if left := databasesEndingWith(t, e, "__restore"); len(left) != 0 {
			t.Fatalf("copies left: %v", left)
		}
		assertNoNetworkPolicy(t, e)
	})

	relDir := e.Namespace + "/csghub"
	var files []string // every file a backup of this release writes
	for _, d := range first.Manifest.Dumps {
		files = append(files, d.Name)
	}
	t.Run("a killed upload is never complete and the next backup removes it", func(t *testing.T) {
		e.Bulk("csghub_server", 300000)
		p := e.StartPlugin("backup")
		dir := b.newBackupDir(t, relDir, first.ID)
		testenv.Eventually(t, 60*time.Second, "the dump's upload to be under way", func() bool {
			return len(b.uploads(t, dir, []string{"db-csghub_server.sql.zst"})) > 0
		})
		if p.Done() {
			t.Fatal("backup finished before it could be killed")
		}
		p.Cmd.Process.Signal(syscall.SIGKILL)
		p.Wait(t, 30*time.Second)
		list := listIn(t, e)
		var killed *backup.Entry
		for i := range list {
			if list[i].ID != first.ID {
				killed = &list[i]
			}
		}
		if killed == nil || killed.Complete || !strings.HasPrefix(killed.Problem, "incomplete") {
			t.Fatalf("after SIGKILL: %+v", list)
		}
		if v := run("backup", "verify", killed.ID); v.Code != 4 {
			t.Fatalf("verify of the killed backup: exit %d: %s", v.Code, v.Stderr)
		}
		if tbl := run("backup", "list"); !strings.Contains(tbl.Stdout, "NOT USABLE") {
			t.Fatalf("the table does not flag the killed backup:\n%s", tbl.Stdout)
		}
		res := runBackupIn(t, e)
		if !contains(res.Pruned, killed.ID+" (incomplete)") {
			t.Fatalf("the next backup pruned %v, not the killed one %s", res.Pruned, killed.ID)
		}
		if left := b.keys(t, dir+"/"); len(left) != 0 {
			t.Fatalf("the killed backup's objects are left: %v", left)
		}
		if u := b.uploads(t, dir, files); len(u) != 0 {
			t.Fatalf("unfinished uploads left: %v", u)
		}
	})

	t.Run("Ctrl-C during the upload leaves nothing", func(t *testing.T) {
		before := b.keys(t, "")
		var known []string
		for _, it := range listIn(t, e) {
			known = append(known, it.ID)
		}
		p := e.StartPlugin("backup")
		dir := b.newBackupDir(t, relDir, known...)
		testenv.Eventually(t, 60*time.Second, "the dump's upload to be under way", func() bool {
			return len(b.uploads(t, dir, []string{"db-csghub_server.sql.zst"})) > 0
		})
		if p.Done() {
			t.Fatal("backup finished before it could be interrupted")
		}
		p.Cmd.Process.Signal(syscall.SIGINT)
		if code := p.Wait(t, 30*time.Second); code != 130 {
			t.Fatalf("exit %d after SIGINT, want 130: %s", code, p.Stderr)
		}
		if after := b.keys(t, ""); strings.Join(after, ",") != strings.Join(before, ",") {
			t.Fatalf("objects before %v, after %v", before, after)
		}
		if u := b.uploads(t, dir, files); len(u) != 0 {
			t.Fatalf("unfinished uploads left: %v", u)
		}
	})

	t.Run("an encrypted backup restores exactly with its key only", func(t *testing.T) {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		keyFile := filepath.Join(t.TempDir(), "backup-key.txt")
		if err := os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		enc := runBackupIn(t, e, "--encrypt-to", id.Recipient().String())
		if enc.Manifest.Encryption == nil || enc.Manifest.Encryption.Recipients[0] != id.Recipient().String() {
			t.Fatalf("manifest encryption: %+v", enc.Manifest.Encryption)
		}
		dumpKey := e.Namespace + "/csghub/" + enc.Manifest.ID + "/db-csghub_server.sql.zst"
		if stored := b.get(t, dumpKey); !bytes.HasPrefix(stored, []byte("age-encryption.org/v1")) {
			t.Fatalf("%s is not stored encrypted", dumpKey)
		}
		want := testenv.TakeSnapshot(t, e.PG)
		e.Exec("csghub_server", "DELETE FROM bulk WHERE id % 7 = 0")
		e.Exec("csghub_portal", "CREATE TABLE added_after_encrypted (id int)")
		if v := run("backup", "verify", enc.Manifest.ID); v.Code != 4 || !errorLine(v.Stderr, "encrypted (age)") {
			t.Fatalf("verify without the key: exit %d: %s", v.Code, v.Stderr)
		}
		if u := run("upgrade", "--version", "2.0.1", "--yes", "--encrypt-to", id.Recipient().String()); u.Code != 2 || !errorLine(u.Stderr, "--identity") {
			t.Fatalf("upgrade encrypting without a key to restore: exit %d: %s", u.Code, u.Stderr)
		}
		r := run("restore", "--backup", enc.Manifest.ID, "--identity", keyFile, "--yes")
		if r.Code != 0 {
			t.Fatalf("restore of the encrypted backup: exit %d: %s", r.Code, r.Stderr)
		}
		testenv.RequireEqual(t, want, testenv.TakeSnapshot(t, e.PG), "database after restoring the encrypted backup")
		for _, out := range outputs {
			if strings.Contains(out, id.String()) {
				t.Fatalf("the private key appears in the output: %s", out)
			}
		}
	})

	t.Run("retention keeps the rollback target", func(t *testing.T) {
		e.Exec("csghub_server", "TRUNCATE bulk") // small dumps: this is about the catalog
		var pruned []string
		for i := 0; i < 3; i++ {
			pruned = append(pruned, runBackupIn(t, e, "--keep", "4").Pruned...)
		}
		// revision 1's only backup is a rollback target (Helm's history holds
		// revisions 1-4): it stays while newer ones are pruned
		list := listIn(t, e, "--keep", "4")
		if len(list) != 4 || list[0].ID != first.ID || !strings.HasPrefix(list[0].Kept, "rollback target") || len(pruned) == 0 {
			t.Fatalf("after retention (pruned %v): %+v; objects: %v", pruned, list, b.keys(t, ""))
		}
	})

	t.Run("bad locations are refused before anything changes", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			code int
			msg  string
		}{
			{[]string{"upgrade", "--version", "2.0.1", "--yes", "--backup-location", "gs://x/y"}, 2, `unknown scheme "gs://"`},
			{[]string{"upgrade", "--version", "2.0.1", "--yes", "--backup-location", "s3://no-such-bucket/y"}, 4, "bucket no-such-bucket does not exist"},
			{[]string{"plan", "--version", "2.0.1", "--backup-location", "s3://no-such-bucket/y"}, 4, "bucket no-such-bucket does not exist"},
			{[]string{"backup", "--backup-location", b.loc, "--dir", "/tmp"}, 2, "give one"},
		} {
			r := run(c.args...)
			if r.Code != c.code || !errorLine(r.Stderr, c.msg) {
				t.Errorf("%v: exit %d, want %d with %q: %s", c.args, r.Code, c.code, c.msg, r.Stderr)
			}
		}
		denied := e.RunHelm([]string{"AWS_SECRET_ACCESS_KEY=not-the-secret"}, "-n", e.Namespace, "csghub", "upgrade", "--version", "2.0.1", "--yes")
		if denied.Code != 4 || !strings.Contains(denied.Stderr, "access denied") {
			t.Errorf("wrong secret: exit %d: %s", denied.Code, denied.Stderr)
		}
		wantDeployed(t, e, "2.0.0", 0, "after the refused upgrades")
	})

	t.Run("copy to a folder and back to another prefix", func(t *testing.T) {
		dir := t.TempDir()
		c := run("backup", "copy", first.ID, "--to", dir, "-o", "json")
		if c.Code != 0 || !strings.Contains(c.Stdout, `"verified": true`) {
			t.Fatalf("copy to a folder: exit %d: %s %s", c.Code, c.Stdout, c.Stderr)
		}
		other := "s3://" + bucketName + "/copied/" + e.Namespace
		back := run("backup", "copy", first.ID, "--dir", dir, "--to", other, "-o", "json")
		if back.Code != 0 {
			t.Fatalf("copy from the folder to a bucket: exit %d: %s %s", back.Code, back.Stdout, back.Stderr)
		}
		if v := run("backup", "verify", first.ID, "--backup-location", other); v.Code != 0 {
			t.Fatalf("verify of the copy: exit %d: %s", v.Code, v.Stderr)
		}
		if again := run("backup", "copy", first.ID, "--to", dir); again.Code != 4 || !errorLine(again.Stderr, "never overwritten") {
			t.Fatalf("second copy: exit %d: %s", again.Code, again.Stderr)
		}
	})

	for _, out := range outputs {
		if strings.Contains(out, bucketSecret) {
			t.Fatalf("the bucket's secret appears in the plugin's output: %s", out)
		}
	}
	for _, k := range b.keys(t, "") {
		if bytes.Contains(b.get(t, k), []byte(bucketSecret)) {
			t.Fatalf("the bucket's secret is in object %s", k)
		}
	}
}

// editBucketDump replaces db's dump in the bucket backup at dir with its
// SQL passed through edit, and the manifest's stored size and sha256 with
// the new file's (the SQL's too with rawToo); the returned func puts both
// back.
func editBucketDump(t *testing.T, b *backupBucket, dir, db string, rawToo bool, edit func([]byte) []byte) func() {
	t.Helper()
	manifestKey, key := dir+"/manifest.json", dir+"/db-"+db+".sql.zst"
	origManifest, orig := b.get(t, manifestKey), b.get(t, key)
	zr, err := zstd.NewReader(bytes.NewReader(orig))
	if err != nil {
		t.Fatal(err)
	}
	sql, err := io.ReadAll(zr)
	zr.Close()
	if err != nil {
		t.Fatal(err)
	}
	raw := edit(sql)
	var z bytes.Buffer
	zw, _ := zstd.NewWriter(&z)
	zw.Write(raw)
	zw.Close()
	var m backup.Manifest
	if err := json.Unmarshal(origManifest, &m); err != nil {
		t.Fatal(err)
	}
	for i := range m.Dumps {
		if m.Dumps[i].Database == db {
			m.Dumps[i].Bytes, m.Dumps[i].SHA256 = int64(z.Len()), sha256Bytes(z.Bytes())
			if rawToo {
				m.Dumps[i].RawBytes, m.Dumps[i].RawSHA256 = int64(len(raw)), sha256Bytes(raw)
			}
		}
	}
	edited, _ := json.MarshalIndent(m, "", "  ")
	b.put(t, key, z.Bytes())
	b.put(t, manifestKey, edited)
	return func() {
		b.put(t, key, orig)
		b.put(t, manifestKey, origManifest)
	}
}

// errorLine reports whether stderr has the plugin's one-line error with msg.
func errorLine(stderr, msg string) bool {
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "Error: ") && strings.Contains(l, msg) {
			return true
		}
	}
	return false
}

func runBackupIn(t *testing.T, e *testenv.Env, extra ...string) backupResult {
	t.Helper()
	r := e.Plugin(append([]string{"backup", "-o", "json"}, extra...)...)
	if r.Code != 0 {
		t.Fatalf("backup: exit %d: %s", r.Code, r.Stderr)
	}
	var res backupResult
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("backup json: %v\n%s", err, r.Stdout)
	}
	return res
}
