package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	exampleOnce sync.Once
	exampleDir  string
	exampleErr  error
)

// buildExample builds examples/sink-plugin as hookbridge-sink-jsonfile, once per test run.
func buildExample(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the example plugin")
	}
	exampleOnce.Do(func() {
		exampleDir, exampleErr = os.MkdirTemp("", "hookbridge-example-plugin-")
		if exampleErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(exampleDir, ExternalPrefix+"jsonfile"), "../examples/sink-plugin")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			exampleErr = err
			exampleDir = string(out)
		}
	})
	if exampleErr != nil {
		t.Fatalf("build the example plugin: %v\n%s", exampleErr, exampleDir)
	}
	return exampleDir
}

func TestExamplePluginThroughTheHost(t *testing.T) {
	dir := buildExample(t)
	r := Resolver{Dir: dir}
	if names, _ := r.External(); len(names) != 1 || names[0] != "jsonfile" {
		t.Fatalf("plugins folder holds %v", names)
	}
	l, err := r.Resolve("jsonfile")
	if err != nil {
		t.Fatal(err)
	}
	d, err := Describe(context.Background(), l)
	if err != nil || d.Name != "jsonfile" || d.Protocol != 1 || d.MaxBatchRows != 500 {
		t.Fatalf("describe: %v %+v", err, d)
	}
	c, err := Start(context.Background(), l, slog.New(&records{}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := filepath.Join(t.TempDir(), "rows.jsonl")
	set, _ := json.Marshal(map[string]string{"path": out})
	if err := c.Configure(context.Background(), "archive", set, map[string]string{"email": "email"}); err != nil {
		t.Fatal(err)
	}
	rec := rowsRecord(t, "a@example.com", "b@example.com")
	if _, err := c.Write(context.Background(), "batch-1", 1, rec); err != nil {
		t.Fatal(err)
	}
	// A crash, then the same batch again (as after a lost answer): written once.
	syscall.Kill(c.PID(), syscall.SIGKILL)
	for c.Ping() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := c.Write(context.Background(), "batch-1", 2, rec); err != nil {
		t.Fatalf("re-send after the crash: %v", err)
	}
	b, _ := os.ReadFile(out)
	if n := bytes.Count(b, []byte("\n")); n != 2 || !bytes.Contains(b, []byte(`"email":"a@example.com"`)) {
		t.Errorf("file after a re-sent batch:\n%s", b)
	}
}
