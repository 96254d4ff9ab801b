//! `/v1/clusters/{cluster}/restore-plan`: what a point-in-time recovery needs.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use walgate_core::api::{ChainLink, ErrorBody, ErrorCode, RestorePlan, Role, TimelineLeg};
use walgate_core::{ClusterName, Timeline, WalFileName, recipe};

use super::AppState;
use super::error::ApiError;
use super::extract::{ClusterPath, QueryParams};
use super::forwarded::Origin;
use crate::auth::Caller;
use crate::restore::{self, Archive, Target};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(restore_plan))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PlanQuery {
    /// Recover to this time, with its zone: RFC 3339 (2026-11-27T06:45:00Z) or
    /// PostgreSQL's text as `select now()` prints it (2026-11-27 06:45:00.123456+00).
    pub target_time: Option<String>,
    /// Recover to this LSN (e.g. 0/3000060).
    pub target_lsn: Option<String>,
    /// Recover to this transaction id.
    pub target_xid: Option<u64>,
    /// Recover to this named restore point (`pg_create_restore_point`).
    pub target_name: Option<String>,
    /// Timeline to recover along: a number, or `latest` (the newest, as PostgreSQL
    /// means it). By default the newest, unless the archive has forked (a restored copy
    /// or an old primary archived a second branch): then the branch still receiving WAL.
    pub target_timeline: Option<String>,
}

fn target(q: &PlanQuery) -> Result<Target, ApiError> {
    let given = [
        q.target_time.is_some(),
        q.target_lsn.is_some(),
        q.target_xid.is_some(),
        q.target_name.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(ApiError::bad_request(
            "give at most one of target_time, target_lsn, target_xid, target_name",
        ));
    }
    Ok(if let Some(t) = &q.target_time {
        let t = walgate_core::timestamp::parse(t)
            .map_err(|e| ApiError::bad_request(format!("target_time {e}")))?;
        Target::Time(t)
    } else if let Some(l) = &q.target_lsn {
        Target::Lsn(
            l.parse().map_err(|e: walgate_core::lsn::LsnParseError| {
                ApiError::bad_request(e.to_string())
            })?,
        )
    } else if let Some(x) = q.target_xid {
        Target::Xid(x)
    } else if let Some(n) = &q.target_name {
        // PostgreSQL's names are at most 63 bytes; a control character would also end
        // a line of the settings (and of the plan's commands) early.
        if n.is_empty() || n.len() > 63 || n.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "target_name must be a restore point's name: 1 to 63 bytes, no control characters",
            ));
        }
        Target::Name(n.clone())
    } else {
        Target::Latest
    })
}

/// Reads what the planner needs, for a cluster that must exist.
async fn gather(state: &AppState, cluster: &ClusterName) -> Result<Archive, ApiError> {
    let row = state
        .services
        .catalog
        .cluster(cluster)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no cluster `{cluster}`")))?;
    Ok(restore::load(&state.services, &row).await?)
}

/// The gateway's URL as the client reached it, for commands to paste.
pub(super) fn gateway_url(origin: &Origin) -> String {
    let host = origin.host.as_deref().unwrap_or("GATEWAY:8432");
    format!("{}://{host}", origin.scheme)
}

/// The settings to write next to `recovery.signal`.
fn settings(
    origin: &Origin,
    cluster: &ClusterName,
    target: &Target,
    timeline: &str,
) -> BTreeMap<String, String> {
    let mut s = BTreeMap::new();
    s.insert(
        "restore_command".to_owned(),
        recipe::curl_restore_command(
            &gateway_url(origin),
            cluster.as_str(),
            recipe::AUTH_HEADER_FILE,
        ),
    );
    s.insert("recovery_target_timeline".to_owned(), timeline.to_owned());
    let target = match target {
        Target::Latest => None,
        // PostgreSQL's own timestamp syntax: its check of the setting refuses `T` and `Z`.
        Target::Time(t) => Some((
            "recovery_target_time",
            t.to_offset(time::UtcOffset::UTC)
                .format(time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]+00"
                ))
                .expect("a UTC time formats"),
        )),
        Target::Lsn(l) => Some(("recovery_target_lsn", l.to_string())),
        Target::Xid(x) => Some(("recovery_target_xid", x.to_string())),
        Target::Name(n) => Some(("recovery_target_name", n.clone())),
    };
    if let Some((key, value)) = target {
        s.insert(key.to_owned(), value);
        s.insert("recovery_target_action".to_owned(), "promote".to_owned());
    }
    s
}

