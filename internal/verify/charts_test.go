package verify

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opencsgs/helm-csghub/internal/render"
)

// The mirror charts render what the checks reach, with the real chart's
// names and ports, and leave out what values disable.
func TestMirrorChartsRenderComponents(t *testing.T) {
	for _, v := range []string{"1.15.0", "1.16.0", "1.17.0", "2.0.0", "2.0.1"} {
		ch, err := loader.Load(filepath.Join("..", "..", "testdata", "charts", "csghub-"+v))
		if err != nil {
			t.Fatal(err)
		}
		objs := renderObjs(t, ch, nil)
		for svc, port := range map[string]int64{"portal": 8090, "server": 8080, "casdoor": 8000, "minio": 9000, "redis": 6379, "gitaly": 8075} {
			o := find(objs, "Service", "rel-"+svc)
			if o == nil {
				t.Errorf("%s: no Service rel-%s", v, svc)
				continue
			}
			ports, _, _ := unstructured.NestedSlice(o.Object, "spec", "ports")
			if len(ports) == 0 || fmt.Sprint(ports[0].(map[string]any)["port"]) != fmt.Sprint(port) {
				t.Errorf("%s: Service rel-%s ports %v, want %d", v, svc, ports, port)
			}
		}
		for _, s := range []string{"rel-minio", "rel-gitaly"} {
			if find(objs, "Secret", s) == nil {
				t.Errorf("%s: no Secret %s", v, s)
			}
		}
		if find(objs, "Secret", "rel-redis") != nil {
			t.Errorf("%s: Secret rel-redis without redis.requirePass", v)
		}
		cm := find(objs, "ConfigMap", "rel-casdoor")
		if cm == nil {
			t.Fatalf("%s: no ConfigMap rel-casdoor", v)
		}
		conf, _, _ := unstructured.NestedString(cm.Object, "data", "app.conf")
		if got := ParseOrigin(conf); got != "http://casdoor.example.com" {
			t.Errorf("%s: casdoor origin %q", v, got)
		}

		off := renderObjs(t, ch, map[string]any{"global": map[string]any{
			"redis": map[string]any{"enabled": false}, "gitaly": map[string]any{"enabled": false},
			"objectStore": map[string]any{"enabled": false},
		}, "redis": map[string]any{"requirePass": true}})
		for _, n := range []string{"rel-minio", "rel-redis", "rel-gitaly"} {
			if find(off, "Service", n) != nil || find(off, "Secret", n) != nil {
				t.Errorf("%s: %s rendered while disabled", v, n)
			}
		}
		on := renderObjs(t, ch, map[string]any{"redis": map[string]any{"requirePass": true}})
		if find(on, "Secret", "rel-redis") == nil {
			t.Errorf("%s: no Secret rel-redis with redis.requirePass", v)
		}
	}
}

func renderObjs(t *testing.T, ch *chart.Chart, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	res, err := render.Render(render.Options{Chart: ch, Values: values, Release: "rel", Namespace: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	return res.Objects
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && strings.EqualFold(o.GetName(), name) {
			return o
		}
	}
	return nil
}
