//! The JSON shapes operators see, shared by `moked-worker jobs … --json` and the operator API
//! so the two never drift. With the `openapi` feature these same types are the operator API's
//! schemas (`utoipa::ToSchema`, named as the document names them), so the document cannot
//! drift from the answers either:
//!
//! * a job: [`JobSummary`] itself (`Job`): `{"id","kind","state","attempts","last_error",
//!   "created_at","run_at","finished_at"}`
//! * `show`: [`DetailView`] (`JobDetail`) adds `"payload"` (phone numbers masked), `"history"`
//!   (`{"at","error","worker"}`) and `"started_at"`
//! * a listing: [`JobPage`](super::JobPage) itself (`JobList`): `{"total","jobs","next_cursor"}`
//! * stats: [`StatsView`] (`JobStats`): `{"queued","running","retrying","dead","done",
//!   "discarded","by_kind","oldest_queued_age_s"}`

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{Attempt, JobDetail, JobState, JobSummary, Stats};
use crate::phone::mask_numbers_in;

/// The payload with phone numbers masked: parsed JSON when it parses, else a masked string.
pub fn masked_payload(raw: &str) -> Value {
    let masked = mask_numbers_in(raw);
    serde_json::from_str(&masked).unwrap_or(Value::String(masked))
}

/// A job in full, as operators see it: the stored payload masked, the worker not shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = JobDetail))]
pub struct DetailView {
    /// The listed fields.
    #[serde(flatten)]
    pub summary: JobSummary,
    /// The payload envelope `{"v":1,"data":{…}}` with phone numbers masked (a string when
    /// the stored payload is not JSON).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: Value,
    /// One entry per failed attempt, oldest first.
    pub history: Vec<Attempt>,
    /// When the last attempt started.
    pub started_at: Option<DateTime<Utc>>,
}

/// One job in full.
pub fn detail(d: &JobDetail) -> DetailView {
    DetailView {
        summary: d.summary.clone(),
        payload: masked_payload(&d.payload),
        history: d.history.clone(),
        started_at: d.started_at,
    }
}

/// Jobs per state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateCounts {
    /// Queued.
    pub queued: u64,
    /// Running.
    pub running: u64,
    /// Retrying.
    pub retrying: u64,
    /// Dead.
    pub dead: u64,
    /// Done (until pruned).
    pub done: u64,
    /// Discarded (until pruned).
    pub discarded: u64,
}

impl StateCounts {
    fn of(get: impl Fn(JobState) -> u64) -> Self {
        StateCounts {
            queued: get(JobState::Queued),
            running: get(JobState::Running),
            retrying: get(JobState::Retrying),
            dead: get(JobState::Dead),
            done: get(JobState::Done),
            discarded: get(JobState::Discarded),
        }
    }
}

/// Counts per state, per kind, and the oldest due job's wait.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = JobStats))]
pub struct StatsView {
    /// Counts over all kinds.
    #[serde(flatten)]
    pub counts: StateCounts,
    /// The same counts per kind (kinds with jobs only).
    pub by_kind: BTreeMap<String, StateCounts>,
    /// Seconds since the oldest due queued job became due; null when none waits.
    pub oldest_queued_age_s: Option<f64>,
}

/// Counts per state and kind.
pub fn stats(s: &Stats) -> StatsView {
    StatsView {
        counts: StateCounts::of(|st| s.count(st)),
        by_kind: s
            .by_kind
            .iter()
            .map(|(kind, per)| {
                let counts = StateCounts::of(|st| per.get(&st).copied().unwrap_or(0));
                (kind.clone(), counts)
            })
            .collect(),
        oldest_queued_age_s: s.oldest_queued_age_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

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
        let v = serde_json::to_value(&j).unwrap();
        // In the order `keys` gives: sorted.
        let mut want = vec![
            "attempts",
            "created_at",
            "finished_at",
            "id",
            "kind",
            "last_error",
            "run_at",
            "state",
        ];
        assert_eq!(keys(&v), want);
        assert_eq!(v["state"], "dead");
        let d = JobDetail {
            summary: j,
            payload: "{}".into(),
            history: vec![],
            started_at: None,
            worker: Some("w1#1".into()),
        };
        let v = serde_json::to_value(detail(&d)).unwrap();
        want.extend(["payload", "history", "started_at"]);
        want.sort_unstable();
        assert_eq!(keys(&v), want, "the worker is not shown");
    }

    #[test]
    fn payloads_are_shown_with_numbers_masked() {
        let v = masked_payload(r#"{"v":1,"data":{"from":"+972501234567"}}"#);
        assert_eq!(v["data"]["from"], "+9725****4567");
        let s = serde_json::to_value(stats(&Stats::default())).unwrap();
        assert_eq!(s["dead"], 0);
        assert!(s["by_kind"].as_object().unwrap().is_empty());
    }

    #[test]
    fn stats_give_every_state_overall_and_per_kind() {
        let mut s = Stats::default();
        s.counts.insert(JobState::Dead, 2);
        s.by_kind
            .insert("call.started".into(), [(JobState::Dead, 1)].into());
        s.oldest_queued_age_s = Some(1.5);
        let v = serde_json::to_value(stats(&s)).unwrap();
        let states = ["dead", "discarded", "done", "queued", "retrying", "running"];
        let mut want = states.to_vec();
        want.extend(["by_kind", "oldest_queued_age_s"]);
        want.sort_unstable();
        assert_eq!(keys(&v), want);
        assert_eq!(keys(&v["by_kind"]["call.started"]), states);
        assert_eq!(
            (v["dead"].clone(), v["queued"].clone()),
            (2.into(), 0.into())
        );
        assert_eq!(v["by_kind"]["call.started"]["dead"], 1);
        assert_eq!(v["oldest_queued_age_s"], 1.5);
    }
}
