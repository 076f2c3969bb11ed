package kube

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// refusingServer answers every exec request without switching protocols, as an
// API server or proxy that does not pass the upgrade through, and records the
// protocols the client asked for.
func refusingServer(t *testing.T) (*Client, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+strings.ToLower(r.Header.Get("Upgrade")))
		mu.Unlock()
		http.Error(w, "upgrade refused", http.StatusBadRequest)
	}))
	t.Cleanup(srv.Close)
	cfg := &rest.Config{Host: srv.URL}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &Client{Config: cfg, Clientset: cs}, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func TestExecFallsBackToWebSocketWhenSPDYIsRefused(t *testing.T) {
	c, seen := refusingServer(t)
	err := c.Exec(context.Background(), ExecRequest{Namespace: "csghub", Pod: "db-0", Command: []string{"true"}})
	if err == nil {
		t.Fatal("exec against a refusing server succeeded")
	}
	got := seen()
	if len(got) != 2 || got[0] != "POST spdy/3.1" || got[1] != "GET websocket" {
		t.Fatalf("requests = %q, want a SPDY upgrade (POST) then a WebSocket one (GET)", got)
	}
	if !strings.Contains(err.Error(), "exec into csghub/db-0") {
		t.Errorf("error %q does not name the pod", err)
	}
}

func TestExecDoesNotRetryACancelledExec(t *testing.T) {
	c, seen := refusingServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Exec(ctx, ExecRequest{Namespace: "csghub", Pod: "db-0", Command: []string{"true"}}); err == nil {
		t.Fatal("cancelled exec succeeded")
	}
	for _, r := range seen() {
		if strings.HasPrefix(r, "GET") {
			t.Fatalf("a cancelled exec fell back to WebSocket: %q", seen())
		}
	}
}

func TestExecRejectsAnEmptyCommand(t *testing.T) {
	c, seen := refusingServer(t)
	if err := c.Exec(context.Background(), ExecRequest{Namespace: "csghub", Pod: "db-0"}); err == nil {
		t.Fatal("empty command accepted")
	}
	if n := len(seen()); n != 0 {
		t.Fatalf("an empty command reached the server (%d requests)", n)
	}
}
