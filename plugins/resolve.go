package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hookbridge/hookbridge/internal/suggest"
	"github.com/hookbridge/hookbridge/plugins/sdk"
)

// ExternalPrefix starts the file name of every external plugin: hookbridge-sink-NAME.
const ExternalPrefix = "hookbridge-sink-"

// Resolver finds plugins by name. Built-ins are served by re-executing the hookbridge binary
// (`hookbridge plugin serve NAME`), so `go run ./cmd/hookbridge` has them all without a
// separate build; other names are executables called hookbridge-sink-NAME in Dir.
type Resolver struct {
	// Self is the hookbridge executable (os.Executable()).
	Self string
	// Builtins are the names Self serves.
	Builtins []string
	// Dir is the plugins folder.
	Dir string
	// Env is added to every plugin's environment.
	Env []string
	// Stdout receives every plugin's standard output; nil discards it.
	Stdout *Output
}

// Resolve returns how to start the plugin called name.
func (r Resolver) Resolve(name string) (Launch, error) {
	if slices.Contains(r.Builtins, name) {
		return Launch{Name: name, Path: r.Self, Args: []string{"plugin", "serve", name}, Env: r.Env, Stdout: r.Stdout}, nil
	}
	path := filepath.Join(r.Dir, ExternalPrefix+name)
	fi, err := os.Stat(path)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		hint := ""
		external, _ := r.External()
		if near := suggest.Nearest(name, append(slices.Clone(r.Builtins), external...)); near != "" {
			hint = fmt.Sprintf(" (did you mean %s?)", near)
		}
		return Launch{}, fmt.Errorf("plugins: no plugin %q%s: not a built-in (%s) and no executable %s", name, hint, strings.Join(r.Builtins, ", "), path)
	}
	return Launch{Name: name, Path: path, Env: r.Env, Stdout: r.Stdout}, nil
}

// External lists the external plugins found in Dir.
func (r Resolver) External() ([]string, error) {
	entries, err := os.ReadDir(r.Dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("plugins: read %s: %w", r.Dir, err)
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutPrefix(e.Name(), ExternalPrefix); ok && !e.IsDir() {
			if info, err := e.Info(); err == nil && info.Mode()&0o111 != 0 {
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	return names, nil
}

// Description is what a plugin says of itself on its command line.
type Description struct {
	sdk.Spec
	Protocol int `json:"protocol"`
}

// Describe runs the plugin with the argument "spec" (no handshake) and reads its answer.
func Describe(ctx context.Context, l Launch) (Description, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.Path, append(slices.Clone(l.Args), "spec")...)
	cmd.Env = append(cmd.Environ(), l.Env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return Description{}, fmt.Errorf("plugins: %s spec: %w: %s", l.Name, err, strings.TrimSpace(errOut.String()))
	}
	var d Description
	if err := json.Unmarshal(out.Bytes(), &d); err != nil {
		return Description{}, fmt.Errorf("plugins: %s spec: not a hookbridge plugin's answer: %w", l.Name, err)
	}
	return d, nil
}
