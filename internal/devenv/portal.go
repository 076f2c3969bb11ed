package devenv

import (
	"context"
	"fmt"
	"net"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// PortalPort is the CSGHub portal's container port (Service <release>-portal).
const PortalPort = 8090

var clusterPFGVR = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "clusterportforwards"}

// ServePortal plays the CSGHub web UI: an HTTP server on loopback that KWOK's
// port-forward to any pod's port 8090 reaches (a ClusterPortForward). Nothing
// runs in KWOK pods, so verification's "web UI answers" needs this stand-in.
func (s *Stack) ServePortal(ctx context.Context, l net.Listener) error {
	go func() { _ = ServePortalOn(l) }()
	return s.PortalForward(ctx, l.Addr().(*net.TCPAddr).Port)
}

// ServePortalOn serves the portal stand-in on l until it is closed.
func ServePortalOn(l net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>CSGHub</title><h1>CSGHub portal (test stand-in)</h1>")
	})
	return http.Serve(l, mux)
}

// PortalForward points KWOK's port-forward to pod port 8090 at 127.0.0.1:port.
func (s *Stack) PortalForward(ctx context.Context, port int) error {
	pf := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterPortForward",
		"metadata": map[string]any{"name": "csghub-portal"},
		"spec": map[string]any{"forwards": []any{map[string]any{
			"ports":  []any{int64(PortalPort)},
			"target": map[string]any{"port": int64(port), "address": "127.0.0.1"},
		}}},
	}}
	_ = s.Dynamic.Resource(clusterPFGVR).Delete(ctx, "csghub-portal", metav1.DeleteOptions{})
	if _, err := s.Dynamic.Resource(clusterPFGVR).Create(ctx, pf, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create kwok ClusterPortForward for the portal: %w", err)
	}
	return nil
}
