// Package postgres is the warehouse sink: it loads every event into a PostgreSQL table and
// keeps a table of current subscriptions beside it, for analysts who live in their warehouse.
//
// Each batch is one transaction: the rows are COPYed (pgx, binary protocol) into a temporary
// staging table, then upserted by key (events by event_id, subscriptions by subscription_id),
// so a re-sent batch changes nothing. The sink creates its schema and tables when they are
// missing and adds columns when the normalised schema gains one.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/schemas"
)

// Version is the sink's version.
const Version = "1.0.0"

// Settings are the sink's settings.
type Settings struct {
	// DSN is the PostgreSQL connection string (URL or key=value form).
	DSN string `json:"dsn"`
	// Schema holds the sink's tables (default hookbridge); created when missing.
	Schema string `json:"schema,omitempty"`
	// EventsTable and SubscriptionsTable name the tables (default events, subscriptions).
	EventsTable        string `json:"events_table,omitempty"`
	SubscriptionsTable string `json:"subscriptions_table,omitempty"`
	// ConnectTimeout bounds connecting (Go duration, default 10s).
	ConnectTimeout string `json:"connect_timeout,omitempty"`
}

const settingsSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["dsn"],
  "properties": {
    "dsn": {"type": "string", "description": "PostgreSQL connection string, e.g. postgres://user@host:5432/db?sslmode=require; use ${ENV} for the password"},
    "schema": {"type": "string", "default": "hookbridge", "description": "schema of the sink's tables, created when missing"},
    "events_table": {"type": "string", "default": "events"},
    "subscriptions_table": {"type": "string", "default": "subscriptions"},
    "connect_timeout": {"type": "string", "default": "10s", "description": "Go duration"}
  }
}`

// stateCols are the delivery columns the sink needs for the subscriptions table; they are
// staged but not kept in the events table.
var stateCols = []string{"status", "subscribed_at", "unsubscribed_at"}

// Sink loads batches into PostgreSQL.
type Sink struct {
	mu     sync.Mutex
	cfg    sdk.Config
	set    Settings
	pgcfg  *pgx.ConnConfig
	conn   *pgx.Conn
	events string // quoted schema.events
	subs   string // quoted schema.subscriptions
	// have is the events table's columns as last read; stage is set once the connection's
	// staging table matches them.
	have  map[string]bool
	stage bool
}

// New returns an unconfigured sink.
func New() sdk.Sink { return &Sink{} }

// Spec implements sdk.Sink. The sink asks for every stored column and the subscription's
// current state; no key column, so every event is delivered, oldest first.
func (s *Sink) Spec() sdk.Spec {
	var cols []string
	for _, c := range schemas.Columns() {
		if !c.Delivery || slices.Contains(stateCols, c.Name) {
			cols = append(cols, c.Name)
		}
	}
	return sdk.Spec{Name: "postgres", Version: Version,
		Description: "loads events and current subscriptions into PostgreSQL tables (COPY, then upsert by key)",
		Settings:    json.RawMessage(settingsSchema), MaxBatchRows: 10000, MaxBatchBytes: 3 << 20, Columns: cols}
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Configure implements sdk.Sink: it checks the settings without connecting.
func (s *Sink) Configure(ctx context.Context, cfg sdk.Config) error {
	var set Settings
	if err := sdk.DecodeSettings(cfg.Settings, &set); err != nil {
		return err
	}
	if set.DSN == "" {
		return &sdk.SettingsError{Field: "dsn", Message: "is required (e.g. dsn: ${WAREHOUSE_DSN})"}
	}
	pgcfg, err := pgx.ParseConfig(set.DSN)
	if err != nil {
		// pgx's message may quote the DSN, password included: keep only the gist.
		return &sdk.SettingsError{Field: "dsn", Message: "is not a PostgreSQL connection string (postgres://user:password@host:5432/db or host=… user=…)"}
	}
	if set.Schema == "" {
		set.Schema = "hookbridge"
	}
	if set.EventsTable == "" {
		set.EventsTable = "events"
	}
	if set.SubscriptionsTable == "" {
		set.SubscriptionsTable = "subscriptions"
	}
	for field, v := range map[string]string{"schema": set.Schema, "events_table": set.EventsTable, "subscriptions_table": set.SubscriptionsTable} {
		if !identRE.MatchString(v) {
			return &sdk.SettingsError{Field: field, Message: fmt.Sprintf("%q is not a plain identifier (letters, digits, _)", v)}
		}
	}
	if set.EventsTable == set.SubscriptionsTable {
		return &sdk.SettingsError{Field: "subscriptions_table", Message: "must differ from events_table"}
	}
	timeout, err := sdk.DurationSetting("connect_timeout", set.ConnectTimeout, 10*time.Second)
	if err != nil {
		return err
	}
	pgcfg.ConnectTimeout = timeout
	if pgcfg.RuntimeParams["application_name"] == "" {
		pgcfg.RuntimeParams["application_name"] = "hookbridge-" + cfg.Name
	}
	if cfg.Mapping != nil && cfg.Logger != nil {
		cfg.Logger.Warn("the postgres sink keeps the normalised column names; its mapping is ignored")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg, s.set, s.pgcfg = cfg, set, pgcfg
	s.events = pgx.Identifier{set.Schema, set.EventsTable}.Sanitize()
	s.subs = pgx.Identifier{set.Schema, set.SubscriptionsTable}.Sanitize()
	return nil
}

// Check implements sdk.Checker: it connects and creates the tables when missing.
func (s *Sink) Check(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready(ctx); err != nil {
		s.drop()
		return err
	}
	return nil
}

// Write implements sdk.Sink.
func (s *Sink) Write(ctx context.Context, b *sdk.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready(ctx); err != nil {
		s.drop()
		return classify(err)
	}
	if err := s.ensureColumns(ctx, b.Record.Schema()); err != nil {
		s.drop()
		return classify(err)
	}
	if err := s.load(ctx, b.Record); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code == "42703" || pgErr.Code == "42P01" {
			// A broken connection, or the tables changed under us: start afresh next time.
			s.drop()
		}
		return classify(err)
	}
	return nil
}

// Close implements sdk.Sink.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		err := s.conn.Close(ctx)
		s.conn = nil
		return err
	}
	return nil
}

// drop forgets the connection (after an error it may be unusable) and what it knew.
func (s *Sink) drop() {
	if s.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		s.conn.Close(ctx)
		cancel()
	}
	s.conn, s.have, s.stage = nil, nil, false
}

// ready connects and makes sure the schema and tables exist.
func (s *Sink) ready(ctx context.Context) error {
	if s.conn != nil && !s.conn.IsClosed() {
		return nil
	}
	s.conn, s.have, s.stage = nil, nil, false
	conn, err := pgx.ConnectConfig(ctx, s.pgcfg)
	if err != nil {
		return fmt.Errorf("postgres: connect to %s: %w", s.pgcfg.Host, err)
	}
	s.conn = conn
	if _, err := conn.Exec(ctx, s.createSQL()); err != nil {
		return fmt.Errorf("postgres: create tables: %w", err)
	}
	return nil
}

// pgType is the PostgreSQL type of an Arrow column type.
func pgType(t arrow.DataType) string {
	switch t := t.(type) {
	case *arrow.Int64Type:
		return "bigint"
	case *arrow.BooleanType:
		return "boolean"
	case *arrow.TimestampType:
		if t.TimeZone != "" {
			return "timestamptz"
		}
		return "timestamp"
	case *arrow.ListType:
		return "text[]"
	case *arrow.BinaryType:
		return "bytea"
	default:
		return "text"
	}
}

// createSQL creates the schema and both tables when they are missing.
func (s *Sink) createSQL() string {
	var cols []string
	for _, c := range schemas.Columns() {
		if c.Delivery {
			continue
		}
		def := pgx.Identifier{c.Name}.Sanitize() + " " + pgType(c.Type)
		if c.Name == "event_id" {
			def += " PRIMARY KEY"
		}
		cols = append(cols, def)
	}
	seqIndex := pgx.Identifier{s.set.EventsTable + "_seq"}.Sanitize()
	return fmt.Sprintf(`CREATE SCHEMA IF NOT EXISTS %s;
