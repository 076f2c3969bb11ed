package helmenv

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// ProfileEnv, when set to a file name, makes the plugin write a CPU profile of
// the whole run there (benchmarks: `go tool pprof -top <binary> <file>`).
const ProfileEnv = "HELM_CSGHUB_CPUPROFILE"

// StartCPUProfile starts the CPU profile ProfileEnv asks for; the returned
// function stops it (a no-op without ProfileEnv).
func StartCPUProfile() func() {
	path := os.Getenv(ProfileEnv)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", ProfileEnv, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", ProfileEnv, err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
