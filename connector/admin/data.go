package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hookbridge/hookbridge/connector/importer"
	"github.com/hookbridge/hookbridge/connector/store"
	"github.com/hookbridge/hookbridge/schemas"
)

// Data is what the analytics routes need of the store.
type Data interface {
	Query(ctx context.Context, q string, limit int, timeout time.Duration, args ...any) (*store.QueryResult, error)
	Export(ctx context.Context, q, table, format, dir string) (string, error)
	Snapshot(ctx context.Context, dir string) (string, error)
	IngestBatch(ctx context.Context, rows []*schemas.Row) ([]int64, []bool, error)
	Reject(ctx context.Context, rej *schemas.Rejection) error
	WaitState(ctx context.Context, seq int64) error
	BeginBulk()
	EndBulk(ctx context.Context) error
	Reprocess(ctx context.Context, decoders map[string]*schemas.Decoder, progress func(store.ReprocessProgress)) (store.ReprocessProgress, error)
	KeyReport(ctx context.Context, source string) ([]store.KeyCount, int64, error)
}

// Limits on API queries.
const (
	defaultQueryRows    = 1000
	maxQueryRows        = 100000
	defaultQueryTimeout = 30 * time.Second
	maxQueryTimeout     = 5 * time.Minute
)

func (a *API) registerData(mux *http.ServeMux, h func(string, func(http.ResponseWriter, *http.Request) error)) {
	h("POST /admin/v1/query", a.query)
	h("POST /admin/v1/export", a.export)
	h("POST /admin/v1/snapshot", a.snapshot)
	h("POST /admin/v1/import", a.importLines)
	h("POST /admin/v1/reprocess", a.reprocess)
	h("GET /admin/v1/keys", a.keys)
}

// QueryRequest is the body of POST /admin/v1/query.
type QueryRequest struct {
	SQL string `json:"sql"`
	// Limit bounds the rows returned (default 1000, at most 100000).
	Limit int `json:"limit,omitempty"`
	// Timeout bounds the run time, as a Go duration (default 30s, at most 5m).
	Timeout string `json:"timeout,omitempty"`
}

func (a *API) data() (Data, error) {
	if a.opts.Data == nil {
		return nil, statusErr(http.StatusNotFound, "this server does not serve data")
	}
	return a.opts.Data, nil
}

func (a *API) query(w http.ResponseWriter, r *http.Request) error {
	d, err := a.data()
	if err != nil {
		return err
	}
	var req QueryRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil || req.SQL == "" {
		return statusErr(http.StatusBadRequest, "send {\"sql\": \"SELECT …\"}")
	}
	if req.Limit <= 0 {
		req.Limit = defaultQueryRows
	}
	req.Limit = min(req.Limit, maxQueryRows)
	timeout := defaultQueryTimeout
	if req.Timeout != "" {
		if timeout, err = time.ParseDuration(req.Timeout); err != nil || timeout <= 0 {
			return statusErr(http.StatusBadRequest, "timeout %q: use a duration such as 30s", req.Timeout)
		}
		timeout = min(timeout, maxQueryTimeout)
	}
	res, err := d.Query(r.Context(), req.SQL, req.Limit, timeout)
	if err != nil {
		return statusErr(http.StatusBadRequest, "%v", err)
	}
	return writeJSON(w, http.StatusOK, res)
}

// ExportRequest is the body of POST /admin/v1/export: a table (or view) or a query.
type ExportRequest struct {
	Table  string `json:"table,omitempty"`
	Query  string `json:"query,omitempty"`
	Format string `json:"format"`
}

