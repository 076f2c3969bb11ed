package backup

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// testdata/*.sql are pg_dump 15.18 --create output (with \restrict lines):
// "plain" owned by csghub, with a comment, properties and a grant; "My-Db"
// owned by app, whose name pg_dump quotes.
func TestParseDumpHeadOfRealDumps(t *testing.T) {
	for file, want := range map[string]DumpIdentity{
		"plain.sql": {Database: "plain", Owner: "csghub"},
		"my-db.sql": {Database: "My-Db", Owner: "app"},
	} {
		data, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseDumpHead(data)
		if err != nil || got != want {
			t.Errorf("%s: %+v, %v; want %+v", file, got, err, want)
		}
	}
}

func TestParseDumpHeadRefusesInconsistentDumps(t *testing.T) {
	data, _ := os.ReadFile(filepath.Join("testdata", "plain.sql"))
	sql := string(data)
	for what, edit := range map[string]string{
		"connects elsewhere":   strings.Replace(sql, `\connect plain`, `\connect csghub_server`, 1),
		"header names other":   strings.Replace(sql, "-- Name: plain; Type: DATABASE;", "-- Name: other; Type: DATABASE;", 1),
		"header owner differs": strings.Replace(sql, "Type: DATABASE; Schema: -; Owner: csghub", "Type: DATABASE; Schema: -; Owner: app", 1),
		"no CREATE DATABASE":   strings.Replace(sql, "CREATE DATABASE plain", "CREATE SCHEMA plain", 1),
	} {
		if id, err := ParseDumpHead([]byte(edit)); err == nil {
			t.Errorf("%s: accepted as %+v", what, id)
		}
	}
}

func TestConnectLineRoundTrip(t *testing.T) {
	for _, db := range []string{"plain", "csghub_server__restore", "My-Db", "a b", `q"uo'te\`, "x=y", "d.b"} {
		got, ok := ConnectTarget(ConnectLine(db))
		if !ok || got != db {
			t.Errorf("%q: ConnectLine %q reads back as %q, %v", db, ConnectLine(db), got, ok)
		}
	}
	if ConnectLine("My-Db") != `\connect -reuse-previous=on "dbname='My-Db'"` {
		t.Errorf("ConnectLine(My-Db) = %q, not pg_dump's form", ConnectLine("My-Db"))
	}
}

// A manifest edited so that two dumps swap their database names (each file's
// checksums still match) fails verification, naming the mismatch: the issue's
// restore dropped csghub_xnet for csghub_portal's dump.
func TestVerifyRefusesDumpOfAnotherDatabase(t *testing.T) {
	dir := t.TempDir()
	var dumps []Dump
	for _, db := range []string{"csghub_xnet", "csghub_portal"} {
		w, err := newDumpWriter(dir, dumpFileName(db), new(atomic.Int64))
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(TestDumpSQL(db, "csghub", "CREATE TABLE t (id int);\n")))
		id, err := w.identity()
		if err != nil || id.Database != db || id.Owner != "csghub" {
			t.Fatalf("identity %+v, %v", id, err)
		}
		d, err := w.finish(db)
		if err != nil {
			t.Fatal(err)
		}
		d.Owner = id.Owner
		dumps = append(dumps, d)
	}
	e := &Entry{ID: "1-x", Path: dir, Complete: true, Manifest: &Manifest{Dumps: dumps,
		Values: mustWrite(t, dir, valuesName, "a: 1\n"), AllValues: mustWrite(t, dir, allValuesName, "a: 1\n")}}
	if rep := Verify(e); !rep.OK {
		t.Fatalf("fresh backup fails verification: %+v", rep)
	}
	dumps[0].Database, dumps[1].Database = dumps[1].Database, dumps[0].Database
	err := VerifyError(Verify(e))
	if err == nil || !strings.Contains(err.Error(), `the dump is of database "csghub_xnet", the manifest says "csghub_portal"`) {
		t.Fatalf("swapped names: %v", err)
	}
	dumps[0].Database, dumps[1].Database = dumps[1].Database, dumps[0].Database
	dumps[1].Owner = "intruder"
	err = VerifyError(Verify(e))
	if err == nil || !strings.Contains(err.Error(), `owned by "csghub", the manifest says "intruder"`) {
		t.Fatalf("other owner: %v", err)
	}
}

// A manifest with no dumps passes only when it says why (a --skip-db-backup
// backup); one whose dumps were removed fails verification.
func TestVerifyRefusesManifestWithoutDumps(t *testing.T) {
	dir := t.TempDir()
	m := &Manifest{Values: mustWrite(t, dir, valuesName, "a: 1\n"), AllValues: mustWrite(t, dir, allValuesName, "a: 1\n")}
	e := &Entry{ID: "1-x", Path: dir, Complete: true, Manifest: m}
	err := VerifyError(Verify(e))
	if err == nil || !strings.Contains(err.Error(), "manifest.json: lists no database dump") {
		t.Fatalf("manifest without dumps: %v", err)
	}
	m.DatabaseSkipped = "skipped on request (--skip-db-backup)"
	if err := VerifyError(Verify(e)); err != nil {
		t.Fatalf("values-only backup: %v", err)
	}
}
