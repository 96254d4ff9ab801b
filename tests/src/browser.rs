//! The dashboard in a real browser: a script of `tests/browser/` run by node, driving
//! Debian's headless chromium with puppeteer-core (both installed by `.ci/run`), against
//! a gateway; the script prints what it saw as JSON.

use std::path::Path;
use std::process::Command;

use crate::emulators::installed;
use crate::gateway::Gateway;

/// Runs `tests/browser/<script>` signed in with a `*` viewer token of `gateway`, with
/// `env` besides `WALGATE_URL`, `WALGATE_TOKEN` and `WALGATE_SCREENSHOTS` (the directory
/// `shots`, created if missing); returns what it printed.
pub fn run_script(
    script: &str,
    gateway: &Gateway,
    shots: &Path,
    env: &[(&str, &str)],
) -> serde_json::Value {
    std::fs::create_dir_all(shots).expect("create the screenshot directory");
    let out = Command::new("node")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("browser")
                .join(script),
        )
        .env("NODE_PATH", installed("npm/node_modules"))
        .env("WALGATE_URL", &gateway.url)
        .env("WALGATE_TOKEN", gateway.token("*", "viewer"))
        .env("WALGATE_SCREENSHOTS", shots)
        .envs(env.iter().copied())
        .output()
        .expect("run node (installed by .ci/run)");
    assert!(
        out.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}
