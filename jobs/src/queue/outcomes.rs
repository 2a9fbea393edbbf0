//! Cluster-wide job outcome counters, kept in the queue: how many jobs of each kind finished
//! `done`, failed for a `retry` or went `dead`, per minute, per hour and in total, whichever
//! worker process ran them.
//!
//! Every worker keeps a [`Tally`] in memory (one increment per finished attempt, no I/O on the
//! job's path) and the runner flushes it on each heartbeat and at shutdown — Sidekiq's
//! processed/failed stats work the same way. A worker killed between two flushes loses at most
//! one heartbeat's counts (the jobs themselves are not affected: these are statistics).
//!
//! Storage, both backends:
//!
//! | span | Redis | SQL (`job_stat`) | kept |
//! |---|---|---|---|
//! | minute | HASH `{p}:stats:m:{epoch minute}`, field `{kind}\|{outcome}` | `span = 'm'`, `bucket` = epoch minute | [`MINUTES_KEPT`] |
//! | hour | HASH `{p}:stats:h:{epoch hour}` | `span = 'h'`, `bucket` = epoch hour | [`HOURS_KEPT`] |
//! | total | HASH `{p}:stats:total` | `span = 't'`, `bucket` = 0 | for ever |
//!
//! Redis expires old buckets by TTL; the SQL backend deletes them when it flushes.
//! The intake's `/metrics` exports the totals as `moked_cluster_jobs_total{kind,outcome}` and the
//! operator API serves the minute and hour series (`GET /api/stats/history`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use super::QueueResult;
use crate::store::Db;

/// How many minute buckets are kept (a little more than a day).
pub const MINUTES_KEPT: i64 = 26 * 60;
/// How many hour buckets are kept (eight days).
pub const HOURS_KEPT: i64 = 8 * 24;

/// What one finished attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The job is done.
    Done,
    /// It failed and will be tried again.
    Retry,
    /// It failed for good.
    Dead,
}

impl Outcome {
    /// All outcomes.
    pub const ALL: [Outcome; 3] = [Outcome::Done, Outcome::Retry, Outcome::Dead];

    /// The outcome's name (`done`, `retry`, `dead`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Retry => "retry",
            Outcome::Dead => "dead",
        }
    }

    fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// How many attempts of one kind came to one outcome in one minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeCount {
    /// Minutes since the Unix epoch.
    pub minute: i64,
    /// The job kind's name.
    pub kind: String,
    /// The outcome.
    pub outcome: Outcome,
    /// How many.
    pub n: u64,
}

/// The bucket size of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Span {
    /// One bucket a minute.
    Minute,
    /// One bucket an hour.
    Hour,
}

impl Span {
    fn seconds(self) -> i64 {
        match self {
            Span::Minute => 60,
            Span::Hour => 3600,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Span::Minute => "m",
            Span::Hour => "h",
        }
    }

    fn kept(self) -> i64 {
        match self {
            Span::Minute => MINUTES_KEPT,
            Span::Hour => HOURS_KEPT,
        }
    }
}

/// Counts per kind and outcome.
pub type Counts = BTreeMap<String, BTreeMap<Outcome, u64>>;

/// One bucket of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// When the bucket starts.
    pub at: DateTime<Utc>,
    /// Its counts (kinds with none are left out).
    pub counts: Counts,
}

/// The attempts a worker finished since its last flush, by minute, kind and outcome.
#[derive(Debug, Default)]
pub struct Tally {
    counts: Mutex<HashMap<(i64, String, Outcome), u64>>,
}

impl Tally {
    /// Counts one attempt of `kind` that came to `outcome` at `at`.
    pub fn add(&self, kind: &str, outcome: Outcome, at: DateTime<Utc>) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts
                .entry((at.timestamp().div_euclid(60), kind.to_owned(), outcome))
                .or_default() += 1;
        }
    }

    /// Takes everything counted so far (the tally is empty afterwards).
    pub fn take(&self) -> Vec<OutcomeCount> {
        let taken = self
            .counts
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        taken
            .into_iter()
            .map(|((minute, kind, outcome), n)| OutcomeCount {
                minute,
                kind,
                outcome,
                n,
            })
            .collect()
    }

    /// Puts counts back after a failed flush (they go out with the next one).
    pub fn restore(&self, counts: Vec<OutcomeCount>) {
        if let Ok(mut mine) = self.counts.lock() {
            for c in counts {
                *mine.entry((c.minute, c.kind, c.outcome)).or_default() += c.n;
            }
        }
    }
}

