package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/minio/minio-go/v7"

	"github.com/opencsgs/helm-csghub/internal/errs"
)

// uploadsName lists the files a backup in a bucket started uploading,
// until its manifest is written.
const uploadsName = ".uploads.json"

// fileSink is one file of a backup being written: committed (durable and
// in place) or aborted (gone).
type fileSink interface {
	io.Writer
	commit() error
	abort()
}

// backupSink is where one backup in progress goes: a ".partial" folder
// renamed when complete, or objects in a bucket whose manifest, written
// last, makes the backup complete. Either way a reader never takes a
// backup in progress for a complete one.
type backupSink interface {
	create(name string) (fileSink, error)
	// complete writes the manifest, the commit point.
	complete(ctx context.Context, manifest []byte) error
	// discard removes what was written (after a failure or Ctrl-C).
	discard()
	// where is the backup's folder or URL once complete.
	where() string
}

// putFile writes a small file through sink and returns its manifest entry.
func putFile(s backupSink, name string, data []byte) (File, error) {
	f, err := s.create(name)
	if err != nil {
		return File{}, err
	}
	if _, err := f.Write(data); err != nil {
		f.abort()
		return File{}, err
	}
	if err := f.commit(); err != nil {
		return File{}, err
	}
	if s, ok := f.(storedFile); ok {
		sum, n := s.stored()
		return File{Name: name, SHA256: sum, Bytes: n}, nil
	}
	sum := sha256.Sum256(data)
	return File{Name: name, SHA256: hex.EncodeToString(sum[:]), Bytes: int64(len(data))}, nil
}

// folderFile is a file written under a temporary name, fsynced and renamed.
type folderFile struct {
	f          *os.File
	tmp, final string
}

func createFolderFile(dir, name string) (*folderFile, error) {
	tmp := filepath.Join(dir, "."+name+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fileMode)
	if err != nil {
		return nil, err
	}
	return &folderFile{f: f, tmp: tmp, final: filepath.Join(dir, name)}, nil
}

func (w *folderFile) Write(p []byte) (int, error) { return w.f.Write(p) }

func (w *folderFile) commit() error {
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.tmp, w.final)
	}
	if err != nil {
		os.Remove(w.tmp)
	}
	return err
}

func (w *folderFile) abort() {
	w.f.Close()
	os.Remove(w.tmp)
}

// folderSink writes <relDir>/<id>.partial and renames it <id> when complete.
type folderSink struct{ relDir, final, partial string }

// newFolderSink reserves an id in relDir and creates its partial folder.
func newFolderSink(relDir string, revision int, m *Manifest) (*folderSink, error) {
	// an unusable folder is a precondition (exit 4), as in upgrade's preflight
	if err := mkdirAll(relDir); err != nil {
		return nil, errs.Preconditionf("backup folder %s is not writable: %w", relDir, err)
	}
	id, final, err := reserveID(relDir, revision, m.StartedAt)
	if err != nil {
		return nil, err
	}
	m.ID = id
	partial := final + partialSuffix
	if err := os.Mkdir(partial, dirMode); err != nil {
		return nil, errs.Preconditionf("backup folder %s is not writable: %w", relDir, describeFSError(err))
	}
	return &folderSink{relDir: relDir, final: final, partial: partial}, nil
}

func (s *folderSink) create(name string) (fileSink, error) { return createFolderFile(s.partial, name) }

func (s *folderSink) complete(ctx context.Context, manifest []byte) error {
	if _, err := writeFileAtomic(s.partial, manifestName, manifest); err != nil {
		return errs.Failedf("writing manifest: %w", describeFSError(err))
	}
	if err := fsyncDir(s.partial); err != nil {
		return errs.Failedf("syncing %s: %w", s.partial, err)
	}
	if ctx.Err() != nil {
		return errs.Wrap(errs.Interrupted, fmt.Errorf("backup interrupted, nothing kept"))
	}
	if err := os.Rename(s.partial, s.final); err != nil {
		return errs.Failedf("completing backup: %w", err)
	}
	_ = fsyncDir(s.relDir)
	return nil
}

func (s *folderSink) discard()      { os.RemoveAll(s.partial) }
func (s *folderSink) where() string { return s.final }

// s3Sink writes the objects of <prefix>/<ns>/<release>/<id>/ in a bucket;
// the manifest goes last, refused if one exists (ids are never reused).
type s3Sink struct {
	s   *s3Store
	ctx context.Context
	dir string // key prefix of the backup, without trailing slash

	mu      sync.Mutex
	started []string // files whose upload started, as uploadsName records them
}

// newS3Sink reserves an id: one no object (nor upload) uses yet. The
// release lock keeps two runs of this cluster apart; the manifest's
// conditional write refuses to complete over another backup.
func newS3Sink(ctx context.Context, s *s3Store, namespace, release string, revision int, m *Manifest) (*s3Sink, error) {
	base := newID(revision, m.StartedAt)
	for i := 0; i < 100; i++ {
		id := base
		if i > 0 {
			id = fmt.Sprintf("%s-%d", base, i+1)
		}
		dir := s.key(namespace, release, id)
		taken, err := s.exists(ctx, dir)
		if err != nil {
			return nil, err
		}
		if !taken {
			m.ID = id
			return &s3Sink{s: s, ctx: ctx, dir: dir}, nil
		}
	}
	return nil, errs.Failedf("cannot pick a backup name under %s", s.urlOf(namespace, release))
}

// create records the file's key in uploadsName before its upload starts:
// the unfinished upload of a killed run is found by that key (MinIO lists
// multipart uploads by exact key only).
func (k *s3Sink) create(name string) (fileSink, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.started = append(k.started, name)
	data, err := json.Marshal(k.started)
	if err != nil {
		return nil, err
	}
	if err := k.s.putSmall(k.ctx, k.dir+"/"+uploadsName, data, false); err != nil {
		return nil, err
	}
	return k.s.upload(k.ctx, k.dir+"/"+name), nil
}

func (k *s3Sink) complete(ctx context.Context, manifest []byte) error {
	if ctx.Err() != nil {
		return errs.Wrap(errs.Interrupted, fmt.Errorf("backup interrupted, nothing kept"))
	}
	if err := k.s.putSmall(ctx, k.dir+"/"+manifestName, manifest, true); err != nil {
		return err
	}
	// complete: every upload finished; the record is no longer needed
	_ = k.s.client.RemoveObject(ctx, k.s.bucket, k.dir+"/"+uploadsName, minio.RemoveObjectOptions{})
	return nil
}

func (k *s3Sink) discard()      { _ = k.s.removeAll(k.dir) }
func (k *s3Sink) where() string { return s3Scheme + k.s.bucket + "/" + k.dir }
