// Package cli wires subcommands to the operations in the other packages. It only
// parses flags, calls an operation's Run and prints the result: the logic lives
// elsewhere so it can be tested without a terminal.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	"helm.sh/helm/v3/pkg/chartutil"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/steplog"
)

// App is what every subcommand shares: Helm's environment and the streams.
type App struct {
	Env    *helmenv.Env
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// IsTerminal reports whether Stderr is a terminal (progress is shown only then).
	IsTerminal bool
	// Color: Stdout is a terminal that takes colour (diffs are coloured then).
	Color bool
}

// command is one node of the command tree. Leaf commands have Run; groups have Subs.
type command struct {
	Name    string
	Summary string
	Usage   string // argument synopsis after the command path, e.g. "[REVISION] [flags]"
	Long    string
	// Flags binds the command's own flags; global flags are added by the tree.
	Flags func(fs *pflag.FlagSet)
	// Args validates positional arguments (nil: none allowed).
	Args func(args []string) error
	Run  func(ctx context.Context, args []string) error
	Subs []*command
}

// globalFlags are accepted by every subcommand. Under Helm, -n/--namespace,
// --kube-context and --kubeconfig arrive as environment variables instead; the
// flags exist for running the binary directly.
type globalFlags struct {
	release     string
	namespace   string
	kubeContext string
	kubeconfig  string
	debug       bool
	help        bool
}

func (g *globalFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&g.release, "release", helmenv.DefaultRelease, "Helm release name")
	fs.StringVarP(&g.namespace, "namespace", "n", "", "release namespace (under Helm: helm -n NS csghub ...)")
	fs.StringVar(&g.kubeContext, "kube-context", "", "kubeconfig context (under Helm: HELM_KUBECONTEXT)")
	fs.StringVar(&g.kubeconfig, "kubeconfig", "", "kubeconfig file (under Helm: KUBECONFIG)")
	fs.BoolVar(&g.debug, "debug", false, "verbose output (under Helm: HELM_DEBUG)")
	fs.BoolVarP(&g.help, "help", "h", false, "show help")
}

// apply copies the global flags into the environment.
func (g *globalFlags) apply(env *helmenv.Env) {
	env.Release = g.release
	env.NamespaceFlag = g.namespace
	if g.kubeContext != "" {
		env.Settings.KubeContext = g.kubeContext
	}
	if g.kubeconfig != "" {
		env.Settings.KubeConfig = g.kubeconfig
	}
	if g.debug {
		env.Debug = true
		env.Settings.Debug = true
	}
}

// Main runs the plugin with args (without the program name) and returns the exit code.
func Main(ctx context.Context, app *App, args []string) int {
	g := &globalFlags{}
	root := newRoot(app, g)
	return mainExit(ctx, app, root.execute(ctx, app, g, nil, args))
}

// mainExit is the exit code of a run that ended with err, its message
// printed when there is one to print.
func mainExit(ctx context.Context, app *App, err error) int {
	if err == nil {
		return 0
	}
	var h helpShown
	if errors.As(err, &h) {
		return 0
	}
	var st exitStatus
	if errors.As(err, &st) {
		return int(st)
	}
	if ctx.Err() != nil && errs.KindOf(err) == errs.Failed {
		// a signal arrived and the step it cut short reported a plain
		// failure (its cause formatted without %w): the run was stopped
		err = errs.Wrap(errs.Interrupted, fmt.Errorf("interrupted: %s", err.Error()))
	}
	fmt.Fprintf(app.Stderr, "Error: %s\n", steplog.OneLine(err.Error()))
	return errs.ExitCode(err)
}

// helpShown ends a run that printed help.
type helpShown struct{}

func (helpShown) Error() string { return "help shown" }

