//! End to end: PostgreSQL 15 archives WAL through the gateway with the README's curl
//! archive_command, and a second cluster recovers from it with the curl
//! restore_command; the restored tables must equal the source's, row for row.

use std::path::Path;
use std::time::Duration;

use walgate_tests::{
    Gateway, PgCluster, body_bytes, curl_archive_command, curl_restore_command, write_token_header,
};

/// A checksum of every pgbench table's rows, in a fixed order.
fn pgbench_checksum(pg: &PgCluster) -> String {
    pg.psql(
        "SELECT md5(string_agg(t, '|')) FROM (
           SELECT (SELECT md5(string_agg(a::text, ',' ORDER BY aid)) FROM pgbench_accounts a) AS t
           UNION ALL SELECT (SELECT md5(string_agg(b::text, ',' ORDER BY bid)) FROM pgbench_branches b)
           UNION ALL SELECT (SELECT md5(string_agg(t::text, ',' ORDER BY tid)) FROM pgbench_tellers t)
           UNION ALL SELECT (SELECT md5(string_agg(h::text, ',' ORDER BY h::text)) FROM pgbench_history h)
           UNION ALL SELECT (SELECT string_agg(note, ',') FROM marker)
         ) s",
    )
}

fn conf_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The segment file names PostgreSQL has marked archived.
fn done_segments(pg: &PgCluster) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(pg.pgdata.join("pg_wal/archive_status"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".done")
                .map(str::to_owned)
        })
        .filter(|n| n.len() == 24)
        .collect();
    names.sort();
    names
}

fn archive_and_recover(gateway: &Gateway) {
    let archiver = gateway.token("main", "archiver");
    let restorer = gateway.token("main", "restorer");

    let mut source = PgCluster::init(&[]);
    let header = source.dir.path().join("walgate-archiver");
    write_token_header(&header, &archiver);
    source.append_conf(&format!(
        "wal_level = replica\narchive_mode = on\nwal_keep_size = '2GB'\narchive_command = {}",
        conf_quote(&curl_archive_command(&gateway.url, "main", &header))
    ));
    source.start();
    source.pgbench(&["-i", "-s", "4", "-q"]);
    source.psql("CREATE TABLE marker (note text)");

    // A base backup without WAL: the restore needs the archive for all of it.
    let mut restored = PgCluster::from_basebackup(&source, &["-X", "none", "--checkpoint=fast"]);

    source.pgbench(&["-c", "4", "-j", "2", "-t", "1500", "-n"]);
    source.psql("INSERT INTO marker VALUES ('after the load')");
    let last = source.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    source.psql("SELECT pg_switch_wal()");
    source.wait_for(
        "the last segment to be archived",
        Duration::from_secs(120),
        || {
            let archived =
                source.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
            archived.len() == 24 && archived >= last
        },
    );
    assert_eq!(
        source.psql("SELECT failed_count FROM pg_stat_archiver"),
        "0",
        "{}",
        source.log()
    );

    // Every segment PostgreSQL marked done is fetchable and byte-identical.
    let done = done_segments(&source);
    assert!(
        done.len() >= 5,
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
    let header = restored.dir.path().join("walgate-restorer");
    write_token_header(&header, &restorer);
    restored.append_conf(&format!(
        "archive_mode = off\nrestore_command = {}",
        conf_quote(&curl_restore_command(&gateway.url, "main", &header))
    ));
    restored.touch("recovery.signal");
    restored.start();
    restored.wait_for("recovery to finish", Duration::from_secs(180), || {
        restored.psql("SELECT pg_is_in_recovery()") == "f"
    });
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
}

fn gateway_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("walgate-gw-")
        .tempdir()
        .unwrap()
}

#[test]
fn archive_and_recover_with_curl_on_the_sqlite_catalog() {
    let dir = gateway_dir();
    let gateway = Gateway::start(&dir.path().join("data"), &[]);
    archive_and_recover(&gateway);
}

#[test]
fn archive_and_recover_with_curl_on_the_postgres_catalog() {
    let mut catalog_pg = PgCluster::init(&[]);
    catalog_pg.start();
    catalog_pg.psql("CREATE DATABASE walgate");
    let dir = gateway_dir();
    let url = catalog_pg.url("walgate");
    let gateway = Gateway::start(&dir.path().join("data"), &["--catalog-url", &url]);
    archive_and_recover(&gateway);
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
