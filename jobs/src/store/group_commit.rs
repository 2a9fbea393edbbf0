//! Group commit for SQLite: the write units of concurrent jobs share one transaction, so one
//! fsync covers many jobs.
//!
//! With `synchronous = FULL` a SQLite commit is an fsync of the WAL (measured ~0.4 ms on the
//! reference machine, so at most ~2,400 commits a second whatever the CPU), and SQLite has one
//! writer per file: jobs that each commit their own transaction queue up behind one fsync
//! apiece. Here one task per [`super::Db`] takes the units as they come: it opens a
//! `BEGIN IMMEDIATE` transaction (through the process's write gate, so it also takes turns with
//! the queue's transactions), runs each waiting unit inside its own `SAVEPOINT`, takes in the
//! units that arrived meanwhile (up to [`MAX_UNITS`]), commits once and only then answers each
//! caller. A unit that fails is rolled back to its savepoint alone and its caller gets its
//! error; a failed commit fails every unit of the batch (none of them is done, and each job is
//! retried as usual). A caller is never told "done" before the commit that holds its rows.
//!
//! Postgres does not use this: its commits already share WAL flushes between backends, and
//! each job's unit runs in a transaction of its own ([`super::Db::write_unit`]).
//!
//! No crate does this (sqlx has no group commit); it is a loop over a channel.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex as StdMutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::{AnyConnection, AnyPool, Executor};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::error::StoreError;

/// The most units one commit carries (bounds a batch's latency and its rollback).
pub const MAX_UNITS: usize = 64;

/// One caller's writes, run on the shared transaction's connection.
pub(crate) type Work =
    Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<(), StoreError>> + Send>;

struct Unit {
    work: Work,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The handle to a [`super::Db`]'s committer task: started on first use, and again if the
/// runtime it ran on has gone (a test's runtime ends while the pool lives on).
#[derive(Clone, Default)]
pub(crate) struct GroupCommit {
    sender: Arc<StdMutex<Option<mpsc::UnboundedSender<Unit>>>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupCommit")
    }
}

impl GroupCommit {
    /// Runs `work` in the next shared transaction and returns once that transaction has
    /// committed (or with the unit's own error, its writes undone).
    pub(crate) async fn run(
        &self,
        pool: &AnyPool,
        gate: &Arc<Mutex<()>>,
        work: Work,
    ) -> Result<(), StoreError> {
        let (done, answer) = oneshot::channel();
        let mut unit = Unit { work, done };
        loop {
            let sender = self.sender(pool, gate);
            match sender.send(unit) {
                Ok(()) => break,
                // The task is gone (its runtime shut down): start another and hand it the unit.
                Err(mpsc::error::SendError(back)) => {
                    unit = back;
                    self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
                }
            }
        }
        answer
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
    }

    fn sender(&self, pool: &AnyPool, gate: &Arc<Mutex<()>>) -> mpsc::UnboundedSender<Unit> {
        let mut slot = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slot.as_ref().filter(|s| !s.is_closed()) {
            return s.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(committer(pool.clone(), gate.clone(), rx));
        *slot = Some(tx.clone());
        tx
    }
}

/// The committer task: one batch after another until every [`GroupCommit`] handle is gone.
async fn committer(pool: AnyPool, gate: Arc<Mutex<()>>, mut rx: mpsc::UnboundedReceiver<Unit>) {
    while let Some(first) = rx.recv().await {
        let _turn = gate.lock().await;
        for (done, result) in batch_on(&pool, &mut rx, first).await {
            let _ = done.send(result);
        }
    }
}

/// A unit's reply channel and its outcome.
type Answer = (
    oneshot::Sender<Result<(), StoreError>>,
    Result<(), StoreError>,
);

/// Runs `first` and the units that arrive meanwhile (up to [`MAX_UNITS`]) in one transaction;
/// one answer per unit taken. Units not taken stay queued for the next batch.
///
/// The transaction is sqlx's, not a bare `BEGIN`: whatever way this function is left without
/// its commit, the transaction is rolled back before the connection serves anyone else.
async fn batch_on(
    pool: &AnyPool,
    rx: &mut mpsc::UnboundedReceiver<Unit>,
    first: Unit,
) -> Vec<Answer> {
    let fail_all = |ran: Vec<Answer>, e: &sqlx::Error| -> Vec<Answer> {
        ran.into_iter()
            .map(|(done, _)| (done, Err(StoreError::Database(copy_error(e)))))
            .collect()
    };
    let mut tx = match pool.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(e) => return fail_all(vec![(first.done, Ok(()))], &e),
    };
    let mut ran = Vec::new();
    let mut next = Some(first);
    while let Some(Unit { work, done }) = next {
        match run_unit(&mut tx, work).await {
            Ok(result) => ran.push((done, result)),
            // The transaction itself is unusable: undo everything, fail every unit.
            Err(e) => {
                ran.push((done, Ok(())));
                let _ = tx.rollback().await;
                return fail_all(ran, &e);
            }
        }
        next = if ran.len() < MAX_UNITS {
            rx.try_recv().ok()
        } else {
            None
        };
    }
    if let Err(e) = tx.commit().await {
        return fail_all(ran, &e);
    }
    ran
}

/// One unit inside its savepoint. `Ok(result)` is the unit's own outcome (an error or a panic,
/// undone to the savepoint); `Err` means the savepoint could not be undone, so the transaction
/// can't go on. A panicking unit (a bug) fails alone and leaves the committer running.
async fn run_unit(
    conn: &mut AnyConnection,
    work: Work,
) -> Result<Result<(), StoreError>, sqlx::Error> {
    conn.execute("SAVEPOINT unit").await?;
    // Retried like a handler that panicked (the runner's rule), and like the same panic on
    // Postgres, where the unit runs on the caller's task.
    let result = match AssertUnwindSafe(work(conn)).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(StoreError::Database(sqlx::Error::Protocol(format!(
            "a store write panicked (its writes were undone): {}",
            crate::retry::panic_message(&*panic)
        )))),
    };
    if result.is_err() {
        conn.execute("ROLLBACK TO unit").await?;
    }
    conn.execute("RELEASE unit").await?;
    Ok(result)
}

/// `sqlx::Error` is not `Clone`: each unit of a failed batch gets the same message.
fn copy_error(e: &sqlx::Error) -> sqlx::Error {
    sqlx::Error::Protocol(format!("group commit failed: {e}"))
}
