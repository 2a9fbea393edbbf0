//! Configuration shared by every binary: the database, the queue, Twilio credentials, the public
//! URL, logging, retention and retry schedules.
//!
//! Each setting is an env var and a clap flag (`#[command(flatten)]` into each binary's CLI).
//! Raw [`CoreArgs`] are parsed once into a typed [`CoreConfig`]; a bad value stops start-up with
//! one line naming the variable ([`ConfigError`]). Secrets are kept in [`SecretString`] (their
//! `Debug` prints `[REDACTED]`) and `--help` never shows their env values. Tests build the
//! typed structs directly and never touch the process environment.
//!
//! The workers' settings that the intake reads too (the WhatsApp provider and sender, the
//! recordings store, the workers' stale window) are declared in [`crate::fleet`]; the settings
//! only one side reads live in that side's crate.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;
use secrecy::SecretString;
use url::Url;

use crate::kinds::JobKind;
use crate::retry::{RetryPolicy, RetrySchedule, parse_duration};

/// A setting that does not parse; the message names the env var.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {var}: {reason}")]
pub struct ConfigError {
    /// The env var.
    pub var: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl ConfigError {
    /// A new error for `var`.
    pub fn new(var: &'static str, reason: impl Into<String>) -> Self {
        ConfigError {
            var,
            reason: reason.into(),
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Raw shared settings, as clap reads them from flags and env vars.
#[derive(Debug, Clone, Args)]
pub struct CoreArgs {
    /// Port the HTTP server listens on (0.0.0.0).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Public base URL Twilio calls (signatures are computed over it). Default http://localhost:$PORT.
    #[arg(long, env = "PUBLIC_HOST")]
    pub public_host: Option<String>,
    /// Twilio Account SID (AC…), for the REST API and recording downloads.
    #[arg(long, env = "TWILIO_ACCOUNT_SID")]
    pub twilio_account_sid: Option<String>,
    /// Twilio Auth Token: verifies webhook signatures and authenticates REST calls.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub twilio_auth_token: Option<String>,
    /// Base URL of the Twilio REST API.
    #[arg(
        long,
        env = "TWILIO_API_BASE",
        default_value = "https://api.twilio.com"
    )]
    pub twilio_api_base: String,
    /// Store (and, without Redis, queue) database: sqlite://PATH or postgres://…
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/moked.db",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Redis URL (redis:// or rediss://). Set: the queue lives in Redis. Unset: in the database.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// TLS Redis URL (rediss://); preferred over REDIS_URL when both are set.
    #[arg(long, env = "REDIS_TLS_URL", hide_env_values = true)]
    pub redis_tls_url: Option<String>,
    /// Accept a self-signed certificate on a rediss:// URL (Heroku Key-Value Store). Off by default.
    /// Same spellings as the other switches (true/false, yes/no, on/off, 1/0).
    #[arg(
        long,
        env = "REDIS_TLS_INSECURE",
        default_value = "false",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub redis_tls_insecure: bool,
    /// Key prefix of every Redis key (lets several deployments or tests share one Redis).
    #[arg(long, env = "QUEUE_PREFIX", default_value = "moked")]
    pub queue_prefix: String,
    /// Bearer token of the operator API and page. Unset: the operator API is off.
    #[arg(long, env = "OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,
    /// Named operator tokens, `name:token,name:token` (names `[A-Za-z0-9._-]{1,64}`): each
    /// operator's actions are audited under their name. OPERATOR_TOKEN may be set beside it.
    #[arg(long, env = "OPERATOR_TOKENS", hide_env_values = true)]
    pub operator_tokens: Option<String>,
    /// Shared secret of the Baileys bridge (X-BAILEYS-SECRET, both directions).
    #[arg(long, env = "BAILEYS_SECRET", hide_env_values = true)]
    pub baileys_secret: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// How long done and discarded jobs are kept (e.g. 24h, 7d).
    #[arg(long, env = "JOB_RETENTION", default_value = "24h")]
    pub job_retention: String,
    /// How long dead jobs are kept for an operator to look at (e.g. 30d).
    #[arg(long, env = "DEAD_JOB_RETENTION", default_value = "30d")]
    pub dead_job_retention: String,
    /// How many dead jobs are kept at most (the newest; older ones are pruned first).
    #[arg(long, env = "DEAD_JOB_MAX", default_value_t = 50_000)]
    pub dead_job_max: u64,
    /// How long webhook dedupe keys are remembered.
    #[arg(long, env = "DEDUPE_TTL", default_value = "24h")]
    pub dedupe_ttl: String,
    /// Default retry schedule of every job kind (delays between attempts).
    #[arg(long, env = "RETRY_SCHEDULE", default_value = "5s,30s,2m,10m,1h,6h")]
    pub retry_schedule: String,
    /// Per-kind overrides of the retry schedule, one per job kind.
    #[command(flatten)]
    pub retry_overrides: RetryOverrides,
}

/// The per-kind retry schedule overrides (`RETRY_SCHEDULE_CALL_STARTED` …
/// `RETRY_SCHEDULE_CLOCK_CLEANUP`), as clap reads them.
///
/// The arguments are made from the job kind table ([`JobKind::ALL`], [`JobKind::retry_env`]),
/// not written out one per kind, so a new kind has its override without a line here; each is
/// what a derived `Option<String>` field would be (same env var, flag, value name and help).
#[derive(Debug, Clone, Default)]
pub struct RetryOverrides(pub BTreeMap<JobKind, String>);

impl RetryOverrides {
    fn arg(kind: JobKind) -> clap::Arg {
        clap::Arg::new(kind.retry_env())
            .long(kind.retry_flag())
            .env(kind.retry_env())
            .value_name(kind.retry_env())
            .value_parser(clap::value_parser!(String))
            .action(clap::ArgAction::Set)
            .required(false)
            .help(format!("Retry schedule override for {kind}"))
    }
}

impl clap::FromArgMatches for RetryOverrides {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut overrides = RetryOverrides::default();
        overrides.update_from_arg_matches(matches)?;
        Ok(overrides)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        for kind in JobKind::ALL {
            if let Some(value) = matches.get_one::<String>(kind.retry_env()) {
                self.0.insert(kind, value.clone());
            }
        }
        Ok(())
    }
}

impl Args for RetryOverrides {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        JobKind::ALL
            .into_iter()
            .fold(cmd, |cmd, kind| cmd.arg(RetryOverrides::arg(kind)))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        RetryOverrides::augment_args(cmd)
    }
}

