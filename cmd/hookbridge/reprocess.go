package main

import (
	"context"
	"fmt"
	"net/url"
	"text/tabwriter"

	"github.com/hookbridge/hookbridge/connector"
	"github.com/hookbridge/hookbridge/connector/admin"
	"github.com/hookbridge/hookbridge/connector/store"
)

func cmdReprocess(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "reprocess", "reprocess: decode every stored body again with the current contact_fields and rebuild subscriptions")
	af := addAdminFlags(fs)
	lf := addLocalFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	bar := newProgressBar(e.stderr, "reprocessing")
	var final store.ReprocessProgress
	var serverErr string
	c, err := lf.adminClient(e, af)
	if err != nil {
		return err
	}
	err = lf.serverOrFile(ctx, e, c, fileAccess{},
		func() (err error) {
			serverErr, err = streamProgress(ctx, c, "/admin/v1/reprocess", struct{}{}, &final,
				func(p store.ReprocessProgress) { bar.update(int(p.Done), int(p.Total)) })
			return err
		},
		func(st *store.Store, cfg *connector.Config) error {
			decoders, err := cfg.Decoders()
			if err != nil {
				return err
			}
			final, err = st.Reprocess(ctx, decoders, func(p store.ReprocessProgress) { bar.update(int(p.Done), int(p.Total)) })
			return err
		})
	if err != nil {
		return fmt.Errorf("reprocess: %w", err)
	}
	if serverErr != "" {
		return fmt.Errorf("reprocess: %s", serverErr)
	}
	bar.update(int(final.Total), int(final.Total))
	fmt.Fprintf(e.stdout, "%d events re-decoded, %d changed, %d kept as they were (no longer decodable); subscriptions rebuilt\n", final.Done, final.Changed, final.Failed)
	return nil
}

func cmdKeys(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "keys", "keys [--source S]: key paths seen in stored bodies, with counts")
	af := addAdminFlags(fs)
	lf := addLocalFlags(fs)
	source := fs.String("source", "", "only this source")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var rep admin.KeyReport
	c, err := lf.adminClient(e, af)
	if err != nil {
		return err
	}
	err = lf.serverOrFile(ctx, e, c, fileAccess{readOnly: true},
		func() error {
			return c.do(ctx, "GET", "/admin/v1/keys?source="+url.QueryEscape(*source), nil, &rep)
		},
		func(st *store.Store, _ *connector.Config) error {
			var err error
			rep.Source = *source
			rep.Keys, rep.Events, err = st.KeyReport(ctx, *source)
			return err
		})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e, rep)
	}
	fmt.Fprintf(e.stdout, "%d stored bodies", rep.Events)
	if rep.Source != "" {
		fmt.Fprintf(e.stdout, " from source %s", rep.Source)
	}
	fmt.Fprintln(e.stdout, "; keys not in the vendor's documentation are marked *:")
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY PATH\tBODIES\tSHARE")
	for _, k := range rep.Keys {
		mark := " "
		if !k.Documented {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s %s\t%d\t%.1f%%\n", mark, k.Path, k.Events, 100*k.Share)
	}
	return tw.Flush()
}
