package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/helmpath"

	"github.com/opencsgs/helm-csghub/internal/errs"
)

// MinKeep is the fewest backups retention keeps: the guide asks for at least two
// revisions to roll back to.
const MinKeep = 2

// DefaultKeep is retention's default.
const DefaultKeep = 3

// DefaultDir is the catalog root under Helm's data home (HELM_DATA_HOME).
func DefaultDir() string { return helmpath.DataPath("csghub", "backups") }

// Catalog is the folder of all backups.
type Catalog struct{ Root string }

// ReleaseDir holds the backups of one release.
func (c Catalog) ReleaseDir(namespace, release string) string {
	return filepath.Join(c.Root, namespace, release)
}

// Entry is one folder of the catalog.
type Entry struct {
	ID       string    `json:"id"`
	Path     string    `json:"path"`
	Revision int       `json:"revision"`
	Time     time.Time `json:"time"`
	// Complete is false for a backup that never finished (no manifest, or a
	// ".partial" folder left by a killed run): it cannot be restored.
	Complete bool      `json:"complete"`
	Problem  string    `json:"problem,omitempty"`
	Manifest *Manifest `json:"manifest,omitempty"`
}

const idTimeLayout = "20060102T150405Z"

// newID is "<revision>-<UTC timestamp>".
func newID(revision int, t time.Time) string {
	return fmt.Sprintf("%d-%s", revision, t.UTC().Format(idTimeLayout))
}

// parseID splits an ID (possibly with a ".partial" or "-N" collision suffix).
func parseID(id string) (rev int, t time.Time, ok bool) {
	id = strings.TrimSuffix(id, partialSuffix)
	revStr, rest, found := strings.Cut(id, "-")
	if !found {
		return 0, time.Time{}, false
	}
	rev, err := strconv.Atoi(revStr)
	if err != nil || rev < 1 || len(rest) < len(idTimeLayout) {
		return 0, time.Time{}, false
	}
	t, err = time.Parse(idTimeLayout, rest[:len(idTimeLayout)])
	return rev, t, err == nil
}

// List returns the release's backups, oldest first. Folders that are not
// backups are ignored.
func (c Catalog) List(namespace, release string) ([]Entry, error) {
	dir := c.ReleaseDir(namespace, release)
	items, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, errs.Failedf("reading backup catalog %s: %w", dir, err)
	}
	var out []Entry
	for _, it := range items {
		if !it.IsDir() {
			continue
		}
		rev, t, ok := parseID(it.Name())
		if !ok {
			continue
		}
		e := Entry{ID: it.Name(), Path: filepath.Join(dir, it.Name()), Revision: rev, Time: t}
		switch m, err := readManifest(e.Path); {
		case strings.HasSuffix(it.Name(), partialSuffix):
			e.Problem = "incomplete: the run that wrote it did not finish"
		case err != nil && os.IsNotExist(err):
			e.Problem = "incomplete: no manifest"
		case err != nil:
			e.Problem = "unreadable manifest: " + err.Error()
		default:
			e.Complete, e.Manifest = true, m
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Find returns the complete backup with id ("latest" for the newest).
func (c Catalog) Find(namespace, release, id string) (*Entry, error) {
	list, err := c.List(namespace, release)
	if err != nil {
		return nil, err
	}
	if id == "latest" {
		for i := len(list) - 1; i >= 0; i-- {
			if list[i].Complete {
				return &list[i], nil
			}
		}
		return nil, errs.NotFoundf("no complete backup of release %q in namespace %q under %s", release, namespace, c.Root)
	}
	for i := range list {
		if list[i].ID == id {
			if !list[i].Complete {
				return nil, errs.Preconditionf("backup %s is not usable: %s", id, list[i].Problem)
			}
			return &list[i], nil
		}
	}
	return nil, errs.NotFoundf("backup %q not found for release %q in namespace %q (see: helm csghub backup list)", id, release, namespace)
}

// ForRevision returns the newest complete backup taken at revision, or nil.
func (c Catalog) ForRevision(namespace, release string, revision int) (*Entry, error) {
	list, err := c.List(namespace, release)
	if err != nil {
		return nil, err
	}
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Complete && list[i].Revision == revision {
			return &list[i], nil
		}
	}
	return nil, nil
}

// Prune removes the oldest complete backups beyond keep (at least MinKeep). It
// never removes the newest backup, nor the newest backup of the deployed
// revision (the one a rollback to it would restore). Incomplete folders are
// left for the operator to inspect (backup list shows them).
func (c Catalog) Prune(namespace, release string, keep, deployedRevision int) ([]string, error) {
	if keep < MinKeep {
		return nil, errs.Usagef("--keep %d: at least %d backups are kept (the guide asks for two revisions to roll back to)", keep, MinKeep)
	}
	list, err := c.List(namespace, release)
	if err != nil {
		return nil, err
	}
	var complete []Entry
	for _, e := range list {
		if e.Complete {
			complete = append(complete, e)
		}
	}
	protected := map[string]bool{}
	if n := len(complete); n > 0 {
		protected[complete[n-1].ID] = true
	}
	for i := len(complete) - 1; i >= 0; i-- {
		if complete[i].Revision == deployedRevision {
			protected[complete[i].ID] = true
			break
		}
	}
	excess := len(complete) - keep
	var removed []string
	for _, e := range complete { // oldest first
		if excess <= 0 {
			break
		}
		if protected[e.ID] {
			continue
		}
		if err := os.RemoveAll(e.Path); err != nil {
			return removed, errs.Failedf("pruning backup %s: %w", e.ID, err)
		}
		removed = append(removed, e.ID)
		excess--
	}
	return removed, nil
}
