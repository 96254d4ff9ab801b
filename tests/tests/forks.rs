//! Restore drills and failovers never redirect the next recovery. A drill done the old
//! way (the restored copy keeps the archive_command its data directory brought) and a
//! failover whose old primary keeps archiving both leave two branches in one cluster's
//! archive: the gateway reports the fork, plans restore the branch still receiving WAL,
//! and each branch restores exactly when asked for by number. A drill with the client's
//! `--drill` writes nothing to the archive; a recovery with its defaults archives on.

use std::time::Duration;

use serde_json::Value;
use walgate_tests::browser::run_script;
use walgate_tests::{
    Gateway, PgCluster, Postgres, archiving_with_curl, basebackup_tar, bin, body_bytes, conf_quote,
    curl_archive_command, gateway_dir, pgbench_checksum, restore_plan, wait_until, write_pg_owned,
    write_token_header,
};

/// A cluster archiving as `main` with curl, with pgbench tables, a `marker` table and a
/// base backup stored.
fn backed_up(gw: &Gateway) -> PgCluster {
    let archiver = gw.token("main", "archiver");
    let pg = archiving_with_curl(Postgres::default_major(), &gw.url, &archiver);
    pg.pgbench(&["-i", "-s", "2", "-q"]);
    pg.psql("CREATE TABLE marker (note text)");
    let (status, body) = gw.send(
        "POST",
        "/v1/clusters/main/backups",
        &archiver,
        basebackup_tar(&pg),
    );
    assert_eq!(status, 201, "{body}");
    pg
}

/// A restore plan for `query`, which must be reachable.
fn plan(gw: &Gateway, query: &str) -> Value {
    let viewer = gw.token("main", "viewer");
    let (status, plan) = gw.send(
        "GET",
        &format!("/v1/clusters/main/restore-plan{query}"),
        &viewer,
        vec![],
    );
    assert_eq!(status, 200, "{query}: {plan}");
    plan
}

/// Writes a little, marks it, and waits until it is all archived.
fn write(pg: &PgCluster, note: &str) {
    pg.pgbench(&["-c", "2", "-t", "200", "-n"]);
    pg.psql(&format!("INSERT INTO marker VALUES ('{note}')"));
    pg.archive_current();
}

/// `text` for a URL query.
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_drill_that_archives_never_redirects_the_next_restore() {
    let dir = gateway_dir();
    let gw = Gateway::start(&dir.path().join("data"), &[]);
    let pg = Postgres::default_major();
    let primary = backed_up(&gw);
    write(&primary, "one");
    let sum_one = pgbench_checksum(&primary);
    // The time as PostgreSQL prints it, e.g. 2026-12-03 06:09:39.724081+00.
    let at = primary.psql("SELECT now()");
    write(&primary, "two");

    // The drill, by the README's steps of before: a plan for that time, the backup with
    // curl | tar, the plan's settings, recovery.signal, start. Archiving stays on, as the
    // data directory brought it, so the drill's promotion reaches the archive.
    let drill_plan = plan(&gw, &format!("?target_time={}", encoded(&at)));
    assert_eq!(
        drill_plan["recovery_settings"]["recovery_target_action"],
        "promote"
    );
    let drill = restore_plan(&gw, pg, &drill_plan, "");
    assert_eq!(pgbench_checksum(&drill), sum_one, "PITR to {at}");
    assert_eq!(drill.psql("SHOW archive_mode"), "on");
    drill.psql("INSERT INTO marker VALUES ('in the drill')");
    let sum_drill = pgbench_checksum(&drill);
    drill.archive_current();
    let admin = gw.token("main", "admin");
    let (status, _) = gw.send(
        "GET",
        "/v1/clusters/main/wal/00000002.history",
        &admin,
        vec![],
    );
    assert_eq!(status, 200, "the drill archived its promotion");

    // Production carries on, on timeline 1.
    write(&primary, "three");
    let sum_production = pgbench_checksum(&primary);

    // The default plan restores production's branch, pinned, and says why.
    let default = plan(&gw, "");
    assert_eq!(default["target_timeline"], 1, "{default}");
    assert_eq!(
        default["recovery_settings"]["recovery_target_timeline"],
        "1"
    );
    let notes = default["notes"].to_string();
    assert!(notes.contains("timeline 1 is restored"), "{notes}");
    let restored = restore_plan(&gw, pg, &default, "archive_mode = off");
    assert_eq!(pgbench_checksum(&restored), sum_production);
    drop(restored);
    // Each branch by number; `latest` keeps PostgreSQL's meaning.
    assert_eq!(plan(&gw, "?target_timeline=latest")["target_timeline"], 2);
    let branch = restore_plan(
        &gw,
        pg,
        &plan(&gw, "?target_timeline=2"),
        "archive_mode = off",
    );
    assert_eq!(pgbench_checksum(&branch), sum_drill);
    drop(branch);

    // Reported without waiting for the scheduled verification (hourly here): the fleet's
    // status, the metric, the dashboard, and verification asked for.
    let fork = "timeline 1 kept receiving WAL after timeline 2 branched from it at ";
    let status = || gw.send("GET", "/v1/clusters/main", &admin, vec![]).1;
    wait_until(Duration::from_secs(120), "the fork to be reported", || {
        status()["status"] == "failing"
    });
    let (status, report) = gw.send("GET", "/v1/clusters/main/verify", &admin, vec![]);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], false, "{report}");
    assert!(
        report["forks"][0].as_str().unwrap().starts_with(fork),
        "{report}"
    );
    let (_, cluster) = gw.send("GET", "/v1/clusters/main", &admin, vec![]);
    assert_eq!(cluster["status"], "failing", "{cluster}");
    assert!(
        cluster["status_reasons"][0]
            .as_str()
            .unwrap()
            .starts_with(fork),
        "{cluster}"
    );
    let metrics = String::from_utf8(body_bytes(gw.get("/metrics", Some(&admin)))).unwrap();
    assert!(
        metrics.contains("walgate_timeline_forks{cluster=\"main\"} 1"),
        "{metrics}"
    );

    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let seen = run_script("fork.cjs", &gw, &shots, &[("WALGATE_CLUSTER", "main")]);
    assert_eq!(seen["state"], "failing", "{seen}");
    assert!(seen["reasons"].as_str().unwrap().contains(fork), "{seen}");
    assert!(
        seen["forks"][0].as_str().unwrap().starts_with(fork),
        "{seen}"
    );
    assert!(
        seen["forkNote"]
            .as_str()
            .unwrap()
            .contains("timeline 1 is restored"),
        "{seen}"
    );
    assert!(
        seen["restore"].as_str().unwrap().contains("on timeline 1."),
        "{seen}"
    );
    assert_eq!(seen["consoleErrors"], serde_json::json!([]), "{seen}");
}