CREATE TABLE IF NOT EXISTS %s (%s);
CREATE INDEX IF NOT EXISTS %s ON %s (seq);
CREATE TABLE IF NOT EXISTS %s (
	subscription_id text PRIMARY KEY,
	status text NOT NULL,
	account_id text, account_code text, account_name text,
	calendar_id text, calendar_code text, calendar_title text,
	email text, email_key text, first_name text, last_name text, phone text,
	postcode text, country_code text, marketing_consent boolean, tag_ids text[],
	subscribed_at timestamptz, unsubscribed_at timestamptz, unsubscribe_reason text,
	last_event_id text NOT NULL, last_event_type text NOT NULL, last_seq bigint NOT NULL,
	last_received_at timestamptz NOT NULL
);`, pgx.Identifier{s.set.Schema}.Sanitize(), s.events, strings.Join(cols, ", "), seqIndex, s.events, s.subs)
}

// ensureColumns adds the record's stored columns the events table lacks, and (re)creates the
// connection's staging table when the events table changed.
func (s *Sink) ensureColumns(ctx context.Context, sch *arrow.Schema) error {
	if s.have == nil {
		rows, err := s.conn.Query(ctx, `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2`, s.set.Schema, s.set.EventsTable)
		if err != nil {
			return fmt.Errorf("postgres: read columns: %w", err)
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("postgres: read columns: %w", err)
		}
		s.have = map[string]bool{}
		for _, n := range names {
			s.have[n] = true
		}
		s.stage = false
	}
	var add []string
	for _, f := range sch.Fields() {
		if c, ok := schemas.LookupColumn(f.Name); ok && !c.Delivery && !s.have[f.Name] {
			add = append(add, "ADD COLUMN IF NOT EXISTS "+pgx.Identifier{f.Name}.Sanitize()+" "+pgType(c.Type))
		}
	}
	if len(add) > 0 {
		if _, err := s.conn.Exec(ctx, "ALTER TABLE "+s.events+" "+strings.Join(add, ", ")); err != nil {
			return fmt.Errorf("postgres: add columns: %w", err)
		}
		for _, f := range sch.Fields() {
			s.have[f.Name] = true
		}
		s.stage = false
	}
	if !s.stage {
		q := "DROP TABLE IF EXISTS pg_temp.hookbridge_stage; CREATE TEMP TABLE hookbridge_stage (LIKE " + s.events + ") ON COMMIT DELETE ROWS; ALTER TABLE pg_temp.hookbridge_stage ADD COLUMN status text, ADD COLUMN subscribed_at timestamptz, ADD COLUMN unsubscribed_at timestamptz"
		if _, err := s.conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("postgres: staging table: %w", err)
		}
		s.stage = true
	}
	return nil
}

// load copies the record into the staging table and upserts it, in one transaction.
func (s *Sink) load(ctx context.Context, rec arrow.RecordBatch) error {
	src, cols := newSource(rec, func(name string) bool { return s.have[name] || slices.Contains(stateCols, name) })
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"hookbridge_stage"}, cols, src); err != nil {
		return fmt.Errorf("postgres: copy: %w", err)
	}
	if _, err := tx.Exec(ctx, upsertEventsSQL(s.events, cols)); err != nil {
		return fmt.Errorf("postgres: upsert events: %w", err)
	}
	if _, err := tx.Exec(ctx, upsertSubscriptionsSQL(s.subs, cols)); err != nil {
		return fmt.Errorf("postgres: upsert subscriptions: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}

// upsertEventsSQL moves the staged rows into the events table: new events are inserted, a
// known event is updated only by a row at least as recent whose values differ, so a re-sent
// batch writes nothing.
func upsertEventsSQL(table string, cols []string) string {
	var keep, sets, olds, news []string
	for _, c := range cols {
		if slices.Contains(stateCols, c) {
			continue
		}
		q := pgx.Identifier{c}.Sanitize()
		keep = append(keep, q)
		if c != "event_id" {
			sets = append(sets, q+" = excluded."+q)
			olds = append(olds, "t."+q)
			news = append(news, "excluded."+q)
		}
	}
	return fmt.Sprintf(`INSERT INTO %s AS t (%s)
