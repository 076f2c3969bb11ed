package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/opencsgs/helm-csghub/internal/devenv"
	"github.com/opencsgs/helm-csghub/internal/testenv"
)

// noGoPath is the PATH of a machine without Go: the system's tools only.
const noGoPath = "/usr/bin:/bin"

// The release files of `make dist` (the archive for this machine, checksums.txt
// and the signed Helm 4 package) installed as a user without Go would: Helm 3
// from the archive's URL and from its folder, Helm 4 from the signed package
// with verification on; then `helm csghub version` and `status` run. The
// install hook refuses a tampered archive, a missing one and a tampered
// package with one line and installs nothing.
func TestInstallFromReleaseFiles(t *testing.T) {
	t.Parallel()
	if p, err := lookPathIn("go", noGoPath); err == nil {
		t.Fatalf("%s has go (%s): cannot test a machine without Go", noGoPath, p)
	}
	e := testenv.NewEnv(t)
	e.Install("1.15.0")

	version := pluginVersion(t, e.C.Root)
	commit := strings.TrimSpace(mustOutput(t, e.C.Root, "git", "rev-parse", "--short=12", "HEAD"))
	platform := runtime.GOOS + "/" + runtime.GOARCH
	archive := "helm-csghub_" + version + "_" + runtime.GOOS + "_" + runtime.GOARCH + ".tar.gz"
	pkg := "csghub-" + version + ".tgz"

	// make dist for this platform only (make cross compiles the others), signed with a fresh key
	keys := t.TempDir()
	keyName, secring, pubring := testSigningKey(t, keys)
	dist := t.TempDir()
	r := testenv.RunCmd(t, nil, e.C.Root, devenv.GoBin(), "run", "./scripts/dist",
		"-out", dist, "-platforms", platform, "-helm", e.C.Helm4, "-key", keyName, "-keyring", secring)
	if r.Code != 0 {
		t.Fatalf("dist: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, f := range []string{archive, "checksums.txt", pkg, pkg + ".prov"} {
		if _, err := os.Stat(filepath.Join(dist, f)); err != nil {
			t.Fatalf("dist did not write %s: %v", f, err)
		}
	}

	// releases as served: good, with a tampered archive (checksums.txt unchanged), without the archive
	releases := t.TempDir()
	for _, tree := range []string{"good", "tampered", "missing", "symlink"} {
		dir := filepath.Join(releases, tree, "v"+version)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		copyFile(t, filepath.Join(dist, "checksums.txt"), filepath.Join(dir, "checksums.txt"))
		switch tree {
		case "good":
			copyFile(t, filepath.Join(dist, archive), filepath.Join(dir, archive))
		case "tampered":
			copyFile(t, filepath.Join(dist, archive), filepath.Join(dir, archive))
			flipLastByte(t, filepath.Join(dir, archive))
		case "symlink":
			// a release whose archive (listed in its checksums.txt) holds a
			// link instead of the binary
			symlinkRelease(t, dir, archive)
		}
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(releases)))
	t.Cleanup(srv.Close)

	// a plugin folder without binary (a clone on a machine without Go): the hook downloads
	extracted := t.TempDir()
	mustOutput(t, extracted, "tar", "-xzf", filepath.Join(dist, archive))
	noBinary := t.TempDir()
	for _, f := range []string{"plugin.yaml", "install-binary.sh", "README.md", "LICENSE"} {
		copyFile(t, filepath.Join(extracted, f), filepath.Join(noBinary, f))
	}

	checkRuns := func(t *testing.T, h *helmNoGo) {
		t.Helper()
		v := h.run("csghub", "version", "-o", "json")
		if v.Code != 0 {
			t.Fatalf("helm csghub version: exit %d: %s", v.Code, v.Stderr)
		}
		var info map[string]string
		if err := json.Unmarshal([]byte(v.Stdout), &info); err != nil {
			t.Fatalf("version json: %v: %s", err, v.Stdout)
		}
		if info["version"] != version || info["gitCommit"] != commit || info["platform"] != platform {
			t.Fatalf("version = %v, want %s, commit %s, %s", info, version, commit, platform)
		}
		assertInstalled115(t, parseStatus(t, h.run("-n", e.Namespace, "csghub", "status", "-o", "json")), e.Namespace)
	}

	t.Run("helm3 from the archive URL and from its folder", func(t *testing.T) {
		h := newHelmNoGo(t, e.C.Helm3, e.C.Kubeconfig, srv.URL+"/missing") // the binary is in the archive: nothing to download
		r := h.run("plugin", "install", srv.URL+"/good/v"+version+"/"+archive)
		if r.Code != 0 || !strings.Contains(r.Stdout, "from the release archive") || !strings.Contains(r.Stdout, "Installed plugin: csghub") {
			t.Fatalf("install from URL: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		checkRuns(t, h)
		h.mustRun("plugin", "uninstall", "csghub")
		r = h.run("plugin", "install", extracted)
		if r.Code != 0 || !strings.Contains(r.Stdout, "from the release archive") {
			t.Fatalf("install from folder: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		checkRuns(t, h)
	})

	t.Run("helm4 from the signed package", func(t *testing.T) {
		h := newHelmNoGo(t, e.C.Helm4, e.C.Kubeconfig, srv.URL+"/good")
		if r := h.run("plugin", "verify", "--keyring", pubring, filepath.Join(dist, pkg)); r.Code != 0 || !strings.Contains(r.Stdout, "Signed by:") {
			t.Fatalf("plugin verify: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		r := h.run("plugin", "install", "--keyring", pubring, filepath.Join(dist, pkg))
		if r.Code != 0 || !strings.Contains(r.Stdout, "Plugin Hash Verified") || !strings.Contains(r.Stdout, "downloading "+archive) {
			t.Fatalf("install (verify on): exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		checkRuns(t, h)
	})

	t.Run("helm4 refuses a tampered package", func(t *testing.T) {
		h := newHelmNoGo(t, e.C.Helm4, e.C.Kubeconfig, srv.URL+"/good")
		dir := t.TempDir()
		copyFile(t, filepath.Join(dist, pkg), filepath.Join(dir, pkg))
		copyFile(t, filepath.Join(dist, pkg+".prov"), filepath.Join(dir, pkg+".prov"))
		flipLastByte(t, filepath.Join(dir, pkg))
		r := h.run("plugin", "install", "--keyring", pubring, filepath.Join(dir, pkg))
		if r.Code == 0 || !strings.Contains(r.Stderr, "verification failed") {
			t.Fatalf("tampered package: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		h.assertNoPlugin()
	})

	// the hook on its own refusals: one line from install-binary.sh, no binary
	refused := func(t *testing.T, helm, releasesURL, source, want string, binDir string) {
		t.Helper()
		h := newHelmNoGo(t, helm, e.C.Kubeconfig, releasesURL)
		args := []string{"plugin", "install", source}
		if helm == e.C.Helm4 {
			args = append(args, "--keyring", pubring)
		}
		r := h.run(args...)
		var own []string
		for _, l := range strings.Split(strings.TrimSpace(r.Stderr), "\n") {
			if !strings.HasPrefix(l, "Error: ") { // helm's own "hook exited with error"
				own = append(own, l)
			}
		}
		if r.Code == 0 || len(own) != 1 || !strings.HasPrefix(own[0], "install-binary.sh: ") || !strings.Contains(own[0], want) ||
			!strings.Contains(own[0], "nothing installed") {
			t.Fatalf("want one install-binary.sh line containing %q, got exit %d\nstdout:\n%sstderr:\n%s", want, r.Code, r.Stdout, r.Stderr)
		}
		if binDir == "" {
			binDir = filepath.Join(h.plugins, "csghub", "bin")
		}
		if _, err := os.Stat(binDir); !os.IsNotExist(err) {
			t.Fatalf("%s exists after a refused install (%v)", binDir, err)
		}
	}
	t.Run("tampered archive refused (helm4 package)", func(t *testing.T) {
		refused(t, e.C.Helm4, srv.URL+"/tampered", filepath.Join(dist, pkg), "checksum mismatch for "+archive, "")
	})
	t.Run("tampered archive refused (helm3 folder without binary)", func(t *testing.T) {
		refused(t, e.C.Helm3, srv.URL+"/tampered", noBinary, "checksum mismatch for "+archive, filepath.Join(noBinary, "bin"))
	})
	t.Run("missing archive refused (helm3 folder without binary)", func(t *testing.T) {
		refused(t, e.C.Helm3, srv.URL+"/missing", noBinary, "download of "+srv.URL+"/missing/v"+version+"/"+archive+" failed",
			filepath.Join(noBinary, "bin"))
	})
	t.Run("archive holding a link refused (helm3 folder without binary)", func(t *testing.T) {
		refused(t, e.C.Helm3, srv.URL+"/symlink", noBinary, "helm-csghub in "+archive+" is not a regular file", filepath.Join(noBinary, "bin"))
	})
	t.Run("helm3 folder without binary downloads and checks against the release's checksums.txt", func(t *testing.T) {
		h := newHelmNoGo(t, e.C.Helm3, e.C.Kubeconfig, srv.URL+"/good")
		r := h.run("plugin", "install", noBinary)
		if r.Code != 0 || !strings.Contains(r.Stdout, "downloading "+archive) {
			t.Fatalf("install: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		checkRuns(t, h)
	})
}

// helmNoGo runs one helm CLI in its own homes with a PATH without Go.
type helmNoGo struct {
	t       *testing.T
	bin     string
	env     []string
	plugins string
}

func newHelmNoGo(t *testing.T, bin, kubeconfig, releasesURL string) *helmNoGo {
	home := t.TempDir()
	h := &helmNoGo{t: t, bin: bin, plugins: filepath.Join(home, "data", "plugins")}
	h.env = []string{
		"PATH=" + noGoPath,
		"KUBECONFIG=" + kubeconfig,
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
		"HELM_PLUGINS=" + h.plugins,
		"HELM_CSGHUB_RELEASES_URL=" + releasesURL,
	}
	return h
}

func (h *helmNoGo) run(args ...string) testenv.Result {
	h.t.Helper()
	return testenv.RunCmd(h.t, h.env, h.t.TempDir(), h.bin, args...)
}

func (h *helmNoGo) mustRun(args ...string) string {
	h.t.Helper()
	r := h.run(args...)
	if r.Code != 0 {
		h.t.Fatalf("helm %s: exit %d\n%s%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

func (h *helmNoGo) assertNoPlugin() {
	h.t.Helper()
	if out := h.mustRun("plugin", "list"); strings.Contains(out, "csghub") {
		h.t.Fatalf("plugin installed after a refusal:\n%s", out)
	}
}

// testSigningKey makes an OpenPGP key for signing the plugin package, as
// `gpg --export-secret-keys` / `gpg --export` would write it.
func testSigningKey(t *testing.T, dir string) (name, secring, pubring string) {
	t.Helper()
	ent, err := openpgp.NewEntity("helm-csghub e2e", "test only", "e2e@helm-csghub.invalid", &packet.Config{RSABits: 2048})
	if err != nil {
		t.Fatal(err)
	}
	secring, pubring = filepath.Join(dir, "secring.gpg"), filepath.Join(dir, "pubring.gpg")
	for _, k := range []struct {
		path  string
		write func(*os.File) error
	}{
		{secring, func(f *os.File) error { return ent.SerializePrivate(f, nil) }},
		{pubring, func(f *os.File) error { return ent.Serialize(f) }},
	} {
		f, err := os.OpenFile(k.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := k.write(f); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return "helm-csghub e2e", secring, pubring
}

func lookPathIn(file, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, file)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

var pluginVersionRE = regexp.MustCompile(`(?m)^version:\s*"?([^"\s]+)"?\s*$`)

func pluginVersion(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "plugin.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := pluginVersionRE.FindSubmatch(b)
	if m == nil {
		t.Fatal("no version in plugin.yaml")
	}
	return string(m[1])
}

func mustOutput(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, st.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

// flipLastByte changes a file the way a corrupted or tampered download would
// (the gzip trailer: the file still has its size).
// symlinkRelease writes into dir an archive whose helm-csghub is a link to
// /bin/true and a checksums.txt that lists the archive (so only the check of
// what it holds can refuse it).
func symlinkRelease(t *testing.T, dir, archive string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Name: "helm-csghub", Typeflag: tar.TypeSymlink, Linkname: "/bin/true", Mode: 0o777}); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	if err := os.WriteFile(filepath.Join(dir, archive), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "checksums.txt"), []byte(hex.EncodeToString(sum[:])+"  "+archive+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func flipLastByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
