package plan

import (
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/opencsgs/helm-csghub/internal/lock"
	"github.com/opencsgs/helm-csghub/internal/migrate"
)

// mark is what a migrate run records on its lease before its first change:
// killed, the migrations may be half applied, and Command (status prints
// it) runs them again; each migration checks what is already applied.
func (m *Migrate) mark(version string) *lock.Mark {
	cmd, note := RerunCommand("migrate", version, m.Options, m.Skip, m.Dir)
	return &lock.Mark{Operation: "migrate", Step: lock.StepMigrate, Command: cmd, Note: note}
}

// RerunCommand is the one command that runs `helm csghub sub` again to
// version: the target and values flags of o (the -f and --set-file paths
// made absolute: it may be run from another folder), the switches turned
// off in skip, extra (the operation's own flags), the release and the
// catalog dir. A --set, --set-string or --set-json is never in it (a value
// may be a password, and the command is kept on the lease): note says to
// add them ("" when there were none).
func RerunCommand(sub, version string, o Options, skip map[*migrate.Switch]bool, dir string, extra ...string) (cmd, note string) {
	var b strings.Builder
	b.WriteString("helm csghub " + sub + " --version " + version)
	if c := o.Target.Chart; c != "" && c != DefaultChart {
		b.WriteString(" --chart " + quote(absPath(c)))
	}
	if o.Target.NoRepoUpdate {
		b.WriteString(" --no-repo-update")
	}
	for _, f := range o.Values.ValueFiles {
		b.WriteString(" -f " + quote(absPath(f)))
	}
	for _, kv := range o.Values.FileValues {
		if k, path, ok := strings.Cut(kv, "="); ok {
			kv = k + "=" + absPath(path)
		}
		b.WriteString(" --set-file " + quote(kv))
	}
	var off []string
	for sw, on := range skip {
		if on {
			off = append(off, " --"+sw.Flag)
		}
	}
	sort.Strings(off)
	b.WriteString(strings.Join(off, ""))
	for _, x := range extra {
		b.WriteString(" " + quote(x))
	}
	b.WriteString(o.Release.Flags(dir))
	if len(o.Values.Values)+len(o.Values.StringValues)+len(o.Values.JSONValues) > 0 {
		note = "with the killed run's --set, --set-string and --set-json flags (not recorded: they may hold secrets)"
	}
	return b.String(), note
}

// absPath is p made absolute when it names a local file or folder (a
// repository reference, oci:// or http:// stays as it is).
func absPath(p string) string {
	if strings.Contains(p, "://") {
		return p
	}
	if _, err := os.Stat(p); err != nil {
		return p
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// quote shell-quotes s when it holds anything but the usual path characters.
func quote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_./=:,@+-%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
