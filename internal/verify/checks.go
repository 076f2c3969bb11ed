package verify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/opencsgs/helm-csghub/internal/csghub"
	"github.com/opencsgs/helm-csghub/internal/dbpod"
	"github.com/opencsgs/helm-csghub/internal/kube"
)

// target is an open port-forward to a Ready pod behind a Service.
type target struct {
	svc  string
	pod  string
	port int
	fw   *kube.Forward
}

func (t *target) Addr() string { return t.fw.Addr() }

func (t *target) String() string { return fmt.Sprintf("%s (pod %s:%d)", t.svc, t.pod, t.port) }

// fail wraps err with where it happened, adding what the pod side of the
// forward reported (e.g. "connection refused" when nothing listens).
func (t *target) fail(what string, err error) error {
	msg := fmt.Sprintf("%s on %s through port-forward: %v", what, t, err)
	if side := strings.TrimSpace(t.fw.Err()); side != "" {
		msg += " (pod side: " + lastLine(side) + ")"
	}
	return fmt.Errorf("%s", msg)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// forward opens a port-forward to a Ready pod behind Service <release>-<component>,
// to the pod port the Service's first port targets.
func (v *Verify) forward(ctx context.Context, component string) (*target, error) {
	ns := v.Release.Namespace
	name := csghub.Service(v.Release.Name, component)
	svc, err := v.Kube.Clientset.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", name, err)
	}
	if len(svc.Spec.Ports) == 0 || len(svc.Spec.Selector) == 0 {
		return nil, fmt.Errorf("service %s has no ports or no selector", name)
	}
	pod, err := v.servicePod(ctx, svc)
	if err != nil {
		return nil, err
	}
	port := targetPort(svc.Spec.Ports[0], pod)
	fw, err := v.Kube.PortForward(ctx, ns, pod.Name, port)
	if err != nil {
		return nil, err
	}
	return &target{svc: name, pod: pod.Name, port: port, fw: fw}, nil
}

// servicePod is the pod behind svc that the Service itself sends traffic to:
// a ready endpoint of its EndpointSlices (the chart's init Job pods carry
// the component's selector labels, and a migration still running is Ready
// but serves nothing), backed by a Ready pod that no Job owns. Only a
// cluster that keeps no EndpointSlices for svc falls back to the selector.
func (v *Verify) servicePod(ctx context.Context, svc *corev1.Service) (*corev1.Pod, error) {
	cs := v.Kube.Clientset
	slices, err := cs.DiscoveryV1().EndpointSlices(svc.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + svc.Name})
	if err != nil {
		return nil, fmt.Errorf("endpoints of service %s: %w", svc.Name, err)
	}
	if len(slices.Items) == 0 {
		return selectorPod(ctx, cs, svc)
	}
	n := 0
	for _, sl := range slices.Items {
		for _, ep := range sl.Endpoints {
			n++
			// nil: unknown, which consumers take as ready (discovery.k8s.io/v1)
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready || ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" {
				continue
			}
			pod, err := cs.CoreV1().Pods(svc.Namespace).Get(ctx, ep.TargetRef.Name, metav1.GetOptions{})
			if err != nil || !kube.IsPodReady(pod) || jobPod(pod) {
				continue
			}
			return pod, nil
		}
	}
	return nil, fmt.Errorf("no ready endpoint of service %s (%d endpoint(s))", svc.Name, n)
}

// selectorPod is a Ready pod matching svc's selector that no Job owns.
func selectorPod(ctx context.Context, cs kubernetes.Interface, svc *corev1.Service) (*corev1.Pod, error) {
	pods, err := cs.CoreV1().Pods(svc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String()})
	if err != nil {
		return nil, err
	}
	for i := range pods.Items {
		if p := &pods.Items[i]; kube.IsPodReady(p) && !jobPod(p) {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no Ready pod behind service %s (%d pod(s), Job pods not counted)", svc.Name, len(pods.Items))
}

// jobPod says a Job owns pod (its controller, or the job-name label it sets).
func jobPod(pod *corev1.Pod) bool {
	if c := metav1.GetControllerOf(pod); c != nil && c.Kind == "Job" {
		return true
	}
	_, ok := pod.Labels["job-name"]
	return ok
}

// targetPort resolves a Service port's targetPort (number or named) on pod.
func targetPort(sp corev1.ServicePort, pod *corev1.Pod) int {
	tp := sp.TargetPort
	if tp.Type == intstr.Int && tp.IntVal != 0 {
		return int(tp.IntVal)
	}
	if tp.Type == intstr.String {
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == tp.StrVal {
					return int(p.ContainerPort)
				}
			}
		}
	}
	return int(sp.Port)
}

// httpGet fetches path on the target (no keep-alive: the forward closes after).
func httpGet(ctx context.Context, t *target, path string) (*http.Response, []byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.Addr()+path, nil)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, t.fail("GET "+path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, nil, t.fail("GET "+path, err)
	}
	return resp, body, nil
}

