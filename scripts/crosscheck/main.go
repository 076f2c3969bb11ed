// Command crosscheck type-checks the plugin (package main and everything it
// imports, with each platform's build tags and CGO_ENABLED=0) for every
// released platform, without compiling it:
//
//	go run ./scripts/crosscheck linux/arm64 darwin/amd64 darwin/arm64 windows/amd64
//
// Why not `GOOS=... go build` in make test: a cold cross compile of this
// binary (Helm SDK, client-go) cost 775 CPU-seconds for darwin/arm64 on the
// 2-core development machine, so four platforms would add about 26 minutes to
// a cold CI run; type-checking from source costs about 40 CPU-seconds a
// platform and catches what breaks a platform in practice (a syscall that does
// not exist there, a build-tagged file missing its counterpart). `make cross`
// and `make dist` still compile every platform in full.
package main

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/tools/go/packages"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: crosscheck GOOS/GOARCH ...")
		os.Exit(2)
	}
	failed := false
	for _, p := range os.Args[1:] {
		goos, goarch, ok := strings.Cut(p, "/")
		if !ok {
			fmt.Fprintf(os.Stderr, "crosscheck: %q is not GOOS/GOARCH\n", p)
			os.Exit(2)
		}
		n, err := check(goos, goarch)
		switch {
		case err != nil:
			fmt.Fprintf(os.Stderr, "crosscheck %s: %v\n", p, err)
			failed = true
		case n > 0:
			fmt.Fprintf(os.Stderr, "crosscheck %s: %d errors\n", p, n)
			failed = true
		default:
			fmt.Printf("crosscheck %s: ok\n", p)
		}
	}
	if failed {
		os.Exit(1)
	}
}

// check loads the module's main package and all its dependencies from source
// (NeedSyntax with NeedDeps makes go/packages type-check every package rather
// than read compiled export data) and prints every error.
func check(goos, goarch string) (int, error) {
	cfg := &packages.Config{
		Mode: packages.NeedName | packages.NeedImports | packages.NeedDeps |
			packages.NeedSyntax | packages.NeedTypes | packages.NeedTypesInfo,
		Env: append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0"),
	}
	pkgs, err := packages.Load(cfg, ".")
	if err != nil {
		return 0, err
	}
	return packages.PrintErrors(pkgs), nil
}
