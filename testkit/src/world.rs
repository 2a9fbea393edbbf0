//! The world of one test: a migrated store of its own, a Redis key prefix of its own when the
//! queue is in Redis, and settings pointing at them; all removed when the world is dropped,
//! also after a panic.
//!
//! * [`Store`] — a SQLite file in a temp dir, or a fresh Postgres database `moked_t_<uuid>` on
//!   `MOKED_TEST_PG`; migrated. The jobs crate's tests use it alone (they build their queues
//!   themselves).
//! * [`RedisPrefix`] — a fresh key prefix `t-<uuid>` on a Redis (`MOKED_TEST_REDIS` unless a
//!   test runs its own server); every key under it is deleted on drop.
//! * [`World`] — a store, an optional prefix and the [`CoreConfig`] for them. Test files build
//!   on it with their own fields (a fake server, worker settings, a spawned app).

use std::path::Path;

use moked_jobs::config::{CoreConfig, QueueBackend};
use moked_jobs::queue::{self, SharedQueue};
use moked_jobs::store::Db;
use sqlx::Connection;

use crate::services::{admin_url, pg_base, redis_prefix, redis_url};
use crate::teardown::{delete_prefix, drop_database, on_own_runtime};

/// Where a [`World`] keeps its queue and its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file; the queue in the database.
    Sqlite,
    /// A Postgres database; the queue in the database.
    Postgres,
    /// A Redis queue (a fresh prefix) over a SQLite store.
    Redis,
}

impl Backend {
    /// [`Backend::Redis`] when `redis`, else [`Backend::Sqlite`].
    pub fn sqlite_or_redis(redis: bool) -> Backend {
        if redis {
            Backend::Redis
        } else {
            Backend::Sqlite
        }
    }
}

/// A migrated database that lives as long as the value, with a temp folder of the test: a
/// SQLite file is removed with the folder; a Postgres database is dropped by [`Store::close`],
/// or when the value is dropped (a test that panicked never reaches `close`).
pub struct Store {
    /// The pool.
    pub db: Db,
    /// Its URL.
    pub url: String,
    pg_name: Option<String>,
    dir: tempfile::TempDir,
}

impl Store {
    /// A new SQLite file `moked.db` in the temp folder, migrated.
    pub async fn sqlite() -> Store {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("moked.db").display());
        Store::open(url, None, dir).await
    }

    /// A new Postgres database `moked_t_<uuid>` on [`pg_base`], migrated.
    pub async fn postgres() -> Store {
        let name = format!("moked_t_{}", uuid::Uuid::now_v7().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url())
            .await
            .expect("connect to the test Postgres (MOKED_TEST_PG)");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        admin.close().await.ok();
        let url = format!("{}/{name}", pg_base());
        let tmp = tempfile::tempdir().expect("temp dir");
        Store::open(url, Some(name), tmp).await
    }

    /// The database at `url`, migrated and left in place afterwards (a server the test runs
    /// itself and removes with its data folder).
    pub async fn at(url: &str) -> Store {
        let tmp = tempfile::tempdir().expect("temp dir");
        Store::open(url.to_owned(), None, tmp).await
    }

    async fn open(url: String, pg_name: Option<String>, dir: tempfile::TempDir) -> Store {
        let db = Db::connect(&url).await.expect("open the test store");
        db.migrate().await.expect("migrate the test store");
        Store {
            db,
            url,
            pg_name,
            dir,
        }
    }

    /// The temp folder of this store (holding the SQLite file, if any); tests may keep other
    /// files there (recordings).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Closes the pool, then drops a Postgres database.
    pub async fn close(mut self) {
        self.db.close().await;
        if let Some(name) = self.pg_name.take() {
            drop_database(&name).await;
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            on_own_runtime(move || async move { drop_database(&name).await });
        }
    }
}

/// A fresh key prefix on a Redis; every key under it is deleted when the value is dropped.
pub struct RedisPrefix {
    url: String,
    prefix: String,
}

