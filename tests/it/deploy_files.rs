//! The deploy files agree with the code: what CI can check without a container engine.
//!
//! `app.json` (at the root, where Heroku's Deploy button reads it) names only real settings, each
//! documented in the README, and runs only real binaries; the compose file
//! parses and has the production shape (intake ×1, worker ×2, clock ×1, Redis with an
//! append-only file and `noeviction`, Postgres); the Dockerfile builds and ships exactly the
//! workspace's binaries; the Procfile and the systemd units run commands that exist.

use std::collections::BTreeSet;
use std::path::Path;

use clap::{CommandFactory, Parser};

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
    let app: serde_json::Value = serde_json::from_str(&read("app.json")).expect("app.json parses");
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

/// The binary a Heroku command runs: `./target/release/NAME args…`, where the Rust buildpack
/// leaves what `cargo build --release` built (it does not install binaries on the PATH).
fn heroku_binary(command: &str) -> String {
    let program = command.split_whitespace().next().unwrap_or_default();
    let name = program
        .strip_prefix("./target/release/")
        .unwrap_or_else(|| panic!("`{command}` must run ./target/release/BINARY on Heroku"));
    assert!(
        workspace_binaries().contains(name),
        "`{command}` runs {name}, which the workspace does not build"
    );
    name.to_owned()
}

