// Command hookbridge receives Rokt Calendar webhooks into DuckDB and delivers them to sinks.
// main only calls run and prints its one error; every subcommand lives in its own file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	_ "time/tzdata" // event time zones resolve even on hosts without a zoneinfo database
)

func main() {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		// A closed terminal stops serve gracefully too; under nohup SIGHUP stays ignored.
		sigs = append(sigs, syscall.SIGHUP)
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	defer stop()
	e := &env{getenv: os.Getenv, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	if err := run(ctx, os.Args[1:], e); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, errorLine(err))
		}
		os.Exit(exitCode(err))
	}
}

// env is what a subcommand may touch of the outside world; tests pass their own.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "receive webhooks into the DuckDB file and deliver them to sinks", cmdServe},
		{"send", "post payload files to a running server and print each answer", cmdSend},
		{"config", "print the built-in configuration, or check a configuration file", cmdConfig},
		{"status", "show the running server's sinks: state, cursor, lag, retries, dead letters", cmdStatus},
		{"sinks", "pause or resume a sink on the running server, or check sinks' settings and destinations", cmdSinks},
		{"deliveries", "list delivery attempts (the notification history)", cmdDeliveries},
		{"dead-letters", "list rows sinks gave up on", cmdDeadLetters},
		{"replay", "re-send events or dead letters to a sink", cmdReplay},
		{"query", "run a read-only SQL query (through the running server, else on the file)", cmdQuery},
		{"export", "export a table, view or query to Parquet or CSV", cmdExport},
		{"snapshot", "write a consistent copy of the database that any DuckDB client can open", cmdSnapshot},
		{"simulate", "emulate Rokt Calendar sending webhooks (or write them to a file for import)", cmdSimulate},
		{"import", "load a JSON-lines file of bodies (from simulate --out) through the decoder and writer", cmdImport},
		{"reprocess", "decode every stored body again (after changing contact_fields) and rebuild subscriptions", cmdReprocess},
		{"keys", "list the key paths seen in stored bodies, with counts", cmdKeys},
		{"plugins", "list the sink plugins (built-in and in the plugins folder), or describe one's settings", cmdPlugins},
		{"plugin", "serve a built-in sink plugin (started by hookbridge serve itself)", cmdPlugin},
		{"bench", "benchmarks: ingest against a bare HTTP handler, analytics against raw JSON, dashboard pages under ingest", cmdBench},
		{"version", "print the version", cmdVersion},
	}
}

// usageError is a mistake on the command line; it exits with status 2.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

// exitError ends a command with a chosen exit status (status uses 3 for a paused sink);
// its message is printed like any other error's.
type exitError struct {
	code int
	msg  string
}

func (x exitError) Error() string { return x.msg }

func exitCode(err error) int {
	var u usageError
	var x exitError
	switch {
	case errors.As(err, &u) || errors.Is(err, flag.ErrHelp):
		return 2
	case errors.As(err, &x):
		return x.code
	}
	return 1
}

// errorLine is the line main prints on stderr for err: its message after "hookbridge: ",
// except a usage line, which already names hookbridge ("usage: hookbridge …").
func errorLine(err error) string {
	var u usageError
	if errors.As(err, &u) && strings.HasPrefix(err.Error(), "usage: hookbridge") {
		return err.Error()
	}
	return "hookbridge: " + err.Error()
}

// isHelp reports whether a command-line word asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// run runs one command line. Help asked for (hookbridge help, hookbridge help COMMAND,
// COMMAND --help) is printed on stdout and is no error.
func run(ctx context.Context, args []string, e *env) error {
	if len(args) == 0 {
		printUsage(e.stdout)
		return usageError{"no command given"}
	}
	if isHelp(args[0]) {
		if len(args) == 1 {
			printUsage(e.stdout)
			return nil
		}
		args = []string{args[1], "--help"}
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, e, args[1:])
		var u usageError
		switch {
		case errors.Is(err, flag.ErrHelp):
			return nil // the flag set printed the usage on stdout
		case errors.As(err, &u) && len(args) > 1 && isHelp(args[1]):
			// A command with subcommands answers help with its usage line.
			fmt.Fprintln(e.stdout, u.msg)
			return nil
		}
		return err
	}
	return usageError{fmt.Sprintf("unknown command %q (run 'hookbridge help' for the list)", args[0])}
}

func printUsage(w io.Writer) {
	cmds := commands()
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	var b strings.Builder
	b.WriteString("hookbridge receives Rokt Calendar webhooks into DuckDB and delivers them to sinks.\n\nUsage: hookbridge COMMAND [flags]\n\nCommands:\n")
	for _, c := range cmds {
		fmt.Fprintf(&b, "  %-14s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'hookbridge COMMAND -h' for a command's flags.\n")
	io.WriteString(w, b.String())
}

// flagSet is a command's flag set. Its Parse reports a mistake on the command line (an
// unknown flag, a value a flag cannot take) as a usageError, so every command exits 2 on
// one, as on its other usage mistakes.
type flagSet struct{ *flag.FlagSet }

// Parse parses args. Help asked for comes back as flag.ErrHelp; any other error is a
// usageError, whose message the flag package has already written, with the usage, on stderr.
func (fs *flagSet) Parse(args []string) error {
	err := fs.FlagSet.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err.Error()}
}

// given reports whether the command line set the flag called name.
func (fs *flagSet) given(name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// newFlagSet returns a flag set that reports errors instead of exiting. Its usage goes to
// stdout when asked for (-h, --help: Parse returns flag.ErrHelp, which run turns into exit
// status 0), and to stderr after the message of a mistake (exit status 2).
func newFlagSet(e *env, name, usage string) *flagSet {
	fs := flag.NewFlagSet("hookbridge "+name, flag.ContinueOnError)
	errOut := &watchedWriter{w: e.stderr}
	fs.SetOutput(errOut)
	fs.Usage = func() {
		// The flag package writes a mistake's message before it shows the usage, and
		// nothing before the usage that -h asks for.
		w := e.stdout
		if errOut.wrote {
			w = e.stderr
		}
		fmt.Fprintf(w, "Usage: hookbridge %s\n\n", usage)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(errOut)
	}
	return &flagSet{fs}
}

// watchedWriter remembers whether anything was written through it.
type watchedWriter struct {
	w     io.Writer
	wrote bool
}

func (w *watchedWriter) Write(p []byte) (int, error) {
	w.wrote = true
	return w.w.Write(p)
}
