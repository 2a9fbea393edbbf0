//! `moked-worker jobs …`: the operator's queue verbs from a shell, on the same store the
//! workers use, with no server running. Human tables by default, `--json` for the shapes the
//! operator API returns ([`moked_jobs::queue::view`]).
//!
//! The verbs reach everything the operator API's `/api/jobs…` does: `list` (state, kind,
//! cursor, limit) ↔ `GET /api/jobs`, `show` ↔ `GET /api/jobs/{id}`, `retry ID…` ↔ `POST
//! /api/jobs/{id}/retry`, `retry --all-dead|--all-retrying [--kind K]` ↔ `POST
//! /api/jobs/retry?state=dead|retrying&kind=K`, `discard` ↔ `POST /api/jobs/{id}/discard`,
//! `stats` ↔ `GET /api/jobs/stats`.
//!
//! `retry` goes through [`moked_jobs::retry_effect`] like the API: a job is queued again only
//! when its effect can be re-attempted (a refused WhatsApp message is put back to `queued`
//! first); a refused one is named with the reason and the command exits 1.

use clap::Subcommand;
use moked_jobs::kinds::JobKind;
use moked_jobs::queue::{JobState, ListQuery, Queue, QueueError, view};
use moked_jobs::retry_effect::{self, Bulk, Outcome, RetryError};
use moked_jobs::store::Db;

