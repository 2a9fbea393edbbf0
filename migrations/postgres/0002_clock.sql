-- The clock's tasks (moked-worker clock): reconciliation bookkeeping and the latest health check.
-- Keep in step with ../sqlite/0002_clock.sql. Times are BIGINT milliseconds since the epoch.

-- One row per thing `clock.reconcile` asked Twilio about: kind is call (CallSid), message
-- (MessageSid) or recording (the CallSid whose recordings were listed). A row holds the item
-- back until next_at (the wait doubles with every check that changed nothing), so a stuck item
-- does not take the batch of every run, and a run retried after a 429 does not ask again about
-- what it already reconciled.
CREATE TABLE reconcile_check (
    kind       TEXT NOT NULL,
    sid        TEXT NOT NULL,
    checks     BIGINT NOT NULL,            -- how many times it was checked
    checked_at BIGINT NOT NULL,
    next_at    BIGINT NOT NULL,            -- not a candidate again before this
    outcome    TEXT,                       -- what the last check saw (status, "2 enqueued", "404")
    PRIMARY KEY (kind, sid)
);
CREATE INDEX reconcile_check_by_time ON reconcile_check (checked_at);

-- Completed calls by end time: the candidates of "the recording never arrived".
CREATE INDEX call_completed ON call (ended_at) WHERE status = 'completed';

-- The latest result of `clock.health` (one row per name; today only `clock.health`), read by
-- the intake's /api/ready to say "degraded" when the queue lags.
CREATE TABLE health_check (
    name            TEXT PRIMARY KEY,
    status          TEXT NOT NULL,         -- ok|degraded
    checked_at      BIGINT NOT NULL,
    queue_lag_ms    BIGINT,                -- age of the oldest due queued job (or of this check's own wait)
    lag_degraded_ms BIGINT NOT NULL,       -- QUEUE_LAG_DEGRADED when it was checked
    detail          TEXT NOT NULL          -- JSON: one entry per check
);
