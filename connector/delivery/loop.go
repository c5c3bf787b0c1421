package delivery

import (
	"cmp"
	"container/heap"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/hookbridge/hookbridge/schemas"
)

// loop delivers one sink. Everything in it is owned by its goroutine; other goroutines reach
// it through cmds.
type loop struct {
	e          *Engine
	name       string
	opt        SinkOptions
	policy     RetryPolicy
	limiter    *limiter
	keyCol     string
	readCols   []string      // what is read from the store
	sendSchema *arrow.Schema // what the sink receives
	typeFilter string
	rnd        *rand.Rand
	m          *sinkMetrics

	cursor      int64 // every row at or below is done
	savedCursor int64 // the cursor as stored
	high        int64 // every row at or below has been taken in
	tickedUpTo  int64 // cron sinks take in new rows up to here
	keys        map[string]*pendingKey
	ahead       map[int64]aheadRow // rows read ahead of their batch, by seq (see readDue)
	aheadState  int64              // the store's state seq they were read at
	resume      map[int64]resumeInfo
	// inflight holds the rows of the batch a crash interrupted (from sink_state):
	// they go first, alone, so the re-send carries the same batch id. inflightHigh is the
	// highest of them (0: none).
	inflight     map[int64]bool
	inflightHigh int64
	journaled    *inflightBatch // the batch sink_state names as in flight (nil: none)
	// unrecorded holds the attempts of the batch just sent: they are recorded in the same
	// transaction that journals the next batch, or as soon as the loop has nothing to send at
	// once, so a busy sink pays one writer transaction per request.
	unrecorded  []*attemptRecord
	refreshedAt time.Time // when the report and gauges were last refreshed (refreshStatus)
	// report is the loop's status as of its last refresh, for Status calls that arrive
	// while it is busy; the only field other goroutines read.
	report atomic.Pointer[SinkStatus]

	paused        bool
	pausedReason  string
	backoffUntil  time.Time
	sinkErrors    int // consecutive sink-wide errors, for the back-off
	lastError     string
	lastErrorAt   time.Time
	lastSuccessAt time.Time
	lastPoll      time.Time
	// oldestStored is the receive time of the oldest stored row after high, as last read
	// for the lag (kept when a read fails).
	oldestStored time.Time

	replays     map[string]*replayProgress
	replayQueue []replayItem

	cmds chan func(ctx context.Context)
}

// pendingKey is one destination key with rows not yet done. Its rows go to the sink as one
// row (the latest), so a request never carries two rows for one key, and while the key waits
// for a retry its newer rows wait with it: order per key holds.
type pendingKey struct {
	key      string
	seqs     []int64 // ascending
	eventIDs map[int64]string
	replayOf map[int64]string // seq -> replay id, for replayed rows
	received time.Time        // oldest row's received_at
	attempts int
	first    time.Time
	next     time.Time // zero: due now
	job      string
	jobSeq   int64
	lastErr  string
	lastCode int
}

// rep is the row sent for key k: the latest when the sink coalesces rows of one destination
// key (it upserts current state), else the oldest (every row is sent, in order).
func (l *loop) rep(k *pendingKey) int64 {
	if l.opt.Coalesce {
		return k.seqs[len(k.seqs)-1]
	}
	return k.seqs[0]
}

type replayItem struct {
	id  string
	seq int64
}

// never is a wait long enough to mean "until something happens".
const never = 24 * time.Hour

