package plan

import (
	"context"
	"io"
	"time"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/csghub"
	"github.com/opencsgs/helm-csghub/internal/dbpod"
	"github.com/opencsgs/helm-csghub/internal/diff"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/lock"
	"github.com/opencsgs/helm-csghub/internal/migrate"
	"github.com/opencsgs/helm-csghub/internal/steplog"
)

// Preview is `helm csghub plan`: what an upgrade to the target would do,
// step by step. It changes nothing (an external PostgreSQL is reached
// through a client pod, deleted right after).
type Preview struct {
	Options
	// Skip are the migrations' switches turned off (e.g. --skip-dataflow-logs).
	Skip map[*migrate.Switch]bool
	// SkipDBCheck leaves out the check that an external PostgreSQL answers
	// from the cluster (as upgrade --skip-db-backup leaves out its dump).
	SkipDBCheck bool
	// PGImage, PGPodTimeout: the client pod of an external database.
	PGImage      string
	PGPodTimeout time.Duration
	// Log receives one line per step (nil: silent).
	Log steplog.Func
	// Diff, when set, adds what the Helm upgrade changes object by object
	// (plan --diff; not computed for a refused upgrade: nothing renders).
	Diff *diff.Options
	// BackupLocation is where the upgrade's backup would go ("": the
	// default folder); a bucket is checked now, as upgrade's preflight does.
	BackupLocation string
}

// Run computes the plan. An upgrade this plan would refuse comes back as
// the plan with a precondition error (exit 4) saying why.
func (v *Preview) Run(ctx context.Context) (*Plan, error) {
	p, err := Prepare(ctx, v.Options)
	if err != nil {
		return nil, err
	}
	for k, on := range v.Skip {
		p.Migrate.Skip[k] = on
	}
	if !v.SkipDBCheck {
		if err := checkExternalDB(ctx, v.Kube, p.Resolved.Namespace, p.Resolved.Name, p.Release, v.PGImage, v.PGPodTimeout, v.Log); err != nil {
			return nil, err
		}
	}
	cat := backup.CatalogAt(v.BackupLocation)
	if cat.InBucket() {
		// a bucket that is missing, refuses the credentials or does not
		// answer is refused now, not by the upgrade's backup (a write
		// check object is put and removed: the bucket is left as it was)
		if err := cat.Check(ctx, true); err != nil {
			return nil, err
		}
	}
	pl := p.Build(ctx, "backup catalog "+cat.Root)
	if pl.Refused != "" {
		return pl, errs.Preconditionf("%s", pl.Refused)
	}
	if v.Diff != nil {
		if pl.Diff, err = p.Diff(ctx, *v.Diff); err != nil {
			return pl, errs.Failedf("comparing the release with the target: %w", err)
		}
	}
	return pl, nil
}

// checkExternalDB: with global.postgresql.enabled=false the upgrade's backup
// runs in a client pod; the plan checks now that the servers answer from the
// cluster through it (the pod is deleted right after). An in-cluster
// PostgreSQL is nothing to check: the backup reaches it through its pod.
func checkExternalDB(ctx context.Context, kc *kube.Client, ns, name string, rel *release.Release, image string, timeout time.Duration, log steplog.Func) error {
	if rel == nil {
		return nil
	}
	all, err := chartutil.CoalesceValues(rel.Chart, rel.Config)
	if err != nil || !csghub.ExternalPostgres(all) {
		return nil
	}
	clients, err := backup.StartExternalClients(ctx, kc, ns, name, all, image, timeout, log)
	if err != nil {
		return err
	}
	return dbpod.CloseAll(clients)
}

// Migrate is `helm csghub migrate`: the version-specific migrations between
// the deployed and the target chart, run on their own (for upgrades done
// with plain helm upgrade), under the release lock.
type Migrate struct {
	Options
	// DryRun shows what each migration would change and changes nothing
	// (and takes no lock).
	DryRun         bool
	ForceConflicts bool
	// Skip are the migrations' switches turned off (e.g. --skip-dataflow-logs).
	Skip map[*migrate.Switch]bool
	// Dir is the backup catalog root ("" for the default): migrations that
	// export data put it into the deployed revision's newest backup there.
	Dir string
	// Progress gets live progress on a terminal (nil: silent).
	Progress io.Writer
	// Log receives one line per step (nil: silent).
	Log steplog.Func
}

// Migrated is what Migrate.Run did.
type Migrated struct {
	From    string           `json:"from"`
	To      string           `json:"to"`
	DryRun  bool             `json:"dryRun"`
	Results []migrate.Result `json:"migrations"`
	// Planned is how many migrations lie between the two versions.
	Planned int `json:"-"`
	// FollowUps are what the operator does next for the migrations applied
	// (none on a dry run or a failure).
	FollowUps []string `json:"-"`
}

// Run runs the migrations. The lock is taken first (not for a dry run; after
// the --version check), as upgrade does, so a second run meets the lock and not the first run's
// half-applied migrations. A migration that fails comes back as the results
// so far with the error (exit 1).
func (m *Migrate) Run(ctx context.Context) (*Migrated, error) {
	// bad input is a usage error whoever holds the lock
	if m.Target.Version != "" {
		if _, err := ParseVersion(m.Target.Version); err != nil {
			return nil, err
		}
	}
	var l *lock.Lock
	if !m.DryRun {
		var err error
		if l, err = lock.Take(ctx, m.Kube.Clientset, m.Release.Namespace, m.Release.Name, "migrate", m.Log); err != nil {
			return nil, err
		}
		l.ForgetObsolete(m.Release.Pending)
		defer l.Release()
	}
	p, err := Prepare(ctx, m.Options)
	if err != nil {
		return nil, err
	}
	mc := p.Migrate
	mc.DryRun, mc.ForceConflicts = m.DryRun, m.ForceConflicts
	mc.Log, mc.Progress = m.Log, m.Progress
	for k, on := range m.Skip {
		mc.Skip[k] = on
	}
	// migrations that export data put it beside the deployed revision's backup
	if e, err := backup.CatalogAt(m.Dir).ForRevision(m.Release.Namespace, m.Release.Name, p.Release.Version); err != nil {
		return nil, err
	} else {
		mc.Backup = e
	}
	// the Helm upgrade that follows would fail on a target that does not render
	if err := p.CheckRender(); err != nil {
		return nil, err
	}
	if err := migrate.Preflight(ctx, mc, p.Migrations); err != nil {
		return nil, errs.Preconditionf("%v", err)
	}
	if l != nil {
		if err := l.Held(ctx, "the migrations"); err != nil {
			return nil, err
		}
		if err := l.SetMark(ctx, m.mark(p.Target.VersionS)); err != nil {
			return nil, err
		}
	}
	results, runErr := migrate.Run(ctx, mc, p.Migrations)
	if runErr == nil && l != nil {
		l.ForgetFinished(lock.StepMigrate) // a killed migrate's work is done now
	}
	out := &Migrated{From: p.Current.String(), To: p.Target.VersionS, DryRun: m.DryRun, Results: results, Planned: len(p.Migrations)}
	if out.Results == nil {
		out.Results = []migrate.Result{}
	}
	if runErr != nil {
		return out, errs.Failedf("%v", runErr)
	}
	if !m.DryRun {
		out.FollowUps = migrate.FollowUps(mc, p.Migrations, results)
	}
	return out, nil
}
