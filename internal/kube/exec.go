// Package kube holds the few cluster operations the plugin needs beyond the Helm
// SDK: exec into a pod with streamed stdin/stdout, port-forward to a pod, and pod
// readiness. Everything takes a context so Ctrl-C and timeouts stop it.
package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream/spdy"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
)

// Client bundles what exec and port-forward need.
type Client struct {
	Config    *rest.Config
	Clientset kubernetes.Interface
}

// ExecRequest is one command run in a container. Command is an argv array: it is
// never joined into a shell string.
type ExecRequest struct {
	Namespace string
	Pod       string
	Container string // empty: the pod's first container
	Command   []string
	Stdin     io.Reader // nil: no stdin; on EOF the command's stdin is closed. Must not block for ever: Exec waits for a read in progress before it returns
	Stdout    io.Writer // nil: discarded
	Stderr    io.Writer // nil: discarded
}

// ExitError is a command that ran and exited non-zero.
type ExitError struct {
	Command string
	Code    int
	Stderr  string // tail of stderr when the caller did not take it
}

func (e *ExitError) Error() string {
	if e.Stderr != "" {
		return fmt.Sprintf("%s exited with code %d: %s", e.Command, e.Code, e.Stderr)
	}
	return fmt.Sprintf("%s exited with code %d", e.Command, e.Code)
}

// Exec runs req and returns when the command has exited and its output is read.
// A non-zero exit comes back as *ExitError.
//
// The stream goes over SPDY without SPDY pings, and over WebSocket (what
// kubectl uses since 1.31) when the API server or a proxy refuses the SPDY
// upgrade. SPDY first: the API server passes an upgraded SPDY connection
// through to the kubelet as bytes, while it translates a WebSocket exec frame
// by frame into SPDY towards the kubelet, which cost it about three times the
// CPU on 1 GB dumps (scripts/bench). No pings: a ping that crosses the
// kubelet's close of a finished stream can reset the connection and silently
// cut output still on its way (kubernetes/kubernetes#60140, why kubectl cp
// stopped pinging); TCP keepalives still run.
func (c *Client) Exec(ctx context.Context, req ExecRequest) error {
	if len(req.Command) == 0 {
		return errors.New("exec: empty command")
	}
	opts := &corev1.PodExecOptions{
		Container: req.Container,
		Command:   req.Command,
		Stdin:     req.Stdin != nil,
		Stdout:    true,
		Stderr:    true,
	}
	u := c.Clientset.CoreV1().RESTClient().Post().
		Resource("pods").Namespace(req.Namespace).Name(req.Pod).SubResource("exec").
		VersionedParams(opts, scheme.ParameterCodec).URL()

	stdout, stderr := req.Stdout, req.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	var tail *TailBuffer
	if stderr == nil {
		tail = NewTailBuffer(2048)
		stderr = tail
	}
	// started: a byte went in or out, so the command ran and must not run twice
	var started atomic.Bool
	gates := []*gate{{w: stdout, started: &started}, {w: stderr, started: &started}}
	so := remotecommand.StreamOptions{Stdout: gates[0], Stderr: gates[1]}
	if req.Stdin != nil {
		gates = append(gates, &gate{r: req.Stdin, started: &started})
		so.Stdin = gates[2]
	}
	defer func() {
		for _, g := range gates {
			g.shut()
		}
	}()

	executor, err := newSPDYExecutor(c.Config, u)
	if err != nil {
		return fmt.Errorf("exec into %s/%s: %w", req.Namespace, req.Pod, err)
	}
	err = executor.StreamWithContext(ctx, so)
	if err != nil && !started.Load() && ctx.Err() == nil && spdyRefused(err) {
		ws, werr := remotecommand.NewWebSocketExecutor(c.Config, http.MethodGet, u.String())
		if werr != nil {
			return fmt.Errorf("exec into %s/%s: %w", req.Namespace, req.Pod, werr)
		}
		err = ws.StreamWithContext(ctx, so)
	}
	if err == nil {
		return nil
	}
	var code utilexec.CodeExitError
	if errors.As(err, &code) {
		ee := &ExitError{Command: req.Command[0], Code: code.Code}
		if tail != nil {
			ee.Stderr = tail.String()
		}
		return ee
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("exec into %s/%s: %w", req.Namespace, req.Pod, err)
}

// newSPDYExecutor is remotecommand.NewSPDYExecutor without pings (see Exec).
func newSPDYExecutor(cfg *rest.Config, u *url.URL) (remotecommand.Executor, error) {
	tlsConfig, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, err
	}
	proxy := http.ProxyFromEnvironment
	if cfg.Proxy != nil {
		proxy = cfg.Proxy
	}
	upgrader, err := spdy.NewRoundTripperWithConfig(spdy.RoundTripperConfig{TLS: tlsConfig, Proxier: proxy})
	if err != nil {
		return nil, err
	}
	wrapper, err := rest.HTTPWrappersForConfig(cfg, upgrader)
	if err != nil {
		return nil, err
	}
	return remotecommand.NewSPDYExecutorForTransports(wrapper, upgrader, http.MethodPost, u)
}