SELECT DISTINCT ON (event_id) %s FROM pg_temp.hookbridge_stage ORDER BY event_id, seq DESC
ON CONFLICT (event_id) DO UPDATE SET %s
WHERE t.seq <= excluded.seq AND (%s) IS DISTINCT FROM (%s)`,
		table, strings.Join(keep, ", "), strings.Join(keep, ", "), strings.Join(sets, ", "), strings.Join(olds, ", "), strings.Join(news, ", "))
}

// subscriptionFields are copied from the events into the subscriptions table.
var subscriptionFields = []string{"account_id", "account_code", "account_name", "calendar_id", "calendar_code", "calendar_title",
	"email", "email_key", "first_name", "last_name", "phone", "postcode", "country_code", "marketing_consent", "tag_ids", "unsubscribe_reason"}

// upsertSubscriptionsSQL folds the staged rows into the current-subscriptions table. A row
// makes or changes a subscription only when hookbridge knows the subscription's state (or the
// row is itself a Subscribe or an Unsubscribe): a calendar-event change for a subscription
// never seen subscribing is an event, not a subscriber, as in hookbridge's own table. An
// ended subscription stays ended: no state, older or newer, turns it back to subscribed, and
// an older row never overwrites a newer one's values. A row changes the table only when it
// is newer than what the table holds, ends the subscription, or fills a value the table
// lacks, so a re-send writes nothing.
func upsertSubscriptionsSQL(table string, cols []string) string {
	val := func(c string) string {
		if slices.Contains(cols, c) {
			return c
		}
		return "NULL"
	}
	var sel, sets []string
	// An older row still fills what the table lacks.
	fills := []string{"(t.subscribed_at IS NULL AND excluded.subscribed_at IS NOT NULL)", "(t.unsubscribed_at IS NULL AND excluded.unsubscribed_at IS NOT NULL)"}
	for _, c := range subscriptionFields {
		fills = append(fills, fmt.Sprintf("(t.%s IS NULL AND excluded.%s IS NOT NULL)", c, c))
		sel = append(sel, val(c)+" AS "+c)
		sets = append(sets, fmt.Sprintf("%s = CASE WHEN excluded.last_seq >= t.last_seq THEN coalesce(excluded.%s, t.%s) ELSE coalesce(t.%s, excluded.%s) END", c, c, c, c, c))
	}
	return fmt.Sprintf(`INSERT INTO %s AS t (subscription_id, status, %s, subscribed_at, unsubscribed_at, last_event_id, last_event_type, last_seq, last_received_at)
