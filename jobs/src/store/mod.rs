//! The store: one sqlx `Any` pool over SQLite (embedded default) or Postgres, with the same
//! schema on both (`migrations/sqlite`, `migrations/postgres`).
//!
//! Queries are written once in the SQL both dialects accept (`$1` placeholders, `ON CONFLICT`,
//! `RETURNING`); times are stored as `BIGINT` milliseconds since the Unix epoch so the two
//! backends read and compare them the same way. Where the dialects differ (row locking), the
//! caller asks [`Db::kind`].
//!
//! SQLite runs in WAL mode with `synchronous = FULL` (a committed job survives power loss) and a
//! 5 s busy timeout so several processes (a `moked` and a `moked-worker jobs` CLI) can share the
//! file.
//!
//! **Writes that belong together commit together** ([`Db::write_unit`]): a job's rows (a call,
//! its customer, its timeline event) are one unit, committed at once — never half of them after
//! a crash — and with one commit instead of one per statement. On SQLite the units of
//! concurrent jobs share a transaction and its one fsync ([`group_commit`]); on Postgres each
//! unit is a transaction of its own. Other multi-statement writes (the database queue's) use
//! [`Db::write`]. On SQLite every write transaction of the process takes turns through one
//! in-process gate before `BEGIN IMMEDIATE`: SQLite has one writer per file, and connections
//! that meet its lock wait in its busy handler, which sleeps 1, 2, 5, 10… ms between tries and
//! leaves the lock idle under a worker's concurrency. The gate hands the lock on at once; other
//! processes (the CLI) still meet the busy timeout. Measured with `bench/drain.sh` (10,000
//! incoming calls queued in Redis, one `moked-worker run`, 2 cores): SQLite 788 → 5,305 jobs/s,
//! Postgres 1,786 → 3,906 jobs/s.

pub mod audit;
pub mod business;
pub mod calls;
pub mod clock_tasks;
pub mod console;
pub mod customers;
pub mod error;
pub mod group_commit;
pub mod health;
pub mod reconcile;
pub mod recordings;
pub mod whatsapp;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex as StdMutex};

use chrono::{DateTime, TimeZone, Utc};
use futures::future::BoxFuture;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use error::StoreError;

/// How long a pooled connection may sit idle and still be handed out without a ping (see
/// [`Db::connect`]).
const TRUSTED_IDLE: Duration = Duration::from_secs(1);

/// Which database the pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    /// SQLite file.
    Sqlite,
    /// Postgres server.
    Postgres,
}

/// A connection pool and its dialect.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    kind: DbKind,
    /// SQLite: one write transaction of this process at a time (see the module doc).
    write_gate: Arc<Mutex<()>>,
    /// SQLite: the committer that [`Db::write_unit`] hands its units to.
    group: group_commit::GroupCommit,
}

/// A write transaction from [`Db::write`]: use it as a connection (`&mut *tx`), then
/// [`WriteTx::commit`]. Dropped without a commit, it rolls back.
pub struct WriteTx {
    // Declared first so it is dropped (rolled back) before the gate opens.
    tx: Transaction<'static, Any>,
    _gate: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// Commits, then lets the next writer in.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    /// Rolls back, then lets the next writer in.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

impl Db {
    /// Connects to `url` (`sqlite://path`, `sqlite::memory:`, `postgres://…`). For SQLite the
    /// file and its folder are created when missing.
    pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let kind = if url.starts_with("sqlite:") {
            DbKind::Sqlite
        } else {
            DbKind::Postgres
        };
        let url = match kind {
            DbKind::Sqlite => sqlite_url(url)?,
            DbKind::Postgres => postgres_url(url),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(match kind {
                DbKind::Sqlite => 8,
                DbKind::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(10))
            // sqlx pings every connection when it goes back to the pool and, by default, again
            // when it is taken out: two round trips (a `Sync` each on Postgres) besides every
            // statement. Dropping the second cut a Postgres `call.started` drain's worker CPU
            // from 114 to 98 µs a job (median of three interleaved runs). A connection idle for
            // less than `TRUSTED_IDLE` was proven alive by the ping of its return; older ones
            // are still checked, so a database restart during a quiet spell costs a reconnect,
            // not a failed statement. (A restart within that second fails one statement of each
            // pooled connection; the job is retried like any other transient error.)
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > TRUSTED_IDLE {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if kind == DbKind::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Db {
            pool,
            kind,
            write_gate: Arc::new(Mutex::new(())),
            group: group_commit::GroupCommit::default(),
        })
    }

    /// Begins a write transaction: on SQLite through the process's write gate and with
    /// `BEGIN IMMEDIATE` (the write lock from the start, so a transaction that reads first
    /// never fails to upgrade), on Postgres a plain `BEGIN`. Never call it again, or write
    /// through [`Db::pool`], while holding one: on SQLite that waits for itself.
    pub async fn write(&self) -> Result<WriteTx, sqlx::Error> {
        Ok(match self.kind {
            DbKind::Sqlite => {
                let gate = self.write_gate.clone().lock_owned().await;
                WriteTx {
                    tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
                    _gate: Some(gate),
                }
            }
            DbKind::Postgres => WriteTx {
                tx: self.pool.begin().await?,
                _gate: None,
            },
        })
    }

    /// Applies the migrations of this dialect.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self.kind {
            DbKind::Sqlite => SQLITE_MIGRATOR.run(&self.pool).await,
            DbKind::Postgres => POSTGRES_MIGRATOR.run(&self.pool).await,
        }
    }

