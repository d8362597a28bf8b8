//! Build facts for `peerstorm --version`: the git commit this binary was built from and the
//! version of the vendored `rtc` WebRTC stack (patches/rtc).

use std::process::Command;

fn main() {
    // Read when the script runs, not when it was compiled: a build directory shared by several
    // checkouts reuses the compiled script, and `env!` would name the first one.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = std::path::Path::new(&manifest).join("../..");
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown (not built from git)".into());
    let date = git(&["log", "-1", "--format=%cs"]).unwrap_or_default();
    println!("cargo:rustc-env=PEERSTORM_COMMIT={commit}");
    println!("cargo:rustc-env=PEERSTORM_COMMIT_DATE={date}");
    let rtc = std::fs::read_to_string(root.join("patches/rtc/Cargo.toml"))
        .ok()
        .and_then(|t| {
            t.lines().find(|l| l.starts_with("version")).and_then(|l| l.split('"').nth(1)).map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=PEERSTORM_RTC_VERSION={rtc}");
    // A new commit moves HEAD or the branch it names.
    for path in [".git/HEAD", ".git/refs/heads", ".git/packed-refs", "patches/rtc/Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
}
