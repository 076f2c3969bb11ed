package devenv

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// SeedTask is one Dataflow 1.x task whose logs SeedDataflowLogs writes:
// DB is datasource, formatity or pipline_job; pipeline jobs also get an
// operator-state collection with Operators documents.
type SeedTask struct {
	DB        string
	UID       string
	Lines     int
	Operators int
}

// SeedLine is one log document as written.
type SeedLine struct {
	Level, Content string
	CreateAt       int64
	OperatorName   *string
	OperatorIndex  *int64
}

// SeedStatus is one operator-state document as written.
type SeedStatus struct {
	OperatorName  string
	OperatorIndex int64
	Status        string
	StartTime     int64
	EndTime       *int64
}

// Seeded is what SeedDataflowLogs wrote, per task uid.
type Seeded struct {
	Lines    map[string][]SeedLine
	Statuses map[string][]SeedStatus
}

// DefaultSeedTasks are a few tasks of each type, thousands of lines.
func DefaultSeedTasks() []SeedTask {
	return []SeedTask{
		{DB: "datasource", UID: "ds-7f3a9c10", Lines: 1500},
		{DB: "datasource", UID: "ds-0b12e4d2", Lines: 700},
		{DB: "formatity", UID: "fmt-5c61aa07", Lines: 900},
		{DB: "formatity", UID: "fmt-e2d09b33", Lines: 300},
		{DB: "pipline_job", UID: "job-81c4f0e6", Lines: 1200, Operators: 3},
		{DB: "pipline_job", UID: "job-3a7d21b9", Lines: 400, Operators: 2},
	}
}

// SeedDataflowLogs writes tasks' logs the way Dataflow 1.x's mongo_tools
// does (documents {level, content, create_at[, operator_name,
// operator_index]} in `<uid>_run_task`; pipeline operator states in
// `<uid>_operator_run_task`), with the field types it produces (create_at as
// int32 and int64 epoch seconds, a running operator's end_time null), plus
// one collection that holds no logs. Content is deterministic. With record
// false nothing is kept in memory (large seeds) and the result is empty.
func SeedDataflowLogs(ctx context.Context, url string, tasks []SeedTask, record bool) (*Seeded, error) {
	client, err := mongo.Connect(options.Client().ApplyURI(url).SetDirect(true).SetServerSelectionTimeout(20 * time.Second))
	if err != nil {
		return nil, err
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	out := &Seeded{Lines: map[string][]SeedLine{}, Statuses: map[string][]SeedStatus{}}
	levels := []string{"INFO", "INFO", "INFO", "WARNING", "ERROR", "DEBUG"}
	base := int64(1754000000)
	for ti, t := range tasks {
		coll := client.Database(t.DB).Collection(t.UID + "_run_task")
		var batch []any
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			_, err := coll.InsertMany(ctx, batch)
			batch = batch[:0]
			return err
		}
		for i := 0; i < t.Lines; i++ {
			l := SeedLine{
				Level:    levels[(i+ti)%len(levels)],
				Content:  fmt.Sprintf("[%s] step %d: processed %d records; path=/data/%s/part-%05d.jsonl \"quoted\" 'single' tab\there ünïcödé", t.UID, i, i*37%1000, t.UID, i),
				CreateAt: base + int64(ti*100000+i),
			}
			doc := bson.D{{Key: "level", Value: l.Level}, {Key: "content", Value: l.Content}}
			// pymongo writes Python ints below 2^31 as int32, larger ones as int64
			if i%2 == 0 {
				doc = append(doc, bson.E{Key: "create_at", Value: int32(l.CreateAt)})
			} else {
				doc = append(doc, bson.E{Key: "create_at", Value: l.CreateAt})
			}
			if t.DB == "pipline_job" && t.Operators > 0 {
				idx := int64(i % t.Operators)
				name := fmt.Sprintf("operator_%d", idx)
				l.OperatorName, l.OperatorIndex = &name, &idx
				doc = append(doc, bson.E{Key: "operator_name", Value: name}, bson.E{Key: "operator_index", Value: int32(idx)})
			}
			if record {
				out.Lines[t.UID] = append(out.Lines[t.UID], l)
			}
			batch = append(batch, doc)
			if len(batch) == 1000 {
				if err := flush(); err != nil {
					return nil, fmt.Errorf("seeding %s.%s: %w", t.DB, coll.Name(), err)
				}
			}
		}
		if err := flush(); err != nil {
			return nil, fmt.Errorf("seeding %s.%s: %w", t.DB, coll.Name(), err)
		}
		if t.DB != "pipline_job" || t.Operators == 0 {
			continue
		}
		ops := client.Database(t.DB).Collection(t.UID + "_operator_run_task")
		for i := 0; i < t.Operators; i++ {
			s := SeedStatus{OperatorName: fmt.Sprintf("operator_%d", i), OperatorIndex: int64(i), Status: "finished", StartTime: base + int64(i*60)}
			end := s.StartTime + 55
			s.EndTime = &end
			if i == t.Operators-1 {
				s.Status, s.EndTime = "running", nil
			}
			doc := bson.D{{Key: "status", Value: s.Status}, {Key: "operator_name", Value: s.OperatorName},
				{Key: "operator_index", Value: int32(s.OperatorIndex)}, {Key: "start_time", Value: s.StartTime}}
			if s.EndTime != nil {
				doc = append(doc, bson.E{Key: "end_time", Value: *s.EndTime})
			} else {
				doc = append(doc, bson.E{Key: "end_time", Value: nil})
			}
			if _, err := ops.InsertOne(ctx, doc); err != nil {
				return nil, fmt.Errorf("seeding %s.%s: %w", t.DB, ops.Name(), err)
			}
			out.Statuses[t.UID] = append(out.Statuses[t.UID], s)
		}
	}
	// Dataflow keeps other things in these databases too: not logs, not moved
	if _, err := client.Database("datasource").Collection("settings").InsertOne(ctx, bson.D{{Key: "key", Value: "retention"}}); err != nil {
		return nil, err
	}
	return out, nil
}
