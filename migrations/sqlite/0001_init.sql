-- moked schema (SQLite). Keep in step with ../postgres/0001_init.sql: same tables, columns and
-- meaning. Times are BIGINT milliseconds since the Unix epoch (UTC).

-- The durable queue (used when REDIS_URL is unset).
CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,          -- UUIDv7
    kind        TEXT NOT NULL,             -- stable kind name, e.g. call.started
    payload     TEXT NOT NULL,             -- versioned JSON envelope
    state       TEXT NOT NULL,             -- queued|running|retrying|dead|done|discarded
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  BIGINT NOT NULL,
    run_at      BIGINT NOT NULL,           -- due time
    started_at  BIGINT,
    finished_at BIGINT,
    state_at    BIGINT NOT NULL,           -- when it entered its state (listing order, pruning)
    session     TEXT                       -- owning worker session while running
);
-- Claiming: due jobs oldest first (fetch orders by run_at, id).
CREATE INDEX jobs_due ON jobs (run_at, id) WHERE state IN ('queued', 'retrying');
-- Listing (keyset on state_at DESC, id DESC) and its COUNT(*), one index per filter shape;
-- jobs_by_state also serves pruning and the stats GROUP BY.
CREATE INDEX jobs_by_state ON jobs (state, state_at, id);
CREATE INDEX jobs_by_state_kind ON jobs (state, kind, state_at, id);
CREATE INDEX jobs_by_kind ON jobs (kind, state_at, id);
CREATE INDEX jobs_by_state_at ON jobs (state_at, id);
-- Recovery: the running jobs of one session.
CREATE INDEX jobs_running_by_session ON jobs (session) WHERE state = 'running';

-- One row per failed (or abandoned) attempt; id keeps the order of rows with the same `at`.
CREATE TABLE job_attempts (
    id     INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at     BIGINT NOT NULL,
    error  TEXT NOT NULL,
    worker TEXT NOT NULL
);
CREATE INDEX job_attempts_by_job ON job_attempts (job_id, at, id);

-- Dedupe keys of webhooks and other enqueues (idempotency token or natural key). A key whose
-- expires_at has passed is taken over by the next enqueue with that key (ON CONFLICT … WHERE).
CREATE TABLE webhook_receipt (
    key        TEXT PRIMARY KEY,
    job_id     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX webhook_receipt_expiry ON webhook_receipt (expires_at);

-- Live worker sessions (name#uuid per process start) and their last heartbeat.
CREATE TABLE worker_sessions (
    session      TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

-- The CRM side.
CREATE TABLE business (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,       -- unique: the default business is found by name, race-free
    created_at BIGINT NOT NULL
);

-- A business's Twilio numbers (E.164); a call to one of them belongs to that business.
CREATE TABLE business_number (
    phone       TEXT PRIMARY KEY,
    business_id BIGINT NOT NULL REFERENCES business (id)
);

CREATE TABLE customer (
    id              INTEGER PRIMARY KEY,
    business_id     BIGINT NOT NULL REFERENCES business (id),
    phone           TEXT NOT NULL,          -- E.164
    name            TEXT,
    last_inbound_at BIGINT,                 -- last inbound WhatsApp (24-hour window)
    created_at      BIGINT NOT NULL,
    UNIQUE (business_id, phone)
);

CREATE TABLE call (
    id          INTEGER PRIMARY KEY,
    call_sid    TEXT NOT NULL UNIQUE,
    business_id BIGINT REFERENCES business (id),
    customer_id BIGINT REFERENCES customer (id),
    from_phone  TEXT,
    to_phone    TEXT,
    status      TEXT NOT NULL,              -- Twilio call status vocabulary only
    duration_s  BIGINT,
    started_at  BIGINT NOT NULL,
    ended_at    BIGINT,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX call_by_customer ON call (customer_id, started_at);
CREATE INDEX call_open ON call (updated_at) WHERE status NOT IN ('completed', 'busy', 'failed', 'no-answer', 'canceled');

-- Everything that happened to a call, in order: status changes, recording stored, transcript
-- stored, failures. dedupe_key makes redelivered events idempotent.
CREATE TABLE call_event (
    id         INTEGER PRIMARY KEY,
    call_sid   TEXT NOT NULL,
    type       TEXT NOT NULL,               -- status|recording.stored|transcript.stored|recording.failed|…
    status     TEXT,
    detail     TEXT,
    at         BIGINT NOT NULL,
    dedupe_key TEXT UNIQUE
);
CREATE INDEX call_event_by_call ON call_event (call_sid, at);

CREATE TABLE recording (
    id                   INTEGER PRIMARY KEY,
    recording_sid        TEXT NOT NULL UNIQUE,
    call_sid             TEXT NOT NULL,
    status               TEXT NOT NULL,     -- pending|stored|failed
    source_url           TEXT,
    media_location       TEXT,              -- object store key
    content_type         TEXT,
    size_bytes           BIGINT,
    duration_s           BIGINT,
    transcription_status TEXT NOT NULL DEFAULT 'pending', -- pending|done|not_transcribed|failed
    error                TEXT,
    created_at           BIGINT NOT NULL,
    stored_at            BIGINT,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX recording_by_call ON recording (call_sid);

CREATE TABLE transcript (
    id            INTEGER PRIMARY KEY,
    recording_sid TEXT NOT NULL UNIQUE,
    call_sid      TEXT NOT NULL,
    text          TEXT NOT NULL,
    language      TEXT NOT NULL,
    provider      TEXT NOT NULL,
    model         TEXT,
    duration_s    BIGINT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX transcript_by_call ON transcript (call_sid);

CREATE TABLE whatsapp_message (
    id                TEXT PRIMARY KEY,     -- our id (UUIDv7)
    business_id       BIGINT REFERENCES business (id),
    customer_id       BIGINT REFERENCES customer (id),
    provider          TEXT NOT NULL,        -- twilio|baileys
    provider_sid      TEXT UNIQUE,
    direction         TEXT NOT NULL,        -- inbound|outbound
    to_phone          TEXT,                 -- NULL when the provider did not say (Baileys inbound)
    from_phone        TEXT,
    body              TEXT,
    content_sid       TEXT,
    content_variables TEXT,
    media             TEXT,                 -- JSON list of {url, content_type, location}
    status            TEXT NOT NULL,
    error_code        BIGINT,
    error_message     TEXT,
    idempotency_key   TEXT UNIQUE,
    attempt_started_at BIGINT,              -- when the last send attempt began (ambiguity window)
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    sent_at           BIGINT,
    delivered_at      BIGINT,
    read_at           BIGINT
);
CREATE INDEX whatsapp_message_by_customer ON whatsapp_message (customer_id, created_at);
CREATE INDEX whatsapp_message_open ON whatsapp_message (updated_at) WHERE status IN ('queued', 'accepted', 'scheduled', 'sending', 'sent');

-- Status callbacks, kept raw; also holds callbacks that beat the send result (unknown sid).
CREATE TABLE whatsapp_status_event (
    id            INTEGER PRIMARY KEY,
    message_sid   TEXT NOT NULL,
    status        TEXT NOT NULL,
    error_code    BIGINT,
    error_message TEXT,
    at            BIGINT NOT NULL,
    UNIQUE (message_sid, status)
);
