package main

import (
	"context"
	"fmt"

	"github.com/hookbridge/hookbridge/connector"
)

func cmdConfig(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError{"usage: hookbridge config default | hookbridge config check FILE"}
	}
	switch args[0] {
	case "default":
		_, err := e.stdout.Write(connector.DefaultConfig())
		return err
	case "check":
		if len(args) != 2 {
			return usageError{"usage: hookbridge config check FILE"}
		}
		cfg, err := connector.Load(args[1], e.getenv)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s: ok (%d sources, %d sinks)\n", args[1], len(cfg.Sources), len(cfg.Sinks))
		return nil
	}
	return usageError{fmt.Sprintf("config %q: use default or check", args[0])}
}
