package testenv

import (
	"context"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var watchedCluster = []schema.GroupVersionResource{
	{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"},
	{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"},
	{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"},
	{Version: "v1", Resource: "namespaces"},
}

var watchedNamespaced = []schema.GroupVersionResource{
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Group: "apps", Version: "v1", Resource: "statefulsets"},
	{Version: "v1", Resource: "services"},
	{Version: "v1", Resource: "configmaps"},
	{Version: "v1", Resource: "secrets"},
	{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"},
}

// ResourceVersions records the resourceVersion of the objects a change could
// touch: CRDs, webhook configurations, namespaces, and the workloads, services,
// config and policies of the given namespaces. Equal maps: nothing changed.
func (e *Env) ResourceVersions(namespaces ...string) map[string]string {
	e.T.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for _, gvr := range watchedCluster {
		// metadata only: a resourceVersion is all it compares, and the charts' CRDs are megabytes
		list, err := e.C.Metadata.Resource(gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			e.T.Fatalf("list %s: %v", gvr.Resource, err)
		}
		for _, o := range list.Items {
			out[gvr.Resource+"/"+o.GetName()] = o.GetResourceVersion()
		}
	}
	for _, ns := range namespaces {
		for _, gvr := range watchedNamespaced {
			list, err := e.C.Metadata.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				e.T.Fatalf("list %s in %s: %v", gvr.Resource, ns, err)
			}
			for _, o := range list.Items {
				out[gvr.Resource+"/"+ns+"/"+o.GetName()] = o.GetResourceVersion()
			}
		}
	}
	return out
}

// RequireUnchanged fails when any recorded object changed, appeared or vanished.
func RequireUnchanged(t interface {
	Helper()
	Fatalf(string, ...any)
}, before, after map[string]string, what string) {
	t.Helper()
	var diffs []string
	for k, v := range before {
		if w, ok := after[k]; !ok {
			diffs = append(diffs, k+" deleted")
		} else if w != v {
			diffs = append(diffs, fmt.Sprintf("%s changed (%s -> %s)", k, v, w))
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			diffs = append(diffs, k+" created")
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("%s changed objects:\n  %s", what, strings.Join(diffs, "\n  "))
	}
}
