// Package migrate holds the version-specific steps of the CSGHub upgrade guide
// ("must be executed in sequential order") as idempotent migrations. Each one
// registers itself from its own file (v1_16_0_crds.go, ...): adding one for a
// future version is one new file plus its test.
//
// A migration is planned when current < Version <= target; one that implements
// Recurring (the CRDs, which Helm never upgrades) is planned for every upgrade
// with Version <= target. Check says whether
// it is already applied; Apply changes the cluster (or, with DryRun, only shows
// what it would change, through server-side dry run where the API allows).
package migrate

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v3/pkg/chart"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/crds"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/livediff"
	"github.com/opencsgs/helm-csghub/internal/steplog"
)

// FieldManager is the plugin's server-side apply field manager.
const FieldManager = "helm-csghub"

// Migration is one version-specific step.
type Migration interface {
	// Version is the chart version that introduced the need for this step.
	Version() *semver.Version
	// Name is a short identifier, e.g. "envoy-gateway-crds".
	Name() string
	// Describe says why the step exists and what it touches (for `plan`).
	Describe(c *Context) Description
	// Check reports whether the step is already applied, with a one-line detail.
	Check(ctx context.Context, c *Context) (applied bool, detail string, err error)
	// Apply makes the change (or shows it with c.DryRun). Changes lists each
	// object created, patched or deleted.
	Apply(ctx context.Context, c *Context) ([]Change, error)
}

// Description is a migration's entry in a plan.
type Description struct {
	Reason  string   `json:"reason"`
	Touches []string `json:"touches"`
}

// Change is one object a migration changed (or would change in a dry run).
type Change struct {
	Action string `json:"action"` // create, update, adopt, delete, export, import, unchanged
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Detail string `json:"detail,omitempty"`
}

func (c Change) String() string {
	s := fmt.Sprintf("%s %s %s", c.Action, c.Kind, c.Name)
	if c.Detail != "" {
		s += " (" + c.Detail + ")"
	}
	return s
}

// Context is what migrations work with.
type Context struct {
	Release   string
	Namespace string
	Current   *semver.Version
	Target    *semver.Version
	// TargetChart is the chart about to be installed (CRDs come from it).
	TargetChart *chart.Chart
	// Values are the values the upgrade installs with (the deployed revision's
	// user-supplied values with -f/--set on top).
	Values map[string]any
	// Rendered returns the target chart's objects as the upgrade would render them.
	Rendered func() ([]*unstructured.Unstructured, error)
	// CRDs returns the CRDs Helm would install for the target chart and Values
	// (computed once); nil: computed on each use.
	CRDs func() (*crds.Set, error)
	// Live is the snapshot of the live objects of the rendered target's kinds
	// (shared with plan's comparison); nil: the takeover takes its own.
	Live *livediff.Snapshot

	Clientset kubernetes.Interface
	Dynamic   dynamic.Interface
	// Metadata lists objects' metadata only (optional: Dynamic otherwise).
	Metadata  metadata.Interface
	Discovery discovery.DiscoveryInterface
	Mapper    meta.RESTMapper

	DryRun         bool
	ForceConflicts bool
	// Concurrency bounds parallel API calls (default 4).
	Concurrency int
	// Backup is the backup taken before the upgrade (for migrations that
	// export data into it: a folder or a bucket), nil when there is none.
	Backup *backup.Entry
	// BackupPending says the caller takes that backup after preflight and
	// before the migrations run (upgrade), so a nil Backup is fine then.
	BackupPending bool
	// Skip holds the Switches the operator turned off (see Switchable).
	Skip map[*Switch]bool
	// Kube does exec and port-forwards (migrations that read pods' data).
	Kube *kube.Client
	// Progress gets live progress lines on a terminal (nil: silent).
	Progress io.Writer
	// Wait bounds how long a post-upgrade step waits for what the new
	// version creates (e.g. a database), default 5 minutes.
	Wait time.Duration
	// Waited adds up the time post-upgrade steps spent waiting (the upgrade
	// counts it against its --timeout; moving data is not counted).
	Waited time.Duration
	// Notes are what the operator should know afterwards (e.g. data kept).
	Notes []string
	Log   steplog.Func

	// running is set while Run checks and applies (Check is followed by
	// Apply at once); crdExam is the CRD step's Check result for that Apply.
	running bool
	crdExam *crdExamination
}

// Note records something the operator should know after the run.
// A note already recorded (a check that ran twice) is not repeated.
func (c *Context) Note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	for _, x := range c.Notes {
		if x == n {
			return
		}
	}
	c.Notes = append(c.Notes, n)
}

