//! End to end: `walgate-client` as PostgreSQL 15's archive_command and restore_command,
//! through gateway outages, with push-ahead and prefetch counted in PostgreSQL's log.

use std::process::Command;
use std::time::Duration;

use walgate_tests::{
    Gateway, PgCluster, bin, client_command, conf_quote, gateway_dir, pgbench_checksum,
    write_pg_owned,
};

/// How many lines of `log` contain `needle`.
fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

fn ready_files(pg: &PgCluster) -> usize {
    std::fs::read_dir(pg.pgdata.join("pg_wal/archive_status"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".ready"))
        .count()
}

/// A source archiving through the client (`flags` before `wal-push`), with pgbench data
/// and a base backup taken before any load, ready to recover.
fn source_and_backup(gateway: &Gateway, flags: &str) -> (PgCluster, PgCluster) {
    let archiver = gateway.token("main", "archiver");
    let mut source = PgCluster::init(&[]);
    source.append_conf(&format!(
        "wal_level = replica\narchive_mode = on\nwal_keep_size = '2GB'\narchive_command = {}",
        conf_quote(&client_command(
            &gateway.url,
            &source,
            &archiver,
            flags,
            "wal-push %p"
        ))
    ));
    source.start();
    source.pgbench(&["-i", "-s", "4", "-q"]);
    source.psql("CREATE TABLE marker (note text)");
    let restored = PgCluster::from_basebackup(&source, &["-X", "none", "--checkpoint=fast"]);
    (source, restored)
}

/// Marks the end of the data and waits until its segment is archived.
fn finish_archiving(source: &PgCluster) {
    source.psql("INSERT INTO marker VALUES ('the end')");
    source.archive_current();
}

fn recover_with_client(gateway: &Gateway, restored: &mut PgCluster, flags: &str) {
    let restorer = gateway.token("main", "restorer");
    restored.append_conf(&format!(
        "archive_mode = off\nrestore_command = {}",
        conf_quote(&client_command(
            &gateway.url,
            restored,
            &restorer,
            flags,
            "wal-fetch %f %p"
        ))
    ));
    restored.touch("recovery.signal");
}

/// The gateway goes away while PostgreSQL archives under pgbench: the archiver's calls
/// fail and it retries, the backlog grows, and once the gateway is back the client drains
/// it with push-ahead. Nothing is lost: a recovery from the archive, fed by prefetch,
/// holds exactly the source's rows.
#[test]
fn outage_backlog_drains_with_push_ahead_and_recovery_uses_prefetch() {
    let dir = gateway_dir();
    let mut gateway = Gateway::start(&dir.path().join("data"), &[]);
    let (source, mut restored) =
        source_and_backup(&gateway, "--verbose --retry-seconds 1 --push-ahead 8");

    gateway.kill();
    source.pgbench(&["-c", "4", "-j", "2", "-t", "3000", "-n"]);
    source.psql("SELECT pg_switch_wal()");
    source.wait_for(
        "archiving to fail and a backlog to build",
        Duration::from_secs(60),
        || {
            source
                .psql("SELECT failed_count FROM pg_stat_archiver")
                .parse::<u64>()
                .unwrap()
                > 0
                && ready_files(&source) >= 3
        },
    );
    let backlog = ready_files(&source);
    gateway.restart();
    finish_archiving(&source);

    let log = source.log();
    let pushed_ahead = count(&log, "walgate-client: pushed ");
    let answered_from_marker = count(&log, " was pushed ahead");
    eprintln!(
        "backlog {backlog}: {pushed_ahead} files pushed ahead, {answered_from_marker} calls answered by a marker"
    );
    assert!(
        pushed_ahead >= 2 && answered_from_marker >= 2,
        "push-ahead did not happen:\n{log}"
    );
    assert_eq!(ready_files(&source), 0, "files still wait for archiving");

    let expected = pgbench_checksum(&source);
    recover_with_client(&gateway, &mut restored, "--verbose --prefetch 8");
    restored.start();
    restored.wait_recovered();
    assert_eq!(
        pgbench_checksum(&restored),
        expected,
        "restored data differs"
    );
    let log = restored.log();
    let from_prefetch = count(&log, "came from prefetch");
    let prefetched = count(&log, "walgate-client: prefetched ");
    eprintln!("recovery: {prefetched} segments prefetched, {from_prefetch} served from prefetch");
    assert!(from_prefetch >= 2, "no segment came from prefetch:\n{log}");
}

