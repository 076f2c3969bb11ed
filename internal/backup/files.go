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
//
// Write only copies into a chunk and hands full chunks to a goroutine that
// compresses, hashes and writes them: the exec stream's reader goes back to
// the connection at once instead of waiting for the encoder, so the dump tool,
// the API server and the encoder run at the same time. At most chunkQueue
// chunks wait (backpressure beyond that), so memory stays bounded.
type dumpWriter struct {
	out     fileSink // the file (a folder's temporary file, or an upload)
	name    string
	zw      *zstd.Encoder
	fileSum hash.Hash
	fileN   countWriter
	rawSum  hash.Hash
	rawN    int64
	tail    []byte
	head    []byte // the first headKeep bytes: the dump's identity
	// progress counts raw bytes as they arrive (read by the progress display).
	progress *atomic.Int64

	cur   []byte      // chunk being filled by Write
	full  chan []byte // chunks for the encoder goroutine
	free  chan []byte // chunks it has finished with
	done  chan struct{}
	wrErr atomic.Pointer[error] // the encoder goroutine's first error

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

const (
	// encoderWindow is the zstd window of the dumps (see newDumpWriter).
	encoderWindow = 1 << 20
	// chunkSize is one zstd block: each chunk is encoded in one go.
	chunkSize = 128 << 10
	// chunkQueue is how many full chunks may wait for the encoder.
	chunkQueue = 4
)

// newDumpWriter writes the dump into folder dir.
func newDumpWriter(dir, name string, progress *atomic.Int64) (*dumpWriter, error) {
	out, err := createFolderFile(dir, name)
	if err != nil {
		return nil, err
	}
	return newDumpWriterTo(out, name, progress)
}

// newDumpWriterTo writes the dump named name into out.
func newDumpWriterTo(out fileSink, name string, progress *atomic.Int64) (*dumpWriter, error) {
	var err error
	d := &dumpWriter{out: out, name: name, fileSum: sha256.New(), rawSum: sha256.New(), progress: progress,
		full: make(chan []byte, chunkQueue), free: make(chan []byte, chunkQueue+1), done: make(chan struct{})}
	// SpeedFastest keeps compression from being the bottleneck of the dump
	// (over 500 MB/s per core); SQL text still shrinks 4-8x. A 1 MiB window
	// compresses generated SQL within 0.3% of the default 4 MiB with a quarter
	// of the history buffer (also on the restore side). WithLowerEncoderMem is
	// not used: with it the encoder moves its whole window down for every
	// 128 KiB block, which halved the speed (270 vs 530 MB/s).
	d.zw, err = zstd.NewWriter(io.MultiWriter(out, d.fileSum, &d.fileN),
		zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(encoderWindow))
	if err != nil {
		out.abort()
		return nil, err
	}
	d.cur = make([]byte, 0, chunkSize)
	go d.encode()
	return d, nil
}

// encode is the goroutine that compresses and hashes full chunks. After a
// write error it keeps draining (Write reports the error) until full closes.
func (d *dumpWriter) encode() {
	defer close(d.done)
	for chunk := range d.full {
		if d.wrErr.Load() == nil {
			if _, err := d.zw.Write(chunk); err != nil {
				d.wrErr.Store(&err)
			}
			d.rawSum.Write(chunk)
		}
		d.free <- chunk[:0]
	}
}

func (d *dumpWriter) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, errAborted
	}
	if d.err == nil {
		if e := d.wrErr.Load(); e != nil {
			d.err = *e
		}
	}
	if d.err != nil {
		return 0, d.err
	}
	n := len(p)
	d.rawN += int64(n)
	if d.progress != nil {
		d.progress.Add(int64(n))
	}
	if len(d.head) < headKeep {
		d.head = append(d.head, p[:min(n, headKeep-len(d.head))]...)
	}
	if n >= tailKeep {
		d.tail = append(d.tail[:0], p[n-tailKeep:]...)
	} else {
		d.tail = append(d.tail, p...)
		if len(d.tail) > tailKeep {
			d.tail = d.tail[len(d.tail)-tailKeep:]
		}
	}
	for len(p) > 0 {
		k := copy(d.cur[len(d.cur):cap(d.cur)], p)
		d.cur = d.cur[:len(d.cur)+k]
		p = p[k:]
		if len(d.cur) == cap(d.cur) {
			d.handOff()
		}
	}
	return n, nil
}

// handOff queues the current chunk for the encoder and takes an empty one.
func (d *dumpWriter) handOff() {
	d.full <- d.cur
	select {
	case d.cur = <-d.free:
	default:
		d.cur = make([]byte, 0, chunkSize)
	}
}

// stop hands the last chunk over, waits for the encoder goroutine and returns
// its first error.
func (d *dumpWriter) stop(flush bool) error {
	if flush && len(d.cur) > 0 {
		d.handOff()
	}
	close(d.full)
	<-d.done
	if e := d.wrErr.Load(); e != nil {
		return *e
	}
	return nil
}

// finish flushes the encoder and commits the file (fsynced and renamed
// into place, or the upload completed).
func (d *dumpWriter) finish(db string) (Dump, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return Dump{}, errAborted
	}
	d.closed = true
	err := d.stop(true)
	if err == nil {
		err = d.zw.Close()
	}
	if err != nil {
		d.out.abort()
		return Dump{}, err
	}
	if err := d.out.commit(); err != nil {
		return Dump{}, err
	}
	file := File{Name: d.name, SHA256: hex.EncodeToString(d.fileSum.Sum(nil)), Bytes: d.fileN.n}
	if s, ok := d.out.(storedFile); ok { // encrypted: the manifest pins the stored bytes
		file.SHA256, file.Bytes = s.stored()
	}
	return Dump{
		File:      file,
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
	d.stop(false)
	d.out.abort()
}

// identity is what the dump says it is (its CREATE DATABASE and owner).
func (d *dumpWriter) identity() (DumpIdentity, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return ParseDumpHead(d.head)
}

// tailBytes is the end of the stream written so far.
func (d *dumpWriter) tailBytes() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]byte(nil), d.tail...)
}

// firstErr is the first local write error, if any: Write's, else the
// encoder goroutine's (a failure in the last chunks shows up only here).
func (d *dumpWriter) firstErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err == nil {
		if e := d.wrErr.Load(); e != nil {
			d.err = *e
		}
	}
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
