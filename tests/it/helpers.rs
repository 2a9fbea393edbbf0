//! Test worlds for the integration binary: each test gets its own store and queue, and can
//! start the real intake on `127.0.0.1:0`.
//!
//! * [`World`] — the test kit's world (`moked_testkit`, in `testkit/`): a migrated store (a
//!   SQLite file in a temp dir, or a fresh Postgres database `moked_t_<uuid>`) and, for
//!   [`Backend::Redis`], a fresh Redis key prefix `t-<uuid>`; all removed when dropped.
//! * [`spawn_app`] / [`spawn_app_with`] — the intake built by [`moked_intake::build_state`]
//!   from typed settings (never the process environment) and served by [`moked_intake::run`];
//!   [`TestApp`] signs and sends webhooks and reads the queue back.
//! * [`twilio_python`] — the Python with the official `twilio` package (`MOKED_TWILIO_PY`, else
//!   `target/twilio-venv`, created on first use), for the independent signer and the TwiML
//!   checker of the repository's Twilio test kit, [`twilio_kit`] (`tests/twilio/`).
//!
//! Services (see the test kit): Postgres at `MOKED_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432`, which must allow `CREATE DATABASE`), Redis at
//! `MOKED_TEST_REDIS` (default `redis://127.0.0.1:6379`). `scripts/test` starts both when they
//! are down.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use moked_intake::config::{IntakeConfig, RateLimits};
use moked_jobs::config::CoreConfig;
use moked_jobs::kinds::JobKind;
use moked_jobs::queue::{JobDetail, ListQuery, SharedQueue};
use moked_jobs::store::Db;
pub use moked_testkit::fake_twilio::sid;
pub use moked_testkit::{Backend, World, redis_url, until};
use secrecy::SecretString;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The Auth Token every test app is configured with.
pub const TOKEN: &str = "test-auth-token";
/// The public URL test apps believe Twilio calls (signatures are computed over it; requests
/// actually go to 127.0.0.1, so the Host header never matches it).
pub const PUBLIC_HOST: &str = "https://moked.test";
/// The Baileys bridge secret of test apps.
pub const BAILEYS_SECRET: &str = "baileys-s3cret";

/// A running intake and the means to talk to it.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The settings it runs with.
    pub core: CoreConfig,
    /// Its intake settings.
    pub intake: IntakeConfig,
    /// Its queue (to read jobs back).
    pub queue: SharedQueue,
    /// Its store.
    pub db: Db,
    /// An HTTP client (no proxies, no redirects).
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    static_dir: Option<tempfile::TempDir>,
    world: Option<World>,
}

/// An intake on a fresh SQLite world, every rate limit off.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Backend::Sqlite, |_, _| {}).await
}

/// An intake on a fresh world of `backend`, after `configure` adjusts the settings. Defaults
/// for tests: Auth Token [`TOKEN`], PUBLIC_HOST [`PUBLIC_HOST`], Baileys secret
/// [`BAILEYS_SECRET`], rate limits off, an empty static folder (no welcome.mp3).
pub async fn spawn_app_with(
    backend: Backend,
    configure: impl FnOnce(&mut CoreConfig, &mut IntakeConfig),
) -> TestApp {
    let world = World::new(backend).await;
    let static_dir = tempfile::tempdir().expect("temp static dir");
    let mut core = world.core.clone();
    core.public_host = PUBLIC_HOST.into();
    core.twilio.auth_token = Some(SecretString::from(TOKEN));
    core.baileys_secret = Some(SecretString::from(BAILEYS_SECRET));
    let mut intake = IntakeConfig {
        limits: RateLimits::OFF,
        static_dir: static_dir.path().to_owned(),
        ..IntakeConfig::default()
    };
    configure(&mut core, &mut intake);
    let mut app = start(core, intake).await;
    app.static_dir = Some(static_dir);
    app.world = Some(world);
    app
}

/// A second intake process on the same world (same store, same Redis prefix) as `first`.
pub async fn spawn_sibling(first: &TestApp) -> TestApp {
    start(first.core.clone(), first.intake.clone()).await
}

