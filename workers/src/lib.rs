//! moked workers: the process that runs jobs (`moked-worker run`), fires scheduled work
//! (`moked-worker clock`), migrates the store (`migrate`), lets operators act on the queue from
//! the shell (`jobs …`) and signs test webhooks (`sign`).
//!
//! * [`cli`] — the `moked-worker` command line: every verb in one place (`jobs`, `health`,
//!   `sign`, `whatsapp send` each in a file of their own), `main.rs` only starts it.
//! * [`run`] — `moked-worker run`: the job loop ([`moked_jobs::runner`]) with every handler.
//! * [`handlers`] — one file per job kind; [`handlers::dispatch`] is generated from the job kind
//!   table ([`moked_jobs::for_each_job_kind!`]). A handler with steps of its own keeps them in
//!   a folder of its name (`recording_process/`: download, store, transcribe, notify;
//!   `whatsapp_inbound/media.rs`).
//! * [`clock`] — `moked-worker clock`: scheduled tasks, exactly once per tick.
//! * [`status`] — `METRICS_PORT` (`/metrics`, `/health`, `/ready`).
//! * [`config`] — worker settings (those the intake reads too are [`moked_jobs::fleet`]'s),
//!   the clock's task settings among them.
//! * [`clients`] — the outside services (Twilio, the WhatsApp providers in `clients/whatsapp/`,
//!   transcription, audio).

pub mod cli;
pub mod clients;
pub mod clock;
pub mod config;
pub mod handlers;
pub mod run;
pub mod status;
