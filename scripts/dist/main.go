// Command dist builds the release files of helm-csghub (make dist):
//
//	helm-csghub_<version>_<os>_<arch>.tar.gz  per platform: helm-csghub[.exe], plugin.yaml,
//	                                           install-binary.sh, README.md, LICENSE
//	checksums.txt                              sha256 of every archive (sha256sum format)
//	csghub-<version>.tgz [.prov]               the Helm 4 plugin package, made by `helm plugin
//	                                           package`: plugin.yaml, install-binary.sh, README.md,
//	                                           LICENSE and checksums.txt, signed when -key is given
//
// The package holds no binary: its install hook downloads the archive for the
// machine and checks it against the checksums.txt inside the package, so the
// package's signature covers the binary too.
//
// Reproducible: the same commit gives the same archive bytes. Binaries are built
// with -trimpath and an empty build id; archive entries are sorted, owned by
// 0:0, dated at the commit time, gzip without name or time. The package is
// written by helm from files dated at the commit time (it records the builder's
// uid/gid); a .prov holds a signature time, so it differs per run.
//
// A small Go program rather than goreleaser: goreleaser makes no Helm plugin
// package (helm has to run anyway); its current release (v2.18.2) needs Go
// 1.27.1, newer than the toolchain here; and its go.mod requires about 370
// modules to build on the machine, where the standard library's tar, gzip and
// sha256 do the job.
//
// Usage:
//
//	go run ./scripts/dist -platforms "linux/amd64 darwin/arm64 ..." -helm HELM4 [-out dist]
//	    [-key NAME -keyring SECRING [-passphrase-file FILE]]
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	project  = "helm-csghub"
	buildPkg = "github.com/opencsgs/helm-csghub/internal/buildinfo"
)

// Options is one dist run.
type Options struct {
	Root      string   // repository root
	Out       string   // output folder
	Platforms []string // os/arch
	Helm      string   // helm v4 binary (plugin package)
	// Key and Keyring sign the plugin package (Helm's provenance: an OpenPGP
	// secret keyring in the legacy binary format, e.g. gpg --export-secret-keys).
	Key, Keyring, PassphraseFile string
	Version, Commit              string
	Epoch                        time.Time // file times in every archive
	Log                          func(format string, args ...any)
}

func main() {
	o := Options{Log: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "dist: "+f+"\n", a...) }}
	var platforms string
	flag.StringVar(&o.Out, "out", "dist", "output folder")
	flag.StringVar(&platforms, "platforms", "", "os/arch list, space or comma separated")
	flag.StringVar(&o.Helm, "helm", "", "helm v4 binary, for `helm plugin package`")
	flag.StringVar(&o.Key, "key", "", "name of the signing key (signs the plugin package)")
	flag.StringVar(&o.Keyring, "keyring", "", "OpenPGP secret keyring holding -key")
	flag.StringVar(&o.PassphraseFile, "passphrase-file", "", "file holding the key's passphrase")
	flag.Parse()
	o.Platforms = strings.FieldsFunc(platforms, func(r rune) bool { return r == ' ' || r == ',' })
	if err := o.fill(); err == nil {
		err = o.Run()
		if err == nil {
			return
		}
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
	} else {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
	}
	os.Exit(1)
}

// fill sets what the flags leave out from the repository: version from
// plugin.yaml, commit and its time from git (SOURCE_DATE_EPOCH overrides the time).
func (o *Options) fill() error {
	var err error
	if o.Root == "" {
		if o.Root, err = os.Getwd(); err != nil {
			return err
		}
	}
	if o.Version == "" {
		if o.Version, err = PluginVersion(filepath.Join(o.Root, "plugin.yaml")); err != nil {
			return err
		}
	}
	if o.Commit == "" {
		if o.Commit, err = git(o.Root, "rev-parse", "--short=12", "HEAD"); err != nil {
			return err
		}
	}
	if o.Epoch.IsZero() {
		s := os.Getenv("SOURCE_DATE_EPOCH")
		if s == "" {
			if s, err = git(o.Root, "log", "-1", "--format=%ct", "HEAD"); err != nil {
				return err
			}
		}
		secs, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("commit time %q: %w", s, err)
		}
		o.Epoch = time.Unix(secs, 0).UTC()
	}
	if out, _ := git(o.Root, "status", "--porcelain", "--untracked-files=no"); out != "" {
		o.Log("warning: the work tree has uncommitted changes; the files are built from them, not from commit %s", o.Commit)
	}
	return nil
}

var versionLine = regexp.MustCompile(`(?m)^version:\s*"?([^"\s]+)"?\s*$`)

// PluginVersion reads the version field of plugin.yaml.
func PluginVersion(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	m := versionLine.FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("no version in %s", path)
	}
	return string(m[1]), nil
}

// ArchiveName is the release archive of one platform.
func ArchiveName(version, goos, goarch string) string {
	return fmt.Sprintf("%s_%s_%s_%s.tar.gz", project, version, goos, goarch)
}

// PackageName is the Helm 4 plugin package (name-version, as helm names it).
func PackageName(version string) string { return fmt.Sprintf("csghub-%s.tgz", version) }

