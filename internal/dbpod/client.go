package dbpod

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/kube"
)

// Labels and annotations of the client pods and their Secrets.
const (
	// ClientLabel carries the release name: `-l csghub.opencsg.com/pg-client=<release>`.
	ClientLabel    = "csghub.opencsg.com/pg-client"
	managedByLabel = "app.kubernetes.io/managed-by"
	managedBy      = "helm-csghub"
	holderAnno     = "csghub.opencsg.com/holder"
	serverAnno     = "csghub.opencsg.com/server"
	// clientLifetime bounds a client pod that nobody deletes (a run killed
	// hard): its sleep ends and activeDeadlineSeconds fails it.
	clientLifetime = 6 * time.Hour
	// DefaultPodTimeout is how long a client pod may take to become Ready.
	DefaultPodTimeout = 2 * time.Minute
)

// Client is a short-lived pod in the release namespace that runs the
// PostgreSQL image idle (sleep), so that pg_dump and psql can be exec'd in it
// against an external server reachable only from inside the cluster. The
// connection (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGSSLMODE) reaches it only
// through a Secret created for the run (envFrom): never argv, never literal
// env in the pod spec. Close deletes both.
type Client struct {
	*Pod
	Server  *Server
	Image   string
	Version string // server_version
	// ServerMajor and ClientMajor are the major versions of the server and of
	// the pod's pg_dump.
	ServerMajor, ClientMajor int
	cs                       kubernetes.Interface
	created                  bool
}

// ClientOptions start a Client.
type ClientOptions struct {
	Kube      *kube.Client
	Namespace string
	Release   string
	Image     string
	Server    *Server
	// Timeout bounds the wait for the pod to be Ready (DefaultPodTimeout when 0).
	Timeout time.Duration
}

// StartClient creates the Secret and the pod, waits until the pod runs, and
// checks that the server answers through it. On any failure (and on Ctrl-C)
// what it created is deleted before it returns: the error is one line.
func StartClient(ctx context.Context, o ClientOptions) (c *Client, err error) {
	name := clientName(o.Release)
	c = &Client{Pod: &Pod{Kube: o.Kube, Namespace: o.Namespace, Name: name}, Server: o.Server, Image: o.Image, cs: o.Kube.Clientset}
	// own is what to delete on failure: `return nil, err` sets c to nil
	// before this defer runs
	own := c
	defer func() {
		if err != nil {
			if cerr := own.Close(); cerr != nil {
				err = errs.NeedsAttentionf("%v; %v", err, cerr)
			}
			c = nil
		}
	}()
	host, _ := os.Hostname()
	meta := metav1.ObjectMeta{
		Name:      name,
		Namespace: o.Namespace,
		Labels:    map[string]string{ClientLabel: o.Release, managedByLabel: managedBy},
		Annotations: map[string]string{
			holderAnno: fmt.Sprintf("%s/pid %d", host, os.Getpid()),
			serverAnno: o.Server.Key(),
		},
	}
	data := map[string][]byte{
		"PGHOST":            []byte(o.Server.Host),
		"PGPORT":            []byte(strconv.Itoa(o.Server.Port)),
		"PGUSER":            []byte(o.Server.User),
		"PGPASSWORD":        []byte(o.Server.password),
		"PGDATABASE":        []byte("postgres"),
		"PGCONNECT_TIMEOUT": []byte("10"),
		"PGAPPNAME":         []byte("helm-csghub"),
	}
	if o.Server.SSLMode != "" {
		data["PGSSLMODE"] = []byte(o.Server.SSLMode)
	}
	sec := &corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeOpaque, Data: data}
	// Creates finish on a bounded context of their own: a signal arriving
	// while the request is in flight must not leave an object the server
	// stored but this run never learned of (see netpol.Create).
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	c.created = true // from here Close has something to delete (maybe)
	if _, err := c.cs.CoreV1().Secrets(o.Namespace).Create(bctx, sec, metav1.CreateOptions{}); err != nil {
		return nil, createError("Secret", o.Namespace, name, err)
	}
	pod := clientPodSpec(meta, o.Image)
	if _, err := c.cs.CoreV1().Pods(o.Namespace).Create(bctx, pod, metav1.CreateOptions{}); err != nil {
		return nil, createError("pod", o.Namespace, name, err)
	}
	if ctx.Err() != nil {
		return nil, errs.Wrap(errs.Interrupted, fmt.Errorf("interrupted while starting the PostgreSQL client pod, nothing changed"))
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultPodTimeout
	}
	if err := c.waitRunning(ctx, timeout); err != nil {
		return nil, err
	}
	if err := c.probe(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func createError(kind, ns, name string, err error) error {
	if apierrors.IsForbidden(err) {
		return errs.Preconditionf("not allowed to create the PostgreSQL client %s %s/%s: %v", kind, ns, name, apiMessage(err))
	}
	return errs.Failedf("creating the PostgreSQL client %s %s/%s: %v", kind, ns, name, apiMessage(err))
}

func clientName(release string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	base := release
	if len(base) > 40 {
		base = base[:40]
	}
	return strings.TrimSuffix(base, "-") + "-pg-client-" + hex.EncodeToString(b)
}

func clientPodSpec(meta metav1.ObjectMeta, image string) *corev1.Pod {
	deadline := int64(clientLifetime / time.Second)
	grace := int64(1)
	no := false
	return &corev1.Pod{
		ObjectMeta: meta,
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyAlways, // KWOK (the test node) completes bare Never pods
			ActiveDeadlineSeconds:         &deadline,
			TerminationGracePeriodSeconds: &grace,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			Containers: []corev1.Container{{
				Name:    "pg-client",
				Image:   image,
				Command: []string{"sleep", strconv.FormatInt(deadline, 10)},
				EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: meta.Name}}}},
			}},
		},
	}
}

