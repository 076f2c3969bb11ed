package readlimit

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"helm.sh/helm/v3/pkg/cli/values"
)

func TestFileRefusesDevicesPipesDirsAndOversize(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 2048), 0o600); err != nil {
		t.Fatal(err)
	}
	ok := filepath.Join(dir, "ok")
	if err := os.WriteFile(ok, []byte("a: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/dev/zero": "not a regular file (a character device)",
		dir:         "not a regular file (a directory)",
		big:         "larger than the 1.0 KiB allowed",
		fifo:        "not a regular file (a named pipe)",
	} {
		if _, err := File(path, 1024); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("File(%s): %v, want %q", path, err, want)
		}
	}
	if err := CheckValueFiles(values.Options{ValueFiles: []string{ok}, FileValues: []string{"k=" + ok}}); err != nil {
		t.Errorf("regular files refused: %v", err)
	}
	if data, err := File(ok, 1024); err != nil || string(data) != "a: 1\n" {
		t.Errorf("File(ok): %q %v", data, err)
	}
}

func TestCheckValueFiles(t *testing.T) {
	for _, c := range []struct {
		o    values.Options
		want string
	}{
		{values.Options{ValueFiles: []string{"/dev/zero"}}, "-f /dev/zero: not a regular file"},
		{values.Options{FileValues: []string{"k=/dev/zero"}}, "--set-file /dev/zero: not a regular file"},
		{values.Options{ValueFiles: []string{"-"}}, "stdin"},
		{values.Options{ValueFiles: []string{"/nonexistent/v.yaml"}}, "no such file"},
	} {
		if err := CheckValueFiles(c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.want)
		}
	}
	if err := CheckValueFiles(values.Options{ValueFiles: []string{"https://example.com/v.yaml"}}); err != nil {
		t.Errorf("URL: %v", err)
	}
}
