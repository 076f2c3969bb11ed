package diff

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// maxFields bounds the names in an object's summary line.
const maxFields = 8

// Fields names what differs between two versions of an object, for its
// summary line: a container's field (image, env, resources), a data key of
// a ConfigMap or Secret (data.REGION), a field of the spec (replicas,
// ports), labels or annotations. Sorted, at most maxFields and "N more".
func Fields(old, new map[string]any) []string {
	var paths [][]string
	changedPaths(old, new, nil, &paths)
	seen := map[string]bool{}
	var names []string
	for _, p := range paths {
		n := fieldName(p)
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) > maxFields {
		names = append(names[:maxFields], fmt.Sprintf("%d more", len(names)-maxFields))
	}
	return names
}

// changedPaths collects the paths where a and b differ: the deepest map key
// or list where they part (a list whose length changes is one path).
func changedPaths(a, b any, path []string, out *[]([]string)) {
	if reflect.DeepEqual(a, b) {
		return
	}
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		for k := range keys {
			changedPaths(am[k], bm[k], append(append([]string(nil), path...), k), out)
		}
		return
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok && len(al) == len(bl) {
		for i := range al {
			changedPaths(al[i], bl[i], append(append([]string(nil), path...), "["+strconv.Itoa(i)+"]"), out)
		}
		return
	}
	*out = append(*out, path)
}

// fieldName names a changed path for people (see Fields).
func fieldName(p []string) string {
	if len(p) == 0 {
		return "(whole object)"
	}
	switch p[0] {
	case "data", "stringData", "binaryData":
		if len(p) > 1 {
			return p[0] + "." + p[1]
		}
		return p[0]
	case "metadata":
		if len(p) > 1 {
			return p[1]
		}
		return "metadata"
	case "spec":
		p = p[1:]
	default:
		return p[0]
	}
	// into the pod template: a CronJob's, a workload's
	for {
		switch {
		case len(p) >= 2 && p[0] == "jobTemplate" && p[1] == "spec":
			p = p[2:]
			continue
		case len(p) >= 2 && p[0] == "template" && p[1] == "spec":
			p = p[2:]
			continue
		case len(p) >= 2 && p[0] == "template" && p[1] == "metadata":
			if len(p) > 2 {
				return "pod " + p[2]
			}
			return "pod metadata"
		}
		break
	}
	if len(p) == 0 {
		return "spec"
	}
	if (p[0] == "containers" || p[0] == "initContainers") && len(p) >= 3 && strings.HasPrefix(p[1], "[") {
		return p[2]
	}
	return p[0]
}
