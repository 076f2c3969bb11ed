package devenv

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// ComponentPorts are the container ports of the CSGHub components that
// verification reaches through a port-forward, by the chart's
// app.kubernetes.io/service label.
var ComponentPorts = map[string]int{
	"portal": PortalPort, "server": 8080, "casdoor": 8000,
	"minio": 9000, "redis": 6379, "gitaly": 8075,
}

// Components plays, for one release, the components its KWOK pods cannot
// run, the way the real ones answer: a real MinIO server (scripts/minio.sh)
// with the root credentials of Secret <release>-minio and the buckets the
// chart's bucket Job creates; a real redis-server (scripts/redis.sh) with the
// password of Secret <release>-redis when the chart requires one; and small
// stand-ins for what cannot run here: csghub-server's GET /healthz, Casdoor's
// OIDC discovery document (issuer: `origin` of ConfigMap <release>-casdoor,
// read at each request as Casdoor reads its app.conf), the portal's HTML
// page, and Gitaly's gRPC health service behind its token check (Gitaly
// needs its own build of git, which this stack does not build).
//
// A watch on the namespace's pods starts each stand-in the first time a pod
// of its component appears and makes KWOK's port-forward to that pod reach
// it (a PortForward named like the pod). Stop and Start take one stand-in
// down and up again on the same port, so its pods stay Ready but refuse.
type Components struct {
	Namespace, Release string
	dir                string
	s                  *Stack
	logf               func(string, ...any)

	mu      sync.Mutex
	ports   map[string]int
	running map[string]func() error // stop functions
	routed  map[string]bool         // pod names with a PortForward
	stopped map[string]bool         // stopped by Stop: the watch must not start them again
	drop    map[string]int          // connections still to drop (DropNext)
	cancel  context.CancelFunc
	done    chan struct{}
}

// StartComponents watches namespace for the release's component pods (see
// Components). Close stops everything.
func (s *Stack) StartComponents(ctx context.Context, namespace, release, dir string, logf func(string, ...any)) (*Components, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	c := &Components{Namespace: namespace, Release: release, dir: dir, s: s, logf: logf,
		ports: map[string]int{}, running: map[string]func() error{}, routed: map[string]bool{}, stopped: map[string]bool{},
		drop: map[string]int{}, cancel: cancel, done: make(chan struct{})}
	w, err := s.Clientset.CoreV1().Pods(namespace).Watch(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + release})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch pods: %w", err)
	}
	go c.watch(ctx, w)
	return c, nil
}

func (c *Components) watch(ctx context.Context, w watch.Interface) {
	defer close(c.done)
	for {
	events:
		for {
			select {
			case <-ctx.Done(): // not every watch closes its channel when ctx ends
				w.Stop()
				return
			case ev, ok := <-w.ResultChan():
				if !ok {
					break events
				}
				if pod, ok := ev.Object.(*corev1.Pod); ok && (ev.Type == watch.Added || ev.Type == watch.Modified) {
					if err := c.route(ctx, pod); err != nil && ctx.Err() == nil {
						c.logf("components: %v", err)
					}
				}
			}
		}
		w.Stop()
		if ctx.Err() != nil {
			return
		}
		// the API server ends watches now and then: watch again (synthetic ADDED events for what exists)
		var err error
		for w, err = c.s.Clientset.CoreV1().Pods(c.Namespace).Watch(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + c.Release}); err != nil; {
			if ctx.Err() != nil {
				return
			}
			time.Sleep(time.Second)
			w, err = c.s.Clientset.CoreV1().Pods(c.Namespace).Watch(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + c.Release})
		}
	}
}

// Sync routes every component pod that exists now (what the watch does, but
// waited for: call it after an install before checking anything).
func (c *Components) Sync(ctx context.Context) error {
	pods, err := c.s.Clientset.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + c.Release})
	if err != nil {
		return err
	}
	for i := range pods.Items {
		if err := c.route(ctx, &pods.Items[i]); err != nil {
			return err
		}
	}
	return nil
}

