// Package verify checks a CSGHub release after an upgrade or rollback (the
// guide's section 6, the parts a tool can check): the release is deployed at
// the expected revision, PostgreSQL answers through a port-forward with the
// release's own credentials and has the expected databases, and the web UI
// answers through a port-forward to its Service.
package verify

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/opencsgs/helm-csghub/internal/dbpod"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/kube"
)

// Check is one verification result.
type Check struct {
	Name    string        `json:"name"`
	OK      bool          `json:"ok"`
	Detail  string        `json:"detail"`
	Elapsed time.Duration `json:"elapsedNs"`
}

// Report is all checks.
type Report struct {
	OK     bool    `json:"ok"`
	Checks []Check `json:"checks"`
}

// Verify runs the checks.
type Verify struct {
	Env  *helmenv.Env
	Kube *kube.Client
	// Revision expected deployed (0: whatever the last revision is).
	Revision int
	// Timeout bounds each network check.
	Timeout time.Duration
}

// Run performs every check (they do not stop at the first failure) and
// returns an error naming the failed ones.
func (v *Verify) Run(ctx context.Context) (*Report, error) {
	if err := v.Env.Resolve(); err != nil {
		return nil, err
	}
	cfg, err := v.Env.ActionConfig(v.Env.Namespace)
	if err != nil {
		return nil, err
	}
	// a release that does not exist is not a failed check: exit 3 (not found),
	// and no database or web UI of it to look at
	last, err := v.Env.LastRelease(cfg)
	if err != nil {
		return nil, err
	}
	rep := &Report{OK: true}
	add := func(name string, f func() (string, error)) {
		t0 := time.Now()
		detail, err := f()
		c := Check{Name: name, OK: err == nil, Detail: detail, Elapsed: time.Since(t0)}
		if err != nil {
			c.Detail = err.Error()
			rep.OK = false
		}
		rep.Checks = append(rep.Checks, c)
	}
	var allValues map[string]any
	add("release", func() (string, error) {
		rel := last
		if rel.Info.Status.String() != "deployed" {
			return "", fmt.Errorf("revision %d is %s, not deployed", rel.Version, rel.Info.Status)
		}
		if v.Revision != 0 && rel.Version != v.Revision {
			return "", fmt.Errorf("revision %d deployed, expected %d", rel.Version, v.Revision)
		}
		get := action.NewGetValues(cfg)
		get.AllValues = true
		allValues, _ = get.Run(v.Env.Release)
		return fmt.Sprintf("revision %d deployed (chart %s)", rel.Version, helmenv.ChartVersion(rel)), nil
	})
	if external(allValues) {
		rep.Checks = append(rep.Checks, Check{Name: "database", OK: true, Detail: "external PostgreSQL: not checked (the guide leaves it to its operator)"})
	} else {
		add("database", func() (string, error) { return v.checkDatabase(ctx, allValues) })
	}
	add("web UI", func() (string, error) { return v.checkPortal(ctx) })
	if !rep.OK {
		var failed []string
		for _, c := range rep.Checks {
			if !c.OK {
				failed = append(failed, c.Name+": "+c.Detail)
			}
		}
		return rep, errs.Failedf("verification failed: %s", strings.Join(failed, "; "))
	}
	return rep, nil
}

func (v *Verify) timeout() time.Duration {
	if v.Timeout > 0 {
		return v.Timeout
	}
	return 30 * time.Second
}

// checkDatabase connects with pgx through a port-forward, as an application
// would, with the user and password of the release Secret.
func (v *Verify) checkDatabase(ctx context.Context, values map[string]any) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, v.timeout())
	defer cancel()
	conn, err := dbpod.Connect(ctx, v.Kube, v.Env.Namespace, v.Env.Release, "postgres")
	if err != nil {
		return "", err
	}
	user := conn.User
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE NOT datistemplate")
	if err != nil {
		return "", err
	}
	present, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", err
	}
	have := map[string]bool{}
	for _, d := range present {
		have[d] = true
	}
	want := ExpectedDatabases(values)
	var missing []string
	for _, d := range want {
		if !have[d] {
			missing = append(missing, d)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("databases missing: %s", strings.Join(missing, ", "))
	}
	return fmt.Sprintf("connected as %s through a port-forward; %d expected databases present", user, len(want)), nil
}

// ExpectedDatabases is the chart's postgresql.databases list.
func ExpectedDatabases(values map[string]any) []string {
	raw, err := chartutil.Values(values).PathValue("postgresql.databases")
	if err != nil {
		return nil
	}
	var out []string
	switch l := raw.(type) {
	case []any:
		for _, x := range l {
			out = append(out, fmt.Sprint(x))
		}
	case string:
		out = strings.FieldsFunc(l, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' })
	}
	sort.Strings(out)
	return out
}

func external(values map[string]any) bool {
	v, err := chartutil.Values(values).PathValue("global.postgresql.enabled")
	b, ok := v.(bool)
	return err == nil && ok && !b
}

// checkPortal port-forwards to a Ready pod behind Service <release>-portal and
// expects an HTTP answer below 500 on "/".
func (v *Verify) checkPortal(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, v.timeout())
	defer cancel()
	ns, rel := v.Env.Namespace, v.Env.Release
	svcName := rel + "-portal"
	svc, err := v.Kube.Clientset.CoreV1().Services(ns).Get(ctx, svcName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("service %s: %w", svcName, err)
	}
	if len(svc.Spec.Ports) == 0 {
		return "", fmt.Errorf("service %s has no ports", svcName)
	}
	pods, err := v.Kube.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String()})
	if err != nil {
		return "", err
	}
	var pod *corev1.Pod
	for i := range pods.Items {
		if kube.IsPodReady(&pods.Items[i]) {
			pod = &pods.Items[i]
			break
		}
	}
	if pod == nil {
		return "", fmt.Errorf("no Ready pod behind service %s", svcName)
	}
	port := targetPort(svc.Spec.Ports[0], pod)
	fw, err := v.Kube.PortForward(ctx, ns, pod.Name, port)
	if err != nil {
		return "", err
	}
	defer fw.Close()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+fw.Addr()+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET / on %s through port-forward: %w", svcName, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 500 {
		return "", fmt.Errorf("GET / on %s answered %s", svcName, resp.Status)
	}
	return fmt.Sprintf("GET / on %s (pod %s:%d) answered %s", svcName, pod.Name, port, resp.Status), nil
}

// targetPort resolves a Service port's targetPort (number or named) on pod.
func targetPort(sp corev1.ServicePort, pod *corev1.Pod) int {
	tp := sp.TargetPort
	if tp.Type == intstr.Int && tp.IntVal != 0 {
		return int(tp.IntVal)
	}
	if tp.Type == intstr.String {
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == tp.StrVal {
					return int(p.ContainerPort)
				}
			}
		}
	}
	return int(sp.Port)
}
