package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/hookbridge/hookbridge/connector"
	"github.com/hookbridge/hookbridge/internal/suggest"
	"github.com/hookbridge/hookbridge/plugins"
	"github.com/hookbridge/hookbridge/plugins/sdk"
)

// cmdSinksCheck starts the plugin of each configured sink (or of the named ones), hands it
// its settings and asks it to check its destination: credentials, that the mapped fields
// exist, that tables can be made. It runs beside or without a server and sends no event.
func cmdSinksCheck(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "sinks check", "sinks check [NAME…] --config FILE")
	configPath := fs.String("config", "", "configuration file (default: the built-in one)")
	if err := fs.Parse(reorder(args)); err != nil {
		return err
	}
	cfg, err := loadConfig(e, *configPath, "", "")
	if err != nil {
		return err
	}
	r, err := resolver(e, cfg.PluginsDir)
	if err != nil {
		return err
	}
	if err := unknownSinks(cfg, *configPath, fs.Args()); err != nil {
		return fmt.Errorf("sinks check: %w", err)
	}
	log := slog.New(slog.DiscardHandler)
	failed := 0
	checked := 0
	for _, sc := range cfg.Sinks {
		if fs.NArg() > 0 && !slices.Contains(fs.Args(), sc.Name) {
			continue
		}
		checked++
		msg, err := checkSink(ctx, r, log, sc.Name, sc.Plugin, sc.Settings, sc.Mapping)
		if err != nil {
			msg, failed = "FAILED: "+err.Error(), failed+1
		}
		fmt.Fprintf(e.stdout, "%s (%s): %s\n", sc.Name, sc.Plugin, msg)
	}
	if failed > 0 {
		return fmt.Errorf("sinks check: %d of %d sinks failed", failed, checked)
	}
	return nil
}

// unknownSinks refuses, before any plugin starts, the names the configuration has no sink
// of, and a configuration without sinks. It says which configuration was read: without
// --config that is the built-in one, which has none.
func unknownSinks(cfg *connector.Config, configPath string, names []string) error {
	where, hint := configPath, ""
	if where == "" {
		where, hint = "the built-in configuration", " (pass --config FILE)"
	}
	known := make([]string, len(cfg.Sinks))
	for i, sc := range cfg.Sinks {
		known[i] = sc.Name
	}
	if len(known) == 0 && len(names) == 0 {
		return fmt.Errorf("%s has no sinks%s", where, hint)
	}
	var missing []string
	for _, n := range names {
		if !slices.Contains(known, n) {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	what := "no sink named "
	if len(missing) > 1 {
		what = "no sinks named "
	}
	what += strings.Join(missing, ", ") + " in " + where
	if len(known) == 0 {
		return fmt.Errorf("%s, which has no sinks%s", what, hint)
	}
	detail := "its sinks: " + strings.Join(known, ", ")
	if len(missing) == 1 {
		if near := suggest.Nearest(missing[0], known); near != "" {
			detail += "; did you mean " + near + "?"
		}
	}
	return fmt.Errorf("%s (%s)", what, detail)
}

// checkSink configures and checks one sink; it says what was checked.
func checkSink(ctx context.Context, r plugins.Resolver, log *slog.Logger, name, plugin string, settings map[string]any, mapping map[string]string) (string, error) {
	launch, err := r.Resolve(plugin)
	if err != nil {
		return "", err
	}
	c, err := plugins.Start(ctx, launch, log)
	if err != nil {
		return "", err
	}
	defer c.Close()
	raw, err := json.Marshal(settings)
	if err != nil {
		return "", fmt.Errorf("settings: %w", err)
	}
	if err := c.Configure(ctx, name, raw, mapping); err != nil {
		var se *sdk.SettingsError
		if errors.As(err, &se) {
			return "", fmt.Errorf("settings.%s: %s", se.Field, se.Message)
		}
		return "", err
	}
	if !c.Checks() {
		return "settings ok (this plugin has no destination check)", nil
	}
	if err := c.Check(ctx); err != nil {
		return "", err
	}
	return "ok: settings valid, destination reachable", nil
}
