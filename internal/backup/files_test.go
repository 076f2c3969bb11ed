package backup

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// A dump written through dumpWriter verifies; one flipped byte is caught and named.
func TestDumpWriterAndVerify(t *testing.T) {
	dir := t.TempDir()
	var n atomic.Int64
	w, err := newDumpWriter(dir, "db-x.sql.zst", &n)
	if err != nil {
		t.Fatal(err)
	}
	sql := strings.Repeat("INSERT INTO t VALUES (1, 'row');\n", 50000) + "--\n-- PostgreSQL database dump complete\n--\n"
	if _, err := w.Write([]byte(sql)); err != nil {
		t.Fatal(err)
	}
	if err := checkTrailer(w.tail, false); err != nil {
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
