package livediff

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

var (
	jobGVR = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
	stsGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}
)

// Guard runs before a Helm upgrade or rollback: it finds what Helm cannot
// patch and makes room for what may be recreated.
type Guard struct {
	Clients   Clients
	Namespace string
	// RecreateStatefulSets deletes StatefulSets whose immutable fields change
	// with --cascade=orphan (pods and volumes stay; Helm recreates the object
	// and it adopts them). Without it such a change is refused.
	RecreateStatefulSets bool
	// DeleteRunningJobs deletes changed Jobs that still run instead of
	// refusing (the automatic rollback of a failed upgrade: they are the
	// failed version's Jobs).
	DeleteRunningJobs bool
	Log               func(format string, args ...any)
}

// Check compares the target's Jobs and StatefulSets with the live ones
// (one list per kind and namespace) and returns what is in the way; the error
// names a blocker this guard may not remove. Nothing is changed.
func (g *Guard) Check(ctx context.Context, target, previous []*unstructured.Unstructured) (*Immutable, error) {
	var sel []*unstructured.Unstructured
	for _, o := range target {
		if k := KeyOf(o); (k.Group == "batch" && k.Kind == "Job") || (k.Group == "apps" && k.Kind == "StatefulSet") {
			sel = append(sel, o)
		}
	}
	snap, err := Take(ctx, g.Clients, g.Namespace, sel)
	if err != nil {
		return nil, err
	}
	im := FindImmutable(snap, g.Namespace, sel, previous)
	return im, g.Refusal(im)
}

// MakeRoom is Check then Clear: it deletes what is in the way and this guard
// may remove, and returns what it deleted; the error names a blocker it may
// not remove (then nothing is deleted).
func (g *Guard) MakeRoom(ctx context.Context, target, previous []*unstructured.Unstructured) ([]string, error) {
	im, err := g.Check(ctx, target, previous)
	if err != nil {
		return nil, err
	}
	return g.Clear(ctx, im)
}

// Refusal is the error for the blockers this guard may not remove (nil: none).
func (g *Guard) Refusal(im *Immutable) error {
	var parts []string
	if !g.DeleteRunningJobs {
		for _, b := range im.RunningJobs {
			parts = append(parts, fmt.Sprintf("%s: %s; %s", b.Object, b.Reason, b.Fix))
		}
	}
	if !g.RecreateStatefulSets {
		for _, b := range im.StatefulSets {
			parts = append(parts, fmt.Sprintf("%s: %s; %s", b.Object, b.Reason, b.Fix))
		}
	}
	if len(parts) == 0 {
		return nil
	}
	return fmt.Errorf("Helm cannot patch %s", strings.Join(parts, "; "))
}

// Clear deletes the finished Jobs whose template changes (with their pods),
// the running ones when DeleteRunningJobs, and orphan-deletes the StatefulSets
// when RecreateStatefulSets; it waits until they are gone, so the Helm
// operation can create them. It returns what it deleted.
func (g *Guard) Clear(ctx context.Context, im *Immutable) ([]string, error) {
	type del struct {
		gvr    schema.GroupVersionResource
		key    Key
		policy metav1.DeletionPropagation
	}
	var dels []del
	for _, k := range im.DeleteJobs {
		dels = append(dels, del{jobGVR, k, metav1.DeletePropagationBackground})
	}
	if g.DeleteRunningJobs {
		for _, b := range im.RunningJobs {
			dels = append(dels, del{jobGVR, b.Key, metav1.DeletePropagationBackground})
		}
	}
	if g.RecreateStatefulSets {
		for _, b := range im.StatefulSets {
			dels = append(dels, del{stsGVR, b.Key, metav1.DeletePropagationOrphan})
		}
	}
	var done []string
	for _, d := range dels {
		ri := g.Clients.Dynamic.Resource(d.gvr).Namespace(d.key.Namespace)
		p := d.policy
		err := ri.Delete(ctx, d.key.Name, metav1.DeleteOptions{PropagationPolicy: &p})
		if err != nil && !apierrors.IsNotFound(err) {
			return done, fmt.Errorf("deleting %s: %w", d.key, err)
		}
		how := "deleted with its pods (Helm recreates it)"
		if p == metav1.DeletePropagationOrphan {
			how = "deleted with --cascade=orphan: pods and volumes kept, Helm recreates it"
		}
		if g.Log != nil {
			g.Log("  %s %s", d.key, how)
		}
		done = append(done, d.key.String()+" "+how)
	}
	// The object must be gone (orphaning takes the garbage collector a moment)
	// before Helm creates it again.
	for _, d := range dels {
		ri := g.Clients.Dynamic.Resource(d.gvr).Namespace(d.key.Namespace)
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := ri.Get(ctx, d.key.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			return false, err
		})
		if err != nil {
			return done, fmt.Errorf("waiting for %s to be deleted: %w", d.key, err)
		}
	}
	return done, nil
}

// NewClients builds the clients a Guard or a Snapshot needs from a REST
// configuration and a clientset (whose discovery feeds the REST mapper).
func NewClients(cfg *rest.Config, cs kubernetes.Interface) (Clients, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return Clients{}, err
	}
	md, err := metadata.NewForConfig(cfg)
	if err != nil {
		return Clients{}, err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cs.Discovery()))
	return Clients{Dynamic: dyn, Metadata: md, Mapper: mapper}, nil
}
