//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!` embeds the
//! `migrations/` folders at compile time, and Cargo does not watch a folder it was not told about.

//!
//! It also names the build for `moked_build_info{commit}`: `MOKED_COMMIT`, else Heroku's
//! `SOURCE_VERSION` (set while the buildpack compiles), else `unknown`. Reading git here instead
//! would rebuild every crate on every commit.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    println!("cargo:rerun-if-env-changed=MOKED_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_VERSION");
    let commit = ["MOKED_COMMIT", "SOURCE_VERSION"]
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .map(|v| v.trim().chars().take(12).collect::<String>())
        .find(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=MOKED_COMMIT={commit}");
}
