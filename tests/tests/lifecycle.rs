//! The gateway's own lifecycle: on SIGTERM it turns unready first, finishes what is in
//! flight within its deadline, cuts off what is not (unacknowledged, so nothing of it is
//! kept), and exits by itself.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use walgate_tests::{Gateway, body_bytes, gateway_dir, synthetic_segment, wait_until};

const SYSID: u64 = 7_300_000_000_000_000_002;
const NAME: &str = "000000010000000000000001";

/// Starts uploading a segment by hand and stops after half of its body.
fn half_upload(gateway: &Gateway, token: &str, segment: &[u8]) -> TcpStream {
    let addr = gateway.url.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "PUT /v1/clusters/main/wal/{NAME} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n",
        segment.len()
    )
    .unwrap();
    conn.write_all(&segment[..segment.len() / 2]).unwrap();
    conn.flush().unwrap();
    conn
}

/// The status of the backup `viewer` sees listed first (`null` when none is).
fn first_backup_status(gateway: &Gateway, viewer: &str) -> serde_json::Value {
    let list = body_bytes(gateway.get("/v1/clusters/main/backups", Some(viewer)));
    let list: serde_json::Value = serde_json::from_slice(&list).unwrap();
    list[0]["status"].clone()
}

fn readiness(url: &str) -> (u16, serde_json::Value) {
    let r = walgate_tests::agent()
        .get(format!("{url}/readyz"))
        .call()
        .expect("/readyz answers (through the drain delay too)");
    let status = r.status().as_u16();
    (status, serde_json::from_slice(&body_bytes(r)).unwrap())
}

#[test]
fn sigterm_drains_finishes_uploads_in_flight_and_exits() {
    let dir = gateway_dir();
    let mut gateway = Gateway::start_serving(
        &dir.path().join("data"),
        &[],
        &["--drain-delay", "5s", "--shutdown-timeout", "60s"],
    );
    let token = gateway.token("main", "archiver");
    let segment = synthetic_segment(SYSID, 1, 1, 0x5A);
    assert_eq!(readiness(&gateway.url).0, 200);
    let mut upload = half_upload(&gateway, &token, &segment);

    let probe = gateway.url.clone();
    let started = Instant::now();
    let sigterm = std::thread::spawn(move || {
        let status = gateway.terminate(Duration::from_secs(120));
        (gateway, status)
    });
    // Meanwhile: unready (503, draining) while the process still answers, which it
    // does for the whole drain delay.
    let mut answer = (200, serde_json::Value::Null);
    wait_until(Duration::from_secs(60), "/readyz to say 503", || {
        answer = readiness(&probe);
        answer.0 == 503
    });
    assert_eq!(answer.1["draining"], true, "{}", answer.1);

    // The upload in flight finishes and is acknowledged.
    upload.write_all(&segment[segment.len() / 2..]).unwrap();
    let mut answer = String::new();
    upload.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    let (mut gateway, status) = sigterm.join().unwrap();
    let status = status.expect("the gateway did not exit by itself");
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "exited before the drain delay"
    );
    assert!(gateway.log().contains("no longer accepting connections"));

    gateway.restart();
    let fetched = gateway.get(&format!("/v1/clusters/main/wal/{NAME}"), Some(&token));
    assert_eq!(fetched.status(), 200);
    assert!(body_bytes(fetched) == segment);
}

#[test]
fn an_upload_past_the_deadline_is_cut_off_and_leaves_nothing() {
    let dir = gateway_dir();
    let mut gateway = Gateway::start_serving(
        &dir.path().join("data"),
        &[],
        // The WAL idle limit would end the stalled upload too (408): an hour keeps it
        // out of the way, so only the shutdown deadline can.
        &[
            "--drain-delay",
            "0s",
            "--shutdown-timeout",
            "1s",
            "--wal-idle-timeout",
            "1h",
        ],
    );
    let token = gateway.token("main", "archiver");
    let segment = synthetic_segment(SYSID, 1, 1, 0x5A);
    let _stalled = half_upload(&gateway, &token, &segment);
    // The stalled upload never ends: exiting at all means it was cut off.
    let status = gateway.terminate(Duration::from_secs(120));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        gateway.log()
    );
    assert!(
        gateway.log().contains("shutdown deadline passed"),
        "{}",
        gateway.log()
    );

    gateway.restart();
    let fetched = gateway.get(&format!("/v1/clusters/main/wal/{NAME}"), Some(&token));
    assert_eq!(
        fetched.status(),
        404,
        "a cut-off upload must not be archived"
    );
    let objects = dir.path().join("data/objects/clusters/main/wal");
    let left: Vec<_> = std::fs::read_dir(&objects)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A base backup still streaming at the shutdown deadline is cut like a broken upload:
