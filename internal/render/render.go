// Package render renders a chart the way an upgrade would, without touching the
// cluster, and splits the manifest into objects. The migrations compare these
// objects with what exists to decide what to adopt.
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
	// Discovery supplies the server's version and API groups (capabilities).
	Discovery discovery.DiscoveryInterface
}

// Render returns the objects of the chart's templates: what Helm will own.
// CRDs in crds/ and hook resources (which Helm does not own the same way and
// never checks for ownership) are not included.
func Render(o Options) ([]*unstructured.Unstructured, error) {
	manifest, err := Manifest(o)
	if err != nil {
		return nil, err
	}
	objs, err := SplitManifest(manifest)
	if err != nil {
		return nil, err
	}
	for _, obj := range objs {
		if obj.GetNamespace() == "" && namespaced(obj) {
			obj.SetNamespace(o.Namespace)
		}
	}
	return objs, nil
}

// Manifest renders the chart's templates without hooks, client-side (no
// object is checked against the cluster, so kinds whose CRDs are not
// installed yet render too).
func Manifest(o Options) (string, error) {
	inst := action.NewInstall(&action.Configuration{})
	inst.DryRun = true
	inst.ClientOnly = true
	inst.IsUpgrade = true
	inst.Replace = true
	inst.ReleaseName = o.Release
	inst.Namespace = o.Namespace
	inst.DisableHooks = false
	if o.Discovery != nil {
		sv, err := o.Discovery.ServerVersion()
		if err != nil {
			return "", fmt.Errorf("server version: %w", err)
		}
		kv, err := chartutil.ParseKubeVersion(sv.GitVersion)
		if err != nil {
			return "", err
		}
		inst.KubeVersion = kv
		groups, _, err := o.Discovery.ServerGroupsAndResources()
		if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
			return "", fmt.Errorf("server API groups: %w", err)
		}
		for _, g := range groups {
			for _, v := range g.Versions {
				inst.APIVersions = append(inst.APIVersions, v.GroupVersion)
			}
		}
	}
	// Install.Run processes the dependencies in the chart it is given, removing
	// disabled subcharts: render a copy so the caller's chart stays whole.
	rel, err := inst.Run(CloneChart(o.Chart), o.Values)
	if err != nil {
		return "", fmt.Errorf("rendering %s-%s: %w", o.Chart.Name(), o.Chart.Metadata.Version, err)
	}
	return rel.Manifest, nil
}

// namespaced guesses scope for objects without a namespace: cluster-scoped kinds
// the chart may render are listed; the caller's RESTMapper has the final word.
func namespaced(obj *unstructured.Unstructured) bool {
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
