//! Two gateway replicas on one PostgreSQL catalog, one object store and one signing key,
//! as behind a load balancer: archiving spreads over both, one is killed with SIGKILL
//! while PostgreSQL archives under pgbench, and nothing acknowledged is lost: every
//! segment PostgreSQL marked done is served by the survivor, and a recovery from the
//! archive matches the source. Scheduled retention runs on one replica at a time, and
//! moves to the survivor once the dead one's lease runs out.

use std::time::Duration;

use walgate_tests::{
    Gateway, PgCluster, body_bytes, conf_quote, curl_archive_command, gateway_dir,
    pgbench_checksum, wait_until, write_token_header,
};

/// How many scheduled retention runs a gateway's log records.
fn retention_runs(gateway: &Gateway) -> usize {
    gateway
        .log()
        .matches("retention: scheduled run done")
        .count()
}

/// How many WAL files a gateway's log says it archived.
fn archived(gateway: &Gateway) -> usize {
    gateway.log().matches("archived").count()
}

#[test]
fn two_replicas_share_the_work_and_survive_a_sigkill() {
    let mut catalog = PgCluster::init(&[]);
    catalog.start();
    catalog.psql("CREATE DATABASE walgate");
    let dir = gateway_dir();
    let shared = [
        "--catalog-url".to_owned(),
        catalog.url("walgate"),
        "--storage-url".to_owned(),
        format!("file://{}", dir.path().join("objects").display()),
        "--signing-key-file".to_owned(),
        dir.path().join("signing.key").display().to_string(),
    ];
    let shared: Vec<&str> = shared.iter().map(String::as_str).collect();
    let serve = ["--retention-interval", "1s", "--retention-keep-last", "2"];
    let mut a = Gateway::start_serving(&dir.path().join("a"), &shared, &serve);
    let b = Gateway::start_serving(&dir.path().join("b"), &shared, &serve);

    // Retention: one replica holds the lease and runs; the other waits.
    wait_until(
        Duration::from_secs(120),
        "three scheduled retention runs",
        || retention_runs(&a) + retention_runs(&b) >= 3,
    );
    let (runs_a, runs_b) = (retention_runs(&a), retention_runs(&b));
    assert!(
        runs_a == 0 || runs_b == 0,
        "both replicas ran retention: {runs_a} and {runs_b}"
    );

    // A token from either replica works on both: one key, one catalog.
    let token = a.token("main", "admin");
    assert_eq!(b.get("/v1/tokens/self", Some(&token)).status(), 200);

    // The load balancer: even segments to a first, odd ones to b, each falling back to
    // the other replica when its first choice fails.
    let mut source = PgCluster::init(&[]);
    let header = source.dir.path().join("auth-header");
    write_token_header(&header, &token);
    let script = source.dir.path().join("archive.sh");
    let push = |url: &str| {
        curl_archive_command(url, "main", &header)
            .replace("%p", "\"$1\"")
            .replace("%f", "\"$2\"")
    };
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$2\" in\n  *[02468ACE]) {{ {a}; }} || {{ {b}; }} ;;\n  *) {{ {b}; }} || {{ {a}; }} ;;\nesac\n",
            a = push(&a.url),
            b = push(&b.url)
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["755"])
        .arg(&script)
        .status()
        .unwrap();
    source.append_conf(&format!(
        "wal_level = replica\narchive_mode = on\nwal_keep_size = '1GB'\narchive_command = {}",
        conf_quote(&format!("{} %p %f", script.display()))
    ));
    source.start();
    source.pgbench(&["-i", "-s", "4", "-q"]);
    source.psql("CREATE TABLE marker (note text)");
    let mut restored = PgCluster::from_basebackup(&source, &["-X", "none", "--checkpoint=fast"]);
    source.archive_current();
    assert!(a.log().contains("archived") && b.log().contains("archived"));

    // SIGKILL a mid-load, with uploads in flight.
    let load = {
        let url = source.url("postgres");
        let pgbench = source.pg.tool("pgbench");
        std::thread::spawn(move || {
            let status = std::process::Command::new(pgbench)
                .args(["-c", "4", "-j", "2", "-T", "8", "-n", &url])
                .status()
                .unwrap();
            assert!(status.success());
        })
    };
    // Once the load's WAL reaches a: each check switches to a new segment (after a
    // record of its own, so the switch is never a no-op), and even segments go to a
    // first, so the archiver is busy with the load's WAL when a dies.
    let before = archived(&a);
    wait_until(
        Duration::from_secs(120),
        "replica a to archive a segment written under load",
        || {
            source.psql("SELECT pg_logical_emit_message(false, 'walgate-test', 'load')");
            source.psql("SELECT pg_switch_wal()");
            archived(&a) > before
        },
    );
    a.kill();
    load.join().unwrap();
    source.psql("INSERT INTO marker VALUES ('after the kill')");
    let last = source.archive_current();
    let expected = pgbench_checksum(&source);

    // Every segment PostgreSQL was told is archived is on the survivor, byte for byte.
    for name in source.done_segments() {
        let fetched = b.get(&format!("/v1/clusters/main/wal/{name}"), Some(&token));
        assert_eq!(fetched.status(), 200, "{name} was acknowledged but is gone");
        let original = std::fs::read(source.pgdata.join("pg_wal").join(&name)).unwrap();
        assert!(body_bytes(fetched) == original, "{name} differs");
    }

    // Retention carries on on the survivor once the dead replica's lease runs out.
    let before = retention_runs(&b);
    wait_until(
        Duration::from_secs(120),
        "retention on the survivor",
        || retention_runs(&b) > before,
    );

    restored.recover_with_curl(&b.url, &token);
    assert_eq!(pgbench_checksum(&restored), expected);
    assert!(
        restored
            .log()
            .contains(&format!("restored log file \"{last}\""))
    );

    // With its catalog gone, the survivor says to come back later (503 and Retry-After),
    // not that it failed (500).
    catalog.stop();
    let r = b.get("/v1/clusters/main/wal", Some(&token));
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "10");
    let body = String::from_utf8(body_bytes(r)).unwrap();
    assert!(body.contains("catalog_unavailable"), "{body}");
}
