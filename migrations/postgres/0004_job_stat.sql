-- Cluster-wide job outcome counters (jobs/src/queue/outcomes.rs): per minute (span 'm', bucket =
-- epoch minute), per hour ('h', epoch hour) and in total ('t', bucket 0), by kind and outcome
-- (done, retry, dead). Workers add to them on each heartbeat; old buckets are deleted then.
CREATE TABLE job_stat (
    span TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (span, bucket, kind, outcome)
);
