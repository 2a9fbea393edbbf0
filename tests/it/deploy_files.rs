//! The deploy files agree with the code: what CI can check without a container engine.
//!
//! `deploy/app.json` names only real settings, each documented in the README; the compose file
//! parses and has the production shape (intake ×1, worker ×2, clock ×1, Redis with an
//! append-only file and `noeviction`, Postgres); the Dockerfile builds and ships exactly the
//! workspace's binaries; the Procfile and the systemd units run commands that exist.

use std::collections::BTreeSet;
use std::path::Path;

use clap::CommandFactory;

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
}

/// Every env var the binaries read, from their CLI definitions.
fn settings() -> BTreeSet<String> {
    moked::Cli::command()
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect()
}

/// The `[[bin]]` names of the workspace's manifests.
fn workspace_binaries() -> BTreeSet<String> {
    [
        "Cargo.toml",
        "intake/Cargo.toml",
        "workers/Cargo.toml",
        "jobs/Cargo.toml",
    ]
    .iter()
    .flat_map(|m| {
        let text = read(m);
        let mut names = Vec::new();
        let mut in_bin = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_bin = line == "[[bin]]";
            } else if in_bin && let Some(v) = line.strip_prefix("name = ") {
                names.push(v.trim_matches('"').to_owned());
            }
        }
        names
    })
    .collect()
}

#[test]
fn app_json_names_only_real_documented_settings() {
    let app: serde_json::Value =
        serde_json::from_str(&read("deploy/app.json")).expect("app.json parses");
    let env = app["env"].as_object().expect("app.json has env");
    let known = settings();
    let readme = read("README.md");
    for (name, spec) in env {
        assert!(
            known.contains(name),
            "app.json sets {name}, which no binary reads"
        );
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "{name} is not in the README table"
        );
        assert!(
            spec["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{name} has no description"
        );
    }
    for required in [
        "PUBLIC_HOST",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "OPERATOR_TOKEN",
    ] {
        assert!(env.contains_key(required), "app.json lacks {required}");
    }
    let formation = app["formation"].as_object().expect("formation");
    let procfile = read("Procfile");
    for process in formation.keys() {
        assert!(
            procfile.contains(&format!("{process}: ")),
            "formation {process} not in the Procfile"
        );
    }
}

#[test]
fn the_compose_file_has_the_production_shape() {
    let docs = yaml_rust2::YamlLoader::load_from_str(&read("deploy/docker-compose.yml"))
        .expect("compose parses");
    let services = &docs[0]["services"];
    for name in ["intake", "worker", "clock", "redis", "postgres", "migrate"] {
        assert!(!services[name].is_badvalue(), "service {name} missing");
    }
    assert_eq!(services["worker"]["deploy"]["replicas"].as_i64(), Some(2));
    let redis: Vec<&str> = services["redis"]["command"]
        .as_vec()
        .expect("redis command")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let redis = redis.join(" ");
    assert!(redis.contains("--appendonly yes"), "{redis}");
    assert!(redis.contains("--maxmemory-policy noeviction"), "{redis}");
    let commands: Vec<String> = ["intake", "worker", "clock", "migrate"]
        .iter()
        .map(|s| {
            services[*s]["command"]
                .as_vec()
                .expect("command")
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(
        commands,
        [
            "moked-intake",
            "moked-worker run",
            "moked-worker clock",
            "moked-worker migrate"
        ]
    );
}

#[test]
fn the_dockerfile_builds_and_ships_exactly_the_workspace_binaries() {
    let dockerfile = read("deploy/Dockerfile");
    let bins = workspace_binaries();
    assert_eq!(
        bins,
        ["moked", "moked-intake", "moked-worker"]
            .map(String::from)
            .into()
    );
    let build = dockerfile
        .lines()
        .find(|l| l.contains("cargo build --release"))
        .expect("a cargo build line");
    let copy = dockerfile
        .lines()
        .find(|l| l.contains("COPY --from=build"))
        .expect("a COPY of the binaries");
    for bin in &bins {
        assert!(
            build.contains(&format!("--bin {bin}")),
            "Dockerfile does not build {bin}"
        );
        assert!(
            copy.contains(&format!("target/release/{bin} ")),
            "Dockerfile does not ship {bin}"
        );
    }
    assert!(
        dockerfile.contains("USER moked"),
        "the runtime runs as a non-root user"
    );
}

#[test]
fn the_procfile_and_systemd_units_run_real_commands() {
    let procfile = read("Procfile");
    let lines: Vec<&str> = procfile.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines,
        [
            "release: moked-worker migrate",
            "web: moked-intake",
            "worker: moked-worker run",
            "clock: moked-worker clock"
        ]
    );
    for unit in [
        "moked-intake.service",
        "moked-worker@.service",
        "moked-clock.service",
    ] {
        let text = read(&format!("deploy/systemd/{unit}"));
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .expect("ExecStart");
        let bin = exec.split_whitespace().next().unwrap_or_default();
        let name = bin.rsplit('/').next().unwrap_or_default();
        assert!(workspace_binaries().contains(name), "{unit} runs {bin}");
        assert!(text.contains("KillSignal=SIGTERM") && text.contains("TimeoutStopSec=30"));
    }
}
