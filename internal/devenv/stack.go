// Package devenv runs the project's real local stack: a control plane (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, KWOK) started by
// scripts/k8senv/up.sh, the helm v3 and v4 CLIs with the plugin installed, the
// CSGHub-like test charts served as an HTTP chart repository, and throwaway
// PostgreSQL servers standing behind KWOK pods. The e2e tests (through
// internal/testenv) and `make demo` (scripts/demo) both drive it.
package devenv

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Stack is one running cluster with its tools.
type Stack struct {
	Root       string // repository root
	Dir        string // state: cluster, helm homes, postgres data, chart repo
	Kubeconfig string
	Helm3      string
	Helm4      string
	Kubectl    string
	RepoURL    string // chart repository serving testdata/charts, packaged
	Config     *rest.Config
	Clientset  kubernetes.Interface
	Dynamic    dynamic.Interface
	Metadata   metadata.Interface // lists names and resourceVersions without the objects' bodies
	// PGTemplate is an initdb'd, stopped data dir that new servers are cloned from.
	PGTemplate string
	// Log receives progress lines.
	Log func(format string, args ...any)

	upEnv  []string
	initMu sync.Mutex // serializes the played database init and unmanaged resources
}

// Ports are the cluster's listening ports.
type Ports struct{ Etcd, EtcdPeer, API, Kwok, KCM, Sched int }

// FreeClusterPorts picks free ports for a second cluster beside any other.
func FreeClusterPorts() (Ports, error) {
	p, err := FreePorts(6)
	if err != nil {
		return Ports{}, err
	}
	return Ports{p[0], p[1], p[2], p[3], p[4], p[5]}, nil
}

// RepoRoot finds the directory holding go.mod above the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// New describes a stack whose state lives in dir (created 0755: postgres, which
// runs as its own OS user, must traverse it).
func New(root, dir string, ports Ports) (*Stack, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	s := &Stack{Root: root, Dir: dir, Kubeconfig: filepath.Join(dir, "cluster", "kubeconfig"),
		Log: func(string, ...any) {}}
	s.upEnv = []string{
		"K8SENV_DIR=" + filepath.Join(dir, "cluster"),
		"ETCD_PORT=" + strconv.Itoa(ports.Etcd),
		"ETCD_PEER_PORT=" + strconv.Itoa(ports.EtcdPeer),
		"API_PORT=" + strconv.Itoa(ports.API),
		"KWOK_PORT=" + strconv.Itoa(ports.Kwok),
		"KCM_PORT=" + strconv.Itoa(ports.KCM),
		"SCHED_PORT=" + strconv.Itoa(ports.Sched),
	}
	return s, nil
}

func (s *Stack) step(name string, f func() error) error {
	t0 := time.Now()
	err := f()
	s.Log("%s (%.1fs)", name, time.Since(t0).Seconds())
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Build builds (or finds cached) every binary the stack needs.
func (s *Stack) Build() error {
	if err := s.step("build cluster binaries", func() error {
		_, err := s.Script(nil, "scripts/k8senv/build.sh")
		return err
	}); err != nil {
		return err
	}
	if err := s.BuildFerretDB(); err != nil {
		return err
	}
	if err := s.BuildMinIO(); err != nil {
		return err
	}
	return s.step("build helm v3, helm v4, kubectl", func() error {
		for _, t := range []struct {
			dst  *string
			name string
		}{{&s.Helm3, "helm3"}, {&s.Helm4, "helm4"}, {&s.Kubectl, "kubectl"}} {
			out, err := s.Script(nil, "scripts/tools.sh", "path", t.name)
			if err != nil {
				return err
			}
			*t.dst = lastLine(out)
			if _, err := os.Stat(*t.dst); err != nil {
				return fmt.Errorf("%s not built: %w", t.name, err)
			}
		}
		return nil
	})
}

// InitPostgres installs PostgreSQL 15 when missing and makes the template data dir.
func (s *Stack) InitPostgres() error {
	return s.step("install PostgreSQL if missing, init template", func() error {
		if _, err := s.Script(nil, "scripts/pg.sh", "install"); err != nil {
			return err
		}
		s.PGTemplate = filepath.Join(s.Dir, "pg-template")
		if _, err := os.Stat(filepath.Join(s.PGTemplate, "PG_VERSION")); err == nil {
			return nil
		}
		_, err := s.Script(nil, "scripts/pg.sh", "init", s.PGTemplate)
		return err
	})
}

// StopWith makes the cluster stop itself when process pid is gone (so a killed
// test run leaves nothing behind).
func (s *Stack) StopWith(pid int) { s.upEnv = append(s.upEnv, "K8SENV_OWNER_PID="+strconv.Itoa(pid)) }

// StartCluster starts the control plane and KWOK and connects the clients.
func (s *Stack) StartCluster() error {
	if err := s.step("start cluster", func() error {
		_, err := s.Script(s.upEnv, "scripts/k8senv/up.sh", "start")
		return err
	}); err != nil {
		return err
	}
	return s.Connect()
}

// StopCluster stops the control plane.
func (s *Stack) StopCluster() error {
	_, err := s.Script(s.upEnv, "scripts/k8senv/up.sh", "stop")
	return err
}

// Connect builds the clients from the stack's kubeconfig.
func (s *Stack) Connect() error {
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 100, 200
	s.Config = cfg
	if s.Clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if s.Dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return err
	}
	s.Metadata, err = metadata.NewForConfig(cfg)
	return err
}