/// Without a gateway, recovery stops instead of ending early and promoting on an
/// incomplete archive; with the gateway back, the same data directory recovers fully.
#[test]
fn recovery_stops_without_the_gateway_and_resumes_when_it_returns() {
    let dir = gateway_dir();
    let mut gateway = Gateway::start(&dir.path().join("data"), &[]);
    let (source, mut restored) = source_and_backup(&gateway, "");
    source.pgbench(&["-c", "2", "-t", "500", "-n"]);
    finish_archiving(&source);
    let expected = pgbench_checksum(&source);

    recover_with_client(&gateway, &mut restored, "--retry-seconds 2");
    gateway.kill();
    let started = restored.try_start();
    restored.wait_for("the server to stop itself", Duration::from_secs(60), || {
        started.is_err() || !restored.pgdata.join("postmaster.pid").exists()
    });
    let log = restored.log();
    assert!(
        log.contains("stopping recovery rather than ending it"),
        "{log}"
    );
    assert!(
        !log.contains("selected new timeline ID") && !log.contains("archive recovery complete"),
        "recovery ended without the archive:\n{log}"
    );

    gateway.restart();
    restored.start();
    restored.wait_recovered();
    assert_eq!(
        pgbench_checksum(&restored),
        expected,
        "restored data differs"
    );
}

/// Runs `walgate-client` with `env` in a scratch directory; returns the exit code,
/// stdout and stderr.
fn client<V: AsRef<std::ffi::OsStr>>(
    env: &[(&str, V)],
    args: &[&str],
    cwd: &std::path::Path,
) -> (i32, String, String) {
    let out = Command::new(bin("walgate-client"))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run walgate-client");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `check` says in words what is wrong, and `--json` says it to scripts.
#[test]
fn check_reports_configuration_token_gateway_and_backlog() {
    let dir = gateway_dir();
    let mut gateway = Gateway::start(&dir.path().join("data"), &[]);
    let token_file = dir.path().join("token");
    write_pg_owned(&token_file, &gateway.token("main", "archiver"));
    let restorer_file = dir.path().join("restorer");
    write_pg_owned(&restorer_file, &gateway.token("main", "restorer"));
    let other_file = dir.path().join("other");
    write_pg_owned(&other_file, &gateway.token("other", "archiver"));
    let pgdata = dir.path().join("pgdata");
    std::fs::create_dir_all(pgdata.join("pg_wal/archive_status")).unwrap();
    std::fs::write(
        pgdata.join("pg_wal/archive_status/000000010000000000000003.ready"),
        "",
    )
    .unwrap();
    let cwd = dir.path();
    let url = gateway.url.clone();
    let token = token_file.to_str().unwrap();
    let good = [
        ("WALGATE_URL", url.as_str()),
        ("WALGATE_CLUSTER", "main"),
        ("WALGATE_TOKEN_FILE", token),
    ];
    let (code, out, _) = client(&good, &["check", "--pgdata", pgdata.to_str().unwrap()], cwd);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("role archiver for main"), "{out}");
    assert!(out.contains("has no archive yet"), "{out}");
    assert!(
        out.contains("1 WAL files wait for archiving, the oldest 000000010000000000000003"),
        "{out}"
    );

    let (code, out, _) = client(&good, &["check", "--json"], cwd);
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["ok"], true);
    let checks: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(checks, ["configuration", "gateway", "token", "archive"]);

    // A restorer token works but cannot archive; another cluster's token fails.
    let mut env = good;
    env[2].1 = restorer_file.to_str().unwrap();
    let (code, out, _) = client(&env, &["check"], cwd);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("WARN") && out.contains("can restore but not archive"),
        "{out}"
    );
    env[2].1 = other_file.to_str().unwrap();
    let (code, out, _) = client(&env, &["check"], cwd);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not cover cluster main"), "{out}");

    // A token the gateway never issued.
    let forged = dir.path().join("forged");
    std::fs::write(&forged, "eyJhbGciOiJIUzI1NiJ9.e30.c2ln").unwrap();
    env[2].1 = forged.to_str().unwrap();
    let (code, out, _) = client(&env, &["check"], cwd);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  token") && out.contains("401"), "{out}");

    // Nothing configured: the first check says what to set.
    let (code, out, _) = client::<&str>(&[], &["check"], cwd);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("set WALGATE_URL"), "{out}");

    // No gateway.
    gateway.kill();
    let (code, out, _) = client(&good, &["check"], cwd);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  gateway") && out.contains("is the gateway running"),
        "{out}"
    );
}

