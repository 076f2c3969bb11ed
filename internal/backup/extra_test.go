package backup

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"

	"github.com/opencsgs/helm-csghub/internal/errs"
)

const testExtra = "dataflow-logs.jsonl.zst"

// writeExtra writes data as extra testExtra of e and commits it.
func writeExtra(t *testing.T, e *Entry, data []byte) File {
	t.Helper()
	x, err := e.CreateExtra(context.Background(), testExtra)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Abort()
	if _, err := x.Write(data); err != nil {
		t.Fatal(err)
	}
	f, err := x.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// readExtra reads extra testExtra of e as an import does, and the
// reader's verdict at its end.
func readExtra(t *testing.T, e *Entry) ([]byte, error) {
	t.Helper()
	rc, err := e.OpenExtra(context.Background(), testExtra)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func findIn(t *testing.T, cat Catalog, id string) *Entry {
	t.Helper()
	e, err := cat.Find("ns", "csghub", id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func uploadsOf(t *testing.T, cl *minio.Client, key string) int {
	t.Helper()
	n := 0
	for u := range cl.ListIncompleteUploads(context.Background(), "backups", key, false) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		n++
	}
	return n
}

// An extra file (the Dataflow logs export) in a bucket backup: committed by
// its record (the manifest is never rewritten), listed, verified and read
// back checked; a tampered object is refused; an export killed midway is
// never part of the backup, is reported, and the next export or backup
// removes it (object and unfinished upload); Ctrl-C leaves nothing; the
// object gets the manifest's server-side encryption; copies carry it both
// ways and verify there.
func TestExtraInBucket(t *testing.T) {
	// MinIO's built-in KMS with one key, "backup-key"
	s3 := startTestMinIO(t, "MINIO_KMS_SECRET_KEY=backup-key:"+"MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=")
	ctx := context.Background()
	t0 := time.Date(2026, 12, 6, 13, 0, 0, 0, time.UTC)
	cat := CatalogAt("s3://backups/extras")
	m := writeTestBackupTo(t, cat.WithSSE(SSE{Mode: SSEKMS, KMSKeyID: "backup-key"}), nil, 1, t0, "SELECT 1;\n")
	dir := cat.s3.key("ns", "csghub", m.ID)
	manifestBefore, err := cat.s3.readSmall(dir+"/"+manifestName, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	export := bytes.Repeat([]byte("{\"t\":\"log\",\"content\":\"line\"}\n"), 200000) // 5.8 MiB

	t.Run("committed by its record, listed, verified, read back", func(t *testing.T) {
		e := findIn(t, cat, m.ID) // a catalog without --sse: the manifest's is used
		f := writeExtra(t, e, export)
		if f.Bytes != int64(len(export)) || e.Manifest.FindExtra(testExtra) == nil {
			t.Fatalf("committed %+v, manifest extras %+v", f, e.Manifest.Extra)
		}
		if after, _ := cat.s3.readSmall(dir+"/"+manifestName, 1<<20); !bytes.Equal(after, manifestBefore) {
			t.Fatal("the manifest was rewritten")
		}
		keys := objectKeys(t, s3.client, dir+"/")
		if !contains(keys, dir+"/"+testExtra) || !contains(keys, dir+"/"+testExtra+extraRecordSuffix) || contains(keys, dir+"/"+uploadsName) {
			t.Fatalf("objects %v", keys)
		}
		for _, k := range []string{testExtra, testExtra + extraRecordSuffix} {
			info, err := s3.client.StatObject(ctx, "backups", dir+"/"+k, minio.StatObjectOptions{})
			if err != nil || info.Metadata.Get("X-Amz-Server-Side-Encryption") != "aws:kms" {
				t.Fatalf("%s stored with %q (%v): not the manifest's SSE-KMS", k, info.Metadata.Get("X-Amz-Server-Side-Encryption"), err)
			}
		}
		again := findIn(t, cat, m.ID)
		if got := again.Manifest.FindExtra(testExtra); got == nil || *got != f || len(again.IncompleteExtras) != 0 {
			t.Fatalf("listed extras %+v (incomplete %v), want %+v", again.Manifest.Extra, again.IncompleteExtras, f)
		}
		rep := VerifyContext(ctx, again)
		if err := VerifyError(rep); err != nil || !containsCheck(rep, testExtra) || len(rep.Warnings) != 0 {
			t.Fatalf("verify: %v %+v", err, rep)
		}
		if data, err := readExtra(t, again); err != nil || !bytes.Equal(data, export) {
			t.Fatalf("read back %d bytes, %v", len(data), err)
		}
	})

	t.Run("a tampered object is refused", func(t *testing.T) {
		e := findIn(t, cat, m.ID)
		key := dir + "/" + testExtra
		bad := append([]byte(nil), export...)
		bad[len(bad)/2] ^= 1
		if _, err := s3.client.PutObject(ctx, "backups", key, bytes.NewReader(bad), int64(len(bad)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := VerifyExtraContext(ctx, e, testExtra); errs.KindOf(err) != errs.Precondition || !strings.Contains(err.Error(), testExtra) {
			t.Fatalf("verify of the tampered extra: %v", err)
		}
		if err := VerifyError(VerifyContext(ctx, e)); err == nil || !strings.Contains(err.Error(), testExtra) {
			t.Fatalf("backup verify: %v", err)
		}
		if _, err := readExtra(t, e); err == nil || !strings.Contains(err.Error(), "sha256") {
			t.Fatalf("the import's read took a tampered object: %v", err)
		}
		writeExtra(t, e, export) // exported again: whole again
		if err := VerifyError(VerifyContext(ctx, findIn(t, cat, m.ID))); err != nil {
			t.Fatal(err)
		}
	})

	// an export killed during its upload (the process gone: neither
	// Commit nor Abort runs)
	kill := func(t *testing.T) func() {
		t.Helper()
		e := findIn(t, cat, m.ID)
		x, err := e.CreateExtra(ctx, testExtra)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x.Write(export[:1<<20]); err != nil {
			t.Fatal(err)
		}
		testEventually(t, func() bool { return uploadsOf(t, s3.client, dir+"/"+testExtra) == 1 })
		return func() { x.w.abort() } // the process's end, as far as the test goes
	}

	t.Run("killed midway: never part of the backup, cleaned by the next export", func(t *testing.T) {
		gone := kill(t)
		defer gone()
		e := findIn(t, cat, m.ID)
		if e.Manifest.FindExtra(testExtra) != nil || len(e.IncompleteExtras) != 1 || e.IncompleteExtras[0] != testExtra {
			t.Fatalf("after the kill: extras %+v, incomplete %v", e.Manifest.Extra, e.IncompleteExtras)
		}
		rep := VerifyContext(ctx, e)
		if !rep.OK || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], testExtra+": incomplete") || containsCheck(rep, testExtra) {
			t.Fatalf("verify after the kill: %+v", rep)
		}
		if _, err := readExtra(t, e); err == nil {
			t.Fatal("an incomplete extra was read")
		}
		gone()
		writeExtra(t, e, export[:1000])
		if n := uploadsOf(t, s3.client, dir+"/"+testExtra); n != 0 {
			t.Fatalf("%d unfinished uploads after the next export", n)
		}
		if again := findIn(t, cat, m.ID); len(again.IncompleteExtras) != 0 || again.Manifest.FindExtra(testExtra).Bytes != 1000 {
			t.Fatalf("after the next export: %+v %v", again.Manifest.Extra, again.IncompleteExtras)
		}
	})

	t.Run("killed midway: cleaned by the next backup", func(t *testing.T) {
		gone := kill(t)
		defer gone()
		writeTestBackup(t, cat, 2, t0.Add(time.Hour), "SELECT 2;\n")
		removed, err := cat.Prune("ns", "csghub", Retention{Keep: 3, History: []int{1, 2}})
		if err != nil || !contains(removed, m.ID+"/"+testExtra+" (incomplete)") {
			t.Fatalf("prune removed %v, %v", removed, err)
		}
		keys := objectKeys(t, s3.client, dir+"/")
		if contains(keys, dir+"/"+testExtra) || contains(keys, dir+"/"+uploadsName) || uploadsOf(t, s3.client, dir+"/"+testExtra) != 0 {
			t.Fatalf("left after the next backup: %v, %d uploads", keys, uploadsOf(t, s3.client, dir+"/"+testExtra))
		}
		if e := findIn(t, cat, m.ID); len(e.IncompleteExtras) != 0 || VerifyError(VerifyContext(ctx, e)) != nil {
			t.Fatalf("backup after the cleanup: %+v", e)
		}
	})

	t.Run("Ctrl-C leaves nothing", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		e := findIn(t, cat, m.ID)
		x, err := e.CreateExtra(cctx, testExtra)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x.Write(export[:1<<20]); err != nil {
			t.Fatal(err)
		}
		cancel()
		x.Abort()
		keys := objectKeys(t, s3.client, dir+"/")
		if contains(keys, dir+"/"+testExtra) || contains(keys, dir+"/"+testExtra+extraRecordSuffix) || contains(keys, dir+"/"+uploadsName) ||
			uploadsOf(t, s3.client, dir+"/"+testExtra) != 0 {
			t.Fatalf("left after Ctrl-C: %v", keys)
		}
		if e := findIn(t, cat, m.ID); e.Manifest.FindExtra(testExtra) != nil || len(e.IncompleteExtras) != 0 {
			t.Fatalf("after Ctrl-C: %+v", e)
		}
	})

	t.Run("copied both ways, verified there", func(t *testing.T) {
		e := findIn(t, cat, m.ID)
		writeExtra(t, e, export)
		folder := CatalogAt(t.TempDir())
		if res, err := Copy(ctx, findIn(t, cat, m.ID), folder, "ns", "csghub"); err != nil || !res.Verified {
			t.Fatalf("bucket -> folder: %+v, %v", res, err)
		}
		inFolder := findIn(t, folder, m.ID)
		if f := inFolder.Manifest.FindExtra(testExtra); f == nil || f.Bytes != int64(len(export)) {
			t.Fatalf("the folder copy's manifest lists %+v", inFolder.Manifest.Extra)
		}
		if data, err := readExtra(t, inFolder); err != nil || !bytes.Equal(data, export) {
			t.Fatalf("the folder copy's extra: %d bytes, %v", len(data), err)
		}
		other := CatalogAt("s3://backups/extras-copy")
		if res, err := Copy(ctx, inFolder, other, "ns", "csghub"); err != nil || !res.Verified {
			t.Fatalf("folder -> bucket: %+v, %v", res, err)
		}
		back := findIn(t, other, m.ID)
		if data, err := readExtra(t, back); err != nil || !bytes.Equal(data, export) {
			t.Fatalf("the bucket copy's extra: %d bytes, %v", len(data), err)
		}
		if keys := objectKeys(t, s3.client, other.s3.key("ns", "csghub", m.ID)+"/"); contains(keys, other.s3.key("ns", "csghub", m.ID, testExtra+extraRecordSuffix)) {
			t.Fatalf("the copy's manifest lists the extra, no record needed: %v", keys)
		}
		// listed by that manifest, which cannot change: not replaced
		if _, err := back.CreateExtra(ctx, testExtra); errs.KindOf(err) != errs.Precondition {
			t.Fatalf("export into a copy whose manifest lists it: %v", err)
		}
	})
}

// In an encrypted backup (folder or bucket) the extra is encrypted to the
// manifest's recipients: stored bytes verify without a key, the content
// needs one.
func TestExtraEncrypted(t *testing.T) {
	startTestMinIO(t)
	ctx := context.Background()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	recips, _, err := ParseRecipients([]string{id.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(IdentityEnv, "")
	t.Setenv(IdentityFileEnv, "")
	UseIdentityFile("")
	export := bytes.Repeat([]byte("secret log line\n"), 10000)
	for _, cat := range []Catalog{CatalogAt(t.TempDir()), CatalogAt("s3://backups/encrypted-extras")} {
		m := writeTestBackupTo(t, cat, encryptTo(recips), 1, time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC), "SELECT 1;\n")
		writeExtra(t, findIn(t, cat, m.ID), export)
		e := findIn(t, cat, m.ID)
		rc, err := e.source().open(ctx, testExtra)
		if err != nil {
			t.Fatal(err)
		}
		stored, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.HasPrefix(stored, []byte("age-encryption.org/v1")) || bytes.Contains(stored, []byte("secret log line")) {
			t.Fatalf("%s: the extra is stored in clear", cat.Root)
		}
		if err := VerifyExtraContext(ctx, e, testExtra); err != nil {
			t.Fatalf("%s: stored bytes without a key: %v", cat.Root, err)
		}
		if _, err := readExtra(t, e); err == nil || !strings.Contains(err.Error(), "encrypted (age)") {
			t.Fatalf("%s: read without a key: %v", cat.Root, err)
		}
		t.Setenv(IdentityEnv, id.String())
		if data, err := readExtra(t, e); err != nil || !bytes.Equal(data, export) {
			t.Fatalf("%s: read with the key: %d bytes, %v", cat.Root, len(data), err)
		}
		t.Setenv(IdentityEnv, "")
		if !cat.InBucket() {
			if fi, err := os.Stat(filepath.Join(e.Path, testExtra)); err != nil || fi.Mode().Perm() != fileMode {
				t.Fatalf("folder extra: %v %v", fi, err)
			}
		}
	}
}

func containsCheck(r *VerifyReport, name string) bool {
	for _, c := range r.Checks {
		if c.File == name {
			return true
		}
	}
	return false
}

func testEventually(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatal("timed out")
}
