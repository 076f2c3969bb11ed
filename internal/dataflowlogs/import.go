package dataflowlogs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/opencsgs/helm-csghub/internal/backup"
)

// The tables as Dataflow 2.0.0 declares them (data_server/database/bean/
// task_log.py; SQLAlchemy names indexes ix_<table>_<column>). Created only
// when Dataflow has not created them yet.
const schemaSQL = `
CREATE TABLE IF NOT EXISTS task_log (
	id SERIAL PRIMARY KEY,
	task_uid VARCHAR(100) NOT NULL,
	task_type VARCHAR(20) NOT NULL,
	level VARCHAR(10) NOT NULL,
	operator_name VARCHAR(100),
	operator_index INTEGER,
	content TEXT NOT NULL,
	create_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_task_log_task_uid ON task_log (task_uid);
CREATE TABLE IF NOT EXISTS operator_status (
	id SERIAL PRIMARY KEY,
	job_uid VARCHAR(100) NOT NULL,
	operator_name VARCHAR(100) NOT NULL,
	operator_index INTEGER,
	status VARCHAR(20) NOT NULL,
	start_time BIGINT,
	end_time BIGINT,
	CONSTRAINT uq_operator_status UNIQUE (job_uid, operator_name, operator_index)
);
CREATE INDEX IF NOT EXISTS ix_operator_status_job_uid ON operator_status (job_uid);
` + ledgerSQL

// LedgerTable records, per source collection, how many of its documents
// (in export order) are already imported. It is updated in the same
// transaction as the rows, so an import is never half-recorded.
const LedgerTable = "helm_csghub_dataflow_imports"

const ledgerSQL = `
CREATE TABLE IF NOT EXISTS ` + LedgerTable + ` (
	source_database TEXT NOT NULL,
	collection TEXT NOT NULL,
	documents BIGINT NOT NULL,
	imported_at TIMESTAMPTZ NOT NULL DEFAULT now(),
	PRIMARY KEY (source_database, collection)
);`

var taskLogColumns = []string{"task_uid", "task_type", "level", "operator_name", "operator_index", "content", "create_at"}

// ImportedCollection is one collection's outcome.
type ImportedCollection struct {
	Collection
	// Imported rows now; AlreadyImported documents skipped because an earlier
	// run imported them.
	Imported        int64 `json:"imported"`
	AlreadyImported int64 `json:"alreadyImported"`
}

// ImportResult is what an import did.
type ImportResult struct {
	Collections []ImportedCollection `json:"collections"`
	Imported    int64                `json:"imported"`
	Already     int64                `json:"alreadyImported"`
	// Waited is how long Import waited for LogsDatabase to exist (a share
	// of an upgrade's --timeout; the import itself is not counted).
	Waited time.Duration `json:"-"`
}

// Importer replays an export into the logs database.
type Importer struct {
	// Conn is connected to LogsDatabase.
	Conn *pgx.Conn
	// BatchRows bounds one COPY statement (default 20000).
	BatchRows int
	// Rows counts rows as they are sent (progress; may be nil).
	Rows *atomic.Int64
}