// run is the loop's goroutine.
func (l *loop) run(ctx context.Context) {
	defer l.recordLeftovers()
	ticks := l.opt.Trigger.Ticks(ctx, l.e.now, l.e.after)
	for {
		stateSeq, watch := l.e.store.Watch()
		if l.opt.Trigger.Realtime {
			l.tickedUpTo = stateSeq
		}
		busy, wait := l.step(ctx)
		if ctx.Err() != nil {
			return
		}
		if !busy && len(l.unrecorded) > 0 {
			// Nothing more to send at once (idle, backing off, paused, rate-limited): record
			// the last attempts now rather than with the next batch, and try again in a
			// second if the store could not take them.
			if l.record(ctx, nil, nil) != nil && len(l.unrecorded) > 0 {
				wait = min(wait, time.Second)
			}
		}
		if busy {
			select {
			case f := <-l.cmds:
				// A command (status, history, pause) sees every attempt it can learn of
				// recorded.
				if len(l.unrecorded) > 0 {
					l.record(ctx, nil, nil)
				}
				f(ctx) // refreshes the status report
			default:
			}
			continue
		}
		l.refreshStatus(ctx) // what the loop leaves behind while it waits
		var wake <-chan struct{}
		if l.opt.Trigger.Realtime {
			wake = watch
		}
		select {
		case <-ctx.Done():
			return
		case f := <-l.cmds:
			f(ctx) // refreshes the status report
		case <-wake:
		case <-ticks:
			l.tickedUpTo = l.e.store.StateSeq()
		case <-l.e.after(min(wait, never)):
		}
	}
}

// step does one round of work: take in replays and new rows, send one batch of due keys.
// busy reports that more work is ready at once; otherwise wait says when the next is.
func (l *loop) step(ctx context.Context) (busy bool, wait time.Duration) {
	now := l.e.now()
	if l.paused {
		return false, never
	}
	if now.Before(l.backoffUntil) {
		return false, l.backoffUntil.Sub(now)
	}
	if len(l.keysWithJobs()) > 0 {
		// Polled outcomes are already applied to the keys: they join the unrecorded attempts
		// at once, so a failed read below cannot drop them while the cursor moves on.
		l.unrecorded = append(l.unrecorded, l.poll(ctx)...)
	}
	fresh := map[int64]*schemas.Row{}
	state := l.e.store.StateSeq() // what every row read in this step reflects at least
	highBefore := l.high
	more, err := l.intake(ctx, fresh)
	if err != nil {
		l.noteError(slog.LevelWarn, "delivery: reading rows failed; trying again in a second", err)
		return false, time.Second
	}
	due, following := l.dueKeys(now)
	if l.inflight != nil && l.high < l.inflightHigh {
		if l.high > highBefore {
			// The interrupted batch goes first: take in everything up to it before sending.
			l.record(ctx, nil, nil)
			return true, 0
		}
		l.inflight, l.inflightHigh = nil, 0 // it cannot be reached (too many keys pending): send as usual
	}
	if l.inflight != nil {
		// Everything up to the interrupted batch is taken in: send its rows first, alone.
		var again []*pendingKey
		for _, k := range l.keys {
			if l.inflight[l.rep(k)] && k.job == "" {
				again = append(again, k)
			}
		}
		sort.Slice(again, func(i, j int) bool { return again[i].seqs[0] < again[j].seqs[0] })
		l.inflight, l.inflightHigh = nil, 0
		if len(again) > 0 {
			due, following = again, nil
		}
	}
	if len(due) == 0 {
		l.record(ctx, nil, nil)
		return more, l.untilNextDue(now)
	}
	if w := l.limiter.wait(now); w > 0 {
		l.record(ctx, nil, nil)
		return false, w
	}
	if err := l.readDue(ctx, now, state, due, following, fresh); err != nil {
		l.noteError(slog.LevelWarn, "delivery: reading rows failed; trying again in a second", err)
		return false, time.Second
	}
	var keys []*pendingKey
	var batch []*schemas.Row
	for _, k := range due {
		if r := fresh[l.rep(k)]; r != nil {
			keys = append(keys, k)
			batch = append(batch, r)
		}
	}
	sent := l.send(ctx, keys, batch) // records l.unrecorded with the new batch's journal
	l.unrecorded = append(l.unrecorded, sent...)
	return true, 0
}

// recordLeftovers records the attempts still unrecorded when the loop stops, on a context
// of its own (the loop's is cancelled by then).
func (l *loop) recordLeftovers() {
	if len(l.unrecorded) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l.record(ctx, nil, nil)
}

