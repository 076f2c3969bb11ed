package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/csghub"
	"github.com/opencsgs/helm-csghub/internal/dataflowlogs"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
)

func newDataflowLogsCmd(app *App) *command {
	return &command{
		Name:    "dataflow-logs",
		Summary: "Move Dataflow task logs from MongoDB (chart <= 1.17) to PostgreSQL (2.0) by hand",
		Long: `upgrade does both steps itself. These are for upgrades done with plain helm upgrade
(export before it, import after it) and for retrying an import that failed.`,
		Subs: []*command{newDataflowLogsExportCmd(app), newDataflowLogsImportCmd(app)},
	}
}

type dataflowLogsExportCmd struct {
	app      *App
	dir      catalogDir
	backupID string
	output   output
}

func newDataflowLogsExportCmd(app *App) *command {
	c := &dataflowLogsExportCmd{app: app}
	return &command{
		Name:    "export",
		Summary: "Export the task logs of <release>-mongo into a backup",
		Long: `Reads every task-log collection of the release's MongoDB through a port-forward into
` + dataflowlogs.ExportFile + ` of a complete backup (default: the newest backup of the deployed
revision; take one with helm csghub backup). The file joins the backup's manifest, so
helm csghub backup verify checks it. Exporting again replaces it.`,
		Flags: func(fs *pflag.FlagSet) {
			c.dir.bind(fs)
			fs.StringVar(&c.backupID, "backup", "", "backup ID to export into (default: the newest backup of the deployed revision)")
			c.output.bind(fs)
		},
		Run: c.run,
	}
}

func (c *dataflowLogsExportCmd) run(ctx context.Context, _ []string) error {
	hr, kc, err := c.app.resolve()
	if err != nil {
		return err
	}
	r := &dataflowlogs.Release{Kube: kc, Namespace: hr.Namespace, Name: hr.Name, Progress: c.app.progressWriter(c.output)}
	runs, err := r.RunsMongo(ctx)
	if err != nil {
		return errs.Failedf("%v", err)
	}
	if !runs {
		return errs.NotFoundf("release %q runs no StatefulSet %s: there are no Dataflow logs in MongoDB to export", r.Name, csghub.MongoStatefulSet(r.Name))
	}
	cat := c.dir.catalog()
	var e *backup.Entry
	if c.backupID != "" {
		e, err = cat.Find(r.Namespace, r.Name, c.backupID)
	} else {
		e, err = deployedBackup(cat, hr)
	}
	if err != nil {
		return err
	}
	unlock, err := c.app.lockRelease(ctx, hr, kc, "dataflow-logs export")
	if err != nil {
		return err
	}
	defer unlock()
	res, err := r.Export(ctx, e.Path)
	if err != nil {
		return errs.Failedf("exporting the Dataflow logs: %v", err)
	}
	if c.output == outputJSON {
		return writeJSON(c.app.Stdout, struct {
			Backup string `json:"backupId"`
			*dataflowlogs.ExportResult
		}{e.ID, res})
	}
	t := newTable(c.app.Stdout)
	t.row("DATABASE", "COLLECTION", "KIND", "UID", "DOCUMENTS")
	for _, col := range res.Collections {
		t.row(col.Database, col.Name, col.Kind, col.UID, col.Documents)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.app.Stdout, "%d documents in %d collections exported to %s/%s (sha256 %s)\n",
		res.Documents, len(res.Collections), e.Path, dataflowlogs.ExportFile, res.File.SHA256)
	return nil
}

func deployedBackup(cat backup.Catalog, hr *helmenv.Release) (*backup.Entry, error) {
	rel, err := hr.Last()
	if err != nil {
		return nil, err
	}
	e, err := cat.ForRevision(hr.Namespace, hr.Name, rel.Version)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, errs.Preconditionf("no backup of revision %d to export into: take one first with `helm csghub backup`", rel.Version)
	}
	return e, nil
}

type dataflowLogsImportCmd struct {
	app      *App
	dir      catalogDir
	backupID string
	wait     time.Duration
	output   output
}

