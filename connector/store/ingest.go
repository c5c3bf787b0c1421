package store

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strings"

	"github.com/hookbridge/hookbridge/schemas"
)

// insertEvents assigns seqs to the new events among rows, inserts them through Arrow, and
// returns each row's seq and whether it was a duplicate (stored before, or earlier in rows);
// a duplicate gets the original seq.
func (s *Store) insertEvents(ctx context.Context, tx *Tx, rows []*schemas.Row) (seqs []int64, dups []bool, maxSeq int64, err error) {
	firstOf := make(map[string]int, len(rows))
	var maybeSeen []any
	for i, r := range rows {
		if _, ok := firstOf[r.EventID]; ok {
			continue
		}
		firstOf[r.EventID] = i
		if s.seen.mayContain(r.EventID) {
			maybeSeen = append(maybeSeen, r.EventID)
		}
	}
	existing := map[string]int64{}
	for start := 0; start < len(maybeSeen); start += 1000 {
		part := maybeSeen[start:min(start+1000, len(maybeSeen))]
		q := "SELECT event_id, seq FROM events WHERE event_id IN (?" + strings.Repeat(", ?", len(part)-1) + ")"
		err := tx.Query(ctx, q, part, func(row []driver.Value) error {
			existing[row[0].(string)] = row[1].(int64)
			return nil
		})
		if err != nil {
			return nil, nil, 0, fmt.Errorf("look up duplicates: %w", err)
		}
	}

	seqs, dups = make([]int64, len(rows)), make([]bool, len(rows))
	b := s.builder
	for i, r := range rows {
		first := firstOf[r.EventID]
		switch {
		case first != i:
			dups[i] = true // seq filled in below, once the first is settled
		case existing[r.EventID] != 0:
			seqs[i], dups[i] = existing[r.EventID], true
		default:
			r.Seq = s.nextSeq
			s.nextSeq++
			seqs[i] = r.Seq
			b.Append(r)
			s.groupFresh = append(s.groupFresh, r)
		}
	}
	for i, r := range rows {
		if first := firstOf[r.EventID]; first != i {
			seqs[i] = seqs[first]
		}
	}
	if b.Len() == 0 {
		return seqs, dups, 0, nil
	}
	rec := b.NewRecord()
	defer rec.Release()
	if err := tx.InsertRecord(ctx, "events", rec); err != nil {
		return nil, nil, 0, fmt.Errorf("insert events: %w", err)
	}
	s.metrics.eventsStored.Add(float64(rec.NumRows()))
	return seqs, dups, s.nextSeq - 1, nil
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
