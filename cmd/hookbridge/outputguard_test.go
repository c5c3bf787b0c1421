package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestSnapshotAndExportRefuseTheLiveDatabase: snapshot and export refuse to write over the
// running server's data file (by any name) or its write-ahead log, write nothing, and the
// server keeps every event it acknowledged, across a SIGKILL.
func TestSnapshotAndExportRefuseTheLiveDatabase(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "hb.duckdb")
	addr := freeAddr(t)
	srv := startServer(t, addr, "--data", data)
	server := map[string]string{"HOOKBRIDGE_SERVER": "http://" + addr}
	for i := range 3 {
		if code := postEvent(addr, subscribeBody(fmt.Sprintf("e%d", i), fmt.Sprintf("s%d", i), fmt.Sprintf("u%d@example.com", i))); code != 200 {
			t.Fatalf("post: %d", code)
		}
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(data)
	if err != nil {
		t.Fatal(err)
	}
	walBefore, walErr := os.Stat(data + ".wal")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"snapshot", data}, "it is the data file of the server at http://" + addr},
		{[]string{"snapshot", filepath.Join(link, "hb.duckdb")}, "it is the data file of the server"},
		{[]string{"export", "--table", "events", "--format", "parquet", "--out", data + ".wal"}, "it is the write-ahead log of " + data},
		{[]string{"export", "--table", "events", "--format", "parquet", "--out", filepath.Join(link, "hb.duckdb.wal")}, "write-ahead log"},
	} {
		out, _, err := runCmd(t, server, c.args...)
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "refusing to write") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v (exit status %d), want it refused: %q\n%s", c.args, err, exitCode(err), c.want, out)
		}
	}
	after, err := os.Stat(data)
	if err != nil || !os.SameFile(before, after) {
		t.Errorf("the server's data file was replaced (%v)", err)
	}
	walAfter, err := os.Stat(data + ".wal")
	if (walErr == nil) != (err == nil) || (err == nil && !os.SameFile(walBefore, walAfter)) {
		t.Errorf("the server's write-ahead log was replaced or made: before %v, after %v", walErr, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".hookbridge-download-*")); len(left) > 0 {
		t.Errorf("downloads left behind: %v", left)
	}
	// Killed and started again, the server still has every event it acknowledged.
	srv.cmd.Process.Signal(syscall.SIGKILL)
	<-srv.exited
	startServer(t, addr, "--data", data)
	if out, _, err := runCmd(t, server, "query", "--format", "csv", "SELECT count(*) FROM events"); err != nil || !strings.Contains(out, "\n3\n") {
		t.Errorf("events after the refusals and a restart: %v %q, want 3", err, out)
	}
}

// TestSnapshotRefusesADatabaseInUse: a DuckDB file another process has open (a second server,
// not the one asked), its write-ahead log, and the file the command itself would open are
// refused too.
func TestSnapshotRefusesADatabaseInUse(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	startServer(t, addr, "--data", filepath.Join(dir, "asked.duckdb"))
	other := filepath.Join(dir, "other.duckdb")
	otherSrv := startServer(t, freeAddr(t), "--data", other)
	server := map[string]string{"HOOKBRIDGE_SERVER": "http://" + addr}
	before, err := os.Stat(other)
	if err != nil {
		t.Fatal(err)
	}
	pid := fmt.Sprintf("process %d holds a lock", otherSrv.cmd.Process.Pid)
	for _, args := range [][]string{
		{"snapshot", other},
		{"export", "--table", "events", "--format", "parquet", "--out", other + ".wal"},
	} {
		if _, _, err := runCmd(t, server, args...); err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), pid) {
			t.Errorf("%v: %v (exit status %d), want it refused: %q", args, err, exitCode(err), pid)
		}
	}
	if after, err := os.Stat(other); err != nil || !os.SameFile(before, after) {
		t.Errorf("the other server's data file was replaced (%v)", err)
	}
	if _, err := os.Stat(other + ".wal"); err == nil {
		// DuckDB may have made one itself: it must not be a Parquet file.
		if b, _ := os.ReadFile(other + ".wal"); strings.HasPrefix(string(b), "PAR1") {
			t.Error("the other server's write-ahead log was replaced by the export")
		}
	}

	// No server: the file --data names is the one the snapshot would be made from.
	local := filepath.Join(dir, "local.duckdb")
	writeImportFile(t, filepath.Join(dir, "events.jsonl"), 2)
	if out, _, err := runCmd(t, noServer, "import", "--data", local, filepath.Join(dir, "events.jsonl")); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	_, _, err = runCmd(t, noServer, "snapshot", "--data", local, local)
	if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "it is the --data file") {
		t.Errorf("snapshot --data F F: %v (exit status %d), want it refused", err, exitCode(err))
	}
	if out, _, err := runCmd(t, noServer, "query", "--data", local, "--format", "csv", "SELECT count(*) FROM events"); err != nil || !strings.Contains(out, "\n2\n") {
		t.Errorf("the --data file after the refusal: %v %q", err, out)
	}
}