// waitRunning waits for the pod to be Ready. An image that cannot be pulled
// fails at once; a pod still Pending at timeout fails with the scheduler's
// reason.
func (c *Client) waitRunning(ctx context.Context, timeout time.Duration) error {
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := c.cs.CoreV1().Pods(c.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = p
		for _, st := range p.Status.ContainerStatuses {
			if w := st.State.Waiting; w != nil {
				switch w.Reason {
				case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
					return false, errs.Preconditionf("PostgreSQL client pod %s/%s: image %s cannot be pulled (%s: %s); pass an image the cluster can pull with --pg-image",
						c.Namespace, c.Name, c.Image, w.Reason, firstLine(w.Message))
				case "CreateContainerConfigError", "CreateContainerError":
					return false, errs.Failedf("PostgreSQL client pod %s/%s: %s: %s", c.Namespace, c.Name, w.Reason, firstLine(w.Message))
				}
			}
		}
		if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
			return false, errs.Failedf("PostgreSQL client pod %s/%s ended (%s) before it was used: %s", c.Namespace, c.Name, p.Status.Phase, p.Status.Message)
		}
		return kube.IsPodReady(p), nil
	})
	if err == nil {
		return nil
	}
	var typed *errs.Error
	if errors.As(err, &typed) {
		return err
	}
	if ctx.Err() != nil {
		return errs.Wrap(errs.Interrupted, fmt.Errorf("interrupted while starting the PostgreSQL client pod, nothing changed"))
	}
	why := "not Ready"
	if last != nil {
		why = "phase " + string(last.Status.Phase)
		for _, cond := range last.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse {
				why = fmt.Sprintf("Pending, %s: %s", cond.Reason, firstLine(cond.Message))
			}
		}
		if why == "phase Pending" {
			why += c.lastEvent(context.WithoutCancel(ctx))
		}
	}
	return errs.Preconditionf("PostgreSQL client pod %s/%s (image %s) not running after %s (%s)", c.Namespace, c.Name, c.Image, timeout, why)
}

