// Package verify checks a CSGHub release after an upgrade or rollback, as the
// guide's section 6 lists it: the release is deployed at the expected
// revision; the web UI loads; the API answers; login works (Casdoor serves
// its OIDC discovery document under the configured issuer); the database,
// object storage, Redis and Gitaly answer. Every network check goes through
// a port-forward to a Ready pod behind the component's Service (the external
// S3 endpoint is reached directly, as CSGHub reaches it), has its own
// timeout, and all run: one failure does not hide the others. A component the
// release does not run (disabled in values) is reported as skipped.
package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"helm.sh/helm/v3/pkg/action"

	"github.com/opencsgs/helm-csghub/internal/csghub"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/kube"
)

// Names of the checks, in the order they are reported.
const (
	CheckRelease       = "release"
	CheckWebUI         = "web-ui"
	CheckAPI           = "api"
	CheckLogin         = "login"
	CheckDatabase      = "database"
	CheckObjectStorage = "object-storage"
	CheckRedis         = "redis"
	CheckGitaly        = "gitaly"
)

// Names lists every check in report order.
var Names = []string{CheckRelease, CheckWebUI, CheckAPI, CheckLogin, CheckDatabase, CheckObjectStorage, CheckRedis, CheckGitaly}

// What each check proves, in a few words (plan's verify step lists them).
var What = map[string]string{
	CheckRelease:       "the release deployed at the expected revision",
	CheckWebUI:         "the portal serves its web UI",
	CheckAPI:           "csghub-server's /healthz answers",
	CheckLogin:         "Casdoor serves its OIDC discovery with the configured issuer",
	CheckDatabase:      "PostgreSQL answers with every expected database (built-in only)",
	CheckObjectStorage: "MinIO is live, or the external S3 bucket exists",
	CheckRedis:         "Redis answers PING (built-in only)",
	CheckGitaly:        "Gitaly reports SERVING (built-in only)",
}

// Describe is every check with what it proves, in report order.
func Describe() string {
	parts := make([]string, len(Names))
	for i, n := range Names {
		parts[i] = n + " (" + What[n] + ")"
	}
	return strings.Join(parts, ", ")
}

// Status of one check.
type Status string

const (
	Passed  Status = "passed"
	Failed  Status = "failed"
	Skipped Status = "skipped"
)

// Check is one verification result.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Detail says what was checked, why it failed or why it was skipped (one line, no credentials).
	Detail string `json:"detail"`
	// DurationMs is how long the check took, in milliseconds.
	DurationMs float64 `json:"durationMs"`
	// Attempts is how many times it ran (more than 1: connection-level
	// failures were retried; Detail says so).
	Attempts int `json:"attempts,omitempty"`
}

// OK reports whether the check did not fail (passed or skipped).
func (c Check) OK() bool { return c.Status != Failed }

// Report is all checks.
type Report struct {
	// OK is true when every check that ran passed.
	OK     bool    `json:"ok"`
	Checks []Check `json:"checks"`
}

// Failed lists the failed checks.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Status == Failed {
			out = append(out, c)
		}
	}
	return out
}

// Verify runs the checks.
type Verify struct {
	Release *helmenv.Release
	Kube    *kube.Client
	// Revision expected deployed (0: whatever the last revision is).
	Revision int
	// Timeout bounds each check (default 30s).
	Timeout time.Duration
	// Retry, when longer than Timeout, is how long a check keeps trying
	// after connection-level failures (an upgrade: what --timeout leaves).
	Retry time.Duration
	// Only runs just these checks (empty: all); Skip leaves these out. Both
	// hold names from Names (see Select).
	Only, Skip []string
}

// Select validates --check/--skip-check names: an unknown name is a usage error.
func Select(only, skip []string) error {
	known := map[string]bool{}
	for _, n := range Names {
		known[n] = true
	}
	for _, n := range append(append([]string{}, only...), skip...) {
		if !known[n] {
			return errs.Usagef("unknown check %q (checks: %s)", n, strings.Join(Names, ", "))
		}
	}
	// every check asked for also left out: nothing would run and the exit
	// would be 0, a pass that checked nothing
	if len(only) > 0 {
		left := map[string]bool{}
		for _, n := range skip {
			left[n] = true
		}
		runs := false
		for _, n := range only {
			runs = runs || !left[n]
		}
		if !runs {
			return errs.Usagef("--check %s and --skip-check %s leave no check to run", strings.Join(only, ","), strings.Join(skip, ","))
		}
	}
	return nil
}