impl RedisPrefix {
    /// A fresh prefix ([`redis_prefix`]) on the Redis at `url`.
    pub fn new(url: impl Into<String>) -> RedisPrefix {
        RedisPrefix {
            url: url.into(),
            prefix: redis_prefix(),
        }
    }

    /// The Redis URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key prefix (without the colon).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        delete_prefix(self.url.clone(), self.prefix.clone());
    }
}

/// A store, where the queue lives, and settings pointing at both.
pub struct World {
    /// Settings pointing at this world (database URL, queue backend and prefix); everything
    /// else at its default. Tests adjust it before building on it.
    pub core: CoreConfig,
    /// The migrated pool on the store.
    pub db: Db,
    store: Store,
    redis: Option<RedisPrefix>,
}

impl World {
    /// A fresh world for `backend` (Redis at [`redis_url`]).
    pub async fn new(backend: Backend) -> World {
        match backend {
            Backend::Sqlite => World::on(Store::sqlite().await, None),
            Backend::Postgres => World::on(Store::postgres().await, None),
            Backend::Redis => World::on(Store::sqlite().await, Some(RedisPrefix::new(redis_url()))),
        }
    }

    /// A world on `store`, with the queue in its database, or in Redis under `redis`.
    pub fn on(store: Store, redis: Option<RedisPrefix>) -> World {
        let mut core = CoreConfig::for_database(&store.url);
        if let Some(redis) = &redis {
            core.queue = QueueBackend::Redis(redis.url.clone().into());
            core.queue_prefix = redis.prefix.clone();
        }
        World {
            core,
            db: store.db.clone(),
            store,
            redis,
        }
    }

    /// The store's URL (`DATABASE_URL`).
    pub fn db_url(&self) -> &str {
        &self.store.url
    }

    /// The store's temp folder ([`Store::dir`]).
    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    /// The Redis prefix of the queue, when the queue is in Redis.
    pub fn redis(&self) -> Option<&RedisPrefix> {
        self.redis.as_ref()
    }

    /// Points the Twilio REST settings at `api_base` (a fake, or Prism), for `account_sid`
    /// authenticated with `auth_token`.
    pub fn twilio(&mut self, api_base: &str, account_sid: &str, auth_token: &str) {
        let twilio = &mut self.core.twilio;
        twilio.account_sid = Some(account_sid.into());
        twilio.auth_token = Some(auth_token.to_owned().into());
        twilio.api_base = api_base.trim_end_matches('/').to_owned();
    }

    /// A `file://` recordings store in the temp folder (`RECORDINGS_STORE`): `recordings/`.
    pub fn recordings_store(&self) -> String {
        format!("file://{}", self.dir().join("recordings").display())
    }

    /// A queue on this world as [`World::core`] says.
    pub async fn queue(&self) -> SharedQueue {
        queue::connect(&self.core, &self.db)
            .await
            .expect("connect the queue")
    }

    /// Closes the pool and drops a Postgres database now (the Redis prefix goes as on drop).
    pub async fn close(self) {
        self.store.close().await;
    }
}

/// Implements `Deref` and `DerefMut` to a [`World`] for a test file's own world type that holds
/// one in `field` (beside its own fields: a queue, worker settings, a fake server), so
/// `w.db`, `w.core` and the kit's methods read as on the kit's world.
///
/// ```ignore
/// struct World { base: moked_testkit::World, queue: SharedQueue }
/// moked_testkit::deref_to_world!(World, base);
/// ```
#[macro_export]
macro_rules! deref_to_world {
    ($ty:ty, $field:ident) => {
        impl ::std::ops::Deref for $ty {
            type Target = $crate::world::World;
            fn deref(&self) -> &$crate::world::World {
                &self.$field
            }
        }

        impl ::std::ops::DerefMut for $ty {
            fn deref_mut(&mut self) -> &mut $crate::world::World {
                &mut self.$field
            }
        }
    };
}
