package backup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// writeDump writes sql through a dumpWriter as db-<id>.sql.zst in dir and
// returns its manifest record (for tests that need a finished dump).
func writeDump(tb testing.TB, dir, id string, sql []byte) Dump {
	tb.Helper()
	w, err := newDumpWriter(dir, "db-"+id+".sql.zst", nil)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.Write(sql); err != nil {
		tb.Fatal(err)
	}
	d, err := w.finish(id)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// A dump written through dumpWriter verifies; one flipped byte is caught and named.
func TestDumpWriterAndVerify(t *testing.T) {
	dir := t.TempDir()
	var n atomic.Int64
	w, err := newDumpWriter(dir, "db-x.sql.zst", &n)
	if err != nil {
		t.Fatal(err)
	}
	sql := TestDumpSQL("x", "csghub", strings.Repeat("INSERT INTO t VALUES (1, 'row');\n", 50000))
	if _, err := w.Write([]byte(sql)); err != nil {
		t.Fatal(err)
	}
	if err := checkTrailer(w.tailBytes(), false); err != nil {
		t.Fatal(err)
	}
	d, err := w.finish("x")
	if err != nil {
		t.Fatal(err)
	}
	if d.RawBytes != int64(len(sql)) || n.Load() != int64(len(sql)) || d.Bytes >= d.RawBytes {
		t.Fatalf("dump %+v, counter %d", d, n.Load())
	}
	fi, _ := os.Stat(filepath.Join(dir, d.Name))
	if fi.Mode().Perm() != fileMode {
		t.Fatalf("mode %v", fi.Mode())
	}
	e := &Entry{ID: "1-x", Path: dir, Complete: true, Manifest: &Manifest{Dumps: []Dump{d},
		Values: mustWrite(t, dir, valuesName, "a: 1\n"), AllValues: mustWrite(t, dir, allValuesName, "a: 1\n")}}
	if rep := Verify(e); !rep.OK {
		t.Fatalf("fresh backup fails verification: %+v", rep)
	}
	path := filepath.Join(dir, d.Name)
	data, _ := os.ReadFile(path)
	data[len(data)/2] ^= 0x01
	os.WriteFile(path, data, fileMode)
	rep := Verify(e)
	if rep.OK {
		t.Fatal("flipped byte not detected")
	}
	if err := VerifyError(rep); err == nil || !strings.Contains(err.Error(), d.Name) {
		t.Fatalf("error %v does not name %s", err, d.Name)
	}
}

func TestTrailerMissingIsIncomplete(t *testing.T) {
	if err := checkTrailer([]byte("CREATE TABLE t (id int);\nCOPY t FROM stdin;\n1\n"), false); err == nil {
		t.Fatal("dump without trailer accepted")
	}
	if err := checkTrailer([]byte("--\n-- PostgreSQL database cluster dump complete\n--\n"), true); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, dir, name, content string) File {
	t.Helper()
	f, err := writeFileAtomic(dir, name, []byte(content))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// The writer's output, fed in odd-sized pieces through its encoder goroutine,
// reads back byte for byte through CheckedDump.
func TestDumpWriterRoundTrip(t *testing.T) {
	dir := t.TempDir()
	w, err := newDumpWriter(dir, "db-y.sql.zst", nil)
	if err != nil {
		t.Fatal(err)
	}
	sql := []byte(TestDumpSQL("y", "csghub", ""))
	sql = sql[:len(sql)-len("\n--\n-- PostgreSQL database dump complete\n--\n\n")]
	for i := 0; len(sql) < 3*chunkSize*chunkQueue; i++ {
		sql = append(sql, fmt.Sprintf("%d\trow %d\t%x\n", i, i*7, i*i)...)
	}
	sql = append(sql, "--\n-- PostgreSQL database dump complete\n--\n"...)
	for p, i := sql, 0; len(p) > 0; i++ {
		k := min(len(p), (i*7919)%(70<<10)+1) // 1 byte to 70 KiB, across chunk edges
		if n, err := w.Write(p[:k]); n != k || err != nil {
			t.Fatalf("write: %d, %v", n, err)
		}
		p = p[k:]
	}
	if err := checkTrailer(w.tailBytes(), false); err != nil {
		t.Fatal(err)
	}
	d, err := w.finish("y")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("late")); err == nil {
		t.Fatal("write after finish accepted")
	}
	c, err := OpenCheckedDump(dir, d)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := io.ReadAll(c)
	if err != nil || c.Err() != nil || !bytes.Equal(got, sql) {
		t.Fatalf("read back %d of %d bytes, err %v, check %v", len(got), len(sql), err, c.Err())
	}
}

// An aborted dump leaves no file, and writes after the abort fail.
func TestDumpWriterAbort(t *testing.T) {
	dir := t.TempDir()
	w, err := newDumpWriter(dir, "db-z.sql.zst", nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(bytes.Repeat([]byte("x"), 5*chunkSize))
	w.abort()
	if _, err := w.Write([]byte("more")); !errors.Is(err, errAborted) {
		t.Fatalf("write after abort: %v", err)
	}
	w.abort()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}

// A failing file write surfaces as the writer's error (the encoder goroutine
// reports it to the next Write, or to finish).
func TestDumpWriterWriteError(t *testing.T) {
	dir := t.TempDir()
	w, err := newDumpWriter(dir, "db-e.sql.zst", nil)
	if err != nil {
		t.Fatal(err)
	}
	w.out.(*folderFile).f.Close() // every write to the file now fails
	var werr error
	for i := 0; i < 20 && werr == nil; i++ {
		_, werr = w.Write(bytes.Repeat([]byte("row\n"), chunkSize/2))
	}
	if werr == nil {
		werr = w.firstErr()
	}
	if werr == nil {
		if _, ferr := w.finish("e"); ferr == nil {
			t.Fatal("write to a closed file not reported")
		}
	}
	w.abort()
}

// VerifyStored checks the stored bytes only; the SQL is checked by Verify and,
// during a restore, by CheckedDump, which also tells a reader that stopped early.
func TestVerifyStoredAndCheckedDump(t *testing.T) {
	dir := t.TempDir()
	sql := strings.Repeat("INSERT INTO t VALUES (2);\n", 20000) + "--\n-- PostgreSQL database dump complete\n--\n"
	d := writeDump(t, dir, "w", []byte(sql))
	d.RawSHA256 = strings.Repeat("0", 64) // the record disagrees with the SQL, not with the file
	e := &Entry{ID: "1-w", Path: dir, Complete: true, Manifest: &Manifest{Dumps: []Dump{d},
		Values: mustWrite(t, dir, valuesName, "a: 1\n"), AllValues: mustWrite(t, dir, allValuesName, "a: 1\n")}}
	if rep := VerifyStored(e); !rep.OK {
		t.Fatalf("stored files fail the quick check: %+v", rep)
	}
	if rep := Verify(e); rep.OK {
		t.Fatal("full verify missed the SQL mismatch")
	}
	c, err := OpenCheckedDump(dir, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, c); err == nil || c.Err() == nil || !strings.Contains(c.Err().Error(), "sha256") {
		t.Fatalf("replay of mismatching SQL: read %v, check %v", err, c.Err())
	}
	c.Close()

	// a reader that stops early is not a verified replay
	d.RawSHA256 = ""
	c, err = OpenCheckedDump(dir, d)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Read(make([]byte, 100))
	if c.Err() == nil {
		t.Fatal("partial read reported as checked")
	}

	// one flipped stored byte: the quick check refuses and names the file
	path := filepath.Join(dir, d.Name)
	data, _ := os.ReadFile(path)
	data[len(data)/2] ^= 0x01
	os.WriteFile(path, data, fileMode)
	if err := VerifyError(VerifyStored(e)); err == nil || !strings.Contains(err.Error(), d.Name) {
		t.Fatalf("flipped byte: %v", err)
	}
}

// OpenStoredDump skips the SQL's sha256 (the stored file's is checked up
// front) but still refuses, while streaming, content zstd's frame checksum
// rejects, a size that disagrees with the manifest, and a missing trailer.
func TestStoredDumpChecksWhileStreaming(t *testing.T) {
	dir := t.TempDir()
	sql := TestDumpSQL("s", "csghub", strings.Repeat("INSERT INTO t VALUES (3, 'stored');\n", 40000))
	d := writeDump(t, dir, "s", []byte(sql))
	replay := func(d Dump) error {
		c, err := OpenStoredDump(dir, d)
		if err != nil {
			return err
		}
		defer c.Close()
		io.Copy(io.Discard, c)
		return c.Err()
	}
	good := d
	good.RawSHA256 = strings.Repeat("0", 64) // not consulted
	if err := replay(good); err != nil {
		t.Fatalf("intact dump refused: %v", err)
	}
	short := d
	short.RawBytes--
	if err := replay(short); err == nil || !strings.Contains(err.Error(), "bytes of SQL") {
		t.Fatalf("size mismatch: %v", err)
	}

	// the same bytes without the trailer, compressed consistently
	d2 := writeDump(t, dir, "t", []byte(sql[:len(sql)-40]))
	if err := replay(d2); err == nil || !strings.Contains(err.Error(), "trailer") && !strings.Contains(err.Error(), "complete") {
		t.Fatalf("missing trailer: %v", err)
	}

	// a flipped byte in the compressed data: zstd's checks stop the stream
	path := filepath.Join(dir, d.Name)
	data, _ := os.ReadFile(path)
	data[len(data)/2] ^= 0x40
	os.WriteFile(path, data, fileMode)
	if err := replay(d); err == nil {
		t.Fatal("a corrupted frame streamed through unnoticed")
	}
}

// tailWriter keeps exactly the last tailKeep bytes whatever the write sizes.
func TestTailWriterKeepsTheLastBytes(t *testing.T) {
	var all []byte
	var tw tailWriter
	for i, n := range []int{10, 3000, 1, 1023, 1024, 1025, 7, 500, 600, 2} {
		p := bytes.Repeat([]byte{byte('a' + i)}, n)
		tw.Write(p)
		all = append(all, p...)
		want := all
		if len(want) > tailKeep {
			want = want[len(want)-tailKeep:]
		}
		if !bytes.Equal(tw.b, want) {
			t.Fatalf("after write %d (%d bytes): tail of %d bytes differs from the last %d written", i, n, len(tw.b), len(want))
		}
	}
}
