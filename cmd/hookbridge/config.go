package main

import (
	"context"
	"fmt"

	"github.com/hookbridge/hookbridge/connector"
)

// configUsage is config's usage line; the README's Configuration section describes every
// option.
const configUsage = "usage: hookbridge config default | hookbridge config check FILE (every option: README.md, section Configuration)"

func cmdConfig(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError{configUsage}
	}
	if isHelp(args[0]) {
		fmt.Fprintln(e.stdout, configUsage)
		return nil
	}
	switch args[0] {
	case "default":
		fs := newFlagSet(e, "config default", "config default: print the built-in configuration (README.md, section Configuration, describes every option)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 0 {
			return usageError{"usage: hookbridge config default"}
		}
		_, err := e.stdout.Write(connector.DefaultConfig())
		return err
	case "check":
		fs := newFlagSet(e, "config check", "config check FILE: validate a configuration file and each sink's settings against its plugin (every error names the line and key)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return usageError{"usage: hookbridge config check FILE"}
		}
		file := fs.Arg(0)
		cfg, err := connector.Load(file, e.getenv)
		if err != nil {
			return err
		}
		r, err := resolver(e, cfg.PluginsDir)
		if err != nil {
			return err
		}
		if err := cfg.CheckSinkPlugins(ctx, r); err != nil {
			return err
		}
		for _, w := range cfg.Warnings() {
			fmt.Fprintf(e.stdout, "%s: warning: %s\n", file, w)
		}
		fmt.Fprintf(e.stdout, "%s: ok (%d sources, %d sinks; each sink's settings fit its plugin)\n", file, len(cfg.Sources), len(cfg.Sinks))
		return nil
	}
	return usageError{fmt.Sprintf("config %q: use default or check (%s)", args[0], configUsage)}
}
