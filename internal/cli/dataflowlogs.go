package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"

	"github.com/opencsgs/helm-csghub/internal/dataflowlogs"
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
revision; take one with helm csghub backup), in a folder or a bucket (--backup-location
s3://...), streamed and encrypted as the backup's own files are (its age recipients; in a
bucket, the server-side encryption of its manifest). The file joins the backup only once
complete (a folder's manifest lists it; in a bucket a record object beside it does), so
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
	if err := c.dir.resolve(); err != nil {
		return err
	}
	rel, kc, err := c.app.resolve()
	if err != nil {
		return err
	}
	x := &dataflowlogs.Export{Release: rel, Kube: kc, Dir: c.dir.loc(), BackupID: c.backupID,
		Progress: c.app.progressWriter(c.output), Log: c.app.stepLogger(c.output)}
	res, err := x.Run(ctx)
	if err != nil {
		return err
	}
	return c.app.print(c.output, res, func(w io.Writer) {
		t := newTable(w)
		t.row("DATABASE", "COLLECTION", "KIND", "UID", "DOCUMENTS")
		for _, col := range res.Collections {
			t.row(col.Database, col.Name, col.Kind, col.UID, col.Documents)
		}
		_ = t.flush()
		fmt.Fprintf(w, "%d documents in %d collections exported to %s/%s (sha256 %s)\n",
			res.Documents, len(res.Collections), res.Path, dataflowlogs.ExportFile, res.File.SHA256)
	})
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
		Long: `Verifies the export's checksum (streamed from a folder or a bucket; an encrypted
backup needs its key, --identity), creates Dataflow 2.0's task_log and operator_status tables
if Dataflow has not, and imports each collection with COPY in one transaction, recorded in
table ` + dataflowlogs.LedgerTable + `: running it again imports nothing twice.
Default backup: the newest one holding an export.`,
		Flags: func(fs *pflag.FlagSet) {
			c.dir.bind(fs)
			c.dir.bindIdentity(fs)
			fs.StringVar(&c.backupID, "backup", "", "backup ID holding the export (default: the newest that has one)")
			fs.DurationVar(&c.wait, "wait", 2*time.Minute, "how long to wait for database "+dataflowlogs.LogsDatabase+" to exist")
			c.output.bind(fs)
		},
		Run: c.run,
	}
}

func (c *dataflowLogsImportCmd) run(ctx context.Context, _ []string) error {
	if err := c.dir.resolve(); err != nil {
		return err
	}
	if c.wait <= 0 {
		return usageError("dataflow-logs import: --wait must be positive")
	}
	rel, kc, err := c.app.resolve()
	if err != nil {
		return err
	}
	im := &dataflowlogs.Import{Release: rel, Kube: kc, Dir: c.dir.loc(), BackupID: c.backupID, Wait: c.wait,
		Progress: c.app.progressWriter(c.output), Log: c.app.stepLogger(c.output)}
	res, err := im.Run(ctx)
	if err != nil {
		return err
	}
	return c.app.print(c.output, res, func(w io.Writer) {
		t := newTable(w)
		t.row("TASK TYPE", "UID", "TABLE", "IMPORTED", "ALREADY IMPORTED")
		for _, ic := range res.Collections {
			table, tt := "task_log", ic.TaskType
			if ic.Kind == dataflowlogs.KindStatus {
				table, tt = "operator_status", "pipeline"
			}
			t.row(tt, ic.UID, table, ic.Imported, ic.AlreadyImported)
		}
		_ = t.flush()
		fmt.Fprintf(w, "%d rows imported, %d already imported, from backup %s\n", res.Imported, res.Already, res.Backup)
	})
}
