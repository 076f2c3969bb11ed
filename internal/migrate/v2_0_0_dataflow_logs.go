package migrate

import (
	"context"
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/opencsgs/helm-csghub/internal/csghub"
	"github.com/opencsgs/helm-csghub/internal/dataflowlogs"
)

// skipDataflowLogs (--skip-dataflow-logs) leaves the Dataflow logs in MongoDB.
var skipDataflowLogs = &Switch{Flag: "skip-dataflow-logs", Help: map[string]string{
	"upgrade": "do not move Dataflow task logs from MongoDB to PostgreSQL (v2.0.0); they stay in MongoDB's volume",
	"migrate": "do not export Dataflow task logs from MongoDB (v2.0.0)",
	"plan":    "plan without moving Dataflow task logs (as upgrade --skip-dataflow-logs)",
}}

// dataflowLogs is the guide's v2.0.0 note "perform the migration operation
// to switch the database": Dataflow 2.0 keeps task logs in PostgreSQL and
// upstream ships no move, so 1.x logs in MongoDB would be abandoned. Before
// the Helm upgrade (which removes MongoDB) the logs are exported into the
// upgrade's backup; after it they are imported into csghub_dataflow_logs.
type dataflowLogs struct{}

func init() { Register(dataflowLogs{}) }

func (dataflowLogs) Version() *semver.Version { return MustVersion("2.0.0") }
func (dataflowLogs) Name() string             { return "dataflow-logs" }

// filesFrom is the first chart whose Dataflow (2.2) keeps task logs in files
// under runtime_logs/ in its container (data_server/log_tools/tools.py of
// OpenCSGs/csghub-dataflow v2.2.0) and creates no csghub_dataflow_logs: there
// is no database to import into, and its pre-upgrade hook empties the task
// tables the old logs belong to. The export then stays in the backup.
var filesFrom = MustVersion("2.2.0")

func keepsExportOnly(c *Context) bool { return c.Target != nil && !c.Target.LessThan(filesFrom) }

func (dataflowLogs) Switches() []*Switch { return []*Switch{skipDataflowLogs} }

// Permissions: the export reads MongoDB's StatefulSet and lists its volumes.
func (dataflowLogs) Permissions(c *Context) []Permission {
	return []Permission{{Verb: "get", Group: "apps", Resource: "statefulsets", Namespace: c.Namespace},
		{Verb: "list", Resource: "persistentvolumeclaims", Namespace: c.Namespace}}
}

// FollowUp: after a plain helm upgrade the logs wait in the backup.
func (dataflowLogs) FollowUp(c *Context) string {
	return "after the Helm upgrade, import the Dataflow logs with: helm csghub dataflow-logs import -n " + c.Namespace
}

func (dataflowLogs) Describe(c *Context) Description {
	if keepsExportOnly(c) {
		return Description{
			Reason: "Dataflow >= 2.2 keeps task logs in files inside its pod (no database; " + dataflowlogs.LogsDatabase + " is not created) " +
				"and the chart removes MongoDB: the logs are exported into the backup before the Helm upgrade and kept there (nothing to import into)",
			Touches: []string{
				"MongoDB " + c.Namespace + "/" + csghub.MongoPod(c.Release) + " (read only, port-forward)",
				"backup file " + dataflowlogs.ExportFile,
			},
		}
	}
	return Description{
		Reason: "Dataflow 2.0 keeps task logs in PostgreSQL and the chart removes MongoDB: the logs are exported " +
			"into the backup before the Helm upgrade and imported into " + dataflowlogs.LogsDatabase + " after it",
		Touches: []string{
			"MongoDB " + c.Namespace + "/" + csghub.MongoPod(c.Release) + " (read only, port-forward)",
			"backup file " + dataflowlogs.ExportFile,
			"PostgreSQL " + dataflowlogs.LogsDatabase + ": task_log, operator_status, " + dataflowlogs.LedgerTable,
		},
	}
}

func (dataflowLogs) release(c *Context) *dataflowlogs.Release {
	return &dataflowlogs.Release{Kube: c.Kube, Namespace: c.Namespace, Name: c.Release, Progress: c.Progress}
}

func (d dataflowLogs) Check(ctx context.Context, c *Context) (bool, string, error) {
	if c.Off(skipDataflowLogs) {
		return true, "skipped on request (--skip-dataflow-logs): the logs stay in MongoDB's volume", nil
	}
	runs, err := d.release(c).RunsMongo(ctx)
	if err != nil {
		return false, "", err
	}
	if !runs {
		return true, "nothing to move: the release runs no StatefulSet " + csghub.MongoStatefulSet(c.Release), nil
	}
	if keepsExportOnly(c) {
		return false, "export the task logs of " + csghub.MongoStatefulSet(c.Release) + " into the backup and keep them there (the target has no task-log database)", nil
	}
	return false, "export the task logs of " + csghub.MongoStatefulSet(c.Release) + " into the backup, import them after the upgrade", nil
}

// Preflight connects to MongoDB and lists the logs, so an unreachable server
// stops the upgrade before anything changes.
func (d dataflowLogs) Preflight(ctx context.Context, c *Context) error {
	applied, _, err := d.Check(ctx, c)
	if err != nil || applied {
		return err
	}
	if c.Backup == nil && !c.BackupPending && !c.DryRun {
		return fmt.Errorf("the Dataflow logs export goes into a backup of the deployed revision and there is none: take one first with `helm csghub backup`, or pass --skip-dataflow-logs")
	}
	inv, err := d.release(c).Inventory(ctx)
	if err != nil {
		return fmt.Errorf("Dataflow logs cannot be exported: %v; fix MongoDB or pass --skip-dataflow-logs to leave the logs in its volume", err)
	}
	c.Log.Printf("v2.0.0 dataflow-logs: MongoDB reachable, %d task collection(s), %d document(s)", len(inv.Collections), inv.Documents)
	return nil
}

