package backup

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/readlimit"
)

// CopyResult is a backup copied to another location.
type CopyResult struct {
	ID    string `json:"id"`
	From  string `json:"from"`
	To    string `json:"to"`
	Bytes int64  `json:"bytes"`
	// Verified: the copy was read back at the destination and every file
	// and dump checked against the manifest (as backup verify does).
	Verified bool `json:"verified"`
	// StoredOnly: an encrypted backup copied without its key: the stored
	// bytes were checked, the SQL inside could not be.
	StoredOnly bool `json:"verifiedStoredBytesOnly,omitempty"`
}

// Copy copies the complete backup e of namespace/release into catalog dst
// under the same id, streaming each file (no local copy between two
// buckets) and checking its size and sha256 against the manifest on the
// way; the manifest goes last, as in a backup. The copy is then verified
// at the destination; one that fails is removed. An id that exists at the
// destination, complete or not, is refused (exit 4): never overwritten.
func Copy(ctx context.Context, e *Entry, dst Catalog, namespace, release string) (*CopyResult, error) {
	if !e.Complete || e.Manifest == nil {
		return nil, errs.Preconditionf("backup %s is not usable: %s", e.ID, e.Problem)
	}
	manifest, err := e.ReadFile(manifestName, readlimit.Metadata)
	if err != nil {
		return nil, errs.Failedf("reading the manifest of %s: %w", e.ID, err)
	}
	if len(e.recorded) > 0 {
		// extras a bucket committed by their records: the copy's manifest,
		// written last, lists them (in a folder as in a bucket)
		if manifest, err = jsonIndent(e.Manifest); err != nil {
			return nil, err
		}
	}
	sink, err := dst.newSinkFor(ctx, namespace, release, e.ID)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			sink.discard()
		}
	}()
	m := e.Manifest
	files := []File{m.Values, m.AllValues}
	for _, d := range m.Dumps {
		files = append(files, d.File)
	}
	files = append(files, m.Extra...)
	res := &CopyResult{ID: e.ID, From: e.Path, To: sink.where()}
	for _, f := range files {
		if err := copyFile(ctx, e, sink, f); err != nil {
			if ctx.Err() != nil {
				return nil, errs.Wrap(errs.Interrupted, fmt.Errorf("copy of %s interrupted, nothing kept at %s", e.ID, res.To))
			}
			return nil, err
		}
		res.Bytes += f.Bytes
	}
	// the upgrade journal is a record beside the backup, not in its manifest
	if j, err := e.ReadFile("upgrade-journal.json", readlimit.Metadata); err == nil {
		if _, err := putFile(sink, "upgrade-journal.json", j); err != nil {
			return nil, errs.Failedf("copying upgrade-journal.json: %w", describeFSError(err))
		}
	}
	if err := sink.complete(ctx, manifest); err != nil {
		return nil, err
	}
	ok = true
	copied, err := dst.Find(namespace, release, e.ID)
	if err == nil {
		verify := VerifyContext
		if m.Encryption != nil {
			if ids, _ := loadIdentities(); len(ids) == 0 {
				// without the key: every stored byte checked, not the SQL
				verify, res.StoredOnly = func(_ context.Context, e *Entry) *VerifyReport { return VerifyStored(e) }, true
			}
		}
		err = VerifyError(verify(ctx, copied))
	}
	if err != nil {
		_ = dst.remove(namespace, release, Entry{ID: e.ID, Path: res.To})
		return nil, errs.Failedf("the copy at %s does not verify, removed: %v", res.To, err)
	}
	res.Verified = true
	return res, nil
}

// copyFile streams one file of e into sink, refusing bytes that differ
// from the manifest's size and sha256.
func copyFile(ctx context.Context, e *Entry, sink backupSink, f File) error {
	rc, err := e.source().open(ctx, f.Name)
	if err != nil {
		return errs.Failedf("reading %s of %s: %w", f.Name, e.ID, err)
	}
	defer rc.Close()
	w, err := sink.create(f.Name)
	if err != nil {
		return errs.Failedf("writing %s: %w", f.Name, describeFSError(err))
	}
	in := &storedChecker{rc: rc, f: f, sum: sha256.New()}
	if _, err := io.Copy(w, in); err != nil {
		w.abort()
		var typed *errs.Error
		if errors.As(err, &typed) {
			return err
		}
		return errs.Preconditionf("backup %s is corrupt: %v", e.ID, err)
	}
	if err := w.commit(); err != nil {
		return errs.Failedf("writing %s: %w", f.Name, describeFSError(err))
	}
	return nil
}

// newSinkFor starts writing backup id (a copy): refused when anything of
// that id is at the destination.
func (c Catalog) newSinkFor(ctx context.Context, namespace, release, id string) (backupSink, error) {
	if c.err != nil {
		return nil, c.err
	}
	if c.s3 != nil {
		dir := c.s3.key(namespace, release, id)
		taken, err := c.s3.exists(ctx, dir)
		if err != nil {
			return nil, err
		}
		if taken {
			return nil, errs.Preconditionf("%s exists already: backups are never overwritten", c.s3.urlOf(namespace, release, id))
		}
		return &s3Sink{s: c.s3, ctx: ctx, dir: dir}, nil
	}
	relDir := c.ReleaseDir(namespace, release)
	if err := mkdirAll(relDir); err != nil {
		return nil, errs.Preconditionf("backup folder %s is not writable: %w", relDir, err)
	}
	final := filepath.Join(relDir, id)
	for _, p := range []string{final, final + partialSuffix} {
		if _, err := os.Lstat(p); err == nil {
			return nil, errs.Preconditionf("%s exists already: backups are never overwritten", p)
		}
	}
	if err := os.Mkdir(final+partialSuffix, dirMode); err != nil {
		return nil, errs.Preconditionf("backup folder %s is not writable: %w", relDir, describeFSError(err))
	}
	return &folderSink{relDir: relDir, final: final, partial: final + partialSuffix}, nil
}
