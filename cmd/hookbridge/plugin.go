package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/hookbridge/hookbridge/connector"
	"github.com/hookbridge/hookbridge/plugins"
	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/sinks/builtin"
)

// cmdPlugin is what hookbridge runs as when it serves one of its built-in sinks to itself.
func cmdPlugin(ctx context.Context, e *env, args []string) error {
	if len(args) < 2 || args[0] != "serve" {
		return usageError{"usage: hookbridge plugin serve NAME (started by hookbridge serve; add 'spec' or 'version' to inspect a built-in)"}
	}
	mk, ok := builtin.Sinks()[args[1]]
	if !ok {
		return usageError{fmt.Sprintf("no built-in sink %q (built-ins: %v)", args[1], builtin.Names())}
	}
	return sdk.ServeArgs(mk(), args[2:], e.stdout)
}

func resolver(e *env, dir string) (plugins.Resolver, error) {
	self, err := os.Executable()
	if err != nil {
		return plugins.Resolver{}, err
	}
	return plugins.Resolver{Self: self, Builtins: builtin.Names(), Dir: dir, Stdout: plugins.NewOutput(e.stdout)}, nil
}

func cmdPlugins(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "describe") {
		return usageError{"usage: hookbridge plugins list | hookbridge plugins describe NAME  [--config FILE | --plugins-dir DIR]"}
	}
	fs := newFlagSet(e, "plugins "+args[0], "plugins list|describe [NAME] [--config FILE | --plugins-dir DIR]")
	dir := fs.String("plugins-dir", "./plugins", "folder of external plugins (hookbridge-sink-NAME executables)")
	configPath := fs.String("config", "", "take the plugins folder from this configuration's plugins_dir")
	if err := fs.Parse(reorder(args[1:])); err != nil {
		return err
	}
	if *configPath != "" {
		if fs.given("plugins-dir") {
			return usageError{"give --config or --plugins-dir, not both"}
		}
		d, err := connector.PluginsDir(*configPath, e.getenv)
		if err != nil {
			return err
		}
		*dir = d
	}
	r, err := resolver(e, *dir)
	if err != nil {
		return err
	}
	if args[0] == "describe" {
		if fs.NArg() != 1 {
			return usageError{"usage: hookbridge plugins describe NAME"}
		}
		d, err := describe(ctx, r, fs.Arg(0))
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s %s (protocol %d): %s\n", d.Name, d.Version, d.Protocol, d.Description)
		if d.KeyColumn != "" {
			fmt.Fprintf(e.stdout, "destination key: %s\n", d.KeyColumn)
		}
		if d.MaxBatchRows > 0 {
			fmt.Fprintf(e.stdout, "at most %d rows per request\n", d.MaxBatchRows)
		}
		fmt.Fprintln(e.stdout, "settings (JSON Schema):")
		var pretty any
		json.Unmarshal(d.Settings, &pretty)
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(pretty)
	}
	external, err := r.External()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tVERSION\tPROTOCOL\tDESCRIPTION")
	for _, n := range append(builtin.Names(), external...) {
		kind := "built-in"
		if _, ok := builtin.Sinks()[n]; !ok {
			kind = "external"
		}
		d, err := describe(ctx, r, n)
		if err != nil {
			fmt.Fprintf(tw, "%s\t%s\t?\t?\t%v\n", n, kind, err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", n, kind, d.Version, d.Protocol, d.Description)
	}
	return tw.Flush()
}

// describe reads a plugin's spec: built-ins directly, external plugins from their command line.
func describe(ctx context.Context, r plugins.Resolver, name string) (plugins.Description, error) {
	if mk, ok := builtin.Sinks()[name]; ok {
		return plugins.Description{Spec: mk().Spec(), Protocol: sdk.ProtocolVersion}, nil
	}
	l, err := r.Resolve(name)
	if err != nil {
		return plugins.Description{}, err
	}
	return plugins.Describe(ctx, l)
}
