package backup

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opencsgs/helm-csghub/internal/errs"
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
		data, _ := jsonIndent(&Manifest{FormatVersion: FormatVersion, ID: id, Revision: rev, Release: "csghub", Namespace: "ns"})
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

func TestPruneKeepsNewestAndRollbackTargets(t *testing.T) {
	c := Catalog{Root: t.TempDir()}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r1a := makeBackup(t, c, 1, t0, true)
	r1b := makeBackup(t, c, 1, t0.Add(time.Hour), true)
	r2a := makeBackup(t, c, 2, t0.Add(2*time.Hour), true)
	r2b := makeBackup(t, c, 2, t0.Add(3*time.Hour), true)
	partial := makeBackup(t, c, 2, t0.Add(4*time.Hour), false)

	removed, err := c.Prune("ns", "csghub", Retention{Keep: 2, History: []int{1, 2}})
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

// The case: upgraded 1 -> 2 (one backup of revision 1), then three
// backups at revision 2 with --keep 3: revision 1's only backup stays.
func TestPruneNeverRemovesTheOnlyBackupOfThePreviousRevision(t *testing.T) {
	c := Catalog{Root: t.TempDir()}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r1 := makeBackup(t, c, 1, t0, true)
	var r2 []string
	for i := 1; i <= 4; i++ {
		r2 = append(r2, makeBackup(t, c, 2, t0.Add(time.Duration(i)*time.Hour), true))
		if _, err := c.Prune("ns", "csghub", Retention{Keep: 3, History: []int{1, 2}}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := ids(t, c), []string{r1, r2[2], r2[3]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("left %v, want %v", got, want)
	}
	list, _ := c.List("ns", "csghub")
	Retention{Keep: 3, History: []int{1, 2}}.Apply(list)
	if !strings.Contains(list[0].Kept, "rollback target") || !strings.Contains(list[2].Kept, "rollback target") ||
		!strings.Contains(list[1].Kept, "within --keep 3") {
		t.Fatalf("reasons: %q %q %q", list[0].Kept, list[1].Kept, list[2].Kept)
	}
	// revisions Helm no longer holds (or older than the last max(2, keep)) are not protected
	removed, err := c.Prune("ns", "csghub", Retention{Keep: 2, History: []int{2, 3, 4}})
	if err != nil || !reflect.DeepEqual(removed, []string{r1}) {
		t.Fatalf("removed %v %v, want %v", removed, err, r1)
	}
}

func TestPruneRefusesKeepBelowTwo(t *testing.T) {
	c := Catalog{Root: t.TempDir()}
	for _, k := range []int{1, 0, -1} {
		if _, err := c.Prune("ns", "csghub", Retention{Keep: k}); err == nil {
			t.Fatalf("keep %d accepted", k)
		}
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

// A backup of revision 1 renamed to look like revision 2 (or moved to another
// release's folder) is not usable, and is not revision 2's backup.
func TestListDistrustsRenamedBackups(t *testing.T) {
	c := Catalog{Root: t.TempDir()}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	id := makeBackup(t, c, 1, t0, true)
	renamed := newID(2, t0)
	rd := c.ReleaseDir("ns", "csghub")
	if err := os.Rename(filepath.Join(rd, id), filepath.Join(rd, renamed)); err != nil {
		t.Fatal(err)
	}
	list, err := c.List("ns", "csghub")
	if err != nil || len(list) != 1 || list[0].Complete || !strings.Contains(list[0].Problem, "revision 1") {
		t.Fatalf("renamed backup listed as %+v (%v)", list, err)
	}
	if e, _ := c.ForRevision("ns", "csghub", 2); e != nil {
		t.Fatalf("revision 2 has a backup: %s", e.ID)
	}
	if _, err := c.Find("ns", "csghub", renamed); errs.ExitCode(err) != 4 {
		t.Fatalf("find renamed: %v", err)
	}
	// the same folder under another release
	other := c.ReleaseDir("ns", "other")
	os.MkdirAll(other, dirMode)
	os.Rename(filepath.Join(rd, renamed), filepath.Join(other, id))
	if l, _ := c.List("ns", "other"); len(l) != 1 || l[0].Complete || !strings.Contains(l[0].Problem, `release "csghub"`) {
		t.Fatalf("backup moved to another release: %+v", l)
	}
}

func TestListReportsInsecurePermissions(t *testing.T) {
	c := Catalog{Root: t.TempDir()}
	id := makeBackup(t, c, 1, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), true)
	dir := filepath.Join(c.ReleaseDir("ns", "csghub"), id)
	if l, _ := c.List("ns", "csghub"); len(l[0].Insecure) != 0 {
		t.Fatalf("0700/0600 reported: %v", l[0].Insecure)
	}
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Join(dir, manifestName), 0o644)
	l, _ := c.List("ns", "csghub")
	if got := strings.Join(l[0].Insecure, ", "); got != "folder 0755, manifest.json 0644" {
		t.Fatalf("insecure = %q", got)
	}
	// issue 27 item 10: a release folder others may write into (the backup
	// can be swapped for another) and a dump that is a link (chmod cannot fix
	// a link) are reported, each with its own fix (a link to a file of the
	// backup: here its manifest)
	os.Chmod(dir, 0o700)
	os.Chmod(filepath.Join(dir, manifestName), 0o600)
	rd := c.ReleaseDir("ns", "csghub")
	os.Chmod(rd, 0o777)
	l, _ = c.List("ns", "csghub")
	if got := strings.Join(l[0].Insecure, ", "); got != "parent folder "+rd+" 0777, writable by others (chmod go-w "+rd+")" {
		t.Fatalf("0777 release folder: insecure = %q", got)
	}
	os.Chmod(rd, 0o777|os.ModeSticky) // sticky: others cannot rename what they do not own
	if l, _ = c.List("ns", "csghub"); len(l[0].Insecure) != 0 {
		t.Fatalf("sticky release folder reported: %v", l[0].Insecure)
	}
	os.Chmod(rd, 0o700)
	link := filepath.Join(dir, manifestName)
	real := filepath.Join(t.TempDir(), "real.json")
	os.Rename(link, real)
	os.Symlink(real, link)
	l, _ = c.List("ns", "csghub")
	if got := strings.Join(l[0].Insecure, ", "); got != manifestName+" is a symbolic link (replace it with the file itself)" {
		t.Fatalf("symlinked dump: insecure = %q", got)
	}
	if err := InsecureError(&l[0]); !strings.Contains(err.Error(), "fix what is named") {
		t.Fatalf("advice: %v", err)
	}
}
