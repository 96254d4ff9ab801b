//! Base backups end to end: `pg_basebackup | curl` into the gateway, `curl | tar -x` out
//! of it, and PostgreSQL recovering from the result with the curl restore_command; plus
//! the uploads the gateway must refuse without leaving anything behind.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use walgate_tests::{
    Gateway, PgCluster, Postgres, body_bytes, conf_quote, curl_archive_command,
    curl_restore_command, gateway_dir, on_every_major, on_majors_since_17, pgbench_checksum,
    poll_until, run, wait_until,
};

/// The README's restore recipe, with the header path restore plans use.
fn readme_restore_recipe(url: &str) -> String {
    curl_restore_command(url, "main", Path::new("/etc/walgate/auth-header"))
}

struct Setup {
    _dir: tempfile::TempDir,
    gateway: Gateway,
    header: std::path::PathBuf,
    source: PgCluster,
}

/// A gateway and a source cluster of the default major archiving into it as `main`.
fn setup() -> Setup {
    setup_on(Postgres::default_major())
}

/// A gateway and a source cluster of `pg`'s major archiving into it as `main`.
fn setup_on(pg: &Postgres) -> Setup {
    let dir = gateway_dir();
    let gateway = Gateway::start(&dir.path().join("data"), &[]);
    let source =
        walgate_tests::archiving_with_curl(pg, &gateway.url, &gateway.token("main", "admin"));
    let header = source.dir.path().join("auth-header");
    source.pgbench(&["-i", "-s", "2", "-q"]);
    source.psql("CREATE TABLE marker (note text)");
    // The gateway knows the cluster once its first segment is archived (pgbench wrote
    // more than one): tests start from there, not from a race with the archiver.
    source.wait_for(
        "the first segment archived",
        Duration::from_secs(120),
        || source.psql("SELECT archived_count FROM pg_stat_archiver") != "0",
    );
    Setup {
        _dir: dir,
        gateway,
        header,
        source,
    }
}

impl Setup {
    /// Streams a pg_basebackup of the source into the gateway; returns curl's status and body.
    fn backup(&self, basebackup_flags: &str, curl_flags: &str) -> (u16, serde_json::Value) {
        let script = format!(
            "{} -h 127.0.0.1 -p {} -U postgres -D - -Ft {basebackup_flags} --checkpoint=fast \
             | curl -sS -H @{} {curl_flags} -T - -w '\\n%{{http_code}}' {}/v1/clusters/main/backups",
            self.source.pg.tool("pg_basebackup").display(),
            self.source.port,
            self.header.display(),
            self.gateway.url
        );
        let out = run(Command::new("bash").args(["-o", "pipefail", "-c", &script])).unwrap();
        let (body, code) = out.trim().rsplit_once('\n').unwrap();
        (
            code.parse().unwrap(),
            serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        )
    }

    fn list(&self) -> Vec<serde_json::Value> {
        let token = self.gateway.token("main", "viewer");
        let body = body_bytes(self.gateway.get("/v1/clusters/main/backups", Some(&token)));
        serde_json::from_slice::<serde_json::Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// Waits until the gateway has cleaned up after a cut upload, which it does after
    /// the client has gone: the listing and the stored objects are `before` again.
    fn settles_to(&self, before: &(Vec<serde_json::Value>, Vec<String>), what: &str) {
        let now = || (self.list(), self.backup_objects());
        let settled = poll_until(Duration::from_secs(60), || now() == *before);
        assert!(settled, "{what} left something: {:?}", now());
    }

    /// Waits until an upload is under way (the cluster's upload slot is then taken);
    /// returns its backup's id.
    fn uploading(&self) -> String {
        let mut id = None;
        wait_until(Duration::from_secs(60), "an upload to be under way", || {
            id = self
                .list()
                .iter()
                .find(|b| b["status"] == "uploading")
                .map(|b| b["id"].as_str().unwrap().to_owned());
            id.is_some()
        });
        id.unwrap()
    }

    fn backup_objects(&self) -> Vec<String> {
        let dir = self.gateway.data_dir.join("objects/clusters/main/backups");
        let mut out = vec![];
        for b in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(b.path()).into_iter().flatten().flatten() {
                out.push(f.path().display().to_string());
            }
        }
        out.sort();
        out
    }

    /// Switches WAL and waits until the source has archived everything so far.
    fn archive_all(&self) {
        self.source.archive_current();
    }

    /// Restores backup `id` with curl and tar, recovers with the curl restore_command
    /// to the end of the archive, and returns the running cluster.
    fn restore(&self, id: &str) -> PgCluster {
        let recipe = readme_restore_recipe(&self.gateway.url);
        self.restore_plan(&serde_json::json!({
            "backup": {"id": id},
            "recovery_settings": {"restore_command": recipe},
        }))
    }
}

#[test]
fn pg_basebackup_through_curl_and_back() {
    let s = setup();
    // Plain tar with WAL, zstd-compressed on the client, gzip: all accepted.
    let (code, plain) = s.backup("-X fetch", "");
    assert_eq!(code, 201, "{plain}");
    assert_eq!(plain["status"], "complete");
    assert!(plain["has_manifest"].as_bool().unwrap(), "{plain}");
    assert!(plain["end_lsn"].is_string(), "{plain}");
    assert!(plain["size"].as_u64().unwrap() > plain["stored_size"].as_u64().unwrap());
    // The recorded hash is the stored object's, checkable with sha256sum in the store.
    let object = s.gateway.data_dir.join(format!(
        "objects/clusters/main/backups/{}/base.tar.zst",
        plain["id"].as_str().unwrap()
    ));
    let sum = run(Command::new("sha256sum").arg(&object)).unwrap();
    assert_eq!(sum.split_whitespace().next(), plain["sha256"].as_str());
    let (code, zstd) = s.backup(
        "-X fetch --compress=client-zstd",
        "-H 'Content-Encoding: zstd'",
    );
    assert_eq!(code, 201, "{zstd}");
    let (code, gzip) = s.backup(
        "-X none --compress=client-gzip",
        "-H 'Content-Encoding: gzip'",
    );
    assert_eq!(code, 201, "{gzip}");
    // Newest first; `latest` is the newest.
    let ids: Vec<String> = s
        .list()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted);
    assert_eq!(ids[0], gzip["id"].as_str().unwrap());

    s.source.pgbench(&["-c", "2", "-t", "500", "-n"]);
    s.source
        .psql("INSERT INTO marker VALUES ('after the backups')");
    s.archive_all();
    let expected = pgbench_checksum(&s.source);

    // The plain backup, restored with curl | tar and recovered from the archive.
    let restored = s.restore(plain["id"].as_str().unwrap());
    assert_eq!(pgbench_checksum(&restored), expected);
    drop(restored);
    // The gzip one had no WAL of its own: all of it comes from the archive.
    let restored = s.restore("latest");
    assert_eq!(pgbench_checksum(&restored), expected);
    drop(restored);

    // Delete one: gone from the list, and its objects with it.
    let admin = s.gateway.token("main", "admin");
    let del = walgate_tests::agent()
        .delete(format!(
            "{}/v1/clusters/main/backups/{}",
            s.gateway.url,
            zstd["id"].as_str().unwrap()
        ))
        .header("Authorization", format!("Bearer {admin}"))
        .call()
        .unwrap();
    assert_eq!(del.status(), 204);
    assert_eq!(s.list().len(), 2);
    assert!(
        !s.backup_objects()
            .iter()
            .any(|o| o.contains(zstd["id"].as_str().unwrap()))
    );
    assert_eq!(
        s.backup_objects().len(),
        2 * 3,
        "data, manifest and sentinel per backup"
    );
}