func (a *API) export(w http.ResponseWriter, r *http.Request) error {
	d, err := a.data()
	if err != nil {
		return err
	}
	var req ExportRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		return statusErr(http.StatusBadRequest, "body: %v", err)
	}
	dir, err := a.exportDir()
	if err != nil {
		return err
	}
	path, err := d.Export(r.Context(), req.Query, req.Table, req.Format, dir)
	if err != nil {
		return statusErr(http.StatusBadRequest, "%v", err)
	}
	ctype := "text/csv"
	if req.Format == "parquet" {
		ctype = "application/vnd.apache.parquet"
	}
	return a.sendFile(w, path, ctype, "export."+req.Format)
}

func (a *API) snapshot(w http.ResponseWriter, r *http.Request) error {
	d, err := a.data()
	if err != nil {
		return err
	}
	dir, err := a.exportDir()
	if err != nil {
		return err
	}
	path, err := d.Snapshot(r.Context(), dir)
	if err != nil {
		return err
	}
	return a.sendFile(w, path, "application/octet-stream", "hookbridge-snapshot.duckdb")
}

// exportDir returns the folder exports and snapshots are written to, made on first use: a
// server that never exports leaves no empty folder beside its data file.
func (a *API) exportDir() (string, error) {
	if a.opts.ExportDir == "" {
		return "", nil
	}
	if err := os.MkdirAll(a.opts.ExportDir, 0o755); err != nil {
		return "", fmt.Errorf("admin: exports folder: %w", err)
	}
	return a.opts.ExportDir, nil
}

// sendFile streams a file the store wrote into the export folder and removes it.
func (a *API) sendFile(w http.ResponseWriter, path, ctype, name string) error {
	defer os.Remove(path)
	defer os.Remove(path + ".wal")
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", filepath.Base(name)))
	w.WriteHeader(http.StatusOK)
	_, err = io.Copy(w, f)
	return err
}

// importLines loads a JSON-lines body (importer.Line per line) and streams progress.
func (a *API) importLines(w http.ResponseWriter, r *http.Request) error {
	d, err := a.data()
	if err != nil {
		return err
	}
	// Progress goes out while the body still comes in: without full duplex, HTTP/1.1 stops
	// the request body at the first flush and the import would end early.
	rc := http.NewResponseController(w)
	if err := rc.EnableFullDuplex(); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	// An import file may take minutes to upload: the listener's read timeout (meant for
	// webhook bodies) does not apply.
	if err := rc.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	last := time.Time{}
	p, err := importer.Import(r.Context(), r.Body, d, importer.Options{Decoders: a.opts.Decoders, Bulk: true, Progress: func(p importer.Progress) {
		if time.Since(last) < a.opts.ProgressEvery {
			return
		}
		last = time.Now()
		enc.Encode(p)
		if flusher != nil {
			flusher.Flush()
		}
	}})
	if err != nil {
		enc.Encode(map[string]any{"error": err.Error(), "progress": p})
		return nil
	}
	return enc.Encode(map[string]any{"done": true, "progress": p})
}

func (a *API) reprocess(w http.ResponseWriter, r *http.Request) error {
	d, err := a.data()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	// The rewrite goes on even if the client leaves: stopping half-way is worse than finishing.
	ctx := context.WithoutCancel(r.Context())
	p, err := d.Reprocess(ctx, a.opts.Decoders, func(p store.ReprocessProgress) {
		enc.Encode(p)
		if flusher != nil {
			flusher.Flush()
		}
	})
	if err != nil {
		enc.Encode(map[string]any{"error": err.Error(), "progress": p})
		return nil
	}
	return enc.Encode(map[string]any{"done": true, "progress": p})
}

// KeyReport is the answer of GET /admin/v1/keys.
type KeyReport struct {
	Source string           `json:"source,omitempty"`
	Events int64            `json:"events"`
	Keys   []store.KeyCount `json:"keys"`
}

func (a *API) keys(w http.ResponseWriter, r *http.Request) error {
	d, err := a.data()
	if err != nil {
		return err
	}
	src := r.URL.Query().Get("source")
	keys, total, err := d.KeyReport(r.Context(), src)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, KeyReport{Source: src, Events: total, Keys: keys})
}