// EnsureSchema creates Dataflow's tables (if missing) and the ledger, and
// checks that existing tables have the columns the import writes.
func (im *Importer) EnsureSchema(ctx context.Context) error {
	var err error
	// Dataflow may create the same tables at this moment: a lost race shows
	// as a duplicate-object error and the retry finds them.
	for attempt := 0; attempt < 3; attempt++ {
		if _, err = im.Conn.Exec(ctx, schemaSQL); err == nil || !isDuplicateObject(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("creating the Dataflow log tables: %w", err)
	}
	for table, cols := range map[string][]string{
		"task_log":        taskLogColumns,
		"operator_status": {"job_uid", "operator_name", "operator_index", "status", "start_time", "end_time"},
	} {
		rows, err := im.Conn.Query(ctx, `SELECT column_name FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = $1`, table)
		if err != nil {
			return err
		}
		have, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		var missing []string
		for _, c := range cols {
			if !contains(have, c) {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("table %s exists without column(s) %s: not the Dataflow 2.0 layout", table, strings.Join(missing, ", "))
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func isDuplicateObject(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42P07" || pe.Code == "23505" || pe.Code == "42710")
}

// openExport streams the export of backup e, decompressed: its stored
// bytes are checked again on the way (from a folder or a bucket, no local
// copy) and decrypted when the backup is encrypted.
func openExport(ctx context.Context, e *backup.Entry) (io.ReadCloser, error) {
	rc, err := e.OpenExtra(ctx, ExportFile)
	if err != nil {
		return nil, err
	}
	zr, err := backup.Decompress(rc) // the export is zstd like the dumps
	if err != nil {
		rc.Close()
		return nil, err
	}
	return zr, nil
}

// emptyExport reports whether the export is complete and holds no
// collection (its first line is the trailer): nothing to import, and no
// reason to create tables Dataflow creates itself.
func emptyExport(open func() (io.ReadCloser, error)) (bool, error) {
	rc, err := open()
	if err != nil {
		return false, err
	}
	defer rc.Close()
	var l line
	if err := json.NewDecoder(rc).Decode(&l); err != nil {
		return false, fmt.Errorf("reading the export: %w", err)
	}
	return l.T == "export" && l.Collections == 0, nil
}

// ImportFile imports the export at path (see Export). A file without its
// trailer is refused when the cut is reached: collections before it are
// imported and recorded, so a complete file imported later finishes the job.
func (im *Importer) ImportFile(ctx context.Context, path string) (*ImportResult, error) {
	return im.importFrom(ctx, func() (io.ReadCloser, error) { return backup.OpenDump(path) })
}

// importFrom imports the stream open gives, read to its end: a stream that
// checks its stored bytes (Entry.OpenExtra) reports a mismatch there.
func (im *Importer) importFrom(ctx context.Context, open func() (io.ReadCloser, error)) (*ImportResult, error) {
	rc, err := open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	res, err := im.Import(ctx, rc)
	if err != nil {
		return res, err
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return res, fmt.Errorf("the export changed since it was verified: %w", err)
	}
	return res, nil
}

// Import reads an export stream and imports it collection by collection, one
// transaction each.
func (im *Importer) Import(ctx context.Context, r io.Reader) (*ImportResult, error) {
	if err := im.EnsureSchema(ctx); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(r)
	res := &ImportResult{Collections: []ImportedCollection{}}
	for {
		var l line
		if err := dec.Decode(&l); err != nil {
			if err == io.EOF {
				return res, fmt.Errorf("the export ends without its trailer: it is incomplete")
			}
			return res, fmt.Errorf("reading the export: %w", err)
		}
		switch l.T {
		case "export":
			if l.Documents != sumDocuments(res) {
				return res, fmt.Errorf("the export's trailer says %d documents, its collections hold %d", l.Documents, sumDocuments(res))
			}
			return res, nil
		case "collection":
			col := Collection{Database: l.DB, Name: l.Name, Kind: l.Kind, UID: l.UID, TaskType: l.TaskType}
			ic, err := im.importCollection(ctx, dec, col)
			if err != nil {
				return res, fmt.Errorf("importing %s.%s: %w", col.Database, col.Name, err)
			}
			res.Collections = append(res.Collections, *ic)
			res.Imported += ic.Imported
			res.Already += ic.AlreadyImported
		default:
			return res, fmt.Errorf("reading the export: unexpected %q line outside a collection", l.T)
		}
	}
}

func sumDocuments(res *ImportResult) int64 {
	var n int64
	for _, c := range res.Collections {
		n += c.Documents
	}
	return n
}

// importCollection imports the documents of one collection (the lines up to
// its "end") in one transaction, skipping those the ledger says are in.
func (im *Importer) importCollection(ctx context.Context, dec *json.Decoder, col Collection) (*ImportedCollection, error) {
	tx, err := im.Conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `INSERT INTO `+LedgerTable+` (source_database, collection, documents)
		VALUES ($1, $2, 0) ON CONFLICT DO NOTHING`, col.Database, col.Name); err != nil {
		return nil, err
	}
	var done int64
	// FOR UPDATE: two imports of the same export cannot both insert
	if err := tx.QueryRow(ctx, `SELECT documents FROM `+LedgerTable+`
		WHERE source_database = $1 AND collection = $2 FOR UPDATE`, col.Database, col.Name).Scan(&done); err != nil {
		return nil, err
	}
	src := &lineSource{dec: dec, col: col, skip: done, rows: im.Rows}
	if col.Kind == KindLog {
		batch := int64(im.BatchRows)
		if batch <= 0 {
			batch = 20000
		}
		for !src.ended {
			src.limit = src.sent + batch
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"task_log"}, taskLogColumns, src); err != nil {
				return nil, err
			}
			if src.err != nil {
				return nil, src.err
			}
		}
	} else {
		if err := importStatuses(ctx, tx, src); err != nil {
			return nil, err
		}
	}
	col.Documents = src.read
	ic := &ImportedCollection{Collection: col, Imported: src.sent, AlreadyImported: min(done, src.read)}
	if src.read > done {
		if _, err := tx.Exec(ctx, `UPDATE `+LedgerTable+` SET documents = $3, imported_at = now()
			WHERE source_database = $1 AND collection = $2`, col.Database, col.Name, src.read); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return ic, nil
}

// importStatuses inserts a job's operator states. Several documents for the
// same operator keep the last one (the newest state); a row Dataflow 2.0
// already has for that operator is kept (ON CONFLICT DO NOTHING).
func importStatuses(ctx context.Context, tx pgx.Tx, src *lineSource) error {
	type key struct {
		name  string
		index int64
		null  bool
	}
	latest := map[key]line{}
	var order []key
	for {
		l, ok := src.nextLine()
		if !ok {
			break
		}
		k := key{name: *l.OperatorName, null: l.OperatorIndex == nil}
		if l.OperatorIndex != nil {
			k.index = *l.OperatorIndex
		}
		if _, seen := latest[k]; !seen {
			order = append(order, k)
		}
		latest[k] = l
	}
	if src.err != nil {
		return src.err
	}
	b := &pgx.Batch{}
	for _, k := range order {
		l := latest[k]
		b.Queue(`INSERT INTO operator_status (job_uid, operator_name, operator_index, status, start_time, end_time)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT ON CONSTRAINT uq_operator_status DO NOTHING`,
			truncate(src.col.UID, 100), truncate(*l.OperatorName, 100), int32ptr(l.OperatorIndex),
			truncate(*l.Status, 20), l.StartTime, l.EndTime)
	}
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, b).Close()
}

func int32ptr(p *int64) *int32 {
	if p == nil {
		return nil
	}
	v := int32(*p)
	return &v
}

// lineSource feeds COPY from the export, one collection's lines, skipping the
// first skip documents and stopping after limit rows sent (a batch).
type lineSource struct {
	dec   *json.Decoder
	col   Collection
	skip  int64
	rows  *atomic.Int64
	limit int64

	read, sent int64 // documents read from the collection / rows sent
	ended      bool  // its "end" line was read
	cur        line
	err        error
}

// nextLine returns the collection's next document not yet imported.
func (s *lineSource) nextLine() (line, bool) {
	for !s.ended && s.err == nil {
		var l line
		if err := s.dec.Decode(&l); err != nil {
			if err == io.EOF {
				err = fmt.Errorf("the export ends inside collection %s.%s: it is incomplete", s.col.Database, s.col.Name)
			}
			s.err = err
			return line{}, false
		}
		switch {
		case l.T == "end":
			s.ended = true
			if l.Documents != s.read {
				s.err = fmt.Errorf("collection %s.%s: %d documents read, the export says %d", s.col.Database, s.col.Name, s.read, l.Documents)
			}
			return line{}, false
		case (l.T == "log" && s.col.Kind == KindLog) || (l.T == "status" && s.col.Kind == KindStatus):
			s.read++
			if s.read <= s.skip {
				continue
			}
			s.sent++
			if s.rows != nil {
				s.rows.Add(1)
			}
			return l, true
		default:
			s.err = fmt.Errorf("collection %s.%s: unexpected %q line", s.col.Database, s.col.Name, l.T)
			return line{}, false
		}
	}
	return line{}, false
}

func (s *lineSource) Next() bool {
	if s.sent >= s.limit {
		return false
	}
	l, ok := s.nextLine()
	s.cur = l
	return ok
}

func (s *lineSource) Values() ([]any, error) {
	l := s.cur
	return []any{
		truncate(s.col.UID, 100), s.col.TaskType, truncate(*l.Level, 10),
		truncPtr(l.OperatorName, 100), int32ptr(l.OperatorIndex), pgText(*l.Content), *l.CreateAt,
	}, nil
}

func (s *lineSource) Err() error { return s.err }

func truncPtr(p *string, max int) *string {
	if p == nil {
		return nil
	}
	v := truncate(*p, max)
	return &v
}

// pgText drops NUL characters, which BSON strings may hold and PostgreSQL
// text cannot (invalid UTF-8 already became U+FFFD in the export's JSON).
func pgText(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		return strings.ReplaceAll(s, "\x00", "")
	}
	return s
}