/// The bucket numbers of `span` from `from` to `to`, both included.
fn buckets(span: Span, from: DateTime<Utc>, to: DateTime<Utc>) -> std::ops::RangeInclusive<i64> {
    let s = span.seconds();
    from.timestamp().div_euclid(s)..=to.timestamp().div_euclid(s)
}

fn field(kind: &str, outcome: Outcome) -> String {
    format!("{kind}|{}", outcome.as_str())
}

fn parse_field(field: &str) -> Option<(String, Outcome)> {
    let (kind, outcome) = field.rsplit_once('|')?;
    Some((kind.to_owned(), Outcome::parse(outcome)?))
}

fn add_to(counts: &mut Counts, kind: String, outcome: Outcome, n: u64) {
    *counts.entry(kind).or_default().entry(outcome).or_default() += n;
}

fn series_from(
    span: Span,
    range: std::ops::RangeInclusive<i64>,
    mut found: BTreeMap<i64, Counts>,
) -> Vec<Bucket> {
    range
        .map(|b| Bucket {
            at: DateTime::from_timestamp(b * span.seconds(), 0).unwrap_or_default(),
            counts: found.remove(&b).unwrap_or_default(),
        })
        .collect()
}

/// Redis: adds `counts` to the minute, hour and total hashes, in one pipeline.
pub(crate) async fn redis_record(
    conn: &mut ConnectionManager,
    prefix: &str,
    counts: &[OutcomeCount],
) -> QueueResult<()> {
    if counts.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for c in counts {
        let f = field(&c.kind, c.outcome);
        let hour = c.minute.div_euclid(60);
        let minute_key = format!("{prefix}:stats:m:{}", c.minute);
        let hour_key = format!("{prefix}:stats:h:{hour}");
        pipe.hincr(&minute_key, &f, c.n)
            .ignore()
            .expire(&minute_key, MINUTES_KEPT * 60)
            .ignore()
            .hincr(&hour_key, &f, c.n)
            .ignore()
            .expire(&hour_key, HOURS_KEPT * 3600)
            .ignore()
            .hincr(format!("{prefix}:stats:total"), &f, c.n)
            .ignore();
    }
    pipe.query_async::<()>(conn).await?;
    Ok(())
}

