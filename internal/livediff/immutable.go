package livediff

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Blocker is an object Helm cannot patch to the target, with what to do.
type Blocker struct {
	Key    Key    `json:"-"`
	Object string `json:"object"`
	Reason string `json:"reason"`
	Fix    string `json:"fix"`
}

// Immutable is what stands in the way of patching the release's objects to
// the target manifest.
type Immutable struct {
	// DeleteJobs are finished Jobs whose pod template changes: deleted before
	// the Helm operation, which recreates them (as the TTL controller would
	// have made room for them).
	DeleteJobs []Key `json:"deleteJobs,omitempty"`
	// RunningJobs are Jobs still running whose pod template changes.
	RunningJobs []Blocker `json:"runningJobs,omitempty"`
	// StatefulSets change a field the API server refuses to update.
	StatefulSets []Blocker `json:"statefulSets,omitempty"`
}

// Empty says nothing stands in the way.
func (im *Immutable) Empty() bool {
	return len(im.DeleteJobs) == 0 && len(im.RunningJobs) == 0 && len(im.StatefulSets) == 0
}

// FindImmutable compares the target manifest's Jobs and StatefulSets with the
// live ones. previous is the manifest Helm applied last (the release's current
// revision; nil when unknown): Helm patches the difference between previous
// and target, so a field the target drops is a change too, and a live Job
// previous lacks is patched against the live object (always refused).
func FindImmutable(s *Snapshot, ns string, target, previous []*unstructured.Unstructured) *Immutable {
	prev := map[Key]*unstructured.Unstructured{}
	for _, o := range previous {
		prev[s.key(o, ns)] = o
	}
	im := &Immutable{}
	for _, t := range target {
		k := s.key(t, ns)
		live := s.objs[k]
		if live == nil || live.GetDeletionTimestamp() != nil {
			continue
		}
		switch {
		case k.Group == "batch" && k.Kind == "Job":
			tt, _, _ := unstructured.NestedMap(t.Object, "spec", "template")
			lt, _, _ := unstructured.NestedMap(live.Object, "spec", "template")
			changed := !Subset(tt, lt)
			if p := prev[k]; p != nil && !changed {
				pt, _, _ := unstructured.NestedMap(p.Object, "spec", "template")
				changed = !reflect.DeepEqual(normalize(pt), normalize(tt))
			} else if p == nil && previous != nil {
				// Not in the manifest Helm patches from (a Job renamed back,
				// e.g. 2.4.0's <release>-casdoor-migrate -> 2.0.0's
				// <release>-casdoor): Helm patches the live object itself,
				// dropping the selector and template labels the Job controller
				// added, which is refused as immutable whatever the template.
				changed = true
			}
			if !changed {
				continue
			}
			if JobFinished(live) {
				im.DeleteJobs = append(im.DeleteJobs, k)
				continue
			}
			im.RunningJobs = append(im.RunningJobs, Blocker{Key: k, Object: k.String(),
				Reason: "the Job is still running and its pod template (immutable) changes",
				Fix: fmt.Sprintf("wait until it finishes (kubectl -n %s wait --for=condition=complete job/%s), or delete it (kubectl -n %s delete job %s --cascade=foreground), then run again",
					k.Namespace, k.Name, k.Namespace, k.Name)})
		case k.Group == "apps" && k.Kind == "StatefulSet":
			fields := statefulSetChanges(t, live)
			if prev[k] == nil && previous != nil {
				// Not in the manifest Helm patches from (2.4.0's Dataflow is a
				// Deployment, 2.0.0's a StatefulSet): Helm patches the live
				// object itself, dropping what the API server filled in, its
				// volume claim templates' included, which is refused.
				fields = append(fields, "spec (patched against the live object: not in the manifest Helm patches from)")
			}
			if len(fields) > 0 {
				im.StatefulSets = append(im.StatefulSets, Blocker{Key: k, Object: k.String(),
					Reason: "changes " + strings.Join(fields, ", ") + " (immutable in a StatefulSet)",
					Fix: fmt.Sprintf("delete the StatefulSet but keep its pods and volumes (kubectl -n %s delete statefulset %s --cascade=orphan) so Helm recreates it; --recreate-statefulsets does exactly that",
						k.Namespace, k.Name)})
			}
		}
	}
	sort.Slice(im.DeleteJobs, func(i, j int) bool { return im.DeleteJobs[i].String() < im.DeleteJobs[j].String() })
	return im
}

