package helmenv

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"helm.sh/helm/v3/pkg/cli"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"
)

// Client-side rate limit. client-go's default (5 QPS, burst 10) makes a tool
// that reads a few hundred objects in a burst wait on itself for tens of
// seconds; kubectl's discovery uses 50/300, Helm 4 reads HELM_QPS and
// HELM_BURST_LIMIT. Helm 3 exports HELM_QPS=0.00 (client-go's default) and
// HELM_BURST_LIMIT=100 to every plugin, so a QPS of 0 means "not chosen".
const (
	DefaultQPS   = 50
	DefaultBurst = 100
)

// StatsEnv, when set (to anything but "" or "0"), makes the plugin count its
// API requests and print the count on stderr at exit (benchmarks).
const StatsEnv = "HELM_CSGHUB_API_STATS"

// applyRateLimit sets the QPS and burst Helm's REST client getter (hence the
// SDK and every client built from RESTConfig) uses: HELM_QPS / HELM_BURST_LIMIT
// when chosen, DefaultQPS / DefaultBurst otherwise.
func applyRateLimit(s *cli.EnvSettings) {
	if s.QPS <= 0 {
		s.QPS = DefaultQPS
	}
	if s.BurstLimit <= 0 {
		s.BurstLimit = DefaultBurst
	}
	if float32(s.BurstLimit) < s.QPS {
		s.BurstLimit = int(s.QPS)
	}
	cf, ok := s.RESTClientGetter().(*genericclioptions.ConfigFlags)
	if !ok || !statsEnabled() {
		return
	}
	prev := cf.WrapConfigFn
	cf.WrapConfigFn = func(c *rest.Config) *rest.Config {
		if prev != nil {
			c = prev(c)
		}
		c.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &countingTransport{next: rt} })
		return c
	}
}

func statsEnabled() bool {
	v := os.Getenv(StatsEnv)
	return v != "" && v != "0"
}

// APIStats counts requests by verb and resource path.
var APIStats = &apiStats{by: map[string]int{}}

type apiStats struct {
	mu    sync.Mutex
	total int
	by    map[string]int
	// spent is the time from sending each request to the end of reading its
	// response body (the server's time plus the transfer), by the same key.
	spent map[string]time.Duration
}

type countingTransport struct{ next http.RoundTripper }

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	key := APIStats.add(r)
	t0 := time.Now()
	resp, err := t.next.RoundTrip(r)
	if err != nil || resp.Body == nil || strings.HasPrefix(key, "WATCH ") {
		APIStats.spend(key, time.Since(t0))
		return resp, err
	}
	resp.Body = &timedBody{ReadCloser: resp.Body, key: key, t0: t0}
	return resp, nil
}

// timedBody records the request's time when its body is read to the end or closed.
type timedBody struct {
	io.ReadCloser
	key  string
	t0   time.Time
	once sync.Once
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.done()
	}
	return n, err
}

func (b *timedBody) Close() error {
	b.done()
	return b.ReadCloser.Close()
}

func (b *timedBody) done() { b.once.Do(func() { APIStats.spend(b.key, time.Since(b.t0)) }) }

func (a *apiStats) add(r *http.Request) string {
	verb := r.Method
	if verb == http.MethodGet && r.URL.Query().Get("watch") == "true" {
		verb = "WATCH"
	}
	key := verb + " " + resourceOf(r.URL.Path)
	a.mu.Lock()
	a.total++
	a.by[key]++
	a.mu.Unlock()
	return key
}

func (a *apiStats) spend(key string, d time.Duration) {
	a.mu.Lock()
	if a.spent == nil {
		a.spent = map[string]time.Duration{}
	}
	a.spent[key] += d
	a.mu.Unlock()
}

// resourceOf is the resource (or API group path) a request is about:
// /api/v1/namespaces/x/secrets/y -> secrets, /apis/apps/v1/deployments -> deployments.
func resourceOf(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) >= 1 && parts[0] == "api":
		parts = parts[min(2, len(parts)):]
	case len(parts) >= 1 && parts[0] == "apis":
		parts = parts[min(3, len(parts)):]
	default:
		return path
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	if len(parts) == 0 {
		return "discovery " + path
	}
	return parts[0]
}

// PrintStats writes the count ("api-requests: N (...)") when StatsEnv is set.
func PrintStats(w io.Writer) {
	if !statsEnabled() {
		return
	}
	a := APIStats
	a.mu.Lock()
	defer a.mu.Unlock()
	keys := make([]string, 0, len(a.by))
	for k := range a.by {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return a.by[keys[i]] > a.by[keys[j]] || (a.by[keys[i]] == a.by[keys[j]] && keys[i] < keys[j])
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, a.by[k])
	}
	fmt.Fprintf(w, "api-requests: %d (%s)\n", a.total, strings.Join(parts, ", "))
	// where the time in requests went (concurrent requests overlap: the sum
	// may exceed the wall time), the 8 largest
	sort.Slice(keys, func(i, j int) bool { return a.spent[keys[i]] > a.spent[keys[j]] })
	var total time.Duration
	for _, d := range a.spent {
		total += d
	}
	parts = parts[:0]
	for _, k := range keys[:min(8, len(keys))] {
		parts = append(parts, fmt.Sprintf("%s=%.2fs", k, a.spent[k].Seconds()))
	}
	fmt.Fprintf(w, "api-time: %.2fs (%s)\n", total.Seconds(), strings.Join(parts, ", "))
}
