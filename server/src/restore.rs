//! Restore planning: for a recovery target, which backup to start from, which WAL it
//! needs on which timelines, whether the archive holds all of it, and the settings to
//! give PostgreSQL.
//!
//! The timeline rules follow PostgreSQL's own: the target timeline's history file lists
//! its ancestors and where each branched off; a segment is read from the newest timeline
//! on that path whose first segment is not after it (so the segment holding a switch
//! point comes from the new timeline); a backup is usable only if it started on that
//! path, before the path left its timeline.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;
use walgate_core::history::Branch;
use walgate_core::{Lsn, SegmentName, SegmentSize, Timeline, WalFileName};

use crate::Services;
use crate::archive::ArchiveError;
use crate::backup::Chains;
use crate::catalog::{BackupRow, BackupStatus, CatalogError, ClusterRow, WalFilter};
use walgate_core::{WalFileKind, history};

/// Why the archive could not be read for planning.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("{name}: {reason}")]
    BadHistory { name: WalFileName, reason: String },
}

/// Reads everything the planner needs from the catalog and, for history files, the store.
pub async fn load(services: &Services, cluster: &ClusterRow) -> Result<Archive, LoadError> {
    let name = &cluster.name;
    let mut files = BTreeSet::new();
    let mut arrivals: BTreeMap<Timeline, OffsetDateTime> = BTreeMap::new();
    let mut filter = WalFilter {
        limit: 10_000,
        ..Default::default()
    };
    loop {
        let page = services.catalog.list_wal(name, &filter).await?;
        filter.after = page.last().map(|r| r.name);
        let done = page.len() < filter.limit as usize;
        for row in page {
            if row.name.wal_segment().is_some() {
                let newest = arrivals
                    .entry(row.name.timeline())
                    .or_insert(row.archived_at);
                *newest = (*newest).max(row.archived_at);
            }
            files.insert(row.name);
        }
        if done {
            break;
        }
    }
    let mut histories = BTreeMap::new();
    for file in files.iter().filter(|f| f.kind() == WalFileKind::History) {
        let store = services
            .storage
            .get(&cluster.target)
            .map_err(ArchiveError::from)?;
        let text = crate::archive::read_text(store, name, file).await?;
        let branches =
            history::parse(&String::from_utf8_lossy(&text)).map_err(|e| LoadError::BadHistory {
                name: *file,
                reason: e.to_string(),
            })?;
        histories.insert(file.timeline(), branches);
    }
    Ok(Archive {
        segment_size: cluster.segment_size.unwrap_or(SegmentSize::DEFAULT),
        backups: services.catalog.backups(name).await?,
        files,
        histories,
        arrivals,
    })
}

/// What to recover to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The end of the archive.
    Latest,
    Time(OffsetDateTime),
    Lsn(Lsn),
    Xid(u64),
    Name(String),
}

/// Everything the planner reads, gathered from the catalog and the store.
#[derive(Debug, Clone)]
pub struct Archive {
    pub segment_size: SegmentSize,
    pub backups: Vec<BackupRow>,
    /// Every archived WAL file name.
    pub files: BTreeSet<WalFileName>,
    /// Parsed history files by timeline.
    pub histories: BTreeMap<Timeline, Vec<Branch>>,
    /// When each timeline's newest segment (or partial segment) arrived.
    pub arrivals: BTreeMap<Timeline, OffsetDateTime>,
}

/// A timeline that kept receiving WAL after a child timeline branched from it: one of
/// the two is a dead branch (a restore drill that archived, or an old primary that
/// kept running after a failover), and "the newest timeline" may be the dead one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fork {
    pub parent: Timeline,
    pub child: Timeline,
    /// Where the child branched off the parent.
    pub switch: Lsn,
    /// The parent's newest segment past the switch point.
    pub parent_last: SegmentName,
}

impl std::fmt::Display for Fork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "timeline {} kept receiving WAL after timeline {} branched from it at {} (up to {})",
            self.parent.0, self.child.0, self.switch, self.parent_last
        )
    }
}

/// Every fork in the archive: a child timeline whose parent has a whole segment ending
/// past the switch point. The segment holding the switch reaches the archive only as
/// the promoted server's `.partial`, so a whole one means the parent went on writing.
pub fn forks(archive: &Archive) -> Vec<Fork> {
    let size = archive.segment_size;
    // Each timeline's newest whole segment, in one pass: history files are the token
    // holder's to push, so the work must not be files × histories.
    let mut newest: BTreeMap<Timeline, SegmentName> = BTreeMap::new();
    for f in &archive.files {
        if let WalFileName::Segment(s) = f {
            let n = newest.entry(s.timeline).or_insert(*s);
            *n = (*n).max(*s);
        }
    }
    archive
        .histories
        .iter()
        .filter_map(|(&child, branches)| {
            let parent = branches.last()?;
            let parent_last = *newest.get(&parent.timeline)?;
            let ends_past_switch = parent_last
                .segment_no(size)
                .is_some_and(|n| (n + 1) * size.bytes() > parent.switch_lsn.0);
            if !ends_past_switch {
                return None;
            }
            Some(Fork {
                parent: parent.timeline,
                child,
                switch: parent.switch_lsn,
                parent_last,
            })
        })
        .collect()
}

