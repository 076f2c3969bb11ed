package csghub

import (
	"reflect"
	"testing"
)

func TestNames(t *testing.T) {
	for got, want := range map[string]string{
		PostgresPod("rel"):      "rel-postgresql-0",
		PostgresSecret("rel"):   "rel-postgresql",
		MongoStatefulSet("rel"): "rel-mongo",
		MongoPod("rel"):         "rel-mongo-0",
		Service("rel", Portal):  "rel-portal",
		ServerBucket("rel"):     "rel-server",
		InstanceSelector("rel"): "app.kubernetes.io/instance=rel",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestExternalPostgresOnlyOnExplicitFalse(t *testing.T) {
	off := map[string]any{"global": map[string]any{"postgresql": map[string]any{"enabled": false}}}
	on := map[string]any{"global": map[string]any{"postgresql": map[string]any{"enabled": true}}}
	for name, c := range map[string]struct {
		v    map[string]any
		want bool
	}{"missing": {map[string]any{}, false}, "true": {on, false}, "false": {off, true},
		"string": {map[string]any{"global": map[string]any{"postgresql": map[string]any{"enabled": "false"}}}, false}} {
		if got := ExternalPostgres(c.v); got != c.want {
			t.Errorf("%s: ExternalPostgres = %v, want %v", name, got, c.want)
		}
	}
}

func TestExpectedDatabases(t *testing.T) {
	list := map[string]any{"postgresql": map[string]any{"databases": []any{"b", "a"}}}
	if got := ExpectedDatabases(list); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("list: %v", got)
	}
	str := map[string]any{"postgresql": map[string]any{"databases": "c, a\nb"}}
	if got := ExpectedDatabases(str); !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Errorf("string: %v", got)
	}
	if got := ExpectedDatabases(map[string]any{}); got != nil {
		t.Errorf("none: %v", got)
	}
}
