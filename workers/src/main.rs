//! `moked-worker`: run jobs, fire the clock, migrate, operate the queue, sign test webhooks.
//!
//! The verbs are [`moked_workers::cli`]'s; start-up and exit codes are
//! [`moked_jobs::startup`]'s.

use std::process::ExitCode;

use moked_jobs::startup;
use moked_workers::cli;

/// mimalloc instead of glibc malloc, as in the other two binaries: a worker allocates a little
/// per job on every runtime thread (payloads, store rows, HTTP bodies), the pattern that made
/// glibc's arenas a seventh of the intake's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    startup::run("moked-worker", cli::execute)
}
