package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/readlimit"
)

// Extra files are data a migration adds to a complete backup (the Dataflow
// logs export). They are written like the backup's own files (streamed,
// sha256 and size computed on the way, encrypted to the backup's age
// recipients when the backup is encrypted) and count only once committed:
//
//   - in a folder, the file is written under a temporary name, fsynced and
//     renamed, then the manifest is rewritten (atomically) to list it;
//   - in a bucket the manifest is never rewritten (written once with
//     If-None-Match, the backup's commit point): the extra's object is
//     uploaded, then a record object "<name>.extra.json" (its name, size and
//     sha256) is written with If-None-Match, and that record is the extra's
//     commit point. Catalog listings add recorded extras to the manifest's
//     Extra list, so verify, copy, list, retention and the import see them
//     as they see a folder's. Before the upload starts the extra's name is
//     recorded in ".uploads.json" (and its old record, when exporting again,
//     removed): an extra without its record is incomplete, ignored by
//     readers, reported by `backup verify` and removed (object and
//     unfinished upload) by the next export into that backup or the next
//     backup of the release.
//
// Why not a conditional overwrite of the manifest (If-Match on its ETag):
// S3 took If-Match on PUT only in late 2024 and other S3-compatible stores
// differ, and a manifest that changes after its backup completed breaks the
// promise that a backup's commit point is immutable (a copy or a reader
// racing the rewrite sees one or the other). A separate record keeps the
// manifest immutable and needs only If-None-Match, which the backup itself
// already relies on.

// extraRecordSuffix names the record that commits an extra in a bucket.
const extraRecordSuffix = ".extra.json"

// extraRecord is the object "<name>.extra.json" beside a bucket backup's
// extra file "<name>".
type extraRecord struct {
	FormatVersion int    `json:"formatVersion"`
	Backup        string `json:"backup"` // the backup's id: a record moved elsewhere is not trusted
	File
}

// ExtraWriter writes one extra file into a complete backup (a folder or a
// bucket); Commit makes it part of the backup, Abort (or a kill) leaves
// nothing that counts.
type ExtraWriter struct {
	e    *Entry
	name string
	raw  *hashingSink // the stored bytes: their size and sha256 go to the manifest
	w    fileSink     // raw, or encrypting into raw
	// bucket only
	s3  *s3Store
	dir string
	// done: committed or aborted
	done bool
}

// hashingSink computes the size and sha256 of what it stores.
type hashingSink struct {
	fileSink
	sum hash.Hash
	n   int64
}

