package diff

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opencsgs/helm-csghub/internal/render"
)

func split(t *testing.T, manifest string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := render.SplitManifest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

const oldManifest = `---
# Source: csghub/templates/server.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: csghub-server
  namespace: csghub
spec:
  replicas: 1
  template:
    spec:
      containers:
      - name: server
        image: server:v1.15.0
        env:
        - name: REGION
          value: eu
---
apiVersion: v1
kind: Secret
metadata:
  name: csghub-postgresql
  namespace: csghub
data:
  password: c2VjcmV0LW9uZQ==
  user: Y3NnaHVi
stringData:
  token: tok-old-1234
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: csghub-mongo
  namespace: csghub
spec:
  serviceName: mongo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: same
  namespace: csghub
data:
  a: "1"
`

const newManifest = `---
apiVersion: v1
kind: ConfigMap
metadata:
  name: same
  namespace: csghub
data:
  a: "1"
---
apiVersion: v1
kind: Secret
metadata:
  name: csghub-postgresql
  namespace: csghub
data:
  password: c2VjcmV0LXR3bw==
  user: Y3NnaHVi
stringData:
  token: tok-new-5678
---
apiVersion: v1
kind: Secret
metadata:
  name: csghub-new
  namespace: csghub
stringData:
  apiKey: brand-new-value
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: csghub-server
  namespace: csghub
spec:
  replicas: 1
  template:
    spec:
      containers:
      - name: server
        image: server:v2.0.0
        env:
        - name: REGION
          value: eu
        - name: ADDED
          value: x
`

// secretValues of the fixtures, plain and base64: none may appear masked.
var secretValuesShown = []string{"secret-one", "secret-two", "c2VjcmV0LW9uZQ==", "c2VjcmV0LXR3bw==",
	"tok-old-1234", "tok-new-5678", "brand-new-value", "Y3NnaHVi", "user: csghub"}

func compute(t *testing.T, o Options) *Report {
	t.Helper()
	return Compute(Input{Old: split(t, oldManifest), New: split(t, newManifest)}, o)
}

func summary(r *Report) []string {
	var out []string
	for _, o := range r.Objects {
		s := signs[o.Change] + " " + o.Ref()
		if len(o.Fields) > 0 {
			s += " (" + strings.Join(o.Fields, ", ") + ")"
		}
		out = append(out, s)
	}
	return out
}

// Added, changed and removed objects of multi-document manifests, keyed by
// kind, namespace and name whatever their order, sorted the same way every
// time; an unchanged object is only counted.
func TestComputeSummaryAndOrder(t *testing.T) {
	r := compute(t, Options{Context: 3})
	got := strings.Join(summary(r), "\n")
	want := strings.Join([]string{
		"~ Deployment csghub/csghub-server (env, image)",
		"+ Secret csghub/csghub-new",
		"~ Secret csghub/csghub-postgresql (data.password, stringData.token)",
		"- StatefulSet csghub/csghub-mongo",
	}, "\n")
	if got != want {
		t.Fatalf("summary:\n%s\nwant:\n%s", got, want)
	}
	if r.Totals.Objects != (Counts{Added: 1, Changed: 2, Removed: 1, Unchanged: 1}) || !r.HasChanges() {
		t.Fatalf("totals %+v", r.Totals)
	}
	// the same manifests in another document order: the same report
	reversed := split(t, newManifest)
	for i, j := 0, len(reversed)-1; i < j; i, j = i+1, j-1 {
		reversed[i], reversed[j] = reversed[j], reversed[i]
	}
	r2 := Compute(Input{Old: split(t, oldManifest), New: reversed}, Options{Context: 3})
	a, _ := json.Marshal(r)
	b, _ := json.Marshal(r2)
	if !bytes.Equal(a, b) {
		t.Fatalf("report depends on document order:\n%s\n%s", a, b)
	}
	none := Compute(Input{Old: split(t, oldManifest), New: split(t, oldManifest)}, Options{})
	if none.HasChanges() || len(none.Objects) != 0 || none.Totals.Objects.Unchanged != 4 {
		t.Fatalf("identical manifests: %+v", none.Totals)
	}
}

// The unified diff of a changed Deployment: hunk header, context, - and +.
func TestUnifiedDiffContext(t *testing.T) {
	dep := compute(t, Options{Context: 1}).Find("Deployment", "csghub", "csghub-server")
	got := strings.Join(dep.Diff, "\n")
	for _, want := range []string{"@@ ", "-        image: server:v1.15.0", "+        image: server:v2.0.0", "+        - name: ADDED"} {
		if !strings.Contains(got, want) {
			t.Errorf("diff lacks %q:\n%s", want, got)
		}
	}
	ctx0 := compute(t, Options{Context: 0}).Find("Deployment", "csghub", "csghub-server")
	for _, l := range ctx0.Diff {
		if strings.HasPrefix(l, " ") {
			t.Errorf("--context 0 printed a context line %q", l)
		}
	}
	if len(ctx0.Diff) >= len(dep.Diff) {
		t.Errorf("context 0 (%d lines) not shorter than context 1 (%d)", len(ctx0.Diff), len(dep.Diff))
	}
	added := compute(t, Options{}).Find("Secret", "csghub", "csghub-new")
	for _, l := range added.Diff[1:] {
		if !strings.HasPrefix(l, "+") {
			t.Errorf("added object's line %q is not an addition", l)
		}
	}
}

// A Secret's changed values show as changed, unchanged as unchanged, in
// data and stringData, and no value appears anywhere: not in the diff,
// not in the JSON, not in the text.
func TestSecretsMasked(t *testing.T) {
	r := compute(t, Options{Context: 3})
	sec := r.Find("Secret", "csghub", "csghub-postgresql")
	if !sec.Masked {
		t.Fatal("Secret not marked masked")
	}
	d := strings.Join(sec.Diff, "\n")
	for _, want := range []string{
		"-  password: '(masked: 10 bytes, before)'", "+  password: '(masked: 10 bytes, changed)'",
		"   user: '(masked: 6 bytes, unchanged)'",
		"-  token: '(masked: 12 bytes, before)'", "+  token: '(masked: 12 bytes, changed)'",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("masked diff lacks %q:\n%s", want, d)
		}
	}
	var text bytes.Buffer
	Write(&text, r, false)
	js, _ := json.Marshal(r)
	for _, out := range []string{text.String(), string(js)} {
		for _, v := range secretValuesShown {
			if strings.Contains(out, v) {
				t.Errorf("secret value %q printed:\n%s", v, out)
			}
		}
	}
	if !strings.Contains(text.String(), "apiKey: '(masked: 15 bytes)'") {
		t.Errorf("added Secret's key not listed:\n%s", text.String())
	}
	shown := compute(t, Options{ShowSecrets: true}).Find("Secret", "csghub", "csghub-postgresql")
	if sd := strings.Join(shown.Diff, "\n"); shown.Masked || !strings.Contains(sd, "+  password: c2VjcmV0LXR3bw==") || !strings.Contains(sd, "+  token: tok-new-5678") {
		t.Errorf("--show-secrets diff:\n%s", sd)
	}
}

