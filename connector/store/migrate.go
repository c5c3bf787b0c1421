package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/hookbridge/hookbridge/schemas"
)

// migration is one numbered schema change. Applied versions are recorded in
// schema_migrations; a migration never changes once released.
type migration struct {
	version int
	name    string
	up      func(ctx context.Context, tx *sql.Tx) error
}

func migrations() []migration {
	return []migration{
		{1, "events, rejected, subscriptions", migrateBase},
		{2, "delivery: sink state, attempts, row outcomes, dead letters, replays", migrateDelivery},
		{3, "analytics views and time zone offsets", migrateAnalytics},
		{4, "delivery: the batch each sink has in flight", migrateInflight},
		{5, "delivery: the batch in flight kept beside the sink's cursor", migrateInflightIntoSinkState},
		{6, "analytics: kept mailing list and tag popularity tables", migrateAnalyticsCache},
		{7, "subscriptions refolded (a Subscribe fills in, consent_seq, keys of valid addresses only); kept tables rebuilt", refoldSubscriptions},
	}
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)`); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	applied := map[int]bool{}
	rows, err := s.db.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("store: migrate: %w", err)
		}
		applied[v] = true
	}
	rows.Close()
	for _, m := range migrations() {
		if applied[m.version] {
			continue
		}
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("store: migration %d: %w", m.version, err)
		}
		if err := m.up(ctx, tx); err != nil {
			tx.Rollback()
			return fmt.Errorf("store: migration %d (%s): %w", m.version, m.name, err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations VALUES (?, ?, now())", m.version, m.name); err != nil {
			tx.Rollback()
			return fmt.Errorf("store: migration %d: %w", m.version, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("store: migration %d: %w", m.version, err)
		}
		s.log.Info("store: applied migration", "version", m.version, "name", m.name)
	}
	if err := s.addNewColumns(ctx); err != nil {
		return err
	}
	// A crash between registering an ingest view and dropping it cannot leave one behind
	// (both happen inside the commit's transaction), but a file written by an older build
	// might: querying such a view would crash the process.
	if _, err := s.db.ExecContext(ctx, "DROP VIEW IF EXISTS "+ingestView); err != nil {
		return fmt.Errorf("store: drop stale view: %w", err)
	}
	return nil
}

// addNewColumns adds the normalised columns a newer schemas version introduced. Later schema
// versions only add nullable columns, so this is the only change events ever needs.
func (s *Store) addNewColumns(ctx context.Context) error {
	have := map[string]bool{}
	rows, err := s.db.QueryContext(ctx, "SELECT column_name FROM duckdb_columns() WHERE table_name = 'events' AND schema_name = 'main'")
	if err != nil {
		return fmt.Errorf("store: read events columns: %w", err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return fmt.Errorf("store: read events columns: %w", err)
		}
		have[n] = true
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return fmt.Errorf("store: read events columns: %w", err)
	}
	for _, f := range schemas.Schema().Fields() {
		if have[f.Name] {
			continue
		}
		q := fmt.Sprintf("ALTER TABLE events ADD COLUMN %s %s", f.Name, duckType(f.Type))
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("store: %s: %w", q, err)
		}
		s.log.Info("store: added column", "table", "events", "column", f.Name)
	}
	return nil
}

func migrateBase(ctx context.Context, tx *sql.Tx) error {
	stmts := []string{
		eventsDDL(),
		`CREATE TABLE store_state (key VARCHAR PRIMARY KEY, value BIGINT NOT NULL)`,
		`INSERT INTO store_state VALUES ('merged_seq', 0)`,
		`CREATE SEQUENCE rejected_id START 1`,
		`CREATE TABLE rejected (
			id BIGINT PRIMARY KEY DEFAULT nextval('rejected_id'),
			source VARCHAR NOT NULL,
			received_at TIMESTAMPTZ NOT NULL,
			status INTEGER NOT NULL,
			reason VARCHAR NOT NULL,
			detail VARCHAR,
			event_id VARCHAR,
			content_type VARCHAR,
			user_agent VARCHAR,
			remote_addr VARCHAR,
			body_size BIGINT NOT NULL,
			body BLOB
		)`,
		`CREATE TABLE subscriptions (
			subscription_id VARCHAR PRIMARY KEY,
			status VARCHAR NOT NULL,
			account_id VARCHAR,
			account_code VARCHAR,
			calendar_id VARCHAR,
			calendar_code VARCHAR,
			calendar_title VARCHAR,
			subscription_method VARCHAR,
			tag_ids VARCHAR[],
			tag_names VARCHAR[],
			email VARCHAR,
			email_key VARCHAR,
			first_name VARCHAR,
			last_name VARCHAR,
			phone VARCHAR,
			postcode VARCHAR,
			country_code VARCHAR,
			marketing_consent BOOLEAN,
			subscribed_at TIMESTAMPTZ,
			unsubscribed_at TIMESTAMPTZ,
			unsubscribe_reason VARCHAR,
			first_seen_at TIMESTAMPTZ NOT NULL,
			last_seen_at TIMESTAMPTZ NOT NULL,
			first_seq BIGINT NOT NULL,
			last_seq BIGINT NOT NULL,
			last_event_type VARCHAR NOT NULL,
			events INTEGER NOT NULL
		)`,
	}
	return execAll(ctx, tx, stmts...)
}

// execer runs a statement: a transaction or the database.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// execAll runs stmts in order, naming the first one that fails by its first line.
func execAll(ctx context.Context, ex execer, stmts ...string) error {
	for _, q := range stmts {
		if _, err := ex.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", firstLine(q), err)
		}
	}
	return nil
}

// migrateInflight adds the journal of the batch each sink is sending: written before the
// request, removed with its attempt record, so after a crash the same rows go again as the
// same batch (same id).
func migrateInflight(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `CREATE TABLE delivery_inflight (
		sink VARCHAR PRIMARY KEY,
		batch_id VARCHAR NOT NULL,
		seqs VARCHAR NOT NULL,
		started_at TIMESTAMPTZ NOT NULL
	)`)
	return err
}

// migrateInflightIntoSinkState moves the in-flight batch into sink_state, so that a busy sink
// journals its next batch and advances its cursor in one UPDATE of one row.
func migrateInflightIntoSinkState(ctx context.Context, tx *sql.Tx) error {
	stmts := []string{
		`ALTER TABLE sink_state ADD COLUMN inflight_batch VARCHAR`,
		`ALTER TABLE sink_state ADD COLUMN inflight_seqs VARCHAR`,
		`ALTER TABLE sink_state ADD COLUMN inflight_at TIMESTAMPTZ`,
		`UPDATE sink_state SET inflight_batch = d.batch_id, inflight_seqs = d.seqs, inflight_at = d.started_at
			FROM delivery_inflight d WHERE d.sink = sink_state.sink`,
		`DROP TABLE delivery_inflight`,
	}
	return execAll(ctx, tx, stmts...)
}

// migrateDelivery adds the delivery engine's tables. Row outcomes and dead letters are
// append-only (DuckDB handles high-rate updates badly); sink_state and replays change once
// per batch or per request.
func migrateDelivery(ctx context.Context, tx *sql.Tx) error {
	stmts := []string{
		`CREATE TABLE sink_state (
			sink VARCHAR PRIMARY KEY,
			cursor_seq BIGINT NOT NULL,
			paused BOOLEAN NOT NULL DEFAULT false,
			paused_reason VARCHAR,
			paused_at TIMESTAMPTZ,
			created_at TIMESTAMPTZ NOT NULL,
			updated_at TIMESTAMPTZ NOT NULL
		)`,
		`CREATE SEQUENCE delivery_id START 1`,
		`CREATE TABLE deliveries (
			id BIGINT PRIMARY KEY,
			sink VARCHAR NOT NULL,
			batch_id VARCHAR NOT NULL,
			attempt INTEGER NOT NULL,
			rows INTEGER NOT NULL,
			started_at TIMESTAMPTZ NOT NULL,
			finished_at TIMESTAMPTZ NOT NULL,
			outcome VARCHAR NOT NULL,
			status_code INTEGER,
			error VARCHAR,
			delivered INTEGER NOT NULL,
			retried INTEGER NOT NULL,
			failed INTEGER NOT NULL,
			replay_id VARCHAR
		)`,
		`CREATE TABLE delivery_rows (
			delivery_id BIGINT NOT NULL,
			sink VARCHAR NOT NULL,
			seq BIGINT NOT NULL,
			event_id VARCHAR NOT NULL,
			attempt INTEGER NOT NULL,
			outcome VARCHAR NOT NULL,
			status_code INTEGER,
			error VARCHAR,
			next_attempt_at TIMESTAMPTZ,
			first_attempt_at TIMESTAMPTZ,
			job_id VARCHAR,
			replay_id VARCHAR,
			recorded_at TIMESTAMPTZ NOT NULL
		)`,
		`CREATE TABLE dead_letters (
			sink VARCHAR NOT NULL,
			seq BIGINT NOT NULL,
			event_id VARCHAR NOT NULL,
			attempts INTEGER NOT NULL,
			first_attempt_at TIMESTAMPTZ,
			last_attempt_at TIMESTAMPTZ NOT NULL,
			status_code INTEGER,
			error VARCHAR NOT NULL,
			delivery_id BIGINT NOT NULL,
			dead_at TIMESTAMPTZ NOT NULL
		)`,
		`CREATE TABLE replays (
			id VARCHAR PRIMARY KEY,
			sink VARCHAR NOT NULL,
			requested_at TIMESTAMPTZ NOT NULL,
			description VARCHAR NOT NULL,
			seqs BIGINT[] NOT NULL
		)`,
	}
	return execAll(ctx, tx, stmts...)
}

// eventsDDL derives the events table from the normalised Arrow schema, so the two cannot
// drift apart.
func eventsDDL() string {
	var cols []string
	for _, f := range schemas.Schema().Fields() {
		def := f.Name + " " + duckType(f.Type)
		switch {
		case f.Name == "event_id":
			def += " PRIMARY KEY"
		case !f.Nullable:
			def += " NOT NULL"
		}
		cols = append(cols, def)
	}
	return "CREATE TABLE events (\n\t" + strings.Join(cols, ",\n\t") + "\n)"
}

// duckType is the DuckDB type an Arrow column of the normalised schema is stored as. The raw
// body is a BLOB: VARCHAR and JSON validate their input and would refuse recovered or
// non-UTF-8 bodies.
func duckType(t arrow.DataType) string {
	switch t := t.(type) {
	case *arrow.Int64Type:
		return "BIGINT"
	case *arrow.StringType:
		return "VARCHAR"
	case *arrow.BinaryType:
		return "BLOB"
	case *arrow.BooleanType:
		return "BOOLEAN"
	case *arrow.TimestampType:
		if t.TimeZone != "" {
			return "TIMESTAMPTZ"
		}
		return "TIMESTAMP"
	case *arrow.ListType:
		return duckType(t.Elem()) + "[]"
	}
	panic(fmt.Sprintf("store: no DuckDB type for Arrow %s", t))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}
