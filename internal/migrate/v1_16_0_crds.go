package migrate

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opencsgs/helm-csghub/internal/crds"
	"github.com/opencsgs/helm-csghub/internal/parallel"
)

// v1.16.0 brought the first crds/ folders (Envoy Gateway and the Gateway API,
// vendored by gateway-helm). Helm installs crds/ only on `helm install`, never
// on upgrade, so the guide runs crds_install.sh; and the CRDs keep moving
// (gateway-helm 1.6.3 -> 1.6.7 -> 1.7.5) with Helm never updating them. So
// this step runs on EVERY upgrade to 1.16.0 or later (Recurring): it applies
// exactly the CRDs Helm would install for the target chart and values (see
// crds.Collect: enabled subcharts only, one copy per name), server-side with
// the plugin's field manager, and waits until each is Established. A CRD on the
// cluster that is newer than the chart's is left alone and reported; an update
// that would drop a version still in status.storedVersions is refused.
type envoyGatewayCRDs struct{}

func init() { Register(envoyGatewayCRDs{}) }

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func (envoyGatewayCRDs) Version() *semver.Version { return MustVersion("1.16.0") }
func (envoyGatewayCRDs) Name() string             { return "envoy-gateway-crds" }
func (envoyGatewayCRDs) EveryUpgrade()            {}

