package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/opencsgs/helm-csghub/internal/errs"
)

// Check is the verification result of one file.
type Check struct {
	File  string `json:"file"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// VerifyReport is the result of verifying one backup.
type VerifyReport struct {
	ID     string  `json:"id"`
	Path   string  `json:"path"`
	OK     bool    `json:"ok"`
	Checks []Check `json:"checks"`
	// Warnings do not fail the check (e.g. permissions others can read).
	Warnings []string `json:"warnings,omitempty"`
}

// FirstFailure is the first failed check, or nil.
func (r *VerifyReport) FirstFailure() *Check {
	for i := range r.Checks {
		if !r.Checks[i].OK {
			return &r.Checks[i]
		}
	}
	return nil
}

// Verify recomputes every checksum of a complete backup and decompresses each
// dump to check its SQL's size, sha256 and completion trailer. Two dumps are
// checked at once (the check is CPU-bound: decompression and sha256).
func Verify(e *Entry) *VerifyReport { return verify(context.Background(), e, true) }

// VerifyContext is Verify, stopped by ctx (a dump streamed from a bucket).
func VerifyContext(ctx context.Context, e *Entry) *VerifyReport { return verify(ctx, e, true) }

// VerifyStored checks only that every file is present with the size and
// sha256 the manifest records, without decompressing the dumps. It is not
// enough before a restore drops a database: a manifest edited together with a
// cut dump passes it (restore runs Verify).
func VerifyStored(e *Entry) *VerifyReport { return verify(context.Background(), e, false) }

// verifyParallel is how many dumps Verify checks at once.
const verifyParallel = 2

func verify(ctx context.Context, e *Entry, deep bool) *VerifyReport {
	src := e.source()
	r := &VerifyReport{ID: e.ID, Path: e.Path, OK: true}
	m := e.Manifest
	files := []File{m.Values, m.AllValues}
	files = append(files, m.Extra...)
	results := make([]error, len(files)+len(m.Dumps))
	for i, f := range files {
		results[i] = verifyFile(ctx, src, f)
	}
	sem := make(chan struct{}, verifyParallel)
	var wg sync.WaitGroup
	for i, d := range m.Dumps {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			var err error
			switch {
			case deep && (src.remote() || m.Encryption != nil): // one read: the stored bytes are checked on the way
				err = verifyDump(ctx, e, d)
			default:
				err = verifyFile(ctx, src, d.File)
				if err == nil && deep {
					err = verifyDump(ctx, e, d)
				}
			}
			results[len(files)+i] = err
		}()
	}
	wg.Wait()
	names := make([]string, 0, len(results))
	for _, f := range files {
		names = append(names, f.Name)
	}
	for _, d := range m.Dumps {
		names = append(names, d.Name)
	}
	for i, err := range results {
		c := Check{File: names[i], OK: err == nil}
		if err != nil {
			c.Error = err.Error()
			r.OK = false
		}
		r.Checks = append(r.Checks, c)
	}
	for _, n := range e.IncompleteExtras {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%s: incomplete (its upload or its record never finished, e.g. a killed export): not part of the backup, ignored; the next backup or export removes it", n))
	}
	// a backup without dumps is one taken with --skip-db-backup, and says
	// so; a manifest whose dumps were removed (by hand, or cut) must not
	// pass for a backup a restore could use
	if len(m.Dumps) == 0 && m.DatabaseSkipped == "" {
		r.OK = false
		r.Checks = append(r.Checks, Check{File: manifestName, Error: "lists no database dump and no reason why (databaseSkipped): dumps removed from it?"})
	}
	return r
}

// VerifyError turns a failed report into an error naming the file.
func VerifyError(r *VerifyReport) error {
	if c := r.FirstFailure(); c != nil {
		return errs.Preconditionf("backup %s is corrupt: %s: %s", r.ID, c.File, c.Error)
	}
	return nil
}

func verifyFile(ctx context.Context, src fileSource, f File) error {
	fh, err := src.open(ctx, f.Name)
	if err != nil {
		return err
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return err
	}
	if n != f.Bytes {
		return fmt.Errorf("size %d, manifest says %d", n, f.Bytes)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return fmt.Errorf("sha256 %s, manifest says %s", got, f.SHA256)
	}
	return nil
}

// verifyDump checks the stored file and decompresses it to check the SQL
// it holds, in one read.
func verifyDump(ctx context.Context, e *Entry, d Dump) error {
	c, err := e.OpenCheckedDump(ctx, d)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := io.Copy(io.Discard, c); err != nil {
		return err
	}
	return c.Err()
}

// CheckedDump reads a dump's SQL and checks it against the manifest on the
// way: size, sha256 and completion trailer. At the end Read returns the
// mismatch instead of io.EOF; Err tells the outcome also to a caller whose
// reader (e.g. an exec stream's stdin) drops read errors.
type CheckedDump struct {
	rc   io.ReadCloser
	d    Dump
	sum  hash.Hash
	n    int64
	tail tailWriter
	head []byte // the first headKeep bytes: the dump's identity
	done bool   // the end was reached
	err  error  // the first read error or mismatch
}

var errNotReadToEnd = errors.New("the SQL was not read to its end")

// OpenCheckedDump opens dir/d.Name for reading its SQL with the checks of
// CheckedDump.
func OpenCheckedDump(dir string, d Dump) (*CheckedDump, error) {
	return openChecked(dir, d, sha256.New())
}

// OpenStoredDump is OpenCheckedDump for a dump whose stored file VerifyStored
// has just checked: its sha256 pins every compressed byte and zstd checks the
// content checksum of each frame as it decompresses, so the SQL's own sha256
// (about a twentieth of a restore's CPU) is not recomputed. Size and
// completion trailer still are.
func OpenStoredDump(dir string, d Dump) (*CheckedDump, error) {
	return openChecked(dir, d, nil)
}

// openChecked opens d's file; sum (nil: none) gets every SQL byte.
func openChecked(dir string, d Dump, sum hash.Hash) (*CheckedDump, error) {
	f, err := os.Open(filepath.Join(dir, d.Name))
	if err != nil {
		return nil, err
	}
	return newCheckedDump(f, d, sum)
}

// newCheckedDump decompresses the stored file f (closed with the result).
func newCheckedDump(f io.ReadCloser, d Dump, sum hash.Hash) (*CheckedDump, error) {
	rc, err := newDumpReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &CheckedDump{rc: rc, d: d, sum: sum}, nil
}

func (c *CheckedDump) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.done {
		return 0, io.EOF
	}
	n, err := c.rc.Read(p)
	if n > 0 {
		if c.sum != nil {
			c.sum.Write(p[:n])
		}
		c.tail.Write(p[:n])
		if len(c.head) < headKeep {
			c.head = append(c.head, p[:min(n, headKeep-len(c.head))]...)
		}
		c.n += int64(n)
	}
	switch {
	case err == io.EOF:
		c.done = true
		if c.err = c.check(); c.err != nil {
			return n, c.err
		}
	case err != nil:
		c.err = fmt.Errorf("decompressing: %w", err)
		return n, c.err
	}
	return n, err
}

func (c *CheckedDump) check() error {
	if c.n != c.d.RawBytes {
		return fmt.Errorf("holds %d bytes of SQL, manifest says %d", c.n, c.d.RawBytes)
	}
	if c.sum != nil { // nil: pinned by the stored file's sha256 (OpenStoredDump)
		if got := hex.EncodeToString(c.sum.Sum(nil)); got != c.d.RawSHA256 {
			return fmt.Errorf("SQL sha256 %s, manifest says %s", got, c.d.RawSHA256)
		}
	}
	if err := checkTrailer(c.tail.b, c.d.Database == ""); err != nil {
		return err
	}
	if c.d.Database == "" {
		return nil
	}
	// the dump must be the database the manifest says: a manifest edited to
	// swap two dumps' names (re-hashed) would otherwise replace one database
	// with another's content
	id, err := ParseDumpHead(c.head)
	if err != nil {
		return err
	}
	return c.d.CheckIdentity(id)
}

// Err is nil once all the SQL was read and matched the manifest.
func (c *CheckedDump) Err() error {
	if c.err == nil && !c.done {
		return errNotReadToEnd
	}
	return c.err
}

// Close closes the file.
func (c *CheckedDump) Close() error { return c.rc.Close() }

// Drain reads what is left of the dump (after its reader stopped early, e.g.
// psql failed) and returns the verdict on the whole: nil when it matched the
// manifest, else the mismatch (or read error). It tells a corrupt dump from
// a replay that failed for another reason.
func (c *CheckedDump) Drain() error {
	if c.err == nil && !c.done {
		_, _ = io.Copy(io.Discard, c)
	}
	return c.Err()
}

// VerifyDump proves one dump of e whole (stored size and sha256, then its
// SQL: size, sha256, trailer, identity), as Verify does for every dump.
func VerifyDump(ctx context.Context, e *Entry, d Dump) error {
	if err := verifyDump(ctx, e, d); err != nil {
		return corruptFile(e, d.Name, err)
	}
	return nil
}

// corruptFile is err, about file name of backup e, as "backup ID is
// corrupt" (exit 4); a typed error (the bucket or a key failed, not the
// backup) is passed on as it is.
func corruptFile(e *Entry, name string, err error) error {
	var typed *errs.Error
	if errors.As(err, &typed) {
		return err
	}
	return errs.Preconditionf("backup %s is corrupt: %s: %v", e.ID, name, err)
}

// CheckStoredSizes makes sure every file the manifest lists is there with
// its size, without reading it (one metadata request per object in a
// bucket): what a restore that proves each dump as it replays it checks
// before anything starts.
func CheckStoredSizes(ctx context.Context, e *Entry) error {
	m := e.Manifest
	files := []File{m.Values, m.AllValues}
	for _, d := range m.Dumps {
		files = append(files, d.File)
	}
	files = append(files, m.Extra...)
	src := e.source()
	for _, f := range files {
		n, err := src.size(ctx, f.Name)
		if err != nil {
			return corruptFile(e, f.Name, err)
		}
		if n != f.Bytes {
			return errs.Preconditionf("backup %s is corrupt: %s: size %d, manifest says %d", e.ID, f.Name, n, f.Bytes)
		}
	}
	return nil
}

// OpenDump opens a compressed dump for reading its SQL.
func OpenDump(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	rc, err := newDumpReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return rc, nil
}

func newDumpReader(f io.ReadCloser) (io.ReadCloser, error) {
	zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, err
	}
	return &dumpReader{zr: zr, f: f}, nil
}

type dumpReader struct {
	zr *zstd.Decoder
	f  io.ReadCloser
}

func (d *dumpReader) Read(p []byte) (int, error) { return d.zr.Read(p) }
func (d *dumpReader) Close() error {
	d.zr.Close()
	return d.f.Close()
}

type tailWriter struct{ b []byte }

// Write keeps the last tailKeep bytes in place: appending each 32 KiB read
// and trimming allocated as many bytes as the dump held.
func (t *tailWriter) Write(p []byte) (int, error) {
	if len(p) >= tailKeep {
		t.b = append(t.b[:0], p[len(p)-tailKeep:]...)
		return len(p), nil
	}
	if keep := tailKeep - len(p); len(t.b) > keep {
		t.b = t.b[:copy(t.b, t.b[len(t.b)-keep:])]
	}
	t.b = append(t.b, p...)
	return len(p), nil
}

// Decompress reads the zstd stream rc (a dump, or an extra such as the
// Dataflow logs export); closing the result closes rc.
func Decompress(rc io.ReadCloser) (io.ReadCloser, error) { return newDumpReader(rc) }
