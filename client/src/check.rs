//! `check`: is this host ready to archive? Each step says what is wrong in words.

use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;
use walgate_core::api::{Cluster, Role, TokenInfo};

use crate::config::{Flags, Settings};
use crate::gateway::Gateway;

#[derive(Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Serialize)]
struct Step {
    check: &'static str,
    status: Status,
    detail: String,
}

#[derive(Serialize)]
struct Report {
    ok: bool,
    checks: Vec<Step>,
}

impl Report {
    fn add(&mut self, check: &'static str, status: Status, detail: impl Into<String>) {
        self.ok &= status != Status::Fail;
        self.checks.push(Step {
            check,
            status,
            detail: detail.into(),
        });
    }
}

/// Runs every check it can; returns whether none failed.
pub fn run(flags: &Flags, pgdata: Option<&Path>, json: bool) -> anyhow::Result<bool> {
    let mut report = Report {
        ok: true,
        checks: vec![],
    };
    match flags.resolve() {
        Ok(settings) => {
            report.add(
                "configuration",
                Status::Ok,
                format!("gateway {}, cluster {}", settings.url, settings.cluster),
            );
            remote(&settings, &mut report);
        }
        Err(e) => report.add("configuration", Status::Fail, format!("{e:#}")),
    }
    if let Some(dir) = pgdata {
        local(dir, &mut report);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for step in &report.checks {
            let status = match step.status {
                Status::Ok => "ok  ",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            println!("{status}  {:<14} {}", step.check, step.detail);
        }
    }
    Ok(report.ok)
}

/// The gateway, the token and the cluster's archive, as the gateway sees them.
fn remote(settings: &Settings, report: &mut Report) {
    let gateway = match Gateway::new(settings) {
        Ok(g) => g.without_retries(),
        Err(e) => return report.add("gateway", Status::Fail, format!("{e:#}")),
    };
    if let Err(e) = gateway.health() {
        let hint = "is the gateway running, and WALGATE_URL right (http or https, host, port)?";
        return report.add("gateway", Status::Fail, format!("{e:#}; {hint}"));
    }
    report.add("gateway", Status::Ok, format!("{} answers", settings.url));

    let token: TokenInfo = match gateway.get_root_json("/v1/tokens/self") {
        Ok(t) => t,
        Err(e) => {
            let hint = "issue a new one with `walgate token issue --cluster NAME --role archiver`";
            return report.add("token", Status::Fail, format!("{e:#}; {hint}"));
        }
    };
    let cluster = settings.cluster.to_string();
    let covers = token.clusters.iter().any(|c| c == "*" || *c == cluster);
    let expires = token
        .expires_at
        .map_or("never expires".to_owned(), |t| format!("expires {t}"));
    let detail = format!(
        "role {} for {} ({expires})",
        token.role.as_str(),
        token.clusters.join(", ")
    );
    if !covers {
        report.add(
            "token",
            Status::Fail,
            format!("{detail}: it does not cover cluster {cluster}"),
        );
        return;
    }
    if token.role < Role::Archiver {
        report.add(
            "token",
            Status::Warn,
            format!("{detail}: it can restore but not archive (archive_command needs archiver)"),
        );
    } else {
        report.add("token", Status::Ok, detail);
    }

    match gateway.get_json::<Cluster>("") {
        Ok(c) => {
            let detail = match (&c.last_wal, c.last_archived_at) {
                (Some(wal), Some(at)) => {
                    let age = (OffsetDateTime::now_utc() - at).whole_seconds();
                    format!(
                        "{} files archived, the last {wal}, {age} s ago",
                        c.wal_files
                    )
                }
                _ => "nothing archived yet".to_owned(),
            };
            report.add("archive", Status::Ok, detail);
        }
        Err(e) if format!("{e}").contains(" 404 ") => report.add(
            "archive",
            Status::Warn,
            format!("cluster {cluster} has no archive yet: the first archived WAL file creates it"),
        ),
        Err(e) => report.add("archive", Status::Fail, format!("{e:#}")),
    }
}

/// The data directory's archiving backlog: files PostgreSQL has marked ready but not yet
/// archived.
fn local(pgdata: &Path, report: &mut Report) {
    let status = pgdata.join("pg_wal/archive_status");
    let entries = match std::fs::read_dir(&status) {
        Ok(e) => e,
        Err(e) => {
            return report.add(
                "backlog",
                Status::Fail,
                format!("cannot read {}: {e}", status.display()),
            );
        }
    };
    let mut ready: Vec<String> = entries
        .flatten()
        .filter_map(|e| Some(e.file_name().to_str()?.strip_suffix(".ready")?.to_owned()))
        .collect();
    ready.sort();
    match ready.first() {
        None => report.add("backlog", Status::Ok, "no WAL files wait for archiving"),
        Some(oldest) => report.add(
            "backlog",
            if ready.len() > 32 {
                Status::Warn
            } else {
                Status::Ok
            },
            format!(
                "{} WAL files wait for archiving, the oldest {oldest}",
                ready.len()
            ),
        ),
    }
}
