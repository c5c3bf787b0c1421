package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/hookbridge/hookbridge/connector"
	"github.com/hookbridge/hookbridge/connector/importer"
	"github.com/hookbridge/hookbridge/connector/store"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func cmdImport(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "import", "import FILE.jsonl (lines as 'hookbridge simulate --out' writes them)")
	af := addAdminFlags(fs)
	lf := addLocalFlags(fs)
	if err := fs.Parse(reorder(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"usage: hookbridge import FILE.jsonl"}
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	bar := newProgressBar(e.stderr, "importing "+fs.Arg(0))
	// The bar ends once the import has, not when the last byte is read.
	body := &countingReader{r: bufio.NewReaderSize(f, 1<<20), onRead: func(n int64) { bar.update(int(n), int(max(fi.Size(), n+1))) }}

	var final importer.Progress
	var serverErr string
	c, err := lf.adminClient(e, af)
	if err != nil {
		return err
	}
	err = lf.serverOrFile(ctx, e, c, fileAccess{create: true},
		func() (err error) {
			// The bar follows the bytes sent, not the progress lines.
			serverErr, err = streamProgress(ctx, c, "/admin/v1/import", rawBody{body}, &final, nil)
			return err
		},
		func(st *store.Store, cfg *connector.Config) error {
			decoders, err := cfg.Decoders()
			if err != nil {
				return err
			}
			final, err = importer.Import(ctx, body, st, importer.Options{Decoders: decoders, Bulk: true})
			return err
		})
	bar.update(int(body.n), int(body.n))
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if serverErr != "" {
		return fmt.Errorf("import: %s", serverErr)
	}
	fmt.Fprintf(e.stdout, "%d lines: %d stored, %d duplicates, %d refused (kept in rejected), %d malformed lines\n",
		final.Lines, final.Accepted, final.Duplicates, final.Refused, final.Malformed)
	if final.Malformed > 0 {
		return fmt.Errorf("import: %d lines are not {\"received_at\", \"source\", \"body\"} objects", final.Malformed)
	}
	return nil
}

// rawBody marks a request body to stream as is instead of encoding as JSON.
type rawBody struct{ io.Reader }
