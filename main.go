// Command helm-csghub is the `helm csghub` plugin: safe upgrades and rollbacks of
// a CSGHub installation. main only sets up signals and maps errors to exit codes
// (see internal/errs); everything else is in internal/.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/opencsgs/helm-csghub/internal/cli"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
)

func main() {
	// The first SIGINT/SIGTERM cancels ctx: operations then clean up (remove the
	// NetworkPolicy, finish a rollback, delete partial files) before returning.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := helmenv.StartCPUProfile() // only with HELM_CSGHUB_CPUPROFILE set (benchmarks)
	code := cli.Main(ctx, cli.NewApp(), os.Args[1:])
	stop()
	stopProfile()
	helmenv.PrintStats(os.Stderr) // only with HELM_CSGHUB_API_STATS set (benchmarks)
	os.Exit(code)
}
