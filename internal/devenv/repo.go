package devenv

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
)

// PackageCharts packages every chart under testdata/charts into dir and writes
// an index.yaml whose URLs point at url, as `helm repo add` expects.
func (s *Stack) PackageCharts(dir, url string) error {
	return s.step("package test charts", func() error {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		charts, err := filepath.Glob(filepath.Join(s.Root, "testdata", "charts", "csghub-*"))
		if err != nil || len(charts) == 0 {
			return fmt.Errorf("no test charts under testdata/charts (err %v)", err)
		}
		for _, ch := range charts {
			if _, err := s.Run(nil, s.Helm3, "package", ch, "-d", dir); err != nil {
				return err
			}
		}
		_, err = s.Run(nil, s.Helm3, "repo", "index", dir, "--url", url)
		return err
	})
}

// ServeRepo serves dir over HTTP on l until the listener is closed.
func ServeRepo(l net.Listener, dir string) error {
	return http.Serve(l, http.FileServer(http.Dir(dir)))
}
