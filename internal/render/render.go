// Package render renders a chart the way `helm upgrade` will, and splits the
// manifest into objects. The plan, the live-objects check, the takeover
// migrations and --dry-run compare these objects with what exists, so the
// render must take the branches Helm's upgrade takes: `lookup` answered by
// the cluster (Cluster), .Capabilities from the server, .Release.IsUpgrade
// true and .Release.Revision the next one. Unlike Helm's upgrade, nothing
// rendered is validated against the server, so kinds whose CRDs a migration
// installs later still render.
package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
)

// Options for Render.
type Options struct {
	Chart     *chart.Chart
	Values    map[string]any
	Release   string
	Namespace string
	// Revision is .Release.Revision: for an upgrade, the last revision + 1
	// (0 renders as 1).
	Revision int
	// Discovery supplies the server's version and API groups (capabilities).
	Discovery discovery.DiscoveryInterface
	// Cluster answers `lookup` (read-only). Nil renders client-side, as
	// `helm template`: every lookup finds nothing.
	Cluster *Cluster
}

// Result is one render of the chart.
type Result struct {
	// Manifest is the ordinary objects, as Helm stores them in the release
	// (no hooks, no crds/ files, no NOTES.txt).
	Manifest string
	// Objects is Manifest decoded, namespaced objects given the release's
	// namespace where the template left it out.
	Objects []*unstructured.Unstructured
	// Hooks are the hook objects Helm runs but never owns.
	Hooks []*release.Hook
	// Lookups is how many lookup calls the templates made; Requests how many
	// API requests answered them (0 and 0 client-side).
	Lookups, Requests int
}

// Render renders the chart's templates as Helm's upgrade does (see the
// package comment).
func Render(o Options) (*Result, error) {
	// ProcessDependencies removes disabled subcharts from the chart it gets:
	// render a copy so the caller's chart stays whole.
	ch := CloneChart(o.Chart)
	fail := func(err error) (*Result, error) {
		return nil, fmt.Errorf("rendering %s-%s: %w", o.Chart.Name(), o.Chart.Metadata.Version, err)
	}
	vals := o.Values
	if vals == nil {
		vals = map[string]any{}
	}
	if err := chartutil.ProcessDependenciesWithMerge(ch, vals); err != nil {
		return fail(err)
	}
	caps, err := capabilities(o.Discovery)
	if err != nil {
		return fail(err)
	}
	if kv := ch.Metadata.KubeVersion; kv != "" && !chartutil.IsCompatibleRange(kv, caps.KubeVersion.String()) {
		return fail(fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", kv, caps.KubeVersion.String()))
	}
	rev := o.Revision
	if rev < 1 {
		rev = 1
	}
	top, err := chartutil.ToRenderValues(ch, vals,
		chartutil.ReleaseOptions{Name: o.Release, Namespace: o.Namespace, Revision: rev, IsUpgrade: true}, caps)
	if err != nil {
		return fail(err)
	}
	var files map[string]string
	if o.Cluster != nil {
		files, err = engine.RenderWithClientProvider(ch, top, o.Cluster)
	} else {
		files, err = engine.Render(ch, top)
	}
	if err != nil {
		return fail(err)
	}
	for name := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return fail(err)
	}
	var b strings.Builder
	for _, m := range manifests {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.Name, m.Content)
	}
	res := &Result{Manifest: b.String(), Hooks: hooks}
	if res.Objects, err = SplitManifest(res.Manifest); err != nil {
		return fail(err)
	}
	for _, obj := range res.Objects {
		if obj.GetNamespace() == "" && Namespaced(obj) {
			obj.SetNamespace(o.Namespace)
		}
	}
	if o.Cluster != nil {
		res.Lookups, res.Requests = o.Cluster.Counts()
	}
	return res, nil
}

// capabilities are Helm's for the server behind disc (its version and every
// group/version and group/version/Kind it serves), or Helm's defaults
// without one.
func capabilities(disc discovery.DiscoveryInterface) (*chartutil.Capabilities, error) {
	caps := chartutil.DefaultCapabilities.Copy()
	if disc == nil {
		return caps, nil
	}
	sv, err := disc.ServerVersion()
	if err != nil {
		return nil, fmt.Errorf("server version: %w", err)
	}
	caps.KubeVersion = chartutil.KubeVersion{Version: sv.GitVersion, Major: sv.Major, Minor: sv.Minor}
	if caps.APIVersions, err = action.GetVersionSet(disc); err != nil {
		return nil, fmt.Errorf("server API groups: %w", err)
	}
	return caps, nil
}

// Namespaced guesses scope for objects without a namespace: cluster-scoped
// kinds the chart may render are listed; the caller's RESTMapper has the
// final word. A release's stored manifest is defaulted with it as the render
// is, so the two compare object by object.
func Namespaced(obj *unstructured.Unstructured) bool {
	switch obj.GetKind() {
	case "Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
		"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "PriorityClass",
		"StorageClass", "PersistentVolume", "APIService", "IngressClass", "GatewayClass":
		return false
	}
	return true
}

// SplitManifest decodes a multi-document YAML stream into objects (empty
// documents skipped).
func SplitManifest(manifest string) ([]*unstructured.Unstructured, error) {
	dec := yaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decoding manifest: %w", err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// DecodeFile decodes one file's documents.
func DecodeFile(data []byte) ([]*unstructured.Unstructured, error) {
	return SplitManifest(string(bytes.TrimSpace(data)))
}

// CloneChart copies a chart tree deep enough for chartutil.ProcessDependencies
// (which Helm's install, upgrade and template run on the chart they get) to
// rewrite it without touching ch: the dependency lists, metadata and values
// are copied, files and templates shared.
func CloneChart(ch *chart.Chart) *chart.Chart {
	out := *ch
	if ch.Metadata != nil {
		md := *ch.Metadata
		md.Dependencies = nil
		for _, d := range ch.Metadata.Dependencies {
			if d == nil {
				continue
			}
			dd := *d
			md.Dependencies = append(md.Dependencies, &dd)
		}
		out.Metadata = &md
	}
	var deps []*chart.Chart
	for _, d := range ch.Dependencies() {
		deps = append(deps, CloneChart(d))
	}
	out.SetDependencies(deps...)
	return &out
}
