//! Prism serving Twilio's official REST OpenAPI document (`tests/twilio/prism.sh`), the mock the
//! REST-shape tests point their Twilio client at. `scripts/test` starts it and exports
//! `MOKED_PRISM_URL`; in CI its absence fails the test, locally the test is skipped with a note.

/// Prism's base URL (no trailing slash), or `None` (with a note on stderr) when
/// `MOKED_PRISM_URL` is unset outside CI; panics when it is unset and `CI` is set (to anything
/// but empty, `0` or `false`).
pub fn prism_url() -> Option<String> {
    match std::env::var("MOKED_PRISM_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().trim_end_matches('/').to_owned()),
        _ if flag("CI") => panic!(
            "MOKED_PRISM_URL is unset in CI: scripts/test must start Prism (tests/twilio/prism.sh start 4010)"
        ),
        _ => {
            eprintln!(
                "SKIPPED: MOKED_PRISM_URL is unset; start Prism with `tests/twilio/prism.sh start 4010` and export MOKED_PRISM_URL=http://127.0.0.1:4010"
            );
            None
        }
    }
}

/// Whether the environment variable `name` is set to something other than empty, `0` or `false`.
pub fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}
