package devenv

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/opencsgs/helm-csghub/internal/verify"
)

// The Redis that stands behind <release>-redis-0 (Debian's redis-server via
// scripts/redis.sh) requires the release's password; verify's PING gets
// PONG with it and the server's own refusal without it.
func TestRedisStandInWithPassword(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	s := &Stack{Root: root, Log: func(string, ...any) {}}
	ports, err := FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "redis")
	const pw = `s3cr"et\pw`
	addr := "127.0.0.1:" + itoa(ports[0])
	if _, err := s.Script([]string{"REDIS_PASSWORD=" + pw}, "scripts/redis.sh", "start", state, itoa(ports[0])); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = s.Script(nil, "scripts/redis.sh", "stop", state) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := verify.Ping(ctx, addr, pw); err != nil {
		t.Fatal(err)
	}
	if err := verify.Ping(ctx, addr, ""); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("without password: %v", err)
	}
	if err := verify.Ping(ctx, addr, "wrong"); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := s.Script(nil, "scripts/redis.sh", "stop", state); err != nil {
		t.Fatal(err)
	}
	if err := verify.Ping(ctx, addr, pw); err == nil {
		t.Fatal("PING answered after stop")
	}
}

// The Gitaly stand-in's token check accepts what verify signs (two
// independent implementations of Gitaly's v2 scheme) and nothing else.
func TestGitalyTokenCheck(t *testing.T) {
	now := time.Now()
	in := func(v string) context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", v))
	}
	if err := checkGitalyToken(in("Bearer "+verify.GitalyV2Token("tok", now)), "tok", now); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{
		"other token": "Bearer " + verify.GitalyV2Token("other", now),
		"too old":     "Bearer " + verify.GitalyV2Token("tok", now.Add(-time.Minute)),
		"v1 style":    "Bearer tok",
		"none":        "",
	} {
		if err := checkGitalyToken(in(v), "tok", now); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestHTTPStandIns(t *testing.T) {
	srv := httptest.NewServer(serverMux())
	defer srv.Close()
	resp, err := http.Get(srv.URL + verify.HealthPath)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("server health: %v %v", resp, err)
	}
	resp.Body.Close()
	p := httptest.NewServer(portalMux())
	defer p.Close()
	resp, err = http.Get(p.URL + "/")
	if err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("portal: %v %v", resp, err)
	}
	resp.Body.Close()
}

func itoa(i int) string { return strconv.Itoa(i) }

// The external-S3 check against a real MinIO server: the bucket exists with
// the right keys; a wrong secret and a missing bucket fail, without the secret.
func TestExternalS3CheckAgainstMinIO(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	s := &Stack{Root: root, Log: func(string, ...any) {}}
	ports, err := FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.StartMinIO(filepath.Join(t.TempDir(), "s3"), ports[0], "hub", "hub-secret-9")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.MakeBuckets(ctx, "", "csghub-server"); err != nil {
		t.Fatal(err)
	}
	vals := func(secret, bucket string) map[string]any {
		return map[string]any{"global": map[string]any{"objectStore": map[string]any{"enabled": false, "external": map[string]any{
			"endpoint": "http://" + m.Endpoint, "accessKey": "hub", "secretKey": secret, "bucket": bucket}}}}
	}
	if _, err := verify.CheckS3(ctx, verify.ExternalS3(vals("hub-secret-9", ""), "csghub")); err != nil {
		t.Fatal(err)
	}
	_, err = verify.CheckS3(ctx, verify.ExternalS3(vals("wrong-secret", ""), "csghub"))
	if err == nil || strings.Contains(err.Error(), "wrong-secret") {
		t.Fatalf("wrong secret: %v", err)
	}
	_, err = verify.CheckS3(ctx, verify.ExternalS3(vals("hub-secret-9", "nope"), "csghub"))
	if err == nil || !strings.Contains(err.Error(), "bucket nope does not exist") {
		t.Fatalf("missing bucket: %v", err)
	}
}
