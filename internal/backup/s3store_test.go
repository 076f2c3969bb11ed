package backup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"

	"github.com/opencsgs/helm-csghub/internal/devenv"
	"github.com/opencsgs/helm-csghub/internal/errs"
)

func TestResolveLocation(t *testing.T) {
	t.Setenv(LocationEnv, "")
	for _, c := range []struct {
		loc, dir, env string
		want          string
		wantErr       string
	}{
		{want: ""},
		{dir: "/b", want: "/b"},
		{loc: "/b", want: "/b"},
		{loc: "s3://bkp/team/csghub/", want: "s3://bkp/team/csghub"},
		{env: "s3://bkp", want: "s3://bkp"},
		{env: "s3://bkp", dir: "/b", want: "/b"},
		{loc: "s3://bkp/x", dir: "/b", wantErr: "give one"},
		{loc: "gs://bkp/x", wantErr: `unknown scheme "gs://"`},
		{env: "https://bkp/x", wantErr: "HELM_CSGHUB_BACKUP_LOCATION"},
		{loc: "s3://Bad_Bucket/x", wantErr: "bucket"},
		{loc: "s3://bkp/a/../b", wantErr: `".."`},
		{loc: "s3://bkp/a//b", wantErr: "empty"},
		{loc: "s3://user:secret@bkp/a", wantErr: "not of the form"},
		{dir: "s3://bkp/a", wantErr: "--dir takes a folder"},
	} {
		t.Setenv(LocationEnv, c.env)
		got, err := ResolveLocation(c.loc, c.dir)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || errs.KindOf(err) != errs.Usage {
				t.Errorf("%+v: error %v, want usage error with %q", c, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%+v: %q, %v; want %q", c, got, err, c.want)
		}
	}
}

// testMinIO is a real MinIO server in region eu-central-1 with bucket
// "backups", and the AWS environment pointing at it.
type testMinIO struct {
	endpoint string
	client   *minio.Client
}

const (
	testS3User   = "backup-user"
	testS3Secret = "backup-secret-1234"
	testS3Region = "eu-central-1"
)

func startTestMinIO(t testing.TB, env ...string) *testMinIO {
	t.Helper()
	root, err := devenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	s := &devenv.Stack{Root: root, Log: func(string, ...any) {}}
	ports, err := devenv.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "s3")
	if _, err := s.Script(append([]string{"MINIO_ROOT_USER=" + testS3User, "MINIO_ROOT_PASSWORD=" + testS3Secret, "MINIO_SITE_REGION=" + testS3Region}, env...),
		"scripts/minio.sh", "start", state, strconv.Itoa(ports[0])); err != nil {
		t.Fatalf("MinIO (set CSGHUB_CACHE to the built stack's cache): %v", err)
	}
	t.Cleanup(func() { _, _ = s.Script(nil, "scripts/minio.sh", "stop", state) })
	m := &devenv.MinIO{Endpoint: "127.0.0.1:" + strconv.Itoa(ports[0]), User: testS3User, Password: testS3Secret}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.MakeBuckets(ctx, testS3Region, "backups"); err != nil {
		t.Fatal(err)
	}
	cl, err := m.Client()
	if err != nil {
		t.Fatal(err)
	}
	useS3Env(t, "http://"+m.Endpoint, testS3User, testS3Secret, testS3Region)
	return &testMinIO{endpoint: "http://" + m.Endpoint, client: cl}
}

func useS3Env(t testing.TB, endpoint, user, secret, region string) {
	t.Setenv("AWS_ENDPOINT_URL_S3", endpoint)
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ACCESS_KEY_ID", user)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", region)
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
}

// writeTestBackup writes a backup of one database through the catalog's
// sink, as Backup.Run does (values, streamed dump, manifest last).
func writeTestBackup(t *testing.T, cat Catalog, rev int, at time.Time, body string) *Manifest {
	t.Helper()
	return writeTestBackupTo(t, cat, nil, rev, at, body)
}

