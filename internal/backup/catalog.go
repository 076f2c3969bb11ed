package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"helm.sh/helm/v3/pkg/helmpath"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/readlimit"
)

// MinKeep is the fewest backups retention keeps: the guide asks for at least two
// revisions to roll back to.
const MinKeep = 2

// DefaultKeep is retention's default.
const DefaultKeep = 3

// DefaultDir is the catalog root under Helm's data home (HELM_DATA_HOME).
func DefaultDir() string { return helmpath.DataPath("csghub", "backups") }

// Catalog is where all backups are: a folder, or a bucket (s3://).
type Catalog struct {
	// Root is the folder, or the s3:// URL.
	Root string
	s3   *s3Store
	err  error // a bucket location that cannot be used (every method returns it)
}

// CatalogAt is the catalog at loc: a folder (a --dir flag; DefaultDir when
// empty) or s3://BUCKET/PREFIX (checked by ResolveLocation first).
func CatalogAt(loc string) Catalog {
	if loc == "" {
		loc = DefaultDir()
	}
	if IsBucket(loc) {
		s, err := newS3Store(loc)
		return Catalog{Root: loc, s3: s, err: err}
	}
	return Catalog{Root: loc}
}

// InBucket reports whether the catalog is in object storage.
func (c Catalog) InBucket() bool { return IsBucket(c.Root) }

// Check makes sure the location answers before anything changes: a folder
// that can be created and written (with write), a bucket that exists,
// answers with these credentials in this region and (with write) takes an
// object. Unusable: a precondition (exit 4).
func (c Catalog) Check(ctx context.Context, write bool) error {
	if c.err != nil {
		return c.err
	}
	if c.s3 != nil {
		return c.s3.check(ctx, write)
	}
	if !write {
		return nil
	}
	if err := os.MkdirAll(c.Root, dirMode); err != nil {
		return errs.Preconditionf("backup folder %s is not writable: %v", c.Root, err)
	}
	probe, err := os.CreateTemp(c.Root, ".write-probe-*")
	if err != nil {
		return errs.Preconditionf("backup folder %s is not writable: %v", c.Root, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	return nil
}

// ReleaseDir holds the backups of one release (a folder or an s3:// URL).
func (c Catalog) ReleaseDir(namespace, release string) string {
	if c.s3 != nil {
		return c.s3.urlOf(namespace, release)
	}
	return filepath.Join(c.Root, namespace, release)
}

// newSink starts a new backup of revision (m.ID is set to its id).
func (c Catalog) newSink(ctx context.Context, namespace, release string, revision int, m *Manifest) (backupSink, error) {
	if c.err != nil {
		return nil, c.err
	}
	if c.s3 != nil {
		return newS3Sink(ctx, c.s3, namespace, release, revision, m)
	}
	return newFolderSink(c.ReleaseDir(namespace, release), revision, m)
}

// entryFor is the complete entry of a backup just written at where.
func (c Catalog) entryFor(where string, m *Manifest) *Entry {
	e := &Entry{ID: m.ID, Path: where, Revision: m.Revision, Time: m.StartedAt, Complete: true, Manifest: m}
	if c.s3 != nil {
		e.src = s3Source{s: c.s3, dir: c.s3.key(m.Namespace, m.Release, m.ID)}
		e.recorded = map[string]bool{}
	}
	return e
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
	// Insecure lists what of the backup others may read or change (its
	// folder or files not 0700/0600): it holds role password hashes.
	Insecure []string `json:"insecurePermissions,omitempty"`
	// Kept says why retention keeps it (set by Retention.Apply).
	Kept string `json:"kept,omitempty"`
	// IncompleteExtras are extra files (e.g. a Dataflow logs export) whose
	// upload into this complete backup in a bucket never finished or was
	// never recorded: not part of the backup; the next backup or export
	// removes them.
	IncompleteExtras []string `json:"incompleteExtras,omitempty"`
	// src reads its files (nil: the folder Path).
	src fileSource
	// recorded: in a bucket, the extras of Manifest.Extra committed by a
	// record object rather than listed by the manifest itself.
	recorded map[string]bool
	// pendingUploads: in a bucket, the backup has an uploadsName list left
	// (a killed export, or a run killed right after its manifest).
	pendingUploads bool
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
	if c.err != nil {
		return nil, c.err
	}
	if c.s3 != nil {
		return c.listBucket(namespace, release)
	}
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
			// the folder name is only a name: a backup renamed or copied under
			// another revision would restore another revision's data
			if p := m.mismatch(namespace, release, rev, it.Name()); p != "" {
				e.Problem = p
				break
			}
			e.Complete, e.Manifest = true, m
			e.Insecure = insecureModes(e.Path)
		}
		out = append(out, e)
	}
	sortEntries(out)
	return out, nil
}

