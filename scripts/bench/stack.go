package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/opencsgs/helm-csghub/internal/devenv"
)

const (
	namespace = "csghub"
	release   = "csghub"
	dbPod     = release + "-postgresql-0"
	// fromVersion is the chart the guide's upgrade starts from.
	fromVersion = "1.15.0"
)

type bench struct {
	cfg  *config
	root string
	s    *devenv.Stack
	res  *results

	work      string // per-run scratch: chart repo, backups, guide files
	helmEnv   []string
	kubectlEn []string
	listeners []net.Listener
	pgs       []*devenv.Postgres
	watchdogs []*exec.Cmd
	started   bool // cluster start attempted: teardown must stop it
	installed bool // a release may exist in the cluster

	mu sync.Mutex
	pg *devenv.Postgres // the server behind csghub-postgresql-0

	stopHooks context.CancelFunc
	hooksDone chan struct{}
	comps     *devenv.Components // what the release's verification reaches

	backupDir string // catalog of the plugin's backups (backup phase)
	backupID  string
	backupRaw int64 // SQL bytes of that backup
}

// lockDir makes sure one bench at a time uses the state directory.
func lockDir(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another bench is using %s (lock %s held)", dir, f.Name())
	}
	return func() { f.Close() }, nil
}

// setup cleans what a killed earlier run may have left, then starts the
// cluster, the chart repository, the portal stand-in and the clients.
func (b *bench) setup(ctx context.Context) error {
	dir := b.cfg.dir
	if err := b.cleanLeftovers(); err != nil {
		return err
	}
	ports, err := devenv.FreeClusterPorts()
	if err != nil {
		return err
	}
	s, err := devenv.New(b.root, dir, ports)
	if err != nil {
		return err
	}
	s.Log = logf
	b.s = s
	b.work = filepath.Join(dir, "work")
	if err := os.MkdirAll(b.work, 0o755); err != nil {
		return err
	}
	if err := s.Build(); err != nil {
		return err
	}
	if err := s.InitPostgres(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// the cluster stops itself if this process is killed
	s.StopWith(os.Getpid())
	b.started = true
	if err := s.StartCluster(); err != nil {
		return err
	}
	b.helmEnv = append(s.HelmEnv(s.Helm3), "XDG_CACHE_HOME="+filepath.Join(dir, "xdg-cache"))
	b.kubectlEn = append(s.KubectlEnv(), "XDG_CACHE_HOME="+filepath.Join(dir, "xdg-cache"))

	// ports below the ephemeral range, like the cluster's
	pp, err := devenv.FreePorts(2)
	if err != nil {
		return err
	}
	repoL, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", pp[0]))
	if err != nil {
		return err
	}
	b.listeners = append(b.listeners, repoL)
	portalL, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", pp[1]))
	if err != nil {
		return err
	}
	b.listeners = append(b.listeners, portalL)
	s.RepoURL = "http://" + repoL.Addr().String()
	repoDir := filepath.Join(b.work, "chart-repo")
	if err := s.PackageCharts(repoDir, s.RepoURL); err != nil {
		return err
	}
	go func() { _ = devenv.ServeRepo(repoL, repoDir) }()
	if err := s.ServePortal(ctx, portalL); err != nil {
		return err
	}
	if _, err := b.helm(ctx, "repo", "add", "csghub", s.RepoURL, "--force-update"); err != nil {
		return err
	}
	hctx, stop := context.WithCancel(context.Background())
	b.stopHooks, b.hooksDone = stop, make(chan struct{})
	go b.playHookJobs(hctx)
	if b.comps, err = s.StartComponents(hctx, namespace, release, filepath.Join(b.work, "components"), logf); err != nil {
		return err
	}
	return nil
}

// cleanLeftovers stops a cluster and PostgreSQL servers an earlier, killed run
// left in the state directory and removes its data (the template is kept).
func (b *bench) cleanLeftovers() error {
	dir := b.cfg.dir
	if _, err := os.Stat(filepath.Join(dir, "cluster")); err == nil {
		old, err := devenv.New(b.root, dir, devenv.Ports{})
		if err == nil {
			if err := old.StopCluster(); err != nil {
				return fmt.Errorf("stopping a cluster left by an earlier run: %w", err)
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || name == "pg-template" {
			continue
		}
		if strings.HasPrefix(name, "pg-") {
			if _, err := os.Stat(filepath.Join(dir, name, "postmaster.pid")); err == nil {
				if out, err := exec.Command(filepath.Join(b.root, "scripts", "pg.sh"), "stop", filepath.Join(dir, name)).CombinedOutput(); err != nil {
					return fmt.Errorf("stopping PostgreSQL left in %s: %v: %s", name, err, out)
				}
			}
		}
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// teardown stops everything setup and the phases started; it runs on every exit.
func (b *bench) teardown() error {
	var errs []error
	if b.stopHooks != nil {
		b.stopHooks()
		<-b.hooksDone
	}
	if b.comps != nil {
		if err := b.comps.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, pg := range b.pgs {
		if err := pg.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping PostgreSQL %s: %w", pg.DataDir, err))
		}
	}
	for _, w := range b.watchdogs {
		_ = w.Process.Kill()
		_ = w.Wait()
	}
	for _, l := range b.listeners {
		l.Close()
	}
	if b.started {
		logf("stopping the cluster")
		if err := b.s.StopCluster(); err != nil {
			errs = append(errs, fmt.Errorf("stopping the cluster: %w", err))
		}
	}
	if !b.cfg.keep && b.s != nil {
		for _, d := range append([]string{b.work, filepath.Join(b.cfg.dir, "cluster")}, pgDirs(b.pgs)...) {
			_ = os.RemoveAll(d)
		}
	} else if b.s != nil {
		logf("state kept in %s (-keep)", b.cfg.dir)
	}
	return errors.Join(errs...)
}

func pgDirs(pgs []*devenv.Postgres) []string {
	var out []string
	for _, pg := range pgs {
		out = append(out, pg.DataDir)
	}
	return out
}

// startPG starts a throwaway server from the template, with a watchdog that
// stops it if this process dies without tearing down.
func (b *bench) startPG(name string) (*devenv.Postgres, error) {
	dataDir := filepath.Join(b.cfg.dir, name)
	pg, err := b.s.StartPostgres(dataDir)
	if err != nil {
		return nil, err
	}
	b.pgs = append(b.pgs, pg)
	w := exec.Command("bash", "-c", `while kill -0 "$1" 2>/dev/null; do sleep 1; done; "$2" stop "$3"`,
		"bench-pg-watchdog", strconv.Itoa(os.Getpid()), filepath.Join(b.root, "scripts", "pg.sh"), dataDir)
	w.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("starting the PostgreSQL watchdog: %w", err)
	}
	b.watchdogs = append(b.watchdogs, w)
	return pg, nil
}

func (b *bench) currentPG() *devenv.Postgres {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pg
}

func (b *bench) setPG(pg *devenv.Postgres) {
	b.mu.Lock()
	b.pg = pg
	b.mu.Unlock()
}

// playHookJobs plays the chart's `<release>-db-init` hook Job whenever Helm
// creates it (nothing runs in KWOK pods): the databases the image creates and
// the objects the real chart's Jobs create outside Helm (as internal/testenv).
func (b *bench) playHookJobs(ctx context.Context) {
	defer close(b.hooksDone)
	for ctx.Err() == nil {
		w, err := b.s.Clientset.BatchV1().Jobs(namespace).Watch(ctx, metav1.ListOptions{})
		if err != nil {
			sleepCtx(ctx, time.Second)
			continue
		}
		for ev := range w.ResultChan() {
			job, ok := ev.Object.(*batchv1.Job)
			if !ok || ev.Type != watch.Added || job.Name != release+"-db-init" {
				continue
			}
			pg := b.currentPG()
			if pg == nil {
				continue
			}
			if err := b.s.PlayImageInit(ctx, namespace, release, pg); err != nil && ctx.Err() == nil {
				logf("playing the db-init job: %v", err)
			}
			if err := b.s.ApplyUnmanaged(ctx, namespace, release); err != nil && ctx.Err() == nil {
				logf("playing the unmanaged resources: %v", err)
			}
		}
		w.Stop()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// freshRelease gives a clean csghub 1.15.0 release in namespace csghub on a new
// PostgreSQL server: any earlier release, its cluster-scoped objects (CRDs,
// webhooks, knative-serving), its namespace and its server are removed first.
// The charts' cluster-scoped objects allow one release per cluster.
func (b *bench) freshRelease(ctx context.Context, pgName string, sample bool, installArgs ...string) error {
	t0 := time.Now()
	if b.installed {
		logf("removing the previous release")
		_, _ = b.helm(ctx, "uninstall", release, "-n", namespace, "--wait", "--timeout", "120s")
		dctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		err := b.s.DeleteClusterScoped(dctx)
		if err == nil {
			err = b.s.DeleteNamespace(dctx, namespace)
		}
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return err
		}
	}
	if old := b.currentPG(); old != nil {
		b.setPG(nil)
		if err := old.Remove(); err != nil {
			return fmt.Errorf("removing the previous PostgreSQL: %w", err)
		}
	}
	_, err := b.s.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", namespace, err)
	}
	pg, err := b.startPG(pgName)
	if err != nil {
		return err
	}
	b.setPG(pg)
	if err := b.s.AttachPod(ctx, namespace, dbPod, pg, 5432); err != nil {
		return err
	}
	b.installed = true
	if _, err := b.helm(ctx, append([]string{"install", release, "csghub/csghub", "--version", fromVersion, "-n", namespace,
		"--wait", "--timeout", "180s"}, installArgs...)...); err != nil {
		return err
	}
	if err := b.s.PlayImageInit(ctx, namespace, release, pg); err != nil {
		return err
	}
	if err := b.s.ApplyUnmanaged(ctx, namespace, release); err != nil {
		return err
	}
	// the init Jobs (ordinary resources) finish, as before an operator's next command
	if err := b.s.WaitJobsFinished(ctx, namespace, 2*time.Minute); err != nil {
		return err
	}
	if sample {
		if err := b.s.LoadSampleData(pg); err != nil {
			return err
		}
	}
	logf("csghub %s installed in namespace %s (%.1fs)", fromVersion, namespace, time.Since(t0).Seconds())
	return nil
}

// ---- commands

// cmdSpec is one command to run and time.
type cmdSpec struct {
	name    string
	args    []string
	env     []string
	dir     string
	stdin   io.Reader
	stdout  io.Writer // nil: /dev/null
	capture bool      // keep stdout (small outputs only)
	timeout time.Duration
}

type cmdResult struct {
	wall      time.Duration
	maxRSSKiB int64
	cpu       time.Duration // the command's own user+system CPU (with the children it waited for)
	stderr    string        // the tail of stderr
	hostBusy  time.Duration // CPU time all processes of the host used meanwhile (/proc/stat)
	stdout    []byte
	code      int
}

// runCmd runs c, bounded by its timeout (default -op-timeout); a non-zero exit
// is an error carrying the tail of stderr.
func (b *bench) runCmd(ctx context.Context, c cmdSpec) (cmdResult, error) {
	to := c.timeout
	if to == 0 {
		to = b.cfg.opTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.name, c.args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	cmd.Dir = c.dir
	if cmd.Dir == "" {
		cmd.Dir = b.root
	}
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stdin = c.stdin
	var out bytes.Buffer
	switch {
	case c.capture:
		cmd.Stdout = &out
	case c.stdout != nil:
		cmd.Stdout = c.stdout
	default:
		devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return cmdResult{}, err
		}
		defer devnull.Close()
		cmd.Stdout = devnull // a file: the child writes to it directly, no copy here
	}
	stderr := &tailWriter{max: 8192}
	cmd.Stderr = stderr
	busy0 := hostBusy()
	t0 := time.Now()
	err := cmd.Start()
	var peak func() int64
	if err == nil {
		peak = watchPeakRSS(cmd.Process.Pid)
		err = cmd.Wait()
	}
	r := cmdResult{wall: time.Since(t0), hostBusy: hostBusy() - busy0, stdout: out.Bytes(), stderr: stderr.String()}
	if peak != nil {
		r.maxRSSKiB = peak()
	}
	if cmd.ProcessState != nil {
		r.code = cmd.ProcessState.ExitCode()
		r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("timed out after %s", to)
		}
		return r, fmt.Errorf("%s %s: %w\n%s", filepath.Base(c.name), shortArgs(c.args), err, indent(stderr.String()))
	}
	return r, nil
}

// hostBusy is the CPU time the whole host has spent busy since boot: the
// first line of /proc/stat minus idle and iowait, in USER_HZ ticks (100/s on
// Linux). Zero when it cannot be read.
func hostBusy() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0
		}
		if i == 3 || i == 4 || i >= 7 { // idle, iowait; guest time is already in user
			continue
		}
		busy += n
	}
	return time.Duration(busy) * 10 * time.Millisecond
}