async fn start(core: CoreConfig, intake: IntakeConfig) -> TestApp {
    let state = moked_intake::build_state(core.clone(), intake.clone())
        .await
        .expect("build the intake state");
    let queue = state.queue.clone();
    let db = state.db.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(moked_intake::run(listener, state, async move {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        base: format!("http://{addr}"),
        core,
        intake,
        queue,
        db,
        client: reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client"),
        shutdown: Some(tx),
        server: Some(server),
        static_dir: None,
        world: None,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

impl TestApp {
    /// The address requests go to.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The URL Twilio would call (what is signed).
    pub fn public_url(&self, path: &str) -> String {
        format!("{}{path}", self.core.public_host)
    }

    /// The static folder (tests put welcome.mp3 there before spawning a sibling app).
    pub fn static_dir(&self) -> &Path {
        &self.intake.static_dir
    }

    /// A webhook to `path_and_query`, signed with [`TOKEN`] over the public URL.
    pub fn webhook(&self, path_and_query: &str) -> Webhook<'_> {
        Webhook {
            app: self,
            path: path_and_query.to_owned(),
            params: Vec::new(),
            headers: Vec::new(),
            signature: Signature::Valid,
            token: TOKEN.to_owned(),
            body: None,
            content_type: Some("application/x-www-form-urlencoded; charset=utf-8".into()),
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(server) => server.await.expect("server task"),
            None => Ok(()),
        }
    }

    /// Every job of `kind`, in full, oldest first.
    pub async fn jobs(&self, kind: JobKind) -> Vec<JobDetail> {
        let page = self
            .queue
            .list(&ListQuery {
                kind: Some(kind),
                limit: 500,
                ..ListQuery::default()
            })
            .await
            .expect("list jobs");
        let mut jobs = Vec::new();
        for summary in page.jobs {
            jobs.push(
                self.queue
                    .get(&summary.id)
                    .await
                    .expect("get job")
                    .expect("listed job exists"),
            );
        }
        jobs.sort_by(|a, b| a.summary.id.cmp(&b.summary.id));
        jobs
    }

    /// The decoded payloads (`data` of the envelope) of every job of `kind`, oldest first.
    pub async fn payloads(&self, kind: JobKind) -> Vec<Value> {
        self.jobs(kind)
            .await
            .into_iter()
            .map(|j| {
                let envelope: Value = serde_json::from_str(&j.payload).expect("payload is JSON");
                envelope["data"].clone()
            })
            .collect()
    }

    /// How many jobs exist, whatever their kind and state.
    pub async fn job_total(&self) -> u64 {
        let stats = self.queue.stats().await.expect("queue stats");
        stats.counts.values().sum()
    }
}

/// How a test webhook is signed.
#[derive(Debug, Clone)]
pub enum Signature {
    /// Correctly, over the public URL.
    Valid,
    /// Not at all (no header).
    Missing,
    /// With this exact header value.
    Exactly(String),
    /// Correctly, but over this URL instead of the public one.
    OverUrl(String),
}

/// A webhook being built; [`Webhook::send`] posts it.
pub struct Webhook<'a> {
    app: &'a TestApp,
    path: String,
    params: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    signature: Signature,
    token: String,
    body: Option<Vec<u8>>,
    content_type: Option<String>,
}

impl Webhook<'_> {
    /// Adds a form field (repeat a name for a repeated key).
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.params.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds form fields.
    pub fn params<N: AsRef<str>, V: AsRef<str>>(
        mut self,
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        for (n, v) in pairs {
            self.params
                .push((n.as_ref().to_owned(), v.as_ref().to_owned()));
        }
        self
    }

    /// Sets `I-Twilio-Idempotency-Token`.
    pub fn idem(self, token: &str) -> Self {
        self.header("I-Twilio-Idempotency-Token", token)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Chooses how it is signed.
    pub fn signature(mut self, signature: Signature) -> Self {
        self.signature = signature;
        self
    }

    /// Signs with another secret.
    pub fn token(mut self, token: &str) -> Self {
        self.token = token.to_owned();
        self
    }

    /// Sends this raw body instead of the encoded params (the signature still covers the
    /// params).
    pub fn raw_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sets (or with `None` removes) the Content-Type.
    pub fn content_type(mut self, content_type: Option<&str>) -> Self {
        self.content_type = content_type.map(str::to_owned);
        self
    }

    /// The signature this webhook will carry (None: no header).
    pub fn signature_value(&self) -> Option<String> {
        match &self.signature {
            Signature::Valid => Some(moked_jobs::signature::compute(
                &self.token,
                &self.app.public_url(&self.path),
                &self.params,
            )),
            Signature::Missing => None,
            Signature::Exactly(s) => Some(s.clone()),
            Signature::OverUrl(url) => Some(moked_jobs::signature::compute(
                &self.token,
                url,
                &self.params,
            )),
        }
    }

    /// Posts it to the app (at 127.0.0.1) and returns the response.
    pub async fn send(self) -> Response {
        let mut req = self
            .app
            .client
            .post(self.app.url(&self.path))
            .header("User-Agent", "TwilioProxy/1.1");
        if let Some(sig) = self.signature_value() {
            req = req.header("X-Twilio-Signature", sig);
        }
        if let Some(ct) = &self.content_type {
            req = req.header("Content-Type", ct);
        }
        for (n, v) in &self.headers {
            req = req.header(n, v);
        }
        let body = match self.body {
            Some(body) => body,
            None => encode_form(&self.params).into_bytes(),
        };
        let resp = req
            .body(body)
            .send()
            .await
            .expect("request reaches the app");
        Response::read(resp).await
    }
}

/// `application/x-www-form-urlencoded` encoding of pairs (repeated names kept).
pub fn encode_form(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (n, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&encode_component(n));
        out.push('=');
        out.push_str(&encode_component(v));
    }
    out
}

fn encode_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A response read whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as text (lossy).
    pub body: String,
}

