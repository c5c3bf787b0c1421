package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hookbridge/hookbridge/schemas"
)

// request is one unit of work for the writer: an event, a rejected body, or a state
// operation from another package.
type request struct {
	rows []*schemas.Row
	rej  *schemas.Rejection
	op   StateOp
	size int64
	done chan result
}

type result struct {
	seqs []int64 // per row of the request
	dups []bool
	err  error
}

// StateOp is a change other packages (delivery) make to the store's state. It runs inside the
// writer's transaction with the group it was batched with, so it commits atomically with
// them; it must not block on anything but the database.
type StateOp func(ctx context.Context, tx *Tx) error

// Ingest stores row (its Seq is ignored) and returns its seq once the transaction holding it
// is committed. An event whose id is already stored is a duplicate: nothing is written and
// the original seq is returned with dup set. Errors: ErrQueueFull, ErrUnavailable, the
// context's error, or a database error that failed this row only.
func (s *Store) Ingest(ctx context.Context, row *schemas.Row) (seq int64, dup bool, err error) {
	r, err := s.submit(ctx, &request{rows: []*schemas.Row{row}, size: int64(len(row.Raw)) + 512})
	if err != nil {
		return 0, false, err
	}
	return r.seqs[0], r.dups[0], nil
}

// IngestBatch stores many rows in one commit (imports and reprocessing) and returns each
// row's seq and whether it was a duplicate. Rows keep the ReceivedAt they carry.
func (s *Store) IngestBatch(ctx context.Context, rows []*schemas.Row) (seqs []int64, dups []bool, err error) {
	size := int64(0)
	for _, r := range rows {
		size += int64(len(r.Raw)) + 512
	}
	if size > s.opts.QueueBytes/2 {
		return nil, nil, fmt.Errorf("store: a batch of %d bytes is over half the write queue (%d); send smaller batches", size, s.opts.QueueBytes)
	}
	r, err := s.submit(ctx, &request{rows: rows, size: size})
	return r.seqs, r.dups, err
}

// Reject keeps a refused body in the rejected table, returning once it is committed.
func (s *Store) Reject(ctx context.Context, rej *schemas.Rejection) error {
	_, err := s.submit(ctx, &request{rej: rej, size: int64(len(rej.Body)) + 512})
	return err
}

// Apply runs op in the writer's next transaction and returns once that is committed.
func (s *Store) Apply(ctx context.Context, op StateOp) error {
	_, err := s.submit(ctx, &request{op: op, size: 512})
	return err
}

func (s *Store) submit(ctx context.Context, req *request) (result, error) {
	if s.opts.ReadOnly {
		return result{}, fmt.Errorf("%w: opened read-only", ErrUnavailable)
	}
	if err := s.Ready(); err != nil {
		return result{}, err
	}
	if s.queueBytes.Add(req.size) > s.opts.QueueBytes {
		s.queueBytes.Add(-req.size)
		s.metrics.queueFull.Inc()
		return result{}, ErrQueueFull
	}
	req.done = make(chan result, 1)
	select {
	case s.queue <- req:
	default:
		s.queueBytes.Add(-req.size)
		s.metrics.queueFull.Inc()
		return result{}, ErrQueueFull
	}
	select {
	case r := <-req.done:
		return r, r.err
	case <-ctx.Done():
		// The writer may still commit the request; a redelivery then finds a duplicate.
		return result{}, ctx.Err()
	case <-s.writerDone:
		// The writer drains the queue before it stops; a request queued after that is never
		// answered.
		select {
		case r := <-req.done:
			return r, r.err
		default:
			return result{}, fmt.Errorf("%w: shutting down", ErrUnavailable)
		}
	}
}

// writeLoop is the single writer. It exits once closing is signalled and the queue is
// drained.
func (s *Store) writeLoop() {
	defer close(s.writerDone)
	ctx := context.Background()
	group := make([]*request, 0, s.opts.MaxGroup)
	var lastWrite time.Time
	for {
		var first *request
		select {
		case first = <-s.queue:
		case <-s.closing:
			// Drain what was queued before Close: those requests wait for an answer.
			for {
				select {
				case first = <-s.queue:
					group = s.collect(group[:0], first)
					s.commit(ctx, group)
					continue
				default:
				}
				s.flushState(ctx)
				return
			}
		case <-time.After(idleAfter):
			s.flushState(ctx)
			s.maybeRefreshAnalytics(true)
			s.maybeCheckpoint(ctx, time.Since(lastWrite) >= checkpointIdle)
			continue
		}
		group = s.collect(group[:0], first)
		group = s.linger(group)
		s.commit(ctx, group)
		lastWrite = time.Now()
		if len(s.pending.order) > 0 && (s.opts.Now().Sub(s.pending.since) >= stateMergeInterval || len(s.pending.order) >= maxPendingDeltas) {
			s.flushState(ctx)
		}
		s.maybeRefreshAnalytics(false)
		s.maybeCheckpoint(ctx, false)
	}
}

