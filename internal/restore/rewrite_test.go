package restore

import (
	"io"
	"os"
	"strings"
	"testing"

	"github.com/opencsgs/helm-csghub/internal/backup"
)

func rename(t *testing.T, sql, db, to string) (string, error) {
	t.Helper()
	r := newRenamer(strings.NewReader(sql), db, to)
	out, err := io.ReadAll(r)
	if err == nil {
		err = r.Err()
	}
	return string(out), err
}

// A real pg_dump 15.18 --create dump (comment, properties, role setting,
// grant, a COPY) is rewritten to create and fill plain__restore: every
// statement about the database names the copy, nothing else changes, and
// no line names the live database any more.
func TestRenamerRewritesRealDump(t *testing.T) {
	data, err := os.ReadFile("../backup/testdata/plain.sql")
	if err != nil {
		t.Fatal(err)
	}
	got, err := rename(t, string(data), "plain", "plain__restore")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`CREATE DATABASE "plain__restore" WITH TEMPLATE = template0`,
		`ALTER DATABASE "plain__restore" OWNER TO csghub;`,
		"\\connect plain__restore\n",
		`COMMENT ON DATABASE "plain__restore" IS 'hi';`,
		`ALTER DATABASE "plain__restore" CONNECTION LIMIT = 50;`,
		`ALTER DATABASE "plain__restore" SET work_mem TO '8MB';`,
		`ALTER ROLE app IN DATABASE "plain__restore" SET work_mem TO '9MB';`,
		`GRANT CONNECT ON DATABASE "plain__restore" TO app;`,
		"COPY public.t (a) FROM stdin;\nx\n\\.\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rewritten dump lacks %q", want)
		}
	}
	for _, line := range strings.Split(got, "\n") {
		if !strings.HasPrefix(line, "--") && (strings.Contains(line, "DATABASE plain ") || strings.Contains(line, "DATABASE plain;") || line == `\connect plain`) {
			t.Errorf("line still names the live database: %q", line)
		}
	}
	if strings.Count(got, "\n") != strings.Count(string(data), "\n") {
		t.Errorf("line count changed")
	}
}

func TestRenamerQuotedName(t *testing.T) {
	data, _ := os.ReadFile("../backup/testdata/my-db.sql")
	got, err := rename(t, string(data), "My-Db", "My-Db__restore")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, `CREATE DATABASE "My-Db__restore" WITH`) ||
		!strings.Contains(got, `\connect -reuse-previous=on "dbname='My-Db__restore'"`) ||
		!strings.Contains(got, `ALTER DATABASE "My-Db__restore" OWNER TO app;`) {
		t.Fatalf("quoted name not rewritten:\n%s", got)
	}
}

// Rows and function bodies that look like database statements are data:
// left as they are.
func TestRenamerLeavesDataAlone(t *testing.T) {
	body := "--\n-- Name: f; Type: FUNCTION; Schema: public; Owner: csghub\n--\n\n" +
		"CREATE FUNCTION public.f() RETURNS void AS $$\nALTER DATABASE db SET x TO 1;\n$$ LANGUAGE sql;\n\n" +
		"--\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: csghub\n--\n\n" +
		"COPY public.t (a) FROM stdin;\n-- Name: db; Type: DATABASE PROPERTIES; Schema: -; Owner: x\nALTER DATABASE db SET y TO 2;\n\\.\n\n"
	got, err := rename(t, backup.TestDumpSQL("db", "csghub", body), "db", "db__restore")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, body) {
		t.Fatalf("data rewritten:\n%s", got)
	}
}

// What a dump must not do on its way in stops the stream with an error.
func TestRenamerRefuses(t *testing.T) {
	good := backup.TestDumpSQL("db", "csghub", "CREATE TABLE t (id int);\n")
	for what, sql := range map[string]string{
		"another database created": strings.Replace(good, `CREATE DATABASE "db"`, `CREATE DATABASE "other"`, 1),
		"connects elsewhere":       strings.Replace(good, "CREATE TABLE t (id int);", "\\connect csghub_server\nDELETE FROM users;", 1),
		"drops a database":         strings.Replace(good, "CREATE TABLE t (id int);", `DROP DATABASE "csghub_portal";`, 1),
		"runs before creating":     strings.Replace(good, "SET client_encoding = 'UTF8';", "DELETE FROM x;", 1),
		"never creates":            "SET a = 1;\n",
	} {
		got, err := rename(t, sql, "db", "db__restore")
		if err == nil {
			t.Errorf("%s: accepted", what)
		}
		if strings.Contains(got, "csghub_portal") || strings.Contains(got, "DELETE FROM") {
			t.Errorf("%s: the refused statement was passed on: %q", what, got)
		}
	}
}

// A line longer than the reader's buffer (a big COPY row) passes whole.
func TestRenamerLongLine(t *testing.T) {
	row := strings.Repeat("x", 300<<10)
	body := "--\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: csghub\n--\n\nCOPY public.t (a) FROM stdin;\n" + row + "\n\\.\n"
	got, err := rename(t, backup.TestDumpSQL("db", "csghub", body), "db", "db__restore")
	if err != nil || !strings.Contains(got, body) {
		t.Fatalf("long line: %v", err)
	}
}

func TestSideNameFitsIdentifierLimit(t *testing.T) {
	if got := sideName("csghub_server", restoreSuffix); got != "csghub_server__restore" {
		t.Fatal(got)
	}
	long := strings.Repeat("é", 30) // 60 bytes
	a, b := sideName(long, restoreSuffix), sideName(long+"x", restoreSuffix)
	if len(a) > maxIdent || len(b) > maxIdent || a == b || !strings.HasSuffix(a, restoreSuffix) || !strings.HasPrefix(long, strings.Split(a, "_")[0]) {
		t.Fatalf("%q (%d), %q (%d)", a, len(a), b, len(b))
	}
}