    /// Runs `work` — one job's writes that belong together — atomically, and returns its value
    /// once its rows are committed. On SQLite the units of concurrent callers share one
    /// transaction and one fsync ([`group_commit`]); on Postgres each is a transaction of its own.
    /// `work` must only run SQL on the connection it is given (it may share a transaction
    /// with other callers' units, which wait for it).
    pub async fn write_unit<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        if self.kind == DbKind::Postgres {
            let mut tx = self.write().await?;
            let value = work(&mut tx).await?;
            tx.commit().await?;
            return Ok(value);
        }
        let slot = Arc::new(StdMutex::new(None));
        let put = slot.clone();
        let unit: group_commit::Work = Box::new(move |conn| {
            Box::pin(async move {
                let value = work(conn).await?;
                *put.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
                Ok(())
            })
        });
        self.group.run(&self.pool, &self.write_gate, unit).await?;
        let value = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        value.ok_or(StoreError::NotFound)
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The dialect.
    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// `SELECT 1`.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Normalises a SQLite URL: creates the parent folder and asks for create-if-missing.
fn sqlite_url(url: &str) -> Result<String, sqlx::Error> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    if rest.starts_with(":memory:") || rest.contains("mode=memory") {
        return Ok(url.to_owned());
    }
    let path = rest.split('?').next().unwrap_or(rest);
    if let Some(parent) = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(sqlx::Error::Io)?;
    }
    Ok(if rest.contains("mode=") {
        format!("sqlite://{rest}")
    } else if rest.contains('?') {
        format!("sqlite://{rest}&mode=rwc")
    } else {
        format!("sqlite://{rest}?mode=rwc")
    })
}

/// A loopback Postgres URL without an explicit `sslmode` gets `sslmode=disable`.
///
/// TLS to the same host protects nothing, and sqlx 0.9.0 does not set `TCP_NODELAY`
/// (launchbadge/sqlx#4335, fixed after 0.9.0): over TLS, Nagle's algorithm meets delayed ACKs
/// and about a third of round trips stall ~40–100 ms. Remote servers keep sqlx's default
/// (`prefer`) or whatever the URL says (`sslmode=require` on Heroku).
fn postgres_url(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let loopback = matches!(
        parsed.host_str(),
        Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
    );
    let explicit = parsed.query_pairs().any(|(k, _)| k == "sslmode");
    if !loopback || explicit {
        return url.to_owned();
    }
    let sep = if parsed.query().is_some() { '&' } else { '?' };
    format!("{url}{sep}sslmode=disable")
}

/// The row a write's `RETURNING` gave, read once the statement has finished.
///
/// Writes read their `RETURNING` rows with `fetch_all` and this, never with `fetch_one` or
/// `fetch_optional`: sqlx 0.9.0's `Any` driver answers those at the first row (sqlx-postgres
/// `any.rs`, unlike its native connection), before Postgres's `ReadyForQuery` — that is, before
/// the statement's implicit transaction has committed — and SQLite commits an autocommit
/// statement only when it is reset. A crash right then loses a write the caller already took
/// as done: the fault test `postgres_restart` lost one call row of 2,000 to exactly that, with
/// its job marked done. `fetch_all` reads the reply to its end.
pub(crate) fn returned<T>(rows: Vec<T>) -> Option<T> {
    rows.into_iter().next()
}

/// One page of a keyset listing read with `LIMIT limit + 1`: the first `limit` items, and the
/// cursor of the last of them when the extra row shows that more follow.
pub(crate) fn page<T>(
    mut items: Vec<T>,
    limit: u32,
    cursor: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next = items.last().filter(|_| more).map(cursor);
    (items, next)
}

/// Milliseconds since the epoch.
pub fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The time at `ms` milliseconds since the epoch.
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    to_ms(Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_postgres_skips_tls_unless_asked() {
        assert_eq!(
            postgres_url("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
        );
        assert_eq!(
            postgres_url("postgres://u@localhost/db?application_name=x"),
            "postgres://u@localhost/db?application_name=x&sslmode=disable"
        );
        for kept in [
            "postgres://u@127.0.0.1/db?sslmode=require",
            "postgres://u:p@db.example.com:5432/d",
        ] {
            assert_eq!(postgres_url(kept), kept);
        }
    }
}