/// The timeline a plan restores when none is asked for: the newest one, unless the
/// archive has forks; then the one whose WAL arrived last, which is still being written,
/// with a note that says why.
pub fn default_timeline(archive: &Archive) -> (Timeline, Option<String>) {
    let forks = forks(archive);
    let latest = archive.latest_timeline();
    if forks.is_empty() {
        return (latest, None);
    }
    let Some((&live, &at)) = archive
        .arrivals
        .iter()
        .max_by_key(|(timeline, at)| (**at, **timeline))
    else {
        return (latest, None);
    };
    let at = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let forks: Vec<String> = forks.iter().map(Fork::to_string).collect();
    let note = format!(
        "the archive has forked ({}): timeline {} is restored because its WAL arrived last ({at}); \
         ask for target_timeline=N to restore another branch",
        forks.join("; "),
        live.0
    );
    (live, Some(note))
}

/// One timeline of the recovery path and the LSN range read from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leg {
    pub timeline: Timeline,
    pub begin: Lsn,
    /// Where the next timeline branched off; `None` for the target timeline.
    pub end: Option<Lsn>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub backup: BackupRow,
    /// What a restore combines: the full backup first, `backup` last.
    pub chain: Vec<BackupRow>,
    pub timeline: Timeline,
    pub path: Vec<Leg>,
    /// First and last segment replay needs, with the timeline each is read from.
    pub first_wal: SegmentName,
    pub last_wal: SegmentName,
    /// The newest segment archived on the target timeline: past `last_wal` when a
    /// gap stops replay short of it.
    pub archive_end: SegmentName,
    pub segments: u64,
    pub history_files: Vec<WalFileName>,
    pub notes: Vec<String>,
    /// The timeline was chosen among forked branches: recovery must be told its number,
    /// since PostgreSQL's `latest` would follow the highest history file.
    pub pinned: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "cluster has no complete backup: take one first (pg_basebackup … | curl -T - …/backups)"
    )]
    NoBackups,
    #[error("timeline {0} is not in the archive (no history file {1})")]
    UnknownTimeline(Timeline, WalFileName),
    #[error(
        "no complete backup on the path to timeline {timeline} is consistent before the target{detail}"
    )]
    NoBackupBeforeTarget { timeline: Timeline, detail: String },
    #[error(
        "the archive has a gap: {missing} is not archived, so replay from backup {backup} cannot get past it"
    )]
    Gap {
        backup: String,
        missing: SegmentName,
    },
    #[error("the target LSN {target} is beyond the end of the archive (last segment {last})")]
    BeyondArchive { target: Lsn, last: SegmentName },
}

impl Archive {
    /// The newest timeline the archive knows (PostgreSQL's `latest`).
    pub fn latest_timeline(&self) -> Timeline {
        let from_files = self.files.iter().map(WalFileName::timeline).max();
        from_files
            .into_iter()
            .chain(self.histories.keys().copied())
            .max()
            .unwrap_or(Timeline(1))
    }

    /// The recovery path to `timeline`, oldest first.
    fn path(&self, timeline: Timeline) -> Result<Vec<Leg>, PlanError> {
        let ancestors: &[Branch] = match self.histories.get(&timeline) {
            Some(h) => h,
            None if timeline == Timeline(1) => &[],
            None => {
                return Err(PlanError::UnknownTimeline(
                    timeline,
                    WalFileName::History(timeline),
                ));
            }
        };
        let mut legs = Vec::new();
        let mut begin = Lsn(0);
        for b in ancestors {
            legs.push(Leg {
                timeline: b.timeline,
                begin,
                end: Some(b.switch_lsn),
            });
            begin = b.switch_lsn;
        }
        legs.push(Leg {
            timeline,
            begin,
            end: None,
        });
        Ok(legs)
    }

    fn segno(&self, lsn: Lsn) -> u64 {
        lsn.0 / self.segment_size.bytes()
    }

    /// The timeline segment `segno` is read from: the newest leg that starts at or
    /// before it.
    fn timeline_of(&self, path: &[Leg], segno: u64) -> Timeline {
        path.iter()
            .rev()
            .find(|l| self.segno(l.begin) <= segno)
            .map_or(path[0].timeline, |l| l.timeline)
    }

    fn has_segment(&self, path: &[Leg], segno: u64) -> bool {
        let name =
            SegmentName::from_segment_no(self.timeline_of(path, segno), segno, self.segment_size);
        self.files.contains(&WalFileName::Segment(name))
    }

