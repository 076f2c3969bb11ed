// Package dataflowlogs moves CSGHub Dataflow's task logs from MongoDB (chart
// <= 1.17.x) to PostgreSQL (chart 2.0.0), which upstream leaves behind.
//
// Export reads every task-log collection through a port-forward to the
// `<release>-mongo-0` pod into one zstd-compressed JSON-lines file of the
// backup folder; Import replays that file into database csghub_dataflow_logs
// with COPY, one transaction per collection, and records what it imported in
// its own table so a re-run imports nothing twice.
//
// Mapping (Dataflow 1.x data_celery/mongo_tools -> 2.0 pg_log_tools):
//
//	Mongo database       task_type     collection                  table
//	datasource           datasource    <uid>_run_task              task_log (task_uid = uid)
//	formatity (sic)      formatify     <uid>_run_task              task_log
//	pipline_job (sic)    pipeline      <uid>_run_task              task_log
//	pipline_job          -             <uid>_operator_run_task     operator_status (job_uid = uid)
//
// Fields: level, content, create_at (epoch seconds), operator_name and
// operator_index -> the columns of the same names; status, start_time and
// end_time for operator_status.
package dataflowlogs

import (
	"strings"
)

// ExportFile is the export's name inside the backup folder.
const ExportFile = "dataflow-logs.jsonl.zst"

// LogsDatabase is the PostgreSQL database Dataflow 2.0 keeps its logs in
// (env LOG_DATABASE_DB of the chart).
const LogsDatabase = "csghub_dataflow_logs"

// Source is one Mongo database of Dataflow 1.x and the task_type its logs get.
type Source struct {
	Database string
	TaskType string
}

// Sources are the Mongo databases Dataflow 1.x writes task logs into.
var Sources = []Source{
	{Database: "datasource", TaskType: "datasource"},
	{Database: "formatity", TaskType: "formatify"},
	{Database: "pipline_job", TaskType: "pipeline"},
}

// Kinds of collections.
const (
	KindLog    = "log"    // task_log rows
	KindStatus = "status" // operator_status rows
)

const (
	runTaskSuffix      = "_run_task"
	operatorTaskSuffix = "_operator_run_task"
)

// Classify says what a collection of Mongo database db holds: its kind and the
// task (or job) uid, or ok=false for collections that are not task logs.
func Classify(db, collection string) (kind, uid string, ok bool) {
	if isSystem(collection) {
		return "", "", false
	}
	// the operator suffix also ends in "_run_task": test it first
	if db == "pipline_job" && strings.HasSuffix(collection, operatorTaskSuffix) {
		if uid = strings.TrimSuffix(collection, operatorTaskSuffix); uid != "" {
			return KindStatus, uid, true
		}
		return "", "", false
	}
	if strings.HasSuffix(collection, runTaskSuffix) && !strings.HasSuffix(collection, operatorTaskSuffix) {
		if uid = strings.TrimSuffix(collection, runTaskSuffix); uid != "" {
			return KindLog, uid, true
		}
	}
	return "", "", false
}

// isSystem reports MongoDB's own collections (system.views, ...).
func isSystem(collection string) bool { return strings.HasPrefix(collection, "system.") }

// line is one line of the export. T says which fields are set:
//
//	"collection"  start of a collection: DB, Name, Kind, UID, TaskType
//	"log"         a task_log row
//	"status"      an operator_status row
//	"end"         end of the collection: Documents
//	"export"      last line of a complete export: Collections, Documents, Skipped
type line struct {
	T string `json:"t"`

	DB       string `json:"db,omitempty"`
	Name     string `json:"name,omitempty"`
	Kind     string `json:"kind,omitempty"`
	UID      string `json:"uid,omitempty"`
	TaskType string `json:"taskType,omitempty"`

	Level         *string `json:"level,omitempty"`
	Content       *string `json:"content,omitempty"`
	CreateAt      *int64  `json:"createAt,omitempty"`
	OperatorName  *string `json:"operatorName,omitempty"`
	OperatorIndex *int64  `json:"operatorIndex,omitempty"`
	Status        *string `json:"status,omitempty"`
	StartTime     *int64  `json:"startTime,omitempty"`
	EndTime       *int64  `json:"endTime,omitempty"`

	Documents   int64    `json:"documents,omitempty"`
	Collections int      `json:"collections,omitempty"`
	Skipped     []string `json:"skipped,omitempty"`
}

// Collection is one exported or imported collection and its document count.
type Collection struct {
	Database  string `json:"database"`
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	UID       string `json:"uid"`
	TaskType  string `json:"taskType,omitempty"`
	Documents int64  `json:"documents"`
}

// truncate cuts s to max characters (runes): Dataflow's columns are
// varchar(n), which PostgreSQL refuses to overflow.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	return string(r[:max])
}
