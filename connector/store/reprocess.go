package store

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/hookbridge/hookbridge/schemas"
)

// rebuildSubscriptionsSQL folds every stored event into subscriptions, by the same rule as
// the writer's incremental merge (see subscriptions.go): an Unsubscribe is final, other fields
// take the latest non-null value, a Subscribe's only where no other event gave one (it ranks
// below every other event, and an earlier Subscribe above a later one: rank), tags come from Subscribe and SubscriptionDetailsUpdated, the
// unsubscribe reason from the first Unsubscribe.
var rebuildSubscriptionsSQL = `
INSERT INTO subscriptions
SELECT
	subscription_id,
	CASE WHEN bool_or(event_type = 'Unsubscribe') THEN 'unsubscribed' ELSE 'subscribed' END,
	arg_max(account_id, rank) FILTER (WHERE account_id IS NOT NULL),
	arg_max(account_code, rank) FILTER (WHERE account_code IS NOT NULL),
	arg_max(calendar_id, rank) FILTER (WHERE calendar_id IS NOT NULL),
	arg_max(calendar_code, rank) FILTER (WHERE calendar_code IS NOT NULL),
	arg_max(calendar_title, rank) FILTER (WHERE calendar_title IS NOT NULL),
	arg_max(subscription_method, rank) FILTER (WHERE subscription_method IS NOT NULL),
	arg_max(tag_ids, rank) FILTER (WHERE tag_ids IS NOT NULL AND event_type IN ('Subscribe', 'SubscriptionDetailsUpdated')),
	arg_max(tag_names, rank) FILTER (WHERE tag_names IS NOT NULL AND event_type IN ('Subscribe', 'SubscriptionDetailsUpdated')),
	arg_max(email, rank) FILTER (WHERE email IS NOT NULL),
	arg_max(valid_email_key, rank) FILTER (WHERE valid_email_key IS NOT NULL),
	arg_max(first_name, rank) FILTER (WHERE first_name IS NOT NULL),
	arg_max(last_name, rank) FILTER (WHERE last_name IS NOT NULL),
	arg_max(phone, rank) FILTER (WHERE phone IS NOT NULL),
	arg_max(postcode, rank) FILTER (WHERE postcode IS NOT NULL),
	arg_max(country_code, rank) FILTER (WHERE country_code IS NOT NULL),
	arg_max(marketing_consent, rank) FILTER (WHERE marketing_consent IS NOT NULL),
	min(occurred_at) FILTER (WHERE event_type <> 'Unsubscribe'),
	min(occurred_at) FILTER (WHERE event_type = 'Unsubscribe'),
	arg_min(unsubscribe_reason, seq) FILTER (WHERE event_type = 'Unsubscribe' AND unsubscribe_reason IS NOT NULL),
	min(received_at), max(received_at), min(seq), max(seq), arg_max(event_type, seq), count(*),
	arg_max(seq, rank) FILTER (WHERE marketing_consent IS NOT NULL)
FROM (SELECT *, CASE WHEN event_type = 'Subscribe' THEN -seq ELSE seq END AS rank, ` + ValidEmailKey("events") + ` AS valid_email_key FROM events)
WHERE subscription_id IS NOT NULL
	AND event_type IN ('Subscribe', 'Unsubscribe', 'SubscriptionDetailsUpdated', 'SubscriptionEventAdded', 'SubscriptionEventRemoved')
GROUP BY subscription_id`

// ReprocessProgress reports how far a reprocess got.
type ReprocessProgress struct {
	Done    int64 `json:"done"`
	Total   int64 `json:"total"`
	Changed int64 `json:"changed"`
	Failed  int64 `json:"failed"`
	// Phase is "events" while rows are re-decoded, then "subscriptions".
	Phase string `json:"phase"`
}

// Reprocess decodes every stored raw body again with decoders (by source; a source without
// one uses the default field paths) and rewrites the normalised columns, then rebuilds the
// subscriptions table from the events. Use it after changing contact_fields: the key names Rokt
// sends are unconfirmed until go-live, and old events must be able to follow. Events are
// rewritten in chunks, each in its own writer transaction, so ingest goes on between them; the
// final rebuild holds the writer for one transaction. progress is called after each chunk.
func (s *Store) Reprocess(ctx context.Context, decoders map[string]*schemas.Decoder, progress func(ReprocessProgress)) (ReprocessProgress, error) {
	if err := s.Apply(ctx, func(ctx context.Context, tx *Tx) error { return nil }); err != nil {
		return ReprocessProgress{}, err
	}
	upto := s.CommittedSeq()
	var p ReprocessProgress
	p.Phase = "events"
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM events WHERE seq <= ?", upto).Scan(&p.Total); err != nil {
		return p, fmt.Errorf("store: reprocess: %w", err)
	}
	def, err := schemas.NewDecoder(nil)
	if err != nil {
		return p, err
	}
	const chunk = 20000
	for lo := int64(0); lo < upto; lo += chunk {
		hi := min(lo+chunk, upto)
		old, err := s.readRows(ctx, "SELECT * FROM events WHERE seq > ? AND seq <= ? ORDER BY seq", lo, hi)
		if err != nil {
			return p, fmt.Errorf("store: reprocess: %w", err)
		}
		var fresh []schemas.Row
		for i := range old {
			o := &old[i]
			dec := decoders[o.Source]
			if dec == nil {
				dec = def
			}
			ev, err := dec.Decode(o.Raw)
			if err != nil {
				p.Failed++ // stored by an older, more lenient build: keep its row as it is
				continue
			}
			n := ev.Row(o.Source, o.ReceivedAt)
			n.Seq = o.Seq
			if !sameRow(o, &n) {
				fresh = append(fresh, n)
			}
		}
		if len(fresh) > 0 {
			if err := s.Apply(ctx, func(ctx context.Context, tx *Tx) error { return updateEvents(ctx, tx, fresh) }); err != nil {
				return p, fmt.Errorf("store: reprocess: %w", err)
			}
		}
		p.Done += int64(len(old))
		p.Changed += int64(len(fresh))
		if progress != nil {
			progress(p)
		}
	}
	p.Phase = "subscriptions"
	if progress != nil {
		progress(p)
	}
	if err := s.rebuildState(ctx); err != nil {
		return p, err
	}
	return p, nil
}

