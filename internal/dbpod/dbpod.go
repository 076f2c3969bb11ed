// Package dbpod runs PostgreSQL's own tools inside the chart's database pod
// (`<release>-postgresql-0`) through the exec stream: nothing is written to the
// pod's disk and no password is needed, because the image trusts local socket
// connections for its superuser. Every command is an argv array; no shell.
package dbpod

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opencsgs/helm-csghub/internal/csghub"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/steplog"
)

// DefaultUser is the superuser of the chart's PostgreSQL image.
const DefaultUser = "csghub"

// Pod is the database pod of one release.
type Pod struct {
	Kube      *kube.Client
	Namespace string
	Name      string
	Container string // empty: the pod's first container
	User      string // PostgreSQL superuser
}

// New describes the database pod of release in namespace.
func New(kc *kube.Client, namespace, release string) *Pod {
	return &Pod{Kube: kc, Namespace: namespace, Name: csghub.PostgresPod(release), User: DefaultUser}
}

// CheckReady fails with a clear error when the pod is missing or not Ready, and
// when the caller may not exec into it.
func (p *Pod) CheckReady(ctx context.Context) error {
	pod, err := p.Kube.Clientset.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return errs.NotFoundf("database pod %s/%s not found (is PostgreSQL external? see --help)", p.Namespace, p.Name)
	case apierrors.IsForbidden(err):
		return errs.Preconditionf("not allowed to read pod %s/%s: %v", p.Namespace, p.Name, apiMessage(err))
	case err != nil:
		return errs.Failedf("reading pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	if !kube.IsPodReady(pod) {
		return errs.Preconditionf("database pod %s/%s is not Ready (phase %s)", p.Namespace, p.Name, pod.Status.Phase)
	}
	allowed, err := p.Kube.CanI(ctx, p.Namespace, "create", "pods", "exec", p.Name)
	if err != nil {
		return errs.Failedf("checking exec permission: %w", err)
	}
	if !allowed {
		return errs.Preconditionf("not allowed to exec into pod %s/%s (RBAC: create pods/exec)", p.Namespace, p.Name)
	}
	return nil
}

// Exec runs argv in the pod's database container.
func (p *Pod) Exec(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) error {
	err := p.Kube.Exec(ctx, kube.ExecRequest{Namespace: p.Namespace, Pod: p.Name, Container: p.Container,
		Command: argv, Stdin: stdin, Stdout: stdout, Stderr: stderr})
	if apierrors.IsForbidden(err) {
		return errs.Preconditionf("not allowed to exec into pod %s/%s: %v", p.Namespace, p.Name, apiMessage(err))
	}
	return err
}

// Query runs one SQL statement with psql in database db and returns its
// unaligned, tuples-only output. Idempotent reads are retried on stream errors.
func (p *Pod) Query(ctx context.Context, db, sql string) (string, error) {
	var out bytes.Buffer
	err := kube.Retry(ctx, 3, func(ctx context.Context) error {
		out.Reset()
		return p.Exec(ctx, p.psql(db, "-At", "-c", sql), nil, &out, nil)
	})
	if err != nil {
		return "", fmt.Errorf("psql in %s/%s: %w", p.Namespace, p.Name, err)
	}
	return strings.TrimRight(out.String(), "\n"), nil
}

// psql is the argv for psql as the superuser over the local socket: no
// password, no ~/.psqlrc, stop at the first error.
func (p *Pod) psql(db string, args ...string) []string {
	return append(append([]string{"psql", "-X", "-v", "ON_ERROR_STOP=1"}, p.userArgs()...), append([]string{"-d", db}, args...)...)
}

// userArgs is `-U user`, or nothing for a client pod whose environment
// (PGUSER from its Secret) names the user.
func (p *Pod) userArgs() []string {
	if p.User == "" {
		return nil
	}
	return []string{"-U", p.User}
}

// QueryVars runs sql (psql script text, read from stdin) in db with psql
// variables set from vars: the script refers to them as :'name' and psql
// quotes them as literals, so values from the chart or the backup never
// become SQL. Returns the unaligned, tuples-only output.
func (p *Pod) QueryVars(ctx context.Context, db, sql string, vars map[string]string) (string, error) {
	argv := p.psql(db, "-At")
	for k, v := range vars {
		argv = append(argv, "-v", k+"="+v)
	}
	var out, stderr bytes.Buffer
	err := kube.Retry(ctx, 3, func(ctx context.Context) error {
		out.Reset()
		stderr.Reset()
		return p.Exec(ctx, argv, strings.NewReader(sql), &out, &limitedWriter{w: &stderr, n: 4096})
	})
	var ee *kube.ExitError
	if errors.As(err, &ee) {
		return "", fmt.Errorf("psql in %s/%s (exit %d): %s", p.Namespace, p.Name, ee.Code, firstError(stderr.String()))
	}
	if err != nil {
		return "", fmt.Errorf("psql in %s/%s: %w", p.Namespace, p.Name, err)
	}
	return strings.TrimRight(out.String(), "\n"), nil
}

