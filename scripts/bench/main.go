// Command bench measures helm-csghub on the project's real local stack (see
// internal/devenv) against the ways CSGHub's upgrade guide does the same work,
// in one run on the same data:
//
//   - backup: pg_dumpall straight on the server, `helm csghub backup`, and the
//     guide's `kubectl exec pg_dumpall -f` + `kubectl cp`;
//   - restore: psql replaying the backup's dumps straight on the server, and
//     `helm csghub restore`;
//   - upgrade 1.15.0 -> 2.0.0 (sample data): `helm csghub upgrade` and the
//     guide's manual steps scripted with helm and kubectl;
//   - readiness: how long after the last pod turns Ready the plugin's waiter
//     reports it;
//   - realsize: plan and upgrade 1.15.0 -> 2.0.0 on the mirror charts rendering
//     about 270 objects (bench.extraObjects), with the plugin's API request count.
//
// It starts its own cluster and PostgreSQL (state in .cache/bench, free ports),
// stops everything at the end, also on error or Ctrl-C, and prints a table of
// figures with the targets (PASS/MISS never fails the run; only real errors do).
//
//	go run ./scripts/bench [-size-mb 1024] [-json FILE] [-phases backup,restore,upgrade,readiness,realsize]
//
// `make bench` runs it through scripts/bench/run.sh, which builds bin/helm-csghub first.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/opencsgs/helm-csghub/internal/devenv"
)

type config struct {
	sizeMB     int
	jsonOut    string
	dir        string
	plugin     string
	phases     map[string]bool
	parallel   int
	replicas   int
	reps       int
	repeat     int
	timeout    time.Duration
	keep       bool
	opTimeout  time.Duration
	upgradeVer string
	profile    string
	// extraObjects is bench.extraObjects of the realsize phase
	extraObjects int
}

var allPhases = []string{"backup", "restore", "bucket", "upgrade", "readiness", "realsize"}

func parseFlags(root string) (*config, error) {
	c := &config{}
	var phases string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&c.sizeMB, "size-mb", 1024, "MiB of rows generated for the backup and restore figures (scripts/bench/gen-db.sh)")
	fs.StringVar(&c.jsonOut, "json", "", "also write the figures as JSON to this file")
	fs.StringVar(&c.dir, "dir", filepath.Join(root, ".cache", "bench"), "state directory (wiped at start, except the cached PostgreSQL template)")
	fs.StringVar(&c.plugin, "plugin", filepath.Join(root, "bin", "helm-csghub"), "plugin binary (make build)")
	fs.StringVar(&phases, "phases", strings.Join(allPhases, ","), "what to measure: "+strings.Join(allPhases, ","))
	fs.IntVar(&c.parallel, "restore-parallel", 2, "databases restored at once, by the plugin (--parallel) and by the direct replay")
	fs.IntVar(&c.replicas, "replicas", 20, "replicas of the readiness test's Deployment")
	fs.IntVar(&c.reps, "readiness-runs", 5, "readiness latency repetitions")
	fs.IntVar(&c.repeat, "repeat", 1, "runs of each backup/restore measurement; the fastest counts (the machine may be shared)")
	fs.DurationVar(&c.timeout, "timeout", 45*time.Minute, "bound on the whole run")
	fs.DurationVar(&c.opTimeout, "op-timeout", 15*time.Minute, "bound on each command measured")
	fs.BoolVar(&c.keep, "keep", false, "keep the state directory's data (backups, PostgreSQL data, logs) after the run")
	fs.StringVar(&c.profile, "profile", "", "after the backup/restore figures, profile one more plugin backup and restore system-wide with perf; reports go to this folder")
	fs.StringVar(&c.upgradeVer, "upgrade-to", "2.0.0", "chart version the upgrade figures go to (from 1.15.0)")
	fs.IntVar(&c.extraObjects, "extra-objects", 240, "realsize phase: bench.extraObjects of the mirror charts (240: about 270 objects, the real chart's size)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./scripts/bench [flags]\n\nPerformance figures of helm-csghub on the local real stack.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	c.phases = map[string]bool{}
	for _, p := range strings.Split(phases, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		ok := false
		for _, a := range allPhases {
			ok = ok || a == p
		}
		if !ok {
			return nil, fmt.Errorf("-phases: unknown phase %q (known: %s)", p, strings.Join(allPhases, ","))
		}
		c.phases[p] = true
	}
	switch {
	case len(c.phases) == 0:
		return nil, errors.New("-phases: nothing to measure")
	case c.sizeMB < 1:
		return nil, errors.New("-size-mb must be at least 1")
	case c.parallel < 1 || c.replicas < 1 || c.reps < 1 || c.repeat < 1:
		return nil, errors.New("-restore-parallel, -replicas, -readiness-runs and -repeat must be at least 1")
	}
	abs, err := filepath.Abs(c.dir)
	if err != nil {
		return nil, err
	}
	c.dir = abs
	if c.profile != "" {
		if c.profile, err = filepath.Abs(c.profile); err != nil {
			return nil, err
		}
		if !c.phases["backup"] && !c.phases["restore"] {
			return nil, errors.New("-profile profiles the backup and restore: keep them in -phases")
		}
	}
	return c, nil
}