#[test]
fn the_procfile_and_systemd_units_run_real_commands() {
    let procfile = read("Procfile");
    let processes: Vec<(&str, &str)> = procfile
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_once(": ").expect("`process: command`"))
        .collect();
    let shape: Vec<(&str, String)> = processes
        .iter()
        .map(|(process, command)| {
            let args = command.split_whitespace().skip(1).collect::<Vec<_>>();
            (
                *process,
                format!("{} {}", heroku_binary(command), args.join(" ")),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("release", "moked-worker migrate".to_owned()),
            ("web", "moked-intake ".to_owned()),
            ("worker", "moked-worker run".to_owned()),
            ("clock", "moked-worker clock".to_owned()),
        ]
    );
    let app: serde_json::Value = serde_json::from_str(&read("app.json")).expect("app.json");
    let postdeploy = app["scripts"]["postdeploy"].as_str().expect("postdeploy");
    assert_eq!(heroku_binary(postdeploy), "moked-worker");
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

#[test]
fn app_json_is_where_the_deploy_button_reads_it_and_speaks_tls_to_heroku_redis() {
    assert!(
        !Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/app.json")
            .exists(),
        "one app.json, at the root"
    );
    let app: serde_json::Value = serde_json::from_str(&read("app.json")).expect("app.json");
    let redis_plan = app["addons"]
        .as_array()
        .expect("addons")
        .iter()
        .filter_map(|a| a["plan"].as_str())
        .find(|p| p.starts_with("heroku-redis:"))
        .expect("a Redis add-on");
    assert!(
        !redis_plan.ends_with(":mini"),
        "{redis_plan} keeps nothing across a restart (docs/DEPLOY.md)"
    );
    // Heroku Key-Value Store serves rediss:// with a self-signed certificate.
    let insecure = app["env"]["REDIS_TLS_INSECURE"]["value"]
        .as_str()
        .expect("REDIS_TLS_INSECURE set");
    let parsed = moked::Cli::try_parse_from(["moked", "--redis-tls-insecure", insecure]);
    assert!(parsed.is_ok(), "REDIS_TLS_INSECURE={insecure} must parse");
}

#[test]
fn the_docker_build_sees_no_secrets_or_customer_data() {
    let ignore = read(".dockerignore");
    let lines: BTreeSet<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["target/", ".git/", ".env", "data/", "*.db"] {
        assert!(lines.contains(needed), ".dockerignore lacks {needed}");
    }
}

#[test]
fn every_container_role_has_a_healthcheck_and_the_default_command_runs_alone() {
    let dockerfile = read("deploy/Dockerfile");
    let health = dockerfile
        .lines()
        .find(|l| l.starts_with("HEALTHCHECK"))
        .expect("a HEALTHCHECK");
    assert!(
        health.ends_with(r#"CMD ["moked-worker", "health"]"#),
        "{health}"
    );
    let cmd = dockerfile
        .lines()
        .rfind(|l| l.starts_with("CMD "))
        .expect("a CMD");
    assert_eq!(
        cmd, r#"CMD ["moked"]"#,
        "a bare `docker run` needs no other service"
    );
    // `moked-worker health` itself is run against a live worker in workers/tests/process.rs.

    let docs = yaml_rust2::YamlLoader::load_from_str(&read("deploy/docker-compose.yml"))
        .expect("compose parses");
    let services = merged(&docs[0]["services"]);
    for name in ["intake", "worker", "clock"] {
        let service = &services[name];
        let test: Vec<&str> = service["healthcheck"]["test"]
            .as_vec()
            .unwrap_or_else(|| panic!("{name} has a healthcheck"))
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(test, ["CMD", "moked-worker", "health"], "{name}");
        let mounts: Vec<&str> = service["volumes"]
            .as_vec()
            .unwrap_or_else(|| panic!("{name} mounts volumes"))
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert!(
            mounts.contains(&"recordings:/app/data/recordings"),
            "{name} shares the recordings volume: {mounts:?}"
        );
        assert_eq!(
            service["environment"]["RECORDINGS_STORE"].as_str(),
            Some("file:///app/data/recordings"),
            "{name}"
        );
    }
    // The worker and the clock answer /health on METRICS_PORT; the intake on PORT.
    for name in ["worker", "clock"] {
        assert!(
            services[name]["environment"]["METRICS_PORT"]
                .as_str()
                .is_some(),
            "{name} sets METRICS_PORT"
        );
    }
    assert!(services["intake"]["environment"]["METRICS_PORT"].is_badvalue());
}

#[test]
fn systemd_units_migrate_first_and_keep_state_in_their_state_directory() {
    let migrate = read("deploy/systemd/moked-migrate.service");
    assert!(
        migrate.contains("Type=oneshot")
            && migrate.contains("ExecStart=/usr/local/bin/moked-worker migrate")
    );
    for unit in [
        "moked-intake.service",
        "moked-worker@.service",
        "moked-clock.service",
        "moked-migrate.service",
    ] {
        let text = read(&format!("deploy/systemd/{unit}"));
        assert!(text.contains("StateDirectory=moked"), "{unit}");
        if unit != "moked-migrate.service" {
            assert!(
                text.contains("Requires=moked-migrate.service")
                    && text.contains("After=")
                    && text
                        .lines()
                        .any(|l| l.starts_with("After=") && l.contains("moked-migrate.service")),
                "{unit} starts after the migrations"
            );
        }
    }
    let env = read("deploy/systemd/moked.env.example");
    let known = settings();
    for line in env
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
    {
        let name = line.split('=').next().unwrap_or_default();
        assert!(
            known.contains(name),
            "moked.env.example sets {name}, which no binary reads"
        );
    }
}

/// `node` with YAML merge keys (`<<: *anchor`, as compose files use them) applied: the parser
/// keeps them as plain `<<` entries.
fn merged(node: &yaml_rust2::Yaml) -> yaml_rust2::Yaml {
    use yaml_rust2::Yaml;
    match node {
        Yaml::Hash(map) => {
            let mut out = yaml_rust2::yaml::Hash::new();
            for (k, v) in map {
                if k.as_str() != Some("<<") {
                    out.insert(k.clone(), merged(v));
                }
            }
            if let Some(Yaml::Hash(base)) = map.get(&Yaml::String("<<".into())).map(merged) {
                for (k, v) in base {
                    out.entry(k).or_insert(v);
                }
            }
            Yaml::Hash(out)
        }
        Yaml::Array(items) => Yaml::Array(items.iter().map(merged).collect()),
        other => other.clone(),
    }
}

#[test]
fn every_setting_is_also_the_flag_of_the_same_name() {
    // README: "Every setting is an environment variable and the flag of the same name".
    let mismatched: Vec<String> = moked::Cli::command()
        .get_arguments()
        .filter_map(|a| {
            let env = a.get_env()?.to_string_lossy().into_owned();
            let flag = env.to_lowercase().replace('_', "-");
            (a.get_long() != Some(flag.as_str())).then(|| format!("{env} is --{:?}", a.get_long()))
        })
        .collect();
    assert!(mismatched.is_empty(), "{mismatched:#?}");
}
