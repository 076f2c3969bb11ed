// Package diff compares the deployed release's manifest with the target
// render, object by object, as `helm diff upgrade` does: what the Helm
// upgrade adds, changes and removes, each with a unified diff of its YAML,
// Secrets' values masked, hooks and CRDs apart (CRDs as counts and versions:
// their schemas are megabytes), and, three-way, the live objects' hand edits
// the upgrade overwrites (Drift). It computes; the CLI prints (Write) or
// encodes the Report as JSON.
package diff

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	yaml "go.yaml.in/yaml/v2"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Change is what the upgrade does to an object.
type Change string

const (
	Added   Change = "added"
	Changed Change = "changed"
	Removed Change = "removed"
)

// Options of a comparison.
type Options struct {
	// Context is the number of unchanged lines around each change (3 by
	// default, as diff -u; 0 is no context). Negative means 3.
	Context int
	// ShowSecrets prints Secrets' values; by default each is replaced by a
	// marker saying its size and whether it changed.
	ShowSecrets bool
}

// Object is one object the upgrade adds, changes or removes.
type Object struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	Change     Change `json:"change"`
	// Fields names what changes (containers' fields, data keys, spec's
	// top-level fields, labels, annotations).
	Fields []string `json:"fields,omitempty"`
	// Masked: values replaced by markers in Diff (a Secret's, a ConfigMap's
	// keys that name a credential such as API_TOKEN).
	Masked bool `json:"masked,omitempty"`
	// Diff is the unified diff of the object's YAML (lines without newline).
	Diff []string `json:"diff"`
	// Drift are the fields of the live object that differ from the deployed
	// manifest (hand edits) and that the upgrade overwrites.
	Drift []string `json:"drift,omitempty"`
	// Notes are what the plugin does about the object besides the Helm
	// upgrade (a takeover, a Job deleted first, volumes left behind, value
	// rewrites that explain the change).
	Notes []string `json:"notes,omitempty"`
}

// Ref is "Kind namespace/name" (or "Kind name" for cluster-scoped objects).
func (o *Object) Ref() string { return ref(o.Kind, o.Namespace, o.Name) }

func ref(kind, ns, name string) string {
	if ns == "" {
		return kind + " " + name
	}
	return kind + " " + ns + "/" + name
}

// CRD is a CustomResourceDefinition the manifest adds, changes or removes:
// its served versions, not its schema.
type CRD struct {
	Name   string   `json:"name"`
	Change Change   `json:"change"`
	From   []string `json:"fromVersions,omitempty"`
	To     []string `json:"toVersions,omitempty"`
}

// Counts of one section.
type Counts struct {
	Added     int `json:"added"`
	Changed   int `json:"changed"`
	Removed   int `json:"removed"`
	Unchanged int `json:"unchanged"`
}

func (c *Counts) add(ch Change) {
	switch ch {
	case Added:
		c.Added++
	case Changed:
		c.Changed++
	case Removed:
		c.Removed++
	}
}

// Any says something is added, changed or removed.
func (c Counts) Any() bool { return c.Added+c.Changed+c.Removed > 0 }

func (c Counts) String() string {
	return fmt.Sprintf("%d to add, %d to change, %d to remove, %d unchanged", c.Added, c.Changed, c.Removed, c.Unchanged)
}

// Totals of a Report.
type Totals struct {
	Objects Counts `json:"objects"`
	Hooks   Counts `json:"hooks"`
	CRDs    Counts `json:"crds"`
	// Drifted is how many objects have live hand edits the upgrade overwrites.
	Drifted int `json:"drifted"`
}

// Report is the comparison of the deployed release with the target.
type Report struct {
	// FromRevision is the deployed revision; the target is the next one.
	FromRevision int `json:"fromRevision,omitempty"`
	// Objects are the ordinary objects (Helm owns them) that change, in a
	// stable order (kind, namespace, name); Hooks the hooks (Helm runs them
	// and never owns them); CRDs the CustomResourceDefinitions of the manifests.
	Objects []*Object `json:"objects"`
	Hooks   []*Object `json:"hooks"`
	CRDs    []CRD     `json:"crds"`
	// ValueRewrites are the renamed keys carried into the values the
	// upgrade installs (old key -> new key (value)).
	ValueRewrites []string `json:"valueRewrites,omitempty"`
	// Notes the plugin adds that belong to no object in the diff.
	Notes []string `json:"notes,omitempty"`
	// SecretsShown: --show-secrets was given (values not masked).
	SecretsShown bool   `json:"secretsShown"`
	Totals       Totals `json:"totals"`
}

