// Package crds finds the CustomResourceDefinitions a chart installs, as Helm
// would for given values, and compares copies of one CRD by version.
//
// Helm installs crds/ of the chart and of every subchart left after its
// dependency processing (conditions and tags evaluated on the values): a
// disabled subchart's CRDs are not installed. A chart may vendor the same CRD
// several times (the CSGHub chart carries gateway-helm four times); Set keeps
// one copy per name by a documented rule (see Collect).
package crds

import (
	"fmt"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opencsgs/helm-csghub/internal/render"
)

// Copy is one copy of a CRD in the chart tree.
type Copy struct {
	Obj *unstructured.Unstructured
	// Chart is the chart holding it, as Helm names it (aliases applied):
	// "csghub/charts/envoy".
	Chart string
	// File is the file inside that chart: "crds/gatewayapi-crds.yaml".
	File string
}

// Source names the copy for the operator: the subchart path below the root
// ("envoy", "runner/envoy"), or the root chart's name.
func (c Copy) Source() string {
	parts := strings.Split(c.Chart, "/charts/")
	if len(parts) == 1 {
		return parts[0]
	}
	return strings.Join(parts[1:], "/")
}

// CRD is one CRD to install: the winning copy and what it was chosen over.
type CRD struct {
	Name string
	Copy
	// Others are the other copies of the same name (not applied).
	Others []Copy
	// Choice explains the pick when there were several copies, e.g.
	// "2 identical copies (envoy, runner/envoy)" or "envoy's copy is newer than
	// runner/envoy's (bundle-version v1.5.0 > v1.4.1)".
	Choice string
}

// Set is what Helm would install for the values, one copy per name.
type Set struct {
	CRDs []*CRD // sorted by name
	// Skipped lists the CRDs carried only by disabled subcharts:
	// "loki/grafana-agent-operator: podmonitors.monitoring.coreos.com, ...".
	Skipped []string
	// SkippedCount is the number of CRD names only disabled subcharts carry.
	SkippedCount int
}

// Names returns the CRD names in order.
func (s *Set) Names() []string {
	out := make([]string, len(s.CRDs))
	for i, c := range s.CRDs {
		out[i] = c.Name
	}
	return out
}

// Duplicates returns the CRDs that had more than one copy.
func (s *Set) Duplicates() []*CRD {
	var out []*CRD
	for _, c := range s.CRDs {
		if len(c.Others) > 0 {
			out = append(out, c)
		}
	}
	return out
}

// Collect returns the CRDs Helm would install with the chart and the
// user-supplied values (as `helm install` gets them): dependencies are
// processed with chartutil.ProcessDependenciesWithMerge, as Helm's install
// and upgrade do, on a copy of the chart tree (that call rewrites the tree it
// is given); then crds/ of the chart and of every enabled subchart are read
// in Helm's order (the chart first, then each dependency depth-first).
//
// Copies of one name: identical copies count once. Differing copies: the
// newer wins by Compare (bundle-version, then controller-gen version, then the
// served versions, then the schema's properties); when that cannot tell, the
// first in Helm's order wins, as `helm install` creates that one and skips
// the rest as already present. CRD.Choice says which copy won and why.
func Collect(ch *chart.Chart, values map[string]any) (*Set, error) {
	if ch == nil {
		return nil, fmt.Errorf("no chart")
	}
	if values == nil {
		values = map[string]any{}
	}
	enabled := render.CloneChart(ch)
	if err := chartutil.ProcessDependenciesWithMerge(enabled, values); err != nil {
		return nil, fmt.Errorf("processing the dependencies of %s-%s: %w", ch.Name(), ch.Metadata.Version, err)
	}
	copies, err := read(enabled)
	if err != nil {
		return nil, err
	}
	enabledFiles := map[*chart.File]bool{}
	for _, f := range enabled.CRDObjects() {
		enabledFiles[f.File] = true
	}
	set := &Set{}
	byName := map[string]*CRD{}
	for _, cp := range copies {
		name := cp.Obj.GetName()
		cur, ok := byName[name]
		if !ok {
			c := &CRD{Name: name, Copy: cp}
			byName[name] = c
			set.CRDs = append(set.CRDs, c)
			continue
		}
		cur.Others = append(cur.Others, cp)
		if Equal(cur.Obj, cp.Obj) {
			continue
		}
		if r := Compare(cp.Obj, cur.Obj); r.Order == Newer {
			cur.Others[len(cur.Others)-1] = cur.Copy
			cur.Copy = cp
		}
	}
	for _, c := range set.CRDs {
		c.Choice = choice(c)
	}
	sort.Slice(set.CRDs, func(i, j int) bool { return set.CRDs[i].Name < set.CRDs[j].Name })

	// CRDs of disabled subcharts, to say what is deliberately left out.
	skipped := map[string][]string{}
	var order []string
	for _, f := range render.CloneChart(ch).CRDObjects() {
		if enabledFiles[f.File] {
			continue
		}
		src := Copy{Chart: strings.TrimSuffix(f.Filename, "/"+f.Name)}.Source()
		for _, name := range crdNames(f.File.Data) {
			if byName[name] != nil || contains(skipped[src], name) {
				continue
			}
			if _, ok := skipped[src]; !ok {
				order = append(order, src)
			}
			skipped[src] = append(skipped[src], name)
			set.SkippedCount++
		}
	}
	for _, src := range order {
		set.Skipped = append(set.Skipped, src+": "+strings.Join(skipped[src], ", "))
	}
	return set, nil
}

