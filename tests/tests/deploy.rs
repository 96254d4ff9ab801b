//! The deployment files are checked, not just shipped: the systemd unit by
//! `systemd-analyze verify` (any warning fails), the Kubernetes manifests against the
//! Kubernetes schemas (strict: an unknown field fails), the compose file's references,
//! and the container image's build paths against the workspace.

use std::path::{Path, PathBuf};
use std::process::Command;

use walgate_tests::bin;
use walgate_tests::emulators::emulators_dir;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(deploy(file)).unwrap()
}

#[test]
fn the_systemd_unit_verifies_cleanly() {
    // The unit names the installed binary; verify it against the one just built.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("walgate.service");
    let text = read("systemd/walgate.service").replace(
        "/usr/local/bin/walgate",
        &bin("walgate").display().to_string(),
    );
    std::fs::write(&unit, text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian's systemd package) is needed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
}

#[test]
fn the_kubernetes_manifests_match_the_schemas() {
    let out = Command::new(emulators_dir().join("venv/bin/kubernetes-validate"))
        .args(["--strict", "--quiet"])
        .arg(deploy("kubernetes/walgate.yaml"))
        .output()
        .expect("kubernetes-validate (tests/emulators/install)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = read("kubernetes/walgate.yaml");
    for kind in [
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "Secret",
        "ConfigMap",
    ] {
        assert!(text.contains(&format!("kind: {kind}\n")), "no {kind}");
    }
    assert!(text.contains("replicas: 2"), "two replicas at least");
    assert!(text.contains("path: /readyz") && text.contains("path: /healthz"));
}

#[test]
fn the_compose_file_refers_only_to_what_it_defines() {
    // Parsed by PyYAML; then every dependency, volume and build path must exist.
    let check = r#"
import os, sys, yaml
path = sys.argv[1]
doc = yaml.safe_load(open(path))
services, volumes = doc["services"], doc.get("volumes", {})
assert set(services) == {"catalog", "objects", "bucket", "walgate"}, services
for name, s in services.items():
    assert "image" in s or "build" in s, name
    for dep in s.get("depends_on", {}):
        assert dep in services, (name, dep)
    for v in s.get("volumes", []):
        source = v.split(":")[0]
        assert source in volumes, (name, source)
build = services["walgate"]["build"]
context = os.path.join(os.path.dirname(path), build["context"])
assert os.path.isfile(os.path.join(context, build["dockerfile"])), build
env = services["walgate"]["environment"]
assert env["WALGATE_STORAGE_URL"].startswith("s3://"), env
assert env["WALGATE_CATALOG_URL"].startswith("postgres://"), env
"#;
    let out = Command::new(emulators_dir().join("venv/bin/python"))
        .args(["-c", check])
        .arg(deploy("compose.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_container_image_builds_what_the_workspace_has() {
    let file = read("container/Containerfile");
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
            .unwrap();
    // The toolchain image is at least the workspace's rust-version.
    let wanted = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap();
    let image = file
        .lines()
        .find_map(|l| l.strip_prefix("FROM docker.io/library/rust:"))
        .and_then(|l| l.split('-').next())
        .unwrap();
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|n| n.parse().unwrap()).collect() };
    assert!(version(image) >= version(wanted), "{image} < {wanted}");
    assert!(manifest.contains("[profile.client]"));
    for copied in [
        "/src/target/release/walgate ",
        "/src/target/client/walgate-client ",
    ] {
        assert!(file.contains(copied), "{copied}");
    }
    assert!(file.contains("USER walgate") && file.contains("EXPOSE 8432"));
}
