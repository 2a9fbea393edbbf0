//! `moked-worker health`: asks the moked process in this container for its `/health` and exits
//! 0 (healthy) or 1 — the `HEALTHCHECK` of the container images, which have no curl.
//!
//! It asks `/health` on `127.0.0.1:METRICS_PORT` when set (a worker's or a clock's status
//! endpoint, [`crate::status`]), else on the intake's `PORT` (8080), unless `--url` names
//! another.

use std::time::Duration;

/// `moked-worker health`: where to ask.
#[derive(Debug, Clone, clap::Args)]
pub struct HealthArgs {
    /// The URL to ask. Default: /health on 127.0.0.1:METRICS_PORT when set, else on PORT
    /// (8080), i.e. the moked process in the same container.
    #[arg(long)]
    pub url: Option<String>,
}

/// The URL `moked-worker health` asks when none is given, from `METRICS_PORT` and `PORT`.
pub fn default_health_url(metrics_port: Option<&str>, port: Option<&str>) -> String {
    let pick = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let port = pick(metrics_port)
        .or_else(|| pick(port))
        .unwrap_or_else(|| "8080".to_owned());
    format!("http://127.0.0.1:{port}/health")
}

/// Asks the URL; Ok with a line on a 2xx answer, Err with the reason otherwise.
pub async fn probe(args: &HealthArgs) -> Result<String, String> {
    let url = args.url.clone().unwrap_or_else(|| {
        default_health_url(
            std::env::var("METRICS_PORT").ok().as_deref(),
            std::env::var("PORT").ok().as_deref(),
        )
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| e.to_string())?;
    match client.get(&url).send().await {
        Ok(r) if r.status().is_success() => Ok(format!("healthy: {url} answered {}", r.status())),
        Ok(r) => Err(format!("unhealthy: {url} answered {}", r.status())),
        Err(e) => Err(format!("unhealthy: {url}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_asks_the_metrics_port_first_then_the_intake_port() {
        assert_eq!(
            default_health_url(Some("9191"), Some("8080")),
            "http://127.0.0.1:9191/health"
        );
        assert_eq!(
            default_health_url(None, Some("5000")),
            "http://127.0.0.1:5000/health"
        );
        assert_eq!(
            default_health_url(Some(" "), None),
            "http://127.0.0.1:8080/health"
        );
    }
}
