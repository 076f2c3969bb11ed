package migrate

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/Masterminds/semver/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/livediff"
	"github.com/opencsgs/helm-csghub/internal/parallel"
)

// v1.17.0: Knative Serving, Argo Workflow and LeaderWorkerSet resources become
// part of the chart. Objects created earlier outside Helm make `helm upgrade`
// fail with "invalid ownership metadata" until they carry Helm's ownership
// metadata (the guide's crds_takeover.sh). Here exactly the objects the target
// chart renders that exist without ownership are adopted; lws webhook
// configurations outside Helm are deleted (the chart recreates them); an object
// owned by another release is never taken.
//
// The same step is registered again at 2.0.0, whose chart renders the
// knative-serving Namespace: an upgrade from 1.17.x to 2.0.x needs it adopted
// although the 1.17.0 step is not planned then.
type helmTakeover struct {
	version string
	name    string
	reason  string
}

func init() {
	Register(helmTakeover{version: "1.17.0", name: "helm-takeover",
		reason: "from 1.17.0 the chart manages Knative Serving, Argo Workflow and LeaderWorkerSet: objects it renders that exist " +
			"outside Helm get Helm's ownership label and annotations; lws webhook configurations outside Helm are deleted (the chart recreates them)"})
	Register(helmTakeover{version: "2.0.0", name: "knative-serving-takeover",
		reason: "from 2.0.0 the chart renders the knative-serving Namespace itself: adopt it (and anything else it renders that exists outside Helm)"})
}

const (
	managedByLabel = "app.kubernetes.io/managed-by"
	releaseNameAnn = "meta.helm.sh/release-name"
	releaseNSAnn   = "meta.helm.sh/release-namespace"
)

var (
	mwcGVR = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"}
	vwcGVR = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"}
)

func (m helmTakeover) Version() *semver.Version { return MustVersion(m.version) }
func (m helmTakeover) Name() string             { return m.name }

// Permissions: adopted CRDs are patched, lws webhook configurations deleted.
func (helmTakeover) Permissions(*Context) []Permission {
	return []Permission{{Verb: "patch", Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"},
		{Verb: "delete", Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"}}
}

func (m helmTakeover) Describe(c *Context) Description {
	return Description{
		Reason: m.reason,
		Touches: []string{"objects rendered by the target chart without Helm ownership",
			"MutatingWebhookConfigurations/ValidatingWebhookConfigurations named *lws* outside Helm"},
	}
}

// target is one existing object and what to do with it.
type target struct {
	gvr        schema.GroupVersionResource
	kind       string
	namespace  string
	name       string
	foreignRel string // "namespace/name" of the release that owns it, when not ours
}

func (t target) String() string {
	if t.namespace != "" {
		return t.kind + " " + t.namespace + "/" + t.name
	}
	return t.kind + " " + t.name
}

type takeoverPlan struct {
	adopt   []target
	delete  []target
	foreign []target
	owned   int
}

// ownership classifies an object's Helm metadata relative to our release.
func ownership(obj *unstructured.Unstructured, release, namespace string) (ours bool, foreign string) {
	return livediff.OwnedBy(obj, release, namespace)
}

func (m helmTakeover) plan(ctx context.Context, c *Context) (*takeoverPlan, error) {
	objs, err := c.Rendered()
	if err != nil {
		return nil, err
	}
	snap := c.Live
	if snap == nil {
		snap, err = livediff.Take(ctx, livediff.Clients{Dynamic: c.Dynamic, Metadata: c.Metadata, Mapper: c.Mapper,
			Concurrency: c.concurrency()}, c.Namespace, objs)
		if err != nil {
			return nil, err
		}
		c.Live = snap
	}
	p := &takeoverPlan{}
	isWebhook := func(kind string) bool {
		return kind == "MutatingWebhookConfiguration" || kind == "ValidatingWebhookConfiguration"
	}
	for _, obj := range objs {
		live := snap.Get(obj, c.Namespace)
		mapping := snap.Mapping(obj)
		if live == nil || mapping == nil {
			continue // does not exist (or its kind is unknown yet): Helm creates it
		}
		t := target{gvr: mapping.Resource, kind: obj.GetKind(), name: obj.GetName(), namespace: live.GetNamespace()}
		ours, foreign := ownership(live, c.Release, c.Namespace)
		k := livediff.KeyOf(live)
		switch {
		case foreign != "":
			t.foreignRel = foreign
			p.foreign = append(p.foreign, t)
		case ours:
			p.owned++
		case isWebhook(t.kind) && strings.Contains(t.name, "lws"):
			// deleted below with the other lws webhooks
		case !livediff.CSGHubMade(k):
			// not something CSGHub makes outside Helm: never taken
			t.foreignRel = "none (" + livediff.Owner(live) + ")"
			p.foreign = append(p.foreign, t)
		default:
			p.adopt = append(p.adopt, t)
		}
	}
	for _, w := range []struct {
		gvr  schema.GroupVersionResource
		kind string
	}{{mwcGVR, "MutatingWebhookConfiguration"}, {vwcGVR, "ValidatingWebhookConfiguration"}} {
		list, err := c.Dynamic.Resource(w.gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("listing %ss: %w", w.kind, err)
		}
		for i := range list.Items {
			obj := &list.Items[i]
			if !strings.Contains(obj.GetName(), "lws") {
				continue
			}
			ours, foreign := ownership(obj, c.Release, c.Namespace)
			if ours || foreign != "" || obj.GetLabels()[managedByLabel] == "Helm" {
				continue // Helm manages it (ours, or another release's: left alone)
			}
			p.delete = append(p.delete, target{gvr: w.gvr, kind: w.kind, name: obj.GetName()})
		}
	}
	sortTargets(p.adopt)
	sortTargets(p.delete)
	sortTargets(p.foreign)
	return p, nil
}

func sortTargets(ts []target) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].String() < ts[j].String() })
}

