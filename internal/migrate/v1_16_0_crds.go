package migrate

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/opencsgs/helm-csghub/internal/render"
)

// v1.16.0: Envoy Gateway replaces ingress-nginx. Helm installs the crds/ folder
// only on install, never on upgrade, so the guide runs crds_install.sh. Here the
// CRDs come from the very chart about to be installed (its crds/ folder and
// every subchart's), applied server-side with the plugin's field manager.
type envoyGatewayCRDs struct{}

func init() { Register(envoyGatewayCRDs{}) }

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func (envoyGatewayCRDs) Version() *semver.Version { return MustVersion("1.16.0") }
func (envoyGatewayCRDs) Name() string             { return "envoy-gateway-crds" }

func (m envoyGatewayCRDs) Describe(c *Context) Description {
	d := Description{Reason: "Envoy Gateway replaces ingress-nginx from 1.16.0 and Helm installs no CRDs on upgrade: " +
		"apply the CRDs of the target chart's crds/ folders (server-side apply, field manager " + FieldManager + ") and wait until Established"}
	crds, err := targetCRDs(c)
	if err != nil {
		d.Touches = []string{"error: " + err.Error()}
		return d
	}
	for _, crd := range crds {
		d.Touches = append(d.Touches, "CustomResourceDefinition "+crd.GetName())
	}
	return d
}

// targetCRDs decodes every CRD the target chart carries, sorted by name.
func targetCRDs(c *Context) ([]*unstructured.Unstructured, error) {
	if c.TargetChart == nil {
		return nil, fmt.Errorf("no target chart")
	}
	var out []*unstructured.Unstructured
	for _, f := range c.TargetChart.CRDObjects() {
		objs, err := render.DecodeFile(f.File.Data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Filename, err)
		}
		for _, o := range objs {
			if o.GetKind() == "CustomResourceDefinition" {
				out = append(out, o)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out, nil
}

// Check: applied when every CRD exists, is Established and a server-side dry
// run of the apply would change nothing.
func (m envoyGatewayCRDs) Check(ctx context.Context, c *Context) (bool, string, error) {
	crds, err := targetCRDs(c)
	if err != nil {
		return false, "", err
	}
	if len(crds) == 0 {
		return true, "the target chart carries no CRDs", nil
	}
	var missing, outdated []string
	for _, crd := range crds {
		live, err := c.Dynamic.Resource(crdGVR).Get(ctx, crd.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			missing = append(missing, crd.GetName())
			continue
		}
		if err != nil {
			return false, "", err
		}
		dry, err := applyCRD(ctx, c, crd, true)
		if apierrors.IsConflict(err) {
			outdated = append(outdated, crd.GetName()+" (field conflict)")
			continue
		}
		if err != nil {
			return false, "", err
		}
		if !sameCRD(live, dry) || !established(live) {
			outdated = append(outdated, crd.GetName())
		}
	}
	if len(missing) == 0 && len(outdated) == 0 {
		return true, fmt.Sprintf("all %d CRDs present and current", len(crds)), nil
	}
	return false, fmt.Sprintf("%d to create, %d to update", len(missing), len(outdated)), nil
}

func (m envoyGatewayCRDs) Apply(ctx context.Context, c *Context) ([]Change, error) {
	crds, err := targetCRDs(c)
	if err != nil {
		return nil, err
	}
	var changes []Change
	for _, crd := range crds {
		live, err := c.Dynamic.Resource(crdGVR).Get(ctx, crd.GetName(), metav1.GetOptions{})
		exists := err == nil
		if err != nil && !apierrors.IsNotFound(err) {
			return changes, err
		}
		if exists {
			dry, err := applyCRD(ctx, c, crd, true)
			if err == nil && sameCRD(live, dry) {
				changes = append(changes, Change{Action: "unchanged", Kind: "CustomResourceDefinition", Name: crd.GetName()})
				continue
			}
		}
		_, err = applyCRD(ctx, c, crd, c.DryRun)
		if apierrors.IsConflict(err) && c.DryRun {
			changes = append(changes, Change{Action: "conflict", Kind: "CustomResourceDefinition", Name: crd.GetName(),
				Detail: apiMessage(err) + "; the real run needs --force-conflicts"})
			continue
		}
		if apierrors.IsConflict(err) {
			return changes, fmt.Errorf("CustomResourceDefinition %s: fields are owned by another field manager (%s); rerun with --force-conflicts to take them over",
				crd.GetName(), apiMessage(err))
		}
		if err != nil {
			return changes, fmt.Errorf("applying CustomResourceDefinition %s: %w", crd.GetName(), err)
		}
		action := "create"
		if exists {
			action = "update"
		}
		detail := versionsOf(crd)
		if c.DryRun {
			detail += ", dry run"
		}
		changes = append(changes, Change{Action: action, Kind: "CustomResourceDefinition", Name: crd.GetName(), Detail: detail})
	}
	if c.DryRun {
		return changes, nil
	}
	for _, crd := range crds {
		if err := waitEstablished(ctx, c, crd.GetName()); err != nil {
			return changes, err
		}
	}
	return changes, nil
}

// applyCRD server-side applies crd with the plugin's field manager.
func applyCRD(ctx context.Context, c *Context, crd *unstructured.Unstructured, dryRun bool) (*unstructured.Unstructured, error) {
	obj := crd.DeepCopy()
	obj.SetResourceVersion("")
	data, err := json.Marshal(obj.Object)
	if err != nil {
		return nil, err
	}
	force := c.ForceConflicts
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: &force}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	return c.Dynamic.Resource(crdGVR).Patch(ctx, crd.GetName(), types.ApplyPatchType, data, opts)
}

// sameCRD compares what an apply controls: spec, labels and annotations.
func sameCRD(live, applied *unstructured.Unstructured) bool {
	return reflect.DeepEqual(live.Object["spec"], applied.Object["spec"]) &&
		reflect.DeepEqual(live.GetLabels(), applied.GetLabels()) &&
		reflect.DeepEqual(live.GetAnnotations(), applied.GetAnnotations())
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

func waitEstablished(ctx context.Context, c *Context, name string) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		crd, err := c.Dynamic.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return established(crd), nil
	})
	if err != nil {
		return fmt.Errorf("CustomResourceDefinition %s not Established within 60s: %w", name, err)
	}
	return nil
}

func versionsOf(crd *unstructured.Unstructured) string {
	vs, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	var names []string
	for _, v := range vs {
		if m, ok := v.(map[string]any); ok {
			names = append(names, fmt.Sprint(m["name"]))
		}
	}
	return "versions " + strings.Join(names, ",")
}

func apiMessage(err error) string {
	if st, ok := err.(apierrors.APIStatus); ok {
		return st.Status().Message
	}
	return err.Error()
}
