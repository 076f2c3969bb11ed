package plan

import (
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/opencsgs/helm-csghub/internal/lock"
)

// mark is what a migrate run records on its lease before its first change:
// killed, the migrations may be half applied, and Command (status prints
// it) runs them again; each migration checks what is already applied.
func (m *Migrate) mark(version string) *lock.Mark {
	var b strings.Builder
	b.WriteString("helm csghub migrate --version " + version)
	if c := m.Target.Chart; c != "" && c != DefaultChart {
		b.WriteString(" --chart " + quote(absPath(c)))
	}
	if m.Target.NoRepoUpdate {
		b.WriteString(" --no-repo-update")
	}
	// paths, made absolute: the command may be run from another folder
	for _, f := range m.Values.ValueFiles {
		b.WriteString(" -f " + quote(absPath(f)))
	}
	for _, kv := range m.Values.FileValues {
		if k, path, ok := strings.Cut(kv, "="); ok {
			kv = k + "=" + absPath(path)
		}
		b.WriteString(" --set-file " + quote(kv))
	}
	var skip []string
	for sw, on := range m.Skip {
		if on {
			skip = append(skip, " --"+sw.Flag)
		}
	}
	sort.Strings(skip)
	b.WriteString(strings.Join(skip, ""))
	b.WriteString(m.Release.Flags(m.Dir))
	mk := &lock.Mark{Operation: "migrate", Step: lock.StepMigrate, Command: b.String()}
	if len(m.Values.Values)+len(m.Values.StringValues)+len(m.Values.JSONValues) > 0 {
		// never on the lease: a --set value may be a password
		mk.Note = "with the killed run's --set, --set-string and --set-json flags (not recorded: they may hold secrets)"
	}
	return mk
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
