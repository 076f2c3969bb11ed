// Package valuemigrate carries the operator's values across chart releases that
// renamed or moved keys. An upgrade installs the deployed revision's values
// (the backup's values.yaml) as its base; a key the new chart renamed would be
// ignored by it, silently losing the setting. Each chart version that renamed
// keys registers its rewrites from its own file (v2_2_2.go, ...), like the
// migrations of internal/migrate; Migrate applies those of the versions an
// upgrade crosses (from < version <= to), in version order, to the base values
// only: values passed with -f/--set in this run are the operator's and are never
// rewritten (an old key there is warned about). Unknown reports the keys of the
// merged values the target chart does not know, so nothing is ignored silently.
package valuemigrate

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Rewrite is one value rewrite of a chart version.
//
//   - From and To: the value at From moves to To (From is removed).
//   - Keep: the value is copied to To and stays at From (a key both the old
//     and the new chart read, each for something else).
//   - Convert: changes the value on the way (e.g. SecondsToMinutes).
//   - To empty: nothing can be carried automatically; Note says what to do,
//     and is given as a warning when From is set. With Keep too, the key still
//     works in the new chart and Note only explains (listed, no warning).
//
// A rewrite is idempotent: From absent (or already moved) changes nothing;
// To already set keeps the value there (with a warning when From differs).
type Rewrite struct {
	From    string
	To      string
	Keep    bool
	Convert func(any) (any, error)
	Note    string
}

type versioned struct {
	version *semver.Version
	Rewrite
}

var registry []versioned

// Register adds the rewrites of one chart version (from each version's file).
func Register(version string, rs ...Rewrite) {
	v := semver.MustParse(version)
	for _, r := range rs {
		if r.From == "" || (r.To == "" && r.Note == "") {
			panic("valuemigrate: incomplete rewrite registered for " + version + ": " + r.From)
		}
		registry = append(registry, versioned{v, r})
	}
	sort.SliceStable(registry, func(i, j int) bool { return registry[i].version.LessThan(registry[j].version) })
}

// Change is a rewrite applied to the base values (or, for a rewrite that
// cannot be carried automatically, a key that needs the operator).
type Change struct {
	Version string `json:"version"`
	From    string `json:"from"`
	To      string `json:"to,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

func (c Change) String() string {
	s := c.From
	if c.To != "" {
		s += " -> " + c.To
	}
	if c.Detail != "" {
		s += " (" + c.Detail + ")"
	}
	return s
}

// Source is one -f/--set flag of this run and the values it gives.
type Source struct {
	Flag   string // e.g. "--set", "-f custom.yaml"
	Values map[string]any
}

// Result is what Migrate did.
type Result struct {
	// Values is a rewritten copy of the base values (the input is not changed).
	Values map[string]any
	// Changes lists each rewrite applied, in version order.
	Changes []Change
	// Warnings: settings not carried (the new key already set), old keys in
	// this run's -f/--set, keys that need the operator.
	Warnings []string
}

// Migrate applies the rewrites of the versions crossed by an upgrade from ->
// to (from < version <= to) to a copy of base. passed are this run's -f/--set:
// never rewritten, but an old key in them is warned about.
func Migrate(base map[string]any, from, to *semver.Version, passed []Source) *Result {
	res := &Result{Values: deepCopy(base)}
	for _, r := range registry {
		if !from.LessThan(r.version) || to.LessThan(r.version) {
			continue
		}
		res.apply(r)
		for _, s := range passed {
			if _, ok := get(s.Values, split(r.From)); ok && !(r.To == "" && r.Keep) {
				if r.To == "" {
					res.Warnings = append(res.Warnings, fmt.Sprintf("%s %s: %s (left as you passed it)", s.Flag, r.From, r.Note))
				} else {
					res.Warnings = append(res.Warnings, fmt.Sprintf("%s %s: %s reads %s (left as you passed it)", s.Flag, r.From, to, r.To))
				}
			}
		}
	}
	return res
}

func (res *Result) apply(r versioned) {
	from := split(r.From)
	old, ok := get(res.Values, from)
	if !ok {
		return
	}
	ch := Change{Version: r.version.String(), From: r.From, To: r.To}
	if r.To == "" {
		if r.Keep {
			ch.Detail = "kept: " + r.Note
		} else {
			ch.Detail = "not carried: " + r.Note
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s (%s): %s", r.From, r.version, r.Note))
		}
		res.Changes = append(res.Changes, ch)
		return
	}
	val := old
	if r.Convert != nil && !isEmptyMap(old) {
		v, err := r.Convert(old)
		if err != nil {
			// a value that cannot be converted stays where it is, and is said
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s=%v not carried to %s (%s): %v", r.From, old, r.To, r.version, err))
			return
		}
		val = v
		ch.Detail = fmt.Sprintf("%v -> %v", old, v)
	}
	to := split(r.To)
	if cur, set := get(res.Values, to); set && !isEmptyMap(cur) {
		// the operator already set the new key: theirs wins
		if !r.Keep {
			del(res.Values, from)
		}
		if !isEmptyMap(old) && !reflect.DeepEqual(cur, val) {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s=%s not carried (%s): %s is already set to %s, which is kept",
				r.From, short(old), r.version, r.To, short(cur)))
		}
		return
	}
	set(res.Values, to, val)
	if !r.Keep {
		del(res.Values, from)
	} else if ch.Detail == "" {
		ch.Detail = "copied: both keys are read"
	}
	res.Changes = append(res.Changes, ch)
}

// SecondsToMinutes converts a duration in seconds (a number or a numeric
// string) to whole minutes, rounding UP so a timeout never becomes shorter
// than the operator set (90 s -> 2 min; 0 stays 0). A string stays a string.
func SecondsToMinutes(v any) (any, error) {
	var s float64
	switch x := v.(type) {
	case int:
		s = float64(x)
	case int64:
		s = float64(x)
	case float64:
		s = x
	case string:
		if _, err := fmt.Sscanf(strings.TrimSpace(x), "%g", &s); err != nil {
			return nil, fmt.Errorf("%q is not a number of seconds", x)
		}
	default:
		return nil, fmt.Errorf("%v is not a number of seconds", v)
	}
	if s < 0 {
		return nil, fmt.Errorf("%v is negative", v)
	}
	m := int64(s / 60)
	if float64(m)*60 < s {
		m++
	}
	if _, isString := v.(string); isString {
		return fmt.Sprint(m), nil
	}
	return m, nil
}

func split(path string) []string { return strings.Split(path, ".") }

func get(m map[string]any, path []string) (any, bool) {
	var cur any = m
	for _, k := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func set(m map[string]any, path []string, v any) {
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

// del removes the key and the maps it leaves empty (server.agent once
// server.agent.langflow moved), so no empty old key is left to warn about.
func del(m map[string]any, path []string) {
	if len(path) == 1 {
		delete(m, path[0])
		return
	}
	next, ok := m[path[0]].(map[string]any)
	if !ok {
		return
	}
	del(next, path[1:])
	if len(next) == 0 {
		delete(m, path[0])
	}
}

func isEmptyMap(v any) bool {
	m, ok := v.(map[string]any)
	return ok && len(m) == 0
}

func short(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}

func deepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = copyValue(v)
	}
	return out
}

func copyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return deepCopy(x)
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = copyValue(x[i])
		}
		return out
	}
	return v
}