func sortEntries(out []Entry) {
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].ID < out[j].ID
	})
}

// listBucket lists a release's backups in the bucket. An id without its
// manifest is a backup that never completed (or one being written). The
// extras committed by their records join the manifest's Extra list.
func (c Catalog) listBucket(namespace, release string) ([]Entry, error) {
	tree, err := c.s3.listTree(namespace, release)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for id, names := range tree {
		rev, t, ok := parseID(id)
		if !ok || strings.HasSuffix(id, partialSuffix) {
			continue
		}
		src := s3Source{s: c.s3, dir: c.s3.key(namespace, release, id)}
		e := Entry{ID: id, Path: c.s3.urlOf(namespace, release, id), Revision: rev, Time: t, src: src}
		var m *Manifest
		err := fmt.Errorf("%s: %w", manifestName, os.ErrNotExist)
		if names[manifestName] {
			var data []byte
			data, err = c.s3.readSmall(src.dir+"/"+manifestName, readlimit.Metadata)
			if err == nil {
				m, err = parseManifest(data, e.Path)
			}
		}
		switch {
		case errors.Is(err, os.ErrNotExist):
			e.Problem = "incomplete: no manifest (the run that wrote it did not finish, or is still running)"
		case err != nil:
			var typed *errs.Error
			if errors.As(err, &typed) && typed.Kind != errs.Failed {
				return nil, err // the bucket itself failed, not this backup
			}
			e.Problem = "unreadable manifest: " + err.Error()
		default:
			if p := m.mismatch(namespace, release, rev, id); p != "" {
				e.Problem = p
				break
			}
			e.Complete, e.Manifest = true, m
			if err := c.s3.readExtras(&e, names); err != nil {
				return nil, err
			}
		}
		out = append(out, e)
	}
	sortEntries(out)
	return out, nil
}

// listTree lists the objects of a release's backups: per id, the names
// of its objects.
func (s *s3Store) listTree(namespace, release string) (map[string]map[string]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s3MetaTimeout)
	defer cancel()
	dir := s.key(namespace, release) + "/"
	tree := map[string]map[string]bool{}
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: dir, Recursive: true}) {
		if o.Err != nil {
			return nil, s.describe("reading backup catalog "+s.urlOf(namespace, release), o.Err)
		}
		id, name, ok := strings.Cut(strings.TrimPrefix(o.Key, dir), "/")
		if !ok || name == "" || strings.Contains(name, "/") {
			continue // not a file of a backup
		}
		if tree[id] == nil {
			tree[id] = map[string]bool{}
		}
		tree[id][name] = true
	}
	return tree, nil
}