#[test]
fn a_failover_whose_old_primary_keeps_archiving_is_a_fork() {
    let dir = gateway_dir();
    let gw = Gateway::start(&dir.path().join("data"), &[]);
    let pg = Postgres::default_major();
    let primary = backed_up(&gw);
    let mut standby = PgCluster::standby_of(&primary);
    let header = standby.dir.path().join("auth-header");
    write_token_header(&header, &gw.token("main", "archiver"));
    standby.append_conf(&format!(
        "archive_mode = on\narchive_command = {}",
        conf_quote(&curl_archive_command(&gw.url, "main", &header))
    ));
    standby.start();
    write(&primary, "before the failover");
    let lsn = primary.psql("SELECT pg_current_wal_lsn()");
    standby.wait_for(
        "the standby to replay the primary's WAL",
        Duration::from_secs(120),
        || standby.psql(&format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'")) == "t",
    );

    // The standby takes over while the old primary, still up, goes on archiving.
    standby.promote();
    write(&primary, "on the old primary");
    let sum_old = pgbench_checksum(&primary);
    write(&standby, "on the new primary");
    let sum_new = pgbench_checksum(&standby);

    let admin = gw.token("main", "admin");
    let (_, report) = gw.send("GET", "/v1/clusters/main/verify", &admin, vec![]);
    let forks = report["forks"].as_array().unwrap();
    assert_eq!(forks.len(), 1, "{report}");
    assert!(
        forks[0]
            .as_str()
            .unwrap()
            .starts_with("timeline 1 kept receiving WAL after timeline 2")
    );

    // The new primary archived last: it is the live branch.
    let default = plan(&gw, "");
    assert_eq!(default["target_timeline"], 2, "{default}");
    assert_eq!(
        default["recovery_settings"]["recovery_target_timeline"],
        "2"
    );
    let restored = restore_plan(&gw, pg, &default, "archive_mode = off");
    assert_eq!(pgbench_checksum(&restored), sum_new);
    drop(restored);
    let old = restore_plan(
        &gw,
        pg,
        &plan(&gw, "?target_timeline=1"),
        "archive_mode = off",
    );
    assert_eq!(pgbench_checksum(&old), sum_old);
}

#[test]
fn a_client_drill_writes_nothing_and_a_client_recovery_archives() {
    let dir = gateway_dir();
    let gw = Gateway::start(&dir.path().join("data"), &[]);
    let mut primary = backed_up(&gw);
    write(&primary, "before the drill");
    let expected = pgbench_checksum(&primary);
    primary.stop();
    let before = gw.objects();

    let token_file = primary.dir.path().join("restorer-token");
    write_pg_owned(&token_file, &gw.token("main", "restorer"));
    let restore = |flags: &str| {
        PgCluster::from_shell(
            Postgres::default_major(),
            &format!(
                "WALGATE_URL={} WALGATE_CLUSTER=main WALGATE_TOKEN_FILE={} {} restore {flags} --pgdata \"$PGDATA\"",
                gw.url,
                token_file.display(),
                bin("walgate-client").display()
            ),
        )
    };
    let mut drill = restore("--drill");
    let conf = std::fs::read_to_string(drill.pgdata.join("postgresql.auto.conf")).unwrap();
    assert!(conf.ends_with("archive_mode = 'off'\n"), "{conf}");
    drill.start();
    drill.wait_recovered();
    assert_eq!(pgbench_checksum(&drill), expected);
    assert_eq!(drill.psql("SHOW archive_mode"), "off");
    drill.psql("INSERT INTO marker VALUES ('in the drill')");
    drill.psql("SELECT pg_switch_wal()");
    drill.psql("CHECKPOINT");
    drill.stop();
    assert_eq!(gw.objects(), before, "the drill wrote to the archive");

    // Disaster recovery, the client's default: the new primary archives into the
    // cluster, on timeline 2, and the next plan follows it.
    let mut recovered = restore("");
    recovered.start();
    recovered.wait_recovered();
    assert_eq!(recovered.psql("SHOW archive_mode"), "on");
    recovered.psql("INSERT INTO marker VALUES ('after the disaster')");
    let sum = pgbench_checksum(&recovered);
    recovered.archive_current();
    let next = plan(&gw, "");
    assert_eq!(next["target_timeline"], 2, "{next}");
    assert_eq!(next["notes"], serde_json::json!([]), "no fork: {next}");
    let again = restore_plan(&gw, Postgres::default_major(), &next, "archive_mode = off");
    assert_eq!(pgbench_checksum(&again), sum);
}