func newRoot(app *App, g *globalFlags) *command {
	return &command{
		Name:    "csghub",
		Summary: "Upgrade, back up and roll back a CSGHub installation safely",
		Long: `helm csghub automates the CSGHub upgrade guide: it backs up the Helm values and the
PostgreSQL databases, runs the version-specific migrations, upgrades with Helm, waits
for the pods and verifies; and it rolls back with an exact database restore.

The release is "csghub" (--release) in the namespace given with "helm -n NS csghub ...";
without -n it is looked up in Helm's default namespace and in "csghub".`,
		Subs: []*command{
			newVersionCmd(app),
			newStatusCmd(app),
			newBackupCmd(app),
			newRestoreCmd(app),
			newRollbackCmd(app),
			newHistoryCmd(app),
			newUpgradeCmd(app),
			newPlanCmd(app),
			newMigrateCmd(app),
			newDataflowLogsCmd(app),
			newVerifyCmd(app),
		},
	}
}

// execute walks args down the tree and runs the leaf.
func (c *command) execute(ctx context.Context, app *App, g *globalFlags, path []string, args []string) error {
	path = append(path, c.Name)
	first := ""
	if len(args) > 0 {
		first = args[0]
	}
	for _, s := range c.Subs {
		if s.Name == first {
			return s.execute(ctx, app, g, path, args[1:])
		}
	}
	if first == "help" && len(c.Subs) > 0 {
		if len(args) > 1 { // `help status` is `status --help`
			return c.execute(ctx, app, g, path[:len(path)-1], append(args[1:], "--help"))
		}
		c.printHelp(app.Stdout, path, nil)
		return helpShown{}
	}
	if c.Run == nil { // a group: it needs a subcommand
		switch {
		case first == "" || first == "-h" || first == "--help":
			c.printHelp(app.Stdout, path, nil)
			if first == "" {
				return errs.Usagef("%s: missing subcommand (one of: %s)", strings.Join(path, " "), c.subNames())
			}
			return helpShown{}
		case strings.HasPrefix(first, "-"):
			return errs.Usagef("%s: expected a subcommand before flag %q (one of: %s)", strings.Join(path, " "), first, c.subNames())
		}
		return errs.Usagef("unknown command %q for %q (one of: %s)", first, strings.Join(path, " "), c.subNames())
	}

	fs := pflag.NewFlagSet(strings.Join(path, " "), pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	if c.Flags != nil {
		c.Flags(fs)
	}
	g.bind(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			c.printHelp(app.Stdout, path, fs)
			return helpShown{}
		}
		return errs.Usagef("%s: %s", strings.Join(path, " "), err.Error())
	}
	if g.help {
		c.printHelp(app.Stdout, path, fs)
		return helpShown{}
	}
	rest := fs.Args()
	if c.Args != nil {
		if err := c.Args(rest); err != nil {
			return err
		}
	} else if len(rest) > 0 {
		return errs.Usagef("%s: unexpected argument %q", strings.Join(path, " "), rest[0])
	}
	g.apply(app.Env)
	if err := checkEnv(app.Env, path); err != nil {
		return err
	}
	if app.Env.Debug {
		slog.SetDefault(slog.New(slog.NewTextHandler(app.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))
	} else {
		// client-go reports a stream torn down on purpose (Ctrl-C, a failed
		// sibling restore) through klog; the plugin's own error says what happened.
		klog.SetLogger(logr.Discard())
	}
	return c.Run(ctx, rest)
}

func (c *command) subNames() string {
	names := make([]string, 0, len(c.Subs))
	for _, s := range c.Subs {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func (c *command) printHelp(w io.Writer, path []string, fs *pflag.FlagSet) {
	full := "helm " + strings.Join(path, " ")
	fmt.Fprintf(w, "%s\n\n", c.Summary)
	if c.Long != "" {
		fmt.Fprintf(w, "%s\n\n", c.Long)
	}
	usage := c.Usage
	if usage == "" {
		usage = "[flags]"
	}
	fmt.Fprintln(w, "Usage:")
	if c.Run != nil {
		fmt.Fprintf(w, "  %s %s\n", full, usage)
	}
	if len(c.Subs) > 0 {
		fmt.Fprintf(w, "  %s COMMAND [flags]\n\nCommands:\n", full)
		for _, s := range c.Subs {
			fmt.Fprintf(w, "  %-10s %s\n", s.Name, s.Summary)
		}
		fmt.Fprintf(w, "\nRun '%s COMMAND --help' for a command's flags.\n", full)
	}
	if fs != nil {
		fmt.Fprintf(w, "\nFlags:\n%s", fs.FlagUsages())
	}
}

// checkEnv refuses what Helm's environment gets wrong before anything reads
// it: a release name Helm would refuse (it is also a path in the backup
// catalog), a KUBECONFIG whose files do not exist (client-go would silently
// fall back to localhost:8080).
func checkEnv(env *helmenv.Env, path []string) error {
	if len(path) >= 2 && path[1] == "version" {
		return nil
	}
	if err := chartutil.ValidateReleaseName(env.Release); err != nil {
		return errs.Usagef("--release %q: not a valid release name (lowercase letters, digits and '-', at most 53 characters)", env.Release)
	}
	kc := env.Settings.KubeConfig // --kubeconfig; else client-go reads KUBECONFIG
	if kc == "" {
		kc = os.Getenv("KUBECONFIG")
	}
	if kc != "" {
		var missing []string
		files := filepath.SplitList(kc)
		for _, f := range files {
			if _, err := os.Stat(f); err != nil {
				missing = append(missing, f)
			}
		}
		if len(missing) == len(files) {
			return errs.Usagef("kubeconfig %s: no such file (from --kubeconfig or KUBECONFIG)", strings.Join(missing, ", "))
		}
	}
	return checkKubeContext(env, kc)
}

// checkKubeContext refuses, as usage errors like a missing kubeconfig file,
// what would otherwise surface later as a connection error: no kubeconfig at
// all outside a pod (client-go falls back to localhost:8080, even with
// KUBECONFIG set but empty), or a --kube-context/HELM_KUBECONTEXT the
// kubeconfig does not have.
func checkKubeContext(env *helmenv.Env, kc string) error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = env.Settings.KubeConfig
	if kc == "" {
		if os.Getenv("KUBERNETES_SERVICE_HOST") != "" { // in a pod: the in-cluster config
			return nil
		}
		if _, err := os.Stat(clientcmd.RecommendedHomeFile); err != nil {
			return errs.Usagef("no kubeconfig: KUBECONFIG is empty or unset and %s does not exist; give one with --kubeconfig or KUBECONFIG", clientcmd.RecommendedHomeFile)
		}
	}
	raw, err := rules.Load()
	if err != nil {
		return errs.Usagef("kubeconfig: %v", steplog.OneLine(err.Error()))
	}
	if c := env.Settings.KubeContext; c != "" {
		if _, ok := raw.Contexts[c]; !ok {
			var names []string
			for n := range raw.Contexts {
				names = append(names, n)
			}
			sort.Strings(names)
			return errs.Usagef("kube context %q: not in the kubeconfig (it has: %s)", c, strings.Join(names, ", "))
		}
	}
	return nil
}

// usageError is a Usage error with a fixed message.
func usageError(msg string) error { return errs.Usagef("%s", msg) }

// exactArgs is an Args validator for exactly n positional arguments.
func exactArgs(cmd string, n int, names ...string) func([]string) error {
	return func(args []string) error {
		if len(args) != n {
			return errs.Usagef("%s takes %d argument(s) (%s), got %d", cmd, n, strings.Join(names, " "), len(args))
		}
		return nil
	}
}

// NewApp is the App for the real process.
func NewApp() *App {
	return &App{
		Env:        helmenv.New(),
		Stdin:      os.Stdin,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		IsTerminal: isTerminal(os.Stderr),
		Color:      colorWanted(),
	}
}
