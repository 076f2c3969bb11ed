package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The same contents give the same bytes, whatever the files' own times and
// the order they are given in; entries are sorted, owned by 0:0 and dated at mtime.
func TestWriteArchiveReproducible(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mod time.Time) File {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
		return File{Name: name, Path: p, Mode: mode(name)}
	}
	epoch := time.Unix(1764000000, 0)
	a := []File{write("plugin.yaml", "version: 1\n", time.Now()), write("install-binary.sh", "#!/bin/sh\n", time.Now()),
		write("helm-csghub", "\x7fELF...", time.Now())}
	a[2].Mode = 0o755
	sum1, err := WriteArchive(filepath.Join(dir, "one.tar.gz"), a, epoch)
	if err != nil {
		t.Fatal(err)
	}
	// other file times, reversed order
	later := time.Now().Add(time.Hour)
	for _, f := range a {
		if err := os.Chtimes(f.Path, later, later); err != nil {
			t.Fatal(err)
		}
	}
	b := []File{a[2], a[1], a[0]}
	sum2, err := WriteArchive(filepath.Join(dir, "two.tar.gz"), b, epoch)
	if err != nil {
		t.Fatal(err)
	}
	one, _ := os.ReadFile(filepath.Join(dir, "one.tar.gz"))
	two, _ := os.ReadFile(filepath.Join(dir, "two.tar.gz"))
	if sum1 != sum2 || !bytes.Equal(one, two) {
		t.Fatalf("archives differ: %s vs %s", sum1, sum2)
	}
	if sum1 != sha256Of(one) {
		t.Fatalf("returned sum %s is not the file's %s", sum1, sha256Of(one))
	}

	gz, err := gzip.NewReader(bytes.NewReader(one))
	if err != nil {
		t.Fatal(err)
	}
	if gz.Name != "" || !gz.ModTime.IsZero() {
		t.Fatalf("gzip header has name %q, time %v; want neither", gz.Name, gz.ModTime)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(epoch) || h.Typeflag != tar.TypeReg {
			t.Fatalf("%s: uid %d gid %d %q/%q mtime %v type %c", h.Name, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime, h.Typeflag)
		}
		if want := map[string]int64{"helm-csghub": 0o755, "install-binary.sh": 0o755, "plugin.yaml": 0o644}[h.Name]; h.Mode != want {
			t.Fatalf("%s: mode %o, want %o", h.Name, h.Mode, want)
		}
	}
	if got := names; len(got) != 3 || got[0] != "helm-csghub" || got[1] != "install-binary.sh" || got[2] != "plugin.yaml" {
		t.Fatalf("entries %v, want sorted helm-csghub, install-binary.sh, plugin.yaml", got)
	}
	// nothing left besides the two archives and the inputs
	left, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestPluginVersion(t *testing.T) {
	v, err := PluginVersion("../../plugin.yaml")
	if err != nil || v == "" {
		t.Fatalf("PluginVersion = %q, %v", v, err)
	}
	p := filepath.Join(t.TempDir(), "plugin.yaml")
	os.WriteFile(p, []byte("name: x\nversion: 1.2.3\n"), 0o644)
	if v, err := PluginVersion(p); err != nil || v != "1.2.3" {
		t.Fatalf("unquoted: %q, %v", v, err)
	}
	os.WriteFile(p, []byte("name: x\n"), 0o644)
	if _, err := PluginVersion(p); err == nil {
		t.Fatal("no version: want an error")
	}
}
