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
