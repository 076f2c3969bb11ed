package kube

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// Forward is an open port-forward from 127.0.0.1:LocalPort to a pod port.
type Forward struct {
	LocalPort int
	stop      chan struct{}
	done      chan error
	once      sync.Once
	errOut    *TailBuffer
}

// Close stops the forward and waits for it to end.
func (f *Forward) Close() {
	f.once.Do(func() {
		close(f.stop)
		<-f.done
	})
}

// Err is the forwarder's stderr tail (e.g. "connection refused" from the pod side).
func (f *Forward) Err() string {
	if f.errOut == nil {
		return ""
	}
	return f.errOut.String()
}

// Addr is "127.0.0.1:<port>".
func (f *Forward) Addr() string { return "127.0.0.1:" + strconv.Itoa(f.LocalPort) }

// PortForward opens a forward from a random free port on 127.0.0.1 to podPort of
// the pod. It returns once the listener is ready; ctx cancellation closes it.
func (c *Client) PortForward(ctx context.Context, namespace, pod string, podPort int) (*Forward, error) {
	u := c.Clientset.CoreV1().RESTClient().Post().
		Resource("pods").Namespace(namespace).Name(pod).SubResource("portforward").URL()

	transport, upgrader, err := spdy.RoundTripperFor(c.Config)
	if err != nil {
		return nil, err
	}
	spdyDialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	// Prefer the WebSocket tunnel (kubectl's default since 1.31), fall back to SPDY.
	wsDialer, err := portforward.NewSPDYOverWebsocketDialer(u, c.Config)
	if err != nil {
		return nil, err
	}
	dialer := portforward.NewFallbackDialer(wsDialer, spdyDialer, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})

	f := &Forward{stop: make(chan struct{}), done: make(chan error, 1)}
	ready := make(chan struct{})
	errOut := NewTailBuffer(1024)
	f.errOut = errOut
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"},
		[]string{fmt.Sprintf("0:%d", podPort)}, f.stop, ready, io.Discard, errOut)
	if err != nil {
		return nil, err
	}
	go func() { f.done <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-f.done:
		if err == nil {
			err = fmt.Errorf("port-forward ended before it was ready")
		}
		return nil, fmt.Errorf("port-forward to %s/%s:%d: %w", namespace, pod, podPort, err)
	case <-ctx.Done():
		f.Close()
		return nil, ctx.Err()
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) == 0 {
		f.Close()
		return nil, fmt.Errorf("port-forward to %s/%s:%d: no local port: %v", namespace, pod, podPort, err)
	}
	f.LocalPort = int(ports[0].Local)
	go func() {
		select {
		case <-ctx.Done():
			f.Close()
		case <-f.stop:
		}
	}()
	return f, nil
}
