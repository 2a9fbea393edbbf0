//! The store's one error type, and how a job handler reads it.
//!
//! A store function fails for one of three reasons, and the worker treats them differently:
//! * [`StoreError::Database`] — the database refused or was unreachable. Every store write is
//!   idempotent (`ON CONFLICT`, conditional updates), so the job is simply tried again
//!   ([`JobError::Transient`]).
//! * [`StoreError::NotFound`] — the row the caller named does not exist (e.g. attaching a
//!   provider sid to a message id we never created). Trying again will not create it.
//! * [`StoreError::Invalid`] — the input contradicts the stored data or the vocabulary (an
//!   unknown status where a known one is required, a provider sid already attached to another
//!   message). Also not worth retrying.

use crate::retry::JobError;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (connection, timeout, constraint we did not expect).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The named row does not exist.
    #[error("not found")]
    NotFound,
    /// The input cannot be stored as asked.
    #[error("invalid: {0}")]
    Invalid(String),
}

impl StoreError {
    /// True when the database reported a unique-constraint violation.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => e.is_unique_violation(),
            _ => false,
        }
    }
}

impl From<StoreError> for JobError {
    /// Database trouble is retried; missing or contradictory data goes to dead at once.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Database(_) => JobError::Transient(e.to_string()),
            StoreError::NotFound | StoreError::Invalid(_) => JobError::Permanent(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_are_retried_and_bad_input_is_not() {
        let db: JobError = StoreError::Database(sqlx::Error::PoolTimedOut).into();
        assert!(matches!(db, JobError::Transient(_)), "{db:?}");
        let missing: JobError = StoreError::NotFound.into();
        assert!(matches!(missing, JobError::Permanent(_)), "{missing:?}");
        let invalid: JobError = StoreError::Invalid("bad".into()).into();
        assert_eq!(invalid, JobError::Permanent("invalid: bad".into()));
    }
}
