//! End to end: PostgreSQL archives WAL through the gateway with the README's curl
//! archive_command (or the client), and a second cluster recovers from it with the
//! curl restore_command; the restored tables must equal the source's, row for row. On
//! every supported major, and with 64 MiB segments.

use std::path::Path;

use std::process::Command;
use walgate_tests::emulators::{Bucket, write_config};
use walgate_tests::{
    Gateway, PgCluster, Postgres, basebackup_tar, bin, body_bytes, client_command, conf_quote,
    curl_archive_command, curl_restore_command, gateway_dir, on_every_major, pgbench_checksum, run,
    write_pg_owned, write_token_header,
};

/// Which client PostgreSQL's archive and restore commands use.
#[derive(Clone, Copy)]
enum Tool {
    Curl,
    Client,
}

impl Tool {
    /// The command line for `pg`, with the credentials it needs written next to it.
    fn command(self, gateway: &Gateway, pg: &PgCluster, token: &str, restore: bool) -> String {
        match self {
            Tool::Curl => {
                let header = pg.dir.path().join("walgate-auth-header");
                write_token_header(&header, token);
                if restore {
                    curl_restore_command(&gateway.url, "main", &header)
                } else {
                    curl_archive_command(&gateway.url, "main", &header)
                }
            }
            Tool::Client => {
                let sub = if restore {
                    "wal-fetch %f %p"
                } else {
                    "wal-push %p"
                };
                client_command(&gateway.url, pg, token, "", sub)
            }
        }
    }
}

/// Archives a pgbench load of a new `pg` cluster (made with `initdb_args`) with `tool`,
/// recovers a copy from the archive and compares them; returns the source, running.
fn archive_and_recover_on_major(
    gateway: &Gateway,
    tool: Tool,
    pg: &Postgres,
    initdb_args: &[&str],
) -> PgCluster {
    let archiver = gateway.token("main", "archiver");
    let restorer = gateway.token("main", "restorer");

    let mut source = PgCluster::init_on(pg, initdb_args);
    source.append_conf(&format!(
        "wal_level = replica\narchive_mode = on\nwal_keep_size = '2GB'\narchive_command = {}",
        conf_quote(&tool.command(gateway, &source, &archiver, false))
    ));
    source.start();
    source.pgbench(&["-i", "-s", "4", "-q"]);
    source.psql("CREATE TABLE marker (note text)");

    // A base backup without WAL: the restore needs the archive for all of it.
    let mut restored = PgCluster::from_basebackup(&source, &["-X", "none", "--checkpoint=fast"]);

    source.pgbench(&["-c", "4", "-j", "2", "-t", "1500", "-n"]);
    source.psql("INSERT INTO marker VALUES ('after the load')");
    let last = source.archive_current();
    assert_eq!(
        source.psql("SELECT failed_count FROM pg_stat_archiver"),
        "0",
        "{}",
        source.log()
    );

    // Every segment PostgreSQL marked done is fetchable and byte-identical.
    let done = source.done_segments();
    let segment_mib: usize = source
        .psql("SELECT pg_size_bytes(current_setting('wal_segment_size')) / 1048576")
        .parse()
        .unwrap();
    assert!(
        done.len() * segment_mib >= 80,
        "expected several archived segments, got {done:?}"
    );
    for name in &done {
        let response = gateway.get(&format!("/v1/clusters/main/wal/{name}"), Some(&restorer));
        assert_eq!(response.status(), 200, "{name}");
        let body = body_bytes(response);
        let original = std::fs::read(source.pgdata.join("pg_wal").join(name)).unwrap();
        assert!(
            body == original,
            "{name} differs from the source's pg_wal copy"
        );
    }
    let expected = pgbench_checksum(&source);

    // Recover the second cluster to the end of the archive.
    restored.append_conf(&format!(
        "archive_mode = off\nrestore_command = {}",
        conf_quote(&tool.command(gateway, &restored, &restorer, true))
    ));
    restored.touch("recovery.signal");
    restored.start();
    restored.wait_recovered();
    assert_eq!(
        pgbench_checksum(&restored),
        expected,
        "restored data differs from the source"
    );
    let log = restored.log();
    assert!(
        log.contains("restored log file"),
        "recovery did not use the archive:\n{log}"
    );
    assert!(
        log.contains(&format!("restored log file \"{last}\"")),
        "{last} was not replayed:\n{log}"
    );
    source
}

/// The same on the default major.
fn archive_and_recover(gateway: &Gateway, tool: Tool) {
    archive_and_recover_on_major(gateway, tool, Postgres::default_major(), &[]);
}

