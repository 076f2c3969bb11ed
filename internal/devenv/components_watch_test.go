package devenv

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/opencsgs/helm-csghub/internal/verify"
)

// Without a cluster: pods of the release appear, their stand-ins start and
// each pod gets a PortForward to its stand-in's port; Casdoor's discovery
// names the ConfigMap's origin; Gitaly wants the Secret's token; Stop makes
// the port refuse and the watch does not restart it; Start brings it back.
func TestComponentsRoutePodsToStandIns(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	const ns, rel = "t1", "csghub"
	cs := fake.NewSimpleClientset(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: rel + "-casdoor", Namespace: ns},
			Data: map[string]string{"app.conf": "httpport = 8000\norigin = \"https://casdoor.example.org\"\n"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: rel + "-gitaly", Namespace: ns}, Data: map[string][]byte{"GITALY_TOKEN": []byte("tok")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: rel + "-redis", Namespace: ns}, Data: map[string][]byte{"REDIS_PASSWD": []byte("rpw")}},
	)
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		pfGVR: "PortForwardList", execGVR: "ExecList", clusterPFGVR: "ClusterPortForwardList"})
	s := &Stack{Root: root, Clientset: cs, Dynamic: dyn, Log: func(string, ...any) {}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := s.StartComponents(ctx, ns, rel, filepath.Join(t.TempDir(), "comps"), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, svc := range []string{"portal", "server", "casdoor", "redis", "gitaly"} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: rel + "-" + svc + "-0", Namespace: ns,
			Labels: map[string]string{"app.kubernetes.io/instance": rel, "app.kubernetes.io/service": svc}}}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for svc, podPort := range map[string]int{"portal": 8090, "server": 8080, "casdoor": 8000, "redis": 6379, "gitaly": 8075} {
		pf, err := dyn.Resource(pfGVR).Namespace(ns).Get(ctx, rel+"-"+svc+"-0", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("no PortForward for %s: %v", svc, err)
		}
		b, _ := json.Marshal(pf.Object["spec"])
		want := `{"forwards":[{"ports":[` + strconv.Itoa(podPort) + `],"target":{"address":"127.0.0.1","port":` + strconv.Itoa(c.Port(svc)) + `}}]}`
		if string(b) != want {
			t.Errorf("%s: PortForward spec %s, want %s", svc, b, want)
		}
	}
	addr := func(svc string) string { return "127.0.0.1:" + strconv.Itoa(c.Port(svc)) }
	resp, err := http.Get("http://" + addr("casdoor") + verify.DiscoveryPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if doc.Issuer != "https://casdoor.example.org" {
		t.Errorf("issuer %q", doc.Issuer)
	}
	if err := verify.GRPCHealth(ctx, addr("gitaly"), "tok"); err != nil {
		t.Errorf("gitaly with its token: %v", err)
	}
	if err := verify.GRPCHealth(ctx, addr("gitaly"), "nope"); err == nil {
		t.Error("gitaly answered a wrong token")
	}
	if err := verify.Ping(ctx, addr("redis"), "rpw"); err != nil {
		t.Errorf("redis: %v", err)
	}

	if err := c.Stop("server"); err != nil {
		t.Fatal(err)
	}
	// a pod change must not bring it back
	p, _ := cs.CoreV1().Pods(ns).Get(ctx, rel+"-server-0", metav1.GetOptions{})
	p.Labels["touched"] = "yes"
	if _, err := cs.CoreV1().Pods(ns).Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := http.Get("http://" + addr("server") + verify.HealthPath); err == nil {
		t.Fatal("server stand-in answers after Stop")
	}
	if err := c.Start(ctx, "server"); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get("http://" + addr("server") + verify.HealthPath)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("server after Start: %v %v", resp, err)
	}
	resp.Body.Close()
}