// Under load the writer merges subscription changes at most this often, or once this many
// subscriptions have pending changes.
// When no request has arrived for idleAfter, it merges at once.
const (
	stateMergeInterval = 100 * time.Millisecond
	maxPendingDeltas   = 8192
	idleAfter          = 5 * time.Millisecond
	// checkpointIdle is how long the writer must have had nothing to write before a small
	// WAL is checkpointed: a checkpoint rewrites the indexes, so a steady stream (an import)
	// waits for CheckpointMaxWAL instead of paying that between every two batches.
	checkpointIdle = 500 * time.Millisecond
)

// flushState merges the pending subscription changes and records the merged seq in the same
// transaction, then tells watchers that state is current up to the last commit.
func (s *Store) flushState(ctx context.Context) error {
	if s.bulk.Load() > 0 {
		return nil // EndBulk rebuilds the state
	}
	if len(s.pending.order) == 0 {
		s.notify(s.committed)
		return nil
	}
	if s.health.Load() != nil {
		return ErrUnavailable
	}
	start := time.Now()
	err := s.inWriterTx(ctx, func(tx *Tx) error {
		if err := s.mergeSubscriptions(ctx, tx, s.pending.order); err != nil {
			return err
		}
		return tx.exec(ctx, "UPDATE store_state SET value = ? WHERE key = 'merged_seq'", s.committed)
	})
	if err != nil {
		s.metrics.mergeFailures.Inc()
		if !s.fatal(ctx, err) {
			s.log.Error("store: merging subscription changes failed; will retry", "pending", len(s.pending.order), "err", err)
		}
		return fmt.Errorf("store: merge subscriptions: %w", err)
	}
	s.metrics.mergeSeconds.Observe(time.Since(start).Seconds())
	s.analyticsBehind += len(s.pending.order)
	s.pending.reset()
	s.notify(s.committed)
	return nil
}

// linger waits up to GroupWait for more requests to join a group that is not full.
func (s *Store) linger(group []*request) []*request {
	if s.opts.GroupWait <= 0 || len(group) >= s.opts.MaxGroup {
		return group
	}
	t := time.NewTimer(s.opts.GroupWait)
	defer t.Stop()
	for len(group) < s.opts.MaxGroup {
		select {
		case r := <-s.queue:
			group = append(group, r)
		case <-t.C:
			return group
		}
	}
	return group
}

// collect takes first and whatever else is already queued, up to MaxGroup.
func (s *Store) collect(group []*request, first *request) []*request {
	group = append(group, first)
	for len(group) < s.opts.MaxGroup {
		select {
		case r := <-s.queue:
			group = append(group, r)
		default:
			return group
		}
	}
	return group
}

// commit writes group in one transaction and answers every request. When the transaction
// fails, each request is retried alone, so a row the database refuses fails only itself.
func (s *Store) commit(ctx context.Context, group []*request) {
	var bytes int64
	for _, r := range group {
		bytes += r.size
	}
	defer s.queueBytes.Add(-bytes)

	if p := s.health.Load(); p != nil {
		s.answerAll(group, fmt.Errorf("%w: %v", ErrUnavailable, *p))
		return
	}
	start := time.Now()
	results, maxSeq, err := s.commitOnce(ctx, group)
	if err == nil {
		s.metrics.commitSeconds.Observe(time.Since(start).Seconds())
		s.metrics.commitSize.Observe(float64(len(group)))
		if maxSeq > 0 {
			s.committed = maxSeq
			s.lastCommit.Store(maxSeq)
			if s.bulk.Load() == 0 {
				s.pending.fold(s.groupFresh, s.opts.Now())
				if len(s.pending.order) == 0 {
					s.notify(maxSeq)
				}
			}
		}
		for i, r := range group {
			r.done <- results[i]
		}
		return
	}
	if s.fatal(ctx, err) {
		s.answerAll(group, fmt.Errorf("%w: %v", ErrUnavailable, err))
		return
	}
	if len(group) == 1 {
		s.log.Error("store: commit failed", "err", err)
		group[0].done <- result{err: fmt.Errorf("store: commit: %w", err)}
		return
	}
	s.log.Warn("store: group commit failed; committing its requests one by one", "size", len(group), "err", err)
	for _, r := range group {
		r.size = 0 // already accounted for by this call's deferred release
		s.commit(ctx, []*request{r})
	}
}

