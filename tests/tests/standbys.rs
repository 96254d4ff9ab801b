//! A hot standby beside its primary, on every supported major: both archive the same
//! segments into one cluster (`archive_mode = always`), base backups are taken from the
//! standby with `pg_basebackup | curl` and with the client, the standby is promoted to
//! timeline 2 and keeps archiving, and copies restored from the standby's backups
//! recover to the promoted server's exact data. Retention and restore plans treat a
//! standby's backup as they treat a primary's.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use walgate_tests::{
    Gateway, PgCluster, Postgres, body_bytes, conf_quote, curl_archive_command,
    curl_restore_command, gateway_dir, on_every_major, pgbench_checksum, run, write_pg_owned,
    write_token_header,
};

on_every_major!(a_standby_archives_backs_up_and_takes_over);

fn a_standby_archives_backs_up_and_takes_over(pg: &Postgres) {
    let dir = gateway_dir();
    let gateway = Gateway::start(&dir.path().join("data"), &[]);
    let archiver = gateway.token("main", "archiver");
    let mut primary = walgate_tests::archiving_with_curl(pg, &gateway.url, &archiver);
    primary.pgbench(&["-i", "-s", "2", "-q"]);
    primary.psql("CREATE TABLE marker (note text)");

    // The standby archives with its own header file, as on its own host.
    let mut standby = PgCluster::standby_of(&primary);
    let header = standby.dir.path().join("auth-header");
    write_token_header(&header, &archiver);
    standby.append_conf(&format!(
        "archive_mode = always\narchive_command = {}",
        conf_quote(&curl_archive_command(&gateway.url, "main", &header))
    ));
    standby.start();
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "t");

    primary.pgbench(&["-c", "2", "-t", "500", "-n"]);
    primary.psql("INSERT INTO marker VALUES ('before the standby backups')");
    let last = primary.archive_current();
    standby.wait_for(
        &format!("the standby to archive {last}"),
        Duration::from_secs(180),
        || standby.archived_up_to(&last),
    );

    // Both pushed the same segments, at least the last one: the second push of an
    // identical file succeeded, and the store has it once.
    assert_eq!(
        standby.psql("SELECT last_archived_wal FROM pg_stat_archiver"),
        last
    );
    for server in [&primary, &standby] {
        let counts = server.psql("SELECT archived_count, failed_count FROM pg_stat_archiver");
        let (archived, failed) = counts.split_once('|').unwrap();
        assert!(archived.parse::<u32>().unwrap() >= 1, "{counts}");
        assert_eq!(failed, "0", "{}", server.log());
    }
    assert!(stored_wal(&gateway).contains(&last));

    // Two base backups from the standby: curl, then the client.
    let script = format!(
        "{} -h 127.0.0.1 -p {} -U postgres -D - -Ft -X fetch --checkpoint=fast \
         | curl -sS --fail-with-body -H @{} -T - {}/v1/clusters/main/backups",
        pg.tool("pg_basebackup").display(),
        standby.port,
        header.display(),
        gateway.url
    );
    let by_curl: serde_json::Value = serde_json::from_str(
        &run(Command::new("bash").args(["-o", "pipefail", "-c", &script])).unwrap(),
    )
    .unwrap();
    assert_eq!(by_curl["status"], "complete", "{by_curl}");
    assert!(
        label(&gateway, &by_curl).contains("BACKUP FROM: standby"),
        "{by_curl}"
    );
    primary.psql("INSERT INTO marker VALUES ('between the standby backups')");
    primary.archive_current();
    let token_file = standby.dir.path().join("token");
    write_pg_owned(&token_file, &archiver);
    let out = run(Command::new("runuser")
        .args(["-u", "postgres", "--", "env"])
        .arg(format!("WALGATE_URL={}", gateway.url))
        .arg("WALGATE_CLUSTER=main")
        .arg(format!("WALGATE_TOKEN_FILE={}", token_file.display()))
        .arg(walgate_tests::bin("walgate-client"))
        .args(["backup-push", "--json", "--pg-basebackup"])
        .arg(pg.tool("pg_basebackup"))
        .args(["--", "-h", "127.0.0.1", "-U", "postgres", "-p"])
        .arg(standby.port.to_string()))
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gateway.log()));
    let by_client: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(by_client["status"], "complete", "{by_client}");
    assert!(label(&gateway, &by_client).contains("BACKUP FROM: standby"));

    // The primary goes away; the standby is promoted and carries on archiving on
    // timeline 2, into the same cluster.
    primary.pgbench(&["-c", "2", "-t", "300", "-n"]);
    primary.psql("INSERT INTO marker VALUES ('last on the primary')");
    primary.stop();
    standby.promote();
    standby.psql("INSERT INTO marker VALUES ('first on timeline 2')");
    standby.pgbench(&["-c", "2", "-t", "300", "-n"]);
    standby.psql("CHECKPOINT");
    assert_eq!(
        standby.psql("SELECT timeline_id FROM pg_control_checkpoint()"),
        "2"
    );
    standby.archive_current();
    let expected = pgbench_checksum(&standby);
    assert!(stored_wal(&gateway).contains("00000002.history"));

    // The default plan: the newest backup (the client's, from the standby), along the
    // history file to the end of timeline 2, with no gap.
    let viewer = gateway.token("main", "viewer");
    let plan: serde_json::Value = serde_json::from_slice(&body_bytes(
        gateway.get("/v1/clusters/main/restore-plan", Some(&viewer)),
    ))
    .unwrap();
    assert_eq!(plan["backup"]["id"], by_client["id"], "{plan}");
    assert_eq!(plan["target_timeline"], 2, "{plan}");
    assert_eq!(plan["covered"], true, "{plan}");
    let admin = gateway.token("main", "admin");
    let (code, report) = gateway.send("GET", "/v1/clusters/main/verify?scrub=true", &admin, vec![]);
    assert_eq!(
        (code, &report["ok"]),
        (200, &serde_json::json!(true)),
        "{report}"
    );

    // Each standby backup, restored and recovered from the archive, holds exactly the
    // promoted server's data.
    for backup in [&by_curl, &by_client] {
        let restored = restore(&gateway, pg, backup["id"].as_str().unwrap());
        assert_eq!(pgbench_checksum(&restored), expected, "{backup}");
    }

    // Retention keeping one backup keeps the newest standby backup, deletes the older one
    // and the WAL only it needed, and what remains still restores.
    let policy = serde_json::json!({"keep_last": 1}).to_string().into_bytes();
    let (code, answer) = gateway.send("PUT", "/v1/clusters/main/retention", &admin, policy);
    assert_eq!(code, 200, "{answer}");
    let (code, done) = gateway.send(
        "POST",
        "/v1/clusters/main/retention/run?confirm=true",
        &admin,
        vec![],
    );
    assert_eq!(code, 200, "{done}");
    assert_eq!(done["keep"], serde_json::json!([by_client["id"]]), "{done}");
    assert_eq!(done["delete_backups"][0]["id"], by_curl["id"], "{done}");
    let restored = restore(&gateway, pg, by_client["id"].as_str().unwrap());
    assert_eq!(pgbench_checksum(&restored), expected);
}

