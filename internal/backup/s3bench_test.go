package backup

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/opencsgs/helm-csghub/internal/kube"
)

// BenchmarkStreamLocation: a backup's and a restore's path for one
// database, to a folder and to a real MinIO bucket on this machine: SQL
// through zstd and both sha256s into the file or the multipart upload, then
// streamed back with the restore's checks (for the bucket also the stored
// size and sha256 again). Reports MB/s of SQL and the process's peak RSS
// for each case (reset before it). 1 GiB of SQL unless BENCH_SQL_MB says:
//
//	CSGHUB_CACHE=... go test -run '^$' -bench StreamLocation -benchtime 1x ./internal/backup
func BenchmarkStreamLocation(b *testing.B) {
	size := int64(1024)
	if v, err := strconv.Atoi(os.Getenv("BENCH_SQL_MB")); err == nil && v > 0 {
		size = int64(v)
	}
	size <<= 20
	startTestMinIO(b)
	block := benchSQL(8 << 20)                                // 8 MiB: beyond the 1 MiB window, so it compresses like fresh rows
	block = block[:strings.LastIndex(string(block), "\\.\n")] // rows only
	cats := map[string]Catalog{"folder": CatalogAt(b.TempDir()), "bucket": CatalogAt("s3://backups/bench")}
	for _, where := range []string{"folder", "bucket"} {
		cat := cats[where]
		var e *Entry
		b.Run(where+"/backup", func(b *testing.B) {
			b.SetBytes(size)
			for i := 0; b.Loop(); i++ {
				resetPeakRSS()
				e = benchBackup(b, cat, i, size, block)
				b.ReportMetric(peakRSSMiB(), "peak-RSS-MiB")
			}
		})
		b.Run(where+"/restore", func(b *testing.B) {
			if e == nil {
				b.Fatal("no backup to restore")
			}
			b.SetBytes(size)
			for b.Loop() {
				resetPeakRSS()
				defer kube.LimitHeap()()
				c, err := e.OpenStoredDump(context.Background(), e.Manifest.Dumps[0])
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, struct{ io.Reader }{c}); err != nil {
					b.Fatal(err)
				}
				if err := c.Err(); err != nil {
					b.Fatal(err)
				}
				c.Close()
				b.ReportMetric(peakRSSMiB(), "peak-RSS-MiB")
			}
		})
	}
}

// benchBackup writes one backup of size bytes of SQL through cat's sink
// in the exec stream's frame size, under the plugin's heap limit.
func benchBackup(b *testing.B, cat Catalog, i int, size int64, block []byte) *Entry {
	ctx := context.Background()
	m := &Manifest{FormatVersion: FormatVersion, Release: "csghub", Namespace: "ns", Revision: 1 + i, Compression: "zstd"}
	sink, err := cat.newSink(ctx, "ns", "csghub", m.Revision, m)
	if err != nil {
		b.Fatal(err)
	}
	var parts int64
	if cat.InBucket() {
		parts = dumpParallel * UploadPartSize
	}
	defer kube.LimitHeapAbove(parts)()
	out, err := sink.create(dumpFileName("app"))
	if err != nil {
		b.Fatal(err)
	}
	w, err := newDumpWriterTo(out, dumpFileName("app"), nil)
	if err != nil {
		b.Fatal(err)
	}
	full := TestDumpSQL("app", "csghub", "")
	cut := strings.Index(full, "\n--\n-- PostgreSQL database dump complete")
	head, trailer := full[:cut+1], full[cut+1:]
	const frame = 32 << 10
	write := func(p []byte) {
		for len(p) > 0 {
			k := min(frame, len(p))
			if _, err := w.Write(p[:k]); err != nil {
				b.Fatal(err)
			}
			p = p[k:]
		}
	}
	write([]byte(head))
	for n := int64(len(head) + len(trailer)); n < size; {
		k := min(int64(len(block)), size-n)
		write(block[:k])
		n += k
	}
	write([]byte(trailer))
	d, err := w.finish("app")
	if err != nil {
		b.Fatal(err)
	}
	d.Owner = "csghub"
	m.Dumps, m.Databases = []Dump{d}, []string{"app"}
	data, err := jsonIndent(m)
	if err != nil {
		b.Fatal(err)
	}
	if err := sink.complete(ctx, data); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(d.RawBytes)/float64(d.Bytes), "x-compression")
	return cat.entryFor(sink.where(), m)
}

// resetPeakRSS starts the kernel's peak RSS (VmHWM) afresh after a GC.
func resetPeakRSS() {
	runtime.GC()
	debug.FreeOSMemory()
	_ = os.WriteFile(filepath.Join("/proc/self/clear_refs"), []byte("5"), 0)
}

func peakRSSMiB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb float64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			return kb / 1024
		}
	}
	return 0
}
