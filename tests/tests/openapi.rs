//! The OpenAPI document against the server it describes: schemathesis (from PyPI) reads
//! `/openapi.json` from a live gateway holding a real cluster's archive and sends
//! generated requests, valid and invalid, to every operation; every answer's status,
//! content type, headers and body must be ones the document declares, and none a 5xx.

use std::process::Command;

use walgate_tests::emulators::installed;
use walgate_tests::{Gateway, basebackup_tar, gateway_dir};

#[test]
fn the_server_answers_as_its_openapi_document_says() {
    let dir = gateway_dir();
    let gw = Gateway::start(&dir.path().join("data"), &[]);
    let admin = gw.token("*", "admin");
    // Real WAL and a real backup, so reads of existing objects are exercised too.
    let pg = walgate_tests::archiving_with_curl(
        walgate_tests::Postgres::default_major(),
        &gw.url,
        &admin,
    );
    let (status, body) = gw.send(
        "PUT",
        "/v1/clusters/main/backups",
        &admin,
        basebackup_tar(&pg),
    );
    assert_eq!(status, 201, "{body}");
    pg.archive_current();

    let out = Command::new(installed("venv/bin/schemathesis"))
        .arg("run")
        .arg(format!("{}/openapi.json", gw.url))
        .args(["-H", &format!("Authorization: Bearer {admin}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "30",
            "--seed",
            "1",
            // One worker: Python 3.11's ast.parse is not thread-safe, and hypothesis parses
            // source while building strategies ("AST constructor recursion depth mismatch").
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--no-color",
            // The token is sent on every request; generated tokens would only test 401s.
            "--generation-with-security-parameters",
            "false",
            // Backup uploads are tar streams the fuzzer cannot make (tests/backups.rs
            // sends real ones), and revoking tokens would revoke the fuzzer's own.
            "--exclude-path-regex",
            "/backups$",
            "--exclude-path",
            "/v1/tokens/{id}",
        ])
        .current_dir(dir.path())
        .output()
        .expect("run schemathesis (installed by tests/emulators/install)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}"
    );
    assert!(
        !report.contains("Authentication failed"),
        "requests were refused for auth: {report}"
    );
    // Every operation but those excluded above.
    let included = gw
        .operations()
        .iter()
        .filter(|op| !op.ends_with("/backups") && !op.ends_with("/v1/tokens/{id}"))
        .count();
    let tested = format!("Tested: {included}");
    assert!(report.contains(&tested), "expected `{tested}`:\n{report}");
    eprintln!(
        "{}",
        report.lines().rev().take(12).collect::<Vec<_>>().join("\n")
    );
}