// checkWebUI: the portal answers GET / with 2xx and an HTML page.
func (v *Verify) checkWebUI(ctx context.Context) (string, error) {
	t, err := v.forward(ctx, csghub.Portal)
	if err != nil {
		return "", err
	}
	defer t.fw.Close()
	resp, _, err := httpGet(ctx, t, "/")
	if err != nil {
		return "", err
	}
	return webUIResult(t, resp)
}

func webUIResult(t fmt.Stringer, resp *http.Response) (string, error) {
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("GET / on %s answered %s, want 2xx", t, resp.Status)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "text/html" {
		return "", fmt.Errorf("GET / on %s answered %q, not an HTML page", t, resp.Header.Get("Content-Type"))
	}
	return fmt.Sprintf("GET / on %s: %s, HTML", t, resp.Status), nil
}

// HealthPath is csghub-server's health endpoint (a GET the readiness probe
// uses, registered for every csghub-server service but the reverse proxy).
const HealthPath = "/healthz"

// checkAPI: csghub-server answers its health endpoint with 2xx.
func (v *Verify) checkAPI(ctx context.Context) (string, error) {
	t, err := v.forward(ctx, csghub.Server)
	if err != nil {
		return "", err
	}
	defer t.fw.Close()
	resp, _, err := httpGet(ctx, t, HealthPath)
	if err != nil {
		return "", err
	}
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("GET %s on %s answered %s", HealthPath, t, resp.Status)
	}
	return fmt.Sprintf("GET %s on %s: %s", HealthPath, t, resp.Status), nil
}

// DiscoveryPath is the OIDC discovery document Casdoor serves.
const DiscoveryPath = "/.well-known/openid-configuration"

// checkLogin: Casdoor serves its OIDC discovery document, naming the issuer
// the chart configured (`origin` in app.conf of ConfigMap <release>-casdoor,
// which Casdoor uses as its issuer).
func (v *Verify) checkLogin(ctx context.Context) (string, error) {
	want, err := v.configuredIssuer(ctx)
	if err != nil {
		return "", err
	}
	t, err := v.forward(ctx, csghub.Casdoor)
	if err != nil {
		return "", err
	}
	defer t.fw.Close()
	resp, body, err := httpGet(ctx, t, DiscoveryPath)
	if err != nil {
		return "", err
	}
	return discoveryResult(t, resp, body, want)
}

func discoveryResult(t fmt.Stringer, resp *http.Response, body []byte, want string) (string, error) {
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("GET %s on %s answered %s", DiscoveryPath, t, resp.Status)
	}
	var doc struct {
		Issuer                string `json:"issuer"`
		AuthorizationEndpoint string `json:"authorization_endpoint"`
		TokenEndpoint         string `json:"token_endpoint"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("GET %s on %s: not an OIDC discovery document: %v", DiscoveryPath, t, err)
	}
	if doc.Issuer == "" || doc.AuthorizationEndpoint == "" || doc.TokenEndpoint == "" {
		return "", fmt.Errorf("GET %s on %s: discovery document without issuer/authorization_endpoint/token_endpoint", DiscoveryPath, t)
	}
	if want != "" && strings.TrimSuffix(doc.Issuer, "/") != strings.TrimSuffix(want, "/") {
		return "", fmt.Errorf("%s on %s names issuer %q, the chart configured %q", DiscoveryPath, t, doc.Issuer, want)
	}
	return fmt.Sprintf("%s on %s: issuer %s", DiscoveryPath, t, doc.Issuer), nil
}

var originRE = regexp.MustCompile(`(?m)^\s*origin\s*=\s*"?([^"\r\n]*?)"?\s*$`)

// ParseOrigin reads `origin` from a Casdoor app.conf ("" when unset).
func ParseOrigin(appConf string) string {
	m := originRE.FindStringSubmatch(appConf)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(m[1])
}

func (v *Verify) configuredIssuer(ctx context.Context) (string, error) {
	name := csghub.Service(v.Release.Name, csghub.Casdoor)
	cm, err := v.Kube.Clientset.CoreV1().ConfigMaps(v.Release.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("configmap %s (Casdoor's app.conf): %w", name, err)
	}
	return ParseOrigin(cm.Data["app.conf"]), nil
}

// checkDatabase connects with pgx through a port-forward, as an application
// would, with the user and password of the release Secret.
func (v *Verify) checkDatabase(ctx context.Context, values map[string]any) (string, error) {
	conn, err := dbpod.Connect(ctx, v.Kube, v.Release.Namespace, v.Release.Name, "postgres")
	if err != nil {
		return "", err
	}
	user := conn.User
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE NOT datistemplate")
	if err != nil {
		return "", err
	}
	present, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", err
	}
	have := map[string]bool{}
	for _, d := range present {
		have[d] = true
	}
	want := csghub.ExpectedDatabases(values)
	var missing []string
	for _, d := range want {
		if !have[d] {
			missing = append(missing, d)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("databases missing: %s", strings.Join(missing, ", "))
	}
	return fmt.Sprintf("connected as %s through a port-forward; %d expected databases present", user, len(want)), nil
}

