// Command dataflowlogs measures the v2.0.0 Dataflow logs move on real servers:
// N log lines (default 1,000,000) seeded into a FerretDB (MongoDB wire
// protocol) the way Dataflow 1.x writes them, exported with the plugin's
// exporter (internal/dataflowlogs, official Go driver) into a zstd file, then
// imported with the plugin's importer (pgx COPY, one transaction per
// collection) into a PostgreSQL 15 database; then imported again (the
// ledger makes it skip everything). It prints documents or rows per second
// and the process's peak RSS. No cluster: the figures are the move's own
// cost; in an upgrade both ends also cross a port-forward.
//
//	go run ./scripts/bench/dataflowlogs [-lines 1000000] [-tasks 20] [-dir .cache/bench-logs]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/opencsgs/helm-csghub/internal/dataflowlogs"
	"github.com/opencsgs/helm-csghub/internal/devenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench dataflowlogs: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := devenv.RepoRoot()
	if err != nil {
		return err
	}
	lines := flag.Int("lines", 1_000_000, "log lines to seed, export and import")
	tasks := flag.Int("tasks", 20, "tasks the lines are spread over (all three task types)")
	dir := flag.String("dir", filepath.Join(root, ".cache", "bench-logs"), "state directory (wiped)")
	flag.Parse()
	if *lines < 1 || *tasks < 3 {
		return fmt.Errorf("-lines must be at least 1 and -tasks at least 3")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := os.RemoveAll(*dir); err != nil {
		return err
	}
	s, err := devenv.New(root, *dir, devenv.Ports{})
	if err != nil {
		return err
	}
	s.Log = func(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...) }
	if err := s.BuildFerretDB(); err != nil {
		return err
	}
	if err := s.InitPostgres(); err != nil {
		return err
	}
	mongoSrv, err := s.StartFerretDB(ctx, filepath.Join(*dir, "mongo"), "root", "bench-password")
	if err != nil {
		return err
	}
	defer mongoSrv.Stop()
	pg, err := s.StartPostgres(filepath.Join(*dir, "pg-logs"))
	if err != nil {
		return err
	}
	defer pg.Remove()

	// seed: the same document shapes as the e2e tests, spread over the tasks
	dbs := []string{"datasource", "formatity", "pipline_job"}
	var spec []devenv.SeedTask
	for i := 0; i < *tasks; i++ {
		n := *lines / *tasks
		if i < *lines%*tasks {
			n++
		}
		t := devenv.SeedTask{DB: dbs[i%3], UID: fmt.Sprintf("bench-%04d", i), Lines: n}
		if t.DB == "pipline_job" {
			t.Operators = 4
		}
		spec = append(spec, t)
	}
	t0 := time.Now()
	if _, err := devenv.SeedDataflowLogs(ctx, mongoSrv.URL, spec, false); err != nil {
		return err
	}
	seed := time.Since(t0)
	fmt.Fprintf(os.Stderr, "bench: seeded %d lines in %s\n", *lines, seed.Round(time.Millisecond))

	// export
	client, err := mongo.Connect(options.Client().ApplyURI(mongoSrv.URL).SetDirect(true))
	if err != nil {
		return err
	}
	defer client.Disconnect(context.Background())
	exportPath := filepath.Join(*dir, dataflowlogs.ExportFile)
	f, err := os.Create(exportPath)
	if err != nil {
		return err
	}
	var docs atomic.Int64
	t0 = time.Now()
	res, err := dataflowlogs.WriteExport(ctx, client, f, &docs)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	export := time.Since(t0)
	fi, err := os.Stat(exportPath)
	if err != nil {
		return err
	}

	// import, then again
	conn, err := pg.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{dataflowlogs.LogsDatabase}.Sanitize()); err != nil {
		return err
	}
	conn.Close(ctx)
	logs, err := pg.Connect(ctx, dataflowlogs.LogsDatabase)
	if err != nil {
		return err
	}
	defer logs.Close(context.Background())
	im := &dataflowlogs.Importer{Conn: logs}
	t0 = time.Now()
	first, err := im.ImportFile(ctx, exportPath)
	if err != nil {
		return err
	}
	imp := time.Since(t0)
	t0 = time.Now()
	second, err := im.ImportFile(ctx, exportPath)
	if err != nil {
		return err
	}
	again := time.Since(t0)
	var rows int64
	if err := logs.QueryRow(ctx, "SELECT count(*) FROM task_log").Scan(&rows); err != nil {
		return err
	}
	if rows != int64(*lines) || second.Imported != 0 {
		return fmt.Errorf("task_log holds %d rows for %d lines, second import added %d", rows, *lines, second.Imported)
	}

	fmt.Printf("Dataflow logs move, %d lines in %d tasks (%d collections incl. operator states), GOMAXPROCS %d, load %s\n",
		*lines, *tasks, len(res.Collections), runtime.GOMAXPROCS(0), loadAvg())
	fmt.Printf("  %-38s %10s %14s\n", "step", "seconds", "per second")
	fmt.Printf("  %-38s %10.2f %14.0f  documents (FerretDB InsertMany, for reference)\n", "seed MongoDB", seed.Seconds(), float64(*lines)/seed.Seconds())
	fmt.Printf("  %-38s %10.2f %14.0f  documents -> %.1f MiB zstd\n", "export (mongo-driver -> jsonl.zst)", export.Seconds(), float64(res.Documents)/export.Seconds(), float64(fi.Size())/(1<<20))
	fmt.Printf("  %-38s %10.2f %14.0f  rows (COPY, 1 tx per collection)\n", "import (pgx COPY -> task_log)", imp.Seconds(), float64(first.Imported)/imp.Seconds())
	fmt.Printf("  %-38s %10.2f %14.0f  documents skipped via the ledger\n", "second import (nothing new)", again.Seconds(), float64(second.Already)/again.Seconds())
	fmt.Printf("  peak RSS of this process (seed + export + import): %s\n", peakRSS())
	return nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
