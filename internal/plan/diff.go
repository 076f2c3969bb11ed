package plan

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"helm.sh/helm/v3/pkg/release"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opencsgs/helm-csghub/internal/diff"
	"github.com/opencsgs/helm-csghub/internal/livediff"
	"github.com/opencsgs/helm-csghub/internal/migrate"
	"github.com/opencsgs/helm-csghub/internal/render"
)

// Diff compares the deployed revision's manifest and hooks with the target
// render (the run's one render, as Helm's upgrade makes it), object by
// object, and adds what the plugin knows beyond Helm: the live hand edits
// the upgrade overwrites (one full list per kind and namespace of the
// objects on both sides), the value rewrites and the objects they change,
// the objects the takeover adopts, the finished Jobs deleted first, the
// volumes Helm leaves behind and the data the chart's hooks change.
func (p *Prepared) Diff(ctx context.Context, o diff.Options) (*diff.Report, error) {
	r, err := p.Render()
	if err != nil {
		return nil, err
	}
	ns := p.Resolved.Namespace
	old, err := render.SplitManifest(p.Release.Manifest)
	if err != nil {
		return nil, fmt.Errorf("reading the manifest of revision %d: %w", p.Release.Version, err)
	}
	oldHooks, err := hookObjects(p.Release.Hooks)
	if err != nil {
		return nil, fmt.Errorf("reading the hooks of revision %d: %w", p.Release.Version, err)
	}
	newHooks, err := hookObjects(r.Hooks)
	if err != nil {
		return nil, fmt.Errorf("reading the target's hooks: %w", err)
	}
	for _, set := range [][]*unstructured.Unstructured{old, oldHooks, newHooks} {
		defaultNamespace(set, ns)
	}
	rep := diff.Compute(diff.Input{Old: old, New: r.Objects, OldHooks: oldHooks, NewHooks: newHooks}, o)
	rep.FromRevision = p.Release.Version
	if err := p.drift(ctx, rep, old, r.Objects); err != nil {
		return nil, err
	}
	p.explainRewrites(rep, r.Objects)
	p.explainPlugin(rep, old)
	return rep, nil
}

// hookObjects decodes hooks' manifests.
func hookObjects(hooks []*release.Hook) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, h := range hooks {
		objs, err := render.SplitManifest(h.Manifest)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", h.Path, err)
		}
		out = append(out, objs...)
	}
	return out, nil
}

// defaultNamespace gives namespaced objects without one the release's, as
// Helm applies them (and as the render does).
func defaultNamespace(objs []*unstructured.Unstructured, ns string) {
	for _, o := range objs {
		if o.GetNamespace() == "" && render.Namespaced(o) {
			o.SetNamespace(ns)
		}
	}
}

// drift reads, with one list per kind and namespace, the live objects the
// deployed manifest and the target both have (CRDs aside: their schemas are
// megabytes and the CRD step applies them) and reports per object the hand
// edits the upgrade overwrites.
func (p *Prepared) drift(ctx context.Context, rep *diff.Report, old, target []*unstructured.Unstructured) error {
	byKey := map[[3]string]*unstructured.Unstructured{}
	for _, o := range old {
		byKey[[3]string{o.GetKind(), o.GetNamespace(), o.GetName()}] = o
	}
	var both []*unstructured.Unstructured
	pairs := map[*unstructured.Unstructured]*unstructured.Unstructured{}
	for _, t := range target {
		if t.GetKind() == "CustomResourceDefinition" {
			continue
		}
		if o := byKey[[3]string{t.GetKind(), t.GetNamespace(), t.GetName()}]; o != nil {
			both = append(both, t)
			pairs[t] = o
		}
	}
	if len(both) == 0 {
		return nil
	}
	// Metadata nil: whole objects (Secrets without Helm's release records)
	snap, err := livediff.Take(ctx, livediff.Clients{Dynamic: p.Migrate.Dynamic, Mapper: p.Migrate.Mapper, Concurrency: 8}, p.Resolved.Namespace, both)
	if err != nil {
		return fmt.Errorf("reading the live objects for drift: %w", err)
	}
	for _, t := range both {
		live := snap.Get(t, p.Resolved.Namespace)
		if live == nil {
			continue
		}
		fields := diff.Drift(pairs[t].Object, t.Object, live.Object)
		if len(fields) == 0 {
			continue
		}
		rep.Totals.Drifted++
		o := rep.Find(t.GetKind(), t.GetNamespace(), t.GetName())
		if o == nil {
			// unchanged in the manifest, changed live: the upgrade writes it back
			o = &diff.Object{Kind: t.GetKind(), APIVersion: t.GetAPIVersion(), Namespace: t.GetNamespace(), Name: t.GetName(),
				Change: diff.Changed, Masked: t.GetKind() == "Secret" && !rep.SecretsShown, Diff: []string{}}
			rep.Objects = insertSorted(rep.Objects, o)
			rep.Totals.Objects.Unchanged--
			rep.Totals.Objects.Changed++
		}
		o.Drift = fields
	}
	return nil
}