// record persists the unrecorded attempts, recs and the cursor, with next (when not nil)
// journaled in the same transaction, and updates metrics and replay progress.
func (l *loop) record(ctx context.Context, recs []*attemptRecord, next *inflightBatch) error {
	recs = append(l.unrecorded, recs...)
	l.unrecorded = nil
	cursor := l.computeCursor()
	if err := l.persist(ctx, recs, cursor, next); err != nil {
		// The attempts are kept for the next record (a full write queue, a passing database
		// error): nothing more is sent until a record succeeds, since the next batch's
		// journal goes with it. When the loop is stopping (the transaction may still
		// commit) they are let go: their rows are above the stored cursor, so they go again
		// after the restart, which the sinks' idempotent writes absorb.
		if ctx.Err() == nil {
			l.unrecorded = recs
			l.noteError(slog.LevelWarn, "delivery: recording attempts failed; nothing more is sent until they are recorded", err, "attempts", len(recs))
		} else {
			l.noteError(slog.LevelWarn, "delivery: attempts not recorded at shutdown; their rows go again after the restart", err, "attempts", len(recs))
		}
		return err
	}
	for _, a := range recs {
		l.logDead(ctx, a)
	}
	l.cursor = cursor
	for seq := range l.resume {
		if seq <= cursor {
			delete(l.resume, seq)
		}
	}
	for _, a := range recs {
		for _, r := range a.rows {
			if r.replayID != "" && finalOutcome(r.outcome) {
				if p := l.replays[r.replayID]; p != nil {
					p.count(r.outcome)
				}
			}
		}
	}
	if l.e.now().Sub(l.refreshedAt) >= refreshEvery {
		l.refreshStatus(ctx)
	}
	return nil
}

// intake takes in queued replays and new rows from the store. more reports that new rows
// remain to be read.
func (l *loop) intake(ctx context.Context, fresh map[int64]*schemas.Row) (more bool, err error) {
	if len(l.replayQueue) > 0 {
		n := min(len(l.replayQueue), 1000)
		items := l.replayQueue[:n]
		seqs := make([]int64, n)
		ids := map[int64]string{}
		for i, it := range items {
			seqs[i] = it.seq
			ids[it.seq] = it.id
		}
		rows, err := l.readSeqs(ctx, seqs)
		if err != nil {
			return false, err
		}
		for i := range rows {
			l.add(&rows[i], ids[rows[i].Seq])
		}
		l.replayQueue = l.replayQueue[n:]
		more = len(l.replayQueue) > 0
	}
	// The interrupted batch was taken in before the crash, whatever the trigger: read up to
	// it, and no further until it is sent.
	upto := max(l.tickedUpTo, l.inflightHigh)
	if l.high >= upto || len(l.keys) >= maxPendingKeys {
		return more, nil
	}
	limit := max(l.opt.BatchRows*4, 256)
	window := min(upto, l.high+scanWindow)
	if l.inflightHigh > 0 {
		window = min(window, max(l.inflightHigh, l.high))
	}
	rows, err := l.readNew(ctx, l.high, window, limit)
	if err != nil {
		return more, err
	}
	for i := range rows {
		r := &rows[i]
		if info, ok := l.resume[r.Seq]; ok && finalOutcome(info.outcome) {
			continue
		}
		fresh[r.Seq] = r
		l.add(r, "")
	}
	if len(rows) == limit {
		l.high = rows[len(rows)-1].Seq
	} else {
		l.high = window
	}
	return more || l.high < upto, nil
}

// Bounds on how much one step takes in.
const (
	scanWindow     = 50000  // seqs examined per read of new rows
	maxPendingKeys = 100000 // beyond this, new rows wait in the store until keys clear
)

// add places a row under its destination key.
func (l *loop) add(r *schemas.Row, replayID string) {
	key := keyOf(r, l.keyCol)
	k := l.keys[key]
	if k == nil {
		k = &pendingKey{key: key, eventIDs: map[int64]string{}, received: r.ReceivedAt}
		if info, ok := l.resume[r.Seq]; ok && replayID == "" {
			// Attempted before a restart: keep its attempts and schedule.
			k.attempts, k.next, k.first, k.lastErr, k.lastCode = info.attempt, info.next, info.first, info.err, info.statusCd
			if info.outcome == rowAccepted {
				k.job, k.jobSeq = info.jobID, r.Seq
			}
		}
		l.keys[key] = k
	}
	if replayID != "" {
		// An operator asked for this row now: the key's retry wait no longer applies.
		if k.replayOf == nil {
			k.replayOf = map[int64]string{}
		}
		k.replayOf[r.Seq] = replayID
		if k.job == "" {
			k.next = time.Time{}
		}
	}
	if _, dup := k.eventIDs[r.Seq]; dup {
		return
	}
	k.eventIDs[r.Seq] = r.EventID
	i, _ := slices.BinarySearch(k.seqs, r.Seq)
	k.seqs = slices.Insert(k.seqs, i, r.Seq)
	if r.ReceivedAt.Before(k.received) {
		k.received = r.ReceivedAt
	}
}