func (p *takeoverPlan) foreignError() error {
	if len(p.foreign) == 0 {
		return nil
	}
	var names []string
	for _, t := range p.foreign {
		if strings.HasPrefix(t.foreignRel, "none (") {
			names = append(names, fmt.Sprintf("%s (not made by CSGHub, no Helm ownership: %s", t, strings.TrimPrefix(t.foreignRel, "none (")))
			continue
		}
		names = append(names, fmt.Sprintf("%s (owned by release %s)", t, t.foreignRel))
	}
	// a precondition (exit 4), as upgrade's live comparison refuses the same objects
	return errs.Preconditionf("refusing to take objects owned by another release or not made by CSGHub: %s", strings.Join(names, "; "))
}

func (m helmTakeover) Check(ctx context.Context, c *Context) (bool, string, error) {
	p, err := m.plan(ctx, c)
	if err != nil {
		return false, "", err
	}
	if err := p.foreignError(); err != nil {
		return false, "", err
	}
	if len(p.adopt) == 0 && len(p.delete) == 0 {
		return true, fmt.Sprintf("%d existing object(s) already owned by the release", p.owned), nil
	}
	return false, fmt.Sprintf("%d to adopt, %d lws webhook configuration(s) to delete", len(p.adopt), len(p.delete)), nil
}

func (m helmTakeover) Apply(ctx context.Context, c *Context) ([]Change, error) {
	p, err := m.plan(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := p.foreignError(); err != nil {
		return nil, err // before any change
	}
	var opts []string
	if c.DryRun {
		opts = []string{metav1.DryRunAll}
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"labels":      map[string]string{managedByLabel: "Helm"},
		"annotations": map[string]string{releaseNameAnn: c.Release, releaseNSAnn: c.Namespace},
	}})
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var changes []Change
	record := func(ch Change) {
		mu.Lock()
		changes = append(changes, ch)
		mu.Unlock()
	}
	suffix := ""
	if c.DryRun {
		suffix = "dry run"
	}
	err = parallel.ForEach(ctx, c.concurrency(), p.adopt, func(ctx context.Context, t target) error {
		ri := resource(c, t)
		if _, err := ri.Patch(ctx, t.name, types.MergePatchType, patch, metav1.PatchOptions{DryRun: opts, FieldManager: FieldManager}); err != nil {
			return fmt.Errorf("adopting %s: %w", t, err)
		}
		if !c.DryRun {
			c.Live.MarkOwned(livediff.Key{Group: t.gvr.Group, Kind: t.kind, Namespace: t.namespace, Name: t.name}, c.Release, c.Namespace)
		}
		record(Change{Action: "adopt", Kind: t.kind, Name: qualified(t), Detail: suffix})
		return nil
	})
	if err != nil {
		return sortChanges(changes), err
	}
	err = parallel.ForEach(ctx, c.concurrency(), p.delete, func(ctx context.Context, t target) error {
		err := resource(c, t).Delete(ctx, t.name, metav1.DeleteOptions{DryRun: opts})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting %s: %w", t, err)
		}
		record(Change{Action: "delete", Kind: t.kind, Name: t.name, Detail: suffix})
		return nil
	})
	return sortChanges(changes), err
}

func resource(c *Context, t target) dynamic.ResourceInterface {
	if t.namespace != "" {
		return c.Dynamic.Resource(t.gvr).Namespace(t.namespace)
	}
	return c.Dynamic.Resource(t.gvr)
}

func qualified(t target) string {
	if t.namespace != "" {
		return t.namespace + "/" + t.name
	}
	return t.name
}

func sortChanges(cs []Change) []Change {
	sort.Slice(cs, func(i, j int) bool { return cs[i].String() < cs[j].String() })
	return cs
}

// Takeover is the takeover step planned at the target version when objects
// CSGHub made outside Helm exist although no versioned takeover step is due
// (e.g. a KnativeServing an older chart created as a hook): every upgrade
// adopts them.
func Takeover(target *semver.Version) Migration {
	return helmTakeover{version: target.String(), name: "takeover",
		reason: "objects the target chart renders exist without Helm ownership and were made by CSGHub outside Helm (hooks, Jobs, operators): adopt them"}
}

// IsTakeover says m is a takeover step.
func IsTakeover(m Migration) bool {
	_, ok := m.(helmTakeover)
	return ok
}