// selected reports whether check name runs, and if not, why.
func (v *Verify) selected(name string) (bool, string) {
	for _, n := range v.Skip {
		if n == name {
			return false, "left out (--skip-check)"
		}
	}
	if len(v.Only) == 0 {
		return true, ""
	}
	for _, n := range v.Only {
		if n == name {
			return true, ""
		}
	}
	return false, "not selected (--check)"
}

func (v *Verify) timeout() time.Duration {
	if v.Timeout > 0 {
		return v.Timeout
	}
	return 30 * time.Second
}

// Run performs the selected checks, each with its own timeout, all of them
// (concurrently), and returns an error naming the failed ones.
func (v *Verify) Run(ctx context.Context) (*Report, error) {
	if err := Select(v.Only, v.Skip); err != nil {
		return nil, err
	}
	cfg := v.Release.Helm
	// The values drive which components run; read them first, whatever is selected.
	tRelease := time.Now()
	// a release that does not exist is not a failed check: exit 3 (not found),
	// and no component of it to look at
	rel, relErr := v.Release.Last()
	if relErr != nil {
		return nil, relErr
	}
	var values map[string]any
	if relErr == nil {
		get := action.NewGetValues(cfg)
		get.AllValues = true
		values, _ = get.Run(v.Release.Name)
	}
	comp := componentsOf(values, v.Release.Name)
	readRelease := time.Since(tRelease) // part of the release check

	runs := map[string]func(context.Context) (string, error){
		CheckRelease: func(context.Context) (string, error) {
			if relErr != nil {
				return "", relErr
			}
			if rel.Info.Status.String() != "deployed" {
				return "", fmt.Errorf("revision %d is %s, not deployed", rel.Version, rel.Info.Status)
			}
			if v.Revision != 0 && rel.Version != v.Revision {
				return "", fmt.Errorf("revision %d deployed, expected %d", rel.Version, v.Revision)
			}
			return fmt.Sprintf("revision %d deployed (chart %s)", rel.Version, helmenv.ChartVersion(rel)), nil
		},
		CheckWebUI: v.checkWebUI,
		CheckAPI:   v.checkAPI,
		CheckLogin: v.checkLogin,
		CheckDatabase: func(ctx context.Context) (string, error) {
			if comp.externalPostgres {
				return "", errSkip("external PostgreSQL (global.postgresql.enabled=false): not checked")
			}
			return v.checkDatabase(ctx, values)
		},
		CheckObjectStorage: func(ctx context.Context) (string, error) {
			if comp.s3 != nil {
				return CheckS3(ctx, *comp.s3)
			}
			return v.checkMinIO(ctx)
		},
		CheckRedis: func(ctx context.Context) (string, error) {
			if !comp.redis {
				return "", errSkip("external Redis (global.redis.enabled=false): not checked")
			}
			return v.checkRedis(ctx)
		},
		CheckGitaly: func(ctx context.Context) (string, error) {
			if !comp.gitaly {
				return "", errSkip("external Gitaly (global.gitaly.enabled=false): not checked")
			}
			return v.checkGitaly(ctx)
		},
	}
	secrets := comp.secrets()

	checks := make([]Check, len(Names))
	var wg sync.WaitGroup
	for i, name := range Names {
		checks[i].Name = name
		if ok, why := v.selected(name); !ok {
			checks[i].Status, checks[i].Detail = Skipped, why
			continue
		}
		wg.Add(1)
		go func(c *Check, run func(context.Context) (string, error)) {
			defer wg.Done()
			t0 := time.Now()
			v.runCheck(ctx, c, run)
			c.Detail = redact(squash(c.Detail), secrets)
			d := time.Since(t0)
			if c.Name == CheckRelease {
				d += readRelease
			}
			c.DurationMs = float64(d.Nanoseconds()) / 1e6
		}(&checks[i], runs[name])
	}
	wg.Wait()
	rep := &Report{OK: true, Checks: checks}
	for _, c := range checks {
		if c.Status == Failed {
			rep.OK = false
		}
	}
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	if !rep.OK {
		var failed []string
		for _, c := range rep.Failed() {
			failed = append(failed, c.Name+": "+c.Detail)
		}
		return rep, errs.Failedf("verification failed: %s", strings.Join(failed, "; "))
	}
	return rep, nil
}

// retryPause is the first pause between attempts of a check (doubled up to
// two seconds).
var retryPause = 250 * time.Millisecond

// retryLast is what an attempt is left at least.
const retryLast = 50 * time.Millisecond