func (c *Client) lastEvent(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	evs, err := c.cs.CoreV1().Events(c.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.name", c.Name).String()})
	if err != nil || len(evs.Items) == 0 {
		return ""
	}
	e := evs.Items[len(evs.Items)-1]
	return fmt.Sprintf(", last event %s: %s", e.Reason, firstLine(e.Message))
}

// probe checks the server answers through the pod and reads its version and
// the pod's pg_dump version. Connection failures are retried for a few
// seconds (a pod exec'd the instant it turns Ready can race its network).
func (c *Client) probe(ctx context.Context) error {
	var out, stderr bytes.Buffer
	var err error
	for i := 0; i < 4; i++ {
		out.Reset()
		stderr.Reset()
		err = c.Exec(ctx, c.psql("postgres", "-At", "-c", "SELECT current_setting('server_version_num'), current_setting('server_version')"),
			nil, &out, &limitedWriter{w: &stderr, n: 4096})
		if err == nil || ctx.Err() != nil {
			break
		}
		var ee *kube.ExitError
		if !errors.As(err, &ee) || ee.Code != 2 || strings.Contains(stderr.String(), "authentication") {
			break // not a connection failure, or a refusal: retrying does not help
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(i+1) * 500 * time.Millisecond):
		}
	}
	if ctx.Err() != nil {
		return errs.Wrap(errs.Interrupted, fmt.Errorf("interrupted while connecting to PostgreSQL %s, nothing changed", c.Server.Key()))
	}
	if err != nil {
		var ee *kube.ExitError
		if errors.As(err, &ee) {
			return errs.Preconditionf("PostgreSQL %s does not answer from the cluster (through pod %s/%s): %s",
				c.Server.Key(), c.Namespace, c.Name, firstError(stderr.String()))
		}
		return errs.Failedf("PostgreSQL client pod %s/%s: %v", c.Namespace, c.Name, err)
	}
	num, ver, _ := strings.Cut(strings.TrimSpace(out.String()), "|")
	n, _ := strconv.Atoi(num)
	c.ServerMajor, c.Version = n/10000, ver
	out.Reset()
	if err := c.Exec(ctx, []string{"pg_dump", "--version"}, nil, &out, nil); err != nil {
		return errs.Failedf("pg_dump in pod %s/%s (image %s): %v", c.Namespace, c.Name, c.Image, err)
	}
	c.ClientMajor = majorOf(out.String())
	if c.ClientMajor > 0 && c.ServerMajor > c.ClientMajor {
		return errs.Preconditionf("PostgreSQL %s is version %s but image %s has pg_dump %d, which cannot dump a newer server: pass --pg-image with a PostgreSQL %d image (e.g. postgres:%d)",
			c.Server.Key(), c.Version, c.Image, c.ClientMajor, c.ServerMajor, c.ServerMajor)
	}
	return nil
}

// majorOf reads the major version from `pg_dump (PostgreSQL) 15.10 (...)`.
func majorOf(s string) int {
	for _, f := range strings.Fields(s) {
		if f[0] >= '0' && f[0] <= '9' {
			maj, _, _ := strings.Cut(f, ".")
			n, _ := strconv.Atoi(maj)
			return n
		}
	}
	return 0
}

// Close deletes the pod and its Secret, on its own bounded context: it runs
// on every exit path, Ctrl-C included. Safe to call twice.
func (c *Client) Close() error {
	if c == nil || !c.created {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := deleteClient(ctx, c.cs, c.Namespace, c.Name); err != nil {
		return err
	}
	c.created = false
	return nil
}

func deleteClient(ctx context.Context, cs kubernetes.Interface, ns, name string) error {
	zero := int64(0)
	var perr, serr error
	for i := 0; i < 5; i++ {
		perr = cs.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		if apierrors.IsNotFound(perr) {
			perr = nil
		}
		serr = cs.CoreV1().Secrets(ns).Delete(ctx, name, metav1.DeleteOptions{})
		if apierrors.IsNotFound(serr) {
			serr = nil
		}
		if perr == nil && serr == nil {
			return nil
		}
		time.Sleep(time.Duration(i+1) * 300 * time.Millisecond)
	}
	return fmt.Errorf("removing PostgreSQL client pod and Secret %s/%s: %v (remove them with: kubectl -n %s delete pod,secret %s)",
		ns, name, errors.Join(perr, serr), ns, name)
}

// Leftover is a client pod or Secret of an earlier run.
type Leftover struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Holder string `json:"holder,omitempty"`
	Server string `json:"server,omitempty"`
	Age    string `json:"age"`
	// Stale: its run is gone (same host, process not running) or it outlived
	// a client pod's lifetime.
	Stale bool `json:"stale"`
	age   time.Duration
}

