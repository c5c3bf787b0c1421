package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/duckdb/duckdb-go/v2"
)

// OpenScratch opens an in-memory DuckDB with full file access, for tools that read files the
// store does not own (the analytics benchmark's raw-JSON baseline). It is never reachable from
// users' SQL: the store's own handles are locked down.
func OpenScratch(ctx context.Context, threads int, memoryLimit string) (*sql.DB, error) {
	c, err := duckdb.NewConnector(fmt.Sprintf("?threads=%d&memory_limit=%s", max(threads, 1), memoryLimit), nil)
	if err != nil {
		return nil, fmt.Errorf("store: scratch database: %w", err)
	}
	db := sql.OpenDB(c)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: scratch database: %w", err)
	}
	return db, nil
}

// CheckMemoryLimit reports whether DuckDB takes s as a memory_limit ("4GB", "512MiB"), by
// setting it on a throwaway in-memory database, so a configuration check finds what would
// stop the store from opening.
func CheckMemoryLimit(ctx context.Context, s string) error {
	c, err := duckdb.NewConnector("", nil)
	if err != nil {
		return fmt.Errorf("store: check memory_limit: %w", err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	if _, err := db.ExecContext(ctx, "SET memory_limit = '"+escapeLiteral(s)+"'"); err != nil {
		return fmt.Errorf("DuckDB does not take %q as a memory limit (use a size such as 4GB or 512MiB)", s)
	}
	return nil
}