func (c *Context) concurrency() int {
	if c.Concurrency > 0 {
		return c.Concurrency
	}
	return 4
}

var registry []Migration

// Register adds a migration; each migration file calls it from init.
func Register(m Migration) {
	for _, r := range registry {
		if r.Name() == m.Name() {
			panic("migration registered twice: " + m.Name())
		}
	}
	registry = append(registry, m)
	sort.SliceStable(registry, func(i, j int) bool { return registry[i].Version().LessThan(registry[j].Version()) })
}

// All returns every registered migration in version order.
func All() []Migration { return append([]Migration(nil), registry...) }

// Recurring is implemented by a migration planned for every upgrade to a
// target at or after its Version, not only when the upgrade crosses it.
type Recurring interface {
	EveryUpgrade()
}

// Between returns the migrations with current < Version <= target, and the
// Recurring ones with Version <= target, in version order.
func Between(current, target *semver.Version) []Migration {
	var out []Migration
	for _, m := range registry {
		_, always := m.(Recurring)
		if (always || m.Version().GreaterThan(current)) && !m.Version().GreaterThan(target) {
			out = append(out, m)
		}
	}
	return out
}

// Result is one migration's outcome in a run.
type Result struct {
	Version        string   `json:"version"`
	Name           string   `json:"name"`
	AlreadyApplied bool     `json:"alreadyApplied"`
	Detail         string   `json:"detail,omitempty"`
	Changes        []Change `json:"changes"`
	// Seconds is the time the check and the apply took.
	Seconds float64 `json:"seconds"`
}

// Summary counts what the step sent (created, updated, deleted, ...) and
// what it found current and left alone ("unchanged", "keep"): "5 change(s),
// 19 current", matching the step's plan line ("0 to create, 5 to update, 19
// current") instead of counting every object it looked at as a change.
func (r Result) Summary() string {
	sent, current := 0, 0
	for _, c := range r.Changes {
		if c.Action == "unchanged" || c.Action == "keep" {
			current++
			continue
		}
		sent++
	}
	if current == 0 {
		return fmt.Sprintf("%d change(s)", sent)
	}
	return fmt.Sprintf("%d change(s), %d current", sent, current)
}

// Run checks and applies each migration in order; it stops at the first error.
func Run(ctx context.Context, c *Context, ms []Migration) ([]Result, error) {
	c.running = true
	defer func() { c.running, c.crdExam = false, nil }()
	var out []Result
	for _, m := range ms {
		if rm, ok := c.Mapper.(meta.ResettableRESTMapper); ok {
			rm.Reset() // a previous step may have added kinds (CRDs)
		}
		r := Result{Version: m.Version().String(), Name: m.Name(), Changes: []Change{}}
		t0 := time.Now()
		applied, detail, err := m.Check(ctx, c)
		r.Seconds = time.Since(t0).Seconds()
		if err != nil {
			return out, fmt.Errorf("migration v%s %s: checking: %w", m.Version(), m.Name(), err)
		}
		r.Detail = detail
		if applied {
			r.AlreadyApplied = true
			c.Log.Printf("v%s %s: already applied (%s)", m.Version(), m.Name(), detail)
			out = append(out, r)
			continue
		}
		verb := "applying"
		if c.DryRun {
			verb = "dry run of"
		}
		c.Log.Printf("v%s %s: %s (%s)", m.Version(), m.Name(), verb, detail)
		changes, err := m.Apply(ctx, c)
		r.Seconds = time.Since(t0).Seconds()
		r.Changes = append(r.Changes, changes...)
		out = append(out, r)
		if err != nil {
			return out, fmt.Errorf("migration v%s %s: %w", m.Version(), m.Name(), err)
		}
	}
	return out, nil
}

// MustVersion parses a registry version literal.
func MustVersion(s string) *semver.Version { return semver.MustParse(s) }

// PostUpgrade is implemented by migrations with work after the Helm upgrade
// (e.g. importing data into a database the new version created).
type PostUpgrade interface {
	AfterUpgrade(ctx context.Context, c *Context) ([]Change, error)
}

// Preflighter is implemented by migrations that need something reachable
// (e.g. a database to export from): checked before anything changes.
type Preflighter interface {
	Preflight(ctx context.Context, c *Context) error
}

// Preflight runs the preflight check of every migration in ms that has one.
func Preflight(ctx context.Context, c *Context, ms []Migration) error {
	for _, m := range ms {
		if p, ok := m.(Preflighter); ok {
			if err := p.Preflight(ctx, c); err != nil {
				return fmt.Errorf("migration v%s %s: %w", m.Version(), m.Name(), err)
			}
		}
	}
	return nil
}