// HasChanges says the upgrade changes something: an object, a hook, a CRD,
// or a live hand edit it overwrites.
func (r *Report) HasChanges() bool {
	t := r.Totals
	return t.Objects.Any() || t.Hooks.Any() || t.CRDs.Any() || t.Drifted > 0
}

// Find is the object of the report with this kind, namespace and name (nil
// when the upgrade leaves it as it is).
func (r *Report) Find(kind, namespace, name string) *Object {
	for _, set := range [][]*Object{r.Objects, r.Hooks} {
		for _, o := range set {
			if o.Kind == kind && o.Namespace == namespace && o.Name == name {
				return o
			}
		}
	}
	return nil
}

// Note attaches a note to the object it explains, or to the report when
// the object does not change.
func (r *Report) Note(kind, namespace, name, note string) {
	if o := r.Find(kind, namespace, name); o != nil {
		o.Notes = append(o.Notes, note)
		return
	}
	r.Notes = append(r.Notes, ref(kind, namespace, name)+": "+note)
}

// Input is what is compared. Namespaced objects must carry their namespace
// (the release's where the template left it out) on both sides.
type Input struct {
	Old, New           []*unstructured.Unstructured
	OldHooks, NewHooks []*unstructured.Unstructured
}

type key struct{ kind, namespace, name string }

func keyOf(o *unstructured.Unstructured) key {
	return key{o.GetKind(), o.GetNamespace(), o.GetName()}
}

// Compute compares in with the options o.
func Compute(in Input, o Options) *Report {
	r := &Report{Objects: []*Object{}, Hooks: []*Object{}, CRDs: []CRD{}, SecretsShown: o.ShowSecrets}
	var oldCRDs, newCRDs []*unstructured.Unstructured
	split := func(objs []*unstructured.Unstructured, crds *[]*unstructured.Unstructured) []*unstructured.Unstructured {
		var rest []*unstructured.Unstructured
		for _, x := range objs {
			if x.GetKind() == "CustomResourceDefinition" {
				*crds = append(*crds, x)
			} else {
				rest = append(rest, x)
			}
		}
		return rest
	}
	oldObjs, newObjs := split(in.Old, &oldCRDs), split(in.New, &newCRDs)
	r.Objects = compareSet(oldObjs, newObjs, o, &r.Totals.Objects)
	r.Hooks = compareSet(in.OldHooks, in.NewHooks, o, &r.Totals.Hooks)
	r.CRDs = compareCRDs(oldCRDs, newCRDs, &r.Totals.CRDs)
	return r
}

// pair is one object on either side.
type pair struct {
	k        key
	old, new *unstructured.Unstructured
}

// pairs matches old and new by kind, namespace and name, sorted by key.
func pairs(old, new []*unstructured.Unstructured) []pair {
	idx := map[key]*pair{}
	var order []key
	get := func(k key) *pair {
		p := idx[k]
		if p == nil {
			p = &pair{k: k}
			idx[k] = p
			order = append(order, k)
		}
		return p
	}
	for _, x := range old {
		get(keyOf(x)).old = x
	}
	for _, x := range new {
		get(keyOf(x)).new = x
	}
	sort.Slice(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		if a.namespace != b.namespace {
			return a.namespace < b.namespace
		}
		return a.name < b.name
	})
	out := make([]pair, len(order))
	for i, k := range order {
		out[i] = *idx[k]
	}
	return out
}

func compareSet(old, new []*unstructured.Unstructured, o Options, c *Counts) []*Object {
	out := []*Object{}
	for _, p := range pairs(old, new) {
		obj := compareOne(p, o)
		if obj == nil {
			c.Unchanged++
			continue
		}
		c.add(obj.Change)
		out = append(out, obj)
	}
	return out
}

