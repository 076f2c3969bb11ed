// Package livediff compares the objects a Helm operation is about to apply
// (the target manifest of an upgrade or a rollback) with what is live in the
// cluster, to find before anything changes what Helm cannot do: objects it
// cannot patch (finished or running Jobs whose pod template changes,
// StatefulSet fields the API server refuses to update) and objects it cannot
// take because they exist without this release's ownership.
//
// The live side is one Snapshot: one list per kind and namespace of the target
// (object metadata only, full objects for Jobs and StatefulSets), not a GET per
// object, so a chart of a few hundred objects costs a few dozen requests.
package livediff

import (
	"context"
	"fmt"
	"sort"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"

	"github.com/opencsgs/helm-csghub/internal/parallel"
)

// Key identifies an object.
type Key struct {
	Group, Kind, Namespace, Name string
}

func (k Key) String() string {
	kind := k.Kind
	if k.Namespace != "" {
		return kind + " " + k.Namespace + "/" + k.Name
	}
	return kind + " " + k.Name
}

// KeyOf is obj's key; namespaced objects without a namespace get ns.
func KeyOf(obj *unstructured.Unstructured) Key {
	gv, _ := schema.ParseGroupVersion(obj.GetAPIVersion())
	return Key{Group: gv.Group, Kind: obj.GetKind(), Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// Clients read the cluster. Metadata may be nil (then Dynamic lists whole
// objects of every kind).
type Clients struct {
	Dynamic  dynamic.Interface
	Metadata metadata.Interface
	Mapper   meta.RESTMapper
	// Concurrency bounds parallel lists (default 4).
	Concurrency int
}

// Snapshot is the live state of the kinds and namespaces of a set of target
// objects.
type Snapshot struct {
	objs map[Key]*unstructured.Unstructured
	// Resources maps each target kind the server knows to its resource.
	resources map[schema.GroupKind]*meta.RESTMapping
	// Lists is the number of list requests the snapshot took.
	Lists int
}

// fullKinds are listed as whole objects: their spec and status are compared.
var fullKinds = map[schema.GroupKind]bool{
	{Group: "batch", Kind: "Job"}:        true,
	{Group: "apps", Kind: "StatefulSet"}: true,
}

type listKey struct {
	gk        schema.GroupKind
	version   string
	namespace string
}

// Take lists, once per kind and namespace, the live objects of the kinds the
// targets have. Kinds the server does not know (CRDs not installed yet) have
// no live objects. Namespaced targets without a namespace are in ns.
func Take(ctx context.Context, c Clients, ns string, targets ...[]*unstructured.Unstructured) (*Snapshot, error) {
	s := &Snapshot{objs: map[Key]*unstructured.Unstructured{}, resources: map[schema.GroupKind]*meta.RESTMapping{}}
	lists := map[listKey]bool{}
	for _, set := range targets {
		for _, obj := range set {
			gvk := obj.GroupVersionKind()
			gk := gvk.GroupKind()
			m, ok := s.resources[gk]
			if !ok {
				var err error
				m, err = c.Mapper.RESTMapping(gk, gvk.Version)
				if err != nil {
					if meta.IsNoMatchError(err) {
						s.resources[gk] = nil
						continue
					}
					return nil, fmt.Errorf("finding the resource of %s: %w", gk, err)
				}
				s.resources[gk] = m
			}
			if m == nil {
				continue
			}
			lk := listKey{gk: gk, version: m.Resource.Version}
			if m.Scope.Name() == meta.RESTScopeNameNamespace {
				lk.namespace = obj.GetNamespace()
				if lk.namespace == "" {
					lk.namespace = ns
				}
			}
			lists[lk] = true
		}
	}
	keys := make([]listKey, 0, len(lists))
	for k := range lists {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
	conc := c.Concurrency
	if conc <= 0 {
		conc = 4
	}
	var mu sync.Mutex
	err := parallel.ForEach(ctx, conc, keys, func(ctx context.Context, lk listKey) error {
		items, err := s.list(ctx, c, lk)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		s.Lists++
		for _, it := range items {
			k := Key{Group: lk.gk.Group, Kind: lk.gk.Kind, Namespace: lk.namespace, Name: it.GetName()}
			s.objs[k] = it
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Snapshot) list(ctx context.Context, c Clients, lk listKey) ([]*unstructured.Unstructured, error) {
	m := s.resources[lk.gk]
	what := m.Resource.Resource
	if lk.namespace != "" {
		what += " in namespace " + lk.namespace
	}
	var out []*unstructured.Unstructured
	if c.Metadata != nil && !fullKinds[lk.gk] {
		var ri metadata.ResourceInterface = c.Metadata.Resource(m.Resource)
		if lk.namespace != "" {
			ri = c.Metadata.Resource(m.Resource).Namespace(lk.namespace)
		}
		l, err := ri.List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", what, err)
		}
		for i := range l.Items {
			it := &l.Items[i]
			u := &unstructured.Unstructured{Object: map[string]any{}}
			u.SetAPIVersion(m.GroupVersionKind.GroupVersion().String())
			u.SetKind(lk.gk.Kind)
			u.SetName(it.Name)
			u.SetNamespace(it.Namespace)
			u.SetLabels(it.Labels)
			u.SetAnnotations(it.Annotations)
			u.SetOwnerReferences(it.OwnerReferences)
			u.SetManagedFields(it.ManagedFields)
			u.SetUID(it.UID)
			if it.DeletionTimestamp != nil {
				u.SetDeletionTimestamp(it.DeletionTimestamp)
			}
			out = append(out, u)
		}
		return out, nil
	}
	var ri dynamic.ResourceInterface = c.Dynamic.Resource(m.Resource)
	if lk.namespace != "" {
		ri = c.Dynamic.Resource(m.Resource).Namespace(lk.namespace)
	}
	// a consistent read: whether a Job finished decides between deleting it
	// and refusing
	opts := metav1.ListOptions{}
	if lk.gk == (schema.GroupKind{Kind: "Secret"}) {
		// Helm's release records (one large Secret per revision) are never
		// a chart's objects
		opts.LabelSelector = "owner!=helm"
	}
	l, err := ri.List(ctx, opts)
	if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", what, err)
	}
	for i := range l.Items {
		out = append(out, &l.Items[i])
	}
	return out, nil
}

// Get returns the live object for target obj (nil when it does not exist or
// its kind is unknown to the server). ns is the default namespace.
func (s *Snapshot) Get(obj *unstructured.Unstructured, ns string) *unstructured.Unstructured {
	return s.objs[s.key(obj, ns)]
}

// Mapping is the resource of obj's kind (nil when the server does not know it).
func (s *Snapshot) Mapping(obj *unstructured.Unstructured) *meta.RESTMapping {
	return s.resources[obj.GroupVersionKind().GroupKind()]
}

// key is obj's key in the snapshot: the namespace defaulted for namespaced
// kinds, cleared for cluster-scoped ones (a chart may set one anyway).
func (s *Snapshot) key(obj *unstructured.Unstructured, ns string) Key {
	k := KeyOf(obj)
	m := s.resources[obj.GroupVersionKind().GroupKind()]
	switch {
	case m == nil:
	case m.Scope.Name() == meta.RESTScopeNameNamespace:
		if k.Namespace == "" {
			k.Namespace = ns
		}
	default:
		k.Namespace = ""
	}
	return k
}

// Forget drops an object (e.g. after deleting it) so later analyses do not see it.
func (s *Snapshot) Forget(obj *unstructured.Unstructured, ns string) {
	delete(s.objs, s.key(obj, ns))
}

// MarkOwned records that an object was given this release's ownership (after
// the takeover patched it), so later steps in the same run see it so.
func (s *Snapshot) MarkOwned(k Key, release, namespace string) {
	if s == nil {
		return
	}
	o := s.objs[k]
	if o == nil {
		return
	}
	labels := o.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[ManagedByLabel] = "Helm"
	o.SetLabels(labels)
	ann := o.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[ReleaseNameAnn], ann[ReleaseNSAnn] = release, namespace
	o.SetAnnotations(ann)
}
