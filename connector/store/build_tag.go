//go:build !duckdb_arrow

package store

// The store uses DuckDB's Arrow API, which the driver compiles only with a build tag. Without
// it the build stops here, with a name that says what to do.
var _ = build_with_tags_duckdb_arrow__go_build_or_test_or_run_needs_tags_duckdb_arrow
