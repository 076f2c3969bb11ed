package backup

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// The plugin's own cost per byte of SQL, apart from the exec stream: what a
// backup does with each byte it receives (compress, hash twice, write) and
// what a restore does with each byte it sends (read, decompress, hash, check).
// scripts/bench measures the whole path on the cluster; these figures say how
// much of it is ours. Run with: go test -run '^$' -bench . ./internal/backup

// benchSQL is pg_dump-like COPY data: ids, names, short hex digests,
// timestamps and free text, compressing about as well (6-7x) as the bench's
// generated database.
func benchSQL(size int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	b.Grow(size + 256)
	b.WriteString("COPY public.repositories (id, path, sha, created_at, description) FROM stdin;\n")
	words := []string{"model", "dataset", "space", "code", "llama", "qwen", "finetune", "eval", "chat", "vision"}
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "%d\tns-%d/%s-%d\t%04x\t2026-%02d-%02d %02d:%02d:%02d+00\tSample repository of %s for %s and %s\n",
			i, r.IntN(500), words[r.IntN(len(words))], r.IntN(1000), r.Uint32()&0xffff,
			1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60),
			words[r.IntN(len(words))], words[r.IntN(len(words))], words[r.IntN(len(words))])
	}
	b.WriteString("\\.\n\n--\n-- PostgreSQL database dump complete\n--\n\n")
	return []byte(b.String())
}

const benchSQLSize = 64 << 20

// BenchmarkDumpWriter: the backup side, fed in the exec stream's frame size.
func BenchmarkDumpWriter(b *testing.B) {
	sql := benchSQL(benchSQLSize)
	dir := b.TempDir()
	const frame = 32 << 10
	b.SetBytes(int64(len(sql)))
	b.ReportAllocs()
	var ratio float64
	for i := 0; b.Loop(); i++ {
		var n atomic.Int64
		w, err := newDumpWriter(dir, fmt.Sprintf("db-%d.sql.zst", i), &n)
		if err != nil {
			b.Fatal(err)
		}
		for p := sql; len(p) > 0; {
			k := min(frame, len(p))
			if _, err := w.Write(p[:k]); err != nil {
				b.Fatal(err)
			}
			p = p[k:]
		}
		d, err := w.finish("db")
		if err != nil {
			b.Fatal(err)
		}
		ratio = float64(d.RawBytes) / float64(d.Bytes)
		os.Remove(filepath.Join(dir, d.Name))
	}
	b.ReportMetric(ratio, "x-compression")
}

// BenchmarkCheckedDump: reading a dump back in psql-stdin-sized pieces, as
// `backup verify` does (SQL sha256 recomputed) and as a restore does
// (OpenStoredDump: size, trailer and zstd's checksums only).
func BenchmarkCheckedDump(b *testing.B) {
	sql := benchSQL(benchSQLSize)
	dir := b.TempDir()
	d := writeDump(b, dir, "x", sql)
	for _, c := range []struct {
		name string
		open func(string, Dump) (*CheckedDump, error)
	}{{"verify", OpenCheckedDump}, {"restore", OpenStoredDump}} {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 32<<10)
			b.SetBytes(int64(len(sql)))
			b.ReportAllocs()
			for b.Loop() {
				rc, err := c.open(dir, d)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{rc}, buf); err != nil {
					b.Fatal(err)
				}
				if err := rc.Err(); err != nil {
					b.Fatal(err)
				}
				rc.Close()
			}
		})
	}
}

// BenchmarkVerifyBeforeRestore: what restore now spends before its first DROP
// proving every dump (Verify: sha256 of the file, decompression, SQL size,
// SQL sha256, trailer), on a backup of four databases checked two at a time.
// "s/GiB" is the wall time it adds per GiB of SQL on this machine.
func BenchmarkVerifyBeforeRestore(b *testing.B) {
	sql := benchSQL(benchSQLSize)
	dir := b.TempDir()
	m := &Manifest{}
	var err error
	if m.Values, err = writeFileAtomic(dir, valuesName, []byte("a: 1\n")); err != nil {
		b.Fatal(err)
	}
	if m.AllValues, err = writeFileAtomic(dir, allValuesName, []byte("a: 1\n")); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		m.Dumps = append(m.Dumps, writeDump(b, dir, fmt.Sprint(i), sql))
	}
	e := &Entry{ID: "bench", Path: dir, Complete: true, Manifest: m}
	b.SetBytes(m.TotalRawBytes())
	for b.Loop() {
		if err := VerifyError(Verify(e)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)/(float64(m.TotalRawBytes())/(1<<30)), "s/GiB")
}
