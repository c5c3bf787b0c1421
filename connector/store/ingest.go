package store

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strings"

	"github.com/hookbridge/hookbridge/schemas"
)

// insertEvents assigns seqs to the new events among group[idx], inserts them through Arrow,
// and folds them into subscriptions. Duplicates (stored before, or earlier in this group) get
// the original seq.
func (s *Store) insertEvents(ctx context.Context, tx *Tx, group []*request, idx []int, results []result) (int64, error) {
	firstOf := make(map[string]int, len(idx))
	var maybeSeen []any
	for _, i := range idx {
		id := group[i].row.EventID
		if _, ok := firstOf[id]; ok {
			continue
		}
		firstOf[id] = i
		if s.seen.mayContain(id) {
			maybeSeen = append(maybeSeen, id)
		}
	}
	existing := map[string]int64{}
	if len(maybeSeen) > 0 {
		q := "SELECT event_id, seq FROM events WHERE event_id IN (?" + strings.Repeat(", ?", len(maybeSeen)-1) + ")"
		err := tx.Query(ctx, q, maybeSeen, func(row []driver.Value) error {
			existing[row[0].(string)] = row[1].(int64)
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("look up duplicates: %w", err)
		}
	}

	b := s.builder
	for _, i := range idx {
		row := group[i].row
		first := firstOf[row.EventID]
		switch {
		case first != i:
			results[i] = result{dup: true} // seq filled in below, once the first is settled
		case existing[row.EventID] != 0:
			results[i] = result{seq: existing[row.EventID], dup: true}
		default:
			row.Seq = s.nextSeq
			s.nextSeq++
			results[i] = result{seq: row.Seq}
			b.Append(row)
			s.groupFresh = append(s.groupFresh, row)
		}
	}
	for _, i := range idx {
		if first := firstOf[group[i].row.EventID]; first != i {
			results[i].seq = results[first].seq
		}
	}
	hi := s.nextSeq - 1
	if b.Len() == 0 {
		return 0, nil
	}
	rec := b.NewRecord()
	defer rec.Release()
	if err := tx.InsertRecord(ctx, "events", rec); err != nil {
		return 0, fmt.Errorf("insert events: %w", err)
	}
	s.metrics.eventsStored.Add(float64(rec.NumRows()))
	return hi, nil
}

// insertRejected stores refused bodies.
func (s *Store) insertRejected(ctx context.Context, tx *Tx, rejects []*schemas.Rejection) error {
	for _, r := range rejects {
		_, err := tx.Exec(ctx, `INSERT INTO rejected (source, received_at, status, reason, detail, event_id, content_type, user_agent, remote_addr, body_size, body)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.Source, r.ReceivedAt.UTC(), r.Status, r.Reason, nullString(r.Detail), nullString(r.EventID), nullString(r.ContentType),
			nullString(r.UserAgent), nullString(r.RemoteAddr), r.BodySize, r.Body)
		if err != nil {
			return fmt.Errorf("insert rejected: %w", err)
		}
	}
	return nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
