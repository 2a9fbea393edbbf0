//! The JSON shapes operators see, shared by `moked-worker jobs … --json` and the operator API
//! so the two never drift:
//!
//! * a job: `{"id","kind","state","attempts","last_error","created_at","run_at","finished_at"}`
//! * `show` adds `"payload"` (phone numbers masked) and `"history"` (`{"at","error","worker"}`)
//! * a listing: `{"total","jobs","next_cursor"}`
//! * stats: `{"queued","running","retrying","dead","done","discarded","by_kind","oldest_queued_age_s"}`

use serde_json::{Map, Value, json};

use super::{JobDetail, JobPage, JobState, JobSummary, Stats};
use crate::phone::mask_numbers_in;

/// One job.
pub fn job(j: &JobSummary) -> Value {
    json!({
        "id": j.id,
        "kind": j.kind,
        "state": j.state,
        "attempts": j.attempts,
        "last_error": j.last_error,
        "created_at": j.created_at,
        "run_at": j.run_at,
        "finished_at": j.finished_at,
    })
}

/// The payload with phone numbers masked: parsed JSON when it parses, else a masked string.
pub fn masked_payload(raw: &str) -> Value {
    let masked = mask_numbers_in(raw);
    serde_json::from_str(&masked).unwrap_or(Value::String(masked))
}

/// One job in full.
pub fn detail(d: &JobDetail) -> Value {
    let mut v = job(&d.summary);
    if let Value::Object(m) = &mut v {
        m.insert("payload".into(), masked_payload(&d.payload));
        m.insert(
            "history".into(),
            Value::Array(
                d.history
                    .iter()
                    .map(|a| json!({"at": a.at, "error": a.error, "worker": a.worker}))
                    .collect(),
            ),
        );
        m.insert("started_at".into(), json!(d.started_at));
    }
    v
}

/// A page of jobs.
pub fn page(p: &JobPage) -> Value {
    json!({
        "total": p.total,
        "jobs": p.jobs.iter().map(job).collect::<Vec<_>>(),
        "next_cursor": p.next_cursor,
    })
}

fn counts(get: impl Fn(JobState) -> u64) -> Map<String, Value> {
    JobState::ALL
        .into_iter()
        .map(|s| (s.as_str().to_owned(), json!(get(s))))
        .collect()
}

/// Counts per state and kind.
pub fn stats(s: &Stats) -> Value {
    let mut m = counts(|st| s.count(st));
    let by_kind: Map<String, Value> = s
        .by_kind
        .iter()
        .map(|(kind, per)| {
            let c = counts(|st| per.get(&st).copied().unwrap_or(0));
            (kind.clone(), Value::Object(c))
        })
        .collect();
    m.insert("by_kind".into(), Value::Object(by_kind));
    m.insert("oldest_queued_age_s".into(), json!(s.oldest_queued_age_s));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn a_job_has_exactly_the_documented_fields() {
        let j = JobSummary {
            id: "1".into(),
            kind: "call.started".into(),
            state: JobState::Dead,
            attempts: 3,
            last_error: Some("boom".into()),
            created_at: Utc::now(),
            run_at: Utc::now(),
            finished_at: None,
        };
        let v = job(&j);
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = vec![
            "id",
            "kind",
            "state",
            "attempts",
            "last_error",
            "created_at",
            "run_at",
            "finished_at",
        ];
        want.sort_unstable();
        let mut got = keys.clone();
        got.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(v["state"], "dead");
    }

    #[test]
    fn payloads_are_shown_with_numbers_masked() {
        let v = masked_payload(r#"{"v":1,"data":{"from":"+972501234567"}}"#);
        assert_eq!(v["data"]["from"], "+9725****4567");
        let s = stats(&Stats::default());
        assert_eq!(s["dead"], 0);
        assert!(s["by_kind"].as_object().unwrap().is_empty());
    }
}