    fn segment_name(&self, path: &[Leg], segno: u64) -> SegmentName {
        SegmentName::from_segment_no(self.timeline_of(path, segno), segno, self.segment_size)
    }
}

/// Whether recovery along `path` passes through backup `b` from start to end. A backup
/// that ran across a branch point ends on the old timeline past the switch, where
/// recovery along the new one never reads its end-of-backup record.
fn on_path(path: &[Leg], b: &BackupRow) -> bool {
    let starts = path.iter().any(|l| {
        l.timeline == b.start_timeline
            && b.start_lsn >= l.begin
            && l.end.is_none_or(|e| b.start_lsn < e)
    });
    let ends = match (b.end_timeline, b.end_lsn) {
        (Some(timeline), Some(end)) => path
            .iter()
            .any(|l| l.timeline == timeline && end >= l.begin && l.end.is_none_or(|e| end <= e)),
        // Without a manifest the end is unknown: the start decides.
        _ => true,
    };
    starts && ends
}

/// The most problems a chain check reports; the rest are counted. A token holder can
/// push WAL that leaves any number of gaps, and the report goes to every viewer.
pub const MAX_PROBLEMS: usize = 100;

/// What the WAL chain says about a cluster's complete backups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    /// What is wrong, in words: at most [`MAX_PROBLEMS`], then a count of the rest.
    pub problems: Vec<String>,
    /// Backups whose replay stops at a missing segment before the newest WAL archived
    /// on their path.
    pub broken: BTreeSet<String>,
    /// Backups whose WAL is archived, with no gap, from their start through their
    /// consistency point to the newest segment on their path: those a restore can use.
    pub replayable: BTreeSet<String>,
}

/// Each timeline's archived segment numbers, ascending.
fn segment_numbers(archive: &Archive) -> BTreeMap<Timeline, Vec<u64>> {
    let mut by_timeline: BTreeMap<Timeline, Vec<u64>> = BTreeMap::new();
    for f in &archive.files {
        if let WalFileName::Segment(s) = f
            && let Some(n) = s.segment_no(archive.segment_size)
        {
            by_timeline.entry(s.timeline).or_default().push(n);
        }
    }
    // `files` is ordered by timeline, then position: each list is ascending already.
    by_timeline
}

/// The segment numbers archived along `path`, each from the timeline recovery reads it
/// from (see [`Archive::timeline_of`]), ascending.
fn along(archive: &Archive, numbers: &BTreeMap<Timeline, Vec<u64>>, path: &[Leg]) -> Vec<u64> {
    // Leg i is read from its first segment up to the first segment of any later leg.
    let mut until = u64::MAX;
    let mut ranges = Vec::with_capacity(path.len());
    for leg in path.iter().rev() {
        let from = archive.segno(leg.begin).min(until);
        ranges.push((leg.timeline, from, until));
        until = from;
    }
    let mut out = Vec::new();
    for (timeline, from, until) in ranges.into_iter().rev() {
        if let Some(n) = numbers.get(&timeline) {
            let (a, b) = (
                n.partition_point(|&x| x < from),
                n.partition_point(|&x| x < until),
            );
            out.extend_from_slice(&n[a..b]);
        }
    }
    out
}

/// Runs of segment numbers missing from `present` (ascending) between `from` and its
/// last element, as first and last missing.
fn missing_runs(present: &[u64], from: u64) -> Vec<(u64, u64)> {
    let mut runs = Vec::new();
    let mut expected = from;
    for &n in &present[present.partition_point(|&x| x < from)..] {
        if n > expected {
            runs.push((expected, n - 1));
        }
        expected = n + 1;
    }
    runs
}

