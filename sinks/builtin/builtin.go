// Package builtin lists the sinks compiled into hookbridge. Each runs as a plugin process by
// re-executing hookbridge (`hookbridge plugin serve NAME`).
package builtin

import (
	"sort"

	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/sinks/hubspot"
	"github.com/hookbridge/hookbridge/sinks/jsonl"
	"github.com/hookbridge/hookbridge/sinks/mailchimp"
	"github.com/hookbridge/hookbridge/sinks/parquet"
	"github.com/hookbridge/hookbridge/sinks/postgres"
	"github.com/hookbridge/hookbridge/sinks/webhook"
)

// Sinks returns the built-in sinks' constructors by name.
func Sinks() map[string]func() sdk.Sink {
	return map[string]func() sdk.Sink{
		"hubspot":   hubspot.New,
		"jsonl":     jsonl.New,
		"mailchimp": mailchimp.New,
		"parquet":   parquet.New,
		"postgres":  postgres.New,
		"webhook":   webhook.New,
	}
}

// Names returns the built-in sinks' names, sorted.
func Names() []string {
	var out []string
	for n := range Sinks() {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
