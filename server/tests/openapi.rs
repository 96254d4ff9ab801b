//! The committed `openapi/openapi.json` must be what the code generates: every API
//! change shows up as a reviewed diff. Regenerate with
//! `cargo run -p walgate -- openapi > openapi/openapi.json`.

#[test]
fn committed_openapi_document_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    let generated = walgate::http::openapi().to_pretty_json().unwrap();
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json is stale: run `cargo run -p walgate -- openapi > openapi/openapi.json`"
    );
}