// route starts the pod's component stand-in if needed and points the pod's port-forward at it.
func (c *Components) route(ctx context.Context, pod *corev1.Pod) error {
	name := pod.Labels["app.kubernetes.io/service"]
	podPort, ok := ComponentPorts[name]
	if !ok || pod.DeletionTimestamp != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stopped[name] {
		if err := c.startLocked(ctx, name); err != nil {
			return fmt.Errorf("start %s stand-in: %w", name, err)
		}
	} else if c.ports[name] == 0 {
		return nil // stopped before it ever ran: route once it is started
	}
	if c.routed[pod.Name] {
		return nil
	}
	if err := c.s.ForwardPod(ctx, c.Namespace, pod.Name, podPort, c.ports[name]); err != nil {
		return err
	}
	c.routed[pod.Name] = true
	return nil
}

// Port is the loopback port component name's stand-in listens on (0: not started yet).
func (c *Components) Port(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ports[name]
}

// Start starts component name's stand-in again after Stop (no-op when running).
func (c *Components) Start(ctx context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.stopped, name)
	return c.startLocked(ctx, name)
}

// Stop stops component name's stand-in; its pods stay Ready, their port refuses connections.
func (c *Components) Stop(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped[name] = true
	stop, ok := c.running[name]
	if !ok {
		return nil
	}
	delete(c.running, name)
	return stop()
}

// DropNext makes component name's HTTP stand-in (portal, server, casdoor)
// close its next n connections unanswered: the client reads EOF, as through
// a port-forward that drops. Later connections are answered.
func (c *Components) DropNext(name string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drop[name] += n
}

// dropOne says whether component name's next connection is one to drop.
func (c *Components) dropOne(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drop[name] > 0 {
		c.drop[name]--
		return true
	}
	return false
}

// Close stops the watch and every stand-in, and removes their state.
func (c *Components) Close() error {
	c.cancel()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []string
	names := make([]string, 0, len(c.running))
	for n := range c.running {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := c.running[n](); err != nil {
			errs = append(errs, n+": "+err.Error())
		}
		delete(c.running, n)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("stopping stand-ins: %s", strings.Join(errs, "; "))
	}
	return nil
}

func (c *Components) startLocked(ctx context.Context, name string) error {
	if _, ok := c.running[name]; ok {
		return nil
	}
	if c.ports[name] == 0 {
		p, err := FreePorts(1)
		if err != nil {
			return err
		}
		c.ports[name] = p[0]
	}
	port := c.ports[name]
	var stop func() error
	var err error
	switch name {
	case "portal":
		stop, err = serveHTTP(port, portalMux(), func() bool { return c.dropOne(name) })
	case "server":
		stop, err = serveHTTP(port, serverMux(), func() bool { return c.dropOne(name) })
	case "casdoor":
		stop, err = serveHTTP(port, c.casdoorMux(), func() bool { return c.dropOne(name) })
	case "gitaly":
		stop, err = c.serveGitaly(ctx, port)
	case "redis":
		stop, err = c.startRedis(ctx, port)
	case "minio":
		stop, err = c.startMinIO(ctx, port)
	default:
		return fmt.Errorf("no stand-in for %q", name)
	}
	if err != nil {
		return err
	}
	c.running[name] = stop
	c.logf("components: %s/%s: %s stand-in on 127.0.0.1:%d", c.Namespace, c.Release, name, port)
	return nil
}

// serveHTTP serves h on 127.0.0.1:port until the returned stop is called;
// a connection drop says yes to is closed unanswered (nil: none).
func serveHTTP(port int, h http.Handler, drop func() bool) (func() error, error) {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(dropListener{l, drop}) }()
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(ctx)
	}, nil
}

// dropListener closes the connections drop says yes to as they are accepted.
type dropListener struct {
	net.Listener
	drop func() bool
}

