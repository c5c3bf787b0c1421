// Package store keeps hookbridge's state in one DuckDB file: the events table in the
// normalised schema, rejected bodies, current subscription state, and (through state
// operations other packages submit) delivery records and cursors.
//
// One writer goroutine owns every write. It batches whatever arrived while the previous commit
// ran (group commit), assigns seq in commit order, and answers each waiting request only after
// the transaction holding it is committed, so an acknowledged event is durable. Readers use
// other connections of the same database and never see seq n+1 before n.
//
// This is the only package that imports the DuckDB driver.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/duckdb/duckdb-go/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookbridge/hookbridge/schemas"
)

// Options configure a Store. Zero values take the defaults named on each field.
type Options struct {
	// Path is the DuckDB file. Required.
	Path string
	// ReadOnly opens the file for reading only (no writer, no migrations).
	ReadOnly bool
	// QueueEvents bounds how many requests may wait for the writer (default 8192).
	QueueEvents int
	// QueueBytes bounds the bodies waiting for the writer (default 64 MiB).
	QueueBytes int64
	// MaxGroup bounds how many requests one commit holds (default 2048). 1 commits every
	// request in its own transaction (the benchmark's baseline).
	MaxGroup int
	// GroupWait is how long the writer waits for more requests to join a group that is not
	// full before it commits (default 0: none). At a steady 1,000 events/s a 2 ms wait
	// halves the commits and cuts the server's CPU by a quarter, for at most 2 ms more per
	// acknowledgement.
	GroupWait time.Duration
	// MemoryLimit is DuckDB's memory_limit, e.g. "1GB" (default: DuckDB's, 80% of RAM; the
	// server's configuration sets a quarter of it).
	MemoryLimit string
	// Threads is DuckDB's thread count (default 2).
	Threads int
	// CheckpointIdleWAL: when the writer is idle and the WAL is larger, it checkpoints
	// (default 16 MiB).
	CheckpointIdleWAL int64
	// CheckpointMaxWAL: the writer checkpoints even under load once the WAL is larger
	// (default 256 MiB). DuckDB's own automatic checkpoint is set above this, so checkpoints
	// happen only where the writer chooses.
	CheckpointMaxWAL int64
	// Logger receives the store's logs (default slog.Default()).
	Logger *slog.Logger
	// Registerer receives the store's metrics (default: none).
	Registerer prometheus.Registerer
	// AllowedDirectories are the only host folders SQL may read or write once external
	// access is locked down (export and snapshot folders).
	AllowedDirectories []string
	// AnalyticsZone is the IANA time zone of the weekday-and-hour view; empty keeps the one the
	// file has (UTC for a new file).
	AnalyticsZone string
	// AnalyticsRefresh is how often, at most, the idle writer folds subscription changes into
	// the kept mailing-list and tag-popularity tables (default 10 s; see analytics_cache.go).
	AnalyticsRefresh time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.QueueEvents <= 0 {
		o.QueueEvents = 8192
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 64 << 20
	}
	if o.MaxGroup <= 0 {
		o.MaxGroup = 2048
	}
	if o.Threads <= 0 {
		o.Threads = 2
	}
	if o.CheckpointIdleWAL <= 0 {
		o.CheckpointIdleWAL = 16 << 20
	}
	if o.CheckpointMaxWAL <= 0 {
		o.CheckpointMaxWAL = 256 << 20
	}
	if o.AnalyticsRefresh <= 0 {
		o.AnalyticsRefresh = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Errors the store returns to callers that must answer a client. Both carry a RetryAfter
// hint, so an HTTP layer can answer 503 with Retry-After without importing this package.
var (
	// ErrQueueFull: the write queue is at its bound; try again shortly.
	ErrQueueFull error = &retryError{"store: write queue full", time.Second}
	// ErrUnavailable: the database cannot take writes (full disk, fatal database error, or
	// shutting down).
	ErrUnavailable error = &retryError{"store: unavailable", 30 * time.Second}
)

type retryError struct {
	msg   string
	after time.Duration
}

func (e *retryError) Error() string { return e.msg }

// RetryAfter says how long a client should wait before trying again.
func (e *retryError) RetryAfter() time.Duration { return e.after }

// Store is an open DuckDB file.
type Store struct {
	opts    Options
	db      *sql.DB
	log     *slog.Logger
	metrics *metrics

	// writer state
	queue      chan *request
	queueBytes atomic.Int64
	closing    chan struct{}
	writerDone chan struct{}
	closeOnce  sync.Once
	wconn      *sql.Conn
	nextSeq    int64
	seen       *idFilter
	subsSeen   *idFilter              // writer-only: subscription ids in the subscriptions table
	builder    *schemas.Builder       // writer-only: events of the group being committed
	appenders  map[string]appenderFor // writer-only: Appenders open on wconn, by table
	groupFresh []*schemas.Row         // writer-only: events the group being committed stores
	pending    pendingState           // writer-only: committed changes not yet in subscriptions
	committed  int64                  // writer-only: highest committed seq
	lastCommit atomic.Int64           // the same, for readers
	bulk       atomic.Int32           // bulk loads under way (BeginBulk)

	analyticsBehind    int         // writer-only: subscription changes merged since the kept analytics tables were refreshed
	analyticsRefreshed time.Time   // writer-only: when a refresh last started
	analyticsGen       int64       // writer-only: bumped when the kept tables are rebuilt, so a refresh computed before is dropped
	analyticsRunning   atomic.Bool // a refresh is under way

	// work the writer starts in goroutines (analytics refreshes); Close waits for it
	background sync.WaitGroup

	health atomic.Pointer[error] // non-nil when writes fail fatally

	watchMu sync.Mutex
	lastSeq int64
	watchCh chan struct{}
}

// Open opens (creating if needed) the DuckDB file, applies migrations and starts the writer.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts.defaults()
	if opts.Path == "" {
		return nil, errors.New("store: no database path")
	}
	if !opts.ReadOnly {
		if dir := filepath.Dir(opts.Path); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("store: create %s: %w", dir, err)
			}
		}
		if _, err := os.Stat(opts.Path); errors.Is(err, fs.ErrNotExist) {
			// Said aloud: a mistyped path starts an empty store without any other sign.
			opts.Logger.Info("store: no data file at this path; creating a new, empty one", "path", opts.Path)
		}
	}
	s := &Store{
		opts:       opts,
		log:        opts.Logger,
		metrics:    newMetrics(opts.Registerer),
		queue:      make(chan *request, opts.QueueEvents),
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
		watchCh:    make(chan struct{}),
	}
	c, err := duckdb.NewConnector(s.dsn(), nil)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", opts.Path, explainOpenError(err))
	}
	s.db = sql.OpenDB(c)
	if opts.ReadOnly {
		close(s.writerDone)
		if err := s.lockDown(ctx); err != nil {
			s.db.Close()
			return nil, err
		}
		return s, nil
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	if err := s.setAnalyticsZone(ctx, opts.AnalyticsZone); err != nil {
		s.db.Close()
		return nil, err
	}
	if err := s.refreshViews(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	if err := s.lockDown(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	if s.wconn, err = s.db.Conn(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("store: writer connection: %w", err)
	}
	if err := s.loadWriterState(ctx); err != nil {
		s.wconn.Close()
		s.db.Close()
		return nil, err
	}
	go s.writeLoop()
	return s, nil
}

func (s *Store) dsn() string {
	q := []string{fmt.Sprintf("threads=%d", s.opts.Threads)}
	if s.opts.MemoryLimit != "" {
		q = append(q, "memory_limit="+s.opts.MemoryLimit)
	}
	if s.opts.ReadOnly {
		q = append(q, "access_mode=READ_ONLY")
	} else {
		// Checkpoints happen where the writer chooses (see maybeCheckpoint), never in the
		// middle of a commit.
		q = append(q, fmt.Sprintf("checkpoint_threshold=%dMB", 2*s.opts.CheckpointMaxWAL>>20))
	}
	return s.opts.Path + "?" + strings.Join(q, "&")
}

// ErrLocked is returned by Open when another process holds the file (a running server).
var ErrLocked = errors.New("another process, probably a running 'hookbridge serve', holds the file; go through its admin API or stop it")

// explainOpenError turns DuckDB's lock error into ErrLocked, keeping its text.
func explainOpenError(err error) error {
	if strings.Contains(err.Error(), "Could not set lock") || strings.Contains(err.Error(), "Conflicting lock") {
		return fmt.Errorf("%w (%w)", err, ErrLocked)
	}
	return err
}

// lockDown disables SQL access to the host's files except AllowedDirectories, then locks the
// configuration, so no query (admin API included) can read or write host files, attach
// databases or change settings.
func (s *Store) lockDown(ctx context.Context) error {
	var stmts []string
	if len(s.opts.AllowedDirectories) > 0 {
		quoted := make([]string, len(s.opts.AllowedDirectories))
		for i, d := range s.opts.AllowedDirectories {
			abs, err := filepath.Abs(d)
			if err != nil {
				return fmt.Errorf("store: allowed directory %s: %w", d, err)
			}
			quoted[i] = "'" + strings.ReplaceAll(abs+string(filepath.Separator), "'", "''") + "'"
		}
		stmts = append(stmts, "SET allowed_directories = ["+strings.Join(quoted, ", ")+"]")
	}
	stmts = append(stmts, "SET enable_external_access = false", "SET autoinstall_known_extensions = false", "SET autoload_known_extensions = false", "SET lock_configuration = true")
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("store: %s: %w", q, err)
		}
	}
	return nil
}

