//! The `moked-intake` binary as an operator runs it: `--help`, one clear line on a bad
//! setting, and a graceful stop on SIGTERM. Each run gets an empty temp dir as its working
//! directory and a cleared environment, so no `.env` or outer variable leaks in.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn intake(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_moked-intake"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(dir);
    cmd
}

#[test]
fn help_lists_every_intake_setting_with_its_env_var() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = intake(dir.path()).arg("--help").output().expect("run");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "PORT",
        "PUBLIC_HOST",
        "TWILIO_AUTH_TOKEN",
        "DATABASE_URL",
        "REDIS_URL",
        "RATE_LIMIT_UNVERIFIED",
        "RATE_LIMIT_CALLS",
        "RATE_LIMIT_RECORDINGS",
        "RATE_LIMIT_STATUS",
        "CORS_ORIGINS",
        "SAY_VOICE",
        "STATIC_DIR",
        "TWILIO_AUTH_TOKEN_SECONDARY",
        "TWILIO_WEBHOOK_SHARED_KEY",
    ] {
        assert!(
            help.contains(&format!("[env: {var}")),
            "--help lacks {var}:\n{help}"
        );
    }
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (var, value) in [
        ("SAY_VOICE", "alice"),
        ("RATE_LIMIT_CALLS", "often"),
        ("CORS_ORIGINS", "https://a.example/path"),
        ("PUBLIC_HOST", "not a url"),
    ] {
        let out = intake(dir.path()).env(var, value).output().expect("run");
        assert!(!out.status.success(), "{var}={value} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{var}: {stderr}");
        assert!(
            lines[0].starts_with(&format!("moked-intake: invalid {var}:")),
            "{stderr}"
        );
    }
}

#[test]
fn sigterm_stops_a_running_intake_gracefully() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("data/moked.db");
    let mut child = intake(dir.path())
        .env("PORT", "0")
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start moked-intake");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let port = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("moked-intake logs where it listens");
        if let Some(at) = line.find("listening on http://0.0.0.0:") {
            let rest = &line[at + "listening on http://0.0.0.0:".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            break digits.parse::<u16>().expect("port");
        }
    };
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    conn.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"service":"Hebrew AI Call Center CRM","status":"ok"}"#));

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait());
    });
    let status = done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("exits within 10 s of SIGTERM")
        .expect("exit status");
    assert!(status.success(), "{status}");
}
