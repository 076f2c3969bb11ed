package plan

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/livediff"
	"github.com/opencsgs/helm-csghub/internal/migrate"
	"github.com/opencsgs/helm-csghub/internal/render"
)

// Live is the comparison of the target with the live objects, from one
// snapshot (one list per kind and namespace): what Helm cannot patch and what
// it cannot take.
type Live struct {
	Snapshot  *livediff.Snapshot
	Immutable *livediff.Immutable
	Ownership *livediff.Ownership
	// Err is why the comparison could not be made (e.g. the target does not render).
	Err error
}

// analyzeLive renders the target (the render the migrations share), lists
// the live objects of its kinds once and compares; when objects CSGHub made
// outside Helm exist and no takeover step is planned, one is added for the
// target version, so every upgrade adopts them.
func (p *Prepared) analyzeLive(ctx context.Context) {
	l := &Live{}
	p.Live = l
	objs, err := p.Migrate.Rendered()
	if err != nil {
		l.Err = err
		return
	}
	previous, err := render.SplitManifest(p.Release.Manifest)
	if err != nil {
		l.Err = fmt.Errorf("reading the manifest of revision %d: %w", p.Release.Version, err)
		return
	}
	l.Snapshot, err = livediff.Take(ctx, livediff.Clients{Dynamic: p.Migrate.Dynamic, Metadata: p.Migrate.Metadata,
		Mapper: p.Migrate.Mapper, Concurrency: 8}, p.Resolved.Namespace, objs)
	if err != nil {
		l.Err = fmt.Errorf("reading the live objects: %w", err)
		return
	}
	p.Migrate.Live = l.Snapshot
	l.Immutable = livediff.FindImmutable(l.Snapshot, p.Resolved.Namespace, objs, previous)
	l.Ownership = livediff.FindOwnership(l.Snapshot, p.Resolved.Namespace, p.Resolved.Name, objs)
	if len(l.Ownership.Adopt) > 0 && !hasTakeover(p.Migrations) {
		p.Migrations = append(p.Migrations, migrate.Takeover(p.Target.Version))
	}
}

func hasTakeover(ms []migrate.Migration) bool {
	for _, m := range ms {
		if migrate.IsTakeover(m) {
			return true
		}
	}
	return false
}

// LiveRefusal is the error that stops an upgrade before any change: the
// comparison failed, an object Helm cannot take, a running Job or (without
// recreateStatefulSets) a StatefulSet whose immutable fields change.
func (p *Prepared) LiveRefusal(recreateStatefulSets bool) error {
	l := p.Live
	if l == nil {
		return nil
	}
	if l.Err != nil {
		return errs.Preconditionf("comparing the target with the cluster: %v", l.Err)
	}
	if msg := l.Ownership.Error(); msg != "" {
		return errs.Preconditionf("%s", msg)
	}
	g := &livediff.Guard{RecreateStatefulSets: recreateStatefulSets}
	if err := g.Refusal(l.Immutable); err != nil {
		return errs.Preconditionf("%v", err)
	}
	return nil
}

// liveStep is the plan's entry for the comparison.
func (p *Prepared) liveStep() Step {
	st := Step{Name: "live-objects",
		Reason:  "compare the target manifest with the live objects: objects Helm cannot patch (immutable Job templates and StatefulSet fields) or cannot take (no Helm ownership of this release)",
		Touches: []string{"nothing (read-only); finished Jobs listed here are deleted just before the Helm upgrade"}}
	l := p.Live
	if l == nil {
		return st
	}
	if l.Err != nil {
		st.Status = "cannot compare: " + l.Err.Error()
		return st
	}
	var parts, blocked []string
	if n := len(l.Ownership.Adopt); n > 0 {
		parts = append(parts, fmt.Sprintf("%d made by CSGHub outside Helm, adopted by the takeover: %s", n, strings.Join(l.Ownership.AdoptNames(), ", ")))
	}
	if n := len(l.Immutable.DeleteJobs); n > 0 {
		var names []string
		for _, k := range l.Immutable.DeleteJobs {
			names = append(names, k.String())
		}
		parts = append(parts, fmt.Sprintf("%d finished Job(s) whose pod template changes, deleted first (Helm recreates them): %s", n, strings.Join(names, ", ")))
	}
	for _, f := range l.Ownership.Foreign {
		blocked = append(blocked, f.Object+" "+f.Reason+": "+f.Fix)
	}
	for _, b := range l.Immutable.RunningJobs {
		blocked = append(blocked, b.Object+": "+b.Reason+"; "+b.Fix)
	}
	for _, b := range l.Immutable.StatefulSets {
		blocked = append(blocked, b.Object+": "+b.Reason+"; "+b.Fix)
	}
	switch {
	case len(blocked) > 0:
		st.Status = "refused: " + strings.Join(blocked, "; ")
	case len(parts) > 0:
		st.Status = fmt.Sprintf("ok, %d object(s) already owned; ", l.Ownership.Owned) + strings.Join(parts, "; ")
	default:
		st.Status = fmt.Sprintf("ok: %d existing object(s), all owned by the release, nothing immutable changes", l.Ownership.Owned)
	}
	return st
}

// TargetObjects is the rendered target (shared render).
func (p *Prepared) TargetObjects() ([]*unstructured.Unstructured, error) { return p.Migrate.Rendered() }
