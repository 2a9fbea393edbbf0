//! Per-test worlds for the jobs crate's tests: a fresh SQLite file or Postgres database, and a
//! fresh Redis key prefix, each cleaned up when the test ends.
//!
//! Postgres: `MOKED_TEST_PG` (default `postgres://postgres@127.0.0.1:5432`) must accept
//! `CREATE DATABASE`; each test gets `moked_t_<uuid>` and drops it afterwards. Redis:
//! `MOKED_TEST_REDIS` (default `redis://127.0.0.1:6379`); each test gets prefix `t-<uuid>`.
#![allow(dead_code)]

use moked_jobs::store::Db;
use sqlx::Connection;

/// The Postgres server tests create databases on.
pub fn pg_base() -> String {
    std::env::var("MOKED_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The Redis tests use.
pub fn redis_url() -> String {
    std::env::var("MOKED_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A fresh Redis key prefix.
pub fn redis_prefix() -> String {
    format!("t-{}", uuid::Uuid::now_v7().simple())
}

/// A migrated database that lives as long as the value: a Postgres database is dropped by
/// [`TestDb::drop_db`] (or, if the test panicked first, when the value is dropped); a SQLite
/// file is removed with its temp dir.
pub struct TestDb {
    /// The pool.
    pub db: Db,
    /// Its URL.
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A new SQLite file in a temp dir, migrated.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("moked.db").display());
        let db = Db::connect(&url).await.expect("open sqlite");
        db.migrate().await.expect("migrate sqlite");
        TestDb {
            db,
            url,
            pg_name: None,
            _dir: Some(dir),
        }
    }

    /// A new Postgres database, migrated.
    pub async fn postgres() -> TestDb {
        let name = format!("moked_t_{}", uuid::Uuid::now_v7().simple());
        let admin_url = format!("{}/test", pg_base());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to the test Postgres");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.ok();
        let url = format!("{}/{name}", pg_base());
        let db = Db::connect(&url).await.expect("open postgres");
        db.migrate().await.expect("migrate postgres");
        TestDb {
            db,
            url,
            pg_name: Some(name),
            _dir: None,
        }
    }

    /// Closes the pool and drops the Postgres database (no-op for SQLite).
    pub async fn drop_db(mut self) {
        self.db.close().await;
        if let Some(name) = self.pg_name.take() {
            drop_pg_database(&name).await;
        }
    }
}

/// A test that panicked never reaches [`TestDb::drop_db`]: drop its Postgres database anyway,
/// on a thread of its own (this may run inside the test's runtime).
impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(drop_pg_database(&name));
                }
            })
            .join();
        }
    }
}

/// `DROP DATABASE … WITH (FORCE)` (ends the connections still open on it).
async fn drop_pg_database(name: &str) {
    let admin_url = format!("{}/test", pg_base());
    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await;
        admin.close().await.ok();
    }
}