// spdyRefused reports whether a SPDY exec failed at the upgrade: the server,
// or a proxy in between, answered without switching protocols. WebSocket may
// still get through then.
func spdyRefused(err error) bool {
	return strings.Contains(err.Error(), "unable to upgrade connection")
}

// gate passes reads or writes through to the caller's stream, records that
// the stream moved data, and is shut when Exec returns: client-go may leave
// its copy goroutines running after a cancelled stream, and one still reading
// a dump the caller has since closed crashed the whole process (a restore
// stopped by SIGTERM then exited without removing its NetworkPolicy). shut
// waits for a read or write in progress; later ones fail.
type gate struct {
	mu      sync.Mutex
	r       io.Reader
	w       io.Writer
	started *atomic.Bool
	closed  bool
}

var errExecReturned = errors.New("exec already returned")

func (g *gate) Read(p []byte) (int, error)  { return g.pass(p, g.r.Read) }
func (g *gate) Write(p []byte) (int, error) { return g.pass(p, g.w.Write) }

func (g *gate) pass(p []byte, op func([]byte) (int, error)) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, errExecReturned
	}
	g.started.Store(true)
	return op(p)
}

func (g *gate) shut() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// streamHeapLimit is the soft limit on the Go heap during bulk streams.
const streamHeapLimit = 32 << 20

// LimitHeap sets a soft Go memory limit for the length of a bulk transfer (a
// dump or a restore) and returns the function that puts the previous one
// back. The exec stream allocates a buffer for every frame it receives, so the
// heap is mostly garbage, and frames queue up while the consumer is busy:
// without a limit the collector lets the heap grow to twice its live size and
// the peak RSS of a 1 GB backup wandered between 80 and 103 MiB; with it the
// collector runs a little more often (no measurable slowdown: the live heap
// is under 20 MiB) and the peak stays near 75 MiB. A limit the user set
// (GOMEMLIMIT) is kept.
func LimitHeap() (restore func()) { return LimitHeapAbove(0) }

// LimitHeapAbove is LimitHeap for a transfer that also holds live buffers of
// extra bytes (the part buffers of uploads to a bucket): under a limit below
// its live heap the collector would run without pause.
func LimitHeapAbove(extra int64) (restore func()) {
	if prev := debug.SetMemoryLimit(-1); prev != math.MaxInt64 {
		return func() {}
	}
	prev := debug.SetMemoryLimit(streamHeapLimit + extra)
	return func() { debug.SetMemoryLimit(prev) }
}

// Retry runs fn up to attempts times while it fails with an error that is not an
// *ExitError (the command ran: retrying would not help) and ctx is live. For
// idempotent commands only: a stream that was half consumed cannot be replayed.
func Retry(ctx context.Context, attempts int, fn func(context.Context) error) error {
	var err error
	delay := 200 * time.Millisecond
	for i := 0; i < attempts; i++ {
		if err = fn(ctx); err == nil {
			return nil
		}
		var ee *ExitError
		if errors.As(err, &ee) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay *= 2
	}
	return err
}

// TailBuffer keeps the last max bytes written to it (a command's output whose
// end is what counts); safe for concurrent writes.
type TailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

// NewTailBuffer keeps the last max bytes.
func NewTailBuffer(max int) *TailBuffer { return &TailBuffer{max: max} }

func (t *TailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *TailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}