/// Shell commands that restore `chain` into `$PGDATA` with curl (and, for a chain of
/// several backups, `pg_combinebackup`, without fsync: PostgreSQL syncs the data
/// directory as it starts recovery from a backup), then write `settings`.
fn commands(chain: &[ChainLink], settings: &BTreeMap<String, String>) -> Vec<String> {
    let download = |link: &ChainLink, dir: &str| {
        format!(
            "curl -sS --fail -H @{} {} | tar -x -C \"{dir}\"",
            recipe::AUTH_HEADER_FILE,
            link.archive_url
        )
    };
    let mut commands = vec![
        "mkdir -p -m 700 \"$PGDATA\"".to_owned(),
        "test -z \"$(ls -A \"$PGDATA\")\" || { echo \"$PGDATA is not empty: restore into an empty directory\" >&2; exit 1; }".to_owned(),
    ];
    if let [full] = chain {
        commands.push(download(full, "$PGDATA"));
    } else {
        // Each link is extracted beside the data directory, then combined into it.
        let dirs: Vec<String> = chain
            .iter()
            .map(|l| format!("${{PGDATA%/}}.chain/{}", l.id))
            .collect();
        let quoted: Vec<String> = dirs.iter().map(|d| format!("\"{d}\"")).collect();
        commands.push(format!("mkdir -p -m 700 {}", quoted.join(" ")));
        for (link, dir) in chain.iter().zip(&dirs) {
            commands.push(download(link, dir));
        }
        commands.push(format!(
            "\"${{PG_COMBINEBACKUP:-pg_combinebackup}}\" --no-sync -o \"$PGDATA\" {}",
            quoted.join(" ")
        ));
        commands.push("rm -rf \"${PGDATA%/}.chain\"".to_owned());
    }
    let mut conf = "cat >> \"$PGDATA/postgresql.auto.conf\" <<'EOF'\n".to_owned();
    for (key, value) in settings {
        conf += &format!("{key} = '{}'\n", value.replace('\'', "''"));
    }
    commands.push(conf + "EOF");
    commands.push("touch \"$PGDATA/recovery.signal\"".to_owned());
    commands
}