// readExtras adds the extras committed by their records (names are the
// backup's objects) to e's manifest, and finds what unfinished extra
// uploads left. A record that does not belong (another backup's id, a name
// that is not its own, a file of the backup itself) is left out: its
// extra is then incomplete.
func (s *s3Store) readExtras(e *Entry, names map[string]bool) error {
	src := e.src.(s3Source)
	e.recorded = map[string]bool{}
	var recordNames []string
	for n := range names {
		if strings.HasSuffix(n, extraRecordSuffix) {
			recordNames = append(recordNames, n)
		}
	}
	sort.Strings(recordNames)
	for _, rn := range recordNames {
		name := strings.TrimSuffix(rn, extraRecordSuffix)
		data, err := s.readSmall(src.dir+"/"+rn, readlimit.Metadata)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed since the listing (an export starting again)
		}
		if err != nil {
			return err
		}
		var r extraRecord
		if json.Unmarshal(data, &r) != nil || r.FormatVersion != FormatVersion || r.Backup != e.ID || r.Name != name ||
			!validExtraName(name) || e.Manifest.isContent(name) {
			continue
		}
		e.Manifest.Extra = append(e.Manifest.Extra, r.File)
		e.recorded[name] = true
	}
	if names[uploadsName] {
		pending, err := s.pendingUploads(src.dir)
		if err != nil {
			return err
		}
		e.pendingUploads = pending != nil
		e.IncompleteExtras = s.incompleteExtras(src.dir, e.Manifest, pending, e.recorded)
	}
	return nil
}

// mismatch says how the manifest contradicts the folder it is in ("" when it
// does not).
func (m *Manifest) mismatch(namespace, release string, rev int, folder string) string {
	var diffs []string
	if m.ID != folder {
		diffs = append(diffs, fmt.Sprintf("ID %q", m.ID))
	}
	if m.Revision != rev {
		diffs = append(diffs, fmt.Sprintf("revision %d", m.Revision))
	}
	if m.Release != release {
		diffs = append(diffs, fmt.Sprintf("release %q", m.Release))
	}
	if m.Namespace != namespace {
		diffs = append(diffs, fmt.Sprintf("namespace %q", m.Namespace))
	}
	if len(diffs) == 0 {
		return ""
	}
	return fmt.Sprintf("not trusted: its manifest says %s, its folder %s/%s/%s (renamed or copied by hand?)",
		strings.Join(diffs, ", "), namespace, release, folder)
}

// insecureModes lists what lets others read or change the backup: its
// folder and files open to group or world, a file that is a symbolic link
// (what it points to can change, and chmod does not fix a link), and a
// parent folder (release, namespace, catalog root) others may write into
// without the sticky bit, where the whole backup can be renamed away and
// another put in its place. Each entry says how to fix it.
func insecureModes(dir string) []string {
	var out []string
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		out = append(out, fmt.Sprintf("folder %04o", fi.Mode().Perm()))
	}
	items, _ := os.ReadDir(dir)
	for _, it := range items {
		if it.Type()&os.ModeSymlink != 0 {
			out = append(out, it.Name()+" is a symbolic link (replace it with the file itself)")
			continue
		}
		fi, err := it.Info()
		if err == nil && fi.Mode().Perm()&0o077 != 0 {
			out = append(out, fmt.Sprintf("%s %04o", it.Name(), fi.Mode().Perm()))
		}
	}
	parent := dir
	for i := 0; i < 3; i++ { // release, namespace, catalog root
		parent = filepath.Dir(parent)
		fi, err := os.Stat(parent)
		if err == nil && fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0 {
			out = append(out, fmt.Sprintf("parent folder %s %04o, writable by others (chmod go-w %s)", parent, fi.Mode().Perm(), parent))
		}
	}
	return out
}

