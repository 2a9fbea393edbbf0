//! Database backend (skeleton; being written).

/// The database queue.
#[derive(Clone)]
pub struct DbQueue;