func (s *Store) answerAll(group []*request, err error) {
	for _, r := range group {
		r.done <- result{err: err}
	}
}

// commitOnce runs one transaction for group and returns each request's result.
func (s *Store) commitOnce(ctx context.Context, group []*request) ([]result, int64, error) {
	results := make([]result, len(group))
	var maxSeq int64
	firstSeq := s.nextSeq
	s.groupFresh = s.groupFresh[:0]
	err := s.inWriterTx(ctx, func(tx *Tx) error {
		var err error
		maxSeq, err = s.applyGroup(ctx, tx, group, results)
		return err
	})
	if err != nil {
		s.nextSeq = firstSeq
		return nil, 0, err
	}
	for i, r := range group {
		for j, row := range r.rows {
			if !results[i].dups[j] {
				s.seen.add(row.EventID)
			}
		}
	}
	return results, maxSeq, nil
}

func (s *Store) applyGroup(ctx context.Context, tx *Tx, group []*request, results []result) (int64, error) {
	var rows []*schemas.Row
	var rejects []*schemas.Rejection
	for _, r := range group {
		rows = append(rows, r.rows...)
		if r.rej != nil {
			rejects = append(rejects, r.rej)
		}
	}
	var maxSeq int64
	if len(rows) > 0 {
		seqs, dups, hi, err := s.insertEvents(ctx, tx, rows)
		if err != nil {
			return 0, err
		}
		maxSeq = hi
		k := 0
		for i, r := range group {
			n := len(r.rows)
			results[i].seqs, results[i].dups = seqs[k:k+n:k+n], dups[k:k+n:k+n]
			k += n
		}
	}
	if len(rejects) > 0 {
		if err := s.insertRejected(ctx, tx, rejects); err != nil {
			return 0, err
		}
	}
	for _, r := range group {
		if r.op != nil {
			if err := r.op(ctx, tx); err != nil {
				return 0, err
			}
		}
	}
	return maxSeq, nil
}

// fatal reports whether err leaves the database unable to take writes, and marks the store
// unhealthy if so: /readyz fails and writes answer ErrUnavailable.
func (s *Store) fatal(ctx context.Context, err error) bool {
	msg := err.Error()
	fatal := strings.Contains(msg, "FATAL") || strings.Contains(msg, "database has been invalidated") ||
		strings.Contains(msg, "No space left") || strings.Contains(msg, "Could not write") ||
		errors.Is(err, os.ErrClosed)
	if !fatal {
		// A healthy database still answers a trivial query on the writer connection.
		if _, perr := s.wconn.ExecContext(ctx, "SELECT 1"); perr != nil {
			fatal = true
		}
	}
	if fatal {
		e := fmt.Errorf("database error: %w", err)
		s.health.Store(&e)
		s.metrics.unhealthy.Set(1)
		s.log.Error("store: database cannot take writes; answering 503 until restarted", "err", err)
	}
	return fatal
}

// maybeCheckpoint folds the WAL into the database file when the writer is idle (no request
// for idleAfter) and the WAL has grown past CheckpointIdleWAL, or under load once it
// passes CheckpointMaxWAL, so DuckDB never checkpoints by surprise in the middle of a commit
// and a busy writer rarely stops for one.
func (s *Store) maybeCheckpoint(ctx context.Context, idle bool) {
	if s.health.Load() != nil {
		return
	}
	fi, err := os.Stat(s.opts.Path + ".wal")
	if err != nil {
		return
	}
	if fi.Size() < s.opts.CheckpointIdleWAL || (!idle && fi.Size() < s.opts.CheckpointMaxWAL) {
		return
	}
	start := time.Now()
	if _, err := s.wconn.ExecContext(ctx, "CHECKPOINT"); err != nil {
		s.log.Warn("store: checkpoint", "err", err)
		return
	}
	s.metrics.checkpointSeconds.Observe(time.Since(start).Seconds())
	s.log.Debug("store: checkpoint", "wal_bytes", fi.Size(), "took", time.Since(start))
}
