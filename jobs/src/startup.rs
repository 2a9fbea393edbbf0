//! Start-up and exit, the same for every binary (`moked`, `moked-intake`, `moked-worker`):
//! [`run`] wraps a binary's `main`.
//!
//! 1. **`.env`**: read from the working directory when there is one; a file that exists but does
//!    not parse stops start-up ([`Failure::DotEnv`]): a half-read file would run with settings
//!    nobody chose. Variables already set in the environment win over the file.
//! 2. **The command line** is parsed after `.env` (its variables are clap's env defaults); a
//!    usage error is clap's own message and exit 2.
//! 3. **Settings** are parsed before anything starts; a bad one is [`Failure::Config`], one line
//!    naming its variable.
//! 4. **Logging** ([`logging`]) starts once the settings are known (`LOG_FORMAT`); commands
//!    whose output is their answer (`moked-worker jobs …`, `whatsapp send`) log nothing.
//! 5. **The work** runs on a multi-threaded Tokio runtime.
//!
//! Exit codes: 0 done; [`EXIT_SETUP`] (2) nothing was started (`.env`, a setting, an argument);
//! [`EXIT_FAILURE`] (1) it started and failed (the database, the queue, the port, a refused
//! request, an unhealthy probe). A failure is one line `{binary}: {reason}` on stderr, and an
//! error event in the log when logging is on. A failure that names a missing table gets a
//! second line: the database has not been migrated ([`MIGRATE_HINT`]).

use std::future::Future;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use crate::config::{ConfigError, LogFormat};

/// The exit code when nothing was started: `.env`, a setting or an argument is wrong.
pub const EXIT_SETUP: u8 = 2;

/// The exit code when the work started and failed.
pub const EXIT_FAILURE: u8 = 1;

/// The second line of a failure caused by a database without moked's tables: the error alone
/// names a table ("no such table: worker_sessions"), not what to do.
pub const MIGRATE_HINT: &str = "the database has no moked tables (or an older moked's): run \
     `moked-worker migrate` first (the all-in-one `moked` migrates its own database on start)";

/// [`MIGRATE_HINT`] when `failure` (a failure's text) says a table is missing: SQLite's
/// "no such table: …" or Postgres's "relation \"…\" does not exist".
pub fn migrate_hint(failure: &str) -> Option<&'static str> {
    let missing = failure.contains("no such table: ")
        || (failure.contains("relation \"") && failure.contains("\" does not exist"));
    missing.then_some(MIGRATE_HINT)
}

/// Why a binary stops with a non-zero exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// `.env` exists but does not parse (exit 2).
    #[error("cannot read .env: {0}")]
    DotEnv(#[from] dotenvy::Error),
    /// A setting does not parse (exit 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An argument of a command makes no sense (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The work started and failed (exit 1); printed with its causes.
    #[error("{0:#}")]
    Runtime(#[from] anyhow::Error),
}

impl Failure {
    /// The process exit code of this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::DotEnv(_) | Failure::Config(_) | Failure::Usage(_) => EXIT_SETUP,
            Failure::Runtime(_) => EXIT_FAILURE,
        }
    }
}

/// Reads `.env` when present (see the module doc).
pub fn load_dotenv() -> Result<(), Failure> {
    match dotenvy::dotenv() {
        Err(error) if !error.not_found() => Err(Failure::DotEnv(error)),
        _ => Ok(()),
    }
}

/// Installs the process's log subscriber: stderr, text or JSON lines, filtered by `RUST_LOG`
/// (default `info`). A second call is a no-op. Nothing logs secrets; callers mask phone
/// numbers ([`crate::phone::mask_raw`]) before they reach a field.
pub fn logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Runs a binary named `binary`: `.env`, then its command line `C`, then `main` on a Tokio
/// runtime; returns the exit code, having printed a failure (see the module doc).
pub fn run<C, F>(binary: &str, main: impl FnOnce(C) -> F) -> ExitCode
where
    C: clap::Parser,
    F: Future<Output = Result<(), Failure>>,
{
    let outcome = load_dotenv().and_then(|()| {
        let cli = C::parse();
        let runtime = tokio::runtime::Runtime::new().map_err(|error| {
            Failure::Runtime(anyhow::Error::new(error).context("cannot start the runtime"))
        })?;
        runtime.block_on(main(cli))
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if let Failure::Runtime(_) = failure {
                tracing::error!("{failure}");
            }
            eprintln!("{binary}: {failure}");
            if let Some(hint) = migrate_hint(&failure.to_string()) {
                tracing::error!("{hint}");
                eprintln!("{binary}: {hint}");
            }
            ExitCode::from(failure.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_started_is_two_and_a_failed_run_is_one() {
        let config = Failure::from(ConfigError::new("PORT", "not a number"));
        assert_eq!(config.to_string(), "invalid PORT: not a number");
        assert_eq!(config.exit_code(), 2);
        assert_eq!(Failure::Usage("no token".into()).exit_code(), 2);
        let dotenv = Failure::from(dotenvy::Error::LineParse("x y".into(), 2));
        assert!(
            dotenv.to_string().starts_with("cannot read .env: "),
            "{dotenv}"
        );
        assert_eq!(dotenv.exit_code(), 2);
        let runtime = Failure::from(
            anyhow::anyhow!("connection refused").context("cannot open the database"),
        );
        assert_eq!(
            runtime.to_string(),
            "cannot open the database: connection refused"
        );
        assert_eq!(runtime.exit_code(), 1);
    }

    #[test]
    fn a_missing_table_on_either_database_asks_for_the_migrations() {
        for text in [
            "database: error returned from database: (code: 1) no such table: worker_sessions",
            "database: error returned from database: relation \"job\" does not exist",
        ] {
            assert_eq!(migrate_hint(text), Some(MIGRATE_HINT), "{text}");
        }
        for text in [
            "cannot open the database: connection refused",
            "database \"moked\" does not exist",
        ] {
            assert_eq!(migrate_hint(text), None, "{text}");
        }
    }
}