/// Plan a restore to the latest state or a point in time.
///
/// `422` when the archive cannot reach the target, with the reason: no backup before it,
/// a missing segment or history file, a target past the end of the archive.
#[utoipa::path(get, path = "/v1/clusters/{cluster}/restore-plan", tag = "backups",
    params(("cluster" = String, Path), PlanQuery),
    responses((status = 200, body = RestorePlan), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn restore_plan(
    State(state): State<AppState>,
    caller: Caller,
    ClusterPath(cluster): ClusterPath,
    QueryParams(q): QueryParams<PlanQuery>,
    Extension(origin): Extension<Origin>,
) -> Result<Json<RestorePlan>, ApiError> {
    caller.require(&cluster, Role::Viewer)?;
    let archive = gather(&state, &cluster).await?;
    Ok(Json(build(&archive, &origin, &cluster, &q)?))
}

/// The plan for `q` over `archive`, as the API and the dashboard's restore helper show
/// it.
pub(super) fn build(
    archive: &Archive,
    origin: &Origin,
    cluster: &ClusterName,
    q: &PlanQuery,
) -> Result<RestorePlan, ApiError> {
    let target = target(q)?;
    let timeline = match q.target_timeline.as_deref() {
        None => None,
        Some("latest") => Some(archive.latest_timeline()),
        Some(t) => Some(Timeline(t.parse().ok().filter(|&t| t > 0).ok_or_else(
            || ApiError::bad_request("target_timeline must be a timeline number or `latest`"),
        )?)),
    };
    let plan = restore::plan(archive, &target, timeline).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::NotReachable,
            e.to_string(),
        )
    })?;
    // PostgreSQL's `latest` would follow the newest history file, onto a dead branch
    // when the archive has forked: then recovery is told the chosen timeline.
    let timeline_setting = match &q.target_timeline {
        Some(t) => t.clone(),
        None if plan.pinned => plan.timeline.0.to_string(),
        None => "latest".to_owned(),
    };
    let url = gateway_url(origin);
    let chain: Vec<ChainLink> = plan
        .chain
        .iter()
        .map(|b| ChainLink {
            id: b.id.clone(),
            kind: b.kind(),
            archive_url: format!("{url}/v1/clusters/{cluster}/backups/{}/archive", b.id),
            size: b.size,
            stored_size: b.stored_size,
        })
        .collect();
    let recovery_settings = settings(origin, cluster, &target, &timeline_setting);
    Ok(RestorePlan {
        cluster: cluster.to_string(),
        commands: commands(&chain, &recovery_settings),
        chain,
        recovery_settings,
        backup: crate::backup::to_api(
            cluster,
            &plan.backup,
            &crate::backup::Chains::new(&archive.backups),
            Some(archive.segment_size),
        ),
        target_timeline: plan.timeline.0,
        timelines: plan
            .path
            .iter()
            .map(|l| TimelineLeg {
                timeline: l.timeline.0,
                begin_lsn: l.begin.to_string(),
                end_lsn: l.end.map(|e| e.to_string()),
            })
            .collect(),
        first_wal: plan.first_wal.to_string(),
        last_wal: plan.last_wal.to_string(),
        archive_end_wal: plan.archive_end.to_string(),
        segments: plan.segments,
        history_files: plan
            .history_files
            .iter()
            .map(WalFileName::to_string)
            .collect(),
        covered: true,
        notes: plan.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_point_names_cannot_break_out_of_a_setting() {
        let named = |n: &str| {
            target(&PlanQuery {
                target_name: Some(n.to_owned()),
                ..Default::default()
            })
        };
        assert_eq!(
            named("before-upgrade").unwrap(),
            Target::Name("before-upgrade".into())
        );
        for bad in ["", "x\nEOF\nrm -rf /", &"x".repeat(64)] {
            assert!(named(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_chain_is_extracted_beside_the_data_directory_then_combined_into_it() {
        let link = |id: &str, kind| ChainLink {
            id: id.into(),
            kind,
            archive_url: format!("http://gw/v1/clusters/main/backups/{id}/archive"),
            size: 0,
            stored_size: 0,
        };
        let chain = [
            link("f", walgate_core::api::BackupKind::Full),
            link("i", walgate_core::api::BackupKind::Incremental),
        ];
        let settings = BTreeMap::from([("restore_command".to_owned(), "it's".to_owned())]);
        let commands = commands(&chain, &settings);
        assert_eq!(
            commands[4],
            "curl -sS --fail -H @/etc/walgate/auth-header http://gw/v1/clusters/main/backups/i/archive \
             | tar -x -C \"${PGDATA%/}.chain/i\""
        );
        assert_eq!(
            commands[5],
            "\"${PG_COMBINEBACKUP:-pg_combinebackup}\" --no-sync -o \"$PGDATA\" \"${PGDATA%/}.chain/f\" \
             \"${PGDATA%/}.chain/i\""
        );
        assert_eq!(
            commands[7],
            "cat >> \"$PGDATA/postgresql.auto.conf\" <<'EOF'\nrestore_command = 'it''s'\nEOF"
        );
    }
}