on_every_major!(
    archive_and_recover_with_curl,
    archive_and_recover_64mib_segments_with_the_client
);

/// The curl recipes; then WAL and a base backup of another major, refused with a message
/// naming both versions, and the archive unchanged.
fn archive_and_recover_with_curl(pg: &Postgres) {
    let dir = gateway_dir();
    let gateway = Gateway::start(&dir.path().join("data"), &[]);
    let source = archive_and_recover_on_major(&gateway, Tool::Curl, pg, &[]);

    let archiver = gateway.token("main", "archiver");
    let before = gateway.objects();
    let mut other = PgCluster::init_on(&pg.other(), &[]);
    other.start();
    let next = source.psql("SELECT pg_walfile_name(pg_current_wal_insert_lsn())");
    let segment = std::fs::read(other.pgdata.join("pg_wal/000000010000000000000001")).unwrap();
    let both = |text: &str| {
        text.contains(&format!("PostgreSQL {}", pg.major))
            && text.contains(&format!("PostgreSQL {}", other.pg.major))
    };
    for name in ["000000010000000000000001", next.as_str()] {
        let path = format!("/v1/clusters/main/wal/{name}");
        let (code, answer) = gateway.send("PUT", &path, &archiver, segment.clone());
        assert_eq!(code, 409, "{name}: {answer}");
        assert!(
            both(answer["message"].as_str().unwrap()),
            "{name}: {answer}"
        );
    }
    let backup = basebackup_tar(&other);
    let (code, answer) = gateway.send("POST", "/v1/clusters/main/backups", &archiver, backup);
    assert_eq!(code, 409, "{answer}");
    assert!(both(answer["message"].as_str().unwrap()), "{answer}");
    assert_eq!(
        gateway.objects(),
        before,
        "a refused upload changed the archive"
    );
}

/// The client as archive_command and restore_command, on a cluster made with
/// `initdb --wal-segsize=64`; then its `backup-push` and `restore` on the same cluster.
fn archive_and_recover_64mib_segments_with_the_client(pg: &Postgres) {
    let dir = gateway_dir();
    let gateway = Gateway::start(&dir.path().join("data"), &[]);
    let source = archive_and_recover_on_major(&gateway, Tool::Client, pg, &["--wal-segsize=64"]);

    let token_file = source.dir.path().join("admin-token");
    write_pg_owned(&token_file, &gateway.token("main", "admin"));
    let client = format!(
        "WALGATE_URL={} WALGATE_CLUSTER=main WALGATE_TOKEN_FILE={} {}",
        gateway.url,
        token_file.display(),
        bin("walgate-client").display()
    );
    run(Command::new("runuser")
        .args(["-u", "postgres", "--", "bash", "-c"])
        .arg(format!(
            "{client} backup-push --pg-basebackup {} -- -h 127.0.0.1 -U postgres -p {}",
            pg.tool("pg_basebackup").display(),
            source.port
        )))
    .unwrap();
    source.pgbench(&["-c", "2", "-t", "300", "-n"]);
    source.psql("INSERT INTO marker VALUES ('after the backup')");
    source.archive_current();
    let expected = pgbench_checksum(&source);
    let mut restored = PgCluster::from_shell(pg, &format!("{client} restore --pgdata \"$PGDATA\""));
    restored.append_conf("archive_mode = off");
    restored.start();
    restored.wait_recovered();
    assert_eq!(pgbench_checksum(&restored), expected);
}

#[test]
fn archive_and_recover_with_curl_on_the_postgres_catalog() {
    let mut catalog_pg = PgCluster::init(&[]);
    catalog_pg.start();
    catalog_pg.psql("CREATE DATABASE walgate");
    let dir = gateway_dir();
    let url = catalog_pg.url("walgate");
    let gateway = Gateway::start(&dir.path().join("data"), &["--catalog-url", &url]);
    archive_and_recover(&gateway, Tool::Curl);
    let rows = catalog_pg.psql_in(
        "walgate",
        "SELECT count(*) FROM wal_files WHERE cluster = 'main'",
    );
    assert!(rows.parse::<u32>().unwrap() >= 5, "catalog rows: {rows}");
    assert!(
        !Path::new(&dir.path().join("data/catalog.db")).exists(),
        "SQLite was used"
    );
}