// InspectDatabases is Inspect for a shared server: only the databases named
// (those the release uses) are read; the others on the server are not ours.
// Names not on the server are returned as missing.
func (p *Pod) InspectDatabases(ctx context.Context, names []string) (*ServerInfo, []string, error) {
	list, _ := json.Marshal(names)
	out, err := p.QueryVars(ctx, "postgres",
		`SELECT 'version', current_setting('server_version') UNION ALL `+
			`(SELECT datname, pg_database_size(datname)::text FROM pg_database `+
			`WHERE datallowconn AND NOT datistemplate AND datname IN (SELECT json_array_elements_text(:'dbs'::json)) ORDER BY datname);`+"\n",
		map[string]string{"dbs": string(list)})
	if err != nil {
		return nil, nil, err
	}
	info, err := parseInfo(out)
	if err != nil {
		return nil, nil, err
	}
	have := map[string]bool{}
	for _, d := range info.Databases {
		have[d.Name] = true
	}
	var missing []string
	for _, n := range names {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	return info, missing, nil
}

// Database is one database of the server.
type Database struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

// ServerInfo is what a backup records about the server.
type ServerInfo struct {
	Version   string     `json:"version"`
	Databases []Database `json:"databases"`
}

// Inspect reads the server version and the databases a dump must contain (all
// but the templates), with their sizes.
func (p *Pod) Inspect(ctx context.Context) (*ServerInfo, error) {
	out, err := p.Query(ctx, "postgres",
		`SELECT 'version', current_setting('server_version') UNION ALL `+
			`(SELECT datname, pg_database_size(datname)::text FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname)`)
	if err != nil {
		return nil, err
	}
	return parseInfo(out)
}

func parseInfo(out string) (*ServerInfo, error) {
	info := &ServerInfo{}
	for _, line := range strings.Split(out, "\n") {
		name, val, ok := strings.Cut(line, "|")
		if !ok {
			continue
		}
		if name == "version" && info.Version == "" {
			info.Version = val
			continue
		}
		var n int64
		fmt.Sscan(val, &n)
		info.Databases = append(info.Databases, Database{Name: name, Bytes: n})
	}
	if info.Version == "" {
		return nil, fmt.Errorf("unexpected answer from the database pod: %q", out)
	}
	return info, nil
}

// DumpGlobals streams `pg_dumpall --globals-only` (roles, tablespaces) to w.
func (p *Pod) DumpGlobals(ctx context.Context, w io.Writer) error {
	return p.dump(ctx, append(append([]string{"pg_dumpall"}, p.userArgs()...), "--globals-only", "--no-password"), w)
}

// DumpGlobalsNoRolePasswords is DumpGlobals for a user that may not read
// pg_authid (managed servers): roles without their password hashes.
func (p *Pod) DumpGlobalsNoRolePasswords(ctx context.Context, w io.Writer) error {
	return p.dump(ctx, append(append([]string{"pg_dumpall"}, p.userArgs()...), "--globals-only", "--no-role-passwords", "--no-password"), w)
}

// CanReadRolePasswords reports whether the user may read pg_authid, where
// pg_dumpall reads the password hashes (only superusers may, and managed
// services give no one superuser).
func (p *Pod) CanReadRolePasswords(ctx context.Context) (bool, error) {
	out, err := p.Query(ctx, "postgres", "SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')")
	if err != nil {
		return false, err
	}
	return out == "t", nil
}

// DumpDatabase streams a plain-format `pg_dump --create` of db to w: it starts
// with CREATE DATABASE and \connect, so it replays into a server that lacks it.
func (p *Pod) DumpDatabase(ctx context.Context, db string, w io.Writer) error {
	return p.dump(ctx, append(append([]string{"pg_dump"}, p.userArgs()...), "--no-password", "--create", "--format=plain", "--dbname", db), w)
}

func (p *Pod) dump(ctx context.Context, argv []string, w io.Writer) error {
	var stderr bytes.Buffer
	err := p.Exec(ctx, argv, nil, w, &limitedWriter{w: &stderr, n: 4096})
	var ee *kube.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("%s failed (exit %d): %s", argv[0], ee.Code, firstError(stderr.String()))
	}
	return err
}

