package backup

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// makeBackup creates a complete (or partial) backup folder with a manifest.
func makeBackup(t *testing.T, c Catalog, rev int, at time.Time, complete bool) string {
	t.Helper()
	id := newID(rev, at)
	dir := filepath.Join(c.ReleaseDir("ns", "csghub"), id)
	if !complete {
		dir += partialSuffix
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		t.Fatal(err)
	}
	if complete {
		data, _ := jsonIndent(&Manifest{FormatVersion: FormatVersion, ID: id, Revision: rev})
		if err := os.WriteFile(filepath.Join(dir, manifestName), data, fileMode); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

func ids(t *testing.T, c Catalog) []string {
	t.Helper()
	list, err := c.List("ns", "csghub")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list {
		out = append(out, e.ID)
	}
	return out
}

func TestPruneKeepsNewestAndDeployedRevision(t *testing.T) {
	c := Catalog{Root: t.TempDir()}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r1a := makeBackup(t, c, 1, t0, true)
	r1b := makeBackup(t, c, 1, t0.Add(time.Hour), true)
	r2a := makeBackup(t, c, 2, t0.Add(2*time.Hour), true)
	r2b := makeBackup(t, c, 2, t0.Add(3*time.Hour), true)
	partial := makeBackup(t, c, 2, t0.Add(4*time.Hour), false)

	removed, err := c.Prune("ns", "csghub", 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{r1a, r2a}; !reflect.DeepEqual(removed, want) {
		t.Fatalf("removed %v, want %v", removed, want)
	}
	if got, want := ids(t, c), []string{r1b, r2b, partial + partialSuffix}; !reflect.DeepEqual(got, want) {
		t.Fatalf("left %v, want %v", got, want)
	}
}

func TestPruneRefusesKeepBelowTwo(t *testing.T) {
	c := Catalog{Root: t.TempDir()}
	if _, err := c.Prune("ns", "csghub", 1, 1); err == nil {
		t.Fatal("keep 1 accepted")
	}
}

func TestListMarksIncompleteBackups(t *testing.T) {
	c := Catalog{Root: t.TempDir()}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ok := makeBackup(t, c, 1, t0, true)
	partial := makeBackup(t, c, 1, t0.Add(time.Minute), false)
	noManifest := newID(1, t0.Add(2*time.Minute))
	if err := os.MkdirAll(filepath.Join(c.ReleaseDir("ns", "csghub"), noManifest), dirMode); err != nil {
		t.Fatal(err)
	}
	list, err := c.List("ns", "csghub")
	if err != nil || len(list) != 3 {
		t.Fatalf("list %v %v", list, err)
	}
	if !list[0].Complete || list[1].Complete || list[2].Complete {
		t.Fatalf("complete flags wrong: %+v", list)
	}
	if _, err := c.Find("ns", "csghub", partial+partialSuffix); err == nil {
		t.Fatal("partial backup found as usable")
	}
	if e, err := c.Find("ns", "csghub", "latest"); err != nil || e.ID != ok {
		t.Fatalf("latest = %v, %v; want %s", e, err, ok)
	}
}