func (d dataflowLogs) Apply(ctx context.Context, c *Context) ([]Change, error) {
	r := d.release(c)
	if c.DryRun {
		inv, err := r.Inventory(ctx)
		if err != nil {
			return nil, err
		}
		return collectionChanges("export", inv.Collections), nil
	}
	if c.Backup == nil {
		return nil, fmt.Errorf("the export goes into a backup of the deployed revision: take one first with `helm csghub backup`")
	}
	res, err := r.Export(ctx, c.Backup)
	if err != nil {
		return nil, err
	}
	changes := collectionChanges("export", res.Collections)
	changes = append(changes, Change{Action: "create", Kind: "file", Name: c.Backup.Path + "/" + dataflowlogs.ExportFile,
		Detail: fmt.Sprintf("%d documents, %d bytes, sha256 %s", res.Documents, res.File.Bytes, res.File.SHA256)})
	if len(res.Skipped) > 0 {
		c.Note("Dataflow logs: collections that hold no task logs were not exported: %s", strings.Join(res.Skipped, ", "))
	}
	return changes, nil
}

// AfterUpgrade imports the export of this run's backup, then says where
// MongoDB's data stays.
func (d dataflowLogs) AfterUpgrade(ctx context.Context, c *Context) ([]Change, error) {
	if c.Off(skipDataflowLogs) || c.Backup == nil {
		return nil, nil
	}
	e := c.Backup // its manifest lists the export once Apply committed it
	if !dataflowlogs.HasExport(e) {
		return nil, nil // the release ran no MongoDB
	}
	r := d.release(c)
	if keepsExportOnly(c) {
		// never wait for a database the target does not create
		c.Note("Dataflow logs: chart %s keeps Dataflow task logs in files in its pod and has no %s, so the MongoDB export is kept in backup %s (%s), not imported; `helm csghub rollback` to the backed-up revision brings them back with MongoDB",
			c.Target, dataflowlogs.LogsDatabase, e.ID, dataflowlogs.ExportFile)
		if vols, verr := r.KeptVolumes(ctx); verr == nil && len(vols) > 0 {
			c.Note("MongoDB's data is kept in PersistentVolumeClaim(s) %s (namespace %s) with Secret %s; once you no longer need it, delete them with: kubectl -n %s delete pvc %s && kubectl -n %s delete secret %s",
				strings.Join(vols, ", "), c.Namespace, csghub.MongoStatefulSet(c.Release),
				c.Namespace, strings.Join(vols, " "), c.Namespace, csghub.MongoStatefulSet(c.Release))
		}
		return []Change{{Action: "unchanged", Kind: "file", Name: e.Path + "/" + dataflowlogs.ExportFile, Detail: "kept in the backup: the target has no task-log database"}}, nil
	}
	res, err := r.Import(ctx, e, c.Wait)
	var changes []Change
	if res != nil {
		c.Waited += res.Waited
		for _, ic := range res.Collections {
			changes = append(changes, importChange(ic))
		}
	}
	if err != nil {
		return changes, fmt.Errorf("importing the Dataflow logs: %w (the export is kept in %s; retry with `helm csghub dataflow-logs import --backup %s`)",
			err, e.Path, e.ID)
	}
	c.Note("Dataflow logs: %d row(s) imported into %s (%d already there) from %s", res.Imported, dataflowlogs.LogsDatabase, res.Already, e.ID)
	if vols, verr := r.KeptVolumes(ctx); verr == nil && len(vols) > 0 {
		c.Note("MongoDB's data is kept in PersistentVolumeClaim(s) %s (namespace %s) with Secret %s; once the logs are checked, delete them with: kubectl -n %s delete pvc %s && kubectl -n %s delete secret %s",
			strings.Join(vols, ", "), c.Namespace, csghub.MongoStatefulSet(c.Release),
			c.Namespace, strings.Join(vols, " "), c.Namespace, csghub.MongoStatefulSet(c.Release))
	}
	return changes, nil
}

func collectionChanges(action string, cols []dataflowlogs.Collection) []Change {
	out := make([]Change, 0, len(cols))
	for _, col := range cols {
		out = append(out, Change{Action: action, Kind: "collection", Name: col.Database + "." + col.Name,
			Detail: fmt.Sprintf("%d documents", col.Documents)})
	}
	return out
}

// importChange is one task's count in the run's report.
func importChange(ic dataflowlogs.ImportedCollection) Change {
	ch := Change{Action: "import", Kind: "task_log", Name: ic.TaskType + "/" + ic.UID,
		Detail: fmt.Sprintf("%d rows", ic.Imported)}
	if ic.Kind == dataflowlogs.KindStatus {
		ch.Kind, ch.Name = "operator_status", "pipeline/"+ic.UID
		ch.Detail = fmt.Sprintf("%d documents", ic.Imported)
	}
	if ic.AlreadyImported > 0 {
		ch.Action = "unchanged"
		if ic.Imported > 0 {
			ch.Action = "import"
		}
		ch.Detail += fmt.Sprintf(", %d already imported", ic.AlreadyImported)
	}
	return ch
}
