//! The README's recipes as the tests use them: the token header file curl reads, the
//! curl `archive_command` and `restore_command`, a cluster archiving with them, and the
//! `walgate-client` command line PostgreSQL runs.

use std::path::Path;

use crate::gateway::{Gateway, bin};
use crate::pg::{PgCluster, Postgres, conf_quote, write_pg_owned};

/// The `Authorization` header line, in a file for `curl -H @file`: the token stays out
/// of the process list.
pub fn write_token_header(path: &Path, token: &str) {
    write_pg_owned(path, &format!("Authorization: Bearer {token}\n"));
}

/// The README's archive_command recipe, for `cluster` on `gateway_url`.
pub fn curl_archive_command(gateway_url: &str, cluster: &str, header_file: &Path) -> String {
    walgate_core::recipe::curl_archive_command(
        gateway_url,
        cluster,
        &header_file.display().to_string(),
    )
}

/// A running cluster of `pg`'s major archiving as `main` into `gateway_url` with the
/// README's curl recipe and `token`; the header file it reads is `<dir>/auth-header`.
pub fn archiving_with_curl(pg: &Postgres, gateway_url: &str, token: &str) -> PgCluster {
    let mut pg = PgCluster::init_on(pg, &[]);
    let header = pg.dir.path().join("auth-header");
    write_token_header(&header, token);
    pg.append_conf(&format!(
        "wal_level = replica\narchive_mode = on\narchive_command = {}",
        conf_quote(&curl_archive_command(gateway_url, "main", &header))
    ));
    pg.start();
    pg
}

/// The README's restore by curl, as a new cluster of `pg`'s major: the backup `plan`
/// (a restore plan's JSON) names, extracted with `curl | tar`, then `extra_conf`, the
/// plan's `recovery_settings` (the header file they name replaced by one next to the
/// cluster, holding a restorer token) and `recovery.signal`; started, and recovered.
pub fn restore_plan(
    gateway: &Gateway,
    pg: &Postgres,
    plan: &serde_json::Value,
    extra_conf: &str,
) -> PgCluster {
    let restorer = gateway.token("main", "restorer");
    let mut copy = PgCluster::from_shell(
        pg,
        &format!(
            "curl -sS --fail -H 'Authorization: Bearer {restorer}' {}/v1/clusters/main/backups/{}/archive | tar -x -C \"$PGDATA\"",
            gateway.url,
            plan["backup"]["id"]
                .as_str()
                .expect("a plan names its backup")
        ),
    );
    let header = copy.dir.path().join("auth-header");
    write_token_header(&header, &restorer);
    let mut conf = format!("{extra_conf}\n");
    for (key, value) in plan["recovery_settings"]
        .as_object()
        .expect("recovery_settings")
    {
        let value = value.as_str().expect("a setting").replace(
            walgate_core::recipe::AUTH_HEADER_FILE,
            &header.display().to_string(),
        );
        conf += &format!("{key} = {}\n", conf_quote(&value));
    }
    copy.append_conf(&conf);
    copy.touch("recovery.signal");
    copy.start();
    copy.wait_recovered();
    copy
}

/// Restores by running a restore plan's own `commands`, with curl reading the token
/// from `header` and pg_combinebackup from `pg`'s binaries, as a new cluster; recovers
/// with `extra_conf` added and waits for promotion.
pub fn restore_by_commands(
    pg: &Postgres,
    plan: &serde_json::Value,
    header: &Path,
    extra_conf: &str,
) -> PgCluster {
    let commands: Vec<&str> = plan["commands"]
        .as_array()
        .expect("a plan lists its commands")
        .iter()
        .map(|c| c.as_str().expect("a command"))
        .collect();
    let script = format!(
        // PGDATA with a trailing slash, as people write it: a chain's links must
        // still be extracted beside it, not in it.
        "set -euo pipefail\nexport PG_COMBINEBACKUP={} PGDATA=\"$PGDATA/\"\n{}\n",
        pg.tool("pg_combinebackup").display(),
        commands.join("\n")
    )
    .replace(
        walgate_core::recipe::AUTH_HEADER_FILE,
        &header.display().to_string(),
    );
    let mut copy = PgCluster::from_shell(pg, &script);
    copy.append_conf(extra_conf);
    copy.start();
    copy.wait_recovered();
    copy
}

/// The README's restore_command recipe.
pub fn curl_restore_command(gateway_url: &str, cluster: &str, header_file: &Path) -> String {
    walgate_core::recipe::curl_restore_command(
        gateway_url,
        cluster,
        &header_file.display().to_string(),
    )
}

/// A `walgate-client` command line for PostgreSQL to run for cluster `main`, with its
/// token in a file next to `pg` and `flags` before the subcommand.
pub fn client_command(
    gateway_url: &str,
    pg: &PgCluster,
    token: &str,
    flags: &str,
    sub: &str,
) -> String {
    let file = pg.dir.path().join("walgate-token");
    write_pg_owned(&file, token);
    format!(
        "WALGATE_URL={gateway_url} WALGATE_CLUSTER=main WALGATE_TOKEN_FILE={} {} {flags} {sub}",
        file.display(),
        bin("walgate-client").display()
    )
}
