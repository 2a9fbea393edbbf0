//! Redis backend (skeleton; being written).

/// The Redis queue.
#[derive(Clone)]
pub struct RedisQueue;
