//! Google Cloud Storage: the gateway's GCS client against fake-gcs-server (behind the
//! tests' XML-API write front, see `tests/emulators/gcs-xml-writes`): the start-up probe
//! passes only because the server refuses an overwrite, pushes are create-only, and a
//! base backup taken through the gateway restores with real PostgreSQL. Archive and
//! recovery, and encryption at rest, run on it in `wal_recovery` and `encryption`.
//!
//! Against a real bucket, when credentials are given (ignored otherwise):
//!
//! ```sh
//! WALGATE_TEST_GCS_URL=gs://bucket/prefix GOOGLE_SERVICE_ACCOUNT=/path/sa.json \
//!     cargo test -p walgate-tests --test gcs -- --ignored
//! ```

use walgate_tests::emulators::{FakeGcs, write_config};
use walgate_tests::{
    Gateway, Postgres, basebackup_tar, body_bytes, gateway_dir, pgbench_checksum, synthetic_segment,
};

/// A gateway whose default target is a fresh bucket on `gcs`.
fn on_gcs(gcs: &FakeGcs, dir: &std::path::Path) -> Gateway {
    gcs.create_bucket("walgate");
    let config = write_config(dir, "gcs", &[gcs.target("gcs", "walgate", "p")]);
    Gateway::with_config(dir, &config)
}

/// The start-up probe's create-only write was refused by the server (or the gateway
/// would not have started); a segment pushed again with other bytes is refused too, and
/// what is stored stays the first push's.
#[test]
fn writes_to_gcs_are_create_only() {
    let gcs = FakeGcs::start();
    let dir = gateway_dir();
    let gateway = on_gcs(&gcs, dir.path());
    let token = gateway.token("main", "archiver");
    let sysid = 7_600_000_000_000_000_001;
    let path = "/v1/clusters/main/wal/000000010000000000000001";
    let first = synthetic_segment(sysid, 1, 1, 1);
    assert_eq!(gateway.send("PUT", path, &token, first.clone()).0, 201);
    let key = "p/clusters/main/wal/000000010000000000000001.zst";
    let stored = gcs.read("walgate", key);
    let (status, refused) = gateway.send("PUT", path, &token, synthetic_segment(sysid, 1, 1, 2));
    assert_eq!(status, 409, "{refused}");
    assert!(
        gcs.read("walgate", key) == stored,
        "the stored object changed"
    );
    assert_eq!(gateway.send("PUT", path, &token, first.clone()).0, 200);
    let fetched = gateway.get(path, Some(&token));
    assert!(body_bytes(fetched) == first);
    let (status, ready) = gateway.send("GET", "/readyz", &token, vec![]);
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["targets"]["gcs"], "ok", "{ready}");
}

/// PostgreSQL archives to GCS with the README's curl recipe; a base backup goes up
/// through the gateway (a multipart upload); the restore plan's backup and WAL bring a
/// new cluster to the source's data.
#[test]
fn a_base_backup_on_gcs_restores() {
    let gcs = FakeGcs::start();
    let dir = gateway_dir();
    let gateway = on_gcs(&gcs, dir.path());
    let admin = gateway.token("main", "admin");
    let pg = Postgres::default_major();
    let source = walgate_tests::archiving_with_curl(pg, &gateway.url, &admin);
    source.pgbench(&["-i", "-s", "2", "-q"]);
    source.psql("CREATE TABLE marker (note text)");
    let (status, backup) = gateway.send(
        "POST",
        "/v1/clusters/main/backups",
        &admin,
        basebackup_tar(&source),
    );
    assert_eq!(status, 201, "{backup}");
    source.pgbench(&["-c", "2", "-t", "300", "-n"]);
    let expected = pgbench_checksum(&source);
    source.archive_current();
    let keys = gcs.keys("walgate", "p/clusters/main/backups/");
    assert!(
        keys.iter().any(|k| k.ends_with("/base.tar.zst")),
        "{keys:?}"
    );
    let (status, plan) = gateway.send("GET", "/v1/clusters/main/restore-plan", &admin, vec![]);
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["backup"]["id"], backup["id"], "{plan}");
    let restored = walgate_tests::restore_plan(&gateway, pg, &plan, "archive_mode = off");
    assert_eq!(pgbench_checksum(&restored), expected);
}

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