// MinIOHealthPath is MinIO's liveness endpoint (the chart's readiness probe).
const MinIOHealthPath = "/minio/health/live"

// checkMinIO: the built-in MinIO answers its liveness endpoint.
func (v *Verify) checkMinIO(ctx context.Context) (string, error) {
	t, err := v.forward(ctx, csghub.MinIO)
	if err != nil {
		return "", err
	}
	defer t.fw.Close()
	resp, _, err := httpGet(ctx, t, MinIOHealthPath)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s on %s answered %s", MinIOHealthPath, t, resp.Status)
	}
	return fmt.Sprintf("built-in MinIO: GET %s on %s: %s", MinIOHealthPath, t, resp.Status), nil
}

// checkRedis: PING answered PONG, authenticated with REDIS_PASSWD of Secret
// <release>-redis when the chart requires a password (redis.requirePass).
func (v *Verify) checkRedis(ctx context.Context) (string, error) {
	password, err := v.secretValue(ctx, v.Release.Name+"-redis", "REDIS_PASSWD", true)
	if err != nil {
		return "", err
	}
	t, err := v.forward(ctx, "redis")
	if err != nil {
		return "", err
	}
	defer t.fw.Close()
	if err := Ping(ctx, t.Addr(), password); err != nil {
		return "", t.fail("PING", err)
	}
	auth := "no password"
	if password != "" {
		auth = "with the release's password"
	}
	return fmt.Sprintf("PING on %s (%s): PONG", t, auth), nil
}

// Ping sends PING (after AUTH when password is set) to the Redis at addr.
// go-redis rather than a hand-written RESP exchange: it handles the
// HELLO/AUTH negotiation of Redis 6 and 7 (ACL default user, RESP2/3) and
// reports server errors (NOAUTH, WRONGPASS) as they are.
func Ping(ctx context.Context, addr, password string) error {
	c := redis.NewClient(&redis.Options{
		Addr: addr, Password: password,
		DisableIndentity: true, // no CLIENT SETINFO: a check, not an application
		MaxRetries:       -1, PoolSize: 1,
		DialTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second,
	})
	defer c.Close()
	got, err := c.Ping(ctx).Result()
	if err != nil {
		return err
	}
	if got != "PONG" {
		return fmt.Errorf("PING answered %q", got)
	}
	return nil
}

// secretValue reads key of Secret name; a missing Secret is "" when optional.
func (v *Verify) secretValue(ctx context.Context, name, key string, optional bool) (string, error) {
	sec, err := v.Kube.Clientset.CoreV1().Secrets(v.Release.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if optional && isNotFound(err) {
			return "", nil
		}
		return "", fmt.Errorf("secret %s: %w", name, err)
	}
	return string(sec.Data[key]), nil
}

// checkGitaly: Gitaly's gRPC health service reports SERVING. Gitaly
// authenticates every call, the health check included, with its token
// (GITALY_TOKEN of Secret <release>-gitaly) in the v2 scheme.
func (v *Verify) checkGitaly(ctx context.Context) (string, error) {
	token, err := v.secretValue(ctx, v.Release.Name+"-gitaly", "GITALY_TOKEN", true)
	if err != nil {
		return "", err
	}
	t, err := v.forward(ctx, "gitaly")
	if err != nil {
		return "", err
	}
	defer t.fw.Close()
	if err := GRPCHealth(ctx, t.Addr(), token); err != nil {
		return "", t.fail("gRPC health check", err)
	}
	return fmt.Sprintf("gRPC health on %s: SERVING", t), nil
}

// GRPCHealth calls grpc.health.v1.Health/Check at addr (plaintext, as the
// chart's Gitaly listens) and wants SERVING.
func GRPCHealth(ctx context.Context, addr, token string) error {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(gitalyToken(token)))
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("status %s", resp.GetStatus())
	}
	return nil
}

// gitalyToken signs each call as Gitaly's "v2" scheme expects:
// "Bearer v2.<hex HMAC-SHA256(token, unix time)>.<unix time>".
type gitalyToken string

func (t gitalyToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + GitalyV2Token(string(t), time.Now())}, nil
}

func (gitalyToken) RequireTransportSecurity() bool { return false }

// GitalyV2Token is the bearer value for token at time now.
func GitalyV2Token(token string, now time.Time) string {
	msg := strconv.FormatInt(now.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte(msg))
	return "v2." + hex.EncodeToString(mac.Sum(nil)) + "." + msg
}
