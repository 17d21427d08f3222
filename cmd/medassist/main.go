// Command medassist is a healthcare assistant built from a small chat LLM: pull a base model and
// data, fine-tune it with LoRA (GoMLX), merge, export to ONNX, and serve it behind a safety guard.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/medassist/medassist/internal/config"
)

// command is one subcommand. Each lives in its own cmd_<name>.go file and registers itself in init.
type command struct {
	name    string
	summary string // one line for the command list
	usage   string // argument synopsis after the command name
	logJSON bool   // log JSON lines unless --log-format says otherwise (servers)
	// flags declares the command's flags (their defaults are the configuration defaults).
	flags func(fs *pflag.FlagSet)
	// run executes the command; args are the positional arguments left after flag parsing.
	run func(ctx context.Context, env *cmdEnv, args []string) error
}

// cmdEnv is what main builds once and hands to a command.
type cmdEnv struct {
	fs     *pflag.FlagSet
	config string // --config file path, "" when none
	log    *slog.Logger
	stdin  *os.File
	stdout *os.File
}

// loadConfig fills out from defaults, the --config file, MEDASSIST_* variables and flags, for the
// command's section; every failure (a bad value, an unreadable file) is a usage error, shown with
// the command's help.
func (e *cmdEnv) loadConfig(out any, section string) error {
	if err := config.Load(out, section, e.config, e.fs); err != nil {
		return usageError{err.Error()}
	}
	return nil
}

// explicit returns the configuration keys the user set (--config file, MEDASSIST_*, flags) for
// the command's section, as opposed to those left at their defaults.
func (e *cmdEnv) explicit(section string) (map[string]bool, error) {
	keys, err := config.Explicit(section, e.config, e.fs)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return keys, nil
}

// flagsOnly is the run function of a command that takes only flags: it refuses positional
// arguments (hint says what to do instead), loads the configuration (defaults from defaults) for the
// command's section and hands it to run.
func flagsOnly[T any](name, hint string, defaults func() T, run func(ctx context.Context, env *cmdEnv, cfg T) error) func(context.Context, *cmdEnv, []string) error {
	return func(ctx context.Context, env *cmdEnv, args []string) error {
		if len(args) > 0 {
			return usageError{name + " takes no positional arguments" + hint}
		}
		cfg := defaults()
		if err := env.loadConfig(&cfg, name); err != nil {
			return err
		}
		return run(ctx, env, cfg)
	}
}

// zero is the zero value of T, as defaults for flagsOnly.
func zero[T any]() T {
	var z T
	return z
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("duplicate command " + c.name)
	}
	commands[c.name] = c
}

// usageError is returned for bad command lines; main prints the command's help with it.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	os.Exit(runMain(os.Args[1:]))
}

func runMain(argv []string) int {
	if len(argv) == 0 || argv[0] == "-h" || argv[0] == "--help" || argv[0] == "help" {
		if len(argv) == 2 {
			if c, ok := commands[argv[1]]; ok {
				printCommandHelp(c, newFlagSet(c))
				return 0
			}
		}
		printTopHelp()
		if len(argv) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[argv[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "medassist: unknown command %q\n\n", argv[0])
		printTopHelp()
		return 2
	}
	fs := newFlagSet(c)
	if err := fs.Parse(argv[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			printCommandHelp(c, fs)
			return 0
		}
		fmt.Fprintf(os.Stderr, "medassist %s: %v\n\n", c.name, err)
		printCommandHelp(c, fs)
		return 2
	}
	configPath, _ := fs.GetString("config")
	if configPath == "" {
		configPath = os.Getenv("MEDASSIST_CONFIG")
	}
	level := slog.LevelInfo
	if v, _ := fs.GetBool("verbose"); v {
		level = slog.LevelDebug
	}
	var handler slog.Handler = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	if f, _ := fs.GetString("log-format"); f == "json" || (f == "" && c.logJSON) {
		handler = slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	}
	logger := slog.New(handler)
	slog.SetDefault(logger)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &cmdEnv{fs: fs, config: configPath, log: logger, stdin: os.Stdin, stdout: os.Stdout}
	if err := c.run(ctx, env, fs.Args()); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(os.Stderr, "medassist %s: %v\n\n", c.name, err)
			printCommandHelp(c, fs)
			return 2
		}
		fmt.Fprintf(os.Stderr, "medassist %s: %v\n", c.name, err)
		return 1
	}
	return 0
}

func newFlagSet(c *command) *pflag.FlagSet {
	fs := pflag.NewFlagSet(c.name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(os.Stderr)
	fs.Usage = func() {}
	if c.flags != nil {
		c.flags(fs)
	}
	fs.String("config", "", "YAML config file (keys as flag names, optionally under a section named after the command); env MEDASSIST_CONFIG")
	def := "text"
	if c.logJSON {
		def = "json"
	}
	fs.String("log-format", "", "log format: text or json (default "+def+")")
	fs.BoolP("verbose", "v", false, "debug logging")
	return fs
}

func printTopHelp() {
	w := os.Stderr
	fmt.Fprintln(w, "medassist — a healthcare assistant built from a small chat LLM, trained, exported and served from one binary.")
	fmt.Fprintln(w, "\nUsage: medassist <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nConfiguration: flag defaults < (train --sweep: the sweep, then the variant) < --config YAML < MEDASSIST_* environment < flags.")
	fmt.Fprintln(w, "Run 'medassist <command> --help' for a command's flags.")
}

func printCommandHelp(c *command, fs *pflag.FlagSet) {
	w := os.Stderr
	fmt.Fprintf(w, "medassist %s — %s\n\nUsage: medassist %s %s\n\nFlags:\n", c.name, c.summary, c.name, strings.TrimSpace(c.usage+" [flags]"))
	fmt.Fprint(w, fs.FlagUsages())
}
