//! The gateway over HTTPS with a certificate from a private CA: PostgreSQL archives with
//! the curl recipe and recovers with the client, both trusting that CA; a renewed
//! certificate is picked up on SIGHUP.

use std::process::Command;
use std::time::Duration;

use walgate_tests::{
    Gateway, PgCluster, bin, client_command, conf_quote, curl_archive_command, gateway_dir,
    make_certificate, pgbench_checksum, poll_until, run, write_pg_owned, write_token_header,
};

/// `walgate-client check` against `gateway` trusting `ca`: its exit code and output.
fn check(
    gateway: &Gateway,
    token_file: &std::path::Path,
    ca: Option<&std::path::Path>,
) -> (i32, String) {
    let mut c = Command::new(bin("walgate-client"));
    c.env_clear()
        .env("WALGATE_URL", &gateway.url)
        .env("WALGATE_CLUSTER", "main")
        .env("WALGATE_TOKEN_FILE", token_file)
        .arg("check");
    if let Some(ca) = ca {
        c.env("WALGATE_CA_FILE", ca);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn archive_and_recover_over_https_and_reload_the_certificate() {
    let dir = gateway_dir();
    let (ca, cert, key) = make_certificate(dir.path(), "first");
    let gateway = Gateway::start_https(&dir.path().join("data"), &cert, &key, &ca);
    assert!(gateway.url.starts_with("https://"), "{}", gateway.url);
    let archiver = gateway.token("main", "archiver");
    let restorer = gateway.token("main", "restorer");

    // The curl recipe, trusting the CA through curl's own variable.
    let mut source = PgCluster::init(&[]);
    let ca_for_pg = source.dir.path().join("ca.pem");
    write_pg_owned(&ca_for_pg, &std::fs::read_to_string(&ca).unwrap());
    let header = source.dir.path().join("walgate-auth-header");
    write_token_header(&header, &archiver);
    source.append_conf(&format!(
        "wal_level = replica\narchive_mode = on\narchive_command = {}",
        conf_quote(&format!(
            "CURL_CA_BUNDLE={} {}",
            ca_for_pg.display(),
            curl_archive_command(&gateway.url, "main", &header)
        ))
    ));
    source.start();
    source.pgbench(&["-i", "-s", "2", "-q"]);
    source.psql("CREATE TABLE marker (note text)");
    let mut restored = PgCluster::from_basebackup(&source, &["-X", "none", "--checkpoint=fast"]);
    source.pgbench(&["-c", "2", "-t", "500", "-n"]);
    source.psql("INSERT INTO marker VALUES ('over https')");
    source.archive_current();
    let expected = pgbench_checksum(&source);

    // The client, trusting the CA with WALGATE_CA_FILE.
    let ca_for_restore = restored.dir.path().join("ca.pem");
    write_pg_owned(&ca_for_restore, &std::fs::read_to_string(&ca).unwrap());
    let flags = format!("--ca-file {}", ca_for_restore.display());
    restored.append_conf(&format!(
        "archive_mode = off\nrestore_command = {}",
        conf_quote(&client_command(
            &gateway.url,
            &restored,
            &restorer,
            &flags,
            "wal-fetch %f %p"
        ))
    ));
    restored.touch("recovery.signal");
    restored.start();
    restored.wait_recovered();
    assert_eq!(pgbench_checksum(&restored), expected);

    // Without the CA the client says why it cannot connect.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &archiver).unwrap();
    let (code, out) = check(&gateway, &token_file, None);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  gateway") && out.to_lowercase().contains("certificate"),
        "{out}"
    );
    assert_eq!(check(&gateway, &token_file, Some(&ca)).0, 0);

    // A renewed certificate from another CA, in place of the old files, then SIGHUP.
    let (new_ca, new_cert, new_key) = make_certificate(dir.path(), "second");
    std::fs::rename(&new_cert, &cert).unwrap();
    std::fs::rename(&new_key, &key).unwrap();
    let pid = gateway.pid().unwrap().to_string();
    run(Command::new("kill").args(["-HUP", &pid])).unwrap();
    let reloaded = poll_until(Duration::from_secs(60), || {
        check(&gateway, &token_file, Some(&new_ca)).0 == 0
    });
    assert!(reloaded, "not reloaded:\n{}", gateway.log());
    assert_eq!(
        check(&gateway, &token_file, Some(&ca)).0,
        1,
        "the old certificate is still served"
    );
    assert!(gateway.log().contains("TLS certificate reloaded"));
}
