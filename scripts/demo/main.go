// Command demo runs `make demo`: the local real stack (cluster, PostgreSQL,
// chart repository), CSGHub 1.15.0 with sample data installed the way the
// upgrade guide starts, `helm csghub status`, then `helm csghub upgrade
// --version 2.0.0`. State lives in .cache/demo; `make demo-down` stops it.
//
//	go run ./scripts/demo up | down | env
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opencsgs/helm-csghub/internal/devenv"
)

// Fixed ports, so the demo's kubeconfig and repository stay valid between runs.
var ports = devenv.Ports{Etcd: 17379, EtcdPeer: 17380, API: 17443, Kwok: 17250, KCM: 17257, Sched: 17259}

const (
	repoPort   = 17879
	portalPort = 17880
	pgPort     = 17432
	namespace  = "csghub"
	release    = "csghub"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: demo up|down|env")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "up":
		err = up()
	case "down":
		err = down()
	case "env":
		err = printEnv()
	case "serve": // internal: the detached chart repository, portal stand-in and hook player
		err = serve(os.Args[2], os.Args[3], os.Args[4])
	default:
		err = fmt.Errorf("unknown command %q (up, down, env)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func stack() (*devenv.Stack, string, error) {
	root, err := devenv.RepoRoot()
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(root, ".cache", "demo")
	s, err := devenv.New(root, dir, ports)
	if err != nil {
		return nil, "", err
	}
	s.Log = func(format string, args ...any) { fmt.Printf("demo: "+format+"\n", args...) }
	return s, dir, nil
}

func up() error {
	s, dir, err := stack()
	if err != nil {
		return err
	}
	if err := s.Build(); err != nil {
		return err
	}
	if err := s.InitPostgres(); err != nil {
		return err
	}
	if s.Connect() == nil && apiUp(s) {
		fmt.Println("demo: cluster already running (make demo-down to start over)")
	} else if err := s.StartCluster(); err != nil {
		return err
	}
	ctx := context.Background()
	repoDir := filepath.Join(dir, "chart-repo")
	repoURL := fmt.Sprintf("http://127.0.0.1:%d", repoPort)
	if err := s.PackageCharts(repoDir, repoURL); err != nil {
		return err
	}
	pg, err := demoPostgres(s, dir)
	if err != nil {
		return err
	}
	if err := startServer(dir, repoDir, pg); err != nil {
		return err
	}
	if err := s.PortalForward(ctx, portalPort); err != nil {
		return err
	}
	if err := s.InstallPlugin(); err != nil {
		return err
	}
	_, err = s.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if err := s.AttachPod(ctx, namespace, release+"-postgresql-0", pg, 5432); err != nil {
		return err
	}
	helm := func(args ...string) error {
		fmt.Printf("\n$ helm %s\n", strings.Join(args, " "))
		cmd := exec.Command(s.Helm3, args...)
		cmd.Env = append(os.Environ(), s.HelmEnv(s.Helm3)...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		return cmd.Run()
	}
	if err := helm("repo", "add", "csghub", repoURL, "--force-update"); err != nil {
		return err
	}
	installed := exec.Command(s.Helm3, "status", release, "-n", namespace)
	installed.Env = append(os.Environ(), s.HelmEnv(s.Helm3)...)
	if installed.Run() != nil {
		if err := helm("install", release, "csghub/csghub", "--version", "1.15.0", "-n", namespace,
			"--set", "server.environments.DEMO_CUSTOM_VALUE=kept-across-upgrades", "--wait", "--timeout", "120s"); err != nil {
			return err
		}
		if err := s.PlayImageInit(ctx, namespace, release, pg); err != nil {
			return err
		}
		if err := s.ApplyUnmanaged(ctx, namespace, release); err != nil {
			return err
		}
		if err := s.LoadSampleData(pg); err != nil {
			return err
		}
		fmt.Println("demo: csghub 1.15.0 installed with sample data")
	}
	if err := demoMongo(ctx, s, dir); err != nil {
		return err
	}
	if err := helm("csghub", "status"); err != nil {
		return err
	}
	if err := helm("csghub", "upgrade", "--version", "2.0.0", "--yes"); err != nil {
		return err
	}
	// what the database image and the Knative operator would do after the upgrade
	if err := s.PlayImageInit(ctx, namespace, release, pg); err != nil {
		return err
	}
	if err := s.ApplyUnmanaged(ctx, namespace, release); err != nil {
		return err
	}
	_ = helm("csghub", "history")
	fmt.Printf("\ndemo: done. Use this stack from your shell with:\n  eval \"$(go run ./scripts/demo env)\"\n" +
		"then e.g. `helm csghub status`, `helm csghub rollback 1 --yes`, `helm csghub backup list`.\nStop it with: make demo-down\n")
	return nil
}

// demoMongo puts a FerretDB with Dataflow logs behind the release's MongoDB
// pod while the release runs one, so the upgrade moves real logs.
func demoMongo(ctx context.Context, s *devenv.Stack, dir string) error {
	_, err := s.Clientset.AppsV1().StatefulSets(namespace).Get(ctx, release+"-mongo", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	mdir := filepath.Join(dir, "mongo")
	stopMongo(s, mdir)
	if err := os.RemoveAll(mdir); err != nil {
		return err
	}
	m, err := s.StartMongo(ctx, namespace, release, mdir)
	if err != nil {
		return err
	}
	tasks := devenv.DefaultSeedTasks()
	seeded, err := devenv.SeedDataflowLogs(ctx, m.URL, tasks, true)
	if err != nil {
		return err
	}
	n := 0
	for _, l := range seeded.Lines {
		n += len(l)
	}
	fmt.Printf("demo: %d Dataflow log lines of %d tasks in MongoDB (FerretDB behind %s-mongo-0)\n", n, len(tasks), release)
	return nil
}

// stopMongo stops the demo's FerretDB and its PostgreSQL, if running.
func stopMongo(s *devenv.Stack, mdir string) {
	if _, err := os.Stat(mdir); err != nil {
		return
	}
	if _, err := s.Script(nil, "scripts/ferretdb.sh", "stop", filepath.Join(mdir, "ferretdb")); err != nil {
		fmt.Fprintf(os.Stderr, "demo: stopping FerretDB: %v\n", err)
	}
	if _, err := s.Script(nil, "scripts/pg.sh", "stop", filepath.Join(mdir, "pg")); err != nil {
		fmt.Fprintf(os.Stderr, "demo: stopping FerretDB's PostgreSQL: %v\n", err)
	}
}

func apiUp(s *devenv.Stack) bool {
	_, err := s.Clientset.Discovery().ServerVersion()
	return err == nil
}

// demoPostgres keeps one server in .cache/demo/pg across runs.
func demoPostgres(s *devenv.Stack, dir string) (*devenv.Postgres, error) {
	data := filepath.Join(dir, "pg")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		if _, err := s.Script(nil, "scripts/pg.sh", "clone", s.PGTemplate, data); err != nil {
			return nil, err
		}
	}
	return s.StartPostgresAt(data, pgPort)
}

func pidFile(dir string) string { return filepath.Join(dir, "serve.pid") }

// startServer runs this program's "serve" detached, so the repository, the
// portal stand-in and the db-init hook player outlive `make demo`.
func startServer(dir, repoDir string, pg *devenv.Postgres) error {
	if pid, err := readPid(pidFile(dir)); err == nil && syscall.Kill(pid, 0) == nil {
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(dir, "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "serve", repoDir, pg.Host, strconv.Itoa(pg.Port))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := os.WriteFile(pidFile(dir), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	for i := 0; i < 50; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", repoPort)); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("chart repository server did not start (see .cache/demo/serve.log)")
}

func serve(repoDir, pgHost, pgPort string) error {
	repo, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", repoPort))
	if err != nil {
		return err
	}
	portal, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", portalPort))
	if err != nil {
		return err
	}
	go func() { _ = devenv.ServeRepo(repo, repoDir) }()
	go func() { _ = devenv.ServePortalOn(portal) }()
	s, _, err := stack()
	if err != nil {
		return err
	}
	if err := s.Connect(); err != nil {
		return err
	}
	port, _ := strconv.Atoi(pgPort)
	pg := s.AttachedPostgres(pgHost, port)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.PlayHookJobs(ctx, namespace, release, pg, func(f string, a ...any) { fmt.Printf(f+"\n", a...) }); err != nil {
		return err
	}
	// what verification reaches behind the release's pods (MinIO, Redis, stand-ins)
	_, dir, _ := stack()
	comps, err := s.StartComponents(ctx, namespace, release, filepath.Join(dir, "components"), func(f string, a ...any) { fmt.Printf(f+"\n", a...) })
	if err != nil {
		return err
	}
	defer comps.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return nil
}

func readPid(f string) (int, error) {
	b, err := os.ReadFile(f)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func down() error {
	s, dir, err := stack()
	if err != nil {
		return err
	}
	if pid, err := readPid(pidFile(dir)); err == nil {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		os.Remove(pidFile(dir))
	}
	if _, err := os.Stat(filepath.Join(dir, "pg")); err == nil {
		if _, err := s.Script(nil, "scripts/pg.sh", "stop", filepath.Join(dir, "pg")); err != nil {
			fmt.Fprintf(os.Stderr, "demo: stopping PostgreSQL: %v\n", err)
		}
	}
	stopMongo(s, filepath.Join(dir, "mongo"))
	if err := s.StopCluster(); err != nil {
		return err
	}
	fmt.Println("demo: stopped (state kept in .cache/demo; delete it to start from scratch)")
	return nil
}

func printEnv() error {
	s, _, err := stack()
	if err != nil {
		return err
	}
	out, err := s.Script(nil, "scripts/tools.sh", "path", "helm3")
	if err != nil {
		return err
	}
	helmDir := filepath.Dir(strings.TrimSpace(out))
	for _, kv := range s.HelmEnv(strings.TrimSpace(out)) {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GO") {
			continue
		}
		fmt.Printf("export %s=%q\n", k, v)
	}
	fmt.Printf("export PATH=%q\n", helmDir+":"+os.Getenv("PATH"))
	return nil
}
