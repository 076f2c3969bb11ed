package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

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
// dump to check its size, checksum and completion trailer.
func Verify(e *Entry) *VerifyReport {
	r := &VerifyReport{ID: e.ID, Path: e.Path, OK: true}
	add := func(name string, err error) {
		c := Check{File: name, OK: err == nil}
		if err != nil {
			c.Error = err.Error()
			r.OK = false
		}
		r.Checks = append(r.Checks, c)
	}
	m := e.Manifest
	files := []File{m.Values, m.AllValues}
	files = append(files, m.Extra...)
	for _, f := range files {
		add(f.Name, verifyFile(e.Path, f))
	}
	for _, d := range m.Dumps {
		err := verifyFile(e.Path, d.File)
		if err == nil {
			err = verifyDump(e.Path, d)
		}
		add(d.Name, err)
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

func verifyFile(dir string, f File) error {
	fh, err := os.Open(filepath.Join(dir, f.Name))
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

// verifyDump decompresses the dump and checks the SQL it holds.
func verifyDump(dir string, d Dump) error {
	rc, err := OpenDump(filepath.Join(dir, d.Name))
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	tail := &tailWriter{}
	n, err := io.Copy(io.MultiWriter(h, tail), rc)
	if err != nil {
		return fmt.Errorf("decompressing: %w", err)
	}
	if n != d.RawBytes {
		return fmt.Errorf("holds %d bytes of SQL, manifest says %d", n, d.RawBytes)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.RawSHA256 {
		return fmt.Errorf("SQL sha256 %s, manifest says %s", got, d.RawSHA256)
	}
	return checkTrailer(tail.b, d.Database == "")
}

// OpenDump opens a compressed dump for reading its SQL.
func OpenDump(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		f.Close()
		return nil, err
	}
	return &dumpReader{zr: zr, f: f}, nil
}

type dumpReader struct {
	zr *zstd.Decoder
	f  *os.File
}

func (d *dumpReader) Read(p []byte) (int, error) { return d.zr.Read(p) }
func (d *dumpReader) Close() error {
	d.zr.Close()
	return d.f.Close()
}

type tailWriter struct{ b []byte }

func (t *tailWriter) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > tailKeep {
		t.b = t.b[len(t.b)-tailKeep:]
	}
	return len(p), nil
}