func (h *hashingSink) Write(p []byte) (int, error) {
	n, err := h.fileSink.Write(p)
	h.sum.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// validExtraName: a plain file name that is not one of the backup's own.
func validExtraName(name string) bool {
	return name != "" && name == filepath.Base(name) && name == path.Base(name) && !strings.HasPrefix(name, ".") &&
		name != manifestName && name != uploadsName && !strings.HasSuffix(name, extraRecordSuffix)
}

// CreateExtra starts extra file name in the complete backup e, in a folder
// or a bucket. An older extra of the same name is replaced on Commit (in a
// bucket it stops counting as soon as the new one starts). In a bucket, the
// object is written with the server-side encryption the catalog was given,
// else with that of the backup's manifest object.
func (e *Entry) CreateExtra(ctx context.Context, name string) (*ExtraWriter, error) {
	if !validExtraName(name) {
		return nil, fmt.Errorf("invalid extra file name %q", name)
	}
	if !e.Complete || e.Manifest == nil {
		return nil, errs.Preconditionf("backup %s is not complete: %s", e.ID, e.Problem)
	}
	m := e.Manifest
	if m.isContent(name) && m.FindExtra(name) == nil {
		return nil, fmt.Errorf("invalid extra file name %q: a file of the backup itself", name)
	}
	x := &ExtraWriter{e: e, name: name}
	var raw fileSink
	switch src := e.source().(type) {
	case s3Source:
		if m.FindExtra(name) != nil && !e.recorded[name] {
			// listed by the immutable manifest (a backup copied from a
			// folder): replacing its object would break the backup
			return nil, errs.Preconditionf("backup %s lists %s in its manifest already (it cannot change in a bucket): export into a new backup", e.ID, name)
		}
		s := src.s
		if s.sse == nil {
			inherited, err := s.sseOf(ctx, src.dir+"/"+manifestName)
			if err != nil {
				return nil, err
			}
			st := *s
			st.sse = inherited
			s = &st
		}
		x.s3, x.dir = s, src.dir
		if err := s.startExtra(ctx, src.dir, m, e.recorded, name); err != nil {
			return nil, err
		}
		// from now on the older extra of that name is gone
		m.dropExtra(name)
		delete(e.recorded, name)
		raw = s.upload(ctx, src.dir+"/"+name)
	default:
		if _, err := readManifest(e.Path); err != nil {
			return nil, fmt.Errorf("backup %s is not complete: %w", e.Path, err)
		}
		os.Remove(filepath.Join(e.Path, "."+name+".tmp")) // a leftover of a killed run
		f, err := createFolderFile(e.Path, name)
		if err != nil {
			return nil, describeFSError(err)
		}
		raw = f
	}
	x.raw = &hashingSink{fileSink: raw, sum: sha256.New()}
	x.w = x.raw
	if enc := m.Encryption; enc != nil {
		to, err := manifestRecipients(enc)
		if err == nil {
			x.w, err = encryptFile(x.raw, to)
		}
		if err != nil {
			x.Abort()
			return nil, errs.Failedf("encrypting %s to the backup's recipients: %w", name, err)
		}
	}
	return x, nil
}

// manifestRecipients are the age public keys a backup's files are
// encrypted to (its extras go to the same keys).
func manifestRecipients(enc *Encryption) ([]age.Recipient, error) {
	if enc.Method != "age" || len(enc.Recipients) == 0 {
		return nil, fmt.Errorf("unknown encryption %q with %d recipient(s)", enc.Method, len(enc.Recipients))
	}
	var out []age.Recipient
	for _, r := range enc.Recipients {
		rc, err := age.ParseX25519Recipient(r)
		if err != nil {
			return nil, err
		}
		out = append(out, rc)
	}
	return out, nil
}

// Write appends p to the file.
func (x *ExtraWriter) Write(p []byte) (int, error) {
	n, err := x.w.Write(p)
	if err != nil {
		return n, describeFSError(err)
	}
	return n, nil
}

// Commit makes the file part of the backup and returns its manifest entry
// (size and sha256 of the stored bytes, encrypted or not).
func (x *ExtraWriter) Commit() (File, error) {
	if x.done {
		return File{}, errors.New("extra file already committed or aborted")
	}
	if err := x.w.commit(); err != nil {
		x.Abort()
		return File{}, describeFSError(err)
	}
	file := File{Name: x.name, SHA256: hex.EncodeToString(x.raw.sum.Sum(nil)), Bytes: x.raw.n}
	if x.s3 != nil {
		if err := x.s3.recordExtra(x.dir, x.e.ID, file); err != nil {
			x.Abort()
			return File{}, err
		}
		if x.e.recorded == nil {
			x.e.recorded = map[string]bool{}
		}
		x.e.recorded[x.name] = true
	} else if err := addExtra(x.e.Path, file); err != nil {
		x.done = true
		return File{}, err
	}
	x.done = true
	x.e.Manifest.setExtra(file)
	return file, nil
}

// Abort removes what was written: the temporary file, or the upload (and,
// in a bucket, an older object of that name whose record is gone); safe
// after Commit. It works on a fresh context: it also cleans up after Ctrl-C.
func (x *ExtraWriter) Abort() {
	if x.done {
		return
	}
	x.done = true
	x.w.abort()
	if x.s3 != nil {
		// the upload (aborted above unless the context was cancelled), an
		// older object of the name (its record went in startExtra), the list
		ctx, cancel := context.WithTimeout(context.Background(), s3MetaTimeout)
		defer cancel()
		key := x.dir + "/" + x.name
		_ = x.s3.client.RemoveIncompleteUpload(ctx, x.s3.bucket, key)
		_ = x.s3.client.RemoveObject(ctx, x.s3.bucket, key, minio.RemoveObjectOptions{})
		_ = x.s3.client.RemoveObject(ctx, x.s3.bucket, x.dir+"/"+uploadsName, minio.RemoveObjectOptions{})
	}
}

// setExtra adds or replaces f in m.Extra.
func (m *Manifest) setExtra(f File) {
	for i := range m.Extra {
		if m.Extra[i].Name == f.Name {
			m.Extra[i] = f
			return
		}
	}
	m.Extra = append(m.Extra, f)
}

// dropExtra removes extra name from m.Extra.
func (m *Manifest) dropExtra(name string) {
	for i := range m.Extra {
		if m.Extra[i].Name == name {
			m.Extra = append(m.Extra[:i:i], m.Extra[i+1:]...)
			return
		}
	}
}

// addExtra records f in the manifest of the backup at dir.
func addExtra(dir string, f File) error {
	m, err := readManifest(dir)
	if err != nil {
		return err
	}
	m.setExtra(f)
	data, err := jsonIndent(m)
	if err != nil {
		return err
	}
	// The old manifest is replaced by a rename: a crash leaves the old or the
	// new one, never a mix.
	os.Remove(filepath.Join(dir, "."+manifestName+".tmp"))
	if _, err := writeFileAtomic(dir, manifestName, data); err != nil {
		return describeFSError(err)
	}
	return fsyncDir(dir)
}

// startExtra prepares the upload of extra name into the complete backup at
// dir: what a killed export left is removed, the name is recorded in
// uploadsName (so a kill from now on leaves a findable upload), and an older
// record of that name removed (its object is being replaced).
func (s *s3Store) startExtra(ctx context.Context, dir string, m *Manifest, recorded map[string]bool, name string) error {
	if err := s.cleanExtras(ctx, dir, m, recorded); err != nil {
		return err
	}
	data, err := json.Marshal([]string{name})
	if err != nil {
		return err
	}
	if err := s.putSmall(ctx, dir+"/"+uploadsName, data, false); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s3MetaTimeout)
	defer cancel()
	if err := s.client.RemoveObject(ctx, s.bucket, dir+"/"+name+extraRecordSuffix, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
		return s.describe("removing the old record of "+s3Scheme+s.bucket+"/"+dir+"/"+name, err)
	}
	return nil
}

