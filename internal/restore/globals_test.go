package restore

import (
	"io"
	"strings"
	"testing"
)

func TestGlobalsFilterWrapsCreateRoleOnly(t *testing.T) {
	in := "SET client_encoding = 'UTF8';\nCREATE ROLE csghub;\nALTER ROLE csghub WITH SUPERUSER LOGIN;\nCREATE ROLE \"odd$role$name\";\n"
	out, err := io.ReadAll(globalsFilter(strings.NewReader(in)))
	if err != nil {
		t.Fatal(err)
	}
	want := "SET client_encoding = 'UTF8';\n" +
		"DO $role$ BEGIN CREATE ROLE csghub; EXCEPTION WHEN duplicate_object THEN NULL; END $role$;\n" +
		"ALTER ROLE csghub WITH SUPERUSER LOGIN;\n" +
		"DO $rolex$ BEGIN CREATE ROLE \"odd$role$name\"; EXCEPTION WHEN duplicate_object THEN NULL; END $rolex$;\n"
	if string(out) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out, want)
	}
}