/// The `jobs` verbs.
#[derive(Debug, Clone, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only this state: queued, running, retrying, dead, done, discarded.
        #[arg(long)]
        state: Option<JobState>,
        /// Only this kind (e.g. whatsapp.send).
        #[arg(long)]
        kind: Option<JobKind>,
        /// Page size (1-500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Cursor from a previous page.
        #[arg(long)]
        cursor: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one job with its payload (numbers masked) and attempt history.
    Show {
        /// The job id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Queue dead or retrying jobs again, now, re-attempting their effect (refused when it
    /// cannot be: e.g. a WhatsApp message the provider already accepted).
    Retry {
        /// Job ids.
        #[arg(required_unless_present_any = ["all_dead", "all_retrying"])]
        ids: Vec<String>,
        /// Every dead job (optionally of one --kind).
        #[arg(long, conflicts_with_all = ["ids", "all_retrying"])]
        all_dead: bool,
        /// Every retrying job, now instead of at its next attempt (optionally of one --kind).
        #[arg(long, conflicts_with = "ids")]
        all_retrying: bool,
        /// With --all-dead or --all-retrying: only this kind.
        #[arg(long)]
        kind: Option<JobKind>,
    },
    /// Discard queued, retrying or dead jobs.
    Discard {
        /// Job ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Counts per state and kind.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Why a `jobs` command failed.
#[derive(Debug, thiserror::Error)]
pub enum JobsCliError {
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The store failed (a retry reads and prepares the job's effect there).
    #[error(transparent)]
    Store(#[from] moked_jobs::store::error::StoreError),
    /// No such job.
    #[error("no job with id {0}")]
    NotFound(String),
    /// Some ids could not be acted on.
    #[error("{0}")]
    Partial(String),
}

fn pretty(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

/// Lays out rows under a header, columns padded to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(header.iter().map(|h| (*h).to_owned()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

fn shorten(s: &str, max: usize) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        format!("{}…", one_line.chars().take(max - 1).collect::<String>())
    }
}

impl From<RetryError> for JobsCliError {
    fn from(e: RetryError) -> Self {
        match e {
            RetryError::Queue(e) => e.into(),
            RetryError::Store(e) => e.into(),
        }
    }
}

/// Runs a `jobs` verb and returns what to print; `db` is the store the retry rule reads and
/// prepares ([`retry_effect`]).
pub async fn execute(queue: &dyn Queue, db: &Db, cmd: JobsCommand) -> Result<String, JobsCliError> {
    match cmd {
        JobsCommand::List {
            state,
            kind,
            limit,
            cursor,
            json,
        } => {
            let page = queue
                .list(&ListQuery {
                    state,
                    kind,
                    cursor,
                    limit,
                })
                .await?;
            if json {
                return Ok(pretty(&page));
            }
            let rows: Vec<Vec<String>> = page
                .jobs
                .iter()
                .map(|j| {
                    vec![
                        j.id.clone(),
                        j.kind.clone(),
                        j.state.to_string(),
                        j.attempts.to_string(),
                        time(Some(j.created_at)),
                        shorten(j.last_error.as_deref().unwrap_or("-"), 60),
                    ]
                })
                .collect();
            let mut out = table(
                &[
                    "ID",
                    "KIND",
                    "STATE",
                    "ATTEMPTS",
                    "CREATED (UTC)",
                    "LAST ERROR",
                ],
                &rows,
            );
            out.push_str(&format!("\n{} of {} job(s)", page.jobs.len(), page.total));
            if let Some(c) = page.next_cursor {
                out.push_str(&format!("; next page: --cursor {c}"));
            }
            Ok(out)
        }
        JobsCommand::Show { id, json } => {
            let d = queue
                .get(&id)
                .await?
                .ok_or_else(|| JobsCliError::NotFound(id.clone()))?;
            let v = view::detail(&d);
            if json {
                return Ok(pretty(&v));
            }
            let s = &d.summary;
            let mut out = format!(
                "id:          {}\nkind:        {}\nstate:       {}\nattempts:    {}\ncreated_at:  {}\nrun_at:      {}\nstarted_at:  {}\nfinished_at: {}\nlast_error:  {}\npayload:     {}\n",
                s.id,
                s.kind,
                s.state,
                s.attempts,
                time(Some(s.created_at)),
                time(Some(s.run_at)),
                time(d.started_at),
                time(s.finished_at),
                s.last_error.as_deref().unwrap_or("-"),
                v.payload,
            );
            if d.history.is_empty() {
                out.push_str("history:     (no failed attempts)");
            } else {
                let rows: Vec<Vec<String>> = d
                    .history
                    .iter()
                    .enumerate()
                    .map(|(n, a)| {
                        vec![
                            (n + 1).to_string(),
                            time(Some(a.at)),
                            a.worker.clone(),
                            a.error.clone(),
                        ]
                    })
                    .collect();
                out.push_str("history:\n");
                out.push_str(&table(&["#", "AT (UTC)", "WORKER", "ERROR"], &rows));
            }
            Ok(out)
        }
        JobsCommand::Retry {
            ids,
            all_dead,
            all_retrying,
            kind,
        } => {
            if all_dead || all_retrying {
                let state = if all_dead {
                    JobState::Dead
                } else {
                    JobState::Retrying
                };
                let bulk = retry_effect::retry_all(queue, db, state, kind).await?;
                return bulk_answer(state, &bulk);
            }
            if kind.is_some() {
                return Err(JobsCliError::Partial(
                    "--kind goes with --all-dead or --all-retrying".into(),
                ));
            }
            retry_ids(queue, db, &ids).await
        }
        JobsCommand::Discard { ids } => act_on(&ids, "discarded", |id| queue.discard(id)).await,
        JobsCommand::Stats { json } => {
            let stats = queue.stats().await?;
            let v = view::stats(&stats);
            if json {
                return Ok(pretty(&v));
            }
            let mut rows = vec![{
                let mut r = vec!["(all)".to_owned()];
                r.extend(JobState::ALL.iter().map(|s| stats.count(*s).to_string()));
                r
            }];
            for (kind, per) in &stats.by_kind {
                let mut r = vec![kind.clone()];
                r.extend(
                    JobState::ALL
                        .iter()
                        .map(|s| per.get(s).copied().unwrap_or(0).to_string()),
                );
                rows.push(r);
            }
            let mut header = vec!["KIND"];
            header.extend(JobState::ALL.iter().map(|s| s.as_str()));
            let mut out = table(&header, &rows);
            if let Some(age) = stats.oldest_queued_age_s {
                out.push_str(&format!("\noldest queued job waits {age:.1}s"));
            }
            Ok(out)
        }
    }
}

/// Retries each id by the retry rule; names every id that did not move, with why.
async fn retry_ids(queue: &dyn Queue, db: &Db, ids: &[String]) -> Result<String, JobsCliError> {
    let mut moved = 0;
    let mut refused = Vec::new();
    for id in ids {
        match retry_effect::retry(queue, db, id).await? {
            Outcome::Retried(_) => moved += 1,
            Outcome::NotFound => refused.push(format!("{id}: no such job")),
            Outcome::WrongState(state) => refused.push(format!(
                "{id}: is {state}; only dead or retrying jobs can be retried"
            )),
            Outcome::Refused { kind, reason } => {
                refused.push(format!("{id} ({kind}): cannot be retried: {reason}"))
            }
        }
    }
    if refused.is_empty() {
        Ok(format!("retried {moved} job(s)"))
    } else {
        Err(JobsCliError::Partial(format!(
            "retried {moved} job(s); not retried:\n  {}",
            refused.join("\n  ")
        )))
    }
}

/// The answer to `--all-dead` / `--all-retrying`: an error (exit 1) naming the refused jobs.
fn bulk_answer(state: JobState, bulk: &Bulk) -> Result<String, JobsCliError> {
    let done = format!("retried {} {state} job(s)", bulk.retried);
    if bulk.refused == 0 {
        return Ok(done);
    }
    let mut lines: Vec<String> = bulk
        .refusals
        .iter()
        .map(|r| format!("{} ({}): {}", r.id, r.kind, r.reason))
        .collect();
    let unlisted = bulk.refused - bulk.refusals.len() as u64;
    if unlisted > 0 {
        lines.push(format!("… and {unlisted} more"));
    }
    Err(JobsCliError::Partial(format!(
        "{done}; {} cannot be retried:\n  {}",
        bulk.refused,
        lines.join("\n  ")
    )))
}

/// Applies `op` to each id; reports which ids did not move.
async fn act_on<'a, F, Fut>(ids: &'a [String], verb: &str, op: F) -> Result<String, JobsCliError>
where
    F: Fn(&'a str) -> Fut,
    Fut: std::future::Future<Output = Result<bool, QueueError>>,
{
    let mut moved = 0;
    let mut refused = Vec::new();
    for id in ids {
        if op(id).await? {
            moved += 1;
        } else {
            refused.push(id.as_str());
        }
    }
    if refused.is_empty() {
        Ok(format!("{verb} {moved} job(s)"))
    } else {
        Err(JobsCliError::Partial(format!(
            "{verb} {moved} job(s); not found or not in a state that allows it: {}",
            refused.join(", ")
        )))
    }
}