// A ConfigMap's credentials (the runner's API_TOKEN) are masked too, its
// other keys printed.
func TestConfigMapCredentialsMasked(t *testing.T) {
	cm := func(token, region string) []*unstructured.Unstructured {
		return split(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: runner, namespace: csghub}\ndata: {API_TOKEN: "+token+", REGION: "+region+"}\n")
	}
	r := Compute(Input{Old: cm("tok-aaaa-1111", "eu"), New: cm("tok-bbbb-2222", "us")}, Options{})
	o := r.Find("ConfigMap", "csghub", "runner")
	d := strings.Join(o.Diff, "\n")
	if !o.Masked || strings.Contains(d, "tok-") || !strings.Contains(d, "+  API_TOKEN: '(masked: 13 bytes, changed)'") || !strings.Contains(d, "+  REGION: us") {
		t.Fatalf("masked %v, diff:\n%s", o.Masked, d)
	}
	plain := Compute(Input{Old: cm("tok-aaaa-1111", "eu"), New: cm("tok-aaaa-1111", "us")}, Options{Context: 3, ShowSecrets: true}).Objects[0]
	if plain.Masked || !strings.Contains(strings.Join(plain.Diff, "\n"), "API_TOKEN: tok-aaaa-1111") {
		t.Fatalf("--show-secrets: %v", plain.Diff)
	}
}

// A value moved from data to stringData unchanged is unchanged.
func TestMaskDataToStringData(t *testing.T) {
	old := map[string]any{"kind": "Secret", "data": map[string]any{"k": "dmFsdWU="}}
	new := map[string]any{"kind": "Secret", "stringData": map[string]any{"k": "value"}}
	if got := MaskSecret(new, old, true)["stringData"].(map[string]any)["k"]; got != "(masked: 5 bytes, unchanged)" {
		t.Fatalf("marker %v", got)
	}
}

