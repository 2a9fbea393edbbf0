-- The operator console (issue 18): who did what, and the clock's published schedule.
-- Keep in step with ../sqlite/0005_console.sql. Times are BIGINT milliseconds since the epoch.

-- One row per operator action (retry, discard, bulk retry/discard, WhatsApp send), written by
-- the intake after the action: who (the OPERATOR_TOKENS name, never the token), what, the
-- outcome and the client address. id is a UUIDv7, so its order is the order of the actions
-- and it doubles as the paging cursor of GET /api/audit.
CREATE TABLE operator_audit (
    id       TEXT PRIMARY KEY,
    at       BIGINT NOT NULL,
    operator TEXT NOT NULL,
    action   TEXT NOT NULL,                -- job.retry|job.discard|jobs.retry|jobs.discard|whatsapp.send
    target   TEXT NOT NULL,                -- job id, message id, or state+kind of a bulk action
    outcome  TEXT NOT NULL,                -- ok|refused|conflict
    detail   TEXT NOT NULL,
    ip       TEXT
);
CREATE INDEX operator_audit_by_time ON operator_audit (at);

-- The clock's schedule as the clock process last published it (at start and on every fired
-- tick), so the intake, which has no clock settings, can show it. One row per task.
CREATE TABLE clock_task (
    task        TEXT PRIMARY KEY,          -- reconcile|health|cleanup
    kind        TEXT NOT NULL,             -- the job kind it enqueues
    cron        TEXT NOT NULL,
    tz          TEXT NOT NULL,             -- CLOCK_TZ
    last_tick   BIGINT,                    -- the last tick fired (its scheduled time)
    last_job_id TEXT,                      -- the job of that tick
    next_tick   BIGINT,
    updated_at  BIGINT NOT NULL
);