SELECT DISTINCT ON (subscription_id) subscription_id,
	coalesce(%s, CASE WHEN event_type = 'Unsubscribe' THEN 'unsubscribed' ELSE 'subscribed' END),
	%s, %s, %s, event_id, event_type, seq, received_at
FROM pg_temp.hookbridge_stage WHERE subscription_id IS NOT NULL AND subscription_id <> ''
	AND (nullif(%s, '') IS NOT NULL OR event_type IN ('Subscribe', 'Unsubscribe'))
ORDER BY subscription_id, seq DESC
ON CONFLICT (subscription_id) DO UPDATE SET
	status = CASE WHEN t.status = 'unsubscribed' OR excluded.status = 'unsubscribed' THEN 'unsubscribed' ELSE excluded.status END,
	%s,
	subscribed_at = least(t.subscribed_at, excluded.subscribed_at),
	unsubscribed_at = least(t.unsubscribed_at, excluded.unsubscribed_at),
	last_event_id = CASE WHEN excluded.last_seq >= t.last_seq THEN excluded.last_event_id ELSE t.last_event_id END,
	last_event_type = CASE WHEN excluded.last_seq >= t.last_seq THEN excluded.last_event_type ELSE t.last_event_type END,
	last_received_at = greatest(t.last_received_at, excluded.last_received_at),
	last_seq = greatest(t.last_seq, excluded.last_seq)
WHERE excluded.last_seq > t.last_seq OR (excluded.status = 'unsubscribed' AND t.status <> 'unsubscribed')
	OR excluded.subscribed_at < t.subscribed_at OR excluded.unsubscribed_at < t.unsubscribed_at
	OR %s`,
		table, strings.Join(subscriptionFields, ", "), val("status"), strings.Join(sel, ", "), val("subscribed_at"), val("unsubscribed_at"), val("status"), strings.Join(sets, ",\n\t"), strings.Join(fills, "\n\tOR "))
}

// classify turns an error into what the delivery engine should do with the batch: data the
// server refuses (bad values, constraint violations) rejects the batch so the engine finds
// the row at fault; anything else (connection lost, server restarting, tables changed) means
// the warehouse is unusable for now and no row is charged an attempt.
func classify(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "22"), strings.HasPrefix(pgErr.Code, "23"):
			return sdk.RejectBatch(fmt.Sprintf("%s (SQLSTATE %s)", pgErr.Message, pgErr.Code), 0)
		case pgErr.Code == "40001", pgErr.Code == "40P01":
			return err // serialization failure or deadlock: try the rows again
		}
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return sdk.SinkDown(err, 0, 0)
}
