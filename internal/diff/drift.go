package diff

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Drift lists the fields the target sets whose live value was changed by
// hand: the live value differs from both the deployed manifest's (so the
// previous upgrade did not write it) and the target's (so this upgrade
// writes over it, as Helm's three-way merge does). Fields only the live
// object has (defaults, other controllers' additions) are not looked at:
// Helm leaves them. Lists of named items (containers, env) are matched by
// name, as the strategic merge does. Paths are like
// spec.template.spec.containers[server].image. Values are never returned.
func Drift(old, target, live map[string]any) []string {
	if live == nil || target == nil {
		return nil
	}
	var out []string
	walkDrift(target, old, live, true, nil, &out)
	sort.Strings(out)
	return out
}

func walkDrift(t, o, l any, haveOld bool, path []string, out *[]string) {
	switch tv := t.(type) {
	case map[string]any:
		om, _ := o.(map[string]any)
		lm, lok := l.(map[string]any)
		if !lok {
			if l == nil {
				// the whole map is gone live: a drift only if the deployed
				// manifest had it (a hand delete), reported once
				if haveOld && o != nil && !isEmpty(tv) && !isEmpty(o) {
					*out = append(*out, strings.Join(path, "."))
				}
				return
			}
			*out = append(*out, strings.Join(path, "."))
			return
		}
		for k, v := range tv {
			// status is the server's; stringData is stored as data
			if len(path) == 0 && (k == "status" || k == "stringData") {
				continue
			}
			if len(path) == 1 && path[0] == "metadata" && k != "labels" && k != "annotations" {
				continue
			}
			ov, ook := om[k]
			walkDrift(v, ov, lm[k], haveOld && ook, append(append([]string(nil), path...), k), out)
		}
	case []any:
		ol, _ := o.([]any)
		ll, lok := l.([]any)
		if !lok {
			if haveOld && ol != nil && len(tv) > 0 {
				*out = append(*out, strings.Join(path, "."))
			}
			return
		}
		named := allNamed(tv)
		for i, v := range tv {
			seg := "[" + strconv.Itoa(i) + "]"
			var ov, lv any
			oFound := false
			if named {
				name := v.(map[string]any)["name"]
				seg = fmt.Sprintf("[%v]", name)
				ov, oFound = byName(ol, name)
				lv, _ = byName(ll, name)
			} else {
				if i < len(ol) {
					ov, oFound = ol[i], true
				}
				if i < len(ll) {
					lv = ll[i]
				}
			}
			p := append([]string(nil), path...)
			if len(p) > 0 {
				p[len(p)-1] += seg
			} else {
				p = []string{seg}
			}
			walkDrift(v, ov, lv, haveOld && oFound, p, out)
		}
	default:
		if t == nil {
			return
		}
		if l == nil {
			// gone live: a hand delete if the deployed manifest had a value
			// (an empty one the API server may drop)
			if haveOld && o != nil && !isEmpty(o) && !isEmpty(t) {
				*out = append(*out, strings.Join(path, "."))
			}
			return
		}
		if same(t, l) || (haveOld && same(o, l)) {
			return
		}
		*out = append(*out, strings.Join(path, "."))
	}
}

func allNamed(l []any) bool {
	if len(l) == 0 {
		return false
	}
	for _, x := range l {
		m, ok := x.(map[string]any)
		if !ok {
			return false
		}
		if _, ok := m["name"].(string); !ok {
			return false
		}
	}
	return true
}

func byName(l []any, name any) (any, bool) {
	for _, x := range l {
		if m, ok := x.(map[string]any); ok && m["name"] == name {
			return m, true
		}
	}
	return nil, false
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case bool:
		return !x
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	case float64:
		return x == 0
	case int64:
		return x == 0
	}
	return false
}

// same compares scalars as the API server stores them: numbers whatever
// their Go type (the manifest decodes to float64, the live object to int64),
// quantities by value ("0.5" and "500m"), a number and its string ("1", 1).
func same(a, b any) bool {
	sa, sb := scalar(a), scalar(b)
	if sa == sb {
		return true
	}
	qa, ea := resource.ParseQuantity(sa)
	qb, eb := resource.ParseQuantity(sb)
	return ea == nil && eb == nil && qa.Cmp(qb) == 0
}

func scalar(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case string:
		return x
	}
	return fmt.Sprint(v)
}
