// Package parallel runs bounded concurrent work: API calls and database streams
// are independent but must not flood the API server or the database pod.
package parallel

import (
	"context"
	"sync"
)

// ForEach runs fn over items with at most n calls at once. The first error
// cancels the context the remaining calls get (calls not yet started are
// skipped) and is returned.
func ForEach[T any](ctx context.Context, n int, items []T, fn func(context.Context, T) error) error {
	if n < 1 {
		n = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(it T) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, it); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}(it)
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}
