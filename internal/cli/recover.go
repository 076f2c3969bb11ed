package cli

import (
	"context"
	"fmt"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/recovery"
)

// recoverKilledRun is `helm csghub rollback` on a release left pending by a
// killed plugin run (proven by its lease): it rolls back to the revision the
// run came from and restores the run's backup. done is false when the
// release is not pending (a normal rollback follows).
func (c *rollbackCmd) recoverKilledRun(ctx context.Context, rel *helmenv.Release, kc *kube.Client, rev int) (done bool, err error) {
	rec := &recovery.Recovery{Release: rel, Kube: kc, Dir: c.dir.loc(), Timeout: c.timeout,
		Progress: c.app.progressWriter(c.output), Log: c.app.stepLogger(c.output),
		PGImage: c.pg.image, PGPodTimeout: c.pg.timeout}
	p, err := rec.Check(ctx, nil)
	if err != nil || p == nil {
		return err != nil, err
	}
	name := rel.Name
	if rev != 0 && rev != p.To.Version {
		return true, errs.Usagef("rollback %d: release %q is pending from a killed run that came from revision %d; recovery rolls back to it: run `helm csghub rollback` without REVISION first", rev, name, p.To.Version)
	}
	if c.backupID != "" || c.skipDBRestore {
		return true, usageError("rollback: --backup and --skip-db-restore do not apply to the recovery of a killed run (it restores the run's own backup)")
	}
	if err := c.app.confirm(ctx, c.yes, p.Describe(name)); err != nil {
		return true, err
	}
	res, err := rec.Run(ctx, p)
	if res != nil && c.output == outputJSON {
		_ = writeJSON(c.app.Stdout, res)
	}
	if err != nil {
		return true, err
	}
	if c.output != outputJSON {
		t := newTable(c.app.Stdout)
		t.row("RECOVERED:", fmt.Sprintf("revision %d (%s) of a killed helm csghub %s", res.PendingRevision, res.PendingStatus, p.Mark.Operation))
		for _, d := range res.Done {
			t.row("DONE:", d)
		}
		_ = t.flush()
	}
	return true, nil
}