// recordExtra commits extra f of backup id at dir: its record, then the
// upload list goes.
func (s *s3Store) recordExtra(dir, id string, f File) error {
	data, err := jsonIndent(extraRecord{FormatVersion: FormatVersion, Backup: id, File: f})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), s3MetaTimeout)
	defer cancel()
	if err := s.putSmall(ctx, dir+"/"+f.Name+extraRecordSuffix, data, true); err != nil {
		return err
	}
	_ = s.client.RemoveObject(ctx, s.bucket, dir+"/"+uploadsName, minio.RemoveObjectOptions{})
	return nil
}

// cleanExtras removes what unfinished extra uploads left in the complete
// backup at dir: for each name uploadsName lists that neither the manifest
// m nor a record (recorded; nil: looked up) makes part of the backup, the
// unfinished upload is aborted and the object removed; then uploadsName
// goes. Files of the backup are never touched.
func (s *s3Store) cleanExtras(ctx context.Context, dir string, m *Manifest, recorded map[string]bool) error {
	names, err := s.pendingUploads(dir)
	if err != nil || names == nil {
		return err
	}
	for _, n := range s.incompleteExtras(dir, m, names, recorded) {
		key := dir + "/" + n
		if err := s.client.RemoveIncompleteUpload(ctx, s.bucket, key); err != nil && !isNotFound(err) {
			return s.describe("aborting the upload of "+s3Scheme+s.bucket+"/"+key, err)
		}
		if err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
			return s.describe("removing the incomplete "+s3Scheme+s.bucket+"/"+key, err)
		}
	}
	if err := s.client.RemoveObject(ctx, s.bucket, dir+"/"+uploadsName, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
		return s.describe("removing "+s3Scheme+s.bucket+"/"+dir+"/"+uploadsName, err)
	}
	return nil
}