// dueKeys returns up to BatchRows keys ready to send, oldest first, and the keys ready after
// them that the next few batches will take (read ahead by readDue).
func (l *loop) dueKeys(now time.Time) (due, following []*pendingKey) {
	for _, k := range l.keys {
		if k.job == "" && !k.next.After(now) {
			due = append(due, k)
		}
	}
	due = oldestKeys(due, l.opt.BatchRows*aheadBatches)
	if len(due) > l.opt.BatchRows {
		following = due[l.opt.BatchRows:] // oldestKeys kept aheadBatches batches at most
		due = due[:l.opt.BatchRows]
	}
	return due, following
}

// oldestKeys returns the m keys of keys with the lowest first seq, in that order: a bounded
// heap instead of sorting a backlog of thousands of keys for every batch.
func oldestKeys(keys []*pendingKey, m int) []*pendingKey {
	byFirst := func(a, b *pendingKey) int { return cmp.Compare(a.seqs[0], b.seqs[0]) }
	if len(keys) > m {
		h := make(keyHeap, 0, m)
		for _, k := range keys {
			switch {
			case len(h) < m:
				heap.Push(&h, k)
			case k.seqs[0] < h[0].seqs[0]:
				h[0] = k
				heap.Fix(&h, 0)
			}
		}
		keys = h
	}
	slices.SortFunc(keys, byFirst)
	return keys
}

// keyHeap is a max-heap of keys by first seq: its top is the newest of the oldest kept.
type keyHeap []*pendingKey

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return h[i].seqs[0] > h[j].seqs[0] }
func (h keyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyHeap) Push(x any)        { *h = append(*h, x.(*pendingKey)) }
func (h *keyHeap) Pop() any {
	old := *h
	k := old[len(old)-1]
	*h = old[:len(old)-1]
	return k
}

func (l *loop) untilNextDue(now time.Time) time.Duration {
	wait := time.Duration(never)
	for _, k := range l.keys {
		if k.job != "" {
			wait = min(wait, max(l.opt.PollInterval-now.Sub(l.lastPoll), 0))
			continue
		}
		wait = min(wait, max(k.next.Sub(now), 0))
	}
	return wait
}

func (l *loop) keysWithJobs() []*pendingKey {
	var out []*pendingKey
	for _, k := range l.keys {
		if k.job != "" {
			out = append(out, k)
		}
	}
	return out
}

// computeCursor returns the highest seq at or below which every row is done: just below the
// oldest pending row taken in from new rows (replayed rows lie behind the cursor already).
func (l *loop) computeCursor() int64 {
	c := l.high
	for _, k := range l.keys {
		for _, s := range k.seqs {
			if s > l.cursor && s-1 < c {
				c = s - 1
			}
		}
	}
	return max(c, l.cursor)
}