func newDataflowLogsImportCmd(app *App) *command {
	c := &dataflowLogsImportCmd{app: app}
	return &command{
		Name:    "import",
		Summary: "Import an exported Dataflow logs file into " + dataflowlogs.LogsDatabase,
		Long: `Verifies the export's checksum, creates Dataflow 2.0's task_log and operator_status tables
if Dataflow has not, and imports each collection with COPY in one transaction, recorded in
table ` + dataflowlogs.LedgerTable + `: running it again imports nothing twice.
Default backup: the newest one holding an export.`,
		Flags: func(fs *pflag.FlagSet) {
			c.dir.bind(fs)
			fs.StringVar(&c.backupID, "backup", "", "backup ID holding the export (default: the newest that has one)")
			fs.DurationVar(&c.wait, "wait", 2*time.Minute, "how long to wait for database "+dataflowlogs.LogsDatabase+" to exist")
			c.output.bind(fs)
		},
		Run: c.run,
	}
}

func (c *dataflowLogsImportCmd) run(ctx context.Context, _ []string) error {
	if c.wait <= 0 {
		return usageError("dataflow-logs import: --wait must be positive")
	}
	hr, kc, err := c.app.resolve()
	if err != nil {
		return err
	}
	ns, rel := hr.Namespace, hr.Name
	// never wait for a database the deployed chart does not create: Dataflow
	// >= 2.2 keeps task logs in files (the export stays in the backup)
	if last, err := hr.Last(); err == nil && dataflowlogs.NoLogsDatabase(helmenv.ChartVersion(last)) {
		return errs.Preconditionf("chart %s has no %s (Dataflow >= 2.2 keeps task logs in files): there is nothing to import into; the export stays in the backup",
			helmenv.ChartVersion(last), dataflowlogs.LogsDatabase)
	}
	cat := c.dir.catalog()
	var e *backup.Entry
	if c.backupID != "" {
		if e, err = cat.Find(ns, rel, c.backupID); err != nil {
			return err
		}
		if !dataflowlogs.HasExport(e) {
			return errs.NotFoundf("backup %s holds no Dataflow logs export", e.ID)
		}
	} else {
		list, err := cat.List(ns, rel)
		if err != nil {
			return err
		}
		for i := len(list) - 1; i >= 0 && e == nil; i-- {
			if list[i].Complete && dataflowlogs.HasExport(&list[i]) {
				e = &list[i]
			}
		}
		if e == nil {
			return errs.NotFoundf("no backup of release %q holds a Dataflow logs export (see: helm csghub dataflow-logs export)", rel)
		}
	}
	unlock, err := c.app.lockRelease(ctx, hr, kc, "dataflow-logs import")
	if err != nil {
		return err
	}
	defer unlock()
	r := &dataflowlogs.Release{Kube: kc, Namespace: ns, Name: rel, Progress: c.app.progressWriter(c.output)}
	res, err := r.Import(ctx, e, c.wait)
	if err != nil {
		if ctx.Err() != nil {
			return errs.Wrap(errs.Interrupted, fmt.Errorf("import interrupted; collections finished before are recorded, run it again to finish"))
		}
		return errs.Failedf("importing the Dataflow logs from %s: %v", e.ID, err)
	}
	if c.output == outputJSON {
		return writeJSON(c.app.Stdout, struct {
			Backup string `json:"backupId"`
			*dataflowlogs.ImportResult
		}{e.ID, res})
	}
	t := newTable(c.app.Stdout)
	t.row("TASK TYPE", "UID", "TABLE", "IMPORTED", "ALREADY IMPORTED")
	for _, ic := range res.Collections {
		table, tt := "task_log", ic.TaskType
		if ic.Kind == dataflowlogs.KindStatus {
			table, tt = "operator_status", "pipeline"
		}
		t.row(tt, ic.UID, table, ic.Imported, ic.AlreadyImported)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.app.Stdout, "%d rows imported, %d already imported, from backup %s\n", res.Imported, res.Already, e.ID)
	return nil
}