// Run builds every file into o.Out.
func (o *Options) Run() error {
	if len(o.Platforms) == 0 {
		return errors.New("no platforms given (-platforms)")
	}
	if o.Helm == "" {
		return errors.New("no helm v4 binary given (-helm), needed for `helm plugin package`")
	}
	if (o.Key == "") != (o.Keyring == "") {
		return errors.New("-key and -keyring go together")
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "helm-csghub-dist-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	common := []string{"LICENSE", "README.md", "install-binary.sh", "plugin.yaml"}
	var sums []string
	for _, p := range o.Platforms {
		goos, goarch, ok := strings.Cut(p, "/")
		if !ok || goos == "" || goarch == "" {
			return fmt.Errorf("platform %q: want os/arch", p)
		}
		bin := project
		if goos == "windows" {
			bin += ".exe"
		}
		binPath := filepath.Join(work, goos+"_"+goarch, bin)
		t0 := time.Now()
		if err := o.build(goos, goarch, binPath); err != nil {
			return err
		}
		files := []File{{Name: bin, Path: binPath, Mode: 0o755}}
		for _, f := range common {
			files = append(files, File{Name: f, Path: filepath.Join(o.Root, f), Mode: mode(f)})
		}
		name := ArchiveName(o.Version, goos, goarch)
		sum, err := WriteArchive(filepath.Join(o.Out, name), files, o.Epoch)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		sums = append(sums, sum+"  "+name+"\n")
		o.Log("%s (%.1fs)", name, time.Since(t0).Seconds())
	}
	sort.Slice(sums, func(i, j int) bool { return sums[i][66:] < sums[j][66:] })
	checksums := []byte(strings.Join(sums, ""))
	if err := writeFileAtomic(filepath.Join(o.Out, "checksums.txt"), checksums, 0o644); err != nil {
		return err
	}
	return o.pluginPackage(work, checksums)
}

func mode(name string) int64 {
	if strings.HasSuffix(name, ".sh") {
		return 0o755
	}
	return 0o644
}

func (o *Options) build(goos, goarch, out string) error {
	ldflags := fmt.Sprintf("-s -w -buildid= -X %s.Version=%s -X %s.Commit=%s", buildPkg, o.Version, buildPkg, o.Commit)
	cmd := exec.Command(goBin(), "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, ".")
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s/%s: %w\n%s", goos, goarch, err, b)
	}
	return nil
}

// pluginPackage stages the package's files dated at the commit time and runs
// `helm plugin package` on them.
func (o *Options) pluginPackage(work string, checksums []byte) error {
	stage := filepath.Join(work, "csghub")
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"LICENSE", "README.md", "install-binary.sh", "plugin.yaml", "checksums.txt"} {
		var b []byte
		var err error
		if f == "checksums.txt" {
			b = checksums
		} else if b, err = os.ReadFile(filepath.Join(o.Root, f)); err != nil {
			return err
		}
		dst := filepath.Join(stage, f)
		if err := os.WriteFile(dst, b, os.FileMode(mode(f))); err != nil {
			return err
		}
		// the umask may have dropped bits; the package records the mode
		if err := os.Chmod(dst, os.FileMode(mode(f))); err != nil {
			return err
		}
		if err := os.Chtimes(dst, o.Epoch, o.Epoch); err != nil {
			return err
		}
	}
	if err := os.Chmod(stage, 0o755); err != nil {
		return err
	}
	if err := os.Chtimes(stage, o.Epoch, o.Epoch); err != nil {
		return err
	}
	out, err := filepath.Abs(o.Out)
	if err != nil {
		return err
	}
	args := []string{"plugin", "package", stage, "-d", out}
	if o.Key != "" {
		args = append(args, "--sign", "--key", o.Key, "--keyring", o.Keyring)
		if o.PassphraseFile != "" {
			args = append(args, "--passphrase-file", o.PassphraseFile)
		}
	} else {
		args = append(args, "--sign=false")
		_ = os.Remove(filepath.Join(out, PackageName(o.Version)+".prov")) // not a stale signature
	}
	cmd := exec.Command(o.Helm, args...)
	// helm's own homes in the scratch folder: packaging must not read the user's plugins
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(work, "helm"),
		"HELM_CONFIG_HOME="+filepath.Join(work, "helm"), "HELM_DATA_HOME="+filepath.Join(work, "helm"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if b, err := cmd.Output(); err != nil {
		return fmt.Errorf("helm plugin package: %w\n%s%s", err, b, stderr.Bytes())
	}
	pkg := filepath.Join(out, PackageName(o.Version))
	if _, err := os.Stat(pkg); err != nil {
		return fmt.Errorf("helm plugin package did not write %s: %w", pkg, err)
	}
	signed := "unsigned"
	if o.Key != "" {
		signed = "signed with " + o.Key
	}
	o.Log("%s (%s)", PackageName(o.Version), signed)
	return nil
}

// git runs git in dir and returns its trimmed output.
func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(b)), nil
}

// goBin is the toolchain this program was built with, else go on PATH.
func goBin() string {
	g := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(g); err == nil {
		return g
	}
	return "go"
}

func writeFileAtomic(path string, b []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
