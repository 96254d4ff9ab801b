//! Storage targets that fail: refused at start with a clear error, gone during uploads
//! (the push fails, so PostgreSQL retries, and nothing is half-visible), a retention
//! run killed half-way through its deletions on S3, and a store that refuses to delete
//! some objects.

use std::time::Duration;

use walgate_tests::emulators::{Azurite, Moto, Proxy, write_config};
use walgate_tests::{
    Gateway, PgCluster, basebackup_tar, gateway_dir, refused_start, synthetic_segment, wait_until,
};

const PROXY: &str = env!("CARGO_BIN_EXE_delay-proxy");
const FAULT_PROXY: &str = env!("CARGO_BIN_EXE_fault-proxy");

/// A gateway on moto's bucket `walgate` reached through `proxy`, with `extra` options.
fn through(moto: &Moto, proxy: &Proxy, dir: &std::path::Path, extra: &str) -> Gateway {
    let table = moto
        .target("s3", "walgate", "p")
        .replace(&moto.endpoint, &proxy.endpoint())
        + extra;
    let config = write_config(dir, "s3", &[table]);
    Gateway::with_config(dir, &config)
}

fn segment_path(segno: u64) -> String {
    format!("/v1/clusters/main/wal/0000000100000000{segno:08X}")
}

#[test]
fn bad_targets_stop_the_gateway_at_start_with_a_clear_error() {
    let azurite = Azurite::start();
    azurite.create_container("walgate");
    let moto = Moto::start();
    let dir = gateway_dir();

    // A wrong account key: named, explained, and never printed.
    let wrong_key = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk=";
    let table = azurite.target_with_key("azure", "walgate", "p", wrong_key);
    let config = write_config(dir.path(), "azure", &[table]);
    let err = refused_start(&config);
    assert!(
        err.contains("storage target `azure` failed its write probe"),
        "{err}"
    );
    assert!(
        err.contains("credentials") || err.contains("access denied"),
        "{err}"
    );
    assert!(!err.contains(wrong_key), "the key was printed:\n{err}");

    // A bucket that does not exist.
    let config = write_config(dir.path(), "s3", &[moto.target("s3", "missing", "p")]);
    let err = refused_start(&config);
    assert!(
        err.contains("storage target `s3` failed its write probe"),
        "{err}"
    );
    assert!(err.contains("does not exist"), "{err}");

    // A secret file that cannot be read.
    let table = format!(
        "[targets.s3]\nurl = \"s3://walgate\"\naws_secret_access_key = {{ file = \"{}\" }}\n",
        dir.path().join("no-such-secret").display()
    );
    let config = write_config(dir.path(), "s3", &[table]);
    let err = refused_start(&config);
    assert!(err.contains("storage target `s3`"), "{err}");
    assert!(err.contains("no-such-secret"), "{err}");
}

/// The store vanishes (its connections reset, new ones refused): WAL and backup pushes
/// fail with 503 and Retry-After, nothing they sent is listed or stored, and once the
/// store is back the same pushes succeed.
#[test]
fn a_store_that_vanishes_fails_pushes_and_keeps_nothing_half_visible() {
    let moto = Moto::start();
    moto.create_bucket("walgate");
    let mut proxy = Proxy::start(PROXY.as_ref(), &moto.endpoint, 0);
    let dir = gateway_dir();
    let gateway = through(&moto, &proxy, dir.path(), "retry_timeout = \"2s\"\n");
    let token = gateway.token("main", "admin");
    let mut source = PgCluster::init(&[]);
    source.start();
    let tar = basebackup_tar(&source);
    let sysid: u64 = source
        .psql("SELECT system_identifier FROM pg_control_system()")
        .parse()
        .unwrap();
    let push = |segno: u64| {
        gateway.send(
            "PUT",
            &segment_path(segno),
            &token,
            synthetic_segment(sysid, 1, segno, 0x11),
        )
    };
    assert_eq!(push(1).0, 201);

    proxy.kill();
    let (status, body) = push(2);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "storage_unavailable", "{body}");
    let (status, body) = gateway.send("POST", "/v1/clusters/main/backups", &token, tar.clone());
    assert_eq!(status, 503, "{body}");
    assert_eq!(gateway.send("GET", &segment_path(2), &token, vec![]).0, 404);
    let (_, backups) = gateway.send("GET", "/v1/clusters/main/backups", &token, vec![]);
    let complete = backups
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["status"] == "complete")
        .count();
    assert_eq!(complete, 0, "{backups}");
    let (status, plan) = gateway.send("GET", "/v1/clusters/main/restore-plan", &token, vec![]);
    assert_ne!(status, 200, "a plan without a backup: {plan}");

    proxy.restart();
    // Retention finishes the cleanup the failed upload could not do.
    let (status, ran) = gateway.send(
        "POST",
        "/v1/clusters/main/retention/run?confirm=true",
        &token,
        vec![],
    );
    assert_eq!(status, 200, "{ran}");
    let (_, backups) = gateway.send("GET", "/v1/clusters/main/backups", &token, vec![]);
    assert_eq!(backups, serde_json::json!([]));
    assert_eq!(
        moto.keys("walgate", "p/clusters/main/"),
        ["p/clusters/main/wal/000000010000000000000001.zst"]
    );
    assert_eq!(push(2).0, 201);
    let (status, body) = gateway.send("POST", "/v1/clusters/main/backups", &token, tar);
    assert_eq!(status, 201, "{body}");
}

