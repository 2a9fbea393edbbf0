//! Where the test servers are: the Postgres that per-test databases are created on and the Redis
//! that per-test key prefixes live in, from the environment (`scripts/test` starts both when they
//! are down).

/// The Postgres server tests create databases on (`MOKED_TEST_PG`, without a database name).
pub fn pg_base() -> String {
    std::env::var("MOKED_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The Redis tests use (`MOKED_TEST_REDIS`).
pub fn redis_url() -> String {
    std::env::var("MOKED_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A fresh Redis key prefix, `t-<uuid>`.
pub fn redis_prefix() -> String {
    format!("t-{}", uuid::Uuid::now_v7().simple())
}

/// The test Postgres's `test` database, where databases are created and dropped from.
pub fn admin_url() -> String {
    format!("{}/test", pg_base())
}