func main() {
	os.Exit(run())
}

func run() int {
	root, err := devenv.RepoRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	cfg, err := parseFlags(root)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 2
	}
	sigCtx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	ctx, cancel := context.WithTimeout(sigCtx, cfg.timeout)
	defer cancel()

	b := &bench{cfg: cfg, root: root, res: newResults(cfg)}
	err = b.main(ctx)
	b.res.finish(err)
	b.report(os.Stdout)
	if cfg.jsonOut != "" {
		if werr := b.res.writeJSON(cfg.jsonOut); werr != nil {
			fmt.Fprintf(os.Stderr, "bench: writing %s: %v\n", cfg.jsonOut, werr)
			if err == nil {
				return 1
			}
		}
	}
	switch {
	case err == nil:
		return 0
	case sigCtx.Err() != nil:
		fmt.Fprintf(os.Stderr, "bench: interrupted: %v\n", err)
		return 130
	case ctx.Err() != nil:
		fmt.Fprintf(os.Stderr, "bench: -timeout %s reached: %v\n", cfg.timeout, err)
		return 1
	default:
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
}

// main sets the stack up, measures the chosen phases and always tears down.
func (b *bench) main(ctx context.Context) (err error) {
	if _, err := os.Stat(b.cfg.plugin); err != nil {
		return fmt.Errorf("plugin binary %s: %w (run `make build` first)", b.cfg.plugin, err)
	}
	unlock, err := lockDir(b.cfg.dir)
	if err != nil {
		return err
	}
	defer unlock()
	defer func() {
		if cerr := b.teardown(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := b.setup(ctx); err != nil {
		return fmt.Errorf("setting up the stack: %w", err)
	}
	ph := b.cfg.phases
	if ph["backup"] || ph["restore"] || ph["bucket"] {
		if err := b.freshRelease(ctx, "pg-data", false); err != nil {
			return err
		}
		if err := b.generate(ctx); err != nil {
			return err
		}
		if err := b.backupPhase(ctx); err != nil {
			return fmt.Errorf("backup figures: %w", err)
		}
		if ph["restore"] {
			if err := b.restorePhase(ctx); err != nil {
				return fmt.Errorf("restore figures: %w", err)
			}
		}
		if ph["bucket"] {
			if err := b.bucketPhase(ctx); err != nil {
				return fmt.Errorf("bucket figures: %w", err)
			}
		}
		if b.cfg.profile != "" {
			if err := b.profilePhase(ctx); err != nil {
				return fmt.Errorf("profile: %w", err)
			}
		}
	}
	if ph["upgrade"] {
		if err := b.upgradePhase(ctx); err != nil {
			return fmt.Errorf("upgrade figures: %w", err)
		}
	}
	if ph["readiness"] {
		if err := b.readinessPhase(ctx); err != nil {
			return fmt.Errorf("readiness figures: %w", err)
		}
	}
	if ph["realsize"] {
		if err := b.realSizePhase(ctx); err != nil {
			return fmt.Errorf("real-size figures: %w", err)
		}
	}
	return nil
}

// logf prints a progress line on stderr (stdout is for the figures).
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
