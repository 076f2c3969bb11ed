package livediff

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Helm's ownership metadata: an object without it (or with another release's)
// makes `helm upgrade` fail with "exists and cannot be imported into the
// current release".
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ReleaseNameAnn = "meta.helm.sh/release-name"
	ReleaseNSAnn   = "meta.helm.sh/release-namespace"
)

// Ownership classifies the target objects that already exist.
type Ownership struct {
	// Owned is how many exist with this release's ownership.
	Owned int `json:"owned"`
	// Adopt are objects CSGHub itself created outside Helm (its Jobs,
	// operators and hooks): the takeover step gives them this release's
	// ownership.
	Adopt []Key `json:"-"`
	// Foreign are objects without this release's ownership that CSGHub did
	// not create, or that another release owns: refused.
	Foreign []Blocker `json:"foreign,omitempty"`
}

// AdoptNames lists Adopt for printing.
func (o *Ownership) AdoptNames() []string {
	out := make([]string, len(o.Adopt))
	for i, k := range o.Adopt {
		out[i] = k.String()
	}
	return out
}

// OwnedBy says whether obj carries this release's Helm ownership, and names
// the other release that owns it, if any.
func OwnedBy(obj *unstructured.Unstructured, release, namespace string) (ours bool, foreign string) {
	ann := obj.GetAnnotations()
	rn, rns := ann[ReleaseNameAnn], ann[ReleaseNSAnn]
	if rn != "" && (rn != release || (rns != "" && rns != namespace)) {
		return false, rns + "/" + rn
	}
	return obj.GetLabels()[ManagedByLabel] == "Helm" && rn == release && rns == namespace, ""
}

// csghubGroups are the API groups of what CSGHub's own Jobs and operators
// create outside Helm (1.16's kubectl Job, 1.17's hooks, the Knative
// operator): Knative Serving, Argo Workflows, LeaderWorkerSet.
var csghubGroups = []string{
	"serving.knative.dev", "operator.knative.dev", "networking.internal.knative.dev",
	"autoscaling.internal.knative.dev", "caching.internal.knative.dev",
	"argoproj.io", "leaderworkerset.x-k8s.io",
}

// KnativeNamespace is where CSGHub runs Knative Serving.
const KnativeNamespace = "knative-serving"

// CSGHubMade says whether an object of this key is one CSGHub creates outside
// Helm, so the takeover may adopt it: objects of the Knative/Argo/LWS API
// groups and their CRDs, the knative-serving Namespace and what is in it, and
// the LWS webhook configurations (deleted, the chart recreates them).
func CSGHubMade(k Key) bool {
	for _, g := range csghubGroups {
		if k.Group == g || (k.Kind == "CustomResourceDefinition" && strings.HasSuffix(k.Name, "."+g)) {
			return true
		}
	}
	switch {
	case k.Kind == "Namespace" && k.Name == KnativeNamespace:
		return true
	case k.Namespace == KnativeNamespace:
		return true
	case (k.Kind == "MutatingWebhookConfiguration" || k.Kind == "ValidatingWebhookConfiguration") && strings.Contains(k.Name, "lws"):
		return true
	}
	return false
}

// FindOwnership classifies each target object that exists live.
func FindOwnership(s *Snapshot, ns, release string, target []*unstructured.Unstructured) *Ownership {
	o := &Ownership{}
	seen := map[Key]bool{}
	for _, t := range target {
		k := s.key(t, ns)
		live := s.objs[k]
		if live == nil || seen[k] {
			continue
		}
		seen[k] = true
		ours, foreign := OwnedBy(live, release, ns)
		switch {
		case ours:
			o.Owned++
		case foreign != "":
			o.Foreign = append(o.Foreign, Blocker{Key: k, Object: k.String(), Reason: "owned by Helm release " + foreign,
				Fix: "uninstall that release or remove the object from it; objects of another release are never taken"})
		case CSGHubMade(k):
			o.Adopt = append(o.Adopt, k)
		default:
			o.Foreign = append(o.Foreign, Blocker{Key: k, Object: k.String(), Reason: "exists without this release's Helm ownership (" + Owner(live) + ")",
				Fix: fmt.Sprintf("delete it if it is a leftover, or give it to the release by hand (label %s=Helm, annotations %s=%s, %s=%s)",
					ManagedByLabel, ReleaseNameAnn, release, ReleaseNSAnn, ns)})
		}
	}
	sort.Slice(o.Adopt, func(i, j int) bool { return o.Adopt[i].String() < o.Adopt[j].String() })
	sort.Slice(o.Foreign, func(i, j int) bool { return o.Foreign[i].Object < o.Foreign[j].Object })
	return o
}

// Owner describes who made or manages obj, from what it records.
func Owner(obj *unstructured.Unstructured) string {
	if v := obj.GetLabels()[ManagedByLabel]; v != "" {
		return "managed-by " + v
	}
	if refs := obj.GetOwnerReferences(); len(refs) > 0 {
		return "owned by " + refs[0].Kind + " " + refs[0].Name
	}
	var managers []string
	seen := map[string]bool{}
	for _, f := range obj.GetManagedFields() {
		if f.Manager != "" && !seen[f.Manager] {
			seen[f.Manager] = true
			managers = append(managers, f.Manager)
		}
	}
	if len(managers) > 0 {
		return "written by " + strings.Join(managers, ", ")
	}
	return "no owner recorded"
}

// Error is the refusal for foreign objects ("" when there are none).
func (o *Ownership) Error() string {
	if len(o.Foreign) == 0 {
		return ""
	}
	parts := make([]string, len(o.Foreign))
	for i, f := range o.Foreign {
		parts[i] = f.Object + " " + f.Reason
	}
	return "the target chart renders objects that already exist and that Helm cannot take: " + strings.Join(parts, "; ") +
		" (" + o.Foreign[0].Fix + ")"
}