/// Twilio account settings.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// Account SID, if configured.
    pub account_sid: Option<String>,
    /// Auth token, if configured. Without it every webhook is refused (fail closed).
    pub auth_token: Option<SecretString>,
    /// REST API base URL, without a trailing slash.
    pub api_base: String,
}

/// Where the queue lives.
#[derive(Debug, Clone)]
pub enum QueueBackend {
    /// Redis at this URL (may carry a password).
    Redis(SecretString),
    /// The store's database.
    Database,
}

/// Typed shared settings.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Listen port.
    pub port: u16,
    /// Public base URL without a trailing slash (`https://moked.example.com`).
    pub public_host: String,
    /// Twilio settings.
    pub twilio: TwilioConfig,
    /// Database URL.
    pub database_url: SecretString,
    /// Queue backend.
    pub queue: QueueBackend,
    /// Redis key prefix.
    pub queue_prefix: String,
    /// Operator bearer token (None: operator API off).
    pub operator_token: Option<SecretString>,
    /// Named operator tokens (`OPERATOR_TOKENS`); with `operator_token` the operator API is on
    /// when either is set ([`CoreConfig::operators`]).
    pub operator_tokens: Vec<OperatorToken>,
    /// Baileys bridge secret (None: the Baileys webhook refuses everything).
    pub baileys_secret: Option<SecretString>,
    /// Log format.
    pub log_format: LogFormat,
    /// Retention of done/discarded jobs.
    pub job_retention: Duration,
    /// Retention of dead jobs (`DEAD_JOB_RETENTION`).
    pub dead_job_retention: Duration,
    /// How many dead jobs are kept at most (`DEAD_JOB_MAX`).
    pub dead_job_max: u64,
    /// Webhook dedupe window.
    pub dedupe_ttl: Duration,
    /// Retry schedules.
    pub retry: RetryPolicy,
}

