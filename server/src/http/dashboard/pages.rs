//! The dashboard's pages, as HTML. Every value is escaped by `maud`; nothing here reads
//! the catalog.

use maud::{DOCTYPE, Markup, html};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use walgate_core::api::{
    Cluster, Drill, DrillHistory, DrillStatus, RestorePlan, RetentionPlan, VerifyReport,
};
use walgate_core::units::human_bytes;

use super::chart;
use crate::auth::Caller;
use crate::catalog::{BackupRow, BackupStatus};
use crate::fleet::Status;
use crate::http::clusters::{FleetPage, FleetQuery, SORT_KEYS};
use crate::http::error::ApiError;
use crate::metrics::RecentError;
use crate::restore::TimelineSpan;

/// Days of WAL volume the cluster page charts.
pub const CHART_DAYS: i64 = 30;
/// Backups the cluster page charts, newest last.
const CHART_BACKUPS: usize = 30;

fn layout(title: &str, caller: Option<&Caller>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · walgate" }
                link rel="stylesheet" href="/assets/style.css";
                link rel="icon" href="/assets/icon.svg";
                script src="/assets/time.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "walgate" }
                    nav {
                        a href="/" { "Fleet" }
                        a href="/api" { "API" }
                        @if let Some(c) = caller {
                            span.who { "token " code { (c.token_id) } " · " (c.role.as_str()) }
                            form.inline method="post" action="/logout" {
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A moment as "5 min ago", with the exact time in a tooltip (and for the script that
/// keeps ages current).
fn when(at: Option<OffsetDateTime>, now: OffsetDateTime) -> Markup {
    match at {
        None => html! { span.muted { "never" } },
        Some(at) => {
            let exact = at.format(&Rfc3339).unwrap_or_default();
            html! { time datetime=(exact) title=(exact) { (ago(now - at)) } }
        }
    }
}

fn ago(d: time::Duration) -> String {
    let s = d.whole_seconds();
    match s {
        i64::MIN..0 => "just now".into(),
        0..120 => format!("{s} s ago"),
        120..7200 => format!("{} min ago", s / 60),
        7200..172_800 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

fn badge(status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (status) } }
}

fn date(at: OffsetDateTime) -> String {
    at.format(time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    ))
    .unwrap_or_default()
}

pub fn error(e: &ApiError) -> Markup {
    layout(
        "Error",
        None,
        html! {
            h1 { (e.status.as_u16()) " " (e.status.canonical_reason().unwrap_or("")) }
            p.error { (e.message) }
            p { a href="/" { "Back to the fleet" } }
        },
    )
}

pub fn login(next: &str, refused: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            section.login {
                h1 { "Sign in" }
                p { "Paste a walgate token (any role: a " code { "viewer" } " token is enough). "
                    "Issue one with " code { "walgate token issue --role viewer --cluster '*'" } "." }
                @if let Some(why) = refused {
                    p.error role="alert" { "That token was refused: " (why) }
                }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    label for="token" { "Token" }
                    input #token type="password" name="token" autocomplete="off" required autofocus;
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// Clusters per page of the fleet table, unless the query asks for more (up to
/// [`FLEET_PAGE_MAX`]).
pub const FLEET_PAGE: usize = 100;
pub const FLEET_PAGE_MAX: usize = 1000;

/// The query string for the fleet table with `q` changed by `f`.
fn fleet_link(q: &FleetQuery, f: impl FnOnce(&mut FleetQuery)) -> String {
    let mut q = q.clone();
    f(&mut q);
    format!("/?{}", serde_urlencoded::to_string(&q).unwrap_or_default())
}

/// Column headings of the fleet table with the sort key each orders by.
const COLUMNS: [(&str, Option<&str>); 10] = [
    ("Cluster", Some("name")),
    ("State", Some("state")),
    ("Last WAL", Some("last_wal")),
    ("Last backup", Some("last_backup")),
    ("Backup size", Some("backup_size")),
    ("Recovery window", Some("window")),
    ("Storage", Some("storage")),
    ("Last verify", Some("verified")),
    ("Proven restorable", None),
    ("Target", None),
];

pub fn fleet(caller: &Caller, q: &FleetQuery, page: &FleetPage) -> Markup {
    let now = OffsetDateTime::now_utc();
    let sort = q.sort.as_deref().unwrap_or(SORT_KEYS[0]);
    let total: usize = page.by_status.iter().sum();
    layout(
        "Fleet",
        Some(caller),
        html! {
            h1 { "Fleet" }
            nav.states aria-label="Filter by state" {
                a href=(fleet_link(q, |q| { q.status = None; q.offset = 0; })) class=[q.status.is_none().then_some("on")] {
                    "all " b { (total) }
                }
                @for (s, n) in Status::ALL.iter().zip(page.by_status) {
                    a href=(fleet_link(q, |q| { q.status = Some(s.as_str().into()); q.offset = 0; }))
                        class=[(q.status.as_deref() == Some(s.as_str())).then_some("on")]
                        data-state=(s.as_str()) {
                        (badge(s.as_str())) " " b { (n) }
                    }
                }
            }
            form.filter method="get" action="/" {
                input type="search" name="search" placeholder="Cluster name contains…"
                    value=(q.search.clone().unwrap_or_default());
                @if let Some(s) = &q.status { input type="hidden" name="status" value=(s); }
                @if let Some(s) = &q.sort { input type="hidden" name="sort" value=(s); }
                button type="submit" { "Filter" }
            }
            @if page.clusters.is_empty() && page.matched > 0 {
                p.muted { "This page is past the last of " (page.matched) " clusters: "
                    a href=(fleet_link(q, |q| q.offset = 0)) { "go to the first page" } "." }
            } @else if page.clusters.is_empty() {
                p.muted { "No cluster matches. Clusters appear with their first WAL push or when an admin registers one." }
            } @else {
                table.fleet {
                    thead { tr {
                        @for (title, key) in COLUMNS {
                            th {
                                @if let Some(key) = key {
                                    @let on = key == sort;
                                    a href=(fleet_link(q, |q| { q.sort = Some(key.into()); q.desc = on && !q.desc; q.offset = 0; }))
                                        class=[on.then_some("sorted")] {
                                        (title) @if on { @if q.desc { " ▼" } @else { " ▲" } }
                                    }
                                } @else { (title) }
                            }
                        }
                    } }
                    tbody {
                        @for c in &page.clusters {
                            tr data-cluster=(c.name) data-state=(c.status) {
                                td { a href={ "/clusters/" (c.name) } { (c.name) } }
                                td {
                                    (badge(&c.status))
                                    @if !c.status_reasons.is_empty() {
                                        div.reasons { (c.status_reasons.join("; ")) }
                                    }
                                }
                                td { (when(c.last_archived_at, now)) }
                                td { (when(c.last_backup_at, now)) }
                                td.num { (c.last_backup_stored_bytes.map(human_bytes).unwrap_or_default()) }
                                td { @match c.recovery_window_start {
                                    Some(at) => { "since " (when(Some(at), now)) },
                                    None => span.muted { "none" },
                                } }
                                td.num { (human_bytes(c.storage_bytes)) }
                                td { (verified(c, now)) }
                                td.proven { (proven(c, now)) }
                                td { (c.target) }
                            }
                        }
                    }
                }
                (pager(q, page))
            }
        },
    )
}

/// Which clusters of those matched the page shows, and links to the pages around it.
fn pager(q: &FleetQuery, page: &FleetPage) -> Markup {
    let step = q.limit.unwrap_or(FLEET_PAGE);
    // The offset is the visitor's: any number.
    let first = q.offset.saturating_add(1);
    let last = q.offset.saturating_add(page.clusters.len());
    html! {
        nav.pager aria-label="Pages" {
            @if q.offset > 0 {
                a rel="prev" href=(fleet_link(q, |q| q.offset = q.offset.saturating_sub(step))) { "← Previous" }
                " "
            }
            span.muted { "Clusters " (first) "–" (last) " of " (page.matched) }
            @if last < page.matched {
                " "
                a rel="next" href=(fleet_link(q, |q| q.offset = last)) { "Next →" }
            }
        }
    }
}

fn verified(c: &Cluster, now: OffsetDateTime) -> Markup {
    html! {
        @match c.verify_problems {
            None => span.muted { "never" },
            Some(0) => { (when(c.last_verified_at, now)) " · ok" },
            Some(n) => { (when(c.last_verified_at, now)) " · " span.bad { (n) " problem(s)" } },
        }
    }
}

/// What the newest successful restore drill proved: "up to <time> (restore took …)".
fn proven(c: &Cluster, now: OffsetDateTime) -> Markup {
    let failed = c
        .last_drill
        .as_ref()
        .is_some_and(|d| d.status == DrillStatus::Failed);
    html! {
        @match &c.last_ok_drill {
            Some(d) => {
                "up to " (when(d.outcome.restorable_to.or(d.finished_at), now))
                " (restore took " (seconds(drill_seconds(d))) ")"
            },
            None => span.muted { "never" },
        }
        @if failed { " · " span.bad { "last drill failed" } }
    }
}

/// A drill's restore and replay: the recovery time it measured.
fn drill_seconds(d: &Drill) -> f64 {
    d.outcome.restore_seconds.unwrap_or(0.0) + d.outcome.replay_seconds.unwrap_or(0.0)
}

fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.1} s")
    } else {
        took(time::Duration::seconds_f64(s))
    }
}

fn drills(cluster: &str, v: &ClusterView) -> Markup {
    let h = &v.drills;
    let now = v.now;
    html! {
        section #drills {
            h2 { "Restore drills" }
            p {
                @match h.interval_hours {
                    0 => "No scheduled drills",
                    n if n % 24 == 0 => { "A drill every " (n / 24) " day(s)" },
                    n => { "A drill every " (n) " hour(s)" },
                }
                @if let Some(c) = &h.check { ", checking " code { (c.sql) } " ≥ " (c.min) " in " code { (c.database) } }
                ". "
                @match &h.last_ok {
                    Some(d) => { "Proven restorable up to " (when(d.outcome.restorable_to.or(d.finished_at), now))
                        @if let Some(lsn) = &d.outcome.lsn { " (LSN " code { (lsn) } ")" }
                        "; the restore took " (seconds(drill_seconds(d))) "." },
                    None => span.muted { "Never proven restorable by a drill." },
                }
            }
            form.inline method="post" action={ "/clusters/" (cluster) "/drill" } {
                button type="submit" { "Drill now" }
                @if let Some(at) = h.requested_at { " " span.muted { "asked for " (when(Some(at), now)) } }
            }
            @if !h.drills.is_empty() {
                table.drills {
                    thead { tr { th { "Started" } th { "Result" } th { "Runner" } th { "Backup" }
                        th { "Reached" } th { "Restore" } th { "Replay" } th { "Why" } } }
                    tbody {
                        @for d in &h.drills {
                            tr data-status=(d.status.as_str()) {
                                td { (when(Some(d.started_at), now)) }
                                td { span class={ "badge " (match d.status {
                                    DrillStatus::Ok => "ok",
                                    DrillStatus::Failed => "failing",
                                    DrillStatus::Running | DrillStatus::Skipped => "late",
                                }) } { (d.status.as_str()) } }
                                td { (d.runner) }
                                td { @if let Some(b) = &d.outcome.backup { a href={ "#backup-" (b) } { code { (b) } } } }
                                td { @if let Some(lsn) = &d.outcome.lsn { code { (lsn) } } }
                                td.num { @if let Some(s) = d.outcome.restore_seconds { (seconds(s)) } }
                                td.num { @if let Some(s) = d.outcome.replay_seconds { (seconds(s)) } }
                                td { @if let Some(r) = &d.outcome.reason { span.reasons { (r) } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Everything the cluster page shows, gathered by the handler.
pub struct ClusterView {
    pub summary: Cluster,
    /// Newest first.
    pub backups: Vec<BackupRow>,
    pub volume: Vec<(time::Date, u64, u64)>,
    pub timelines: Vec<TimelineSpan>,
    pub chain_problems: Vec<String>,
    /// Forks in the archive, and why a restore without a timeline takes the one it takes.
    pub forks: Vec<String>,
    pub fork_note: Option<String>,
    pub retention: RetentionPlan,
    /// The cluster's target's Object Lock, in words, when it is write-once.
    pub object_lock: Option<String>,
    pub next_retention: Option<OffsetDateTime>,
    pub verification: Option<VerifyReport>,
    pub next_verify: Option<OffsetDateTime>,
    pub errors: Vec<RecentError>,
    pub drills: DrillHistory,
    /// The restore helper's input and its answer.
    pub restore: Option<(String, Result<RestorePlan, ApiError>)>,
    pub now: OffsetDateTime,
}

pub fn cluster(caller: &Caller, v: &ClusterView) -> Markup {
    let c = &v.summary;
    let now = v.now;
    layout(
        &c.name,
        Some(caller),
        html! {
            h1 { (c.name) " " (badge(&c.status)) }
            @if !c.status_reasons.is_empty() {
                ul.reasons { @for r in &c.status_reasons { li { (r) } } }
            }
            dl.facts {
                dt { "Last WAL" } dd { (when(c.last_archived_at, now)) @if let Some(w) = &c.last_wal { " · " code { (w) } } }
                dt { "WAL kept" } dd { (c.wal_files) " files · " (human_bytes(c.wal_bytes)) }
                dt { "Last backup" } dd { (when(c.last_backup_at, now))
                    @if let Some(b) = c.last_backup_stored_bytes { " · " (human_bytes(b)) } }
                dt { "Recovery window" } dd { @match c.recovery_window_start {
                    Some(at) => { "from " (date(at)) " to the last WAL" },
                    None => span.muted { "none: no complete backup" },
                } }
                dt { "Storage" } dd { (human_bytes(c.storage_bytes)) " on target " code { (c.target) }
                    @if let Some(lock) = &v.object_lock { span #object-lock { " · write-once (S3 Object Lock): " (lock) } } }
                dt { "Database" } dd {
                    @if let Some(v) = c.pg_version { "PostgreSQL " (v) " · " }
                    "system identifier " (c.system_identifier.as_deref().unwrap_or("not pinned yet"))
                }
                dt { "Thresholds" } dd { @match &c.thresholds {
                    Some(t) => { "archive lag " (t.archive_lag_seconds.map_or("fleet".into(), |s| format!("{s} s")))
                        " · backup age " (t.backup_age_seconds.map_or("fleet".into(), |s| format!("{s} s"))) },
                    None => "the gateway's",
                } }
            }
            section.charts {
                div { h2 { "WAL volume per day" } (chart::bars(&volume_points(v), human_bytes)) }
                div { h2 { "Backup sizes" } (chart::bars(&backup_points(&v.backups), human_bytes)) }
            }
            (backups(&v.backups, now))
            (timelines(v))
            (retention(v))
            (verification(&c.name, v))
            (drills(&c.name, v))
            (errors(&v.errors, now))
            (restore_helper(v))
        },
    )
}

/// One point per day of the chart's span, zero where nothing was archived.
fn volume_points(v: &ClusterView) -> Vec<(String, u64)> {
    let today = v.now.date();
    (0..CHART_DAYS)
        .rev()
        .map(|back| {
            let day = today - time::Duration::days(back);
            let bytes = v
                .volume
                .iter()
                .find(|(d, _, _)| *d == day)
                .map_or(0, |(_, _, b)| *b);
            (day.to_string(), bytes)
        })
        .collect()
}

fn backup_points(backups: &[BackupRow]) -> Vec<(String, u64)> {
    let mut points: Vec<_> = backups
        .iter()
        .filter(|b| b.status == BackupStatus::Complete)
        .take(CHART_BACKUPS)
        .map(|b| (date(b.started_at), b.stored_size))
        .collect();
    points.reverse();
    points
}

fn backups(backups: &[BackupRow], now: OffsetDateTime) -> Markup {
    html! {
        section #backups {
            h2 { "Backups" }
            @if backups.is_empty() {
                p.muted { "None yet. Take one with " code { "pg_basebackup -D - -Ft -X fetch | curl -T - …/backups" } "." }
            } @else {
                table { thead { tr { th { "Id" } th { "Kind" } th { "Status" } th { "Started" } th { "Took" } th { "Size" } th { "Stored" } th { "WAL from" } } }
                tbody { @for b in backups {
                    tr id=(format!("backup-{}", b.id)) {
                        td { code { (b.id) } }
                        td.kind { @match &b.parent {
                            None => "full",
                            // A chain reads from each incremental back to its full backup.
                            Some(p) => { "incremental on " a href=(format!("#backup-{p}")) { code { (p) } } },
                        } }
                        td { (badge(b.status.as_str())) }
                        td { (when(Some(b.started_at), now)) }
                        td { @if let Some(f) = b.finished_at { (took(f - b.started_at)) } }
                        td.num { (human_bytes(b.size)) }
                        td.num { (human_bytes(b.stored_size)) }
                        td { code { (b.start_lsn) } " on timeline " (b.start_timeline.0) }
                    }
                } } }
            }
        }
    }
}

fn took(d: time::Duration) -> String {
    let s = d.whole_seconds().max(0);
    if s < 120 {
        format!("{s} s")
    } else {
        format!("{} min", s / 60)
    }
}

fn timelines(v: &ClusterView) -> Markup {
    html! {
        section #timelines {
            h2 { "WAL timeline" }
            @if v.timelines.is_empty() {
                p.muted { "No WAL segment archived yet." }
            } @else {
                table { thead { tr { th { "Timeline" } th { "First segment" } th { "Last segment" } th { "Segments" } th { "Gaps" } } }
                tbody { @for t in &v.timelines {
                    tr class=[(!t.gaps.is_empty()).then_some("gap")] {
                        td { (t.timeline.0) }
                        td { code { (t.first) } }
                        td { code { (t.last) } }
                        td.num { (t.segments) }
                        td { @if t.gaps.is_empty() { span.muted { "none" } } @else {
                            ul.gaps { @for (from, to) in &t.gaps {
                                li { "missing " code { (from) } @if from != to { " … " code { (to) } } }
                            } }
                        } }
                    }
                } } }
            }
            @if !v.chain_problems.is_empty() {
                p.bad { "Restores are affected:" }
                ul.problems { @for p in &v.chain_problems { li { (p) } } }
            }
            @if !v.forks.is_empty() {
                div #forks {
                    p.bad { "The archive has forked: one branch is dead (a restored copy that archived, or an old primary that kept running after a failover)." }
                    ul.problems { @for f in &v.forks { li { (f) } } }
                    @if let Some(note) = &v.fork_note { p { "Restore plans: " (note) "." } }
                }
            }
        }
    }
}

fn retention(v: &ClusterView) -> Markup {
    let r = &v.retention;
    let p = &r.policy;
    html! {
        section #retention {
            h2 { "Retention" }
            p {
                (match r.policy_source.as_str() {
                    "cluster" => "This cluster's own policy: ",
                    "fleet" => "The gateway's default policy: ",
                    _ => "No policy is set: ",
                })
                @if p.keep_last.is_none() && p.window_days.is_none() { "keep everything" } @else {
                    @if let Some(n) = p.keep_last { "keep the last " (n) " backups " }
                    @if let Some(d) = p.window_days { "keep a " (d) "-day recovery window " }
                    "(at least " (p.min_backups) " backups)"
                }
            }
            p {
                "A run now would delete " (r.delete_backups.len()) " backup(s) and "
                (r.delete_wal_files) " WAL file(s), " (human_bytes(r.delete_bytes)) "."
            }
            @if let Some(why) = &r.paused {
                p.error #retention-paused { "Paused: " (why) }
            }
            @for b in &r.locked {
                p #retention-locked { "Backup " code { (b.id) } " is expired but locked "
                    @match b.retain_until { Some(t) => { "until " (date(t)) }, None => "by a legal hold" }
                    ": it stays, with its WAL, until then." }
            }
            @if r.failing_deletions > 0 {
                div #deletion-failures {
                    p.error {
                        (r.failing_deletions) " object(s) could not be deleted; every run tries them again, and the rest of retention goes on without them."
                        @if r.failing_deletions > r.failures.len() as u64 { " The oldest " (r.failures.len()) ":" }
                    }
                    table { thead { tr { th { "Object" } th { "Failing since" } th { "Attempts" } th { "The store's last answer" } } }
                        tbody { @for f in &r.failures {
                            tr { td { code { (f.object) } } td { (date(f.first_failed_at)) } td { (f.attempts) } td { (f.error) } }
                        } }
                    }
                }
            }
            p { (next_run("retention", v.next_retention, v.now)) }
        }
    }
}

fn next_run(job: &str, next: Option<OffsetDateTime>, now: OffsetDateTime) -> Markup {
    html! {
        @match next {
            Some(at) if at <= now => { "The next scheduled " (job) " is due now." },
            Some(at) => { "The next scheduled " (job) " starts about " (date(at)) "." },
            None => { "Scheduled " (job) " is off on this gateway." },
        }
    }
}

fn verification(cluster: &str, v: &ClusterView) -> Markup {
    let now = v.now;
    html! {
        section #verification {
            h2 { "Verification" }
            @match &v.verification {
                None => p.muted { "Never verified. " code { "GET /v1/clusters/" (cluster) "/verify" }
                    " checks the WAL chain (add " code { "?scrub=true" } " to re-read every object)." },
                Some(r) => {
                    p { (when(Some(r.verified_at), now)) ": "
                        @if r.ok { span.good { "no problems" } } @else { span.bad { "problems found" } }
                        @if r.scrubbed { " · " (r.objects_checked) " objects re-read" } }
                    ul.problems { @for p in r.chain_problems.iter().chain(&r.forks).chain(&r.object_problems) { li { (p) } } }
                }
            }
            p { (next_run("verification", v.next_verify, now)) }
        }
    }
}

fn errors(errors: &[RecentError], now: OffsetDateTime) -> Markup {
    html! {
        section #errors {
            h2 { "Recent errors" }
            @if errors.is_empty() {
                p.muted { "None since this gateway started." }
            } @else {
                table { thead { tr { th { "When" } th { "Request" } th { "Status" } th { "Error" } } }
                tbody { @for e in errors {
                    tr {
                        td { (when(Some(e.at), now)) }
                        td { code { (e.request) } }
                        td { (e.status) }
                        td { code { (e.error.error) } " " (e.error.message) }
                    }
                } } }
            }
        }
    }
}

fn restore_helper(v: &ClusterView) -> Markup {
    let c = &v.summary;
    let input = v
        .restore
        .as_ref()
        .map(|(at, _)| at.clone())
        .unwrap_or_default();
    html! {
        section #restore {
            h2 { "Restore to a point in time" }
            form.inline method="get" action={ "/clusters/" (c.name) "#restore" } {
                label for="restore_at" { "Target time (as " code { "select now()" } " prints it; without a zone, UTC; empty for the latest)" }
                input #restore_at type="text" size="32" name="restore_at" value=(input)
                    placeholder="2026-12-03 06:09:39.724081+00";
                button type="submit" { "Plan" }
            }
            @match &v.restore {
                None => {},
                Some((_, Err(e))) => p.error role="alert" { (e.message) },
                Some((_, Ok(plan))) => (restore_plan(plan)),
            }
        }
    }
}

fn restore_plan(plan: &RestorePlan) -> Markup {
    let header = walgate_core::recipe::AUTH_HEADER_FILE;
    let commands = format!(
        "# On the host to restore to, as the postgres user, with a restorer token in {header}\n\
         # and PGDATA exported (an empty or missing directory):\n\
         bash -euo pipefail <<'RESTORE'\n\
         {}\n\
         RESTORE\n\
         # For a restore drill beside production, also (or it archives into the cluster):\n\
         # echo \"archive_mode = off\" >> \"$PGDATA/postgresql.auto.conf\"\n\
         pg_ctl -D \"$PGDATA\" start\n",
        plan.commands.join("\n")
    );
    html! {
        p.good { "Reachable: backup " code { (plan.backup.id) } ", then " (plan.segments) " WAL segment(s) from "
            code { (plan.first_wal) } " to " code { (plan.last_wal) } " on timeline " (plan.target_timeline) "." }
        @if plan.chain.len() > 1 {
            p { "An incremental backup: the restore combines " (plan.chain.len()) " backups with "
                code { "pg_combinebackup" } ", full first: "
                @for (i, link) in plan.chain.iter().enumerate() { @if i > 0 { " → " } code { (link.id) } } "." }
        }
        @for n in &plan.notes { p.muted { (n) } }
        pre.commands { code { (commands) } }
    }
}

pub fn explorer() -> Markup {
    layout(
        "API explorer",
        None,
        html! {
            h1 { "API explorer" }
            p { "Every route of " a href="/openapi.json" { "/openapi.json" }
                ". Requests are sent from this page with the token below (kept in this tab only)." }
            form #explorer-token.inline {
                label for="api-token" { "Bearer token" }
                input #api-token type="password" autocomplete="off";
            }
            div #operations { p.muted { "Loading the OpenAPI document…" } }
            script src="/assets/explorer.js" defer {}
        },
    )
}