func (l dropListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil || l.drop == nil || !l.drop() {
			return conn, err
		}
		_ = conn.Close()
	}
}

func portalMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>CSGHub</title><h1>CSGHub portal (test stand-in)</h1>")
	})
	return mux
}

// serverMux answers csghub-server's health check (GET /healthz: 200, no body).
func serverMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	return mux
}

var casdoorOriginRE = regexp.MustCompile(`(?m)^\s*origin\s*=\s*"?([^"\r\n]*?)"?\s*$`)

// casdoorMux serves Casdoor's OIDC discovery document: with `origin` set in
// app.conf, Casdoor names it as issuer and builds its endpoints on it.
func (c *Components) casdoorMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		cm, err := c.s.Clientset.CoreV1().ConfigMaps(c.Namespace).Get(r.Context(), c.Release+"-casdoor", metav1.GetOptions{})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		origin := "http://" + r.Host
		if m := casdoorOriginRE.FindStringSubmatch(cm.Data["app.conf"]); m != nil && m[1] != "" {
			origin = m[1]
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                   origin,
			"authorization_endpoint":   origin + "/login/oauth/authorize",
			"token_endpoint":           origin + "/api/login/oauth/access_token",
			"userinfo_endpoint":        origin + "/api/userinfo",
			"jwks_uri":                 origin + "/.well-known/jwks",
			"response_types_supported": []string{"code", "token", "id_token"},
			"subject_types_supported":  []string{"public"},
		})
	})
	mux.HandleFunc("GET /api/health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"ok","msg":""}`)
	})
	return mux
}

// serveGitaly serves grpc-go's health service (what Gitaly registers) behind
// Gitaly's token check: with a token configured, every call needs
// "authorization: Bearer v2.<hex HMAC-SHA256(token, t)>.<t>", t within 30s.
func (c *Components) serveGitaly(ctx context.Context, port int) (func() error, error) {
	token, err := c.secretValue(ctx, c.Release+"-gitaly", "GITALY_TOKEN")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	check := func(ctx context.Context) error {
		if token == "" {
			return nil
		}
		return checkGitalyToken(ctx, token, time.Now())
	}
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := check(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := check(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(l) }()
	return func() error { srv.Stop(); return nil }, nil
}

func checkGitalyToken(ctx context.Context, token string, now time.Time) error {
	md, _ := metadata.FromIncomingContext(ctx)
	var auth string
	if v := md.Get("authorization"); len(v) > 0 {
		auth = v[0]
	}
	bearer, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return status.Error(codes.Unauthenticated, "authentication required")
	}
	parts := strings.SplitN(bearer, ".", 3)
	if len(parts) != 3 || parts[0] != "v2" {
		return status.Error(codes.PermissionDenied, "permission denied")
	}
	sig, err := hex.DecodeString(parts[1])
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte(parts[2]))
	ts, perr := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || perr != nil || !hmac.Equal(sig, mac.Sum(nil)) {
		return status.Error(codes.PermissionDenied, "permission denied")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > 30*time.Second || d < -30*time.Second {
		return status.Error(codes.PermissionDenied, "permission denied")
	}
	return nil
}

