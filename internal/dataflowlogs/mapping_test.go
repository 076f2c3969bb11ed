package dataflowlogs

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		db, coll, kind, uid string
		ok                  bool
	}{
		{"datasource", "a1b2_run_task", KindLog, "a1b2", true},
		{"formatity", "f-9_run_task", KindLog, "f-9", true},
		{"pipline_job", "j7_run_task", KindLog, "j7", true},
		{"pipline_job", "j7_operator_run_task", KindStatus, "j7", true},
		// operator collections exist only for pipeline jobs
		{"datasource", "x_operator_run_task", "", "", false},
		{"datasource", "_run_task", "", "", false},
		{"datasource", "settings", "", "", false},
		{"pipline_job", "system.views", "", "", false},
	}
	for _, c := range cases {
		kind, uid, ok := Classify(c.db, c.coll)
		if kind != c.kind || uid != c.uid || ok != c.ok {
			t.Errorf("Classify(%q, %q) = %q, %q, %v; want %q, %q, %v", c.db, c.coll, kind, uid, ok, c.kind, c.uid, c.ok)
		}
	}
}

func raw(t *testing.T, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLogLineFieldTypes(t *testing.T) {
	oid := bson.NewObjectIDFromTimestamp(time.Unix(1700000000, 0))
	cases := []struct {
		name string
		doc  bson.D
		want line
	}{
		{"int32 seconds", bson.D{{Key: "level", Value: "INFO"}, {Key: "content", Value: "hello"}, {Key: "create_at", Value: int32(1700000100)}},
			line{Level: ptr("INFO"), Content: ptr("hello"), CreateAt: ptr(int64(1700000100))}},
		{"int64 and operator", bson.D{{Key: "level", Value: "ERROR"}, {Key: "content", Value: "x"}, {Key: "create_at", Value: int64(1700000200)},
			{Key: "operator_name", Value: "dedup"}, {Key: "operator_index", Value: int32(2)}},
			line{Level: ptr("ERROR"), Content: ptr("x"), CreateAt: ptr(int64(1700000200)), OperatorName: ptr("dedup"), OperatorIndex: ptr(int64(2))}},
		{"double and date", bson.D{{Key: "level", Value: "INFO"}, {Key: "content", Value: "d"}, {Key: "create_at", Value: 1700000300.9}},
			line{Level: ptr("INFO"), Content: ptr("d"), CreateAt: ptr(int64(1700000300))}},
		{"datetime", bson.D{{Key: "level", Value: "INFO"}, {Key: "content", Value: "d"}, {Key: "create_at", Value: bson.NewDateTimeFromTime(time.Unix(1700000400, 0))}},
			line{Level: ptr("INFO"), Content: ptr("d"), CreateAt: ptr(int64(1700000400))}},
		{"missing fields", bson.D{{Key: "_id", Value: oid}},
			line{Level: ptr(""), Content: ptr(""), CreateAt: ptr(int64(1700000000))}},
		{"non-string content", bson.D{{Key: "level", Value: "INFO"}, {Key: "content", Value: int32(42)}, {Key: "create_at", Value: "1700000500"}},
			line{Level: ptr("INFO"), Content: ptr("42"), CreateAt: ptr(int64(1700000500))}},
	}
	for _, c := range cases {
		got := logLine(raw(t, c.doc))
		if !eqS(got.Level, c.want.Level) || !eqS(got.Content, c.want.Content) || !eqI(got.CreateAt, c.want.CreateAt) ||
			!eqS(got.OperatorName, c.want.OperatorName) || !eqI(got.OperatorIndex, c.want.OperatorIndex) {
			t.Errorf("%s: got %+v", c.name, show(got))
		}
	}
}

func TestStatusLineNullEnd(t *testing.T) {
	got := statusLine(raw(t, bson.D{{Key: "status", Value: "running"}, {Key: "operator_name", Value: "clean"},
		{Key: "operator_index", Value: int64(0)}, {Key: "start_time", Value: int64(1700000000)}, {Key: "end_time", Value: nil}}))
	if *got.Status != "running" || *got.OperatorName != "clean" || *got.OperatorIndex != 0 || *got.StartTime != 1700000000 || got.EndTime != nil {
		t.Fatalf("got %+v", show(got))
	}
}

func TestTruncateCountsCharacters(t *testing.T) {
	if got := truncate("ééééé", 3); got != "ééé" {
		t.Fatalf("truncate = %q", got)
	}
	if got := truncate("abc", 10); got != "abc" {
		t.Fatalf("truncate = %q", got)
	}
}

func eqS(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
func eqI(a, b *int64) bool  { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func show(l line) map[string]any {
	m := map[string]any{}
	for k, v := range map[string]*string{"level": l.Level, "content": l.Content, "op": l.OperatorName, "status": l.Status} {
		if v != nil {
			m[k] = *v
		}
	}
	for k, v := range map[string]*int64{"create": l.CreateAt, "idx": l.OperatorIndex, "start": l.StartTime, "end": l.EndTime} {
		if v != nil {
			m[k] = *v
		}
	}
	return m
}