/// The first `members` members of tar stream `full`, without the end-of-archive marker:
/// what a pg_basebackup that fails between two files leaves in its pipe.
fn cut_after_member(full: &[u8], members: usize) -> Vec<u8> {
    let mut archive = tar::Archive::new(full);
    let entry = archive
        .entries()
        .unwrap()
        .nth(members - 1)
        .unwrap()
        .unwrap();
    let end = entry.raw_file_position() + entry.size().div_ceil(512) * 512;
    full[..end as usize].to_vec()
}

#[test]
fn bad_backups_are_refused_and_leave_nothing() {
    let s = setup();
    let (code, first) = s.backup("-X none", "");
    assert_eq!(code, 201, "{first}");
    let before = (s.list(), s.backup_objects());
    let token = s.gateway.token("main", "archiver");
    let post = |body: Vec<u8>| {
        let r = walgate_tests::agent()
            .post(format!("{}/v1/clusters/main/backups", s.gateway.url))
            .header("Authorization", format!("Bearer {token}"))
            .send(&body[..])
            .unwrap();
        let status = r.status().as_u16();
        let json: serde_json::Value = serde_json::from_slice(&body_bytes(r)).unwrap();
        (
            status,
            json["error"].as_str().unwrap_or_default().to_owned(),
        )
    };

    // Garbage, an empty body, a tar without backup_label.
    assert_eq!(
        post(b"this is not a tar stream at all".repeat(100)),
        (400, "not_a_backup".into())
    );
    assert_eq!(post(vec![]), (400, "not_a_backup".into()));
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(5);
    header.set_cksum();
    tar.append_data(&mut header, "PG_VERSION", &b"15\n\0\0"[..])
        .unwrap();
    assert_eq!(
        post(tar.into_inner().unwrap()),
        (400, "not_a_backup".into())
    );
    // A GNU long-name member claiming 1 GiB first: refused by its header, not read
    // into memory.
    let mut long = tar::Header::new_gnu();
    long.set_entry_type(tar::EntryType::GNULongName);
    long.set_path("././@LongLink").unwrap();
    long.set_size(1 << 30);
    long.set_cksum();
    let mut body = long.as_bytes().to_vec();
    body.resize(64 << 10, b'x');
    let r = walgate_tests::agent()
        .post(format!("{}/v1/clusters/main/backups", s.gateway.url))
        .header("Authorization", format!("Bearer {token}"))
        .send(&body[..])
        .unwrap();
    assert_eq!(r.status(), 400);
    let refused = String::from_utf8(body_bytes(r)).unwrap();
    assert!(refused.contains("starts with `@LongLink`"), "{refused}");
    assert_eq!((s.list(), s.backup_objects()), before);

    // A backup of another database system.
    let mut other = PgCluster::init(&[]);
    other.start();
    let script = format!(
        "{} -h 127.0.0.1 -p {} -U postgres -D - -Ft -X none | curl -sS -H @{} -T - -o /dev/null -w '%{{http_code}}' {}/v1/clusters/main/backups",
        other.pg.tool("pg_basebackup").display(),
        other.port,
        s.header.display(),
        s.gateway.url
    );
    let code = run(Command::new("bash").args(["-o", "pipefail", "-c", &script])).unwrap();
    assert_eq!(code.trim(), "409");
    assert_eq!((s.list(), s.backup_objects()), before);

    // A real backup's start, with a token that may only restore: refused before the
    // body is read.
    let full = walgate_tests::basebackup_tar(&s.source);
    let restorer = s.gateway.token("main", "restorer");
    let r = walgate_tests::agent()
        .post(format!("{}/v1/clusters/main/backups", s.gateway.url))
        .header("Authorization", format!("Bearer {restorer}"))
        .send(&full[..4096])
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!((s.list(), s.backup_objects()), before);

    // A real backup that ends cleanly after one of its files, as when pg_basebackup
    // fails piped into curl: without the end-of-archive marker it is not complete.
    let r = walgate_tests::agent()
        .post(format!("{}/v1/clusters/main/backups", s.gateway.url))
        .header("Authorization", format!("Bearer {token}"))
        .send(&cut_after_member(&full, 20)[..])
        .unwrap();
    assert_eq!(r.status(), 400);
    let refused = String::from_utf8(body_bytes(r)).unwrap();
    assert!(
        refused.contains("without the end-of-archive marker"),
        "{refused}"
    );
    assert_eq!((s.list(), s.backup_objects()), before);

    // A real backup cut half-way.
    let addr = s.gateway.url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "POST /v1/clusters/main/backups HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
        full.len()
    )
    .unwrap();
    stream.write_all(&full[..full.len() / 2]).unwrap();
    drop(stream);
    s.settles_to(&before, "a cut upload");

    // A backup deleted while it uploads: its upload is refused at the end instead of
    // coming back as complete, and nothing of it is kept.
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "POST /v1/clusters/main/backups HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        full.len()
    )
    .unwrap();
    stream.write_all(&full[..full.len() / 2]).unwrap();
    let uploading = s.uploading();
    let (code, _) = s.admin(
        "DELETE",
        &format!("/v1/clusters/main/backups/{uploading}"),
        None,
    );
    assert_eq!(code, 204);
    stream.write_all(&full[full.len() / 2..]).unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 409"), "{answer}");
    assert!(
        answer.contains("deleted while it was uploading"),
        "{answer}"
    );
    assert_eq!((s.list(), s.backup_objects()), before);
}

