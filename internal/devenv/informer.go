package devenv

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// watchAdded calls added for every object of one kind in namespace (those
// that exist first, then each new one) and deleted for each one deleted,
// until ctx ends; selector narrows them by label. It is an informer, not a
// bare watch: a watch the API server ends (its timeout, a restart, an
// expired resourceVersion) is re-established from a fresh list, so the
// harness keeps playing Jobs and pods however long a test runs. The
// handlers run one at a time. It returns once the first list is in, so
// objects created after it returns are seen.
func watchAdded(ctx context.Context, cs kubernetes.Interface, namespace, selector string,
	informer func(informers.SharedInformerFactory) cache.SharedIndexInformer, added, deleted func(obj any)) error {
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
	inf := informer(f)
	h := cache.ResourceEventHandlerFuncs{AddFunc: added}
	if deleted != nil {
		h.DeleteFunc = func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			deleted(obj)
		}
	}
	if _, err := inf.AddEventHandler(h); err != nil {
		return err
	}
	go inf.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("listing %s in %s: %w", selector, namespace, context.Cause(ctx))
	}
	return nil
}