/// Checks the WAL chain: every timeline above 1 that has WAL needs its history file,
/// and from each complete backup, on every timeline whose path it lies on, every
/// segment up to the newest one archived on that path must be there. Work and report
/// grow with the runs of missing segments, not with their length.
pub fn check_chain(archive: &Archive) -> Chain {
    let mut chain = Chain::default();
    let mut problems = Vec::new();
    let mut timelines: BTreeSet<Timeline> =
        archive.files.iter().map(WalFileName::timeline).collect();
    timelines.extend(archive.histories.keys().copied());
    let numbers = segment_numbers(archive);
    let complete: Vec<&BackupRow> = archive
        .backups
        .iter()
        .filter(|b| b.status == BackupStatus::Complete)
        .collect();
    // An incremental whose chain lacks a link restores nothing, like replay stopped by
    // a gap.
    let chains = Chains::new(&archive.backups);
    let mut unchained = BTreeSet::new();
    for b in &complete {
        if let Err(link) = chains.of(b) {
            problems.push(format!(
                "{link}: a restore of backup {} cannot be built",
                b.id
            ));
            unchained.insert(b.id.clone());
        }
    }
    // Each run of missing segments (first and last, named) with the backups it stops.
    let mut gaps: BTreeMap<(SegmentName, SegmentName), BTreeSet<&str>> = BTreeMap::new();
    let mut more_gaps = 0usize;
    for &timeline in &timelines {
        let path = match archive.path(timeline) {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!("timeline {timeline} has WAL but {e}"));
                continue;
            }
        };
        let present = along(archive, &numbers, &path);
        let Some(&newest) = present.last() else {
            continue;
        };
        let mut on_path: Vec<&BackupRow> = complete
            .iter()
            .copied()
            .filter(|b| on_path(&path, b))
            .collect();
        on_path.sort_by_key(|b| b.start_lsn);
        let Some(first) = on_path.first() else {
            continue;
        };
        let runs = missing_runs(&present, archive.segno(first.start_lsn));
        // Replay from a start in the last run of present segments reaches the newest.
        let tail = runs.last().map_or(0, |&(_, last)| last + 1);
        for b in &on_path {
            let start = archive.segno(b.start_lsn);
            let consistent = b
                .end_lsn
                .map_or(start, |l| archive.segno(Lsn(l.0.saturating_sub(1))));
            if start < tail {
                chain.broken.insert(b.id.clone());
            } else if start <= newest && consistent <= newest {
                chain.replayable.insert(b.id.clone());
            }
        }
        for (first_missing, last_missing) in runs {
            // The backups starting before the run share it; one starting inside it
            // misses only its own part.
            let stopped = on_path
                .iter()
                .take_while(|b| archive.segno(b.start_lsn) <= last_missing);
            for b in stopped {
                let from = first_missing.max(archive.segno(b.start_lsn));
                let key = (
                    archive.segment_name(&path, from),
                    archive.segment_name(&path, last_missing),
                );
                let full = gaps.len() >= MAX_PROBLEMS;
                match gaps.entry(key) {
                    Entry::Occupied(mut backups) => {
                        backups.get_mut().insert(&b.id);
                    }
                    Entry::Vacant(_) if full => {
                        more_gaps += 1;
                        break;
                    }
                    Entry::Vacant(new) => {
                        new.insert(BTreeSet::from([b.id.as_str()]));
                    }
                }
            }
        }
    }
    chain.replayable.retain(|id| !unchained.contains(id));
    chain.broken.extend(unchained);
    for ((first, last), backups) in gaps {
        let ids = backups.into_iter().collect::<Vec<_>>().join(", ");
        problems.push(if first == last {
            format!("{first} is missing: replay from backup {ids} stops before it")
        } else {
            let count = last.segment_no(archive.segment_size).unwrap_or(0)
                - first.segment_no(archive.segment_size).unwrap_or(0)
                + 1;
            format!(
                "{first} to {last} ({count} segments) are missing: replay from backup {ids} stops before them"
            )
        });
    }
    let more = problems.len().saturating_sub(MAX_PROBLEMS) + more_gaps;
    problems.truncate(MAX_PROBLEMS);
    if more > 0 {
        problems.push(format!("… and {more} more missing runs or timelines"));
    }
    chain.problems = problems;
    chain
}

/// One timeline's archived segments, as the dashboard draws them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineSpan {
    pub timeline: Timeline,
    pub first: SegmentName,
    pub last: SegmentName,
    pub segments: u64,
    /// Runs of missing segments between `first` and `last`: first and last missing.
    pub gaps: Vec<(SegmentName, SegmentName)>,
}

/// Each timeline's segments from first to last archived, with the runs missing between.
pub fn timelines(archive: &Archive) -> Vec<TimelineSpan> {
    let size = archive.segment_size;
    segment_numbers(archive)
        .into_iter()
        .map(|(timeline, numbers)| {
            let name = |n| SegmentName::from_segment_no(timeline, n, size);
            let gaps = numbers
                .windows(2)
                .filter(|w| w[1] > w[0] + 1)
                .map(|w| (name(w[0] + 1), name(w[1] - 1)))
                .collect();
            TimelineSpan {
                timeline,
                first: name(numbers[0]),
                last: name(numbers[numbers.len() - 1]),
                segments: numbers.len() as u64,
                gaps,
            }
        })
        .collect()
}

