//! The operator audit log (`operator_audit`): who retried, discarded or sent what, when, with
//! what outcome and from which address.
//!
//! The intake writes one entry per operator action after the action ran (so the outcome is
//! known) and serves them newest first at `GET /api/audit`. An entry never holds a token: the
//! operator is the *name* the token belongs to (`OPERATOR_TOKENS=name:token`). Ids are UUIDv7,
//! so their order is the order of the actions and an id is the paging cursor.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::StoreError;
use super::{Db, from_ms, now_ms};

/// The most entries one page returns.
pub const MAX_AUDIT_PAGE: u32 = 500;

/// An entry to record: what an operator did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = OperatorAction))]
pub struct NewAudit {
    /// The operator's name (never a token).
    #[cfg_attr(feature = "openapi", schema(example = "dana"))]
    pub operator: String,
    /// `job.retry`, `job.discard`, `jobs.retry`, `jobs.discard` or `whatsapp.send`.
    #[cfg_attr(feature = "openapi", schema(example = "job.retry"))]
    pub action: String,
    /// What it acted on: a job id, a message id, or `state=…&kind=…` for a bulk action.
    pub target: String,
    /// `ok`, `refused` or `conflict`.
    #[cfg_attr(feature = "openapi", schema(example = "ok"))]
    pub outcome: String,
    /// For a person: the reason of a refusal, how many jobs a bulk action moved, ….
    pub detail: String,
    /// The client address, when known.
    pub ip: Option<String>,
}

/// A recorded entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = AuditEntryView))]
pub struct AuditEntry {
    /// Its id (UUIDv7; pass it as `before` to page on).
    pub id: String,
    /// When it was recorded.
    pub at: DateTime<Utc>,
    /// The entry.
    #[serde(flatten)]
    pub entry: NewAudit,
}

/// One page of entries, newest first (`GET /api/audit` answers it as it is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = AuditList))]
#[serde(deny_unknown_fields)]
pub struct AuditPage {
    /// This page.
    pub entries: Vec<AuditEntry>,
    /// The id to pass as `before` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: String,
    at: i64,
    operator: String,
    action: String,
    target: String,
    outcome: String,
    detail: String,
    ip: Option<String>,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            id: r.id,
            at: from_ms(r.at),
            entry: NewAudit {
                operator: r.operator,
                action: r.action,
                target: r.target,
                outcome: r.outcome,
                detail: r.detail,
                ip: r.ip,
            },
        }
    }
}

/// Records `entry` now; returns its id.
pub async fn record(db: &Db, entry: &NewAudit) -> Result<String, StoreError> {
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO operator_audit (id, at, operator, action, target, outcome, detail, ip) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(now_ms())
    .bind(&entry.operator)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(&entry.outcome)
    .bind(&entry.detail)
    .bind(entry.ip.as_deref())
    .execute(db.pool())
    .await?;
    Ok(id)
}

/// Entries newest first, `limit` (1..=[`MAX_AUDIT_PAGE`]) at a time, older than the entry
/// `before` when given. A `before` that is not an entry id is [`StoreError::Invalid`].
pub async fn list(db: &Db, before: Option<&str>, limit: u32) -> Result<AuditPage, StoreError> {
    let limit = limit.clamp(1, MAX_AUDIT_PAGE);
    let fetch = i64::from(limit) + 1;
    const COLUMNS: &str = "id, at, operator, action, target, outcome, detail, ip";
    let rows = match before {
        Some(cursor) => {
            let cursor = uuid::Uuid::parse_str(cursor.trim())
                .map_err(|_| StoreError::Invalid(format!("bad audit cursor `{cursor}`")))?
                .to_string();
            sqlx::query_as::<_, AuditRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM operator_audit WHERE id < $1 ORDER BY id DESC LIMIT $2"
            )))
            .bind(cursor)
            .bind(fetch)
            .fetch_all(db.pool())
            .await?
        }
        None => {
            sqlx::query_as::<_, AuditRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM operator_audit ORDER BY id DESC LIMIT $1"
            )))
            .bind(fetch)
            .fetch_all(db.pool())
            .await?
        }
    };
    let (entries, next_cursor) = super::page(
        rows.into_iter().map(AuditEntry::from).collect(),
        limit,
        |last: &AuditEntry| last.id.clone(),
    );
    Ok(AuditPage {
        entries,
        next_cursor,
    })
}
