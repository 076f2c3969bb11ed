package crds

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Annotations that say which release a CRD comes from.
const (
	BundleVersion = "gateway.networking.k8s.io/bundle-version"
	ControllerGen = "controller-gen.kubebuilder.io/version"
)

// Order is how one copy of a CRD relates to another.
type Order int

const (
	// Unknown: they differ and nothing tells which is newer.
	Unknown Order = iota
	Same
	Newer
	Older
)

// Result of Compare: the order and the evidence.
type Result struct {
	Order  Order
	Reason string
}

// Compare says whether a is newer than b. The evidence, in order: the Gateway
// API bundle-version annotation, the controller-gen version annotation (when
// both carry it and they differ), then the versions the CRD defines (a strict
// superset is newer), then the schema (a strict superset of b's property paths
// is newer). Same means none of these differ (the objects may still differ in
// descriptions, validations or labels).
func Compare(a, b *unstructured.Unstructured) Result {
	for _, key := range []string{BundleVersion, ControllerGen} {
		va, vb := a.GetAnnotations()[key], b.GetAnnotations()[key]
		if va == "" || vb == "" || va == vb {
			continue
		}
		sa, erra := semver.NewVersion(va)
		sb, errb := semver.NewVersion(vb)
		if erra != nil || errb != nil {
			continue
		}
		short := key[strings.LastIndex(key, "/")+1:]
		if strings.HasPrefix(key, "controller-gen") {
			short = "controller-gen " + short
		}
		if sa.GreaterThan(sb) {
			return Result{Newer, fmt.Sprintf("%s %s > %s", short, va, vb)}
		}
		if sa.LessThan(sb) {
			return Result{Older, fmt.Sprintf("%s %s < %s", short, va, vb)}
		}
	}
	na, nb := VersionNames(a), VersionNames(b)
	if o := subset(na, nb); o != Same {
		return Result{o, fmt.Sprintf("versions %s vs %s", strings.Join(na, ","), strings.Join(nb, ","))}
	}
	pa, pb := propertyPaths(a), propertyPaths(b)
	switch o := subset(pa, pb); o {
	case Newer:
		return Result{o, fmt.Sprintf("schema has %d more properties", len(pa)-len(pb))}
	case Older:
		return Result{o, fmt.Sprintf("schema has %d fewer properties", len(pb)-len(pa))}
	case Unknown:
		return Result{o, "schemas differ, neither contains the other"}
	}
	return Result{Same, "same versions and schema properties"}
}

// subset: Newer when a strictly contains b, Older the reverse, Same when
// equal, Unknown otherwise. Both sorted.
func subset(a, b []string) Order {
	ma, mb := map[string]bool{}, map[string]bool{}
	for _, x := range a {
		ma[x] = true
	}
	for _, x := range b {
		mb[x] = true
	}
	aHasAll, bHasAll := true, true
	for x := range mb {
		if !ma[x] {
			aHasAll = false
		}
	}
	for x := range ma {
		if !mb[x] {
			bHasAll = false
		}
	}
	switch {
	case aHasAll && bHasAll:
		return Same
	case aHasAll:
		return Newer
	case bHasAll:
		return Older
	}
	return Unknown
}

// VersionNames lists spec.versions[].name, sorted.
func VersionNames(crd *unstructured.Unstructured) []string {
	vs, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	var out []string
	for _, v := range vs {
		if m, ok := v.(map[string]any); ok {
			out = append(out, fmt.Sprint(m["name"]))
		}
	}
	sort.Strings(out)
	return out
}

// StoredVersionsDropped lists the versions in live's status.storedVersions
// that crd no longer defines: objects may still be stored in them, and the API
// server refuses such an update.
func StoredVersionsDropped(live, crd *unstructured.Unstructured) []string {
	stored, _, _ := unstructured.NestedStringSlice(live.Object, "status", "storedVersions")
	has := map[string]bool{}
	for _, v := range VersionNames(crd) {
		has[v] = true
	}
	var out []string
	for _, s := range stored {
		if !has[s] {
			out = append(out, s)
		}
	}
	return out
}

// propertyPaths lists "version:path" for every property the schemas declare.
func propertyPaths(crd *unstructured.Unstructured) []string {
	vs, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	var out []string
	for _, v := range vs {
		m, ok := v.(map[string]any)
		if !ok {
			continue
		}
		schema, _, _ := unstructured.NestedMap(m, "schema", "openAPIV3Schema")
		walkSchema(fmt.Sprint(m["name"])+":", schema, &out)
	}
	sort.Strings(out)
	return out
}

func walkSchema(path string, node map[string]any, out *[]string) {
	if node == nil {
		return
	}
	if props, ok := node["properties"].(map[string]any); ok {
		for k, v := range props {
			p := path + "." + k
			*out = append(*out, p)
			sub, _ := v.(map[string]any)
			walkSchema(p, sub, out)
		}
	}
	if items, ok := node["items"].(map[string]any); ok {
		walkSchema(path+"[]", items, out)
	}
	if add, ok := node["additionalProperties"].(map[string]any); ok {
		walkSchema(path+"{}", add, out)
	}
}

// Equal says whether two copies of a CRD carry the same spec, labels and
// annotations (what installing one or the other decides).
func Equal(a, b *unstructured.Unstructured) bool {
	return reflect.DeepEqual(normal(a.Object["spec"]), normal(b.Object["spec"])) &&
		reflect.DeepEqual(a.GetLabels(), b.GetLabels()) &&
		reflect.DeepEqual(a.GetAnnotations(), b.GetAnnotations())
}

// Current says, without asking the server, whether applying crd would leave
// live as it is: the spec equal once the API server's defaults are added to
// crd's, and crd's labels and annotations present on live (others' extra
// labels stay with an apply). False may be wrong (a default not known here):
// callers confirm with a server-side dry run.
func Current(live, crd *unstructured.Unstructured) bool {
	want := normal(crd.Object["spec"])
	if m, ok := want.(map[string]any); ok {
		defaultSpec(m)
	}
	if !reflect.DeepEqual(want, normal(live.Object["spec"])) {
		return false
	}
	ll, la := live.GetLabels(), live.GetAnnotations()
	for k, v := range crd.GetLabels() {
		if ll[k] != v {
			return false
		}
	}
	for k, v := range crd.GetAnnotations() {
		if la[k] != v {
			return false
		}
	}
	return true
}

// defaultSpec adds what apiextensions.k8s.io/v1 defaults on a CRD's spec.
func defaultSpec(spec map[string]any) {
	if names, ok := spec["names"].(map[string]any); ok {
		kind, _ := names["kind"].(string)
		if s, _ := names["singular"].(string); s == "" && kind != "" {
			names["singular"] = strings.ToLower(kind)
		}
		if s, _ := names["listKind"].(string); s == "" && kind != "" {
			names["listKind"] = kind + "List"
		}
	}
	if _, ok := spec["conversion"]; !ok {
		spec["conversion"] = map[string]any{"strategy": "None"}
	}
}

// normal makes numbers and nested types comparable whether the object came
// from YAML or from the API server (JSON round trip).
func normal(v any) any {
	data, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if err := json.Unmarshal(data, &out); err != nil {
		return v
	}
	return out
}

// Describe is a short identity of a CRD copy: its versions and release marker.
func Describe(crd *unstructured.Unstructured) string {
	s := "versions " + strings.Join(VersionNames(crd), ",")
	if v := crd.GetAnnotations()[BundleVersion]; v != "" {
		return s + ", bundle-version " + v
	}
	if v := crd.GetAnnotations()[ControllerGen]; v != "" {
		return s + ", controller-gen " + v
	}
	return s
}
