//! Businesses (tenants) and the Twilio numbers that identify them.
//!
//! A call or WhatsApp message belongs to the business whose number it was sent *to*: a
//! `business_number` row maps an E.164 number to a business. The seed system hard-coded
//! `business_id = 1` (origin defect 8); moked looks the number up instead.
//!
//! **Unknown numbers.** When no `business_number` row matches, the number is recorded on the
//! *default business* (the one named [`DEFAULT_BUSINESS`], created on first use) and the call or
//! message is filed there. Nothing is dropped, the operator sees which numbers landed on the
//! default business, and moving a number to its real business later is one row update (past
//! calls keep the business they were filed under). A number that does not parse at all goes to
//! the default business without being recorded.
//!
//! **Race safety.** Two workers may see the same new number at once. Both the default business
//! (`UNIQUE (name)`) and the number (`PRIMARY KEY (phone)`) are created with
//! `INSERT … ON CONFLICT DO NOTHING` and then read back, so every worker ends up with the row
//! that won; there is no read-then-insert window.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::AnyConnection;

use super::error::StoreError;
use super::{Db, from_ms, now_ms};
use crate::phone::E164;

/// The name of the business unknown numbers are filed under.
pub const DEFAULT_BUSINESS: &str = "default";

/// A business (tenant). Serialises as the operator API shows the business of a call or
/// message (`BusinessRef`): id and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = BusinessRef))]
#[serde(deny_unknown_fields)]
pub struct Business {
    /// Row id.
    pub id: i64,
    /// Display name; unique.
    pub name: String,
    /// When it was created.
    #[serde(skip_serializing)]
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct BusinessRow {
    id: i64,
    name: String,
    created_at: i64,
}

impl From<BusinessRow> for Business {
    fn from(r: BusinessRow) -> Self {
        Business {
            id: r.id,
            name: r.name,
            created_at: from_ms(r.created_at),
        }
    }
}

/// The business named `name`, created when missing (race-free: `ON CONFLICT (name)`, then read
/// back). The common case — it exists — is a single read.
pub async fn ensure_business(db: &Db, name: &str) -> Result<Business, StoreError> {
    ensure_business_on(&mut *db.pool().acquire().await?, name).await
}

/// [`ensure_business`] on one connection (or inside a transaction).
pub(crate) async fn ensure_business_on(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<Business, StoreError> {
    if let Some(b) = find_business_by_name(conn, name).await? {
        return Ok(b);
    }
    sqlx::query(
        "INSERT INTO business (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    find_business_by_name(conn, name)
        .await?
        .ok_or(StoreError::NotFound)
}

async fn find_business_by_name(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<Option<Business>, StoreError> {
    Ok(sqlx::query_as::<_, BusinessRow>(
        "SELECT id, name, created_at FROM business WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(conn)
    .await?
    .map(Business::from))
}

/// The default business ([`DEFAULT_BUSINESS`]), created on first use.
pub async fn default_business(db: &Db) -> Result<Business, StoreError> {
    ensure_business(db, DEFAULT_BUSINESS).await
}

/// The business with this id.
pub async fn get_business(db: &Db, id: i64) -> Result<Option<Business>, StoreError> {
    Ok(
        sqlx::query_as::<_, BusinessRow>("SELECT id, name, created_at FROM business WHERE id = $1")
            .bind(id)
            .fetch_optional(db.pool())
            .await?
            .map(Business::from),
    )
}

/// The business that owns `number`, if a `business_number` row says so.
pub async fn find_business_by_number(
    db: &Db,
    number: &E164,
) -> Result<Option<Business>, StoreError> {
    find_business_by_number_on(&mut *db.pool().acquire().await?, number).await
}

async fn find_business_by_number_on(
    conn: &mut AnyConnection,
    number: &E164,
) -> Result<Option<Business>, StoreError> {
    Ok(sqlx::query_as::<_, BusinessRow>(
        "SELECT b.id, b.name, b.created_at FROM business_number n \
         JOIN business b ON b.id = n.business_id WHERE n.phone = $1",
    )
    .bind(number.as_str())
    .fetch_optional(conn)
    .await?
    .map(Business::from))
}

/// Maps `number` to `business_id`, moving it if another business had it (an operator action).
pub async fn assign_number(db: &Db, business_id: i64, number: &E164) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO business_number (phone, business_id) VALUES ($1, $2) \
         ON CONFLICT (phone) DO UPDATE SET business_id = excluded.business_id",
    )
    .bind(number.as_str())
    .bind(business_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The business a call or message to `called` belongs to.
///
/// `Some(number)` that no business owns is recorded on the default business (first writer wins
/// if two workers race; both then read the winner). `None` (the number did not parse or was
/// not sent) gives the default business and records nothing.
pub async fn business_for_called(db: &Db, called: Option<&E164>) -> Result<Business, StoreError> {
    business_for_called_on(&mut *db.pool().acquire().await?, called).await
}

/// [`business_for_called`] on one connection (or inside a transaction).
pub(crate) async fn business_for_called_on(
    conn: &mut AnyConnection,
    called: Option<&E164>,
) -> Result<Business, StoreError> {
    let Some(number) = called else {
        return ensure_business_on(conn, DEFAULT_BUSINESS).await;
    };
    if let Some(b) = find_business_by_number_on(conn, number).await? {
        return Ok(b);
    }
    let default = ensure_business_on(conn, DEFAULT_BUSINESS).await?;
    let recorded = sqlx::query(
        "INSERT INTO business_number (phone, business_id) VALUES ($1, $2) ON CONFLICT (phone) DO NOTHING",
    )
    .bind(number.as_str())
    .bind(default.id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if recorded > 0 {
        tracing::info!(
            number = %number.masked(),
            business_id = default.id,
            "unknown business number recorded on the default business"
        );
    }
    // Read back: a concurrent worker (or an operator) may have mapped it first.
    find_business_by_number_on(conn, number)
        .await?
        .ok_or(StoreError::NotFound)
}