// DB returns the database for read-only use by other packages (queries, delivery reads).
// Writes must go through the writer (Apply).
func (s *Store) DB() *sql.DB { return s.db }

// RawConn runs fn on a dedicated reader connection with the DuckDB driver connection, for
// Arrow reads.
func (s *Store) RawConn(ctx context.Context, fn func(driver.Conn) error) error {
	fnFailed := false
	err := s.rawConn(ctx, func(c driver.Conn) error {
		err := fn(c)
		fnFailed = err != nil
		return err
	})
	if err != nil && !fnFailed {
		return fmt.Errorf("store: %w", err) // fn's own errors are the caller's to prefix
	}
	return err
}

// rawConn is RawConn for the store's own methods, which give their errors the package's
// prefix themselves.
func (s *Store) rawConn(ctx context.Context, fn func(driver.Conn) error) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("reader connection: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error { return fn(dc.(driver.Conn)) })
}

// Ready returns nil when the store accepts writes, else why not.
func (s *Store) Ready() error {
	select {
	case <-s.closing:
		return fmt.Errorf("%w: shutting down", ErrUnavailable)
	default:
	}
	if s.opts.ReadOnly {
		return fmt.Errorf("%w: opened read-only", ErrUnavailable)
	}
	if err := s.Fatal(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// Fatal returns the error that left the database unable to take writes (a full disk, a fatal
// database error), or nil. Such a store answers ErrUnavailable until the process restarts.
// Its message names the data file by its base name only, since it may reach a public answer.
func (s *Store) Fatal() error {
	p := s.health.Load()
	if p == nil {
		return nil
	}
	msg := (*p).Error()
	dirs := []string{filepath.Dir(s.opts.Path)}
	if abs, err := filepath.Abs(dirs[0]); err == nil {
		dirs = append([]string{abs}, dirs...) // the longer first
	}
	for _, d := range dirs {
		if d != "." {
			msg = strings.ReplaceAll(msg, d+string(filepath.Separator), "")
		}
	}
	return fmt.Errorf("the database cannot take writes until hookbridge restarts: %s", msg)
}

// Watch returns the highest seq whose event is committed and whose subscription state is
// merged (see StateSeq), and a channel closed when it next grows, for loops that wake on new
// rows.
func (s *Store) Watch() (int64, <-chan struct{}) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	return s.lastSeq, s.watchCh
}

// StateSeq returns the highest seq up to which events are committed and merged into the
// subscriptions table. Readers that join events with subscription state read up to it.
func (s *Store) StateSeq() int64 {
	seq, _ := s.Watch()
	return seq
}

// CommittedSeq returns the highest seq whose event is committed (its subscription state may
// still be merging; see StateSeq).
func (s *Store) CommittedSeq() int64 { return s.lastCommit.Load() }

// WaitState blocks until StateSeq reaches seq (or ctx ends).
func (s *Store) WaitState(ctx context.Context, seq int64) error {
	for {
		cur, ch := s.Watch()
		if cur >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Store) notify(seq int64) {
	s.watchMu.Lock()
	if seq <= s.lastSeq {
		s.watchMu.Unlock()
		return
	}
	s.lastSeq = seq
	close(s.watchCh)
	s.watchCh = make(chan struct{})
	s.watchMu.Unlock()
}

// Close stops taking requests, commits everything already queued, checkpoints, and closes the
// file. It is safe to call more than once.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closing)
		<-s.writerDone
		// After the writer, the only one to start them, has stopped. A refresh is let finish
		// rather than interrupted: a DuckDB query interrupted as the store closed sometimes
		// kept the database from closing, and the next Open of the file waited for ever.
		s.background.Wait()
		s.closeAppenders()
		if s.wconn != nil {
			if _, cerr := s.wconn.ExecContext(context.Background(), "CHECKPOINT"); cerr != nil && s.health.Load() == nil {
				s.log.Warn("store: checkpoint at close", "err", cerr)
			}
			s.wconn.Close()
		}
		// Closing the sql.DB also closes the DuckDB connector, releasing the file lock.
		if cerr := s.db.Close(); cerr != nil {
			err = fmt.Errorf("store: close: %w", cerr)
		}
	})
	return err
}

