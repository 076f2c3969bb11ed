package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/dataflowlogs"
	"github.com/opencsgs/helm-csghub/internal/devenv"
	"github.com/opencsgs/helm-csghub/internal/testenv"
)

var taskTypeOf = map[string]string{"datasource": "datasource", "formatity": "formatify", "pipline_job": "pipeline"}

// 1.17.0 with Dataflow logs in MongoDB (FerretDB behind csghub-mongo-0) ->
// 2.0.0: every document is in task_log / operator_status, the export is in
// the backup and verified, a second import adds nothing. The export by hand
// goes into a folder backup, copied with it to a bucket; the upgrade runs
// with the bucket as its backup location (export into the bucket, import
// streamed back from it); its backup copied to a folder imports nothing more.
func TestUpgradeMovesDataflowLogs(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.17.0")
	if e.Mongo == nil {
		t.Fatal("no FerretDB behind csghub-mongo-0 after installing 1.17.0")
	}
	ctx := context.Background()
	tasks := devenv.DefaultSeedTasks()
	seeded, err := devenv.SeedDataflowLogs(ctx, e.Mongo.URL, tasks, true)
	if err != nil {
		t.Fatal(err)
	}
	var total int
	for _, l := range seeded.Lines {
		total += len(l)
	}
	if total < 2000 {
		t.Fatalf("seeded only %d lines", total)
	}

	plan := e.Plugin("plan", "--version", "2.0.0")
	if !strings.Contains(plan.Stdout, "dataflow-logs") || !strings.Contains(plan.Stdout, "to apply") {
		t.Fatalf("plan does not list the dataflow-logs step to apply:\n%s", plan.Stdout)
	}

	// by hand (plain helm upgrade runbooks): export needs a backup to go into
	dir := t.TempDir()
	if x := e.Plugin("dataflow-logs", "export", "--dir", dir); x.Code != 4 || errorLines(x.Stderr) != 1 || !strings.Contains(x.Stderr, "helm csghub backup") {
		t.Fatalf("export without a backup: exit %d (want 4)\n%s", x.Code, x.Stderr)
	}
	handBackup := runBackup(t, e, dir)
	x := e.Plugin("dataflow-logs", "export", "--dir", dir, "-o", "json")
	var exported dataflowlogs.ExportResult
	if x.Code != 0 || json.Unmarshal([]byte(x.Stdout), &exported) != nil || exported.Documents != int64(total+statusCount(seeded)) ||
		len(exported.Skipped) != 1 || exported.Skipped[0] != "datasource.settings" {
		t.Fatalf("dataflow-logs export: exit %d\n%s%s", x.Code, x.Stdout, x.Stderr)
	}

	// the hand-made export travels with its backup into a bucket (listed by
	// the copy's manifest there), verified there by the copy
	b := startBackupBucket(t, e)
	if c := e.Plugin("backup", "copy", handBackup.Manifest.ID, "--dir", dir, "--to", b.loc, "-o", "json"); c.Code != 0 || !strings.Contains(c.Stdout, `"verified": true`) {
		t.Fatalf("copy of the backup holding the export to the bucket: exit %d\n%s%s", c.Code, c.Stdout, c.Stderr)
	}
	if m := b.get(t, e.Namespace+"/csghub/"+handBackup.Manifest.ID+"/manifest.json"); !strings.Contains(string(m), dataflowlogs.ExportFile) {
		t.Fatalf("the copy's manifest in the bucket does not list %s:\n%s", dataflowlogs.ExportFile, m)
	}

	// the upgrade through the bucket: its backup, the export and the
	// import all go through the bucket (one command, no --dir)
	r := e.Plugin("upgrade", "--version", "2.0.0", "--yes", "--backup-location", b.loc, "--timeout", "3m", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("upgrade: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	sum, _ := lastSummary(t, r.Stdout)
	if sum.Revision != 2 || sum.To != "2.0.0" || sum.Status != "deployed" {
		t.Fatalf("summary %+v", sum)
	}

	// every line, in order, with the right task_type, level, content, create_at
	conn, err := e.PG.Connect(ctx, dataflowlogs.LogsDatabase)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, task := range tasks {
		type row struct {
			TaskType, Level, Content string
			CreateAt                 int64
			OpName                   *string
			OpIndex                  *int32
		}
		rows, err := conn.Query(ctx, `SELECT task_type, level, content, create_at, operator_name, operator_index
			FROM task_log WHERE task_uid = $1 ORDER BY id`, task.UID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
		if err != nil {
			t.Fatal(err)
		}
		want := seeded.Lines[task.UID]
		if len(got) != len(want) {
			t.Fatalf("task %s: %d rows in task_log, %d documents in MongoDB", task.UID, len(got), len(want))
		}
		for i, w := range want {
			g := got[i]
			ok := g.TaskType == taskTypeOf[task.DB] && g.Level == w.Level && g.Content == w.Content && g.CreateAt == w.CreateAt &&
				(w.OperatorName == nil) == (g.OpName == nil) && (w.OperatorIndex == nil) == (g.OpIndex == nil)
			if ok && w.OperatorName != nil {
				ok = *g.OpName == *w.OperatorName && int64(*g.OpIndex) == *w.OperatorIndex
			}
			if !ok {
				t.Fatalf("task %s line %d: got %+v, want %+v (task_type %s)", task.UID, i, g, w, taskTypeOf[task.DB])
			}
		}
	}
	var rowsTotal int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM task_log").Scan(&rowsTotal); err != nil {
		t.Fatal(err)
	}
	if rowsTotal != total {
		t.Fatalf("task_log holds %d rows, MongoDB held %d documents", rowsTotal, total)
	}
	for uid, want := range seeded.Statuses {
		for _, s := range want {
			var status string
			var start int64
			var end *int64
			err := conn.QueryRow(ctx, `SELECT status, start_time, end_time FROM operator_status
				WHERE job_uid = $1 AND operator_name = $2 AND operator_index = $3`, uid, s.OperatorName, s.OperatorIndex).Scan(&status, &start, &end)
			if err != nil {
				t.Fatalf("operator_status %s/%s: %v", uid, s.OperatorName, err)
			}
			if status != s.Status || start != s.StartTime || (end == nil) != (s.EndTime == nil) || (end != nil && *end != *s.EndTime) {
				t.Fatalf("operator_status %s/%s: got %s %d %v, want %+v", uid, s.OperatorName, status, start, end, s)
			}
		}
	}

	// counts per task in the report
	var report []string
	for _, m := range sum.Migrations {
		if m.Name == "dataflow-logs" {
			for _, c := range m.Changes {
				report = append(report, c.String())
			}
		}
	}
	joined := strings.Join(report, "\n")
	for _, task := range tasks {
		want := "import task_log " + taskTypeOf[task.DB] + "/" + task.UID + " (" + strconv.Itoa(task.Lines) + " rows)"
		if !strings.Contains(joined, want) {
			t.Errorf("report lacks %q:\n%s", want, joined)
		}
	}

	// the export is in the bucket backup, committed by its record, and
	// verified there; copied to a folder it is in that manifest, 0600
	if !strings.HasPrefix(sum.BackupPath, b.loc+"/") {
		t.Fatalf("the upgrade's backup is at %s, not in %s", sum.BackupPath, b.loc)
	}
	objs := b.keys(t, e.Namespace+"/csghub/"+sum.Backup+"/")
	exportKey := e.Namespace + "/csghub/" + sum.Backup + "/" + dataflowlogs.ExportFile
	if !contains(objs, exportKey) || !contains(objs, exportKey+".extra.json") {
		t.Fatalf("objects of the upgrade's backup: %v", objs)
	}
	if v := e.Plugin("backup", "verify", sum.Backup, "--backup-location", b.loc); v.Code != 0 || !strings.Contains(v.Stdout, dataflowlogs.ExportFile) {
		t.Fatalf("backup verify: exit %d\n%s%s", v.Code, v.Stdout, v.Stderr)
	}
	copied := t.TempDir()
	if c := e.Plugin("backup", "copy", sum.Backup, "--backup-location", b.loc, "--to", copied); c.Code != 0 {
		t.Fatalf("copy of the upgrade's backup to a folder: exit %d\n%s%s", c.Code, c.Stdout, c.Stderr)
	}
	e1, err := backup.Open(filepath.Join(copied, e.Namespace, "csghub", sum.Backup))
	if err != nil {
		t.Fatal(err)
	}
	if !dataflowlogs.HasExport(e1) {
		t.Fatalf("manifest of the folder copy %s does not list %s", e1.Path, dataflowlogs.ExportFile)
	}
	fi, err := os.Stat(filepath.Join(e1.Path, dataflowlogs.ExportFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v mode %v", err, fi.Mode())
	}

	// MongoDB's volume is kept and the summary says how to delete it
	pvcs, err := e.C.Clientset.CoreV1().PersistentVolumeClaims(e.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var mongoPVC string
	for _, p := range pvcs.Items {
		if strings.HasSuffix(p.Name, "-csghub-mongo-0") {
			mongoPVC = p.Name
		}
	}
	if mongoPVC == "" {
		t.Fatalf("no PVC of csghub-mongo-0 after the upgrade (kept by Helm): %d PVCs", len(pvcs.Items))
	}
	if notes := strings.Join(sum.Notes, "\n"); !strings.Contains(notes, mongoPVC) || !strings.Contains(notes, "delete pvc "+mongoPVC) {
		t.Errorf("summary notes do not say where MongoDB's data is and how to delete it:\n%s", notes)
	}

	// bad input: one line, non-zero, nothing imported
	if bad := e.Plugin("dataflow-logs", "import", "--dir", dir, "--backup", "1-20000101T000000Z"); bad.Code != 3 || errorLines(bad.Stderr) != 1 {
		t.Fatalf("import of an unknown backup: exit %d (want 3)\n%s", bad.Code, bad.Stderr)
	}
	if bad := e.Plugin("dataflow-logs", "import", "--dir", dir, "--wait", "0s"); bad.Code != 2 || errorLines(bad.Stderr) != 1 {
		t.Fatalf("import --wait 0s: exit %d (want 2)\n%s", bad.Code, bad.Stderr)
	}

	// a second run imports nothing (from the upgrade's backup copied from
	// the bucket to a folder; the first import read the bucket)
	again := e.Plugin("dataflow-logs", "import", "--dir", copied, "-o", "json")
	if again.Code != 0 {
		t.Fatalf("second import: exit %d\n%s%s", again.Code, again.Stdout, again.Stderr)
	}
	var res dataflowlogs.ImportResult
	if err := json.Unmarshal([]byte(again.Stdout), &res); err != nil {
		t.Fatalf("import -o json: %v\n%s", err, again.Stdout)
	}
	statuses := statusCount(seeded)
	if res.Imported != 0 || res.Already != int64(total+statuses) {
		t.Fatalf("second import: %d imported, %d already (want 0, %d)", res.Imported, res.Already, total+statuses)
	}
	var after int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM task_log").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != total {
		t.Fatalf("task_log holds %d rows after the second import, want %d", after, total)
	}
}

// MongoDB unreachable: the upgrade stops before anything changes, with a
// one-line error naming the way out; --skip-dataflow-logs upgrades.
func TestUpgradeStopsWhenMongoUnreachable(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.17.0")
	e.MongoUnreachable()
	before := e.ResourceVersions(e.Namespace)
	dir := t.TempDir()
	r := e.Plugin("upgrade", "--version", "2.0.0", "--yes", "--dir", dir, "--timeout", "3m")
	stderr := pluginStderr(r.Stderr)
	if r.Code != 4 || errorLines(r.Stderr) != 1 || !strings.Contains(stderr, "MongoDB") || !strings.Contains(stderr, "--skip-dataflow-logs") {
		t.Fatalf("upgrade with MongoDB unreachable: exit %d (want 4), stderr:\n%s", r.Code, r.Stderr)
	}
	testenv.RequireUnchanged(t, before, e.ResourceVersions(e.Namespace), "namespace after the refused upgrade")
	st := parseStatus(t, e.Plugin("status", "-o", "json"))
	if st.Revision != 1 || st.ChartVersion != "1.17.0" {
		t.Fatalf("release changed: %+v", st)
	}
	if l := e.Plugin("backup", "list", "--dir", dir, "-o", "json"); strings.Contains(l.Stdout, `"id"`) {
		t.Fatalf("a backup was written although the upgrade stopped in preflight: %s", l.Stdout)
	}

	skip := e.Plugin("upgrade", "--version", "2.0.0", "--yes", "--dir", dir, "--timeout", "3m", "--skip-dataflow-logs", "-o", "json")
	if skip.Code != 0 {
		t.Fatalf("upgrade --skip-dataflow-logs: exit %d\n%s\n%s", skip.Code, skip.Stdout, skip.Stderr)
	}
	sum, _ := lastSummary(t, skip.Stdout)
	found := false
	for _, m := range sum.Migrations {
		if m.Name == "dataflow-logs" {
			found = m.AlreadyApplied && strings.Contains(m.Detail, "--skip-dataflow-logs") && len(m.Changes) == 0
		}
	}
	if !found || sum.Revision != 2 {
		t.Fatalf("summary %+v", sum)
	}
}

func statusCount(s *devenv.Seeded) int {
	n := 0
	for _, st := range s.Statuses {
		n += len(st)
	}
	return n
}