// BatchID derives a batch's id from the sink and its rows, so a re-send keeps it.
func BatchID(sink string, seqs []int64) string {
	h := sha256.New()
	h.Write([]byte(sink))
	var b [8]byte
	for _, s := range seqs {
		binary.BigEndian.PutUint64(b[:], uint64(s))
		h.Write(b[:])
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// send writes one batch (rows[i] is keys[i]'s latest row) and applies the outcome, splitting
// a batch the destination rejects as a whole to find the rows at fault.
func (l *loop) send(ctx context.Context, keys []*pendingKey, rows []*schemas.Row) []*attemptRecord {
	seqs := make([]int64, 0, len(rows))
	attempt := 1
	for _, k := range keys {
		attempt = max(attempt, k.attempts+1)
	}
	for _, r := range rows {
		seqs = append(seqs, r.Seq)
	}
	vals := make([]schemas.Row, len(rows))
	for i, r := range rows {
		vals[i] = *r
	}
	rec, err := schemas.BuildRecord(nil, l.sendSchema, vals)
	if err != nil {
		l.noteError(slog.LevelError, "delivery: building a batch failed", fmt.Errorf("delivery: %s: build batch: %w", l.name, err))
		l.backoffUntil = l.e.now().Add(time.Second) // not again at once: the rows have not changed
		return nil
	}
	defer rec.Release()
	b := &Batch{ID: BatchID(l.name, seqs), Attempt: attempt, Record: rec}
	// The batch is journaled (with the previous batch's attempts) before it is sent, so that
	// a crash before its attempt is recorded sends the same rows again as the same batch.
	if err := l.record(ctx, nil, &inflightBatch{id: b.ID, seqs: seqs}); err != nil {
		// Nothing is sent unjournaled; the store is failing, so wait before trying again.
		l.backoffUntil = l.e.now().Add(time.Second)
		return nil
	}
	started := l.e.now()
	l.limiter.take(started)
	wctx, cancel := context.WithTimeout(ctx, l.opt.Timeout)
	res, err := l.opt.Sink.Write(wctx, b)
	cancel()
	finished := l.e.now()
	l.m.batchSeconds.Observe(finished.Sub(started).Seconds())
	a := &attemptRecord{batchID: b.ID, attempt: attempt, started: started, finished: finished, replayID: l.batchReplay(keys)}

	var sinkErr *SinkError
	var rejected *BatchRejectedError
	switch {
	case ctx.Err() != nil:
		// Shutting down: the batch is neither delivered nor charged; it is sent again after
		// the restart.
		return nil
	case errors.As(err, &sinkErr):
		l.sinkDown(sinkErr, finished)
		a.outcome, a.statusCode, a.err = attemptSinkError, sinkErr.StatusCode, sinkErr.Error()
		if sinkErr.Pause {
			a.outcome = attemptPaused
		}
		for _, k := range keys {
			a.rows = append(a.rows, l.rowRec(k, l.rep(k), rowNotSent, k.attempts, sinkErr.StatusCode, sinkErr.Error()))
		}
		return []*attemptRecord{a}
	case errors.As(err, &rejected) && len(keys) > 1:
		half := len(keys) / 2
		a.outcome, a.statusCode, a.err = attemptSplit, rejected.StatusCode, rejected.Error()
		l.m.split.Inc()
		out := []*attemptRecord{a}
		out = append(out, l.send(ctx, keys[:half], rows[:half])...)
		return append(out, l.send(ctx, keys[half:], rows[half:])...)
	case errors.As(err, &rejected):
		res = &Result{Rows: []RowResult{{Seq: rows[0].Seq, Outcome: Failed, Reason: rejected.Reason, StatusCode: rejected.StatusCode}}}
	case err != nil:
		// The plugin crashed, timed out or failed the batch as a whole: nothing is known of
		// the rows, so all are retried; status shows the error.
		l.noteError(slog.LevelWarn, "delivery: write failed; its rows are retried", fmt.Errorf("delivery: %s: write: %w", l.name, err))
		res = &Result{}
		for _, s := range seqs {
			res.Rows = append(res.Rows, RowResult{Seq: s, Outcome: Retry, Reason: err.Error()})
		}
		a.err = err.Error()
	}
	l.sinkErrors = 0
	reported := map[int64]RowResult{}
	if res != nil {
		for _, rr := range res.Rows {
			reported[rr.Seq] = rr
		}
	}
	for _, k := range keys {
		rr, ok := reported[l.rep(k)]
		if !ok {
			rr = RowResult{Seq: l.rep(k), Outcome: Delivered}
		}
		l.apply(a, k, rr, k.attempts+1, finished)
	}
	a.outcome = batchOutcome(a, err)
	if a.outcome == attemptDelivered {
		l.lastSuccessAt = finished
	}
	return []*attemptRecord{a}
}

// apply records what happened to key k's row and updates the key.
func (l *loop) apply(a *attemptRecord, k *pendingKey, rr RowResult, attempt int, now time.Time) {
	if k.first.IsZero() {
		k.first = a.started
	}
	k.attempts = attempt
	rep := l.rep(k)
	switch rr.Outcome {
	case Delivered:
		a.rows = append(a.rows, l.rowRec(k, rep, rowDelivered, attempt, rr.StatusCode, ""))
		l.m.delivered.Inc()
		l.finish(a, k, rep, nil)
	case Accepted:
		k.job, k.jobSeq = rr.JobID, rep
		r := l.rowRec(k, rep, rowAccepted, attempt, rr.StatusCode, "")
		r.jobID = rr.JobID
		a.rows = append(a.rows, r)
	case Retry, Failed:
		if rr.StatusCode == 429 {
			l.m.throttled.Inc()
		}
		k.lastErr, k.lastCode = rr.Reason, rr.StatusCode
		next, give := time.Time{}, true
		if rr.Outcome == Retry {
			next, give = l.policy.next(attempt, k.first, now, rr.RetryAfter, l.rnd)
		}
		if !give {
			k.next = next
			r := l.rowRec(k, rep, rowRetry, attempt, rr.StatusCode, rr.Reason)
			r.next = next
			a.rows = append(a.rows, r)
			l.m.retried.Inc()
			return
		}
		r := l.rowRec(k, rep, rowDead, attempt, rr.StatusCode, rr.Reason)
		a.rows = append(a.rows, r)
		a.dead = append(a.dead, r)
		l.m.dead.Inc()
		l.finish(a, k, rep, &r)
	}
}

// finish ends rep's turn; dead is rep's record when it was dead-lettered. A coalescing sink's
// key is done with all its rows: the older ones are recorded as coalesced into rep when rep
// was delivered, and dead-lettered with it when it was not (what they carried never arrived).
// Otherwise rep leaves the key and the next row of the key, if any, is due with a fresh retry
// budget.
func (l *loop) finish(a *attemptRecord, k *pendingKey, rep int64, dead *rowRecord) {
	if l.opt.Coalesce {
		for _, s := range k.seqs {
			if s == rep {
				continue
			}
			if dead == nil {
				a.rows = append(a.rows, l.rowRec(k, s, rowCoalesced, k.attempts, 0, ""))
				continue
			}
			r := l.rowRec(k, s, rowDead, k.attempts, dead.statusCode, fmt.Sprintf("sent as seq %d, its key's latest row, which was dead-lettered: %s", rep, dead.err))
			a.rows = append(a.rows, r)
			a.dead = append(a.dead, r)
			l.m.dead.Inc()
		}
		delete(l.keys, k.key)
		return
	}
	k.seqs = slices.DeleteFunc(k.seqs, func(s int64) bool { return s == rep })
	delete(k.eventIDs, rep)
	if len(k.seqs) == 0 {
		delete(l.keys, k.key)
		return
	}
	k.attempts, k.first, k.next, k.lastErr, k.lastCode = 0, time.Time{}, time.Time{}, "", 0
}

func (l *loop) rowRec(k *pendingKey, seq int64, outcome string, attempt, code int, errText string) rowRecord {
	return rowRecord{seq: seq, eventID: k.eventIDs[seq], attempt: attempt, outcome: outcome, statusCode: code, err: errText, first: k.first, replayID: k.replayOf[seq]}
}

// batchReplay names the replay an attempt belongs to: the first replay with a row the batch
// carries (sent, or coalesced into the row sent). A replayed row goes out in whatever batch
// is due next, beside live rows of other keys, so the attempt counts as the replay's as soon
// as it carries one of its rows.
func (l *loop) batchReplay(keys []*pendingKey) string {
	for _, k := range keys {
		carried := k.seqs // coalesced into the row sent
		if !l.opt.Coalesce {
			carried = []int64{l.rep(k)} // the rest wait behind it
		}
		for _, seq := range carried {
			if r := k.replayOf[seq]; r != "" {
				return r
			}
		}
	}
	return ""
}

func batchOutcome(a *attemptRecord, err error) string {
	d, r, f := a.counts()
	switch {
	case err != nil && d == 0:
		return attemptError
	case r == 0 && f == 0:
		return attemptDelivered
	case d == 0 && f == 0:
		return attemptRetry
	case d == 0 && r == 0:
		return attemptFailed
	}
	return attemptPartial
}

// sinkDown backs the whole sink off (or pauses it) after a sink-wide error, and logs the
// error once: at WARN when the sink backs off and tries again by itself, at ERROR when it is
// paused until an operator resumes it.
func (l *loop) sinkDown(err *SinkError, now time.Time) {
	if err.StatusCode == 429 {
		l.m.throttled.Inc()
	}
	if err.Pause {
		l.paused, l.pausedReason = true, err.Error()
		l.noteError(slog.LevelError, "delivery: sink paused until resumed", err)
		if perr := l.persistPause(context.Background(), true, l.pausedReason); perr != nil {
			l.noteError(slog.LevelError, "delivery: recording the pause failed; it lasts until a restart", perr)
		}
		return
	}
	l.sinkErrors++
	wait := err.RetryAfter
	if wait <= 0 {
		wait = min(time.Second<<min(l.sinkErrors-1, 9), 5*time.Minute)
	}
	l.backoffUntil = now.Add(wait)
	l.noteError(slog.LevelWarn, "delivery: sink unavailable; backing off", err, "for", wait)
}

// noteError makes err the sink's last error, which status shows, and logs it once as msg: at
// slog.LevelWarn when the loop tries again by itself (a back-off, the next poll, the next
// step), at slog.LevelError when it does not (the sink is paused, or trying again cannot help).
func (l *loop) noteError(level slog.Level, msg string, err error, attrs ...any) {
	l.lastError, l.lastErrorAt = err.Error(), l.e.now()
	l.e.log.Log(context.Background(), level, msg, append([]any{"sink", l.name, "err", err}, attrs...)...)
}

// logDead logs, once per attempt, the rows the attempt dead-lettered: how many, and the first
// one's seq, event id and error (nothing of the row's contents, which hold personal data).
func (l *loop) logDead(ctx context.Context, a *attemptRecord) {
	if len(a.dead) == 0 {
		return
	}
	first := a.dead[0]
	attrs := []any{"sink", l.name, "rows", len(a.dead), "first_seq", first.seq, "first_event_id", first.eventID, "attempt", first.attempt}
	if first.statusCode != 0 {
		attrs = append(attrs, "status", first.statusCode)
	}
	if first.replayID != "" {
		attrs = append(attrs, "replay", first.replayID)
	}
	l.e.log.WarnContext(ctx, "delivery: rows dead-lettered", append(attrs, "err", first.err)...)
}

// poll asks an asynchronous sink about its accepted rows.
func (l *loop) poll(ctx context.Context) []*attemptRecord {
	poller, ok := l.opt.Sink.(Poller)
	now := l.e.now()
	if !ok || now.Sub(l.lastPoll) < l.opt.PollInterval {
		return nil
	}
	l.lastPoll = now
	keys := l.keysWithJobs()
	jobs := make([]Job, len(keys))
	bySeq := map[int64]*pendingKey{}
	for i, k := range keys {
		jobs[i] = Job{Seq: k.jobSeq, JobID: k.job}
		bySeq[k.jobSeq] = k
	}
	wctx, cancel := context.WithTimeout(ctx, l.opt.Timeout)
	results, err := poller.Poll(wctx, jobs)
	cancel()
	if err != nil {
		l.noteError(slog.LevelWarn, "delivery: polling jobs failed; they are polled again later", fmt.Errorf("delivery: %s: poll jobs: %w", l.name, err))
		return nil
	}
	if len(results) == 0 {
		return nil
	}
	a := &attemptRecord{batchID: "poll", started: now, finished: l.e.now()}
	for _, rr := range results {
		k := bySeq[rr.Seq]
		if k == nil || k.jobSeq != rr.Seq {
			continue
		}
		job := k.job
		k.job = ""
		before := len(a.rows)
		l.apply(a, k, rr, k.attempts, a.finished)
		for i := before; i < len(a.rows); i++ {
			a.rows[i].jobID = job
		}
	}
	a.outcome = batchOutcome(a, nil)
	return []*attemptRecord{a}
}