/// wal-fetch tells PostgreSQL "not archived" (1) only for a 404. A refused token or an
/// unreachable gateway stops recovery (200), except in standby mode, where PostgreSQL
/// asks again later (1). wal-push exits 0 or 1, never more.
#[test]
fn client_exit_codes() {
    let dir = gateway_dir();
    let mut gateway = Gateway::start(&dir.path().join("data"), &[]);
    let token_file = dir.path().join("token");
    write_pg_owned(&token_file, &gateway.token("main", "archiver"));
    let bad_file = dir.path().join("bad");
    std::fs::write(&bad_file, "not-a-token").unwrap();
    let pgdata = dir.path().join("pgdata");
    std::fs::create_dir_all(pgdata.join("pg_wal/archive_status")).unwrap();
    let url = gateway.url.clone();
    let env = |token: &std::path::Path| {
        [
            ("WALGATE_URL", url.clone()),
            ("WALGATE_CLUSTER", "main".to_owned()),
            ("WALGATE_TOKEN_FILE", token.display().to_string()),
            ("WALGATE_RETRY_SECONDS", "1".to_owned()),
        ]
    };
    let run = |env: &[(&str, String); 4], args: &[&str]| {
        let (code, _, err) = client(env, args, &pgdata);
        let leftovers: Vec<_> = std::fs::read_dir(pgdata.join("pg_wal"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n != "archive_status" && n != ".walgate")
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        (code, err)
    };
    let fetch = [
        "wal-fetch",
        "000000010000000000000042",
        "pg_wal/RECOVERYXLOG",
    ];
    assert_eq!(run(&env(&token_file), &fetch).0, 1);
    let (code, err) = run(&env(&bad_file), &fetch);
    assert_eq!(code, 200, "{err}");
    assert!(err.contains("401"), "{err}");

    // A segment that does not exist cannot be pushed: 1, with the reason.
    let (code, err) = run(
        &env(&token_file),
        &["wal-push", "pg_wal/000000010000000000000042"],
    );
    assert_eq!(code, 1, "{err}");
    // Garbage under a WAL name is refused by the gateway: 1.
    std::fs::write(
        pgdata.join("pg_wal/000000010000000000000042"),
        vec![7u8; 1 << 20],
    )
    .unwrap();
    let (code, _, err) = client(
        &env(&token_file),
        &["wal-push", "pg_wal/000000010000000000000042"],
        &pgdata,
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("400"), "{err}");
    std::fs::remove_file(pgdata.join("pg_wal/000000010000000000000042")).unwrap();

    // A 404 that is not the gateway's (a wrong URL path, a proxy's page) is no "not
    // archived": recovery stops.
    let mut wrong_path = env(&token_file);
    wrong_path[0].1 = format!("{url}/not-the-api");
    let (code, err) = run(&wrong_path, &fetch);
    assert_eq!(code, 200, "{err}");
    assert!(err.contains("not the gateway's"), "{err}");
    // A 200 from something that is not the gateway is no acknowledgement: 1.
    let fake = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_url = format!("http://{}", fake.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in fake.incoming().flatten() {
            let mut conn = conn;
            let mut buf = vec![0u8; 1 << 20];
            let _ = std::io::Read::read(&mut conn, &mut buf);
            let _ = std::io::Write::write_all(
                &mut conn,
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
            );
        }
    });
    std::fs::write(
        pgdata.join("pg_wal/000000010000000000000042"),
        vec![7u8; 4096],
    )
    .unwrap();
    let mut to_fake = env(&token_file);
    to_fake[0].1 = fake_url;
    let (code, _, err) = client(
        &to_fake,
        &["wal-push", "pg_wal/000000010000000000000042"],
        &pgdata,
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("without the gateway's acknowledgement"),
        "{err}"
    );
    std::fs::remove_file(pgdata.join("pg_wal/000000010000000000000042")).unwrap();

    // A setting the environment got wrong stops recovery too, rather than exiting 2.
    for (key, bad) in [("WALGATE_JOBS", "0"), ("WALGATE_RETRY_SECONDS", "1m")] {
        let mut env_bad: Vec<(&str, String)> = env(&token_file).to_vec();
        env_bad.push((key, bad.to_owned()));
        let (code, _, err) = client(&env_bad, &fetch, &pgdata);
        assert_eq!(code, 200, "{key}={bad}: {err}");
        let (code, _, _) = client(
            &env_bad,
            &["wal-push", "pg_wal/000000010000000000000042"],
            &pgdata,
        );
        assert_eq!(code, 1, "{key}={bad}");
    }

    gateway.kill();
    let (code, err) = run(&env(&token_file), &fetch);
    assert_eq!(code, 200, "{err}");
    assert!(err.contains("stopping recovery"), "{err}");
    std::fs::write(pgdata.join("standby.signal"), "").unwrap();
    assert_eq!(run(&env(&token_file), &fetch).0, 1);
}