// HelmHome is the per-CLI Helm home under the state dir.
func (s *Stack) HelmHome(helm string) string {
	name := "helm3"
	if helm == s.Helm4 {
		name = "helm4"
	}
	return filepath.Join(s.Dir, name)
}

// HelmEnv is the environment for running helm: its own homes, the cluster's
// kubeconfig and Go's caches pinned (so the plugin's build hook reuses them).
func (s *Stack) HelmEnv(helm string) []string {
	home := s.HelmHome(helm)
	env := []string{
		"KUBECONFIG=" + s.Kubeconfig,
		"KUBECACHEDIR=" + filepath.Join(s.Dir, "kube-cache"),
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
	}
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		if v := goEnv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// KubectlEnv is the environment for running the built kubectl.
func (s *Stack) KubectlEnv() []string {
	return []string{"KUBECONFIG=" + s.Kubeconfig, "KUBECACHEDIR=" + filepath.Join(s.Dir, "kube-cache")}
}

// InstallPlugin runs `helm plugin install <repo root>` in each CLI's own home, so
// the install hook (install-binary.sh) really builds the binary. An installed
// plugin is replaced.
func (s *Stack) InstallPlugin() error { return s.installPlugin(nil) }

// InstallBuiltPlugin is InstallPlugin with the hook's build skipped
// (HELM_CSGHUB_SKIP_INSTALL=1): for a further stack of the same process, once
// InstallPlugin of the first one built bin/helm-csghub in the repository root,
// which is the plugin's folder for every home.
func (s *Stack) InstallBuiltPlugin() error {
	if _, err := os.Stat(filepath.Join(s.Root, "bin", "helm-csghub")); err != nil {
		return fmt.Errorf("install the plugin into one stack first: %w", err)
	}
	return s.installPlugin([]string{"HELM_CSGHUB_SKIP_INSTALL=1"})
}

func (s *Stack) installPlugin(env []string) error {
	return s.step("install plugin into helm v3 and v4", func() error {
		for _, h := range []string{s.Helm3, s.Helm4} {
			_, _ = s.Run(s.HelmEnv(h), h, "plugin", "uninstall", "csghub")
			out, err := s.Run(append(s.HelmEnv(h), env...), h, "plugin", "install", s.Root)
			if err != nil {
				return fmt.Errorf("helm plugin install (%s): %w", h, err)
			}
			if !strings.Contains(out, "Installed plugin: csghub") {
				return fmt.Errorf("helm plugin install (%s) did not report the plugin installed:\n%s", h, out)
			}
		}
		return nil
	})
}

// Script runs a repository script with extra environment, returning stdout.
func (s *Stack) Script(env []string, name string, args ...string) (string, error) {
	return s.Run(env, filepath.Join(s.Root, name), args...)
}

// Run executes a command in the repository root, returning stdout; on failure
// the error carries the tails of both streams.
func (s *Stack) Run(env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = s.Root
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(GoBin())+":"+os.Getenv("PATH"))
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\nstdout:\n%s\nstderr:\n%s",
			filepath.Base(name), strings.Join(args, " "), err, tail(stdout.String()), tail(stderr.String()))
	}
	return stdout.String(), nil
}

func tail(s string) string {
	const max = 4000
	if len(s) > max {
		return "…" + s[len(s)-max:]
	}
	return s
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// GoBin is the go command: the toolchain this program was built with when it
// knows it (a -trimpath build, as make builds the tests, does not: there
// runtime.GOROOT is empty unless GOROOT is set), else go on PATH.
func GoBin() string {
	if root := runtime.GOROOT(); root != "" {
		if g := filepath.Join(root, "bin", "go"); isFile(g) {
			return g
		}
	}
	if g, err := exec.LookPath("go"); err == nil {
		return g
	}
	return "/usr/local/go/bin/go"
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

func goEnv(key string) string {
	out, err := exec.Command(GoBin(), "env", key).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1, below Linux's
// ephemeral range (32768+): a port picked there can be taken by the source
// port of some outgoing connection before the server binds it. A port is
// handed out once per process: tests running at the same time each bind
// theirs a moment after picking it, and must not pick the same one.
func FreePorts(n int) ([]int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries > 2000 {
			return nil, fmt.Errorf("no free port found in %d-%d", portLow, portHigh)
		}
		port := portLow + rand.IntN(portHigh-portLow)
		if portsGiven[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ls = append(ls, l)
		ports = append(ports, port)
	}
	for _, p := range ports {
		portsGiven[p] = true
	}
	return ports, nil
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{} // every port FreePorts returned in this process
)

// The range tests pick ports from (the demo uses fixed ports outside it).
const portLow, portHigh = 20000, 31999