// watchPeakRSS follows the peak RSS (VmHWM) of process pid until the
// returned function is called, which gives it in KiB. The rusage of the
// finished child is no use: Go starts children with vfork, and exec records
// the parent's high-water mark, this bench's own RSS, as the child's maxrss.
// The last poll interval before the exit is not seen; VmHWM only grows.
func watchPeakRSS(pid int) func() int64 {
	file := fmt.Sprintf("/proc/%d/status", pid)
	var peak atomic.Int64
	read := func() {
		data, err := os.ReadFile(file)
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				if kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil && kib > peak.Load() {
					peak.Store(kib)
				}
			}
		}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(stop)
		<-done
		return peak.Load()
	}
}

func (b *bench) helm(ctx context.Context, args ...string) ([]byte, error) {
	r, err := b.runCmd(ctx, cmdSpec{name: b.s.Helm3, args: args, env: b.helmEnv, capture: true, timeout: 10 * time.Minute})
	return r.stdout, err
}

func (b *bench) kubectl(ctx context.Context, args ...string) ([]byte, error) {
	r, err := b.runCmd(ctx, cmdSpec{name: b.s.Kubectl, args: args, env: b.kubectlEn, capture: true, timeout: 10 * time.Minute})
	return r.stdout, err
}

// pluginEnv is what helm gives the plugin for `helm -n csghub csghub ...`.
func (b *bench) pluginEnv() []string {
	return append(append([]string{}, b.helmEnv...), "HELM_NAMESPACE="+namespace)
}