func (c *Components) secretValue(ctx context.Context, name, key string) (string, error) {
	sec, err := c.s.Clientset.CoreV1().Secrets(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(sec.Data[key]), nil
}

// startRedis runs redis-server with the release's password (Secret <release>-redis, if any).
func (c *Components) startRedis(ctx context.Context, port int) (func() error, error) {
	pw, err := c.secretValue(ctx, c.Release+"-redis", "REDIS_PASSWD")
	if err != nil {
		return nil, err
	}
	state := filepath.Join(c.dir, "redis")
	if _, err := c.s.Script([]string{"REDIS_PASSWORD=" + pw}, "scripts/redis.sh", "start", state, strconv.Itoa(port)); err != nil {
		return nil, err
	}
	return func() error {
		_, err := c.s.Script(nil, "scripts/redis.sh", "stop", state)
		return err
	}, nil
}

// startMinIO runs MinIO with the root user of Secret <release>-minio and
// creates the buckets of its MINIO_DEFAULT_BUCKETS (the chart's bucket Job).
func (c *Components) startMinIO(ctx context.Context, port int) (func() error, error) {
	sec, err := c.s.Clientset.CoreV1().Secrets(c.Namespace).Get(ctx, c.Release+"-minio", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("minio secret: %w", err)
	}
	user, pass := string(sec.Data["MINIO_ROOT_USER"]), string(sec.Data["MINIO_ROOT_PASSWORD"])
	m, err := c.s.StartMinIO(filepath.Join(c.dir, "minio"), port, user, pass)
	if err != nil {
		return nil, err
	}
	var buckets []string
	for _, b := range strings.Split(string(sec.Data["MINIO_DEFAULT_BUCKETS"]), ",") {
		if name, _, _ := strings.Cut(strings.TrimSpace(b), ":"); name != "" {
			buckets = append(buckets, name)
		}
	}
	// in MinIO's own region: MINIO_DEFAULT_REGION is not a variable the MinIO server reads
	if err := m.MakeBuckets(ctx, "", buckets...); err != nil {
		_ = m.Stop()
		return nil, err
	}
	return m.Stop, nil
}

// MinIO is a MinIO server run by scripts/minio.sh.
type MinIO struct {
	Endpoint       string // 127.0.0.1:port
	User, Password string
	state          string
	stack          *Stack
}

// StartMinIO starts (or finds running) a MinIO on 127.0.0.1:port with its
// data under state and root user/password.
func (s *Stack) StartMinIO(state string, port int, user, pass string) (*MinIO, error) {
	if _, err := s.Script([]string{"MINIO_ROOT_USER=" + user, "MINIO_ROOT_PASSWORD=" + pass}, "scripts/minio.sh", "start", state, strconv.Itoa(port)); err != nil {
		return nil, err
	}
	return &MinIO{Endpoint: "127.0.0.1:" + strconv.Itoa(port), User: user, Password: pass, state: state, stack: s}, nil
}

// Client is a minio-go client with the root user.
func (m *MinIO) Client() (*minio.Client, error) {
	return minio.New(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.User, m.Password, ""), BucketLookup: minio.BucketLookupPath})
}

// MakeBuckets creates the buckets that do not exist yet.
func (m *MinIO) MakeBuckets(ctx context.Context, region string, names ...string) error {
	cl, err := m.Client()
	if err != nil {
		return err
	}
	for _, b := range names {
		ok, err := bucketExists(ctx, cl, b)
		if err != nil {
			return fmt.Errorf("bucket %s: %w", b, err)
		}
		if !ok {
			if err := cl.MakeBucket(ctx, b, minio.MakeBucketOptions{Region: region}); err != nil {
				return fmt.Errorf("make bucket %s: %w", b, err)
			}
		}
	}
	return nil
}

// bucketExists asks until the server has initialised its object layer:
// /minio/health/live (what scripts/minio.sh waits for) answers before that,
// and a request in between gets XMinioServerNotInitialized.
func bucketExists(ctx context.Context, cl *minio.Client, bucket string) (bool, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := cl.BucketExists(ctx, bucket)
		if err == nil || minio.ToErrorResponse(err).Code != "XMinioServerNotInitialized" || time.Now().After(deadline) {
			return ok, err
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop stops the server (idempotent); its data stays until the state dir is removed.
func (m *MinIO) Stop() error {
	_, err := m.stack.Script(nil, "scripts/minio.sh", "stop", m.state)
	return err
}

// BuildMinIO builds (or finds cached) the MinIO server.
func (s *Stack) BuildMinIO() error {
	return s.step("build MinIO", func() error {
		_, err := s.Script(nil, "scripts/minio.sh", "build")
		return err
	})
}