/// Issue 5's crash: a retention run on S3 is killed (SIGKILL) while it deletes expired
/// WAL, after its marks are durable. The restarted gateway's next run finishes the job:
/// the bucket then holds exactly what the policy keeps, and the kept backup still
/// verifies. Deletions are slowed by a 20 ms proxy so the kill lands half-way.
#[test]
fn a_retention_run_killed_half_way_is_finished_by_the_next() {
    let moto = Moto::start();
    moto.create_bucket("walgate");
    let proxy = Proxy::start(PROXY.as_ref(), &moto.endpoint, 20);
    let dir = gateway_dir();
    let mut gateway = through(&moto, &proxy, dir.path(), "");
    let admin = gateway.token("main", "admin");

    let source = walgate_tests::archiving_with_curl(
        walgate_tests::Postgres::default_major(),
        &gateway.url,
        &admin,
    );
    source.psql("CREATE TABLE t (n int)");
    let switches = |n: usize| {
        for i in 0..n {
            source.psql(&format!(
                "INSERT INTO t VALUES ({i}); SELECT pg_switch_wal()"
            ));
        }
        source.archive_current();
    };
    let backup = || {
        let (status, b) = gateway.send(
            "POST",
            "/v1/clusters/main/backups",
            &admin,
            basebackup_tar(&source),
        );
        assert_eq!(status, 201, "{b}");
        b
    };
    let b1 = backup();
    switches(40);
    let b2 = backup();
    switches(3);

    let wal_keys = || {
        moto.keys("walgate", "p/clusters/main/wal/")
            .into_iter()
            .map(|k| {
                k["p/clusters/main/wal/".len()..]
                    .trim_end_matches(".zst")
                    .to_owned()
            })
            .collect::<Vec<_>>()
    };
    let before = wal_keys();
    let cut = b2["start_wal"].as_str().unwrap()[8..].to_owned();
    let (expired, kept): (Vec<String>, Vec<String>) = before
        .iter()
        .cloned()
        .partition(|n| !n.ends_with(".history") && n[8..24] < *cut);
    assert!(expired.len() >= 40, "{before:?}");
    let body = serde_json::json!({"keep_last": 1}).to_string().into_bytes();
    let (status, preview) = gateway.send("PUT", "/v1/clusters/main/retention", &admin, body);
    assert_eq!(status, 200, "{preview}");
    assert_eq!(
        preview["delete_wal_files"],
        expired.len() as u64,
        "{preview}"
    );

    // Run, and kill the gateway once its WAL marks are in the catalog (the expired
    // files are no longer listed) while it is still deleting objects.
    let url = format!(
        "{}/v1/clusters/main/retention/run?confirm=true",
        gateway.url
    );
    let header_value = format!("Bearer {admin}");
    let run = std::thread::spawn(move || {
        let _ = walgate_tests::agent()
            .post(&url)
            .header("Authorization", &header_value)
            .send_empty();
    });
    let first_expired = segment_path(0).replace("000000010000000000000000", &expired[0]);
    wait_until(
        Duration::from_secs(120),
        "the retention run to mark its WAL",
        || gateway.send("HEAD", &first_expired, &admin, vec![]).0 == 404,
    );
    gateway.kill();
    run.join().unwrap();
    let left = wal_keys();
    let still_there = expired.iter().filter(|n| left.contains(n)).count();
    assert!(
        still_there > 0,
        "the kill came after every deletion: nothing was tested"
    );
    eprintln!(
        "killed with {still_there} of {} expired WAL objects left",
        expired.len()
    );

    gateway.restart();
    let (status, ran) = gateway.send(
        "POST",
        "/v1/clusters/main/retention/run?confirm=true",
        &admin,
        vec![],
    );
    assert_eq!(status, 200, "{ran}");
    assert_eq!(
        wal_keys(),
        kept,
        "the bucket holds exactly what the policy keeps"
    );
    let (_, backups) = gateway.send("GET", "/v1/clusters/main/backups", &admin, vec![]);
    let ids: Vec<&serde_json::Value> = backups
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["id"])
        .collect();
    assert_eq!(ids, [&b2["id"]]);
    let backup_keys = moto.keys("walgate", "p/clusters/main/backups/");
    let b1_id = b1["id"].as_str().unwrap();
    assert!(
        backup_keys.iter().all(|k| !k.contains(b1_id)),
        "{backup_keys:?}"
    );
    let (status, report) =
        gateway.send("GET", "/v1/clusters/main/verify?scrub=true", &admin, vec![]);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], true, "{report}");
}