impl Setup {
    fn plan(&self, query: &str) -> (u16, serde_json::Value) {
        let token = self.gateway.token("main", "viewer");
        let r = self.gateway.get(
            &format!("/v1/clusters/main/restore-plan{query}"),
            Some(&token),
        );
        let status = r.status().as_u16();
        (status, serde_json::from_slice(&body_bytes(r)).unwrap())
    }

    /// Restores what `plan` says, with the settings it gives, and waits for promotion.
    fn restore_plan(&self, plan: &serde_json::Value) -> PgCluster {
        self.restore_plan_with(plan, "archive_mode = off")
    }

    fn restore_plan_with(&self, plan: &serde_json::Value, extra_conf: &str) -> PgCluster {
        walgate_tests::restore_plan(&self.gateway, &self.source.pg, plan, extra_conf)
    }
}

on_every_major!(
    point_in_time_recovery_from_restore_plans,
    client_backup_push_list_and_restore,
    forged_backups_and_wal_cannot_make_retention_delete_the_real_backup
);

/// Point-in-time recovery to an LSN, a time and a restore point, each planned by the
/// gateway; then a timeline switch that the latest plan follows.
fn point_in_time_recovery_from_restore_plans(pg: &Postgres) {
    let s = setup_on(pg);
    assert_eq!(s.plan("").1["error"], "not_reachable", "no backup yet");
    let (code, first) = s.backup("-X none", "");
    assert_eq!(code, 201, "{first}");
    s.source.pgbench(&["-c", "2", "-t", "300", "-n"]);
    s.source.psql("INSERT INTO marker VALUES ('one')");
    let lsn_one = s.source.psql("SELECT pg_current_wal_insert_lsn()");
    let sum_one = pgbench_checksum(&s.source);
    s.source.psql("SELECT pg_create_restore_point('after-one')");
    std::thread::sleep(Duration::from_millis(1100));
    let time_one = s.source.psql(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    std::thread::sleep(Duration::from_millis(1100));
    s.source.pgbench(&["-c", "2", "-t", "300", "-n"]);
    s.source.psql("INSERT INTO marker VALUES ('two')");
    s.archive_all();
    let sum_two = pgbench_checksum(&s.source);
    assert_ne!(sum_one, sum_two);

    for query in [
        format!("?target_lsn={lsn_one}"),
        format!("?target_time={time_one}"),
        "?target_name=after-one".to_owned(),
    ] {
        let (code, plan) = s.plan(&query);
        assert_eq!(code, 200, "{query}: {plan}");
        assert_eq!(plan["backup"]["id"], first["id"]);
        assert!(plan["covered"].as_bool().unwrap());
        let pg = s.restore_plan(&plan);
        assert_eq!(pgbench_checksum(&pg), sum_one, "{query}");
    }
    // Beyond the end of the archive, or before the first backup: 422, with the reason.
    let (code, err) = s.plan("?target_lsn=FF/0");
    assert_eq!(code, 422, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("beyond the end of the archive"),
        "{err}"
    );
    let (code, err) = s.plan("?target_time=2001-01-01T00:00:00Z");
    assert_eq!(
        (code, err["error"].as_str().unwrap()),
        (422, "not_reachable")
    );

    // Restore to "one", promote (timeline 2), archiving into the same cluster.
    let (_, plan) = s.plan(&format!("?target_lsn={lsn_one}"));
    let archiving = format!(
        "archive_mode = on\narchive_command = {}",
        conf_quote(&curl_archive_command(&s.gateway.url, "main", &s.header))
    );
    let branch = s.restore_plan_with(&plan, &archiving);
    branch.psql("CHECKPOINT");
    assert_eq!(
        branch.psql("SELECT timeline_id FROM pg_control_checkpoint()"),
        "2"
    );
    branch.psql("INSERT INTO marker VALUES ('three, on timeline 2')");
    branch.archive_current();
    let sum_three = pgbench_checksum(&branch);

    // The latest plan follows the history file to timeline 2 from the same backup.
    let (code, plan) = s.plan("");
    assert_eq!(code, 200, "{plan}");
    assert_eq!(plan["target_timeline"], 2);
    assert_eq!(
        plan["history_files"],
        serde_json::json!(["00000002.history"])
    );
    assert_eq!(plan["timelines"].as_array().unwrap().len(), 2);
    let pg = s.restore_plan(&plan);
    assert_eq!(pgbench_checksum(&pg), sum_three);
    // Timeline 1 is still restorable to its own end.
    let (code, plan) = s.plan("?target_timeline=1");
    assert_eq!(code, 200, "{plan}");
    let pg = s.restore_plan(&plan);
    assert_eq!(pgbench_checksum(&pg), sum_two);
}

impl Setup {
    /// Runs walgate-client as the PostgreSQL owner with an admin token for `main`;
    /// returns its output.
    fn client(&self, args: &[&str]) -> String {
        let token_file = self.source.dir.path().join("token");
        if !token_file.exists() {
            walgate_tests::write_pg_owned(&token_file, &self.gateway.token("main", "admin"));
        }
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "env"])
            .arg(format!("WALGATE_URL={}", self.gateway.url))
            .arg("WALGATE_CLUSTER=main")
            .arg(format!("WALGATE_TOKEN_FILE={}", token_file.display()))
            .arg(walgate_tests::bin("walgate-client"))
            .args(args);
        run(&mut c).unwrap()
    }

    /// `walgate-client backup-push --json` of the source, with `flags` first.
    fn client_backup(&self, flags: &[&str]) -> serde_json::Value {
        let tool = self.source.pg.tool("pg_basebackup").display().to_string();
        let port = self.source.port.to_string();
        let mut args = vec!["backup-push", "--json", "--pg-basebackup", &tool];
        args.extend(flags);
        args.extend(["--", "-h", "127.0.0.1", "-p", &port, "-U", "postgres"]);
        serde_json::from_str(&self.client(&args)).unwrap()
    }

    /// Turns on the WAL summaries that incremental backups read.
    fn summarize_wal(&self) {
        self.source.psql("ALTER SYSTEM SET summarize_wal = on");
        self.source.psql("SELECT pg_reload_conf()");
    }

    /// `pg_basebackup --incremental=manifest | curl -T -`; returns curl's status and body.
    fn incremental_backup(&self, manifest: &Path) -> (u16, serde_json::Value) {
        self.backup(
            &format!("-X fetch --incremental={}", manifest.display()),
            "",
        )
    }

    /// Downloads a backup's manifest with curl, as a host would; returns its path.
    fn curl_manifest(&self, id: &str) -> std::path::PathBuf {
        let path = self.source.dir.path().join(format!("manifest-{id}"));
        run(Command::new("curl")
            .args(["-sS", "--fail", "-H"])
            .arg(format!("@{}", self.header.display()))
            .arg("-o")
            .arg(&path)
            .arg(format!(
                "{}/v1/clusters/main/backups/{id}/manifest",
                self.gateway.url
            )))
        .unwrap();
        path
    }

    fn chain_of(plan: &serde_json::Value) -> Vec<String> {
        plan["chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

on_majors_since_17!(
    incremental_chains_restore_to_points_in_time,
    incremental_backups_through_curl_only,
    incremental_refusals_retention_and_damaged_links
);

/// A full backup, an incremental on it and a second on that, taken with the client
/// under pgbench; the client restores the chain to a time after the second, and to a
/// time between the two incrementals, which picks the first.
fn incremental_chains_restore_to_points_in_time(pg: &Postgres) {
    let s = setup_on(pg);
    s.summarize_wal();
    let full = s.client_backup(&[]);
    assert_eq!(full["kind"], "full", "{full}");
    s.source.pgbench(&["-c", "2", "-t", "300", "-n"]);
    let first = s.client_backup(&["--incremental"]);
    assert_eq!(
        (&first["kind"], &first["parent"]),
        (&serde_json::json!("incremental"), &full["id"]),
        "{first}"
    );
    // A target time with a clock step on each side, so that backups' finish times and
    // the transactions around it fall clearly before or after.
    let mark = |note: &str| {
        s.source.pgbench(&["-c", "2", "-t", "300", "-n"]);
        s.source
            .psql(&format!("INSERT INTO marker VALUES ('{note}')"));
        let sum = pgbench_checksum(&s.source);
        std::thread::sleep(Duration::from_millis(1100));
        let at = s.source.psql(
            "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
        );
        std::thread::sleep(Duration::from_millis(1100));
        (sum, at)
    };
    let (sum_between, between) = mark("between");
    s.source.pgbench(&["-c", "2", "-t", "300", "-n"]);
    let second = s.client_backup(&["--incremental"]);
    assert_eq!(second["parent"], first["id"], "{second}");
    assert_eq!(
        second["chain"],
        serde_json::json!([full["id"], first["id"], second["id"]])
    );
    let (sum_after, after) = mark("after");
    s.source.pgbench(&["-c", "2", "-t", "300", "-n"]);
    s.source
        .psql("INSERT INTO marker VALUES ('past the target')");
    s.archive_all();

    let (code, plan) = s.plan("");
    assert_eq!(code, 200, "{plan}");
    let ids = |b: &[&serde_json::Value]| -> Vec<String> {
        b.iter()
            .map(|v| v["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(Setup::chain_of(&plan), ids(&[&full, &first, &second]));
    let (code, plan) = s.plan(&format!("?target_time={after}"));
    assert_eq!(code, 200, "{plan}");
    assert_eq!(Setup::chain_of(&plan), ids(&[&full, &first, &second]));
    let (code, plan) = s.plan(&format!("?target_time={between}"));
    assert_eq!(code, 200, "{plan}");
    assert_eq!(Setup::chain_of(&plan), ids(&[&full, &first]));

    let combine = pg.tool("pg_combinebackup").display().to_string();
    let restore = |target: &str| {
        let mut restored = PgCluster::from_shell(
            pg,
            &format!(
                "{} restore --pgdata {target} --drill --pg-combinebackup {combine}",
                walgate_tests::client_command(
                    &s.gateway.url,
                    &s.source,
                    &s.gateway.token("main", "restorer"),
                    "",
                    ""
                )
                .trim_end()
            ),
        );
        restored.start();
        restored.wait_recovered();
        restored
    };
    let restored = restore(&format!("\"$PGDATA\" --target-time {after}"));
    assert_eq!(pgbench_checksum(&restored), sum_after);
    assert_eq!(
        restored.psql("SELECT string_agg(note, ',' ORDER BY note) FROM marker"),
        "after,between"
    );
    // A trailing slash on the directory changes nothing.
    let at = restore(&format!("\"$PGDATA/\" --target-time {between}"));
    assert_eq!(pgbench_checksum(&at), sum_between);
    assert_eq!(
        at.psql("SELECT string_agg(note, ',') FROM marker"),
        "between"
    );
    // The full backup cannot go while incrementals build on it.
    let (code, body) = s.admin(
        "DELETE",
        &format!("/v1/clusters/main/backups/{}", full["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(
        (code, &body["error"]),
        (409, &serde_json::json!("has_dependants")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(first["id"].as_str().unwrap()),
        "{body}"
    );
}

/// The same with curl alone: the manifest downloaded, `pg_basebackup --incremental`
/// piped into curl, and the restore done by the plan's own commands.
fn incremental_backups_through_curl_only(pg: &Postgres) {
    let s = setup_on(pg);
    s.summarize_wal();
    let (code, full) = s.backup("-X fetch", "");
    assert_eq!(code, 201, "{full}");
    s.source.pgbench(&["-c", "2", "-t", "300", "-n"]);
    let manifest = s.curl_manifest("latest");
    let (code, inc) = s.incremental_backup(&manifest);
    assert_eq!(code, 201, "{inc}");
    assert_eq!(
        (&inc["kind"], &inc["parent"]),
        (&serde_json::json!("incremental"), &full["id"])
    );
    s.source.pgbench(&["-c", "2", "-t", "300", "-n"]);
    let expected = pgbench_checksum(&s.source);
    s.archive_all();
    let (code, plan) = s.plan("");
    assert_eq!(code, 200, "{plan}");
    assert_eq!(plan["chain"][1]["kind"], "incremental");
    let restored = walgate_tests::restore_by_commands(pg, &plan, &s.header, "archive_mode = off");
    assert_eq!(pgbench_checksum(&restored), expected);
}

/// Incrementals the gateway cannot tie to a complete parent are refused with nothing
/// kept; retention expires chains whole and what it keeps restores; a damaged link is
/// reported for the backups built on it.
fn incremental_refusals_retention_and_damaged_links(pg: &Postgres) {
    let mut s = setup_on(pg);
    s.summarize_wal();
    // A parent the gateway never saw: a backup taken past it.
    let elsewhere = PgCluster::from_basebackup(&s.source, &["--checkpoint=fast"]);
    let before = (s.list(), s.backup_objects());
    let (code, body) = s.incremental_backup(&elsewhere.pgdata.join("backup_manifest"));
    assert_eq!(
        (code, &body["error"]),
        (409, &serde_json::json!("no_parent")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("holds no complete backup"),
        "{body}"
    );
    assert_eq!((s.list(), s.backup_objects()), before);

    // A parent deleted after its manifest was downloaded.
    let (code, gone) = s.backup("-X fetch", "");
    assert_eq!(code, 201, "{gone}");
    let manifest = s.curl_manifest(gone["id"].as_str().unwrap());
    let path = format!("/v1/clusters/main/backups/{}", gone["id"].as_str().unwrap());
    assert_eq!(s.admin("DELETE", &path, None).0, 204);
    let before = (s.list(), s.backup_objects());
    let (code, body) = s.incremental_backup(&manifest);
    assert_eq!(
        (code, &body["error"]),
        (409, &serde_json::json!("no_parent")),
        "{body}"
    );
    assert_eq!((s.list(), s.backup_objects()), before);

    // A cut incremental upload leaves nothing: cut half-way, or ending cleanly after
    // one of its files.
    let (code, old_full) = s.backup("-X fetch", "");
    assert_eq!(code, 201, "{old_full}");
    s.source.pgbench(&["-c", "2", "-t", "200", "-n"]);
    let manifest = s.curl_manifest("latest");
    let tar_file = s.source.dir.path().join("incremental.tar");
    run(Command::new("bash").args([
        "-o",
        "pipefail",
        "-c",
        &format!(
            "{} -h 127.0.0.1 -p {} -U postgres -D - -Ft -X fetch -c fast --incremental={} > {}",
            pg.tool("pg_basebackup").display(),
            s.source.port,
            manifest.display(),
            tar_file.display()
        ),
    ]))
    .unwrap();
    let tar = std::fs::read(&tar_file).unwrap();
    let before = (s.list(), s.backup_objects());
    let addr = s.gateway.url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "POST /v1/clusters/main/backups HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        s.gateway.token("main", "archiver"),
        tar.len()
    )
    .unwrap();
    stream.write_all(&tar[..tar.len() / 2]).unwrap();
    drop(stream);
    s.settles_to(&before, "a cut incremental upload");
    let post = |body: &[u8]| {
        let r = walgate_tests::agent()
            .post(format!("{}/v1/clusters/main/backups", s.gateway.url))
            .header(
                "Authorization",
                format!("Bearer {}", s.gateway.token("main", "archiver")),
            )
            .send(body)
            .unwrap();
        let code = r.status().as_u16();
        (
            code,
            serde_json::from_slice::<serde_json::Value>(&body_bytes(r)).unwrap(),
        )
    };
    let (code, body) = post(&cut_after_member(&tar, 5));
    assert_eq!(code, 400, "{body}");
    assert_eq!((s.list(), s.backup_objects()), before);

    // Two chains; keep_last = 1 keeps the newer chain whole and deletes the older one.
    let (code, old_inc) = post(&tar);
    assert_eq!(code, 201, "{old_inc}");
    assert_eq!(old_inc["parent"], old_full["id"]);
    s.source.pgbench(&["-c", "2", "-t", "200", "-n"]);
    let (code, new_full) = s.backup("-X fetch", "");
    assert_eq!(code, 201, "{new_full}");
    s.source.pgbench(&["-c", "2", "-t", "200", "-n"]);
    let (code, new_inc) = s.incremental_backup(&s.curl_manifest("latest"));
    assert_eq!(code, 201, "{new_inc}");
    assert_eq!(new_inc["parent"], new_full["id"]);
    s.source.pgbench(&["-c", "2", "-t", "200", "-n"]);
    let expected = pgbench_checksum(&s.source);
    s.archive_all();
    let (code, _) = s.admin(
        "PUT",
        "/v1/clusters/main/retention",
        Some(serde_json::json!({"keep_last": 1})),
    );
    assert_eq!(code, 200);
    let ran = s
        .gateway
        .run_retention("main", &s.gateway.token("main", "admin"));
    let deleted: Vec<&str> = ran["delete_backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        deleted,
        [
            old_inc["id"].as_str().unwrap(),
            old_full["id"].as_str().unwrap()
        ],
        "{ran}"
    );
    let left: Vec<serde_json::Value> = s.list().iter().map(|b| b["id"].clone()).collect();
    assert_eq!(left, [new_inc["id"].clone(), new_full["id"].clone()]);
    let (code, plan) = s.plan("");
    assert_eq!(code, 200, "{plan}");
    let restored = walgate_tests::restore_by_commands(pg, &plan, &s.header, "archive_mode = off");
    assert_eq!(pgbench_checksum(&restored), expected);
    // The cluster page shows the chain: the incremental links to its full backup.
    let page = s
        .gateway
        .page("/clusters/main", &s.gateway.token("main", "admin"));
    let new_full_id = new_full["id"].as_str().unwrap();
    assert!(
        page.contains(&format!(
            "incremental on <a href=\"#backup-{new_full_id}\">"
        )),
        "{page}"
    );

    // A catalog rebuilt from the bucket ties the incremental to its parent again.
    let listed = s.list();
    s.gateway.kill();
    for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
        let _ = std::fs::remove_file(s.gateway.data_dir.join(f));
    }
    run(&mut s.gateway.command(&["catalog", "rebuild"])).unwrap();
    s.gateway.restart();
    assert_eq!(s.list(), listed);
    assert_eq!(
        listed[0]["chain"],
        serde_json::json!([new_full["id"], new_inc["id"]])
    );

    // A flipped byte in the full backup: a scrub names it, and the incremental on it.
    let data = s.gateway.data_dir.join(format!(
        "objects/clusters/main/backups/{}/base.tar.zst",
        new_full["id"].as_str().unwrap()
    ));
    let mut bytes = std::fs::read(&data).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let token = s.gateway.token("main", "admin");
    let report: serde_json::Value = serde_json::from_slice(&body_bytes(
        s.gateway
            .get("/v1/clusters/main/verify?scrub=true", Some(&token)),
    ))
    .unwrap();
    let problems = report["object_problems"].to_string();
    assert!(
        problems.contains(&format!(
            "backup {}: its chain holds damaged backup {}",
            new_inc["id"].as_str().unwrap(),
            new_full["id"].as_str().unwrap()
        )),
        "{report}"
    );
}

/// The same with the client: backup-push, backup-list, and restore to an LSN.
fn client_backup_push_list_and_restore(pg: &Postgres) {
    let s = setup_on(pg);
    let pushed = s.client_backup(&[]);
    let token_file = s.source.dir.path().join("token");
    let port = s.source.port.to_string();
    assert_eq!(pushed["status"], "complete", "{pushed}");
    let listed: serde_json::Value =
        serde_json::from_str(&s.client(&["backup-list", "--json"])).unwrap();
    assert_eq!(listed[0]["id"], pushed["id"]);
    let before = (s.list(), s.backup_objects());

    // Stand-ins for pg_basebackup that write a whole, valid backup and then fail, or
    // keep running.
    let full = walgate_tests::basebackup_tar(&s.source);
    let tar_file = s.source.dir.path().join("full.tar");
    std::fs::write(&tar_file, &full).unwrap();
    let script = |name: &str, then: &str| {
        let path = s.source.dir.path().join(name);
        let text = format!("#!/bin/sh\ncat {}\n{then}\n", tar_file.display());
        std::fs::write(&path, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    let failing = script("failing-pg_basebackup", "exit 1");
    let running = script("running-pg_basebackup", "exec sleep 600");
    let push_with = |pg_basebackup: &Path| {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "timeout", "120", "env"])
            .arg(format!("WALGATE_URL={}", s.gateway.url))
            .arg("WALGATE_CLUSTER=main")
            .arg(format!("WALGATE_TOKEN_FILE={}", token_file.display()))
            .arg(walgate_tests::bin("walgate-client"))
            .args(["backup-push", "--pg-basebackup"])
            .arg(pg_basebackup)
            .args(["--", "-h", "127.0.0.1", "-p", &port, "-U", "postgres"]);
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // It fails after its output: the client cuts the upload (an output that ends
    // cleanly would be stored complete) and says why, and the gateway keeps nothing.
    let (code, stderr) = push_with(&failing);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("pg_basebackup failed"), "{stderr}");
    s.settles_to(&before, "an upload the client cut");

    // The gateway refuses while pg_basebackup still runs (the cluster's one upload slot
    // is taken): the client stops it and says why instead of waiting for it.
    let addr = s.gateway.url.trim_start_matches("http://").to_owned();
    let mut holder = TcpStream::connect(&addr).unwrap();
    write!(
        holder,
        "POST /v1/clusters/main/backups HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        s.gateway.token("main", "archiver"),
        full.len()
    )
    .unwrap();
    holder.write_all(&full[..full.len() / 4]).unwrap();
    s.uploading();
    let (code, stderr) = push_with(&running);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("429"), "{stderr}");
    drop(holder);
    s.settles_to(&before, "an upload cut while another waited");

    s.source.pgbench(&["-c", "2", "-t", "300", "-n"]);
    s.source.psql("INSERT INTO marker VALUES ('target')");
    let lsn = s.source.psql("SELECT pg_current_wal_insert_lsn()");
    let expected = pgbench_checksum(&s.source);
    s.source
        .psql("DELETE FROM pgbench_history; INSERT INTO marker VALUES ('after the target')");
    s.archive_all();

    let mut restored = PgCluster::from_shell(
        pg,
        &format!(
            "WALGATE_URL={} WALGATE_CLUSTER=main WALGATE_TOKEN_FILE={} {} restore --pgdata \"$PGDATA\" --target-lsn {lsn}",
            s.gateway.url,
            token_file.display(),
            walgate_tests::bin("walgate-client").display()
        ),
    );
    assert!(restored.pgdata.join("recovery.signal").exists());
    restored.start();
    restored.wait_recovered();
    assert_eq!(pgbench_checksum(&restored), expected);
}

impl Setup {
    /// Sends `method` to `path` with an admin token; returns the status and JSON body.
    fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let token = self.gateway.token("main", "admin");
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.gateway.send(method, path, &token, body)
    }

    /// The WAL file names the store holds for `main`.
    fn wal_objects(&self) -> Vec<String> {
        let dir = self.gateway.data_dir.join("objects/clusters/main/wal");
        let mut out: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter_map(|e| Some(e.file_name().to_str()?.strip_suffix(".zst")?.to_owned()))
            .collect();
        out.sort();
        out
    }
}

/// Retention keeping the newest two of three backups, on a cluster that switched to
/// timeline 2: exactly the oldest backup and the WAL before the second one's start go,
/// from the catalog and the store; the oldest promised point (right after the second
/// backup) still restores to the same rows, and the latest plan still follows timeline 2.
#[test]
fn retention_deletes_exactly_what_the_policy_expires() {
    let s = setup();
    let (code, b1) = s.backup("-X none", "");
    assert_eq!(code, 201, "{b1}");
    s.source.pgbench(&["-c", "2", "-t", "300", "-n"]);
    s.archive_all();
    let (code, b2) = s.backup("-X none", "");
    assert_eq!(code, 201, "{b2}");
    s.source
        .psql("INSERT INTO marker VALUES ('after the second backup')");
    let lsn_two = s.source.psql("SELECT pg_current_wal_insert_lsn()");
    let sum_two = pgbench_checksum(&s.source);
    s.source.pgbench(&["-c", "2", "-t", "300", "-n"]);
    s.archive_all();
    let (code, b3) = s.backup("-X none", "");
    assert_eq!(code, 201, "{b3}");
    s.source.pgbench(&["-c", "2", "-t", "300", "-n"]);
    s.archive_all();

    // A branch from the newest backup, promoted to timeline 2 and archiving.
    let (_, plan) = s.plan("");
    let archiving = format!(
        "archive_mode = on\narchive_command = {}",
        conf_quote(&curl_archive_command(&s.gateway.url, "main", &s.header))
    );
    let branch = s.restore_plan_with(&plan, &archiving);
    branch.psql("INSERT INTO marker VALUES ('on timeline 2')");
    branch.archive_current();
    let sum_branch = pgbench_checksum(&branch);

    // The policy, and its preview: b1 and the WAL before b2's start segment.
    let before_objects = s.wal_objects();
    let cut = b2["start_wal"].as_str().unwrap()[8..].to_owned();
    let expired: Vec<&String> = before_objects
        .iter()
        .filter(|n| !n.ends_with(".history") && n[8..24] < *cut)
        .collect();
    assert!(expired.len() >= 2, "{before_objects:?}");
    let (code, preview) = s.admin(
        "PUT",
        "/v1/clusters/main/retention",
        Some(serde_json::json!({"keep_last": 2})),
    );
    assert_eq!(code, 200, "{preview}");
    assert_eq!(preview["policy_source"], "cluster");
    assert_eq!(preview["keep"], serde_json::json!([b3["id"], b2["id"]]));
    assert_eq!(preview["delete_backups"][0]["id"], b1["id"]);
    assert_eq!(preview["wal_before"], serde_json::json!(cut));
    assert_eq!(preview["delete_wal_files"], expired.len() as u64);
    assert_eq!(preview["first_wal"], serde_json::json!(expired[0]));

    // A run needs confirm=true; then it deletes exactly the preview.
    let (code, refused) = s.admin("POST", "/v1/clusters/main/retention/run", None);
    assert_eq!(code, 400, "{refused}");
    assert_eq!(s.wal_objects(), before_objects);
    let (code, ran) = s.admin("POST", "/v1/clusters/main/retention/run?confirm=true", None);
    assert_eq!(code, 200, "{ran}");
    assert_eq!(ran, preview);
    let ids: Vec<_> = s.list().iter().map(|b| b["id"].clone()).collect();
    assert_eq!(ids, [b3["id"].clone(), b2["id"].clone()]);
    assert!(
        s.backup_objects()
            .iter()
            .all(|p| !p.contains(b1["id"].as_str().unwrap())),
        "b1's objects remain"
    );
    let after: Vec<String> = before_objects
        .iter()
        .filter(|n| !expired.contains(n))
        .cloned()
        .collect();
    assert_eq!(
        s.wal_objects(),
        after,
        "the store holds exactly what was kept"
    );
    assert!(after.contains(&"00000002.history".to_owned()));

    // Nothing more to do; the oldest promised point and the latest state still restore.
    let (_, again) = s.admin("GET", "/v1/clusters/main/retention/preview", None);
    assert_eq!(again["delete_wal_files"], 0);
    assert_eq!(again["delete_backups"], serde_json::json!([]));
    let (code, plan) = s.plan(&format!("?target_lsn={lsn_two}&target_timeline=1"));
    assert_eq!(code, 200, "{plan}");
    assert_eq!(plan["backup"]["id"], b2["id"]);
    assert_eq!(pgbench_checksum(&s.restore_plan(&plan)), sum_two);
    let (code, plan) = s.plan("");
    assert_eq!(code, 200, "{plan}");
    assert_eq!(plan["target_timeline"], 2);
    assert_eq!(pgbench_checksum(&s.restore_plan(&plan)), sum_branch);
}

/// The catalog database is lost: `walgate catalog rebuild` recreates it from the object
/// store alone (WAL, backups, the cluster's identity and own settings), and a
/// point-in-time restore planned from the rebuilt catalog holds exactly the source's
/// rows.
#[test]
fn catalog_rebuilt_from_the_bucket_restores_to_a_point_in_time() {
    let mut s = setup();
    let (code, b1) = s.backup("-X none", "");
    assert_eq!(code, 201, "{b1}");
    s.source.pgbench(&["-c", "2", "-t", "300", "-n"]);
    s.source.psql("INSERT INTO marker VALUES ('the target')");
    let target = s.source.psql("SELECT pg_current_wal_insert_lsn()");
    let expected = pgbench_checksum(&s.source);
    s.source.pgbench(&["-c", "2", "-t", "300", "-n"]);
    s.archive_all();

    let wal = |s: &Setup| {
        let (code, list) = s.admin("GET", "/v1/clusters/main/wal?limit=10000", None);
        assert_eq!(code, 200, "{list}");
        let mut files: Vec<_> = list["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["name"].clone(),
                    f["size"].clone(),
                    f["stored_size"].clone(),
                    f["sha256"].clone(),
                )
            })
            .collect();
        files.sort_by_key(|f| f.0.to_string());
        files
    };
    // The cluster's own retention (longer than a fleet default might be) and thresholds.
    let policy = serde_json::json!({"keep_last": 30, "window_days": 90, "min_backups": 2});
    let (code, body) = s.admin("PUT", "/v1/clusters/main/retention", Some(policy.clone()));
    assert_eq!(code, 200, "{body}");
    // Its first run takes the WAL from before the backup; the rebuilt gateway's
    // scheduled run, under the same policy, must find nothing more to delete.
    let (code, body) = s.admin("POST", "/v1/clusters/main/retention/run?confirm=true", None);
    assert_eq!(code, 200, "{body}");
    let thresholds = serde_json::json!({"thresholds": {"archive_lag_seconds": 600}});
    let (code, body) = s.admin("PUT", "/v1/clusters/main", Some(thresholds));
    assert_eq!(code, 200, "{body}");
    let (_, cluster_before) = s.admin("GET", "/v1/clusters/main", None);
    let wal_before = wal(&s);
    let backups_before = s.list();
    assert!(wal_before.len() >= 3, "{wal_before:?}");

    s.gateway.kill();
    for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
        let _ = std::fs::remove_file(s.gateway.data_dir.join(f));
    }
    let out = run(&mut s.gateway.command(&["catalog", "rebuild", "--json"])).unwrap();
    let found: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(found["wal_files"], wal_before.len() as u64, "{found}");
    assert_eq!(found["backups"], 1, "{found}");
    assert_eq!(found["settings"], 1, "{found}");
    s.gateway.restart();

    assert_eq!(wal(&s), wal_before);
    assert_eq!(s.list(), backups_before);
    let (_, cluster_after) = s.admin("GET", "/v1/clusters/main", None);
    for field in [
        "system_identifier",
        "segment_size",
        "pg_version",
        "wal_files",
        "last_wal",
        "thresholds",
    ] {
        assert_eq!(cluster_after[field], cluster_before[field], "{field}");
    }
    assert_eq!(cluster_after["thresholds"]["archive_lag_seconds"], 600);
    let (code, preview) = s.admin("GET", "/v1/clusters/main/retention/preview", None);
    assert_eq!(code, 200, "{preview}");
    assert_eq!(preview["policy"], policy);
    assert_eq!(preview["policy_source"], "cluster");
    let (code, plan) = s.plan(&format!("?target_lsn={target}"));
    assert_eq!(code, 200, "{plan}");
    assert_eq!(plan["backup"]["id"], b1["id"]);
    assert_eq!(pgbench_checksum(&s.restore_plan(&plan)), expected);
}

/// Deleting a cluster takes every backup and WAL file with it, history files too, and
/// only when asked with its name; afterwards the name is free for a new cluster.
#[test]
fn a_deleted_cluster_leaves_nothing_behind() {
    let mut s = setup();
    let admin = s.gateway.token("main", "admin");
    let (status, body) = s.backup("-X none", "--fail");
    assert_eq!(status, 201, "{body}");
    s.source.archive_current();
    let history = b"1\t0/3000000\tno recovery target specified\n".to_vec();
    let (status, body) = s.gateway.send(
        "PUT",
        "/v1/clusters/main/wal/00000002.history",
        &admin,
        history,
    );
    assert_eq!(status, 201, "{body}");
    // Its own thresholds, copied to the store next to its objects.
    let own = serde_json::json!({"thresholds": {"archive_lag_seconds": 600}});
    let (status, body) = s.gateway.send(
        "PUT",
        "/v1/clusters/main",
        &admin,
        own.to_string().into_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    s.source.stop();

    let objects = |dir: &Path| -> usize {
        let mut stack = vec![dir.to_owned()];
        let mut files = 0;
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    files += 1;
                }
            }
        }
        files
    };
    let cluster_dir = s.gateway.data_dir.join("objects/clusters/main");
    let before = objects(&cluster_dir);
    assert!(before >= 5, "{before} objects");
    assert!(cluster_dir.join("settings.json").exists());

    let archiver = s.gateway.token("main", "archiver");
    for (token, query, status) in [
        (&admin, "", 400),
        (&admin, "?confirm=other", 400),
        (&archiver, "?confirm=main", 403),
    ] {
        let path = format!("/v1/clusters/main{query}");
        let (got, body) = s.gateway.send("DELETE", &path, token, vec![]);
        assert_eq!(got, status, "{query}: {body}");
    }
    assert_eq!(
        objects(&cluster_dir),
        before,
        "a refused delete deleted something"
    );

    let (got, body) = s
        .gateway
        .send("DELETE", "/v1/clusters/main?confirm=main", &admin, vec![]);
    assert_eq!(got, 204, "{body}");
    assert_eq!(objects(&cluster_dir), 0);
    let (got, _) = s.gateway.send("GET", "/v1/clusters/main", &admin, vec![]);
    assert_eq!(got, 404);
    let (got, _) = s
        .gateway
        .send("DELETE", "/v1/clusters/main?confirm=main", &admin, vec![]);
    assert_eq!(got, 404);
    // The name is free again.
    let (got, body) = s.gateway.send("PUT", "/v1/clusters/main", &admin, vec![]);
    assert_eq!((got, body["status"].as_str()), (200, Some("new")), "{body}");
}