/// no row, no object, no staging file remains after the gateway exits.
#[test]
fn a_backup_upload_past_the_deadline_leaves_nothing() {
    let dir = gateway_dir();
    let mut gateway = Gateway::start_serving(
        &dir.path().join("data"),
        &[],
        &["--drain-delay", "0s", "--shutdown-timeout", "1s"],
    );
    let token = gateway.token("main", "archiver");
    let addr = gateway.url.trim_start_matches("http://").to_owned();
    let mut conn = TcpStream::connect(&addr).unwrap();
    let label = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
                 CHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\n\
                 START TIME: 2026-11-27 06:45:12 UTC\nLABEL: cut\nSTART TIMELINE: 1\n";
    let mut tar = vec![];
    for (path, size) in [
        ("backup_label", label.len() as u64),
        ("base/1/1259", 64 << 20),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_path(path).unwrap();
        header.set_size(size);
        header.set_mode(0o600);
        header.set_cksum();
        tar.extend_from_slice(header.as_bytes());
        if path == "backup_label" {
            tar.extend_from_slice(label.as_bytes());
            tar.resize(tar.len().div_ceil(512) * 512, 0);
        }
    }
    tar.resize(tar.len() + (16 << 20), 7); // a quarter of the data file, then nothing
    write!(
        conn,
        "POST /v1/clusters/main/backups HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\n\r\n",
        1u64 << 30
    )
    .unwrap();
    conn.write_all(&tar).unwrap();
    conn.flush().unwrap();
    // The upload is under way: its row says so.
    let viewer = gateway.token("main", "viewer");
    wait_until(
        Duration::from_secs(60),
        "the backup upload to be under way",
        || first_backup_status(&gateway, &viewer) == "uploading",
    );

    let status = gateway.terminate(Duration::from_secs(120));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        gateway.log()
    );
    gateway.restart();
    let list = body_bytes(gateway.get("/v1/clusters/main/backups", Some(&viewer)));
    assert_eq!(
        String::from_utf8_lossy(&list),
        "[]",
        "a cut backup is listed"
    );
    let mut left = vec![];
    let objects = dir.path().join("data/objects");
    let mut stack = vec![objects];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if e.path().to_string_lossy().contains("/backups/") {
                left.push(e.path());
            }
        }
    }
    assert!(left.is_empty(), "{left:?}");
}

/// SIGTERM while PostgreSQL archives under pgbench and a base backup streams (slowed by
/// a bandwidth limit, so it is still running at the deadline): the gateway exits by
/// itself, PostgreSQL's archiver retries through the restart on its own, the archive
/// is then complete and recovers to the source's rows, and the cut backup is cleanly
/// absent.
#[test]
fn sigterm_under_load_loses_nothing_and_leaves_no_half_backup() {
    use walgate_tests::{PgCluster, archiving_with_curl, pgbench_checksum};
    let dir = gateway_dir();
    let mut gateway = Gateway::start_serving(
        &dir.path().join("data"),
        &[],
        &[
            "--drain-delay",
            "1s",
            "--shutdown-timeout",
            "3s",
            "--backup-rate-limit",
            "2MiB",
        ],
    );
    let token = gateway.token("main", "admin");
    let source = archiving_with_curl(
        walgate_tests::Postgres::default_major(),
        &gateway.url,
        &token,
    );
    source.pgbench(&["-i", "-s", "4", "-q"]);
    source.psql("CREATE TABLE marker (note text)");
    let mut restored = PgCluster::from_basebackup(&source, &["-X", "none", "--checkpoint=fast"]);

    let load = {
        let url = source.url("postgres");
        let pgbench = source.pg.tool("pgbench");
        std::thread::spawn(move || {
            let status = std::process::Command::new(pgbench)
                .args(["-c", "4", "-j", "2", "-T", "10", "-n", &url])
                .status()
                .unwrap();
            assert!(status.success());
        })
    };
    let header = source.dir.path().join("auth-header");
    let backup = {
        let script = format!(
            "{} -h 127.0.0.1 -p {} -U postgres -D - -Ft -X none --checkpoint=fast \
             | curl -sS -o /dev/null -w '%{{http_code}}' -H @{} -T - {}/v1/clusters/main/backups",
            source.pg.tool("pg_basebackup").display(),
            source.port,
            header.display(),
            gateway.url
        );
        std::thread::spawn(move || {
            let out = std::process::Command::new("bash")
                .args(["-c", &script])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    let viewer = gateway.token("main", "viewer");
    wait_until(Duration::from_secs(120), "the backup to stream", || {
        first_backup_status(&gateway, &viewer) == "uploading"
    });
    let status = gateway.terminate(Duration::from_secs(120));
    assert!(
        status.is_some_and(|s| s.success()),
        "the gateway did not exit by itself: {status:?}"
    );
    let answered = backup.join().unwrap();
    assert_ne!(
        answered, "201",
        "the backup could not have finished at 2 MiB/s"
    );
    // A segment to archive while the gateway is down, whatever pgbench managed to write
    // on a busy machine: the archiver must meet the gateway gone and retry by itself.
    let failed = || -> u32 {
        source
            .psql("SELECT failed_count FROM pg_stat_archiver")
            .parse()
            .unwrap()
    };
    source.psql("INSERT INTO marker VALUES ('while the gateway is down')");
    source.psql("SELECT pg_switch_wal()");
    source.wait_for(
        "the archiver to fail against the stopped gateway",
        Duration::from_secs(60),
        || failed() > 0,
    );
    gateway.restart();
    load.join().unwrap();
    source.psql("INSERT INTO marker VALUES ('after the restart')");
    let last = source.archive_current();
    let expected = pgbench_checksum(&source);

    let list = body_bytes(gateway.get("/v1/clusters/main/backups", Some(&viewer)));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&list).unwrap(),
        serde_json::json!([]),
        "a cut backup is listed"
    );
    restored.recover_with_curl(&gateway.url, &token);
    assert_eq!(pgbench_checksum(&restored), expected);
    assert!(
        restored
            .log()
            .contains(&format!("restored log file \"{last}\""))
    );
}