// One attempt is given a third of the check's Timeout, from minAttempt to
// maxAttempt: a connection that hangs (a port-forward whose far end closed
// without passing it on, as KWOK's does) is given up and tried anew instead
// of using the whole window; a healthy component answers in milliseconds.
var minAttempt, maxAttempt = time.Second, 10 * time.Second

func (v *Verify) attemptTimeout() time.Duration {
	return min(max(v.timeout()/3, minAttempt), maxAttempt)
}

// runCheck runs one check into c: again after a connection-level failure
// (refused, reset, EOF, a port-forward that dropped or hangs, no ready
// endpoint yet), each attempt picking a Ready pod anew, for as long as
// Timeout (or Retry) allows; any other failure, or the last one, is the
// check's result.
func (v *Verify) runCheck(ctx context.Context, c *Check, run func(context.Context) (string, error)) {
	window := v.timeout()
	if v.Retry > window {
		window = v.Retry
	}
	cctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	pause := retryPause
	var first error
	for {
		c.Attempts++
		actx, acancel := context.WithTimeout(cctx, v.attemptTimeout())
		detail, err := run(actx)
		hung := err != nil && actx.Err() == context.DeadlineExceeded && cctx.Err() == nil
		acancel()
		if hung {
			err = fmt.Errorf("%w (no answer within %s)", err, v.attemptTimeout())
		}
		var skip skipped
		switch {
		case err == nil:
			c.Status, c.Detail = Passed, detail
			if first != nil {
				c.Detail += fmt.Sprintf(" (passed after %d attempts; first: %v)", c.Attempts, first)
			}
			return
		case asSkip(err, &skip):
			c.Status, c.Detail = Skipped, string(skip)
			return
		}
		if (hung || Transient(err)) && cctx.Err() == nil {
			if first == nil {
				first = err
			}
			// the last pause is cut short: one more attempt before the deadline
			if dl, _ := cctx.Deadline(); time.Until(dl) > retryLast {
				select {
				case <-time.After(min(pause, time.Until(dl)-retryLast)):
					pause = min(2*pause, 2*time.Second)
					continue
				case <-cctx.Done():
				}
			}
		}
		if cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			err = fmt.Errorf("%w (timed out after %s)", err, window)
		}
		if c.Attempts > 1 {
			err = fmt.Errorf("%w (after %d attempts)", err, c.Attempts)
		}
		c.Status, c.Detail = Failed, err.Error()
		return
	}
}

// Transient says err is a connection-level failure worth another attempt on
// a freshly picked pod: the server side did not answer at all (refused,
// reset, EOF, a port-forward that dropped, no ready endpoint yet), as
// opposed to an answer that is wrong.
func Transient(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	// the checks' errors carry their cause as text (port-forward, gRPC, pgx)
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"eof", "connection refused", "connection reset", "broken pipe", "lost connection to pod",
		"error forwarding port", "port-forward", "no ready endpoint", "no ready pod", "unavailable desc"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// skipped is returned by a check that does not apply to the release.
type skipped string

func (s skipped) Error() string { return string(s) }

func errSkip(why string) error { return skipped(why) }

func asSkip(err error, s *skipped) bool {
	if x, ok := err.(skipped); ok {
		*s = x
		return true
	}
	return false
}

// squash keeps a whole detail on one line (some server errors span several;
// unlike steplog.OneLine, nothing is dropped: a check's detail is the evidence).
func squash(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// redact replaces any credential of the release that a server error might
// echo back (none is expected to) with "***".
func redact(s string, secrets []string) string {
	// longest first, so a secret containing another is replaced whole
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	for _, x := range secrets {
		if len(x) >= 4 {
			s = strings.ReplaceAll(s, x, "***")
		}
	}
	return s
}

// components is what the release's values say it runs.
type components struct {
	externalPostgres bool
	redis, gitaly    bool
	// s3 is the external object storage (global.objectStore.enabled=false), nil for built-in MinIO.
	s3 *S3Config
}

func componentsOf(values map[string]any, release string) components {
	c := components{
		externalPostgres: csghub.ExternalPostgres(values),
		redis:            !csghub.Disabled(values, "global.redis.enabled"),
		gitaly:           !csghub.Disabled(values, "global.gitaly.enabled"),
	}
	if csghub.Disabled(values, "global.objectStore.enabled") {
		s3 := ExternalS3(values, release)
		c.s3 = &s3
	}
	return c
}

func (c components) secrets() []string {
	if c.s3 == nil {
		return nil
	}
	return []string{c.s3.SecretKey}
}