// pendingUploads reads uploadsName of the backup at dir (nil: none).
func (s *s3Store) pendingUploads(dir string) ([]string, error) {
	data, err := s.readSmall(dir+"/"+uploadsName, readlimit.Metadata)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	if json.Unmarshal(data, &names) != nil {
		return []string{}, nil // unreadable: nothing to abort by name, the list itself goes
	}
	if names == nil {
		names = []string{}
	}
	return names, nil
}

// incompleteExtras are the names of pending uploads that are not part of
// the complete backup m: extras whose upload or record never finished.
// recorded are the extras of m that come from records (nil: unknown, each
// record is looked up). Names of the backup's own files are never listed.
func (s *s3Store) incompleteExtras(dir string, m *Manifest, pending []string, recorded map[string]bool) []string {
	var out []string
	for _, n := range pending {
		if !validExtraName(n) {
			continue
		}
		if recorded != nil {
			if m.isContent(n) { // listed by the manifest, or recorded
				continue
			}
		} else {
			if m.isContent(n) {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), s3MetaTimeout)
			_, err := s.client.StatObject(ctx, s.bucket, dir+"/"+n+extraRecordSuffix, minio.StatObjectOptions{})
			cancel()
			if err == nil {
				continue
			}
		}
		out = append(out, n)
	}
	return out
}

// FindExtra is the manifest entry of extra file name, or nil.
func (m *Manifest) FindExtra(name string) *File {
	for i := range m.Extra {
		if m.Extra[i].Name == name {
			return &m.Extra[i]
		}
	}
	return nil
}

// VerifyExtra checks one extra file's size and sha256 against the manifest.
func VerifyExtra(e *Entry, name string) error {
	return VerifyExtraContext(context.Background(), e, name)
}

// VerifyExtraContext is VerifyExtra, stopped by ctx.
func VerifyExtraContext(ctx context.Context, e *Entry, name string) error {
	f := e.Manifest.FindExtra(name)
	if f == nil {
		return fmt.Errorf("backup %s has no %s", e.ID, name)
	}
	if err := verifyFile(ctx, e.source(), *f); err != nil {
		return errs.Preconditionf("backup %s is corrupt: %s: %v", e.ID, name, err)
	}
	return nil
}

// OpenExtra streams the content of extra file name: its stored bytes are
// checked on the way (a size or sha256 other than the manifest's is
// returned at the end instead of io.EOF) and decrypted when the backup is
// encrypted. Nothing is copied locally.
func (e *Entry) OpenExtra(ctx context.Context, name string) (io.ReadCloser, error) {
	f := e.Manifest.FindExtra(name)
	if f == nil {
		return nil, fmt.Errorf("backup %s has no %s", e.ID, name)
	}
	rc, err := e.source().open(ctx, name)
	if err != nil {
		return nil, err
	}
	checked := &storedChecker{rc: rc, f: *f, sum: sha256.New()}
	p, err := e.plain(checked)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return p, nil
}

// Open reads the complete backup at dir (e.g. the folder an upgrade just
// wrote).
func Open(dir string) (*Entry, error) {
	m, err := readManifest(dir)
	if err != nil {
		return nil, fmt.Errorf("backup %s is not complete: %w", dir, err)
	}
	return &Entry{ID: m.ID, Path: dir, Revision: m.Revision, Time: m.StartedAt, Complete: true, Manifest: m}, nil
}