// read decodes every CRD in crds/ of the tree, in Helm's order.
func read(ch *chart.Chart) ([]Copy, error) {
	var out []Copy
	for _, f := range ch.CRDObjects() {
		objs, err := render.DecodeFile(f.File.Data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Filename, err)
		}
		dir := strings.TrimSuffix(f.Filename, "/"+f.Name)
		for _, o := range objs {
			if o.GetKind() != "CustomResourceDefinition" {
				continue
			}
			out = append(out, Copy{Obj: o, Chart: dir, File: f.Name})
		}
	}
	return out, nil
}

func choice(c *CRD) string {
	if len(c.Others) == 0 {
		return ""
	}
	var identical, differing []string
	for _, o := range c.Others {
		if Equal(o.Obj, c.Obj) {
			identical = append(identical, o.Source())
		} else {
			differing = append(differing, o.Source())
		}
	}
	if len(differing) == 0 {
		return fmt.Sprintf("%d identical copies (%s, %s): applied once", len(c.Others)+1, c.Source(), strings.Join(identical, ", "))
	}
	var why []string
	for _, o := range c.Others {
		if Equal(o.Obj, c.Obj) {
			continue
		}
		r := Compare(c.Obj, o.Obj)
		if r.Order == Newer {
			why = append(why, fmt.Sprintf("newer than %s's (%s)", o.Source(), r.Reason))
		} else {
			why = append(why, fmt.Sprintf("first in Helm's order before %s's, which differs but is not newer (%s)", o.Source(), r.Reason))
		}
	}
	s := fmt.Sprintf("%s's copy won: %s", c.Source(), strings.Join(why, "; "))
	if len(identical) > 0 {
		s += fmt.Sprintf("; identical to %s", strings.Join(identical, ", "))
	}
	return s
}

// crdNames returns the names of the CRDs in a crds/ file that is not
// installed, for the report only: a line scan (top-level `kind:` and
// `metadata:` with a two-space indented `name:`), since decoding megabytes of
// schema to learn names costs more than the rest of the plan; a file laid out
// otherwise is decoded.
func crdNames(data []byte) []string {
	var names []string
	isCRD, inMeta := false, false
	name := ""
	flush := func() {
		if isCRD && name != "" {
			names = append(names, name)
		}
		isCRD, inMeta, name = false, false, ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r ")
		switch {
		case line == "---":
			flush()
		case line == "kind: CustomResourceDefinition":
			isCRD = true
		case line == "metadata:":
			inMeta = true
		case inMeta && strings.HasPrefix(line, "  name: "):
			name = strings.Trim(strings.TrimPrefix(line, "  name: "), `"'`)
		case len(line) > 0 && line[0] != ' ' && line[0] != '#':
			inMeta = false
		}
	}
	flush()
	if len(names) == 0 && strings.Contains(string(data), "CustomResourceDefinition") {
		objs, _ := render.DecodeFile(data)
		for _, o := range objs {
			if o.GetKind() == "CustomResourceDefinition" {
				names = append(names, o.GetName())
			}
		}
	}
	return names
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
