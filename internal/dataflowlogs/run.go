package dataflowlogs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/csghub"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/lock"
	"github.com/opencsgs/helm-csghub/internal/steplog"
)

// Export is `helm csghub dataflow-logs export`: the release's task logs into
// a complete backup, under the release lock.
type Export struct {
	Release *helmenv.Release
	Kube    *kube.Client
	// Dir is the backup catalog root ("" for the default).
	Dir string
	// BackupID names the backup to export into; empty: the newest complete
	// backup of the deployed revision.
	BackupID string
	// Progress gets live progress on a terminal (nil: silent).
	Progress io.Writer
	// Log receives one line per step (nil: silent).
	Log steplog.Func
}

// Exported is what Export.Run wrote, and where.
type Exported struct {
	Backup string `json:"backupId"`
	Path   string `json:"-"`
	*ExportResult
}

// Run exports. Read-only checks come first (a MongoDB to read, a backup to
// write into); the lock is taken before the backup changes.
func (x *Export) Run(ctx context.Context) (*Exported, error) {
	r := &Release{Kube: x.Kube, Namespace: x.Release.Namespace, Name: x.Release.Name, Progress: x.Progress}
	runs, err := r.RunsMongo(ctx)
	if err != nil {
		return nil, errs.Failedf("%v", err)
	}
	if !runs {
		return nil, errs.NotFoundf("release %q runs no StatefulSet %s: there are no Dataflow logs in MongoDB to export", r.Name, csghub.MongoStatefulSet(r.Name))
	}
	cat := backup.CatalogAt(x.Dir)
	e, err := exportTarget(cat, x.Release, x.BackupID)
	if err != nil {
		return nil, err
	}
	l, err := lock.Take(ctx, x.Kube.Clientset, r.Namespace, r.Name, "dataflow-logs export", x.Log)
	if err != nil {
		return nil, err
	}
	defer l.Release()
	res, err := r.Export(ctx, e)
	if err != nil {
		if ctx.Err() != nil {
			return nil, errs.Wrap(errs.Interrupted, fmt.Errorf("export interrupted: nothing of it was kept in backup %s", e.ID))
		}
		var typed *errs.Error
		if errors.As(err, &typed) {
			return nil, err
		}
		return nil, errs.Failedf("exporting the Dataflow logs: %v", err)
	}
	return &Exported{Backup: e.ID, Path: e.Path, ExportResult: res}, nil
}

// exportTarget is the backup an export goes into: id when given, else the
// newest complete backup of the deployed revision (an export beside the
// database dump it belongs with).
func exportTarget(cat backup.Catalog, rel *helmenv.Release, id string) (*backup.Entry, error) {
	if id != "" {
		return cat.Find(rel.Namespace, rel.Name, id)
	}
	last, err := rel.Last()
	if err != nil {
		return nil, err
	}
	e, err := cat.ForRevision(rel.Namespace, rel.Name, last.Version)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, errs.Preconditionf("no backup of revision %d to export into: take one first with `helm csghub backup`", last.Version)
	}
	return e, nil
}

// Import is `helm csghub dataflow-logs import`: an export into LogsDatabase,
// under the release lock.
type Import struct {
	Release *helmenv.Release
	Kube    *kube.Client
	// Dir is the backup catalog root ("" for the default).
	Dir string
	// BackupID names the backup holding the export; empty: the newest
	// complete backup that holds one.
	BackupID string
	// Wait is how long to wait for the new version to create LogsDatabase.
	Wait time.Duration
	// Progress gets live progress on a terminal (nil: silent).
	Progress io.Writer
	// Log receives one line per step (nil: silent).
	Log steplog.Func
}

// Imported is what Import.Run imported, and from which backup.
type Imported struct {
	Backup string `json:"backupId"`
	*ImportResult
}

// Run imports. A deployed chart without LogsDatabase is refused before
// anything is read; the lock is taken before the database changes.
func (im *Import) Run(ctx context.Context) (*Imported, error) {
	ns, name := im.Release.Namespace, im.Release.Name
	// never wait for a database the deployed chart does not create: Dataflow
	// >= 2.2 keeps task logs in files (the export stays in the backup)
	if last, err := im.Release.Last(); err == nil && NoLogsDatabase(helmenv.ChartVersion(last)) {
		return nil, errs.Preconditionf("chart %s has no %s (Dataflow >= 2.2 keeps task logs in files): there is nothing to import into; the export stays in the backup",
			helmenv.ChartVersion(last), LogsDatabase)
	}
	cat := backup.CatalogAt(im.Dir)
	e, err := importSource(cat, ns, name, im.BackupID)
	if err != nil {
		return nil, err
	}
	l, err := lock.Take(ctx, im.Kube.Clientset, ns, name, "dataflow-logs import", im.Log)
	if err != nil {
		return nil, err
	}
	defer l.Release()
	// killed, the logs are partly imported: status names this command again
	if err := l.SetMark(ctx, &lock.Mark{Operation: "dataflow-logs import", Step: lock.StepImport, Backup: e.ID,
		Command: "helm csghub dataflow-logs import --backup " + e.ID + im.Release.Flags(im.Dir)}); err != nil {
		return nil, err
	}
	r := &Release{Kube: im.Kube, Namespace: ns, Name: name, Progress: im.Progress}
	res, err := r.Import(ctx, e, im.Wait)
	if err != nil {
		if ctx.Err() != nil {
			return nil, errs.Wrap(errs.Interrupted, fmt.Errorf("import interrupted; collections finished before are recorded, run it again to finish"))
		}
		if errs.KindOf(err) == errs.Precondition { // a corrupt export, an encrypted one without its key
			return nil, errs.Preconditionf("importing the Dataflow logs from %s: %v", e.ID, err)
		}
		return nil, errs.Failedf("importing the Dataflow logs from %s: %v", e.ID, err)
	}
	l.ForgetFinished(lock.StepImport) // a killed import's work is done now
	return &Imported{Backup: e.ID, ImportResult: res}, nil
}

// importSource is the backup an import reads: id when given (it must hold an
// export), else the newest complete backup holding one.
func importSource(cat backup.Catalog, ns, name, id string) (*backup.Entry, error) {
	if id != "" {
		e, err := cat.Find(ns, name, id)
		if err != nil {
			return nil, err
		}
		if !HasExport(e) {
			return nil, errs.NotFoundf("backup %s holds no Dataflow logs export", e.ID)
		}
		return e, nil
	}
	list, err := cat.List(ns, name)
	if err != nil {
		return nil, err
	}
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Complete && HasExport(&list[i]) {
			return &list[i], nil
		}
	}
	return nil, errs.NotFoundf("no backup of release %q holds a Dataflow logs export (see: helm csghub dataflow-logs export)", name)
}
