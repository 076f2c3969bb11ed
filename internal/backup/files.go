package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
)

// Folder and file modes: backups hold the database and often secrets in values.
const (
	dirMode  = 0o700
	fileMode = 0o600
)

// writeFileAtomic writes data to dir/name via a temporary file, fsyncs and
// renames it, so a reader never sees a half-written file.
func writeFileAtomic(dir, name string, data []byte) (File, error) {
	tmp := filepath.Join(dir, "."+name+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fileMode)
	if err != nil {
		return File{}, err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return File{}, err
	}
	sum := sha256.Sum256(data)
	return File{Name: name, SHA256: hex.EncodeToString(sum[:]), Bytes: int64(len(data))}, nil
}

// dumpWriter compresses a stream with zstd into a file while hashing both the
// raw SQL and the compressed bytes, and remembers the stream's tail so the
// dump tool's completion trailer can be checked without a second read.
type dumpWriter struct {
	f       *os.File
	tmp     string
	final   string
	zw      *zstd.Encoder
	fileSum hash.Hash
	fileN   countWriter
	rawSum  hash.Hash
	rawN    int64
	tail    []byte
	// progress counts raw bytes as they arrive (read by the progress display).
	progress *atomic.Int64
	// err is the first write error: the exec stream may report it as a
	// generic stream error, so the file-system cause is kept here.
	err error
	// mu: an interrupted exec stream may still be delivering output while the
	// caller aborts, so writes and abort/finish are serialized.
	mu     sync.Mutex
	closed bool
}

var errAborted = errors.New("dump aborted")

const tailKeep = 1024

func newDumpWriter(dir, name string, progress *atomic.Int64) (*dumpWriter, error) {
	tmp := filepath.Join(dir, "."+name+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fileMode)
	if err != nil {
		return nil, err
	}
	d := &dumpWriter{f: f, tmp: tmp, final: filepath.Join(dir, name), fileSum: sha256.New(), rawSum: sha256.New(), progress: progress}
	// SpeedFastest keeps compression from being the bottleneck of the dump
	// (hundreds of MB/s per core); SQL text still shrinks 4-8x.
	d.zw, err = zstd.NewWriter(io.MultiWriter(f, d.fileSum, &d.fileN),
		zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	return d, nil
}

func (d *dumpWriter) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, errAborted
	}
	if d.err != nil {
		return 0, d.err
	}
	n, err := d.zw.Write(p)
	if err != nil && d.err == nil {
		d.err = err
	}
	d.rawSum.Write(p[:n])
	d.rawN += int64(n)
	if d.progress != nil {
		d.progress.Add(int64(n))
	}
	if len(p) >= tailKeep {
		d.tail = append(d.tail[:0], p[len(p)-tailKeep:]...)
	} else {
		d.tail = append(d.tail, p...)
		if len(d.tail) > tailKeep {
			d.tail = d.tail[len(d.tail)-tailKeep:]
		}
	}
	return n, err
}

// finish flushes, fsyncs and renames the file into place.
func (d *dumpWriter) finish(db string) (Dump, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	err := d.zw.Close()
	if err == nil {
		err = d.f.Sync()
	}
	if cerr := d.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(d.tmp, d.final)
	}
	if err != nil {
		os.Remove(d.tmp)
		return Dump{}, err
	}
	return Dump{
		File:      File{Name: filepath.Base(d.final), SHA256: hex.EncodeToString(d.fileSum.Sum(nil)), Bytes: d.fileN.n},
		Database:  db,
		RawBytes:  d.rawN,
		RawSHA256: hex.EncodeToString(d.rawSum.Sum(nil)),
	}, nil
}

// abort drops the file. The encoder is not flushed: its output is discarded.
func (d *dumpWriter) abort() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.closed = true
	d.f.Close()
	os.Remove(d.tmp)
}

// firstErr is the first local write error, if any.
func (d *dumpWriter) firstErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// fsyncDir makes a rename in dir durable.
func fsyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// checkTrailer reports whether tail ends a complete pg_dump/pg_dumpall output.
// Both write a "dump complete" comment as their last statement; a dump cut
// short lacks it even when the exit status was lost.
func checkTrailer(tail []byte, globals bool) error {
	want := "-- PostgreSQL database dump complete"
	if globals {
		want = "-- PostgreSQL database cluster dump complete"
	}
	if !bytes.Contains(tail, []byte(want)) {
		return fmt.Errorf("dump is incomplete: no %q trailer", want[3:])
	}
	return nil
}
