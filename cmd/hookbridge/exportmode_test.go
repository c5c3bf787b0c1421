package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestExportModeSameThroughServerAndFile: an export or snapshot gets the mode of any file
// this user makes (0666 less the umask), whether it came through the server or from the file
// directly.
func TestExportModeSameThroughServerAndFile(t *testing.T) {
	const umask = 0o002 // tells 0666 from 0644 apart, and both from 0600
	old := syscall.Umask(umask)
	defer syscall.Umask(old)
	want := os.FileMode(0o666 &^ umask)

	dir := t.TempDir()
	data := filepath.Join(dir, "hb.duckdb")
	addr := freeAddr(t)
	srv := startServer(t, addr, "--data", data)
	server := map[string]string{"HOOKBRIDGE_SERVER": "http://" + addr}
	files := map[string]string{}
	for _, how := range []string{"server", "file"} {
		if how == "file" {
			srv.cmd.Process.Signal(syscall.SIGTERM)
			<-srv.exited
		}
		csv := filepath.Join(dir, how, "events.csv")
		if out, _, err := runCmd(t, server, "export", "--data", data, "--table", "events", "--out", csv); err != nil {
			t.Fatalf("export through the %s: %v %s", how, err, out)
		}
		snap := filepath.Join(dir, how, "snap.duckdb")
		if out, _, err := runCmd(t, server, "snapshot", "--data", data, snap); err != nil {
			t.Fatalf("snapshot through the %s: %v %s", how, err, out)
		}
		files["export through the "+how] = csv
		files["snapshot through the "+how] = snap
	}
	for what, path := range files {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", what, fi.Mode().Perm(), want)
		}
	}
}
