package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/minio/minio-go/v7"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/readlimit"
)

// fileSource reads the files of one backup.
type fileSource interface {
	open(ctx context.Context, name string) (io.ReadCloser, error)
	readSmall(name string, limit int64) ([]byte, error)
	// remote: a second read may see other bytes than the first (another
	// writer of the bucket), so the stored file is re-checked as it streams.
	remote() bool
	// size is the stored size of a file, without reading it.
	size(ctx context.Context, name string) (int64, error)
}

type dirSource string

func (d dirSource) open(_ context.Context, name string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(string(d), name))
}

func (d dirSource) readSmall(name string, limit int64) ([]byte, error) {
	return readlimit.File(filepath.Join(string(d), name), limit)
}

func (dirSource) remote() bool { return false }

func (d dirSource) size(_ context.Context, name string) (int64, error) {
	fi, err := os.Stat(filepath.Join(string(d), name))
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

type s3Source struct {
	s   *s3Store
	dir string // key prefix of the backup
}

func (b s3Source) open(ctx context.Context, name string) (io.ReadCloser, error) {
	return b.s.open(ctx, b.dir+"/"+name)
}

func (b s3Source) readSmall(name string, limit int64) ([]byte, error) {
	return b.s.readSmall(b.dir+"/"+name, limit)
}

func (s3Source) remote() bool { return true }

func (b s3Source) size(ctx context.Context, name string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s3MetaTimeout)
	defer cancel()
	key := b.dir + "/" + name
	info, err := b.s.client.StatObject(ctx, b.s.bucket, key, minio.StatObjectOptions{})
	if isNotFound(err) {
		return 0, fmt.Errorf("%s%s/%s: %w", s3Scheme, b.s.bucket, key, os.ErrNotExist)
	}
	if err != nil {
		return 0, b.s.describe("reading "+s3Scheme+b.s.bucket+"/"+key, err)
	}
	return info.Size, nil
}

func (e *Entry) source() fileSource {
	if e.src != nil {
		return e.src
	}
	return dirSource(e.Path)
}

// InBucket reports whether the backup is in object storage.
func (e *Entry) InBucket() bool { return e.source().remote() }

// ReadFile reads a small file of the backup (values, the upgrade journal)
// of at most limit bytes. A missing file is os.ErrNotExist.
func (e *Entry) ReadFile(name string, limit int64) ([]byte, error) {
	data, err := e.source().readSmall(name, limit)
	if err != nil || e.Manifest == nil || e.Manifest.Encryption == nil || !e.Manifest.isContent(name) {
		return data, err
	}
	r, err := decrypting(e.ID, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	plain, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, errs.Preconditionf("backup %s: %s does not decrypt: %v", e.ID, name, err)
	}
	if int64(len(plain)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, limit)
	}
	return plain, nil
}

// plain is the content of the stored file f: decrypted when the backup
// is encrypted (closing it closes f).
func (e *Entry) plain(f io.ReadCloser) (io.ReadCloser, error) {
	if e.Manifest == nil || e.Manifest.Encryption == nil {
		return f, nil
	}
	r, err := decrypting(e.ID, f)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{r, f}, nil
}

// OpenStoredDump opens dump d of the backup for a restore: see the
// folder's OpenStoredDump. A dump in a bucket is streamed again after the
// verification, so its stored bytes are re-checked on the way (size and
// sha256, reported at the end as a mismatch instead of io.EOF): an object
// replaced in between never replays as the backup.
func (e *Entry) OpenStoredDump(ctx context.Context, d Dump) (*CheckedDump, error) {
	return e.openDump(ctx, d, nil)
}

// OpenCheckedDump opens dump d for a full check (Verify).
func (e *Entry) OpenCheckedDump(ctx context.Context, d Dump) (*CheckedDump, error) {
	return e.openDump(ctx, d, sha256.New())
}

func (e *Entry) openDump(ctx context.Context, d Dump, sum hash.Hash) (*CheckedDump, error) {
	src := e.source()
	rc, err := src.open(ctx, d.Name)
	if err != nil {
		return nil, err
	}
	// an encrypted file's content is not what the manifest's sha256 pins:
	// the stored bytes are checked on the way, wherever they are
	if src.remote() || e.Manifest.Encryption != nil {
		rc = &storedChecker{rc: rc, f: d.File, sum: sha256.New()}
	}
	p, err := e.plain(rc)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return newCheckedDump(p, d, sum)
}

// storedChecker passes a stored file through and, at its end, returns a
// mismatch with the manifest's size or sha256 instead of io.EOF.
type storedChecker struct {
	rc  io.ReadCloser
	f   File
	sum hash.Hash
	n   int64
}

func (s *storedChecker) Read(p []byte) (int, error) {
	n, err := s.rc.Read(p)
	s.sum.Write(p[:n])
	s.n += int64(n)
	if s.n > s.f.Bytes {
		return n, fmt.Errorf("%s: more than the %d bytes the manifest says", s.f.Name, s.f.Bytes)
	}
	if err == io.EOF {
		if s.n != s.f.Bytes {
			return n, fmt.Errorf("%s: size %d, manifest says %d", s.f.Name, s.n, s.f.Bytes)
		}
		if got := hex.EncodeToString(s.sum.Sum(nil)); got != s.f.SHA256 {
			return n, fmt.Errorf("%s: sha256 %s, manifest says %s", s.f.Name, got, s.f.SHA256)
		}
	}
	return n, err
}

func (s *storedChecker) Close() error { return s.rc.Close() }

// WriteFile writes (or replaces) a small record beside a complete backup,
// such as the upgrade journal: a folder's file atomically, 0600; an object
// in a bucket. It is not part of the manifest (not checked by verify).
func (e *Entry) WriteFile(ctx context.Context, name string, data []byte) error {
	if name == "" || name != filepath.Base(name) || name == manifestName {
		return fmt.Errorf("invalid file name %q", name)
	}
	if b, ok := e.src.(s3Source); ok {
		return b.s.putSmall(ctx, b.dir+"/"+name, data, false)
	}
	os.Remove(filepath.Join(e.Path, "."+name+".tmp")) // a killed run's
	_, err := writeFileAtomic(e.Path, name, data)
	return err
}