fn parse_url(var: &'static str, value: &str, schemes: &[&str]) -> Result<Url, ConfigError> {
    let url = Url::parse(value)
        .map_err(|e| ConfigError::new(var, format!("`{value}` is not a URL ({e})")))?;
    if !schemes.contains(&url.scheme()) {
        return Err(ConfigError::new(
            var,
            format!(
                "scheme `{}` not supported (use {})",
                url.scheme(),
                schemes.join(", ")
            ),
        ));
    }
    Ok(url)
}

/// Trims a URL's trailing slash so paths can be appended.
fn base(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// An operator's name and bearer token (`OPERATOR_TOKENS`).
#[derive(Debug, Clone)]
pub struct OperatorToken {
    /// The name actions are audited and logged under.
    pub name: String,
    /// The token.
    pub token: SecretString,
}

/// The name `OPERATOR_TOKEN` (the single, unnamed token) is audited under.
pub const UNNAMED_OPERATOR: &str = "operator";

/// Parses `name:token,name:token`. Names are `[A-Za-z0-9._-]{1,64}` and unique, tokens
/// non-empty and unique (a shared token could not say who acted). Errors never quote a token.
fn parse_operator_tokens(value: &str) -> Result<Vec<OperatorToken>, ConfigError> {
    use secrecy::ExposeSecret;
    let err = |reason: String| ConfigError::new("OPERATOR_TOKENS", reason);
    let mut out: Vec<OperatorToken> = Vec::new();
    for (i, item) in value.split(',').map(str::trim).enumerate() {
        if item.is_empty() {
            continue;
        }
        let Some((name, token)) = item.split_once(':') else {
            return Err(err(format!("entry {} is not name:token", i + 1)));
        };
        let (name, token) = (name.trim(), token.trim());
        let valid_name = (1..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid_name {
            return Err(err(format!(
                "entry {}: an operator name is 1 to 64 of A-Z a-z 0-9 . _ -",
                i + 1
            )));
        }
        if token.is_empty() {
            return Err(err(format!("operator `{name}` has an empty token")));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(err(format!("operator `{name}` is named twice")));
        }
        if out.iter().any(|o| o.token.expose_secret() == token) {
            return Err(err(format!(
                "operator `{name}` has the token of another operator"
            )));
        }
        out.push(OperatorToken {
            name: name.to_owned(),
            token: SecretString::from(token.to_owned()),
        });
    }
    if out.is_empty() {
        return Err(err("no name:token entry".into()));
    }
    Ok(out)
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl CoreArgs {
    /// Parses and checks every shared setting.
    pub fn into_config(self) -> Result<CoreConfig, ConfigError> {
        let public_host = match non_empty(self.public_host) {
            Some(v) => base(&parse_url("PUBLIC_HOST", &v, &["http", "https"])?),
            None => format!("http://localhost:{}", self.port),
        };
        let api_base = base(&parse_url(
            "TWILIO_API_BASE",
            &self.twilio_api_base,
            &["http", "https"],
        )?);
        let db = self.database_url.trim().to_owned();
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        let redis = match (non_empty(self.redis_tls_url), non_empty(self.redis_url)) {
            (Some(tls), _) => {
                parse_url("REDIS_TLS_URL", &tls, &["rediss", "redis"])?;
                QueueBackend::Redis(tls.into())
            }
            (None, Some(plain)) => {
                parse_url("REDIS_URL", &plain, &["redis", "rediss"])?;
                QueueBackend::Redis(plain.into())
            }
            (None, None) => QueueBackend::Database,
        };
        // The redis crate skips certificate checks for a `#insecure` fragment; we add it only
        // on explicit opt-in.
        let redis = match redis {
            QueueBackend::Redis(url) if self.redis_tls_insecure => {
                use secrecy::ExposeSecret;
                let url = url.expose_secret();
                if !url.starts_with("rediss://") {
                    return Err(ConfigError::new(
                        "REDIS_TLS_INSECURE",
                        "only applies to a rediss:// URL",
                    ));
                }
                let base = url.split('#').next().unwrap_or(url);
                QueueBackend::Redis(format!("{base}#insecure").into())
            }
            other => other,
        };
        let dur = |var: &'static str, v: &str| {
            parse_duration(v).map_err(|reason| ConfigError::new(var, reason))
        };
        let sched = |var: &'static str, v: &str| {
            v.parse::<RetrySchedule>()
                .map_err(|e| ConfigError::new(var, e.to_string()))
        };
        let mut retry = RetryPolicy::new(sched("RETRY_SCHEDULE", &self.retry_schedule)?);
        for (kind, value) in self.retry_overrides.0 {
            if let Some(v) = non_empty(Some(value)) {
                retry = retry.with(kind, sched(kind.retry_env(), &v)?);
            }
        }
        if self.queue_prefix.is_empty() || self.queue_prefix.contains(char::is_whitespace) {
            return Err(ConfigError::new("QUEUE_PREFIX", "must be a non-empty word"));
        }
        Ok(CoreConfig {
            port: self.port,
            public_host,
            twilio: TwilioConfig {
                account_sid: non_empty(self.twilio_account_sid),
                auth_token: non_empty(self.twilio_auth_token).map(SecretString::from),
                api_base,
            },
            database_url: db.into(),
            queue: redis,
            queue_prefix: self.queue_prefix,
            operator_token: non_empty(self.operator_token).map(SecretString::from),
            operator_tokens: match non_empty(self.operator_tokens) {
                Some(v) => parse_operator_tokens(&v)?,
                None => Vec::new(),
            },
            baileys_secret: non_empty(self.baileys_secret).map(SecretString::from),
            log_format: self.log_format,
            job_retention: dur("JOB_RETENTION", &self.job_retention)?,
            dead_job_retention: dur("DEAD_JOB_RETENTION", &self.dead_job_retention)?,
            dead_job_max: self.dead_job_max,
            dedupe_ttl: dur("DEDUPE_TTL", &self.dedupe_ttl)?,
            retry,
        })
    }
}

impl CoreConfig {
    /// Every operator who may use the operator API: the `OPERATOR_TOKENS` names, then
    /// `OPERATOR_TOKEN` as [`UNNAMED_OPERATOR`]. Empty: the operator API is off.
    pub fn operators(&self) -> Vec<OperatorToken> {
        let mut all = self.operator_tokens.clone();
        if let Some(token) = &self.operator_token {
            all.push(OperatorToken {
                name: UNNAMED_OPERATOR.to_owned(),
                token: token.clone(),
            });
        }
        all
    }

    /// Settings for tests and embedded use: SQLite at `database_url`, queue in the database,
    /// everything else at its default.
    pub fn for_database(database_url: &str) -> Self {
        CoreConfig {
            port: 0,
            public_host: "http://localhost:8080".into(),
            twilio: TwilioConfig {
                account_sid: None,
                auth_token: None,
                api_base: "https://api.twilio.com".into(),
            },
            database_url: database_url.to_owned().into(),
            queue: QueueBackend::Database,
            queue_prefix: "moked".into(),
            operator_token: None,
            operator_tokens: Vec::new(),
            baileys_secret: None,
            log_format: LogFormat::Text,
            job_retention: Duration::from_secs(86_400),
            dead_job_retention: Duration::from_secs(30 * 86_400),
            dead_job_max: 50_000,
            dedupe_ttl: Duration::from_secs(86_400),
            retry: RetryPolicy::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use secrecy::ExposeSecret;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        core: CoreArgs,
    }

    fn parse(args: &[&str]) -> Result<CoreConfig, ConfigError> {
        let mut all = vec!["moked"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap().core.into_config()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.port, 8080);
        assert_eq!(c.public_host, "http://localhost:8080");
        assert_eq!(c.twilio.api_base, "https://api.twilio.com");
        assert_eq!(c.database_url.expose_secret(), "sqlite://data/moked.db");
        assert!(matches!(c.queue, QueueBackend::Database));
        assert_eq!(c.dead_job_retention, Duration::from_secs(30 * 86_400));
        assert_eq!(c.dead_job_max, 50_000);
        assert_eq!(
            c.retry.schedule(JobKind::WhatsAppSend).to_string(),
            "5s,30s,2m,10m,1h,6h"
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let e = parse(&["--public-host", "not a url"]).unwrap_err();
        assert_eq!(e.var, "PUBLIC_HOST");
        assert!(e.to_string().starts_with("invalid PUBLIC_HOST:"), "{e}");
        assert_eq!(
            parse(&["--redis-url", "http://x"]).unwrap_err().var,
            "REDIS_URL"
        );
        assert_eq!(
            parse(&["--dead-job-retention", "30x"]).unwrap_err().var,
            "DEAD_JOB_RETENTION"
        );
        assert_eq!(
            parse(&["--database-url", "mysql://x"]).unwrap_err().var,
            "DATABASE_URL"
        );
        assert_eq!(
            parse(&["--retry-schedule-whatsapp-send", "5x"])
                .unwrap_err()
                .var,
            "RETRY_SCHEDULE_WHATSAPP_SEND"
        );
    }

    #[test]
    fn operator_tokens_name_each_operator_and_bad_lists_never_echo_a_token() {
        let c = parse(&[
            "--operator-tokens",
            "dana:t-dana, yossi.k:t-yossi",
            "--operator-token",
            "t-shared",
        ])
        .unwrap();
        let ops: Vec<(String, String)> = c
            .operators()
            .into_iter()
            .map(|o| (o.name, o.token.expose_secret().to_owned()))
            .collect();
        assert_eq!(
            ops,
            [
                ("dana".to_owned(), "t-dana".to_owned()),
                ("yossi.k".to_owned(), "t-yossi".to_owned()),
                ("operator".to_owned(), "t-shared".to_owned()),
            ]
        );
        assert!(parse(&[]).unwrap().operators().is_empty());
        for bad in [
            "dana",
            "dana:",
            "bad name:s3cr3t-x",
            "dana:s3cr3t-x,dana:s3cr3t-y",
            "dana:s3cr3t-x,yossi:s3cr3t-x",
            ",",
        ] {
            let e = parse(&["--operator-tokens", bad]).unwrap_err();
            assert_eq!(e.var, "OPERATOR_TOKENS", "{bad}");
            assert!(!e.to_string().contains("s3cr3t"), "{e}");
        }
    }

    #[test]
    fn every_kind_has_its_retry_override_named_after_it() {
        for kind in JobKind::ALL {
            let flag = format!("--retry-schedule-{}", kind.as_str().replace('.', "-"));
            let var = format!(
                "RETRY_SCHEDULE_{}",
                kind.as_str().replace('.', "_").to_uppercase()
            );
            assert_eq!(parse(&[&flag, "5x"]).unwrap_err().var, var);
            let c = parse(&[&flag, "1s,2s"]).unwrap();
            for other in JobKind::ALL {
                let expected = if other == kind {
                    "1s,2s"
                } else {
                    "5s,30s,2m,10m,1h,6h"
                };
                assert_eq!(c.retry.schedule(other).to_string(), expected, "{flag}");
            }
        }
    }

    #[test]
    fn tls_redis_wins_and_per_kind_schedules_apply() {
        let c = parse(&[
            "--redis-url",
            "redis://a:6379",
            "--redis-tls-url",
            "rediss://b:6380",
            "--retry-schedule-whatsapp-send",
            "5s,30s,2m",
            "--public-host",
            "https://moked.example.com/",
        ])
        .unwrap();
        match c.queue {
            QueueBackend::Redis(u) => assert_eq!(u.expose_secret(), "rediss://b:6380"),
            QueueBackend::Database => panic!("expected redis"),
        }
        assert_eq!(
            c.retry.schedule(JobKind::WhatsAppSend).to_string(),
            "5s,30s,2m"
        );
        assert_eq!(c.retry.schedule(JobKind::CallStatus).max_attempts(), 7);
        assert_eq!(c.public_host, "https://moked.example.com");
    }
}
