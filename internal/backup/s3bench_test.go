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
				// two at once, as the restore replays them
				errc := make(chan error, len(e.Manifest.Dumps))
				for _, d := range e.Manifest.Dumps {
					go func() {
						c, err := e.OpenStoredDump(context.Background(), d)
						if err != nil {
							errc <- err
							return
						}
						defer c.Close()
						if _, err := io.Copy(io.Discard, struct{ io.Reader }{c}); err != nil {
							errc <- err
							return
						}
						errc <- c.Err()
					}()
				}
				for range e.Manifest.Dumps {
					if err := <-errc; err != nil {
						b.Fatal(err)
					}
				}
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
	// dumpParallel dumps at once, as a backup streams them, half the SQL each
	dumps := make([]Dump, dumpParallel)
	errc := make(chan error, dumpParallel)
	for j := range dumps {
		go func() {
			d, err := benchDump(sink, fmt.Sprintf("app%d", j), size/dumpParallel, block)
			dumps[j] = d
			errc <- err
		}()
	}
	for range dumps {
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
	m.Dumps = dumps
	for _, d := range dumps {
		m.Databases = append(m.Databases, d.Database)
	}
	data, err := jsonIndent(m)
	if err != nil {
		b.Fatal(err)
	}
	if err := sink.complete(ctx, data); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(m.TotalRawBytes())/float64(m.TotalBytes()), "x-compression")
	return cat.entryFor(sink.where(), m)
}

// benchDump streams size bytes of SQL of database db into sink in the
// exec stream's frame size.
func benchDump(sink backupSink, db string, size int64, block []byte) (Dump, error) {
	out, err := sink.create(dumpFileName(db))
	if err != nil {
		return Dump{}, err
	}
	w, err := newDumpWriterTo(out, dumpFileName(db), nil)
	if err != nil {
		return Dump{}, err
	}
	full := TestDumpSQL(db, "csghub", "")
	cut := strings.Index(full, "\n--\n-- PostgreSQL database dump complete")
	head, trailer := full[:cut+1], full[cut+1:]
	const frame = 32 << 10
	write := func(p []byte) error {
		for len(p) > 0 {
			k := min(frame, len(p))
			if _, err := w.Write(p[:k]); err != nil {
				return err
			}
			p = p[k:]
		}
		return nil
	}
	if err := write([]byte(head)); err != nil {
		w.abort()
		return Dump{}, err
	}
	for n := int64(len(head) + len(trailer)); n < size; {
		k := min(int64(len(block)), size-n)
		if err := write(block[:k]); err != nil {
			w.abort()
			return Dump{}, err
		}
		n += k
	}
	if err := write([]byte(trailer)); err != nil {
		w.abort()
		return Dump{}, err
	}
	d, err := w.finish(db)
	d.Owner = "csghub"
	return d, err
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
