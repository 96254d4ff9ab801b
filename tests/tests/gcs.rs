//! Google Cloud Storage: no emulator here speaks the XML API the gateway uses, so this
//! runs only against a real bucket when credentials are given, and shows as ignored
//! otherwise. Run it with
//!
//! ```sh
//! WALGATE_TEST_GCS_URL=gs://bucket/prefix GOOGLE_SERVICE_ACCOUNT=/path/sa.json \
//!     cargo test -p walgate-tests --test gcs -- --ignored
//! ```
//!
//! Configuration is covered without credentials by the storage target unit tests.

use walgate_tests::{Gateway, body_bytes, gateway_dir, synthetic_segment};

#[test]
#[ignore = "needs a real GCS bucket: set WALGATE_TEST_GCS_URL and GOOGLE_SERVICE_ACCOUNT, run with --ignored"]
fn archive_and_fetch_on_real_gcs() {
    let url = std::env::var("WALGATE_TEST_GCS_URL")
        .expect("set WALGATE_TEST_GCS_URL=gs://bucket/prefix (and GCS credentials)");
    let dir = gateway_dir();
    let gateway = Gateway::start(&dir.path().join("data"), &["--storage-url", &url]);
    // A cluster name of its own per run: earlier runs' objects stay apart.
    let cluster = format!("t{}", std::process::id());
    let token = gateway.token(&cluster, "admin");
    for segno in 1..=3u64 {
        let segment = synthetic_segment(7_300_000_000_000_000_001, 1, segno, segno as u8);
        let path = format!("/v1/clusters/{cluster}/wal/0000000100000000{segno:08X}");
        let (status, body) = gateway.send("PUT", &path, &token, segment.clone());
        assert_eq!(status, 201, "{body}");
        let fetched = gateway.get(&path, Some(&token));
        assert_eq!(fetched.status(), 200);
        assert!(
            body_bytes(fetched) == segment,
            "segment {segno} came back different"
        );
    }
    let ready = gateway.get("/readyz", None);
    assert_eq!(ready.status(), 200);
}