// compareOne is the change of one pair (nil when there is none).
func compareOne(p pair, o Options) *Object {
	var ch Change
	switch {
	case p.old == nil:
		ch = Added
	case p.new == nil:
		ch = Removed
	case reflect.DeepEqual(p.old.Object, p.new.Object):
		return nil
	default:
		ch = Changed
	}
	either := p.new
	if either == nil {
		either = p.old
	}
	obj := &Object{Kind: p.k.kind, APIVersion: either.GetAPIVersion(), Namespace: p.k.namespace, Name: p.k.name, Change: ch}
	oldM, newM := objectMap(p.old), objectMap(p.new)
	if ch == Changed {
		obj.Fields = Fields(oldM, newM)
	}
	switch {
	case o.ShowSecrets:
	case p.k.kind == "Secret":
		obj.Masked = true
		oldM, newM = MaskSecret(oldM, newM, false), MaskSecret(newM, oldM, true)
	case p.k.kind == "ConfigMap":
		mo, okOld := MaskConfigMap(oldM, newM, false)
		mn, okNew := MaskConfigMap(newM, oldM, true)
		oldM, newM, obj.Masked = mo, mn, okOld || okNew
	}
	obj.Diff = Unified(toYAML(oldM), toYAML(newM), o.Context)
	return obj
}

func objectMap(u *unstructured.Unstructured) map[string]any {
	if u == nil {
		return nil
	}
	return u.Object
}

// toYAML is obj's YAML (keys sorted), split in lines; nothing for nil.
// yaml.v2 straight from the map (what sigs.k8s.io/yaml prints, without its
// round trip through JSON: a third of the time of a real-size diff).
func toYAML(obj map[string]any) []string {
	if obj == nil {
		return nil
	}
	b, err := yaml.Marshal(obj)
	if err != nil {
		return []string{"# (cannot print: " + err.Error() + ")"}
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// Unified is the unified diff of a and b with n lines of context (no file
// headers): "@@ -l,s +l,s @@" hunk headers, then " ", "-" and "+" lines.
// Matching is go-difflib's (Python difflib's algorithm).
func Unified(a, b []string, n int) []string {
	if n < 0 {
		n = 3
	}
	// difflib's auto-junk heuristic (lines frequent in long inputs do not
	// anchor matches) gives odd diffs of YAML, whose lines repeat; it is
	// only worth its speed on very long objects
	m := difflib.NewMatcherWithJunk(a, b, len(a)+len(b) > 4000, nil)
	var out []string
	for _, g := range m.GetGroupedOpCodes(n) {
		first, last := g[0], g[len(g)-1]
		out = append(out, fmt.Sprintf("@@ -%s +%s @@", hunkRange(first.I1, last.I2), hunkRange(first.J1, last.J2)))
		for _, c := range g {
			if c.Tag == 'e' {
				for _, l := range a[c.I1:c.I2] {
					out = append(out, " "+l)
				}
				continue
			}
			if c.Tag == 'r' || c.Tag == 'd' {
				for _, l := range a[c.I1:c.I2] {
					out = append(out, "-"+l)
				}
			}
			if c.Tag == 'r' || c.Tag == 'i' {
				for _, l := range b[c.J1:c.J2] {
					out = append(out, "+"+l)
				}
			}
		}
	}
	return out
}

// hunkRange is a unified diff range (as GNU diff writes it).
func hunkRange(start, stop int) string {
	beginning, length := start+1, stop-start
	switch {
	case length == 1:
		return fmt.Sprint(beginning)
	case length == 0:
		beginning--
	}
	return fmt.Sprintf("%d,%d", beginning, length)
}

// compareCRDs compares CRDs by name and served versions.
func compareCRDs(old, new []*unstructured.Unstructured, c *Counts) []CRD {
	out := []CRD{}
	for _, p := range pairs(old, new) {
		d := CRD{Name: p.k.name, From: crdVersions(p.old), To: crdVersions(p.new)}
		switch {
		case p.old == nil:
			d.Change = Added
		case p.new == nil:
			d.Change = Removed
		case reflect.DeepEqual(p.old.Object, p.new.Object):
			c.Unchanged++
			continue
		default:
			d.Change = Changed
		}
		c.add(d.Change)
		out = append(out, d)
	}
	return out
}

// crdVersions are a CRD's versions, the storage version marked with "*".
func crdVersions(u *unstructured.Unstructured) []string {
	if u == nil {
		return nil
	}
	vs, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
	var out []string
	for _, v := range vs {
		m, _ := v.(map[string]any)
		name, _ := m["name"].(string)
		if st, _ := m["storage"].(bool); st {
			name += "*"
		}
		out = append(out, name)
	}
	return out
}