/// The store refuses to delete one backup's data and one WAL segment (403, as a deny
/// policy answers): retention records both with the store's answer and deletes all the
/// rest; the page, the plan and the metrics show them; later runs retry them, and once
/// the fault is lifted they go and are forgotten.
#[test]
fn a_delete_the_store_refuses_never_stalls_retention() {
    let moto = Moto::start();
    moto.create_bucket("walgate");
    let dir = gateway_dir();
    let faults = dir.path().join("faults");
    std::fs::write(&faults, "").unwrap();
    let proxy = Proxy::faulty(FAULT_PROXY.as_ref(), &moto.endpoint, &faults);
    let gateway = through(&moto, &proxy, dir.path(), "retry_timeout = \"2s\"\n");
    let admin = gateway.token("main", "admin");
    let sysid = 7_400_000_000_000_000_001;
    for segno in 1..=8 {
        let (status, body) = gateway.send(
            "PUT",
            &segment_path(segno),
            &admin,
            synthetic_segment(sysid, 1, segno, segno as u8),
        );
        assert_eq!(status, 201, "{body}");
    }
    let backup = |segno| {
        let tar = walgate_tests::synthetic_backup(15, sysid, segno, "");
        let (status, body) = gateway.send("POST", "/v1/clusters/main/backups", &admin, tar);
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    };
    let (oldest, older, newest) = (backup(2), backup(4), backup(6));
    let (status, body) = gateway.send(
        "PUT",
        "/v1/clusters/main/retention",
        &admin,
        serde_json::to_vec(&serde_json::json!({"keep_last": 1})).unwrap(),
    );
    assert_eq!(status, 200, "{body}");

    let stuck_backup = format!("p/clusters/main/backups/{oldest}/base.tar.zst");
    let stuck_wal = "p/clusters/main/wal/000000010000000000000003.zst";
    std::fs::write(&faults, format!("{stuck_backup}\n{stuck_wal}\n")).unwrap();
    let run = || gateway.run_retention("main", &admin);
    for attempt in 1..=2 {
        let ran = run();
        assert_eq!(ran["failing_deletions"], 2, "{ran}");
        let failures = ran["failures"].as_array().unwrap();
        let mut objects: Vec<&str> = failures
            .iter()
            .map(|f| f["object"].as_str().unwrap())
            .collect();
        objects.sort();
        assert_eq!(
            objects,
            [
                format!("clusters/main/backups/{oldest}/base.tar.zst"),
                "clusters/main/wal/000000010000000000000003.zst".into()
            ],
            "{ran}"
        );
        for f in failures {
            assert_eq!(f["attempts"], attempt, "{ran}");
            assert!(
                f["error"].as_str().unwrap().contains("Access Denied"),
                "{ran}"
            );
        }
        // Everything else went: the other expired backup whole, the refused backup's
        // other objects, and every other expired segment.
        let mut left = moto.keys("walgate", "p/clusters/main/");
        left.retain(|k| !k.ends_with("settings.json"));
        let mut expected = vec![
            stuck_backup.clone(),
            format!("p/clusters/main/backups/{newest}/backup.json"),
            format!("p/clusters/main/backups/{newest}/base.tar.zst"),
            stuck_wal.to_owned(),
        ];
        expected
            .extend((6..=8).map(|n| format!("p/clusters/main/wal/00000001000000000000000{n}.zst")));
        expected.sort();
        assert_eq!(left, expected, "attempt {attempt}");
    }
    // No restore picks the half-deleted backup, nor the one gone.
    let (_, backups) = gateway.send("GET", "/v1/clusters/main/backups", &admin, vec![]);
    let complete: Vec<&str> = backups
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["status"] == "complete")
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(complete, [newest.as_str()], "{backups}");
    assert!(!backups.to_string().contains(&older), "{backups}");

    let page = gateway.page("/clusters/main", &admin);
    assert!(page.contains(r#"id="deletion-failures""#), "{page}");
    assert!(page.contains("000000010000000000000003.zst"), "{page}");
    let metrics = || {
        let viewer = gateway.token("*", "viewer");
        String::from_utf8(walgate_tests::body_bytes(
            gateway.get("/metrics", Some(&viewer)),
        ))
        .unwrap()
    };
    let now = metrics();
    assert!(
        now.contains("walgate_deletions_failing{cluster=\"main\"} 2"),
        "{now}"
    );
    assert!(
        now.contains("walgate_deletions_failing_since_timestamp_seconds{cluster=\"main\"}"),
        "{now}"
    );

    // The fault is lifted: the next run deletes both and forgets them.
    std::fs::write(&faults, "").unwrap();
    let ran = run();
    assert_eq!(ran["failing_deletions"], 0, "{ran}");
    assert_eq!(ran["failures"], serde_json::json!([]), "{ran}");
    let mut left = moto.keys("walgate", "p/clusters/main/");
    left.retain(|k| !k.ends_with("settings.json"));
    assert_eq!(left.len(), 5, "{left:?}");
    assert!(!left.contains(&stuck_backup) && !left.iter().any(|k| k == stuck_wal));
    let (_, backups) = gateway.send("GET", "/v1/clusters/main/backups", &admin, vec![]);
    assert_eq!(backups.as_array().unwrap().len(), 1, "{backups}");
    assert!(!metrics().contains("walgate_deletions_failing{"));
}