// JobFinished says a Job completed or failed for good.
func JobFinished(job *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(job.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok {
			continue
		}
		if (m["type"] == "Complete" || m["type"] == "Failed") && m["status"] == "True" {
			return true
		}
	}
	return false
}

// statefulSetChanges lists the immutable StatefulSet fields the target changes.
func statefulSetChanges(target, live *unstructured.Unstructured) []string {
	var out []string
	sel := func(o *unstructured.Unstructured) any {
		v, _, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "selector")
		return normalize(v)
	}
	if !reflect.DeepEqual(sel(target), sel(live)) {
		out = append(out, "spec.selector")
	}
	str := func(o *unstructured.Unstructured, def string, f ...string) string {
		v, _, _ := unstructured.NestedString(o.Object, f...)
		if v == "" {
			return def
		}
		return v
	}
	if str(target, "", "spec", "serviceName") != str(live, "", "spec", "serviceName") {
		out = append(out, "spec.serviceName")
	}
	if str(target, "OrderedReady", "spec", "podManagementPolicy") != str(live, "OrderedReady", "spec", "podManagementPolicy") {
		out = append(out, "spec.podManagementPolicy")
	}
	tv, _, _ := unstructured.NestedSlice(target.Object, "spec", "volumeClaimTemplates")
	lv, _, _ := unstructured.NestedSlice(live.Object, "spec", "volumeClaimTemplates")
	if len(tv) != len(lv) {
		out = append(out, "spec.volumeClaimTemplates")
	} else {
		for i := range tv {
			tm, _ := tv[i].(map[string]any)
			lm, _ := lv[i].(map[string]any)
			tmeta, _ := tm["metadata"].(map[string]any)
			lmeta, _ := lm["metadata"].(map[string]any)
			if tmeta["name"] != lmeta["name"] || !Subset(tm["spec"], lm["spec"]) ||
				!Subset(tmeta["labels"], lmeta["labels"]) || !Subset(tmeta["annotations"], lmeta["annotations"]) {
				out = append(out, "spec.volumeClaimTemplates")
				break
			}
		}
	}
	return out
}

// Subset says every field of want is in got with the same value: got may have
// more (defaults the API server filled in, labels controllers added). Lists
// must have the same length, element by element subsets. Numbers compare by
// value, resource quantities by amount ("1Gi" == "1024Mi").
func Subset(want, got any) bool {
	switch w := want.(type) {
	case nil:
		return true
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return len(w) == 0 && got == nil
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				if isEmpty(wv) {
					continue
				}
				return false
			}
			if !Subset(wv, gv) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok {
			return len(w) == 0 && got == nil
		}
		if len(w) != len(g) {
			return false
		}
		for i := range w {
			if !Subset(w[i], g[i]) {
				return false
			}
		}
		return true
	default:
		return scalarEqual(want, got)
	}
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	case string:
		return x == ""
	}
	return false
}

func scalarEqual(a, b any) bool {
	if fa, ok := number(a); ok {
		if fb, ok := number(b); ok {
			return fa == fb
		}
	}
	if sa, ok := a.(string); ok {
		if sb, ok := b.(string); ok {
			if sa == sb {
				return true
			}
			qa, errA := resource.ParseQuantity(sa)
			qb, errB := resource.ParseQuantity(sb)
			return errA == nil && errB == nil && qa.Cmp(qb) == 0
		}
	}
	return reflect.DeepEqual(a, b)
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	return 0, false
}

// normalize makes numbers one type so manifests decoded differently compare.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	default:
		if f, ok := number(v); ok {
			return f
		}
		return v
	}
}

// PatchedAgainstLive lists the target's objects, Jobs and StatefulSets aside
// (FindImmutable's), that exist live but that previous (the manifest Helm
// patches from) lacks: Helm then patches the live object itself, with a
// patch that drops what the API server filled in; for a custom resource
// (2.0.0's EnvoyProxy csghub-envoy-proxy-custom when rolling back from 2.4.0)
// that is metadata.resourceVersion, always refused.
func PatchedAgainstLive(s *Snapshot, ns string, target, previous []*unstructured.Unstructured) []*unstructured.Unstructured {
	prev := map[Key]bool{}
	for _, o := range previous {
		prev[s.key(o, ns)] = true
	}
	var out []*unstructured.Unstructured
	for _, t := range target {
		k := s.key(t, ns)
		if (k.Group == "batch" && k.Kind == "Job") || (k.Group == "apps" && k.Kind == "StatefulSet") || prev[k] {
			continue
		}
		if live := s.objs[k]; live != nil && live.GetDeletionTimestamp() == nil {
			out = append(out, t)
		}
	}
	return out
}