// rebuildState replaces the subscriptions table with a fold of every stored event, in one
// writer transaction, and marks state merged up to the last event.
func (s *Store) rebuildState(ctx context.Context) error {
	err := s.Apply(ctx, func(ctx context.Context, tx *Tx) error {
		// Every event of this transaction is folded here from the table (events batched into
		// this commit included), so pending in-memory changes are covered too.
		s.pending.reset()
		s.groupFresh = s.groupFresh[:0]
		if _, err := tx.Exec(ctx, "DELETE FROM subscriptions"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, rebuildSubscriptionsSQL); err != nil {
			return err
		}
		if err := s.noteSubscriptionIDs(ctx, tx); err != nil {
			return err
		}
		if err := buildAnalytics(ctx, txExecer{tx}); err != nil {
			return err
		}
		s.analyticsBehind = 0
		s.analyticsGen++
		_, err := tx.Exec(ctx, "UPDATE store_state SET value = ? WHERE key = 'merged_seq'", s.nextSeq-1)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: rebuild subscriptions: %w", err)
	}
	s.notify(s.CommittedSeq())
	return nil
}

// BeginBulk tells the writer a bulk load (an import) is under way: it stops merging
// subscription changes event by event, which costs more than the load itself, and EndBulk
// rebuilds the subscriptions from all events in one statement. Until then, subscription state
// (and the deliveries that wait for it) stays where it was. Calls may nest.
func (s *Store) BeginBulk() { s.bulk.Add(1) }

// EndBulk ends a bulk load; the last one to end rebuilds the subscription state. It runs even
// when ctx is cancelled.
func (s *Store) EndBulk(ctx context.Context) error {
	if s.bulk.Add(-1) > 0 {
		return nil
	}
	return s.rebuildState(context.WithoutCancel(ctx))
}

// sameRow compares the normalised columns that decoding produces.
func sameRow(a, b *schemas.Row) bool {
	for _, c := range schemas.Schema().Fields() {
		va, _ := a.Value(c.Name)
		vb, _ := b.Value(c.Name)
		if fmt.Sprint(va) != fmt.Sprint(vb) {
			return false
		}
	}
	return true
}

// updateEvents rewrites rows (matched by seq; event_id, seq, source, received_at and raw
// never change): it deletes them and inserts the new versions in the same transaction.
func updateEvents(ctx context.Context, tx *Tx, rows []schemas.Row) error {
	seqs := make([]string, len(rows))
	for i, r := range rows {
		seqs[i] = strconv.FormatInt(r.Seq, 10)
	}
	if _, err := tx.Exec(ctx, "DELETE FROM events WHERE seq IN ("+strings.Join(seqs, ", ")+")"); err != nil {
		return err
	}
	rec, err := schemas.BuildRecord(memory.NewGoAllocator(), schemas.Schema(), rows)
	if err != nil {
		return err
	}
	defer rec.Release()
	return tx.InsertRecord(ctx, "events", rec)
}

// KeyCount is how many stored bodies of a source hold a key path.
type KeyCount struct {
	Path       string  `json:"path"`
	Events     int64   `json:"events"`
	Share      float64 `json:"share"`
	Documented bool    `json:"documented"`
}

// KeyReport counts, for one source ("" for all), the key paths of every stored raw body,
// most frequent first.
func (s *Store) KeyReport(ctx context.Context, source string) ([]KeyCount, int64, error) {
	q, args := "SELECT raw FROM events", []any{}
	if source != "" {
		q, args = q+" WHERE source = ?", append(args, source)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("store: key report: %w", err)
	}
	defer rows.Close()
	counts := map[string]int64{}
	var total int64
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, 0, fmt.Errorf("store: key report: %w", err)
		}
		total++
		paths, err := schemas.KeyPaths(raw)
		if err != nil {
			continue
		}
		for _, p := range paths {
			counts[p]++
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("store: key report: %w", err)
	}
	out := make([]KeyCount, 0, len(counts))
	for p, n := range counts {
		out = append(out, KeyCount{Path: p, Events: n, Share: float64(n) / float64(total), Documented: schemas.Documented(p)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Events != out[j].Events {
			return out[i].Events > out[j].Events
		}
		return out[i].Path < out[j].Path
	})
	return out, total, nil
}
