package kube

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// slowReader signals when a read has started and finishes it only when told.
type slowReader struct {
	entered, release chan struct{}
}

func (s *slowReader) Read(p []byte) (int, error) {
	close(s.entered)
	<-s.release
	return copy(p, "x"), nil
}

// Once Exec has returned, a copy goroutine client-go left behind can no longer
// reach the caller's stream: shut waits for the read in progress and later
// reads fail.
func TestGateShutWaitsForAReadInProgressAndStopsLaterOnes(t *testing.T) {
	var started atomic.Bool
	src := &slowReader{entered: make(chan struct{}), release: make(chan struct{})}
	g := &gate{r: src, started: &started}
	go g.Read(make([]byte, 8))
	<-src.entered
	shutDone := make(chan struct{})
	go func() { g.shut(); close(shutDone) }()
	select {
	case <-shutDone:
		t.Fatal("shut returned while a read was still in progress")
	case <-time.After(50 * time.Millisecond):
	}
	close(src.release)
	<-shutDone
	if n, err := g.Read(make([]byte, 8)); n != 0 || err == nil {
		t.Fatalf("read after shut = %d, %v; want an error", n, err)
	}
	if n, err := (&gate{w: io.Discard, started: &started, closed: true}).Write([]byte("late")); n != 0 || err == nil {
		t.Fatalf("write after shut = %d, %v; want an error", n, err)
	}
	if !started.Load() {
		t.Error("a read did not mark the stream started")
	}
}

// TailBuffer keeps only the end of what was written, and never reports a
// short write (that would fail the exec stream).
func TestTailBuffer(t *testing.T) {
	b := NewTailBuffer(4)
	for _, s := range []string{"ab", "cdef", "g"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := b.String(); got != "defg" {
		t.Fatalf("kept %q, want the last 4 bytes", got)
	}
}