// insertSorted keeps the report's order (kind, namespace, name).
func insertSorted(objs []*diff.Object, o *diff.Object) []*diff.Object {
	less := func(a, b *diff.Object) bool {
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	}
	i := 0
	for i < len(objs) && less(objs[i], o) {
		i++
	}
	objs = append(objs, nil)
	copy(objs[i+1:], objs[i:])
	objs[i] = o
	return objs
}

// explainRewrites lists the value rewrites and notes them on the objects
// they change: those the target renders differently without them (one more
// render, only when there are rewrites).
func (p *Prepared) explainRewrites(rep *diff.Report, target []*unstructured.Unstructured) {
	var carried []string
	for _, c := range p.ValueChanges {
		rep.ValueRewrites = append(rep.ValueRewrites, c.String())
		if c.To != "" {
			carried = append(carried, c.From+" -> "+c.To)
		}
	}
	if len(carried) == 0 || p.renderValues == nil {
		return
	}
	without, err := p.renderValues(MergeValues(p.BaseValues, p.Overrides))
	if err != nil {
		rep.Notes = append(rep.Notes, "the objects the value rewrites change are not known: the target does not render without them ("+
			strings.Join(strings.Fields(err.Error()), " ")+")")
		return
	}
	defaultNamespace(without.Objects, p.Resolved.Namespace)
	was := map[[3]string]*unstructured.Unstructured{}
	for _, o := range without.Objects {
		was[[3]string{o.GetKind(), o.GetNamespace(), o.GetName()}] = o
	}
	note := "changed by the value rewrites (" + strings.Join(carried, ", ") + "): the deployed settings carried to the renamed keys; without them it would differ"
	for _, t := range target {
		w := was[[3]string{t.GetKind(), t.GetNamespace(), t.GetName()}]
		if w != nil && reflect.DeepEqual(w.Object, t.Object) {
			continue
		}
		if fields := diff.Fields(objectOf(w), t.Object); len(fields) > 0 {
			rep.Note(t.GetKind(), t.GetNamespace(), t.GetName(), note+" in "+strings.Join(fields, ", "))
		} else {
			rep.Note(t.GetKind(), t.GetNamespace(), t.GetName(), note)
		}
	}
}

func objectOf(u *unstructured.Unstructured) map[string]any {
	if u == nil {
		return nil
	}
	return u.Object
}

// explainPlugin notes what the plugin does besides the Helm upgrade, next
// to the object it concerns.
func (p *Prepared) explainPlugin(rep *diff.Report, old []*unstructured.Unstructured) {
	if l := p.Live; l != nil && l.Err == nil {
		for _, k := range l.Ownership.Adopt {
			rep.Note(k.Kind, k.Namespace, k.Name, "exists live without Helm's ownership (CSGHub made it): adopted by the takeover step before the Helm upgrade")
		}
		for _, k := range l.Immutable.DeleteJobs {
			rep.Note(k.Kind, k.Namespace, k.Name, "finished Job whose pod template (immutable) changes: deleted just before the Helm upgrade, which recreates it")
		}
		for _, b := range l.Immutable.StatefulSets {
			rep.Note(b.Key.Kind, b.Key.Namespace, b.Key.Name, b.Reason+": refused unless --recreate-statefulsets")
		}
	}
	for _, o := range rep.Objects {
		if o.Change != diff.Removed {
			continue
		}
		for _, x := range old {
			if x.GetKind() != o.Kind || x.GetNamespace() != o.Namespace || x.GetName() != o.Name {
				continue
			}
			if x.GetAnnotations()["helm.sh/resource-policy"] == "keep" {
				o.Notes = append(o.Notes, "annotated helm.sh/resource-policy: keep: Helm leaves it in the cluster, no longer part of the release")
			}
			if claims := claimNames(x); len(claims) > 0 {
				o.Notes = append(o.Notes, "Helm leaves its PersistentVolumeClaims (and their data): "+strings.Join(claims, ", ")+
					"; delete them by hand when the data is no longer needed (kubectl -n "+o.Namespace+" delete pvc NAME)")
			}
		}
	}
	for _, m := range p.Migrations {
		if m.Name() == "dataflow-tables-hook" {
			d := m.Describe(p.Migrate)
			rep.Note("Job", p.Resolved.Namespace, migrate.DataflowHookJob(p.Resolved.Name), "data: "+strings.Join(d.Touches, "; ")+" ("+d.Reason+")")
		}
	}
}

// claimNames are the PVCs a StatefulSet's volumeClaimTemplates made
// (<template>-<statefulset>-<ordinal>).
func claimNames(sts *unstructured.Unstructured) []string {
	if sts.GetKind() != "StatefulSet" {
		return nil
	}
	vcts, _, _ := unstructured.NestedSlice(sts.Object, "spec", "volumeClaimTemplates")
	replicas, found, _ := unstructured.NestedFieldNoCopy(sts.Object, "spec", "replicas")
	n := 1
	if found {
		switch x := replicas.(type) {
		case float64:
			n = int(x)
		case int64:
			n = int(x)
		}
	}
	var out []string
	for _, v := range vcts {
		m, _ := v.(map[string]any)
		md, _ := m["metadata"].(map[string]any)
		name, _ := md["name"].(string)
		for i := 0; i < n && name != ""; i++ {
			out = append(out, fmt.Sprintf("%s-%s-%d", name, sts.GetName(), i))
		}
	}
	return out
}
