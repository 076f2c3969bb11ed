package devenv

import (
	"context"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
)

// Issue 27 item 11: the API server ends watches (its timeout, a restart);
// the Job player then went deaf and upgrades to >= 2.2.0 hung on their
// pre-upgrade hook. After the server ends the watch, a Job created later
// must still reach the handler.
func TestWatchAddedSurvivesAWatchTheServerEnds(t *testing.T) {
	cs := fake.NewSimpleClientset()
	var mu sync.Mutex
	var watches []watch.Interface
	cs.PrependWatchReactor("jobs", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := cs.Tracker().Watch(a.GetResource(), a.GetNamespace())
		mu.Lock()
		watches = append(watches, w)
		mu.Unlock()
		return true, w, err
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make(chan string, 10)
	jobs := func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
		return f.Batch().V1().Jobs().Informer()
	}
	if err := watchAdded(ctx, cs, "ns", "", jobs, func(obj any) { seen <- obj.(*batchv1.Job).Name }, nil); err != nil {
		t.Fatal(err)
	}
	create := func(name string) {
		t.Helper()
		if _, err := cs.BatchV1().Jobs("ns").Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	want := func(name string) {
		t.Helper()
		select {
		case got := <-seen:
			if got != name {
				t.Fatalf("handler got Job %s, want %s", got, name)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Job %s never reached the handler", name)
		}
	}
	create("before")
	want("before")
	// the server ends the watch
	mu.Lock()
	n := len(watches)
	watches[n-1].Stop()
	mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		again := len(watches) > n
		mu.Unlock()
		if again {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watch was not re-established")
		}
		time.Sleep(20 * time.Millisecond)
	}
	create("after")
	want("after")
}