// RunScriptTolerant streams sql into psql connected to db and goes on past
// errors (psql's default), returning the ERROR lines it printed: replaying
// roles into a server where the restore user may not alter every role.
func (p *Pod) RunScriptTolerant(ctx context.Context, db string, sql io.Reader) ([]string, error) {
	var stderr bytes.Buffer
	argv := append(append([]string{"psql", "-X"}, p.userArgs()...), "-d", db, "-q")
	err := p.Exec(ctx, argv, sql, io.Discard, &limitedWriter{w: &stderr, n: 64 * 1024})
	var ee *kube.ExitError
	if errors.As(err, &ee) {
		return nil, fmt.Errorf("psql failed (exit %d): %s", ee.Code, firstError(stderr.String()))
	}
	if err != nil {
		return nil, err
	}
	var refused []string
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, "ERROR:") {
			refused = append(refused, strings.TrimSpace(line))
		}
	}
	return refused, nil
}

// RunScript streams sql into psql connected to db, stopping at the first
// error; psql's output is not kept. psql's exit status alone is not
// trusted: the script ends with an \echo of a random marker, and a run
// counts as whole only when psql printed it and no ERROR. An exit status
// lost on the way (seen on the local stack: psql stopped at an error while
// its stdin was still streaming, and the exec reported success) or a stdin
// cut short would otherwise pass a partial replay as complete.
func (p *Pod) RunScript(ctx context.Context, db string, sql io.Reader) error {
	var stderr bytes.Buffer
	end := newScriptEnd()
	out := kube.NewTailBuffer(256) // the marker is the last thing psql prints
	err := p.Exec(ctx, p.psql(db, "-q"), end.after(sql), out, &limitedWriter{w: &stderr, n: 8192})
	var ee *kube.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("psql stopped at an error (exit %d): %s", ee.Code, firstError(stderr.String()))
	}
	if err != nil {
		return err
	}
	return end.check(out.String(), stderr.String())
}

// scriptEnd is the last line RunScript adds to a script: psql prints its
// marker only once it has run everything before it.
type scriptEnd struct{ marker string }

func newScriptEnd() scriptEnd {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return scriptEnd{marker: "helm-csghub end of script " + hex.EncodeToString(b)}
}

// after is sql followed by the marker's \echo on a line of its own.
func (e scriptEnd) after(sql io.Reader) io.Reader {
	return io.MultiReader(sql, strings.NewReader("\n\\echo '"+e.marker+"'\n"))
}

// check is nil when psql reached the end of the script without an error.
func (e scriptEnd) check(stdoutTail, stderr string) error {
	if errLine := firstErrorLine(stderr); errLine != "" {
		return fmt.Errorf("psql stopped at an error (exit status 0 reported): %s", errLine)
	}
	if !strings.Contains(stdoutTail, e.marker) {
		if s := steplog.OneLine(stderr); s != "" {
			return fmt.Errorf("psql ended before the end of the script (exit status 0 reported): %s", s)
		}
		return errors.New("psql ended before the end of the script (exit status 0 reported, its input cut short)")
	}
	return nil
}

// firstErrorLine is firstError when stderr has an ERROR or FATAL line, else "".
func firstErrorLine(stderr string) string {
	if !strings.Contains(stderr, "ERROR:") && !strings.Contains(stderr, "FATAL:") {
		return ""
	}
	return firstError(stderr)
}

// firstLine is a Kubernetes message (an event's, a waiting reason's) on one
// line, whole.
func firstLine(s string) string { return steplog.OneLine(s) }

// firstError picks psql's "ERROR:" line (with its line number) out of stderr,
// with the DETAIL/HINT/CONTEXT/LINE lines that follow and explain it, on one
// line. Without an ERROR line every line is kept (a client's connection
// failure puts its hint on the next line).
func firstError(s string) string {
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		if strings.Contains(line, "ERROR:") || strings.Contains(line, "FATAL:") {
			out := []string{strings.TrimSpace(line)}
			for _, next := range lines[i+1:] {
				t := strings.TrimSpace(next)
				if !strings.HasPrefix(t, "DETAIL:") && !strings.HasPrefix(t, "HINT:") && !strings.HasPrefix(t, "CONTEXT:") && !strings.HasPrefix(t, "LINE ") {
					break
				}
				out = append(out, t)
			}
			return strings.Join(out, " | ")
		}
	}
	return steplog.OneLine(s)
}

func apiMessage(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return st.Status().Message
	}
	return err.Error()
}

// limitedWriter keeps at most n bytes; the rest is dropped.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.n -= k
		_, _ = l.w.Write(p[:k])
	}
	return len(p), nil
}