impl Response {
    /// Reads a reqwest response.
    pub async fn read(resp: reqwest::Response) -> Response {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("response body");
        Response {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The Twilio test kit of this repository (`tests/twilio/`: signer, TwiML checker, their
/// pinned `requirements.txt`).
pub fn twilio_kit() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/twilio")
}

/// The Python with the official `twilio` package, or `None` (with a loud message) when there is
/// no Python at all. Uses `MOKED_TWILIO_PY` when set; else `target/twilio-venv`, created with
/// `pip install -r requirements.txt` when missing (once per machine). A venv that cannot be
/// created although Python exists is a test failure, not a skip.
pub fn twilio_python() -> Option<PathBuf> {
    static PY: OnceLock<Option<PathBuf>> = OnceLock::new();
    PY.get_or_init(find_or_make_python).clone()
}

fn python_has_twilio(py: &Path) -> bool {
    std::process::Command::new(py)
        .args(["-c", "import twilio"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn find_or_make_python() -> Option<PathBuf> {
    if let Some(py) = std::env::var_os("MOKED_TWILIO_PY").map(PathBuf::from) {
        assert!(
            python_has_twilio(&py),
            "MOKED_TWILIO_PY={} cannot import twilio",
            py.display()
        );
        return Some(py);
    }
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    let venv = target.join("twilio-venv");
    let py = venv.join("bin/python");
    if python_has_twilio(&py) {
        return Some(py);
    }
    let python3 = std::process::Command::new("python3")
        .arg("--version")
        .output();
    if !python3.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "\n*** SKIPPING Twilio SDK oracle checks: python3 is not installed. CI must have it \
             (the independent signer and TwiML checker in tests/twilio need it). ***\n"
        );
        return None;
    }
    // Built where it will stay (a venv is not relocatable: its scripts, `pip` among them, name
    // the folder they were made in; one built elsewhere and renamed broke `scripts/test` later),
    // under a lock file so concurrent test processes never see a half-installed venv: the first
    // builds it, the others wait and then find it ready.
    std::fs::create_dir_all(&target).expect("create target/");
    let lock = std::fs::File::create(target.join("twilio-venv.lock")).expect("venv lock file");
    lock.lock().expect("lock the venv");
    if !python_has_twilio(&py) {
        let _ = std::fs::remove_dir_all(&venv);
        let run = |cmd: &mut std::process::Command| {
            let out = cmd.output().expect("run python");
            assert!(
                out.status.success(),
                "{cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(std::process::Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv));
        run(std::process::Command::new(&py)
            .args(["-m", "pip", "install", "-q", "-r"])
            .arg(twilio_kit().join("requirements.txt")));
    }
    drop(lock);
    assert!(
        python_has_twilio(&py),
        "could not prepare {} with the twilio package",
        venv.display()
    );
    Some(py)
}

/// Runs `tests/twilio/twiml_check.py --kind KIND -` on `xml`; panics with the checker's
/// verdict when it refuses the document. Returns false (skipped) without Python.
pub async fn assert_valid_twiml(xml: &str, kind: &str) -> bool {
    let Some(py) = twilio_python() else {
        return false;
    };
    let mut child = tokio::process::Command::new(py)
        .arg(twilio_kit().join("twiml_check.py"))
        .args(["--kind", kind, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start twiml_check.py");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(xml.as_bytes()).await.expect("write TwiML");
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("twiml_check.py finishes")
        .expect("twiml_check.py output");
    assert!(
        out.status.success(),
        "twiml_check.py refused the answer:\n{xml}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// A minimal incoming-call form.
pub fn call_params(call_sid: &str, from: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "AccountSid",
            "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_owned(),
        ),
        ("CallSid", call_sid.to_owned()),
        ("From", from.to_owned()),
        ("To", "+97233334444".to_owned()),
        ("CallStatus", "ringing".to_owned()),
        ("Direction", "inbound".to_owned()),
    ]
}

/// Instantiates each `async fn NAME(backend: Backend)` of the calling module once per backend,
/// as the tests `sqlite::NAME`, `postgres::NAME` and `redis::NAME`.
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::helpers::Backend::Sqlite).await;
            })+
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::helpers::Backend::Postgres).await;
            })+
        }
        mod redis {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::helpers::Backend::Redis).await;
            })+
        }
    };
}