/// An archiver's token cannot make retention delete the real backup: forged labels far
/// past the archive are refused, forged ones near it do not count towards `keep_last`,
/// and forged WAL that leaves a gap pauses deletion. The real backup then still restores
/// to the same rows.
fn forged_backups_and_wal_cannot_make_retention_delete_the_real_backup(pg: &Postgres) {
    let s = setup_on(pg);
    let (code, real) = s.backup("-X none", "");
    assert_eq!(code, 201, "{real}");
    s.source.pgbench(&["-c", "2", "-t", "300", "-n"]);
    let target = s.source.psql("SELECT pg_current_wal_insert_lsn()");
    let expected = pgbench_checksum(&s.source);
    // One switch: on PostgreSQL 17 and 18 a second one with nothing written since
    // switches nothing, and its segment is never archived.
    let newest = s.source.archive_current();
    let sysid: u64 = s
        .source
        .psql("SELECT system_identifier FROM pg_control_system()")
        .parse()
        .unwrap();
    let newest = u64::from_str_radix(&newest[8..16], 16).unwrap() * 256
        + u64::from_str_radix(&newest[16..24], 16).unwrap();
    let major = s.source.pg.major;
    let archiver = s.gateway.token("main", "archiver");
    let push = |body: Vec<u8>| {
        s.gateway
            .send("POST", "/v1/clusters/main/backups", &archiver, body)
    };

    // Far past the archive: refused, nothing kept.
    let (code, refused) = push(walgate_tests::synthetic_backup(
        major,
        sysid,
        newest + 100_000,
        "",
    ));
    assert_eq!(code, 409, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("past the newest WAL archived"),
        "{refused}"
    );
    assert_eq!(s.list().len(), 1);
    // Near it, with no WAL behind them: stored, but they do not count.
    for n in [newest + 5, newest + 6] {
        let (code, forged) = push(walgate_tests::synthetic_backup(major, sysid, n, ""));
        assert_eq!(code, 201, "{forged}");
    }
    let (code, preview) = s.admin(
        "PUT",
        "/v1/clusters/main/retention",
        Some(serde_json::json!({"keep_last": 1})),
    );
    assert_eq!(code, 200, "{preview}");
    assert_eq!(
        preview["delete_backups"],
        serde_json::json!([]),
        "{preview}"
    );
    assert_eq!(preview["keep"].as_array().unwrap().len(), 3, "{preview}");

    // Forged WAL for them leaves a gap after the real backup: nothing is deleted.
    let segment = walgate_tests::synthetic_segment_of(major, sysid, 1, newest + 5, 0);
    let name = format!(
        "00000001{:08X}{:08X}",
        (newest + 5) >> 8,
        (newest + 5) & 0xFF
    );
    let (code, stored) = s.gateway.send(
        "PUT",
        &format!("/v1/clusters/main/wal/{name}"),
        &archiver,
        segment,
    );
    assert!(code == 201 || code == 200, "{code} {stored}");
    let (code, ran) = s.admin("POST", "/v1/clusters/main/retention/run?confirm=true", None);
    assert_eq!(code, 200, "{ran}");
    assert_eq!(ran["delete_backups"], serde_json::json!([]), "{ran}");
    assert!(
        ran["paused"]
            .as_str()
            .unwrap()
            .contains(real["id"].as_str().unwrap()),
        "{ran}"
    );
    assert!(s.list().iter().any(|b| b["id"] == real["id"]));
    // The cluster page says so too.
    let page = s
        .gateway
        .page("/clusters/main", &s.gateway.token("main", "viewer"));
    assert!(page.contains(r#"id="retention-paused""#), "{page}");

    let (code, plan) = s.plan(&format!("?target_lsn={target}"));
    assert_eq!(code, 200, "{plan}");
    assert_eq!(plan["backup"]["id"], real["id"]);
    assert_eq!(pgbench_checksum(&s.restore_plan(&plan)), expected);
}