// Drift: fields changed by hand that the target sets are reported; the
// upgrade's own changes, server defaults and fields the target leaves are not.
func TestDrift(t *testing.T) {
	old := split(t, oldManifest)[0].Object
	target := split(t, newManifest)[3].Object
	live := split(t, oldManifest)[0].DeepCopy().Object
	if got := Drift(old, target, live); len(got) != 0 {
		t.Fatalf("live as deployed: drift %v", got)
	}
	spec := live["spec"].(map[string]any)
	spec["replicas"] = int64(3)              // kubectl scale
	spec["revisionHistoryLimit"] = int64(10) // a server default
	c := spec["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	c["env"].([]any)[0].(map[string]any)["value"] = "us" // kubectl set env
	c["imagePullPolicy"] = "IfNotPresent"                // a server default
	got := strings.Join(Drift(old, target, live), ", ")
	want := "spec.replicas, spec.template.spec.containers[server].env[REGION].value"
	if got != want {
		t.Fatalf("drift %q, want %q", got, want)
	}
	// a number stored as int64 live, float64 in the manifest; quantities by value
	if !same(float64(1), int64(1)) || !same("500m", "0.5") || same("1Gi", "2Gi") {
		t.Fatal("same: numbers or quantities")
	}
}

func TestFields(t *testing.T) {
	old := map[string]any{"metadata": map[string]any{"labels": map[string]any{"v": "1"}},
		"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{"annotations": map[string]any{"c": "1"}},
			"spec": map[string]any{"containers": []any{map[string]any{"image": "a", "resources": map[string]any{"cpu": "1"}}}}}}}
	new := map[string]any{"metadata": map[string]any{"labels": map[string]any{"v": "2"}},
		"spec": map[string]any{"replicas": 2.0, "template": map[string]any{"metadata": map[string]any{"annotations": map[string]any{"c": "2"}},
			"spec": map[string]any{"containers": []any{map[string]any{"image": "b", "resources": map[string]any{"cpu": "2"}}}}}}}
	if got := strings.Join(Fields(old, new), ", "); got != "image, labels, pod annotations, replicas, resources" {
		t.Fatalf("fields %q", got)
	}
}

// Hooks and CRDs apart; CRDs as versions only, no schema in the report.
func TestHooksAndCRDs(t *testing.T) {
	crd := func(versions string) string {
		return `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: things.example.com
spec:
  versions:
` + versions
	}
	old := split(t, crd("  - name: v1alpha1\n    storage: true\n    schema: {openAPIV3Schema: {description: HUGE-SCHEMA-1}}\n"))
	new := split(t, crd("  - name: v1alpha1\n    storage: false\n  - name: v1\n    storage: true\n    schema: {openAPIV3Schema: {description: HUGE-SCHEMA-2}}\n"))
	hookOld := split(t, "apiVersion: batch/v1\nkind: Job\nmetadata: {name: migrate, namespace: csghub}\nspec: {backoffLimit: 1}\n")
	hookNew := split(t, "apiVersion: batch/v1\nkind: Job\nmetadata: {name: migrate, namespace: csghub}\nspec: {backoffLimit: 2}\n")
	r := Compute(Input{Old: old, New: new, OldHooks: hookOld, NewHooks: hookNew}, Options{})
	if len(r.Objects) != 0 || len(r.Hooks) != 1 || r.Hooks[0].Name != "migrate" || r.Totals.Hooks.Changed != 1 {
		t.Fatalf("hooks: %+v %+v", r.Objects, r.Hooks)
	}
	if len(r.CRDs) != 1 || strings.Join(r.CRDs[0].From, ",") != "v1alpha1*" || strings.Join(r.CRDs[0].To, ",") != "v1alpha1,v1*" {
		t.Fatalf("crds: %+v", r.CRDs)
	}
	var text bytes.Buffer
	Write(&text, r, false)
	js, _ := json.Marshal(r)
	if strings.Contains(text.String()+string(js), "HUGE-SCHEMA") {
		t.Fatal("a CRD's schema is printed")
	}
	if !strings.Contains(text.String(), "~ CustomResourceDefinition things.example.com (v1alpha1* -> v1alpha1,v1*)") {
		t.Fatalf("text:\n%s", text.String())
	}
}

// Colour only when asked.
func TestWriteColor(t *testing.T) {
	r := compute(t, Options{})
	var plain, col bytes.Buffer
	Write(&plain, r, false)
	Write(&col, r, true)
	if strings.Contains(plain.String(), "\x1b[") || !strings.Contains(col.String(), "\x1b[32m+") {
		t.Fatal("colour: plain has escapes or colour has none")
	}
}
