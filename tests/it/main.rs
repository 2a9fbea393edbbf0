//! The one integration-test binary of moked (`cargo test -p moked --test it`).
//!
//! Each test builds its own world (a fresh SQLite file or Postgres database, a fresh Redis
//! prefix) with [`helpers`], starts what it needs on `127.0.0.1:0`, and never sleeps. Test
//! names are sentences.

#[macro_use]
mod helpers;

mod clock_ready;
mod deploy_files;
mod intake_api;
mod intake_connections;
mod intake_hostile;
mod intake_malformed;
mod intake_rate_limits;
mod intake_signatures;
mod intake_twiml;
mod intake_webhooks;
mod module_graph;
mod operator_audit;
mod operator_auth;
mod operator_browser;
mod operator_calls;
mod operator_clock;
mod operator_console;
mod operator_customers;
mod operator_jobs;
mod operator_metrics;
mod operator_openapi;
mod operator_support;
mod operator_whatsapp;
mod recordings_s3;
