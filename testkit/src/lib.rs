//! The test kit of moked: what every test package (`moked-jobs`, `moked-workers`, the root
//! `moked` integration binary) needs to build a world of its own and the outside services it
//! talks to. Dev-only (a `[dev-dependencies]` entry everywhere, never published).
//!
//! * [`world`] — [`World`]: a migrated store ([`Store`]: a SQLite file in a temp dir, or a fresh
//!   Postgres database `moked_t_<uuid>`) and, for the Redis queue, a fresh key prefix `t-<uuid>`
//!   ([`RedisPrefix`]), with a [`CoreConfig`](moked_jobs::config::CoreConfig) pointing at them;
//!   everything removed when dropped, also after a panic.
//! * [`services`] — where the test Postgres and Redis are (the table below).
//! * [`teardown`] — the clean-up those drops run (dropping a database, deleting a prefix).
//! * [`wait`] — [`eventually`] and [`until`]: re-checking a condition until a deadline, for work
//!   in other processes or tasks that no drain can await.
//! * [`intercept`] — [`Intercepted`]: a queue wrapping a real one that changes a call or two
//!   (a failing acknowledgement, an enqueue on a blocking thread) and delegates the rest.
//! * [`rows`] — rows as the services create them ([`rows::twilio_text`]: an outbound message).
//! * [`fake_twilio`] — a scripted, counting fake of Twilio's Messages and media endpoints.
//! * [`fake_http`] and [`fake_transcriber`] — in-process fakes of outside HTTP APIs with a request
//!   log and failure injection; the fake of OpenAI's transcription API.
//! * [`baileys_bridge`] — the real Baileys bridge of `bridge/` over a stub WhatsApp socket.
//! * [`prism`] — where Prism serves Twilio's official REST spec (`MOKED_PRISM_URL`), or a skip.
//! * [`audio`] — recordings as Twilio serves them (WAV).
//!
//! Services the worlds need (`scripts/test` starts both when they are down):
//!
//! | variable | default | used for |
//! |---|---|---|
//! | `MOKED_TEST_PG` | `postgres://postgres@127.0.0.1:5432` | databases `moked_t_<uuid>`, created through its database `test` (so `CREATE DATABASE` must be allowed) and dropped afterwards |
//! | `MOKED_TEST_REDIS` | `redis://127.0.0.1:6379` | key prefixes `t-<uuid>`, deleted afterwards |
//!
//! The Baileys bridge needs Node.js ≥ 20 on `PATH` (it installs `bridge/node_modules` from the
//! lock file when missing). The kit depends on `moked-jobs` only, so the jobs crate's tests do
//! not build the intake or the workers.

pub mod audio;
pub mod baileys_bridge;
pub mod fake_http;
pub mod fake_transcriber;
pub mod fake_twilio;
pub mod intercept;
pub mod prism;
pub mod rows;
pub mod services;
pub mod teardown;
pub mod wait;
pub mod world;

pub use intercept::{Intercept, Intercepted};
pub use services::{pg_base, redis_prefix, redis_url};
pub use wait::{eventually, until};
pub use world::{Backend, RedisPrefix, Store, World};
