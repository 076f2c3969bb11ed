// Package buildinfo reports the plugin's version, the Helm SDK it was built with,
// the Go toolchain and the git commit. Version and Commit are set by the linker
// (see Makefile and install-binary.sh); the rest comes from the binary itself.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Set with -ldflags "-X github.com/opencsgs/helm-csghub/internal/buildinfo.Version=...".
var (
	Version = "0.1.0-dev"
	Commit  = ""
)

// Info is what `helm csghub version` prints.
type Info struct {
	Version      string `json:"version"`
	GitCommit    string `json:"gitCommit"`
	HelmSDK      string `json:"helmSDK"`
	ClientGo     string `json:"clientGo"`
	GoVersion    string `json:"goVersion"`
	Platform     string `json:"platform"`
	GitTreeDirty bool   `json:"gitTreeDirty,omitempty"`
}

// Get collects the build information.
func Get() Info {
	info := Info{Version: Version, GitCommit: Commit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	for _, dep := range bi.Deps {
		switch dep.Path {
		case "helm.sh/helm/v3":
			info.HelmSDK = dep.Version
		case "k8s.io/client-go":
			info.ClientGo = dep.Version
		}
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if info.GitCommit == "" {
				info.GitCommit = s.Value
			}
		case "vcs.modified":
			info.GitTreeDirty = s.Value == "true"
		}
	}
	return info
}
