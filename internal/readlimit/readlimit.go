// Package readlimit reads the files the plugin is given with a size limit and
// only when they are regular files, so a wrong path (/dev/zero, a FIFO, a
// multi-GB file) is refused at once with a clear error instead of growing
// memory until the machine stalls. The limits are documented in the README
// ("Input limits").
package readlimit

import (
	"fmt"
	"io"
	"os"
	"strings"

	"helm.sh/helm/v3/pkg/cli/values"
)

const (
	// Values bounds one values file (-f, --set-file, a backup's values):
	// the real chart's own values.yaml is about 60 KB.
	Values = 16 << 20
	// Metadata bounds a backup's manifest.json and an upgrade journal.
	Metadata = 4 << 20
)

// File reads path when it is a regular file of at most max bytes.
func File(path string, max int64) ([]byte, error) {
	// stat before open: opening a FIFO without a writer blocks
	if err := checkRegular(path, max); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// the size may grow after the check: read one byte more than allowed
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: larger than %s", path, Size(max))
	}
	return data, nil
}

func checkRegular(path string, max int64) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file (%s)", path, kind(st.Mode()))
	}
	if st.Size() > max {
		return fmt.Errorf("%s: %s, larger than the %s allowed", path, Size(st.Size()), Size(max))
	}
	return nil
}

// CheckValueFiles checks every local file of -f and --set-file before Helm
// reads it (Helm reads them whole, and twice: once merged, once per flag for
// the value warnings). `-f -` is refused: stdin answers the confirmation
// prompt. URLs are left to Helm's getters.
func CheckValueFiles(o values.Options) error {
	check := func(flag, path string) error {
		if path == "-" {
			return fmt.Errorf("%s -: reading values from stdin is not supported (stdin answers the confirmation prompt); give a file", flag)
		}
		if strings.Contains(path, "://") {
			return nil
		}
		if err := checkRegular(path, Values); err != nil {
			return fmt.Errorf("%s %w", flag, err)
		}
		return nil
	}
	for _, p := range o.ValueFiles {
		if err := check("-f", p); err != nil {
			return err
		}
	}
	for _, kv := range o.FileValues {
		_, p, ok := strings.Cut(kv, "=")
		if !ok {
			continue // Helm's parser names the malformed flag
		}
		if err := check("--set-file", p); err != nil {
			return err
		}
	}
	return nil
}

func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return m.Type().String()
}

// Size formats n bytes for people.
func Size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
