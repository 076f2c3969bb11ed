package verify

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/opencsgs/helm-csghub/internal/errs"
)

func TestSelect(t *testing.T) {
	if err := Select([]string{"redis", "api"}, []string{"gitaly"}); err != nil {
		t.Fatal(err)
	}
	err := Select([]string{"redis", "s3"}, nil)
	if errs.ExitCode(err) != 2 || !strings.Contains(err.Error(), `"s3"`) || !strings.Contains(err.Error(), "object-storage") {
		t.Fatalf("unknown check: %v (exit %d)", err, errs.ExitCode(err))
	}
	// every check asked for also left out: nothing would run and exit 0
	for _, c := range [][2][]string{{{"api"}, {"api"}}, {{"redis", "api"}, {"api", "gitaly", "redis"}}} {
		err = Select(c[0], c[1])
		if errs.ExitCode(err) != 2 || !strings.Contains(err.Error(), "leave no check to run") {
			t.Fatalf("--check %v --skip-check %v: %v (exit %d)", c[0], c[1], err, errs.ExitCode(err))
		}
	}
	if err := Select([]string{"redis", "api"}, []string{"api"}); err != nil {
		t.Fatalf("redis still runs: %v", err)
	}
	v := &Verify{Only: []string{"redis"}, Skip: []string{"redis", "api"}}
	if ok, why := v.selected("redis"); ok || !strings.Contains(why, "--skip-check") {
		t.Errorf("redis: %v %s", ok, why)
	}
	if ok, why := v.selected("web-ui"); ok || !strings.Contains(why, "--check") {
		t.Errorf("web-ui: %v %s", ok, why)
	}
	if ok, _ := (&Verify{}).selected("gitaly"); !ok {
		t.Error("all checks run by default")
	}
}

func TestComponentsOf(t *testing.T) {
	c := componentsOf(map[string]any{}, "csghub")
	if c.externalPostgres || !c.redis || !c.gitaly || c.s3 != nil {
		t.Fatalf("defaults: %+v", c)
	}
	vals := map[string]any{"global": map[string]any{
		"postgresql":  map[string]any{"enabled": false},
		"redis":       map[string]any{"enabled": false},
		"gitaly":      map[string]any{"enabled": false},
		"objectStore": map[string]any{"enabled": false, "external": map[string]any{"endpoint": "https://s3.example.com:9000", "accessKey": "AK", "secretKey": "SK-secret", "region": "us-east-1"}},
	}, "server": map[string]any{"objectStore": map[string]any{"bucket": "hub-data", "pathStyle": "false"}}}
	c = componentsOf(vals, "csghub")
	if !c.externalPostgres || c.redis || c.gitaly || c.s3 == nil {
		t.Fatalf("all external: %+v", c)
	}
	s3 := *c.s3
	if s3.Bucket != "hub-data" || s3.AccessKey != "AK" || s3.SecretKey != "SK-secret" || s3.Region != "us-east-1" || s3.PathStyle {
		t.Fatalf("s3 %+v", s3)
	}
	host, tls, err := s3.hostAndTLS()
	if host != "s3.example.com:9000" || !tls || err != nil {
		t.Fatalf("host %q tls %v err %v", host, tls, err)
	}
	if d := ExternalS3(map[string]any{}, "rel"); d.Bucket != "rel-server" || !d.PathStyle {
		t.Fatalf("default bucket: %+v", d)
	}
	if _, _, err := (S3Config{}).hostAndTLS(); err == nil {
		t.Fatal("no endpoint accepted")
	}
	if got := c.secrets(); len(got) != 1 || got[0] != "SK-secret" {
		t.Fatalf("secrets %v", got)
	}
}

func TestRedactAndOneLine(t *testing.T) {
	got := redact(squash("bad\n  key SK-secret-long and SK-secret"), []string{"SK-secret", "SK-secret-long", "ab"})
	if got != "bad key *** and ***" {
		t.Fatalf("%q", got)
	}
}

func TestParseOrigin(t *testing.T) {
	conf := "appname = casdoor\nhttpport = 8000\norigin = \"https://casdoor.example.com\"\noriginFrontend =\n"
	if got := ParseOrigin(conf); got != "https://casdoor.example.com" {
		t.Fatalf("%q", got)
	}
	if got := ParseOrigin("originFrontend = x\n"); got != "" {
		t.Fatalf("originFrontend taken for origin: %q", got)
	}
}

type name string

