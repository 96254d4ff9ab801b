//! Backup bandwidth limits: an upload and a restore through the gateway take at least
//! as long as the configured rate allows (a lower bound the limiter guarantees, not a
//! timing guess), and a new limit in the config file applies on SIGHUP, without a
//! restart (checked the same way: a lower limit, a longer floor), and `0` lifts it. WAL
//! pushes are not throttled meanwhile.

use std::process::Command;
use std::time::{Duration, Instant};

use walgate_tests::{Gateway, PgCluster, basebackup_tar, body_bytes, gateway_dir, poll_until, run};

#[test]
fn backup_rates_are_limited_and_reloaded_on_sighup() {
    let dir = gateway_dir();
    let config = dir.path().join("walgate.toml");
    std::fs::write(&config, "backup_rate_limit = \"8MiB\"\n").unwrap();
    let gateway = Gateway::with_config(dir.path(), &config);
    let token = gateway.token("main", "admin");
    let mut source = PgCluster::init(&[]);
    source.start();
    let tar = basebackup_tar(&source);
    let mib = tar.len() as f64 / f64::from(1 << 20);
    assert!(
        mib > 16.0,
        "a backup of {mib:.1} MiB is too small to measure"
    );

    let upload = |gateway: &Gateway| {
        let started = Instant::now();
        let (status, body) = gateway.send("POST", "/v1/clusters/main/backups", &token, tar.clone());
        assert_eq!(status, 201, "{body}");
        (
            started.elapsed().as_secs_f64(),
            body["id"].as_str().unwrap().to_owned(),
        )
    };
    let (limited, id) = upload(&gateway);
    let floor = mib / 8.0;
    assert!(
        limited >= 0.9 * floor,
        "{mib:.1} MiB at 8 MiB/s took {limited:.2} s, under {floor:.2} s"
    );

    // A restore is paced too.
    let started = Instant::now();
    let archive = gateway.get(
        &format!("/v1/clusters/main/backups/{id}/archive"),
        Some(&token),
    );
    assert_eq!(archive.status(), 200);
    assert!(body_bytes(archive) == tar);
    let restore = started.elapsed().as_secs_f64();
    assert!(restore >= 0.9 * floor, "restore took {restore:.2} s");

    // Half the rate, from the file, on SIGHUP.
    std::fs::write(&config, "backup_rate_limit = \"4MiB\"\n").unwrap();
    run(Command::new("kill").args(["-HUP", &gateway.pid().unwrap().to_string()])).unwrap();
    let reloaded = poll_until(Duration::from_secs(60), || {
        gateway.log().contains("backup bandwidth limits reloaded")
    });
    assert!(reloaded, "no reload:\n{}", gateway.log());
    source.psql("CHECKPOINT");
    let (halved, _) = upload(&gateway);
    let floor = mib / 4.0;
    assert!(
        halved >= 0.9 * floor,
        "{mib:.1} MiB at 4 MiB/s after SIGHUP took {halved:.2} s, under {floor:.2} s"
    );

    // `0` lifts the limit, on the next SIGHUP.
    std::fs::write(&config, "backup_rate_limit = \"0\"\n").unwrap();
    run(Command::new("kill").args(["-HUP", &gateway.pid().unwrap().to_string()])).unwrap();
    let lifted = poll_until(Duration::from_secs(60), || {
        gateway.log().contains("overall: None, per_cluster: None")
    });
    assert!(lifted, "the limit was not lifted:\n{}", gateway.log());
}