// writeTestBackupTo is writeTestBackup through wrap's sink (nil: as is).
func writeTestBackupTo(t *testing.T, cat Catalog, wrap func(backupSink, *Manifest) backupSink, rev int, at time.Time, body string) *Manifest {
	t.Helper()
	ctx := context.Background()
	m := &Manifest{FormatVersion: FormatVersion, Release: "csghub", Namespace: "ns", Revision: rev, Compression: "zstd", StartedAt: at}
	sink, err := cat.newSink(ctx, "ns", "csghub", rev, m)
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		sink = wrap(sink, m)
	}
	if m.Values, err = putFile(sink, valuesName, []byte("a: 1\n")); err != nil {
		t.Fatal(err)
	}
	if m.AllValues, err = putFile(sink, allValuesName, []byte("a: 1\nb: 2\n")); err != nil {
		t.Fatal(err)
	}
	out, err := sink.create(dumpFileName("app"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := newDumpWriterTo(out, dumpFileName("app"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, TestDumpSQL("app", "csghub", body)); err != nil {
		t.Fatal(err)
	}
	d, err := w.finish("app")
	if err != nil {
		t.Fatal(err)
	}
	d.Owner = "csghub"
	m.Dumps, m.Databases = []Dump{d}, []string{"app"}
	data, err := jsonIndent(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.complete(ctx, data); err != nil {
		t.Fatal(err)
	}
	return m
}

// readAll streams a dump as a restore does and returns its SQL and the
// reader's verdict.
func readAll(t *testing.T, e *Entry, d Dump) (string, error) {
	t.Helper()
	c, err := e.OpenStoredDump(context.Background(), d)
	if err != nil {
		return "", err
	}
	defer c.Close()
	var buf bytes.Buffer
	_, _ = io.Copy(&buf, c)
	return buf.String(), c.Err()
}

func objectKeys(t *testing.T, cl *minio.Client, prefix string) []string {
	t.Helper()
	var keys []string
	for o := range cl.ListObjects(context.Background(), "backups", minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}

// The catalog in a bucket keeps the folder's promises: the manifest is the
// commit point, an id is never written twice, checksums are checked (also
// on the second read a restore makes), leftovers of a killed run are
// cleaned by the next backup's retention, which keeps rollback targets.
func TestCatalogInBucket(t *testing.T) {
	s3 := startTestMinIO(t)
	ctx := context.Background()
	cat := CatalogAt("s3://backups/team/prod")
	if err := cat.Check(ctx, true); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	body := strings.Repeat("INSERT INTO t VALUES (1, 'row');\n", 20000)
	m1 := writeTestBackup(t, cat, 1, t0, body)

	t.Run("listed, verified and streamed from the bucket", func(t *testing.T) {
		list, err := cat.List("ns", "csghub")
		if err != nil || len(list) != 1 || !list[0].Complete || list[0].ID != m1.ID {
			t.Fatalf("list %+v, %v", list, err)
		}
		e := &list[0]
		if !e.InBucket() || e.Path != "s3://backups/team/prod/ns/csghub/"+m1.ID {
			t.Fatalf("entry %+v", e)
		}
		if err := VerifyError(VerifyContext(ctx, e)); err != nil {
			t.Fatal(err)
		}
		sql, err := readAll(t, e, e.Manifest.Dumps[0])
		if err != nil || sql != TestDumpSQL("app", "csghub", body) {
			t.Fatalf("streamed SQL differs (%d bytes), %v", len(sql), err)
		}
		if v, err := e.ReadFile(valuesName, 1<<20); err != nil || string(v) != "a: 1\n" {
			t.Fatalf("values %q, %v", v, err)
		}
		if keys := objectKeys(t, s3.client, "team/prod/ns/csghub/"+m1.ID+"/"); len(keys) != 4 {
			t.Fatalf("objects %v", keys)
		}
	})

	t.Run("an id is never overwritten", func(t *testing.T) {
		sink := &s3Sink{s: cat.s3, ctx: ctx, dir: cat.s3.key("ns", "csghub", m1.ID)}
		err := sink.complete(ctx, []byte("{}"))
		if err == nil || !strings.Contains(err.Error(), "never overwritten") {
			t.Fatalf("second manifest: %v", err)
		}
		// a new backup in the same second takes the next id
		m := &Manifest{StartedAt: t0}
		if _, err := cat.newSink(ctx, "ns", "csghub", 1, m); err != nil || m.ID != m1.ID+"-2" {
			t.Fatalf("id %q, %v", m.ID, err)
		}
	})

	t.Run("a tampered or truncated object is refused", func(t *testing.T) {
		e, err := cat.Find("ns", "csghub", m1.ID)
		if err != nil {
			t.Fatal(err)
		}
		d := e.Manifest.Dumps[0]
		key := cat.s3.key("ns", "csghub", m1.ID, d.Name)
		orig, err := cat.s3.readSmall(key, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		put := func(data []byte) {
			if _, err := s3.client.PutObject(ctx, "backups", key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		defer put(orig)
		flipped := append([]byte(nil), orig...)
		flipped[len(flipped)/2] ^= 0xff
		for name, data := range map[string][]byte{"flipped": flipped, "truncated": orig[:len(orig)-9], "longer": append(append([]byte(nil), orig...), orig...)} {
			put(data)
			if err := VerifyError(VerifyContext(ctx, e)); err == nil || errs.KindOf(err) != errs.Precondition || !strings.Contains(err.Error(), d.Name) {
				t.Errorf("%s: verify: %v", name, err)
			}
			// replaced after the verification, before the restore's read
			if _, err := readAll(t, e, d); err == nil {
				t.Errorf("%s: the restore's stream took a replaced object", name)
			}
		}
	})

	t.Run("a killed upload is incomplete and cleaned by the next backup", func(t *testing.T) {
		// a run killed after its values, during its dump's multipart upload
		m := &Manifest{StartedAt: t0.Add(time.Hour), Revision: 2}
		sink, err := cat.newSink(ctx, "ns", "csghub", 2, m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := putFile(sink, valuesName, []byte("a: 1\n")); err != nil {
			t.Fatal(err)
		}
		// the dump's upload started and never ends (the process is gone)
		dumpKey := sink.(*s3Sink).dir + "/db-app.sql.zst"
		w, err := sink.create("db-app.sql.zst")
		if err != nil {
			t.Fatal(err)
		}
		defer w.abort()
		if _, err := w.Write([]byte("partial")); err != nil {
			t.Fatal(err)
		}
		uploads := func() int {
			n := 0
			for u := range s3.client.ListIncompleteUploads(ctx, "backups", dumpKey, false) {
				if u.Err != nil {
					t.Fatal(u.Err)
				}
				n++
			}
			return n
		}
		if n := uploads(); n != 1 {
			t.Fatalf("%d uploads in progress, want 1", n)
		}
		list, err := cat.List("ns", "csghub")
		if err != nil || len(list) != 2 || list[1].Complete || !strings.HasPrefix(list[1].Problem, "incomplete") {
			t.Fatalf("list %+v, %v", list, err)
		}
		if _, err := cat.Find("ns", "csghub", m.ID); errs.KindOf(err) != errs.Precondition {
			t.Fatalf("find incomplete: %v", err)
		}
		if e, err := cat.Find("ns", "csghub", "latest"); err != nil || e.ID != m1.ID {
			t.Fatalf("latest: %+v, %v", e, err)
		}
		writeTestBackup(t, cat, 3, t0.Add(2*time.Hour), "SELECT 1;\n")
		removed, err := cat.Prune("ns", "csghub", Retention{Keep: 2, History: []int{1, 2, 3}})
		if err != nil || len(removed) != 1 || removed[0] != m.ID+" (incomplete)" {
			t.Fatalf("prune removed %v, %v", removed, err)
		}
		if keys := objectKeys(t, s3.client, "team/prod/ns/csghub/"+m.ID+"/"); len(keys) != 0 {
			t.Fatalf("left over: %v", keys)
		}
		if n := uploads(); n != 0 {
			t.Fatalf("%d unfinished uploads left", n)
		}
	})

	t.Run("retention never prunes a rollback target", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			writeTestBackup(t, cat, 3, t0.Add(time.Duration(3+i)*time.Hour), "SELECT 1;\n")
		}
		// Helm's history still holds revision 1 (2 was pruned by Helm)
		removed, err := cat.Prune("ns", "csghub", Retention{Keep: 2, History: []int{1, 3}})
		if err != nil {
			t.Fatal(err)
		}
		list, _ := cat.List("ns", "csghub")
		var kept []string
		for _, e := range list {
			kept = append(kept, fmt.Sprintf("%d:%s", e.Revision, e.ID))
		}
		// revision 1's only backup stays (a rollback target), and revision 3's newest
		if len(list) != 2 || list[0].ID != m1.ID || list[1].Revision != 3 || len(removed) != 3 {
			t.Fatalf("kept %v, removed %v", kept, removed)
		}
	})
}

// A location that cannot be used is refused with one line naming what to
// fix, as a precondition (exit 4), without the secret.
func TestBucketFaults(t *testing.T) {
	s3 := startTestMinIO(t)
	ctx := context.Background()
	check := func(name, loc, want string) {
		t.Helper()
		err := CatalogAt(loc).Check(ctx, true)
		t.Logf("%s: %v", name, err)
		if err == nil || errs.KindOf(err) != errs.Precondition || !strings.Contains(err.Error(), want) ||
			strings.Contains(err.Error(), testS3Secret) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want a one-line precondition with %q", name, err, want)
		}
	}
	check("bucket missing", "s3://no-such-bucket/x", "bucket no-such-bucket does not exist")

	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-5678")
	check("wrong secret", "s3://backups/x", "access denied")
	t.Setenv("AWS_SECRET_ACCESS_KEY", testS3Secret)

	t.Setenv("AWS_REGION", "us-west-2")
	check("wrong region", "s3://backups/x", "wrong region")
	t.Setenv("AWS_REGION", testS3Region)

	ports, err := devenv.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:"+strconv.Itoa(ports[0]))
	t0 := time.Now()
	check("endpoint down", "s3://backups/x", "does not answer")
	if d := time.Since(t0); d > 20*time.Second {
		t.Errorf("endpoint down took %s to report", d)
	}
	t.Setenv("AWS_ENDPOINT_URL_S3", s3.endpoint)

	// the same location with everything right is accepted, and the write
	// check leaves nothing behind
	if err := CatalogAt("s3://backups/x").Check(ctx, true); err != nil {
		t.Fatal(err)
	}
	if keys := objectKeys(t, s3.client, ""); len(keys) != 0 {
		t.Fatalf("the check left %v", keys)
	}
}

// backup copy moves a complete backup between a folder and a bucket, both
// ways, verified at the destination; it never overwrites an id and never
// leaves a copy of a corrupt source.
func TestCopyBetweenFolderAndBucket(t *testing.T) {
	s3 := startTestMinIO(t)
	ctx := context.Background()
	folder, bucket, back := CatalogAt(t.TempDir()), CatalogAt("s3://backups/copies"), CatalogAt(t.TempDir())
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	body := strings.Repeat("INSERT INTO t VALUES (2, 'copied');\n", 30000)
	m := writeTestBackup(t, folder, 1, t0, body)
	e, err := folder.Find("ns", "csghub", m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.WriteFile(ctx, "upgrade-journal.json", []byte("[]\n")); err != nil {
		t.Fatal(err)
	}
	res, err := Copy(ctx, e, bucket, "ns", "csghub")
	if err != nil || !res.Verified || res.To != "s3://backups/copies/ns/csghub/"+m.ID {
		t.Fatalf("folder -> bucket: %+v, %v", res, err)
	}
	if keys := objectKeys(t, s3.client, "copies/ns/csghub/"+m.ID+"/"); len(keys) != 5 {
		t.Fatalf("objects in the bucket: %v", keys) // values x2, dump, journal, manifest
	}
	inBucket, err := bucket.Find("ns", "csghub", m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Copy(ctx, inBucket, back, "ns", "csghub"); err != nil {
		t.Fatalf("bucket -> folder: %v", err)
	}
	again, err := back.Find("ns", "csghub", m.ID)
	if err != nil || len(again.Insecure) != 0 {
		t.Fatalf("copied back: %+v, %v", again, err)
	}
	if sql, err := readAll(t, again, again.Manifest.Dumps[0]); err != nil || sql != TestDumpSQL("app", "csghub", body) {
		t.Fatalf("the copy's dump differs: %v", err)
	}
	for _, f := range []string{"", manifestName, again.Manifest.Dumps[0].Name} {
		fi, err := os.Stat(filepath.Join(again.Path, f))
		if err != nil || (f == "" && fi.Mode().Perm() != dirMode) || (f != "" && fi.Mode().Perm() != fileMode) {
			t.Fatalf("%s: mode %v, %v", f, fi.Mode(), err)
		}
	}

	if _, err := Copy(ctx, e, bucket, "ns", "csghub"); errs.KindOf(err) != errs.Precondition || !strings.Contains(err.Error(), "never overwritten") {
		t.Fatalf("copy over an existing id: %v", err)
	}

	// a corrupt source is refused and nothing is left at the destination
	m2 := writeTestBackup(t, folder, 2, t0.Add(time.Hour), body)
	e2, err := folder.Find("ns", "csghub", m2.ID)
	if err != nil {
		t.Fatal(err)
	}
	dump := filepath.Join(e2.Path, e2.Manifest.Dumps[0].Name)
	data, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	if err := os.WriteFile(dump, data, fileMode); err != nil {
		t.Fatal(err)
	}
	if _, err := Copy(ctx, e2, bucket, "ns", "csghub"); errs.KindOf(err) != errs.Precondition || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("copy of a corrupt backup: %v", err)
	}
	if keys := objectKeys(t, s3.client, "copies/ns/csghub/"+m2.ID+"/"); len(keys) != 0 {
		t.Fatalf("a refused copy left %v", keys)
	}
}

// --sse: every object of the backup (dumps, values, manifest) is stored
// encrypted by the bucket with SSE-S3 or the named SSE-KMS key, and reads,
// verifies and restores as any other backup.
func TestServerSideEncryption(t *testing.T) {
	// MinIO's built-in KMS with one key, "backup-key"
	s3 := startTestMinIO(t, "MINIO_KMS_SECRET_KEY=backup-key:"+"MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=")
	ctx := context.Background()
	t0 := time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC)
	for i, c := range []struct {
		sse    SSE
		header string
	}{{SSE{Mode: SSES3}, "AES256"}, {SSE{Mode: SSEKMS, KMSKeyID: "backup-key"}, "aws:kms"}} {
		prefix := fmt.Sprintf("sse-%d", i)
		cat := CatalogAt("s3://backups/" + prefix).WithSSE(c.sse)
		if err := cat.Check(ctx, true); err != nil {
			t.Fatal(err)
		}
		m := writeTestBackup(t, cat, 1, t0, "SELECT 1;\n")
		keys := objectKeys(t, s3.client, prefix+"/")
		if len(keys) != 4 {
			t.Fatalf("%s: objects %v", c.sse.Mode, keys)
		}
		for _, k := range keys {
			info, err := s3.client.StatObject(ctx, "backups", k, minio.StatObjectOptions{})
			if err != nil || info.Metadata.Get("X-Amz-Server-Side-Encryption") != c.header {
				t.Fatalf("%s: %s stored with %q (%v)", c.sse.Mode, k, info.Metadata.Get("X-Amz-Server-Side-Encryption"), err)
			}
		}
		e, err := CatalogAt("s3://backups/"+prefix).Find("ns", "csghub", m.ID) // reading needs no setting
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyError(VerifyContext(ctx, e)); err != nil {
			t.Fatalf("%s: %v", c.sse.Mode, err)
		}
		if sql, err := readAll(t, e, e.Manifest.Dumps[0]); err != nil || sql != TestDumpSQL("app", "csghub", "SELECT 1;\n") {
			t.Fatalf("%s: restore stream: %v", c.sse.Mode, err)
		}
	}
	err := CatalogAt("s3://backups/x").WithSSE(SSE{Mode: SSEKMS, KMSKeyID: "no-such-key"}).Check(ctx, true)
	t.Logf("unknown KMS key: %v", err)
	if errs.KindOf(err) != errs.Precondition || !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("unknown KMS key: %v", err)
	}
	for _, c := range []struct {
		sse SSE
		loc string
	}{{SSE{Mode: "aes"}, "s3://b/p"}, {SSE{Mode: SSES3}, "/backups"}, {SSE{KMSKeyID: "k"}, "s3://b/p"}, {SSE{Mode: SSES3, KMSKeyID: "k"}, "s3://b/p"}} {
		if err := CheckSSE(c.sse, c.loc); errs.KindOf(err) != errs.Usage {
			t.Errorf("%+v at %s: %v, want a usage error", c.sse, c.loc, err)
		}
	}
}

// --encrypt-to: every file but the manifest is stored encrypted to the age
// recipients, in a folder and in a bucket; its stored bytes verify without
// a key, its SQL and values only with one, and it restores exactly.
func TestClientSideEncryption(t *testing.T) {
	s3 := startTestMinIO(t)
	ctx := context.Background()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := age.GenerateX25519Identity()
	keyFile := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(keyFile, []byte("# backup key\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	recips, names, err := ParseRecipients([]string{id.Recipient().String()})
	if err != nil || names[0] != id.Recipient().String() {
		t.Fatal(names, err)
	}
	t.Setenv(IdentityEnv, "")
	t.Setenv(IdentityFileEnv, "")
	UseIdentityFile("")
	t.Cleanup(func() { UseIdentityFile("") })
	body := strings.Repeat("INSERT INTO secrets VALUES ('row-in-clear');\n", 5000)
	for _, cat := range []Catalog{CatalogAt(t.TempDir()), CatalogAt("s3://backups/encrypted")} {
		m := writeTestBackupTo(t, cat, encryptTo(recips), 1, time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC), body)
		if m.Encryption == nil || m.Encryption.Recipients[0] != id.Recipient().String() {
			t.Fatalf("manifest encryption %+v", m.Encryption)
		}
		e, err := cat.Find("ns", "csghub", m.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []File{m.Values, m.Dumps[0].File} {
			rc, err := e.source().open(ctx, f.Name)
			if err != nil {
				t.Fatal(err)
			}
			stored, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.HasPrefix(stored, []byte("age-encryption.org/v1")) || bytes.Contains(stored, []byte("a: 1")) {
				t.Fatalf("%s stored in clear", f.Name)
			}
		}
		if err := VerifyError(VerifyStored(e)); err != nil {
			t.Fatalf("stored bytes without a key: %v", err)
		}
		if err := VerifyError(VerifyContext(ctx, e)); err == nil || !strings.Contains(err.Error(), "encrypted (age)") {
			t.Fatalf("SQL without a key: %v", err)
		}
		if _, err := readAll(t, e, m.Dumps[0]); err == nil {
			t.Fatal("restored without a key")
		}
		t.Setenv(IdentityEnv, other.String())
		if err := VerifyError(VerifyContext(ctx, e)); err == nil || strings.Contains(err.Error(), other.String()) {
			t.Fatalf("SQL with a wrong key: %v", err)
		}
		UseIdentityFile(keyFile)
		if err := VerifyError(VerifyContext(ctx, e)); err != nil {
			t.Fatalf("with the key: %v", err)
		}
		if sql, err := readAll(t, e, m.Dumps[0]); err != nil || sql != TestDumpSQL("app", "csghub", body) {
			t.Fatalf("restore stream with the key: %v", err)
		}
		if v, err := e.ReadFile(valuesName, 1<<20); err != nil || string(v) != "a: 1\n" {
			t.Fatalf("values %q, %v", v, err)
		}
		UseIdentityFile("")
		t.Setenv(IdentityEnv, "")
	}
	if keys := objectKeys(t, s3.client, "encrypted/"); len(keys) != 4 {
		t.Fatalf("objects %v", keys)
	}
	for _, bad := range [][]string{{"age1nope"}, {filepath.Join(t.TempDir(), "missing")}} {
		if _, _, err := ParseRecipients(bad); errs.KindOf(err) != errs.Usage {
			t.Errorf("%v: %v", bad, err)
		}
	}
	t.Setenv(IdentityEnv, "AGE-SECRET-KEY-1NOTAKEY")
	if err := CheckCanDecrypt(recips); errs.KindOf(err) != errs.Usage || strings.Contains(err.Error(), "NOTAKEY") {
		t.Fatalf("bad key: %v", err)
	}
	t.Setenv(IdentityEnv, other.String())
	if err := CheckCanDecrypt(recips); errs.KindOf(err) != errs.Usage {
		t.Fatalf("a key that does not open: %v", err)
	}
	t.Setenv(IdentityEnv, id.String())
	if err := CheckCanDecrypt(recips); err != nil {
		t.Fatal(err)
	}
}

func encryptTo(to []age.Recipient) func(backupSink, *Manifest) backupSink {
	return func(s backupSink, m *Manifest) backupSink {
		m.Encryption = &Encryption{Method: "age"}
		for _, r := range to {
			m.Encryption.Recipients = append(m.Encryption.Recipients, fmt.Sprint(r))
		}
		return encryptingSink{backupSink: s, to: to}
	}
}
