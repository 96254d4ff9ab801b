//! Write-once targets (S3 Object Lock, on moto): objects are locked as they are stored,
//! by walgate or by the bucket's default retention; the gateway refuses to start when the
//! bucket and the target disagree; and nothing an admin token can do through the API
//! deletes a locked backup or its WAL, which still restore to the source's data.

use walgate_tests::emulators::{Moto, write_config};
use walgate_tests::{
    Gateway, Postgres, basebackup_tar, gateway_dir, pgbench_checksum, refused_start,
    synthetic_segment,
};

const SYSID: u64 = 7_500_000_000_000_000_001;

fn segment_path(segno: u64) -> String {
    format!("/v1/clusters/main/wal/0000000100000000{segno:08X}")
}

/// The bucket's default retention locks what the gateway stores: the gateway must be
/// told (or it refuses to start), reports it, records each object's lock, and a retention
/// run keeps an expired backup whose objects are locked; WAL no backup needs leaves the
/// catalog but its locked object waits: no delete reaches the bucket.
#[test]
fn a_bucket_that_locks_by_default_is_detected_and_honoured() {
    let moto = Moto::start();
    moto.create_locked_bucket("locked", Some(("GOVERNANCE", 1)));
    moto.create_locked_bucket("lockable", None);
    moto.create_bucket("plain");
    let dir = gateway_dir();
    let target = |bucket: &str, extra: &str| moto.target("s3", bucket, "p") + extra;

    let config = write_config(dir.path(), "s3", &[target("locked", "")]);
    let err = refused_start(&config);
    assert!(err.contains("object_lock = \"bucket\""), "{err}");
    let config = write_config(
        dir.path(),
        "s3",
        &[target("lockable", "object_lock = \"bucket\"\n")],
    );
    let err = refused_start(&config);
    assert!(err.contains("no default retention"), "{err}");
    let lock = "object_lock = \"compliance\"\nobject_lock_period = \"1d\"\n";
    let config = write_config(dir.path(), "s3", &[target("plain", lock)]);
    let err = refused_start(&config);
    assert!(err.contains("Object Lock is not enabled"), "{err}");

    let config = write_config(
        dir.path(),
        "s3",
        &[target("locked", "object_lock = \"bucket\"\n")],
    );
    let gateway = Gateway::with_config(dir.path(), &config);
    let admin = gateway.token("main", "admin");
    let (status, ready) = gateway.send("GET", "/readyz", &admin, vec![]);
    assert_eq!(status, 200, "{ready}");
    assert_eq!(
        ready["object_lock"]["s3"], "governance, 1 days, by the bucket's default retention",
        "{ready}"
    );
    for segno in 1..=6 {
        let segment = synthetic_segment(SYSID, 1, segno, segno as u8);
        let (status, body) = gateway.send("PUT", &segment_path(segno), &admin, segment);
        assert_eq!(status, 201, "{body}");
    }
    let lock = moto.retention("locked", "p/clusters/main/wal/000000010000000000000001.zst");
    assert!(lock.starts_with("GOVERNANCE "), "{lock}");
    let backup = |segno| {
        let tar = walgate_tests::synthetic_backup(15, SYSID, segno, "");
        let (status, body) = gateway.send("POST", "/v1/clusters/main/backups", &admin, tar);
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    };
    let (older, newer) = (backup(2), backup(4));
    let policy = serde_json::json!({"keep_last": 1}).to_string().into_bytes();
    let (status, plan) = gateway.send("PUT", "/v1/clusters/main/retention", &admin, policy);
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["delete_backups"], serde_json::json!([]), "{plan}");
    assert_eq!(plan["locked"][0]["id"], older.as_str(), "{plan}");
    assert_eq!(plan["keep"], serde_json::json!([newer, older]), "{plan}");
    let before = moto.versions("locked", "p/clusters/");
    let ran = gateway.run_retention("main", &admin);
    assert_eq!(ran["delete_wal_files"], 1, "{ran}");
    assert_eq!(moto.versions("locked", "p/clusters/"), before);
    assert!(!before.iter().any(|v| v.ends_with("delete-marker")));
}