// FindLeftoverClients lists the client pods and Secrets of release in ns.
func FindLeftoverClients(ctx context.Context, cs kubernetes.Interface, ns, release string) ([]Leftover, error) {
	sel := metav1.ListOptions{LabelSelector: ClientLabel + "=" + release}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, sel)
	if err != nil {
		return nil, err
	}
	secs, err := cs.CoreV1().Secrets(ns).List(ctx, sel)
	if err != nil {
		return nil, err
	}
	var out []Leftover
	add := func(kind string, m metav1.ObjectMeta) {
		age := time.Since(m.CreationTimestamp.Time)
		out = append(out, Leftover{Kind: kind, Name: m.Name, Holder: m.Annotations[holderAnno], Server: m.Annotations[serverAnno],
			Age: age.Round(time.Second).String(), age: age, Stale: holderGone(m.Annotations[holderAnno]) || age > clientLifetime})
	}
	for _, p := range pods.Items {
		add("Pod", p.ObjectMeta)
	}
	for _, s := range secs.Items {
		add("Secret", s.ObjectMeta)
	}
	return out, nil
}

// RemoveStaleClients deletes the client pods and Secrets whose run is gone
// and returns what it removed. One still in use by a live run elsewhere is
// left alone.
func RemoveStaleClients(ctx context.Context, cs kubernetes.Interface, ns, release string) ([]string, error) {
	left, err := FindLeftoverClients(ctx, cs, ns, release)
	if err != nil {
		return nil, fmt.Errorf("looking for leftover PostgreSQL client pods: %w", err)
	}
	var removed []string
	done := map[string]bool{}
	for _, l := range left {
		if !l.Stale || done[l.Name] {
			continue
		}
		done[l.Name] = true
		if err := deleteClient(ctx, cs, ns, l.Name); err != nil {
			return removed, err
		}
		removed = append(removed, l.Name)
	}
	return removed, nil
}

// holderGone reports whether "host/pid N" names a process of this host that
// no longer runs. Another host's holder cannot be checked: not gone.
func holderGone(holder string) bool {
	host, pidStr, ok := strings.Cut(holder, "/pid ")
	if !ok {
		return true // not written by this plugin's runs
	}
	me, _ := os.Hostname()
	if host != me {
		return false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil {
		return true
	}
	if pid == os.Getpid() {
		return false
	}
	return !processAlive(pid)
}

// StartClients starts one client pod per server (stale ones of killed runs
// are removed first, reported through logf). On failure the pods already
// started are deleted.
func StartClients(ctx context.Context, o ClientOptions, servers []*Server, logf func(string, ...any)) ([]*Client, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	removed, err := RemoveStaleClients(ctx, o.Kube.Clientset, o.Namespace, o.Release)
	if err != nil {
		return nil, errs.Failedf("%v", err)
	}
	for _, n := range removed {
		logf("removed PostgreSQL client pod and Secret %s/%s left by an interrupted run", o.Namespace, n)
	}
	var clients []*Client
	for _, s := range servers {
		o.Server = s
		logf("starting PostgreSQL client pod for %s (image %s)", s.Key(), o.Image)
		c, err := StartClient(ctx, o)
		if err != nil {
			if cerr := CloseAll(clients); cerr != nil {
				return nil, errs.NeedsAttentionf("%v; %v", err, cerr)
			}
			return nil, err
		}
		logf("PostgreSQL %s answers through pod %s/%s (server %s)", s.Key(), c.Namespace, c.Name, c.Version)
		clients = append(clients, c)
	}
	return clients, nil
}

// CloseAll deletes every client's pod and Secret.
func CloseAll(clients []*Client) error {
	var all []error
	for _, c := range clients {
		if err := c.Close(); err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}
