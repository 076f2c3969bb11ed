package dbpod

import (
	"reflect"
	"testing"
)

func TestExternalServersGroupsByHostPortUser(t *testing.T) {
	values := map[string]any{
		"global": map[string]any{"postgresql": map[string]any{"enabled": false, "external": map[string]any{
			"host": "pg.example.com", "port": float64(6432), "user": "csghub", "password": "s3cret", "sslmode": "require"}}},
		"server":   map[string]any{"postgresql": map[string]any{}},
		"portal":   map[string]any{"postgresql": map[string]any{"database": "portal_db"}},
		"dataflow": map[string]any{"postgresql": map[string]any{"host": "other", "port": "5432", "user": "df", "password": "x"}},
		"ingress":  map[string]any{"enabled": true},
		"postgresql": map[string]any{"databases": []any{"csghub_casdoor", "csghub_dataflow", "csghub_server"},
			"image": map[string]any{"repository": "opencsghq/postgres", "tag": "15.17"}},
	}
	got, err := ExternalServers(values, "my-rel")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("want 2 servers, got %d: %+v", len(got), got)
	}
	main, df := got[0], got[1]
	if df.Key() != "df@other:5432" || !reflect.DeepEqual(df.Databases, []string{"my_rel_dataflow"}) || df.Password() != "x" || df.SSLMode != "require" {
		t.Errorf("dataflow server: %+v (%s)", df, df.Key())
	}
	want := []string{"csghub_casdoor", "csghub_dataflow", "csghub_server", "my_rel_server", "portal_db"}
	if main.Key() != "csghub@pg.example.com:6432" || !reflect.DeepEqual(main.Databases, want) || main.Password() != "s3cret" {
		t.Errorf("main server: %+v (%s), want databases %v", main, main.Key(), want)
	}
	if img := ClientImage(values); img != "opencsghq/postgres:15.17" {
		t.Errorf("image %q", img)
	}
	values["global"].(map[string]any)["image"] = map[string]any{"registry": "registry.example.com"}
	if img := ClientImage(values); img != "registry.example.com/opencsghq/postgres:15.17" {
		t.Errorf("image with registry %q", img)
	}
}

func TestExternalServersNeedsAHost(t *testing.T) {
	values := map[string]any{
		"global": map[string]any{"postgresql": map[string]any{"enabled": false}},
		"server": map[string]any{"postgresql": map[string]any{}},
	}
	if _, err := ExternalServers(values, "csghub"); err == nil {
		t.Fatal("no host: want an error")
	}
}

func TestMajorOf(t *testing.T) {
	if n := majorOf("pg_dump (PostgreSQL) 15.10 (Debian 15.10-1.pgdg120+1)\n"); n != 15 {
		t.Fatal(n)
	}
}