func (n name) String() string { return string(n) }

func TestDiscoveryAndWebUIResults(t *testing.T) {
	ok := &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{}}
	doc := `{"issuer":"http://casdoor.example.com","authorization_endpoint":"a","token_endpoint":"t"}`
	if _, err := discoveryResult(name("casdoor"), ok, []byte(doc), "http://casdoor.example.com/"); err != nil {
		t.Fatal(err)
	}
	_, err := discoveryResult(name("casdoor"), ok, []byte(doc), "https://login.example.org")
	if err == nil || !strings.Contains(err.Error(), `names issuer "http://casdoor.example.com"`) {
		t.Fatalf("issuer mismatch: %v", err)
	}
	if _, err := discoveryResult(name("casdoor"), ok, []byte("<html>"), ""); err == nil {
		t.Fatal("HTML accepted as a discovery document")
	}
	html := &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{"Content-Type": {"text/html; charset=utf-8"}}}
	if _, err := webUIResult(name("portal"), html); err != nil {
		t.Fatal(err)
	}
	ok.Header.Set("Content-Type", "application/json")
	if _, err := webUIResult(name("portal"), ok); err == nil {
		t.Fatal("JSON accepted as the web UI")
	}
	if _, err := webUIResult(name("portal"), &http.Response{StatusCode: 503, Status: "503", Header: html.Header}); err == nil {
		t.Fatal("503 accepted")
	}
}

// A gRPC health server that checks the token as Gitaly does.
func TestGRPCHealthWithGitalyToken(t *testing.T) {
	const token = "gitaly-secret-token"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		if v := md.Get("authorization"); len(v) == 0 || v[0] != "Bearer "+GitalyV2Token(token, time.Now()) {
			return nil, status.Error(codes.PermissionDenied, "permission denied")
		}
		return h(ctx, req)
	}))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(l)
	defer srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := GRPCHealth(ctx, l.Addr().String(), token); err != nil {
		t.Fatal(err)
	}
	if err := GRPCHealth(ctx, l.Addr().String(), "wrong"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("wrong token: %v", err)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if err := GRPCHealth(ctx, l.Addr().String(), token); err == nil || !strings.Contains(err.Error(), "NOT_SERVING") {
		t.Fatalf("not serving: %v", err)
	}
}

func TestGitalyV2Token(t *testing.T) {
	// HMAC-SHA256("abc", "1700000000")
	got := GitalyV2Token("abc", time.Unix(1700000000, 0))
	if !strings.HasPrefix(got, "v2.") || !strings.HasSuffix(got, ".1700000000") || len(got) != 3+64+1+10 {
		t.Fatalf("%s", got)
	}
}

func TestPingAgainstRESP(t *testing.T) {
	// a minimal RESP server: enough to show Ping's AUTH and PING exchange and error reporting
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveRESP(c, "pw")
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Ping(ctx, l.Addr().String(), "pw"); err != nil {
		t.Fatal(err)
	}
	if err := Ping(ctx, l.Addr().String(), ""); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("no password: %v", err)
	}
	if err := Ping(ctx, l.Addr().String(), "bad"); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("bad password: %v", err)
	}
}

// serveRESP answers HELLO (as an old server: unknown), AUTH and PING.
func serveRESP(c net.Conn, password string) {
	defer c.Close()
	buf := make([]byte, 4096)
	authed := false
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		req := strings.ToUpper(string(buf[:n]))
		switch {
		case strings.Contains(req, "HELLO"):
			c.Write([]byte("-ERR unknown command 'HELLO'\r\n"))
		case strings.Contains(req, "AUTH"):
			if strings.Contains(string(buf[:n]), "\r\n"+password+"\r\n") {
				authed = true
				c.Write([]byte("+OK\r\n"))
			} else {
				c.Write([]byte("-WRONGPASS invalid username-password pair or user is disabled.\r\n"))
			}
		case strings.Contains(req, "PING"):
			if !authed {
				c.Write([]byte("-NOAUTH Authentication required.\r\n"))
			} else {
				c.Write([]byte("+PONG\r\n"))
			}
		default:
			c.Write([]byte("-ERR unknown\r\n"))
		}
	}
}

func TestHTTPStandInShapes(t *testing.T) {
	// webUIResult must accept what a real portal serves: HTML with a charset
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte("<!doctype html>"))
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := webUIResult(name("portal"), resp); err != nil {
		t.Fatal(err)
	}
}