// loadWriterState reads what the writer needs to continue: the next seq, the ids already
// stored (into the duplicate filter), and the events whose subscription changes a crash kept
// from being merged.
func (s *Store) loadWriterState(ctx context.Context) error {
	var maxSeq, count, merged int64
	if err := s.db.QueryRowContext(ctx, "SELECT coalesce(max(seq), 0), count(*) FROM events").Scan(&maxSeq, &count); err != nil {
		return fmt.Errorf("store: read last seq: %w", err)
	}
	if err := s.db.QueryRowContext(ctx, "SELECT value FROM store_state WHERE key = 'merged_seq'").Scan(&merged); err != nil {
		return fmt.Errorf("store: read merged seq: %w", err)
	}
	s.nextSeq = maxSeq + 1
	s.committed = maxSeq
	s.lastCommit.Store(maxSeq)
	start := time.Now()
	seen, err := loadIDFilter(ctx, s.db, int(count), "SELECT event_id FROM events")
	if err != nil {
		return fmt.Errorf("store: load event ids: %w", err)
	}
	s.seen = seen
	if err := s.loadSubscriptionIDs(ctx); err != nil {
		return err
	}
	b, err := schemas.NewBuilder(memory.NewGoAllocator(), schemas.Schema())
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	b.ReuseCapacity() // commit groups come in similar sizes
	s.builder = b
	s.lastSeq = merged
	if merged < maxSeq {
		unmerged, err := s.readRows(ctx, "SELECT * FROM events WHERE seq > ? ORDER BY seq", merged)
		if err != nil {
			return fmt.Errorf("store: read unmerged events: %w", err)
		}
		ptrs := make([]*schemas.Row, len(unmerged))
		for i := range unmerged {
			ptrs[i] = &unmerged[i]
		}
		s.pending.fold(ptrs, s.opts.Now())
		if err := s.flushState(ctx); err != nil {
			return err
		}
		s.log.Info("store: merged subscription changes left over from the last run", "events", len(unmerged))
	}
	// Changes merged before a restart but not yet in the kept analytics tables.
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM subscriptions WHERE last_seq > "+analyticsSeq).Scan(&s.analyticsBehind); err != nil {
		return fmt.Errorf("store: count changes since the kept analytics tables: %w", err)
	}
	s.lastSeq = maxSeq
	s.log.Info("store: opened", "path", s.opts.Path, "events", count, "next_seq", s.nextSeq, "load_ids", time.Since(start).Round(time.Millisecond))
	return nil
}

// ReadRows runs a query over events (or any query whose columns are normalised columns) and
// returns the rows, read through Arrow.
func (s *Store) ReadRows(ctx context.Context, query string, args ...any) ([]schemas.Row, error) {
	rows, err := s.readRows(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: read rows: %w", err)
	}
	return rows, nil
}

// readRows is ReadRows without the package's prefix on its errors.
func (s *Store) readRows(ctx context.Context, query string, args ...any) ([]schemas.Row, error) {
	var out []schemas.Row
	err := s.rawConn(ctx, func(c driver.Conn) error {
		ar, err := duckdb.NewArrowFromConn(c)
		if err != nil {
			return err
		}
		rdr, err := ar.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rdr.Release()
		for rdr.Next() {
			rows, err := schemas.RowsFromRecord(rdr.RecordBatch())
			if err != nil {
				return err
			}
			out = append(out, rows...)
		}
		return rdr.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