/// Redis: one bucket per `span` from `from` to `to` (at most what is kept).
pub(crate) async fn redis_series(
    conn: &mut ConnectionManager,
    prefix: &str,
    span: Span,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> QueueResult<Vec<Bucket>> {
    let range = clamp(span, from, to);
    let mut pipe = redis::pipe();
    for b in range.clone() {
        pipe.hgetall(format!("{prefix}:stats:{}:{b}", span.tag()));
    }
    let hashes: Vec<HashMap<String, u64>> = pipe.query_async(conn).await?;
    let mut found = BTreeMap::new();
    for (b, hash) in range.clone().zip(hashes) {
        let counts: &mut Counts = found.entry(b).or_default();
        for (f, n) in hash {
            if let Some((kind, outcome)) = parse_field(&f) {
                add_to(counts, kind, outcome, n);
            }
        }
    }
    Ok(series_from(span, range, found))
}

/// Redis: the totals since the queue began.
pub(crate) async fn redis_totals(
    conn: &mut ConnectionManager,
    prefix: &str,
) -> QueueResult<Counts> {
    let hash: HashMap<String, u64> = redis::cmd("HGETALL")
        .arg(format!("{prefix}:stats:total"))
        .query_async(conn)
        .await?;
    let mut counts = Counts::new();
    for (f, n) in hash {
        if let Some((kind, outcome)) = parse_field(&f) {
            add_to(&mut counts, kind, outcome, n);
        }
    }
    Ok(counts)
}

/// The bucket range asked for, cut to what is kept.
fn clamp(span: Span, from: DateTime<Utc>, to: DateTime<Utc>) -> std::ops::RangeInclusive<i64> {
    let range = buckets(span, from, to);
    let start = (*range.start()).max(range.end() - span.kept() + 1);
    start..=*range.end()
}

/// SQL: adds `counts` to `job_stat` (minute, hour and total rows) in one transaction, and
/// deletes buckets past their keeping time.
pub(crate) async fn db_record(db: &Db, counts: &[OutcomeCount]) -> QueueResult<()> {
    if counts.is_empty() {
        return Ok(());
    }
    // Rows in key order: two processes flushing at once (Postgres) then lock the rows they share
    // in the same order and one waits for the other, where input order could deadlock them (one
    // transaction aborted and its counts lost, seen when two runners stopped together).
    let mut rows: BTreeMap<(&str, i64, &str, &str), i64> = BTreeMap::new();
    for c in counts {
        let n = i64::try_from(c.n).unwrap_or(i64::MAX);
        for (span, bucket) in [("m", c.minute), ("h", c.minute.div_euclid(60)), ("t", 0)] {
            let row = rows
                .entry((span, bucket, c.kind.as_str(), c.outcome.as_str()))
                .or_default();
            *row = row.saturating_add(n);
        }
    }
    let mut tx = db.write().await?;
    for ((span, bucket, kind, outcome), n) in rows {
        sqlx::query(
            "INSERT INTO job_stat (span, bucket, kind, outcome, n) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (span, bucket, kind, outcome) DO UPDATE SET n = job_stat.n + excluded.n",
        )
        .bind(span)
        .bind(bucket)
        .bind(kind)
        .bind(outcome)
        .bind(n)
        .execute(&mut *tx)
        .await?;
    }
    let newest = counts.iter().map(|c| c.minute).max().unwrap_or_default();
    for (span, oldest) in [
        ("m", newest - MINUTES_KEPT),
        ("h", newest.div_euclid(60) - HOURS_KEPT),
    ] {
        sqlx::query("DELETE FROM job_stat WHERE span = $1 AND bucket < $2")
            .bind(span)
            .bind(oldest)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// SQL: one bucket per `span` from `from` to `to` (at most what is kept).
pub(crate) async fn db_series(
    db: &Db,
    span: Span,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> QueueResult<Vec<Bucket>> {
    let range = clamp(span, from, to);
    let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
        "SELECT bucket, kind, outcome, n FROM job_stat WHERE span = $1 AND bucket >= $2 AND bucket <= $3",
    )
    .bind(span.tag())
    .bind(*range.start())
    .bind(*range.end())
    .fetch_all(db.pool())
    .await?;
    let mut found: BTreeMap<i64, Counts> = BTreeMap::new();
    for (b, kind, outcome, n) in rows {
        if let Some(outcome) = Outcome::parse(&outcome) {
            add_to(found.entry(b).or_default(), kind, outcome, n.max(0) as u64);
        }
    }
    Ok(series_from(span, range, found))
}

/// SQL: the totals since the queue began.
pub(crate) async fn db_totals(db: &Db) -> QueueResult<Counts> {
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT kind, outcome, n FROM job_stat WHERE span = 't'")
            .fetch_all(db.pool())
            .await?;
    let mut counts = Counts::new();
    for (kind, outcome, n) in rows {
        if let Some(outcome) = Outcome::parse(&outcome) {
            add_to(&mut counts, kind, outcome, n.max(0) as u64);
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_counts_per_minute_kind_and_outcome_and_empties_when_taken() {
        let t = Tally::default();
        let at = DateTime::from_timestamp(120 * 60 + 5, 0).unwrap_or_default();
        t.add("call.started", Outcome::Done, at);
        t.add("call.started", Outcome::Done, at);
        t.add(
            "call.started",
            Outcome::Dead,
            at + chrono::Duration::seconds(60),
        );
        let mut taken = t.take();
        taken.sort_by_key(|c| c.minute);
        assert_eq!(
            taken,
            [
                OutcomeCount {
                    minute: 120,
                    kind: "call.started".into(),
                    outcome: Outcome::Done,
                    n: 2
                },
                OutcomeCount {
                    minute: 121,
                    kind: "call.started".into(),
                    outcome: Outcome::Dead,
                    n: 1
                },
            ]
        );
        assert!(t.take().is_empty());
        t.restore(taken);
        assert_eq!(t.take().iter().map(|c| c.n).sum::<u64>(), 3);
    }

    #[test]
    fn fields_round_trip_and_series_are_cut_to_what_is_kept() {
        assert_eq!(
            parse_field(&field("whatsapp.send", Outcome::Retry)),
            Some(("whatsapp.send".into(), Outcome::Retry))
        );
        assert_eq!(parse_field("x|bogus"), None);
        let now = Utc::now();
        let range = clamp(Span::Minute, now - chrono::Duration::days(30), now);
        assert_eq!(range.end() - range.start() + 1, MINUTES_KEPT);
        let range = clamp(Span::Hour, now - chrono::Duration::hours(2), now);
        assert_eq!(range.end() - range.start() + 1, 3);
    }
}