/// The WAL file names the local store holds for `main`.
fn stored_wal(gateway: &Gateway) -> BTreeSet<String> {
    gateway
        .objects()
        .into_iter()
        .filter_map(|(path, _, _)| {
            let name = path.to_str()?.rsplit_once("/clusters/main/wal/")?.1;
            Some(name.strip_suffix(".zst")?.to_owned())
        })
        .collect()
}

/// The `backup_label` of a stored backup, read from its archive download.
fn label(gateway: &Gateway, backup: &serde_json::Value) -> String {
    let restorer = gateway.token("main", "restorer");
    let path = format!(
        "/v1/clusters/main/backups/{}/archive",
        backup["id"].as_str().unwrap()
    );
    let tar = body_bytes(gateway.get(&path, Some(&restorer)));
    let mut archive = tar::Archive::new(&tar[..]);
    let mut entry = archive
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap().to_str() == Some("backup_label"))
        .expect("a backup_label");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
    text
}

/// Backup `id` restored with `curl | tar` and recovered with the README's curl
/// restore_command to the end of the archive; running.
fn restore(gateway: &Gateway, pg: &Postgres, id: &str) -> PgCluster {
    let restorer = gateway.token("main", "restorer");
    let mut copy = PgCluster::from_shell(
        pg,
        &format!(
            "curl -sS --fail -H 'Authorization: Bearer {restorer}' {}/v1/clusters/main/backups/{id}/archive \
             | tar -x -C \"$PGDATA\"",
            gateway.url
        ),
    );
    // A copy of a standby must not start as one, nor archive with its settings.
    std::fs::remove_file(copy.pgdata.join("standby.signal")).ok();
    let header = copy.dir.path().join("auth-header");
    write_token_header(&header, &restorer);
    copy.append_conf(&format!(
        "archive_mode = off\nrestore_command = {}",
        conf_quote(&curl_restore_command(&gateway.url, "main", &header))
    ));
    copy.touch("recovery.signal");
    copy.start();
    copy.wait_recovered();
    copy
}