/// An admin token in the wrong hands, on a target that locks each object itself
/// (compliance mode): deleting a backup or the cluster is refused with 409 "locked",
/// retention set to keep one backup keeps the locked older one too, no delete reaches
/// the bucket, and the older backup and its WAL still restore to the source's data.
/// All of it again with a catalog that has forgotten every lock (as one rebuilt by an
/// older version would): the store's own locks refuse the same.
#[test]
fn a_stolen_admin_token_cannot_destroy_locked_backups() {
    let moto = Moto::start();
    moto.create_locked_bucket("vault", None);
    let dir = gateway_dir();
    let lock = "object_lock = \"compliance\"\nobject_lock_period = \"2d\"\n";
    let config = write_config(dir.path(), "s3", &[moto.target("s3", "vault", "p") + lock]);
    let gateway = Gateway::with_config(dir.path(), &config);
    let admin = gateway.token("main", "admin");
    let (_, ready) = gateway.send("GET", "/readyz", &admin, vec![]);
    assert_eq!(
        ready["object_lock"]["s3"], "compliance, 2 days, set on each object",
        "{ready}"
    );

    let pg = Postgres::default_major();
    let source = walgate_tests::archiving_with_curl(pg, &gateway.url, &admin);
    source.pgbench(&["-i", "-s", "2", "-q"]);
    source.psql("CREATE TABLE marker (note text)");
    let post = |tar: Vec<u8>| {
        let (status, body) = gateway.send("POST", "/v1/clusters/main/backups", &admin, tar);
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    };
    let older = post(basebackup_tar(&source));
    source.pgbench(&["-c", "2", "-t", "300", "-n"]);
    let target = source.psql("SELECT pg_current_wal_insert_lsn()");
    let expected = pgbench_checksum(&source);
    source.pgbench(&["-c", "2", "-t", "300", "-n"]);
    let newer = post(basebackup_tar(&source));
    let last = source.archive_current();
    let lock = moto.retention(
        "vault",
        &format!("p/clusters/main/backups/{older}/base.tar.zst"),
    );
    assert!(lock.starts_with("COMPLIANCE "), "{lock}");
    let lock = moto.retention("vault", &format!("p/clusters/main/wal/{last}.zst"));
    assert!(lock.starts_with("COMPLIANCE "), "{lock}");
    let stored = moto.versions("vault", "p/clusters/main/");

    // Everything an admin can do to delete data, refused: no object or delete marker
    // changes, and the older backup stays in the plan.
    let attempt = || {
        let backup = format!("/v1/clusters/main/backups/{older}");
        for path in [backup.as_str(), "/v1/clusters/main?confirm=main"] {
            let (status, refused) = gateway.send("DELETE", path, &admin, vec![]);
            assert_eq!(
                (status, refused["error"].as_str()),
                (409, Some("locked")),
                "{path}: {refused}"
            );
            let message = refused["message"].as_str().unwrap();
            assert!(message.contains("locked until"), "{refused}");
        }
        let ran = gateway.run_retention("main", &admin);
        assert_eq!(ran["delete_backups"], serde_json::json!([]), "{ran}");
        assert_eq!(ran["locked"][0]["id"], older.as_str(), "{ran}");
        assert_eq!(ran["keep"], serde_json::json!([newer, older]), "{ran}");
        let mut now = moto.versions("vault", "p/clusters/main/");
        now.retain(|v| !v.contains("settings.json"));
        let mut before = stored.clone();
        before.retain(|v| !v.contains("settings.json"));
        assert_eq!(now, before, "an object or delete marker changed");
    };
    let policy = serde_json::json!({"keep_last": 1, "min_backups": 1})
        .to_string()
        .into_bytes();
    let (status, plan) = gateway.send("PUT", "/v1/clusters/main/retention", &admin, policy);
    assert_eq!(status, 200, "{plan}");
    attempt();
    let page = gateway.page("/clusters/main", &admin);
    assert!(page.contains(r#"id="object-lock""#), "{page}");
    assert!(page.contains(r#"id="retention-locked""#), "{page}");

    // The catalog forgets every lock; the store's locks refuse the same.
    let catalog = dir.path().join("data/catalog.db");
    walgate_tests::emulators::python(&format!(
        "import sqlite3; c = sqlite3.connect('{}'); \
         c.execute('UPDATE backups SET retain_until = NULL'); \
         c.execute('UPDATE wal_files SET retain_until = NULL'); c.commit()",
        catalog.display()
    ));
    attempt();

    // The older backup and its WAL restore to the data as it was.
    let viewer = gateway.token("main", "viewer");
    let (status, plan) = gateway.send(
        "GET",
        &format!("/v1/clusters/main/restore-plan?target_lsn={target}"),
        &viewer,
        vec![],
    );
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["backup"]["id"], older.as_str(), "{plan}");
    let restored = walgate_tests::restore_plan(&gateway, pg, &plan, "archive_mode = off");
    assert_eq!(pgbench_checksum(&restored), expected);
}
