package render

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
)

// Cluster answers the templates' `lookup` calls from the live cluster, as
// Helm's own upgrade does (engine.New(restConfig)): a GET for a name, a LIST
// without one, a not-found object an empty map. Unlike Helm it maps kinds
// through the caller's cached RESTMapper (no discovery request per call) and
// answers a repeated lookup of the same object from the first answer, so a
// chart that looks up one Secret from twenty templates costs one request.
// It is read-only: every write method fails.
type Cluster struct {
	Dynamic dynamic.Interface
	Mapper  meta.RESTMapper

	mu       sync.Mutex
	cache    map[string]cached
	lookups  int
	requests int
}

type cached struct {
	obj  map[string]any
	list *unstructured.UnstructuredList
	err  error
}

// Counts is how many lookups the templates made and how many API requests
// answered them.
func (c *Cluster) Counts() (lookups, requests int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lookups, c.requests
}

var errReadOnly = errors.New("render: the cluster is read-only while rendering")

// GetClientFor implements Helm's engine.ClientProvider.
func (c *Cluster) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	gvk := schema.FromAPIVersionAndKind(apiVersion, kind)
	m, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, false, fmt.Errorf("lookup %s %s: kind not served by the cluster: %w", apiVersion, kind, err)
	}
	namespaced := m.Scope.Name() == meta.RESTScopeNameNamespace
	return &lookupClient{c: c, gvr: m.Resource, res: c.Dynamic.Resource(m.Resource)}, namespaced, nil
}

// lookupClient is the read-only, caching client a lookup gets (namespace ""
// until Namespace is called).
type lookupClient struct {
	c   *Cluster
	gvr schema.GroupVersionResource
	res dynamic.NamespaceableResourceInterface
	ns  string
}

func (l *lookupClient) Namespace(ns string) dynamic.ResourceInterface {
	return &lookupClient{c: l.c, gvr: l.gvr, res: l.res, ns: ns}
}

func (l *lookupClient) target() dynamic.ResourceInterface {
	if l.ns == "" {
		return l.res
	}
	return l.res.Namespace(l.ns)
}

func (l *lookupClient) key(name string) string {
	return l.gvr.String() + "|" + l.ns + "|" + name
}

// answer returns the cached answer for key, asking fetch once.
func (l *lookupClient) answer(key string, fetch func() cached) cached {
	c := l.c
	c.mu.Lock()
	c.lookups++
	if c.cache == nil {
		c.cache = map[string]cached{}
	}
	a, ok := c.cache[key]
	c.mu.Unlock()
	if ok {
		return a
	}
	a = fetch()
	c.mu.Lock()
	c.requests++
	c.cache[key] = a
	c.mu.Unlock()
	return a
}

func (l *lookupClient) Get(ctx context.Context, name string, opts metav1.GetOptions, sub ...string) (*unstructured.Unstructured, error) {
	if len(sub) > 0 {
		return nil, errReadOnly
	}
	a := l.answer(l.key(name), func() cached {
		obj, err := l.target().Get(ctx, name, opts)
		if err != nil {
			return cached{err: err}
		}
		return cached{obj: obj.Object}
	})
	if a.err != nil {
		return nil, a.err
	}
	// a copy: templates may change the maps they get (set, merge)
	return &unstructured.Unstructured{Object: runtimeDeepCopy(a.obj)}, nil
}

func (l *lookupClient) List(ctx context.Context, opts metav1.ListOptions) (*unstructured.UnstructuredList, error) {
	a := l.answer(l.key("")+"|"+opts.LabelSelector+"|"+opts.FieldSelector, func() cached {
		list, err := l.target().List(ctx, opts)
		if err != nil {
			return cached{err: err}
		}
		return cached{list: list}
	})
	if a.err != nil {
		return nil, a.err
	}
	return a.list.DeepCopy(), nil
}

func runtimeDeepCopy(m map[string]any) map[string]any {
	return (&unstructured.Unstructured{Object: m}).DeepCopy().Object
}

func (l *lookupClient) Create(context.Context, *unstructured.Unstructured, metav1.CreateOptions, ...string) (*unstructured.Unstructured, error) {
	return nil, errReadOnly
}

func (l *lookupClient) Update(context.Context, *unstructured.Unstructured, metav1.UpdateOptions, ...string) (*unstructured.Unstructured, error) {
	return nil, errReadOnly
}

func (l *lookupClient) UpdateStatus(context.Context, *unstructured.Unstructured, metav1.UpdateOptions) (*unstructured.Unstructured, error) {
	return nil, errReadOnly
}

func (l *lookupClient) Delete(context.Context, string, metav1.DeleteOptions, ...string) error {
	return errReadOnly
}

func (l *lookupClient) DeleteCollection(context.Context, metav1.DeleteOptions, metav1.ListOptions) error {
	return errReadOnly
}

func (l *lookupClient) Watch(context.Context, metav1.ListOptions) (watch.Interface, error) {
	return nil, errReadOnly
}

func (l *lookupClient) Patch(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (*unstructured.Unstructured, error) {
	return nil, errReadOnly
}

func (l *lookupClient) Apply(context.Context, string, *unstructured.Unstructured, metav1.ApplyOptions, ...string) (*unstructured.Unstructured, error) {
	return nil, errReadOnly
}

func (l *lookupClient) ApplyStatus(context.Context, string, *unstructured.Unstructured, metav1.ApplyOptions) (*unstructured.Unstructured, error) {
	return nil, errReadOnly
}
