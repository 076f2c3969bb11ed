// Package kube holds the few cluster operations the plugin needs beyond the Helm
// SDK: exec into a pod with streamed stdin/stdout, port-forward to a pod, and pod
// readiness. Everything takes a context so Ctrl-C and timeouts stop it.
package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
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
	Stdin     io.Reader // nil: no stdin; on EOF the command's stdin is closed
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
// A non-zero exit comes back as *ExitError. The stream goes over WebSocket (what
// kubectl uses since 1.31) with a fallback to SPDY for older API servers.
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
	r := c.Clientset.CoreV1().RESTClient().Post().
		Resource("pods").Namespace(req.Namespace).Name(req.Pod).SubResource("exec").
		VersionedParams(opts, scheme.ParameterCodec)

	executor, err := newExecutor(c.Config, r.URL())
	if err != nil {
		return fmt.Errorf("exec into %s/%s: %w", req.Namespace, req.Pod, err)
	}
	stdout, stderr := req.Stdout, req.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	var tail *tailBuffer
	if stderr == nil {
		tail = &tailBuffer{max: 2048}
		stderr = tail
	}
	err = executor.StreamWithContext(ctx, remotecommand.StreamOptions{
		Stdin:  req.Stdin,
		Stdout: stdout,
		Stderr: stderr,
	})
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

func newExecutor(cfg *rest.Config, u *url.URL) (remotecommand.Executor, error) {
	ws, err := remotecommand.NewWebSocketExecutor(cfg, http.MethodGet, u.String())
	if err != nil {
		return nil, err
	}
	spdy, err := remotecommand.NewSPDYExecutor(cfg, http.MethodPost, u)
	if err != nil {
		return nil, err
	}
	return remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
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

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}