// InsecureError refuses to restore a backup others can read or change.
func InsecureError(e *Entry) error {
	return errs.Preconditionf("backup %s is readable or writable by others (%s): it holds role password hashes and what is restored; fix what is named, and the backup's own modes with `chmod -R go-rwx %s`, or pass --allow-insecure-permissions",
		e.ID, strings.Join(e.Insecure, ", "), e.Path)
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

// Retention decides which complete backups stay. Rule: the newest complete
// backup of every revision that Helm's history still holds and that is one of
// its last max(MinKeep, Keep) revisions is a rollback target and is never
// pruned, nor is the newest backup; beyond those, the oldest go first while
// more than Keep complete backups remain.
type Retention struct {
	Keep int
	// History is the revisions Helm's history holds (nil: unknown; then only
	// the newest backup is protected besides Keep).
	History []int
}

// Apply marks every complete entry of list (oldest first, as List returns
// it) with why it is kept, and returns those to prune, oldest first.
func (r Retention) Apply(list []Entry) []Entry {
	n := r.Keep
	if n < MinKeep {
		n = MinKeep
	}
	hist := append([]int(nil), r.History...)
	sort.Sort(sort.Reverse(sort.IntSlice(hist)))
	if len(hist) > n {
		hist = hist[:n]
	}
	targets := map[int]bool{}
	for _, rev := range hist {
		targets[rev] = true
	}
	var complete []*Entry
	for i := range list {
		list[i].Kept = ""
		if list[i].Complete {
			complete = append(complete, &list[i])
		}
	}
	seen := map[int]bool{}
	for i := len(complete) - 1; i >= 0; i-- { // newest first
		e := complete[i]
		switch {
		case targets[e.Revision] && !seen[e.Revision]:
			e.Kept = fmt.Sprintf("rollback target: newest backup of revision %d (one of Helm's last %d revisions)", e.Revision, n)
		case i == len(complete)-1:
			e.Kept = "newest backup"
		}
		seen[e.Revision] = true
	}
	total := len(complete)
	var prune []Entry
	for _, e := range complete { // oldest first
		if total <= r.Keep {
			break
		}
		if e.Kept != "" {
			continue
		}
		prune = append(prune, *e)
		total--
	}
	pruned := map[string]bool{}
	for _, e := range prune {
		pruned[e.ID] = true
	}
	for _, e := range complete {
		if e.Kept == "" && !pruned[e.ID] {
			e.Kept = fmt.Sprintf("within --keep %d", r.Keep)
		}
	}
	return prune
}

// Prune removes what Retention r prunes. Incomplete folders are left for the
// operator to inspect (backup list shows them).
func (c Catalog) Prune(namespace, release string, r Retention) ([]string, error) {
	if r.Keep < MinKeep {
		return nil, KeepError(r.Keep)
	}
	list, err := c.List(namespace, release)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range r.Apply(list) {
		if err := c.remove(namespace, release, e); err != nil {
			return removed, errs.Failedf("pruning backup %s: %w", e.ID, err)
		}
		removed = append(removed, e.ID)
	}
	if c.s3 != nil {
		// in a bucket nobody inspects a leftover: what a killed or failed
		// run left (objects without a manifest, unfinished uploads, extras
		// never recorded) goes
		ctx, cancel := context.WithTimeout(context.Background(), s3MetaTimeout)
		defer cancel()
		for _, e := range list {
			if e.Complete && e.pendingUploads && !contains(removed, e.ID) {
				if err := c.s3.cleanExtras(ctx, c.s3.key(namespace, release, e.ID), e.Manifest, e.recorded); err != nil {
					return removed, errs.Failedf("removing what an unfinished export left in backup %s: %w", e.ID, err)
				}
				for _, n := range e.IncompleteExtras {
					removed = append(removed, e.ID+"/"+n+" (incomplete)")
				}
			}
		}
		for _, e := range list {
			if !e.Complete && strings.HasPrefix(e.Problem, "incomplete") {
				if err := c.remove(namespace, release, e); err != nil {
					return removed, errs.Failedf("removing incomplete backup %s: %w", e.ID, err)
				}
				removed = append(removed, e.ID+" (incomplete)")
			}
		}
		if err := c.s3.abortUploads(ctx, c.s3.key(namespace, release)); err != nil {
			return removed, c.s3.describe("removing unfinished uploads under "+c.ReleaseDir(namespace, release), err)
		}
	}
	return removed, nil
}

// remove deletes one backup.
func (c Catalog) remove(namespace, release string, e Entry) error {
	if c.s3 != nil {
		return c.s3.removeAll(c.s3.key(namespace, release, e.ID))
	}
	return os.RemoveAll(e.Path)
}

// KeepError refuses a --keep below MinKeep (0 and negatives included).
func KeepError(keep int) error {
	return errs.Usagef("--keep %d: at least %d backups are kept (the guide asks for two revisions to roll back to)", keep, MinKeep)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