/// Plans a recovery to `target` on `timeline` (default: [`default_timeline`]).
pub fn plan(
    archive: &Archive,
    target: &Target,
    timeline: Option<Timeline>,
) -> Result<Plan, PlanError> {
    let complete: Vec<&BackupRow> = archive
        .backups
        .iter()
        .filter(|b| b.status == BackupStatus::Complete)
        .collect();
    if complete.is_empty() {
        return Err(PlanError::NoBackups);
    }
    let mut notes = Vec::new();
    let mut pinned = false;
    let timeline = timeline.unwrap_or_else(|| {
        let (timeline, note) = default_timeline(archive);
        pinned = note.is_some();
        notes.extend(note);
        timeline
    });
    let path = archive.path(timeline)?;

    let consistent_before = |b: &BackupRow| match target {
        Target::Lsn(l) => b.end_lsn.unwrap_or(b.start_lsn) <= *l,
        Target::Time(t) => b.finished_at.is_some_and(|f| f <= *t),
        Target::Latest | Target::Xid(_) | Target::Name(_) => true,
    };
    let chains = Chains::new(&archive.backups);
    let (backup, chain) = complete
        .iter()
        .filter(|b| on_path(&path, b) && consistent_before(b))
        .filter_map(|&b| Some((b, chains.of(b).ok()?)))
        .max_by_key(|(b, _)| (b.start_lsn, b.id.clone()))
        .ok_or_else(|| PlanError::NoBackupBeforeTarget {
            timeline,
            detail: match target {
                Target::Lsn(l) => format!(" (LSN {l})"),
                Target::Time(t) => format!(" ({t})"),
                _ => String::new(),
            },
        })?;
    if matches!(target, Target::Xid(_) | Target::Name(_)) {
        notes.push(
            "the archive cannot tell where a transaction id or restore point lies: the newest backup \
             was chosen, and recovery fails if the target is older than it"
                .to_owned(),
        );
    }
    if backup.end_lsn.is_none() {
        notes.push(format!(
            "backup {} has no manifest: its consistency point is unknown, so the plan counts from its start",
            backup.id
        ));
    }

    // Replay needs every segment from the backup's start to the target (or the end of
    // the archive), each from the timeline PostgreSQL will read it from.
    let first = archive.segno(backup.start_lsn);
    let needed_until = backup
        .end_lsn
        .map(|l| archive.segno(Lsn(l.0.saturating_sub(1))))
        .unwrap_or(first);
    let mut last = first;
    while archive.has_segment(&path, last + 1) {
        last += 1;
    }
    if !archive.has_segment(&path, first) {
        return Err(PlanError::Gap {
            backup: backup.id.clone(),
            missing: archive.segment_name(&path, first),
        });
    }
    if last < needed_until {
        return Err(PlanError::Gap {
            backup: backup.id.clone(),
            missing: archive.segment_name(&path, last + 1),
        });
    }
    if let Target::Lsn(l) = target {
        let want = archive.segno(*l);
        if want > last {
            // A later segment may exist past a gap: name the gap rather than the end.
            let beyond = archive
                .files
                .iter()
                .filter_map(WalFileName::wal_segment)
                .any(|s| {
                    s.segment_no(archive.segment_size)
                        .is_some_and(|n| n > last + 1)
                });
            return Err(if beyond {
                PlanError::Gap {
                    backup: backup.id.clone(),
                    missing: archive.segment_name(&path, last + 1),
                }
            } else {
                PlanError::BeyondArchive {
                    target: *l,
                    last: archive.segment_name(&path, last),
                }
            });
        }
        last = want;
    }
    let last_wal = archive.segment_name(&path, last);
    let archive_end = archive
        .files
        .iter()
        .filter_map(|f| match f {
            WalFileName::Segment(s) if s.timeline == timeline => Some(*s),
            _ => None,
        })
        .max()
        .filter(|&end| end > last_wal)
        .unwrap_or(last_wal);
    if matches!(target, Target::Latest) && archive_end > last_wal {
        notes.push(format!(
            "the archive has a gap: {} is not archived, so replay stops at {last_wal} although \
             WAL up to {archive_end} is archived",
            archive.segment_name(&path, last + 1)
        ));
    }
    let history_files = path
        .iter()
        .filter(|l| l.timeline > Timeline(1))
        .map(|l| WalFileName::History(l.timeline))
        .filter(|h| archive.files.contains(h))
        .collect();
    Ok(Plan {
        backup: backup.clone(),
        chain: chain.into_iter().cloned().collect(),
        timeline,
        first_wal: archive.segment_name(&path, first),
        last_wal,
        archive_end,
        segments: last - first + 1,
        path,
        history_files,
        notes,
        pinned,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB16: u64 = 16 << 20;

    fn backup(id: &str, tli: u32, start: u64, end: u64, finished: i64) -> BackupRow {
        BackupRow::positioned(
            id,
            Timeline(tli),
            Lsn(start),
            Lsn(end),
            OffsetDateTime::from_unix_timestamp(finished).unwrap(),
        )
    }

    fn seg(tli: u32, segno: u64) -> WalFileName {
        WalFileName::Segment(SegmentName::from_segment_no(
            Timeline(tli),
            segno,
            SegmentSize::DEFAULT,
        ))
    }

    /// Timeline 1 has segments 2..=9; timeline 2 branched at 0/7000100 and has 7..=12.
    fn archive() -> Archive {
        let mut files: BTreeSet<_> = (2..=9).map(|n| seg(1, n)).collect();
        files.extend((7..=12).map(|n| seg(2, n)));
        files.insert(WalFileName::History(Timeline(2)));
        Archive {
            segment_size: SegmentSize::DEFAULT,
            backups: vec![
                backup("a", 1, 2 * MB16 + 0x28, 2 * MB16 + 0x100, 1000),
                backup("b", 1, 5 * MB16 + 0x28, 5 * MB16 + 0x100, 2000),
                // On timeline 1 after the branch: not on timeline 2's path.
                backup("c", 1, 8 * MB16 + 0x28, 8 * MB16 + 0x100, 3000),
                backup("d", 2, 10 * MB16 + 0x28, 10 * MB16 + 0x100, 4000),
            ],
            files,
            histories: BTreeMap::from([(
                Timeline(2),
                vec![Branch {
                    timeline: Timeline(1),
                    switch_lsn: Lsn(7 * MB16 + 0x100),
                }],
            )]),
            arrivals: BTreeMap::new(),
        }
    }

    /// `archive()` as a clean promotion leaves it: timeline 1 ends with the segment
    /// holding the switch, as the promoted server's `.partial`.
    fn promoted() -> Archive {
        let mut a = archive();
        a.files
            .retain(|f| f.timeline() != Timeline(1) || f < &seg(1, 7));
        a.files
            .insert(WalFileName::Partial(SegmentName::from_segment_no(
                Timeline(1),
                7,
                SegmentSize::DEFAULT,
            )));
        a.backups.retain(|b| b.id != "c");
        a
    }

    fn arrived(a: &mut Archive, tli: u32, secs: i64) {
        a.arrivals.insert(
            Timeline(tli),
            OffsetDateTime::from_unix_timestamp(secs).unwrap(),
        );
    }

    #[test]
    fn a_parent_written_past_the_switch_is_a_fork() {
        assert_eq!(
            forks(&archive()),
            [Fork {
                parent: Timeline(1),
                child: Timeline(2),
                switch: Lsn(7 * MB16 + 0x100),
                parent_last: seg(1, 9).wal_segment().unwrap(),
            }]
        );
        assert_eq!(
            forks(&archive())[0].to_string(),
            "timeline 1 kept receiving WAL after timeline 2 branched from it at 0/7000100 \
             (up to 000000010000000000000009)"
        );
        // The segment holding the switch, whole, is already past it.
        let mut a = promoted();
        assert_eq!(forks(&a), []);
        a.files.insert(seg(1, 7));
        assert_eq!(forks(&a).len(), 1);
    }

    #[test]
    fn plans_restore_the_branch_still_written_when_the_archive_forked() {
        // A drill branched timeline 2 off the past; production went on, on timeline 1.
        let mut a = archive();
        arrived(&mut a, 2, 1000);
        arrived(&mut a, 1, 2000);
        let p = plan(&a, &Target::Latest, None).unwrap();
        assert_eq!((p.backup.id.as_str(), p.timeline), ("c", Timeline(1)));
        assert!(p.pinned);
        assert_eq!(p.last_wal.to_string(), "000000010000000000000009");
        assert!(
            p.notes[0].contains("timeline 1 is restored"),
            "{:?}",
            p.notes
        );
        // Asked for, the other branch (PostgreSQL's `latest`) still plans.
        let p = plan(&a, &Target::Latest, Some(Timeline(2))).unwrap();
        assert_eq!((p.timeline, p.pinned), (Timeline(2), false));
        // An old primary that archived a little after a failover: the new one goes on.
        arrived(&mut a, 2, 3000);
        let p = plan(&a, &Target::Latest, None).unwrap();
        assert_eq!(p.timeline, Timeline(2));
        assert!(
            p.notes[0].contains("timeline 2 is restored"),
            "{:?}",
            p.notes
        );
        // No fork: the newest timeline, whatever arrived last, and no note.
        let mut a = promoted();
        arrived(&mut a, 1, 5000);
        arrived(&mut a, 2, 4000);
        let p = plan(&a, &Target::Latest, None).unwrap();
        assert_eq!(
            (p.timeline, p.notes.len(), p.pinned),
            (Timeline(2), 0, false)
        );
    }

    #[test]
    fn timelines_show_their_runs_of_missing_segments() {
        let mut a = archive();
        for (tli, n) in [(1, 4), (1, 5), (2, 11)] {
            a.files.remove(&seg(tli, n));
        }
        let spans = timelines(&a);
        let name = |f: WalFileName| f.segment().unwrap();
        assert_eq!(
            spans,
            [
                TimelineSpan {
                    timeline: Timeline(1),
                    first: name(seg(1, 2)),
                    last: name(seg(1, 9)),
                    segments: 6,
                    gaps: vec![(name(seg(1, 4)), name(seg(1, 5)))],
                },
                TimelineSpan {
                    timeline: Timeline(2),
                    first: name(seg(2, 7)),
                    last: name(seg(2, 12)),
                    segments: 5,
                    gaps: vec![(name(seg(2, 11)), name(seg(2, 11)))],
                },
            ]
        );
    }

    #[test]
    fn latest_follows_the_newest_timeline() {
        let p = plan(&archive(), &Target::Latest, None).unwrap();
        assert_eq!((p.backup.id.as_str(), p.timeline), ("d", Timeline(2)));
        assert_eq!(p.first_wal.to_string(), "00000002000000000000000A");
        assert_eq!(p.last_wal.to_string(), "00000002000000000000000C");
        assert_eq!(p.history_files, [WalFileName::History(Timeline(2))]);
    }

    #[test]
    fn an_lsn_on_the_old_part_of_the_path_uses_an_older_backup() {
        let target = Target::Lsn(Lsn(9 * MB16));
        let p = plan(&archive(), &target, None).unwrap();
        // c started on timeline 1 after the branch: not on the way to timeline 2.
        assert_eq!(p.backup.id, "b");
        assert_eq!(p.first_wal.to_string(), "000000010000000000000005");
        // The segment holding the switch point, and those after, come from timeline 2.
        assert_eq!(p.last_wal.to_string(), "000000020000000000000009");
        assert_eq!(p.segments, 5);
        assert_eq!(p.path.len(), 2);
    }

    #[test]
    fn a_backup_running_across_the_branch_point_is_only_on_the_old_timeline() {
        let mut a = archive();
        // Started on timeline 1 before the switch to 2, finished on 1 after it.
        a.backups
            .push(backup("e", 1, 6 * MB16 + 0x28, 7 * MB16 + 0x200, 2100));
        let target = Target::Lsn(Lsn(9 * MB16));
        assert_eq!(plan(&a, &target, None).unwrap().backup.id, "b");
        let just_after = Target::Lsn(Lsn(7 * MB16 + 0x300));
        assert_eq!(
            plan(&a, &just_after, Some(Timeline(1))).unwrap().backup.id,
            "e"
        );
        // Ending exactly at the switch point is still on the way to timeline 2.
        a.backups.last_mut().unwrap().end_lsn = Some(Lsn(7 * MB16 + 0x100));
        assert_eq!(plan(&a, &target, None).unwrap().backup.id, "e");
    }

    #[test]
    fn staying_on_timeline_1_can_use_the_backup_after_the_branch() {
        let p = plan(&archive(), &Target::Latest, Some(Timeline(1))).unwrap();
        assert_eq!(
            (p.backup.id.as_str(), p.last_wal.to_string().as_str()),
            ("c", "000000010000000000000009")
        );
    }

    #[test]
    fn time_targets_pick_the_newest_backup_finished_before() {
        let t = OffsetDateTime::from_unix_timestamp(2500).unwrap();
        assert_eq!(
            plan(&archive(), &Target::Time(t), None).unwrap().backup.id,
            "b"
        );
        let early = OffsetDateTime::from_unix_timestamp(500).unwrap();
        assert!(matches!(
            plan(&archive(), &Target::Time(early), None),
            Err(PlanError::NoBackupBeforeTarget { .. })
        ));
    }

    #[test]
    fn unreachable_targets_say_why() {
        let mut a = archive();
        assert!(matches!(
            plan(&a, &Target::Latest, Some(Timeline(3))),
            Err(PlanError::UnknownTimeline(..))
        ));
        assert!(matches!(
            plan(&a, &Target::Lsn(Lsn(20 * MB16)), None),
            Err(PlanError::BeyondArchive { .. })
        ));
        a.files.remove(&seg(2, 8));
        let err = plan(&a, &Target::Lsn(Lsn(9 * MB16)), None).unwrap_err();
        assert_eq!(
            err,
            PlanError::Gap {
                backup: "b".into(),
                missing: "000000020000000000000008".parse().unwrap()
            }
        );
        a.backups.clear();
        assert_eq!(plan(&a, &Target::Latest, None), Err(PlanError::NoBackups));
    }

    #[test]
    fn the_chain_check_names_gaps_and_missing_history_files() {
        let chain = check_chain(&archive());
        assert_eq!(chain.problems, Vec::<String>::new());
        assert!(chain.broken.is_empty());
        // c lies on timeline 1 only, the others on both.
        assert_eq!(
            chain.replayable.iter().collect::<Vec<_>>(),
            ["a", "b", "c", "d"]
        );

        let mut a = archive();
        a.files.remove(&seg(1, 4));
        a.files.remove(&seg(2, 11));
        let chain = check_chain(&a);
        assert_eq!(
            chain.problems,
            [
                "000000010000000000000004 is missing: replay from backup a stops before it",
                "00000002000000000000000B is missing: replay from backup a, b, d stops before it",
            ]
        );
        assert_eq!(chain.broken.iter().collect::<Vec<_>>(), ["a", "b", "d"]);
        assert_eq!(chain.replayable.iter().collect::<Vec<_>>(), ["b", "c"]);

        let mut a = archive();
        a.histories.clear();
        a.files.remove(&WalFileName::History(Timeline(2)));
        let problems = check_chain(&a).problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("no history file 00000002.history"),
            "{problems:?}"
        );
    }

    #[test]
    fn the_chain_check_works_on_runs_not_on_every_missing_segment() {
        // The last segment of the address space: a gap of about 2^40 segments.
        let last = u64::MAX / MB16;
        let mut a = archive();
        a.files.insert(seg(2, last));
        // Segment by segment, this would not finish.
        let chain = check_chain(&a);
        assert_eq!(
            chain.problems,
            [format!(
                "00000002000000000000000D to 00000002FFFFFFFF000000FE ({} segments) are \
                 missing: replay from backup a, b, d stops before them",
                last - 13
            )]
        );
        // A forged label there replays, but on timeline 2 the others no longer reach
        // the newest WAL (a and b still do on timeline 1).
        a.backups.push(backup(
            "far",
            2,
            last * MB16 + 0x28,
            last * MB16 + 0x100,
            5000,
        ));
        let chain = check_chain(&a);
        assert_eq!(chain.broken.iter().collect::<Vec<_>>(), ["a", "b", "d"]);
        assert_eq!(
            chain.replayable.iter().collect::<Vec<_>>(),
            ["a", "b", "c", "far"]
        );
        // A backup whose own WAL has not arrived is neither broken nor replayable.
        let mut a = archive();
        a.backups
            .push(backup("new", 2, 13 * MB16 + 0x28, 13 * MB16 + 0x100, 5000));
        let chain = check_chain(&a);
        assert!(!chain.broken.contains("new") && !chain.replayable.contains("new"));

        // Many runs: the report stops at MAX_PROBLEMS and counts the rest.
        let mut a = archive();
        for n in 0..500 {
            a.files.insert(seg(2, 20 + 2 * n));
        }
        let problems = check_chain(&a).problems;
        assert_eq!(problems.len(), MAX_PROBLEMS + 1);
        assert_eq!(
            problems.last().unwrap(),
            "… and 400 more missing runs or timelines"
        );
    }

    /// Timeline 1, segments 2 to 12: full backup f, then i1 on f and i2 on i1.
    fn chained() -> Archive {
        let mut backups = vec![
            backup("i2", 1, 8 * MB16 + 0x28, 8 * MB16 + 0x100, 3000),
            backup("i1", 1, 5 * MB16 + 0x28, 5 * MB16 + 0x100, 2000),
            backup("f", 1, 2 * MB16 + 0x28, 2 * MB16 + 0x100, 1000),
        ];
        backups[0].parent = Some("i1".into());
        backups[1].parent = Some("f".into());
        Archive {
            segment_size: SegmentSize::DEFAULT,
            backups,
            files: (2..=12).map(|n| seg(1, n)).collect(),
            histories: BTreeMap::new(),
            arrivals: BTreeMap::new(),
        }
    }

    fn chain_ids(p: &Plan) -> Vec<&str> {
        p.chain.iter().map(|b| b.id.as_str()).collect()
    }

    #[test]
    fn plans_name_the_whole_chain_full_first() {
        let a = chained();
        let p = plan(&a, &Target::Latest, None).unwrap();
        assert_eq!(
            (p.backup.id.as_str(), chain_ids(&p)),
            ("i2", vec!["f", "i1", "i2"])
        );
        assert_eq!(p.first_wal.to_string(), "000000010000000000000008");
        // A target between the first and the second incremental picks the first.
        let at = OffsetDateTime::from_unix_timestamp(2500).unwrap();
        let p = plan(&a, &Target::Time(at), None).unwrap();
        assert_eq!(chain_ids(&p), ["f", "i1"]);
        // A chain with a link being deleted is never restored from.
        let mut a = chained();
        a.backups[1].status = BackupStatus::Deleting;
        let p = plan(&a, &Target::Latest, None).unwrap();
        assert_eq!(chain_ids(&p), ["f"]);
    }

    #[test]
    fn a_chain_missing_a_link_is_reported_like_a_gap() {
        let mut a = chained();
        assert!(check_chain(&a).problems.is_empty());
        a.backups.remove(1);
        let chain = check_chain(&a);
        assert_eq!(
            chain.problems,
            [
                "incremental backup i2 was taken against backup i1, which is missing: a restore of \
              backup i2 cannot be built"
            ]
        );
        assert!(chain.broken.contains("i2") && !chain.replayable.contains("i2"));
        assert!(chain.replayable.contains("f"));
    }
}