/// The WAL objects a storage target holds under `prefix`, by file name.
fn wal_names(keys: &[String]) -> Vec<String> {
    let mut names: Vec<String> = keys
        .iter()
        .filter_map(|k| {
            k.rsplit_once("/wal/")?
                .1
                .strip_suffix(".zst")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

/// Archive and recovery with the archive in a cloud bucket under a prefix: objects land
/// there, none in the local store, and the cluster records its target.
fn archive_and_recover_on(bucket: Bucket, tool: Tool) {
    let dir = gateway_dir();
    let config = write_config(dir.path(), "cloud", &[bucket.target("cloud", "")]);
    let gateway = Gateway::with_config(dir.path(), &config);
    archive_and_recover(&gateway, tool);
    let stored = wal_names(&bucket.keys("clusters/main/wal/"));
    assert!(stored.len() >= 5, "{stored:?}");
    assert!(!dir.path().join("data/objects").exists());
    let (_, cluster) = admin_get(&gateway, "/v1/clusters/main");
    assert_eq!(cluster["target"], "cloud");
}

/// S3 (moto), with the client.
#[test]
fn archive_and_recover_on_s3() {
    archive_and_recover_on(Bucket::s3(), Tool::Client);
}

/// Azure blob storage (Azurite), with the README's curl recipes.
#[test]
fn archive_and_recover_on_azure() {
    archive_and_recover_on(Bucket::azure(), Tool::Curl);
}

/// OpenStack Swift through its native API (TempAuth), with the client.
#[test]
fn archive_and_recover_on_swift() {
    archive_and_recover_on(Bucket::swift(), Tool::Client);
}

/// Google Cloud Storage (fake-gcs-server), with the README's curl recipes.
#[test]
fn archive_and_recover_on_gcs() {
    archive_and_recover_on(Bucket::gcs(), Tool::Curl);
}

/// The same Swift through its S3 API (s3api), with curl.
#[test]
fn archive_and_recover_on_swift_through_its_s3_api() {
    archive_and_recover_on(Bucket::swift_s3(), Tool::Curl);
}

fn admin_get(gateway: &Gateway, path: &str) -> (u16, serde_json::Value) {
    let admin = gateway.token("*", "admin");
    let response = gateway.get(path, Some(&admin));
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_slice(&body_bytes(response)).unwrap(),
    )
}

/// The restore recipe tells PostgreSQL "not archived" (exit 1) only for a 404, and
/// stops recovery (exit above 125) when the gateway cannot be asked or its answer is
/// cut short.
#[test]
fn restore_recipe_exit_codes() {
    let dir = gateway_dir();
    let mut gateway = Gateway::start(&dir.path().join("data"), &[]);
    let token = gateway.token("main", "restorer");
    let header = dir.path().join("header");
    write_token_header(&header, &token);
    let work = dir.path();
    let fetch = |gateway_url: &str, name: &str, header: &Path| {
        let recipe = curl_restore_command(gateway_url, "main", header)
            .replace("%%", "%")
            .replace("%p", "pg_wal/RECOVERYXLOG")
            .replace("%f", name);
        std::fs::create_dir_all(work.join("pg_wal")).unwrap();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(&recipe)
            .current_dir(work)
            .status()
            .unwrap();
        let leftovers: Vec<_> = std::fs::read_dir(work.join("pg_wal"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        (status.code().unwrap(), leftovers)
    };
    // Not archived: 1, and no file left behind.
    assert_eq!(
        fetch(&gateway.url, "000000010000000000000042", &header),
        (1, vec![])
    );
    assert_eq!(
        fetch(&gateway.url, "00000002.history", &header),
        (1, vec![])
    );
    // A token the gateway refuses is not "not archived": stop.
    let bad = dir.path().join("bad-header");
    write_token_header(&bad, "not-a-token");
    assert_eq!(fetch(&gateway.url, "000000010000000000000042", &bad).0, 200);
    // An answer of 200 cut short (a gateway dying mid-answer): stop, and no short file
    // takes the name (a history file has no size PostgreSQL could check).
    let cutter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cut_url = format!("http://{}", cutter.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        for stream in cutter.incoming().take(1) {
            let mut stream = stream.unwrap();
            let mut request = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut request);
            let _ = std::io::Write::write_all(
                &mut stream,
                b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n1\t0/3000158\tno",
            );
        }
    });
    let (code, leftovers) = fetch(&cut_url, "00000002.history", &header);
    server.join().unwrap();
    assert_eq!((code, leftovers), (200, vec![]));
    // No gateway at all: stop (after curl's retries give up).
    let url = gateway.url.clone();
    gateway.kill();
    let (code, leftovers) = fetch(&url, "000000010000000000000042", &header);
    assert!(code > 125, "exit {code}");
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