func shortArgs(args []string) string {
	s := strings.Join(args, " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func indent(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return "  (no stderr)"
	}
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// tailWriter keeps the last max bytes written.
type tailWriter struct {
	buf []byte
	max int
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailWriter) String() string { return string(t.buf) }

// generate fills the server with -size-mb MiB of rows and records the sizes.
func (b *bench) generate(ctx context.Context) error {
	pg := b.currentPG()
	logf("generating %d MiB of rows (scripts/bench/gen-db.sh)", b.cfg.sizeMB)
	r, err := b.runCmd(ctx, cmdSpec{name: filepath.Join(b.root, "scripts", "bench", "gen-db.sh"),
		args: []string{strconv.Itoa(b.cfg.sizeMB)}, env: pg.Env(), stdout: os.Stderr, timeout: 30 * time.Minute})
	if err != nil {
		return err
	}
	b.res.Data.GenerateSeconds = r.wall.Seconds()
	conn, err := pg.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	// a checkpoint now, so none runs in the middle of a measurement
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return err
	}
	rows, err := conn.Query(ctx, "SELECT datname, pg_database_size(datname) FROM pg_database WHERE NOT datistemplate ORDER BY datname")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var d dbSize
		if err := rows.Scan(&d.Name, &d.Bytes); err != nil {
			return err
		}
		b.res.Data.Databases = append(b.res.Data.Databases, d)
		b.res.Data.TotalBytes += d.Bytes
	}
	return rows.Err()
}