// Permissions: CRDs are applied server-side (cluster-scoped).
func (envoyGatewayCRDs) Permissions(*Context) []Permission {
	return []Permission{{Verb: "patch", Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"},
		{Verb: "list", Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"}}
}

func (m envoyGatewayCRDs) Describe(c *Context) Description {
	d := Description{Reason: "Helm installs CRDs only on install, never on upgrade (from 1.16.0 Envoy Gateway and the Gateway API come as CRDs): " +
		"on every upgrade apply the CRDs Helm would install for the target chart and values (crds/ of the chart and of its enabled subcharts, " +
		"one copy per name), server-side with field manager " + FieldManager + ", and wait until Established; a newer CRD on the cluster is left alone"}
	set, err := c.targetCRDs()
	if err != nil {
		d.Touches = []string{"error: " + err.Error()}
		return d
	}
	for _, crd := range set.CRDs {
		t := "CustomResourceDefinition " + crd.Name + " (from " + crd.Source()
		if crd.Choice != "" {
			t += "; " + crd.Choice
		}
		d.Touches = append(d.Touches, t+")")
	}
	for _, s := range set.Skipped {
		d.Touches = append(d.Touches, "not applied, subchart disabled: "+s)
	}
	return d
}

// targetCRDs is the CRD set of the target chart for the merged values.
func (c *Context) targetCRDs() (*crds.Set, error) {
	if c.CRDs != nil {
		return c.CRDs()
	}
	if c.TargetChart == nil {
		return nil, fmt.Errorf("no target chart")
	}
	return crds.Collect(c.TargetChart, c.Values)
}

// crdPlan is what the step does with one CRD.
type crdPlan struct {
	crd    *crds.CRD
	live   *unstructured.Unstructured // nil: missing
	action string                     // create, update, unchanged, keep (newer on the cluster)
	detail string
	force  bool // take fields over from their managers (--force-conflicts, or only Helm wrote them)
}

// examine compares the target's CRDs with the cluster's, read with ONE list
// call. With confirm (Check, for the plan), a CRD that looks different is
// confirmed with a server-side dry run (which sees the server's defaults and
// field ownership); Apply does not need that (its apply's result tells) nor
// does Preflight (it looks for refusals only).
func (m envoyGatewayCRDs) examine(ctx context.Context, c *Context, confirm bool) (*crds.Set, []crdPlan, error) {
	set, err := c.targetCRDs()
	if err != nil {
		return nil, nil, err
	}
	if len(set.CRDs) == 0 {
		return set, nil, nil
	}
	live, err := listCRDs(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	var out []crdPlan
	var refused []string
	for _, crd := range set.CRDs {
		l := live[crd.Name]
		p := crdPlan{crd: crd, live: l, force: c.ForceConflicts || writtenByHelm(l)}
		switch {
		case l == nil:
			p.action, p.detail = "create", crds.Describe(crd.Obj)
		case crds.Compare(l, crd.Obj).Order == crds.Newer:
			p.action = "keep"
			p.detail = fmt.Sprintf("newer on the cluster than the target chart's (%s): left alone, never downgraded", crds.Compare(l, crd.Obj).Reason)
		case crds.Current(l, crd.Obj) && established(l):
			p.action = "unchanged"
		default:
			if dropped := crds.StoredVersionsDropped(l, crd.Obj); len(dropped) > 0 {
				refused = append(refused, fmt.Sprintf("CustomResourceDefinition %s: the target chart's copy (from %s, versions %s) drops version(s) %s that the cluster still lists in status.storedVersions, so objects may be stored in them",
					crd.Name, crd.Source(), strings.Join(crds.VersionNames(crd.Obj), ","), strings.Join(dropped, ",")))
				continue
			}
			p.action, p.detail = "update", crds.Describe(crd.Obj)
			if !confirm || !established(l) {
				break
			}
			dry, err := applyCRD(ctx, c, crd.Obj, p.force, true)
			switch {
			case apierrors.IsConflict(err):
				p.detail += "; field conflict: " + apiMessage(err)
			case err != nil:
				return nil, nil, fmt.Errorf("CustomResourceDefinition %s: server-side dry run: %w", crd.Name, err)
			case sameCRD(l, dry):
				p.action, p.detail = "unchanged", ""
			}
		}
		out = append(out, p)
	}
	if len(refused) > 0 {
		return nil, nil, fmt.Errorf("refusing to update %s; migrate the stored objects to a version the chart keeps and remove the old one from status.storedVersions first, or keep the cluster's CRD with a chart that still defines it",
			strings.Join(refused, "; "))
	}
	return set, out, nil
}

// listCRDs reads every CRD of the cluster with one request.
func listCRDs(ctx context.Context, c *Context) (map[string]*unstructured.Unstructured, error) {
	list, err := c.Dynamic.Resource(crdGVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing CustomResourceDefinitions: %w", err)
	}
	out := make(map[string]*unstructured.Unstructured, len(list.Items))
	for i := range list.Items {
		out[list.Items[i].GetName()] = &list.Items[i]
	}
	return out, nil
}

// Preflight refuses, before anything changes, a target whose CRDs cannot be
// applied (a stored version dropped, an unreadable crds/ file).
func (m envoyGatewayCRDs) Preflight(ctx context.Context, c *Context) error {
	_, _, err := m.examine(ctx, c, false)
	return err
}

// Check: applied when every CRD exists, is Established and an apply would
// change nothing; CRDs newer on the cluster count as applied (left alone).
//
// Inside Run (Check then Apply at once) a CRD that looks different is not
// confirmed with a server-side dry run: Apply's own apply tells whether it
// changed anything, and a dry run of a CRD costs the API server as much as
// the apply. The examination is kept for that Apply (one list, not two).
func (m envoyGatewayCRDs) Check(ctx context.Context, c *Context) (bool, string, error) {
	set, plans, err := m.examine(ctx, c, !c.running)
	if err != nil {
		return false, "", err
	}
	if c.running {
		c.crdExam = &crdExamination{set: set, plans: plans}
	}
	if len(set.CRDs) == 0 {
		return true, "the target chart installs no CRDs with these values", nil
	}
	var create, update int
	var keep []string
	for _, p := range plans {
		switch p.action {
		case "create":
			create++
		case "update":
			update++
		case "keep":
			keep = append(keep, p.crd.Name)
			c.Note("CustomResourceDefinition %s: %s", p.crd.Name, p.detail)
		}
	}
	newer := ""
	if len(keep) > 0 {
		newer = fmt.Sprintf("; %d newer on the cluster, left alone: %s", len(keep), strings.Join(keep, ", "))
	}
	if create == 0 && update == 0 {
		return true, fmt.Sprintf("all %d CRDs present and current%s", len(set.CRDs), newer), nil
	}
	return false, fmt.Sprintf("%d to create, %d to update, %d current%s", create, update, len(plans)-create-update-len(keep), newer), nil
}

// crdExamination is Check's result kept for the Apply that follows in Run.
type crdExamination struct {
	set   *crds.Set
	plans []crdPlan
}

// Apply creates the missing CRDs and applies the outdated ones, at most
// c.concurrency() at once. A CRD the cluster has as the chart's is not sent
// (unchanged), one newer on the cluster is left alone (keep). A missing CRD is
// created (POST with the plugin's field manager, as `helm install` creates
// crds/): for a new object that is what an apply would store, at about half
// the API server's cost of a server-side apply of a schema of this size. An
// existing one is applied server-side.
func (m envoyGatewayCRDs) Apply(ctx context.Context, c *Context) ([]Change, error) {
	var plans []crdPlan
	if ex := c.crdExam; ex != nil {
		plans, c.crdExam = ex.plans, nil
	} else {
		var err error
		if _, plans, err = m.examine(ctx, c, false); err != nil {
			return nil, err
		}
	}
	changes := make([]*Change, len(plans))
	var send []int
	for i, p := range plans {
		switch p.action {
		case "unchanged":
			changes[i] = &Change{Action: "unchanged", Kind: "CustomResourceDefinition", Name: p.crd.Name}
		case "keep":
			changes[i] = &Change{Action: "keep", Kind: "CustomResourceDefinition", Name: p.crd.Name, Detail: p.detail}
		default:
			send = append(send, i)
		}
	}
	var mu sync.Mutex
	var wait []*unstructured.Unstructured
	err := parallel.ForEach(ctx, c.concurrency(), send, func(ctx context.Context, i int) error {
		p := plans[i]
		name := p.crd.Name
		var res *unstructured.Unstructured
		var err error
		if p.live == nil {
			res, err = createCRD(ctx, c, p.crd.Obj, c.DryRun)
			if apierrors.IsAlreadyExists(err) { // created meanwhile by someone else: apply over it
				res, err = applyCRD(ctx, c, p.crd.Obj, c.ForceConflicts, c.DryRun)
			}
		} else {
			res, err = applyCRD(ctx, c, p.crd.Obj, p.force, c.DryRun)
		}
		if apierrors.IsConflict(err) && c.DryRun {
			changes[i] = &Change{Action: "conflict", Kind: "CustomResourceDefinition", Name: name,
				Detail: apiMessage(err) + "; the real run needs --force-conflicts"}
			return nil
		}
		if apierrors.IsConflict(err) {
			return fmt.Errorf("CustomResourceDefinition %s: fields are owned by another field manager (%s); rerun with --force-conflicts to take them over",
				name, apiMessage(err))
		}
		if err != nil {
			return fmt.Errorf("applying CustomResourceDefinition %s: %w", name, err)
		}
		if p.live != nil && established(p.live) && sameCRD(p.live, res) {
			// looked different (e.g. a default not known here) but the apply changed nothing
			changes[i] = &Change{Action: "unchanged", Kind: "CustomResourceDefinition", Name: name}
			return nil
		}
		detail := p.detail + ", from " + p.crd.Source()
		if c.DryRun {
			detail += ", dry run"
		}
		changes[i] = &Change{Action: p.action, Kind: "CustomResourceDefinition", Name: name, Detail: detail}
		if !established(res) {
			mu.Lock()
			wait = append(wait, res)
			mu.Unlock()
		}
		return nil
	})
	var out []Change
	for _, ch := range changes {
		if ch != nil {
			out = append(out, *ch)
		}
	}
	if err != nil || c.DryRun {
		return out, err
	}
	return out, waitEstablished(ctx, c, wait)
}

// writtenByHelm says whether only Helm wrote the CRD's spec and metadata
// (field managers named helm*: `helm install` from crds/, this plugin): the
// plugin updates those on Helm's behalf without --force-conflicts. A CRD
// another tool manages needs --force-conflicts.
func writtenByHelm(live *unstructured.Unstructured) bool {
	if live == nil {
		return false
	}
	for _, mf := range live.GetManagedFields() {
		if mf.Subresource == "status" {
			continue
		}
		if !strings.HasPrefix(mf.Manager, "helm") {
			return false
		}
	}
	return true
}

// applyCRD server-side applies crd with the plugin's field manager.
func applyCRD(ctx context.Context, c *Context, crd *unstructured.Unstructured, force, dryRun bool) (*unstructured.Unstructured, error) {
	obj := crd.DeepCopy()
	obj.SetResourceVersion("")
	data, err := json.Marshal(obj.Object)
	if err != nil {
		return nil, err
	}
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: &force}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	return c.Dynamic.Resource(crdGVR).Patch(ctx, crd.GetName(), types.ApplyPatchType, data, opts)
}

// createCRD creates crd with the plugin's field manager.
func createCRD(ctx context.Context, c *Context, crd *unstructured.Unstructured, dryRun bool) (*unstructured.Unstructured, error) {
	obj := crd.DeepCopy()
	obj.SetResourceVersion("")
	opts := metav1.CreateOptions{FieldManager: FieldManager}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	return c.Dynamic.Resource(crdGVR).Create(ctx, obj, opts)
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

// waitEstablished waits until each CRD, as the create or apply answered it,
// is Established: one watch per CRD (field selector on its name) from the
// answer's resourceVersion, so only that CRD's own updates are sent. Polling
// instead (a list of every CRD, or GETs of each pending one) transfers the
// megabytes of schema again on each round and competes for the API server's
// CPU with the very work it waits for. A watch that cannot start or ends
// early falls back to a GET every second.
func waitEstablished(ctx context.Context, c *Context, sent []*unstructured.Unstructured) error {
	if len(sent) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var pending []string
	_ = parallel.ForEach(ctx, len(sent), sent, func(ctx context.Context, crd *unstructured.Unstructured) error {
		if !waitOneEstablished(ctx, c, crd) {
			mu.Lock()
			pending = append(pending, crd.GetName())
			mu.Unlock()
		}
		return nil
	})
	if len(pending) > 0 {
		sort.Strings(pending)
		return fmt.Errorf("CustomResourceDefinition(s) %s not Established within 60s", strings.Join(pending, ", "))
	}
	return nil
}

func waitOneEstablished(ctx context.Context, c *Context, crd *unstructured.Unstructured) bool {
	ri := c.Dynamic.Resource(crdGVR)
	w, err := ri.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + crd.GetName(), ResourceVersion: crd.GetResourceVersion()})
	if err == nil {
		defer w.Stop()
		for ev := range w.ResultChan() {
			if o, ok := ev.Object.(*unstructured.Unstructured); ok && o.GetName() == crd.GetName() && established(o) {
				return true
			}
		}
	}
	for ctx.Err() == nil {
		if l, err := ri.Get(ctx, crd.GetName(), metav1.GetOptions{}); err == nil && established(l) {
			return true
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return false
}

func apiMessage(err error) string {
	if st, ok := err.(apierrors.APIStatus); ok {
		return st.Status().Message
	}
	return err.Error()
}
