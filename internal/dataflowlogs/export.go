package dataflowlogs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/opencsgs/helm-csghub/internal/backup"
)

// ExportResult is what an export read.
type ExportResult struct {
	Collections []Collection `json:"collections"`
	Documents   int64        `json:"documents"`
	// Skipped are collections of the source databases that hold no task logs.
	Skipped []string     `json:"skipped,omitempty"`
	File    *backup.File `json:"file,omitempty"`
}

// Inventory lists the task-log collections with their exact document counts
// (what an export would write), reading nothing else.
func Inventory(ctx context.Context, c *mongo.Client) (*ExportResult, error) {
	res := &ExportResult{Collections: []Collection{}}
	err := eachCollection(ctx, c, res, func(col Collection) error {
		n, err := c.Database(col.Database).Collection(col.Name).CountDocuments(ctx, bson.D{})
		if err != nil {
			return fmt.Errorf("counting %s.%s: %w", col.Database, col.Name, err)
		}
		col.Documents = n
		res.Collections = append(res.Collections, col)
		res.Documents += n
		return nil
	})
	return res, err
}

// eachCollection calls f for every task-log collection, in a stable order,
// and records the other collections in res.Skipped.
func eachCollection(ctx context.Context, c *mongo.Client, res *ExportResult, f func(Collection) error) error {
	for _, src := range Sources {
		names, err := c.Database(src.Database).ListCollectionNames(ctx, bson.D{})
		if err != nil {
			return fmt.Errorf("listing collections of %s: %w", src.Database, err)
		}
		sort.Strings(names)
		for _, name := range names {
			kind, uid, ok := Classify(src.Database, name)
			if !ok {
				if !isSystem(name) {
					res.Skipped = append(res.Skipped, src.Database+"."+name)
				}
				continue
			}
			col := Collection{Database: src.Database, Name: name, Kind: kind, UID: uid}
			if kind == KindLog {
				col.TaskType = src.TaskType
			}
			if err := f(col); err != nil {
				return err
			}
		}
	}
	return nil
}

// ExportToBackup writes every task-log collection into ExportFile of the
// complete backup e (a folder or a bucket), streamed (one document in
// memory at a time), compressed, and encrypted when the backup is; the file
// joins the backup only once complete (see backup.Entry.CreateExtra).
// docs counts documents as they are written (for progress; may be nil).
func ExportToBackup(ctx context.Context, c *mongo.Client, e *backup.Entry, docs *atomic.Int64) (*ExportResult, error) {
	xw, err := e.CreateExtra(ctx, ExportFile)
	if err != nil {
		return nil, err
	}
	defer xw.Abort()
	res, err := WriteExport(ctx, c, xw, docs)
	if err != nil {
		return nil, err
	}
	f, err := xw.Commit()
	if err != nil {
		return nil, err
	}
	res.File = &f
	return res, nil
}

// WriteExport writes the export format (see line) to w, zstd-compressed.
func WriteExport(ctx context.Context, c *mongo.Client, w io.Writer, docs *atomic.Int64) (*ExportResult, error) {
	if docs == nil {
		docs = new(atomic.Int64)
	}
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(zw, 256<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false) // log content is kept byte for byte
	res := &ExportResult{Collections: []Collection{}}
	err = eachCollection(ctx, c, res, func(col Collection) error {
		n, err := exportCollection(ctx, c.Database(col.Database).Collection(col.Name), col, enc, docs)
		if err != nil {
			return fmt.Errorf("exporting %s.%s: %w", col.Database, col.Name, err)
		}
		col.Documents = n
		res.Collections = append(res.Collections, col)
		res.Documents += n
		return nil
	})
	if err != nil {
		zw.Close()
		return nil, err
	}
	// the trailer marks a complete export
	if err := enc.Encode(line{T: "export", Collections: len(res.Collections), Documents: res.Documents, Skipped: res.Skipped}); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return res, nil
}

func exportCollection(ctx context.Context, coll *mongo.Collection, col Collection, enc *json.Encoder, docs *atomic.Int64) (int64, error) {
	if err := enc.Encode(line{T: "collection", DB: col.Database, Name: col.Name, Kind: col.Kind, UID: col.UID, TaskType: col.TaskType}); err != nil {
		return 0, err
	}
	// _id order is insertion order for driver-generated ObjectIDs: a later
	// export of a grown collection starts with the same documents, which is
	// what makes a re-import skip exactly what it already has.
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(2000))
	if err != nil {
		return 0, err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var n int64
	for cur.Next(ctx) {
		var l line
		if col.Kind == KindLog {
			l = logLine(cur.Current)
		} else {
			l = statusLine(cur.Current)
		}
		if err := enc.Encode(l); err != nil {
			return n, err
		}
		n++
		docs.Add(1)
	}
	if err := cur.Err(); err != nil {
		return n, err
	}
	return n, enc.Encode(line{T: "end", Documents: n})
}

// logLine maps a Dataflow 1.x log document to a task_log row. Missing NOT
// NULL fields become "" (level, content); a missing create_at is taken from
// the ObjectID's creation second, which is when the line was written.
func logLine(doc bson.Raw) line {
	l := line{T: "log",
		Level:         text(doc, "level"),
		Content:       text(doc, "content"),
		CreateAt:      number(doc, "create_at"),
		OperatorName:  text(doc, "operator_name"),
		OperatorIndex: number(doc, "operator_index"),
	}
	if l.Level == nil {
		l.Level = ptr("")
	}
	if l.Content == nil {
		l.Content = ptr("")
	}
	if l.CreateAt == nil {
		var t int64
		if oid, ok := doc.Lookup("_id").ObjectIDOK(); ok {
			t = oid.Timestamp().Unix()
		}
		l.CreateAt = &t
	}
	return l
}

// statusLine maps an operator-run document to an operator_status row.
func statusLine(doc bson.Raw) line {
	l := line{T: "status",
		OperatorName:  text(doc, "operator_name"),
		OperatorIndex: number(doc, "operator_index"),
		Status:        text(doc, "status"),
		StartTime:     number(doc, "start_time"),
		EndTime:       number(doc, "end_time"),
	}
	if l.OperatorName == nil {
		l.OperatorName = ptr("")
	}
	if l.Status == nil {
		l.Status = ptr("")
	}
	return l
}

func ptr[T any](v T) *T { return &v }

// text is a string field; other types keep their extended-JSON text so
// nothing is lost; missing or null is nil.
func text(doc bson.Raw, key string) *string {
	v, err := doc.LookupErr(key)
	if err != nil || v.Type == bson.TypeNull || v.Type == bson.TypeUndefined {
		return nil
	}
	if s, ok := v.StringValueOK(); ok {
		return &s
	}
	if n, ok := v.AsInt64OK(); ok && v.Type != bson.TypeDouble {
		s := strconv.FormatInt(n, 10)
		return &s
	}
	s := v.String()
	return &s
}

// number is an integer field: BSON int32/int64/double (truncated), a date
// (as epoch seconds) or a numeric string; anything else is nil.
func number(doc bson.Raw, key string) *int64 {
	v, err := doc.LookupErr(key)
	if err != nil {
		return nil
	}
	switch v.Type {
	case bson.TypeInt32, bson.TypeInt64, bson.TypeDouble:
		if n, ok := v.AsInt64OK(); ok {
			return &n
		}
	case bson.TypeDateTime:
		ms := v.DateTime()
		n := ms / 1000
		return &n
	case bson.TypeString:
		s := v.StringValue()
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return &n
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			n := int64(f)
			return &n
		}
	}
	return nil
}
