//! The real Baileys bridge of `bridge/` for the workers' WhatsApp tests:
//! `node bridge/test/stub-server.js`, the bridge's own HTTP server, idempotency key store and
//! outbox on 127.0.0.1 with an ephemeral port, over a stub WhatsApp socket (`StubPhone` of
//! `bridge/test/helpers.js`) instead of Baileys.
//!
//! [`BaileysBridge::start`] checks for Node.js ≥ 20, installs `bridge/node_modules` from the lock
//! file when it is missing (`npm ci`, once: a [`OnceLock`] in this process and a file lock under
//! the system temp folder across test processes), starts the bridge with the given secret on a
//! temporary `DATA_DIR`, and waits (bounded) for its `LISTENING` line. The process is killed
//! when the value is dropped (`kill_on_drop`), and exits by itself when this process ends (its
//! stdin closes).
//!
//! Through the stub's control port (guarded by a token of the run): [`BaileysBridge::sent`] (what
//! the stub socket sent), [`BaileysBridge::requests`] (what the bridge answered to each
//! `POST /sendMessage`) and [`BaileysBridge::fail_next`] (socket failures to inject).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// How long the bridge may take to start listening (a loaded machine, a cold disk cache).
const START_LIMIT: Duration = Duration::from_secs(60);

/// One message the stub socket sent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SocketSend {
    /// The recipient JID.
    pub jid: String,
    /// The text.
    pub text: String,
    /// The WhatsApp message id the bridge sent it under.
    pub id: String,
}

/// One `POST /sendMessage` the bridge answered.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Answered {
    /// The `Idempotency-Key` header.
    pub key: Option<String>,
    /// Whether `X-BAILEYS-SECRET` was the bridge's secret.
    pub secret_ok: bool,
    /// The HTTP status the bridge answered.
    pub status: u16,
}

/// When an injected socket failure strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failing {
    /// Before anything went out: nothing reaches WhatsApp.
    BeforeSending,
    /// After the socket sent the message (e.g. a timeout waiting for WhatsApp's ack).
    AfterSending,
}

/// The bridge process; killed when dropped.
pub struct BaileysBridge {
    /// Its base URL (`BAILEYS_URL`).
    pub url: String,
    control: String,
    token: String,
    http: reqwest::Client,
    _child: Child,
    _stdout: Lines<BufReader<ChildStdout>>,
    _data: tempfile::TempDir,
}

fn bridge_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bridge")
}

/// Node.js ≥ 20 is on `PATH` and `bridge/node_modules` is installed; panics with what is missing.
fn ensure_installed() {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = INSTALLED.get_or_init(install) {
        panic!("the Baileys bridge tests need the bridge's Node.js setup: {e}");
    }
}

fn install() -> Result<(), String> {
    let version = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("`node --version` failed ({e}): install Node.js 20 or later"))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 20 {
        return Err(format!("Node.js {version:?} found, 20 or later needed"));
    }
    let dir = bridge_dir();
    let marker = dir.join("node_modules/@whiskeysockets/baileys");
    if marker.is_dir() {
        return Ok(());
    }
    // Another test process may be installing: one `npm ci` at a time, then look again.
    let lock_path = std::env::temp_dir().join("moked-bridge-npm-ci.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    if marker.is_dir() {
        return Ok(());
    }
    // The flags of bridge/test.sh: exactly the lock file, no install scripts.
    let status = std::process::Command::new("npm")
        .args([
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("`npm ci` in {} did not start: {e}", dir.display()))?;
    if !status.success() {
        return Err(format!("`npm ci` in {} failed: {status}", dir.display()));
    }
    Ok(())
}

impl BaileysBridge {
    /// Starts the bridge with `secret` (`BAILEYS_SECRET`) and waits until it listens.
    pub async fn start(secret: &str) -> BaileysBridge {
        ensure_installed();
        let data = tempfile::tempdir().expect("a temporary DATA_DIR");
        let mut child = Command::new("node")
            .arg("test/stub-server.js")
            .current_dir(bridge_dir())
            .env("BAILEYS_SECRET", secret)
            .env("DATA_DIR", data.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node bridge/test/stub-server.js starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let line = tokio::time::timeout(START_LIMIT, stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("the bridge did not listen within {START_LIMIT:?}"))
            .expect("reading the bridge's stdout")
            .expect("the bridge exited before listening (its stderr is above)");
        let [_, url, control, token] = line.split(' ').collect::<Vec<_>>()[..] else {
            panic!(
                "expected `LISTENING <url> <control url> <token>` from the bridge, got {line:?}"
            );
        };
        BaileysBridge {
            url: url.to_owned(),
            control: control.to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::new(),
            _child: child,
            _stdout: stdout,
            _data: data,
        }
    }

    async fn control(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let resp = request
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("the bridge's control port answers");
        assert!(
            resp.status().is_success(),
            "control request failed: {}",
            resp.status()
        );
        resp
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let request = self.http.get(format!("{}{path}", self.control));
        self.control(request).await.json().await.expect("JSON")
    }

    /// What the stub socket sent, in order.
    pub async fn sent(&self) -> Vec<SocketSend> {
        self.get("/sent").await
    }

    /// Every `POST /sendMessage` the bridge answered, in order.
    pub async fn requests(&self) -> Vec<Answered> {
        self.get("/requests").await
    }

    /// Makes the next `count` socket sends throw a Baileys error with HTTP `status` (Baileys'
    /// `Boom` errors carry one), `when` as given.
    pub async fn fail_next(&self, count: usize, status: u16, when: Failing) {
        let body = json!({
            "count": count,
            "status": status,
            "after_sending": when == Failing::AfterSending,
        });
        let request = self.http.post(format!("{}/fail", self.control)).json(&body);
        self.control(request).await;
    }
}
