//! The `backup_label` file PostgreSQL writes at the start of every base backup.
//!
//! ```text
//! START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
//! CHECKPOINT LOCATION: 0/2000060
//! BACKUP METHOD: streamed
//! BACKUP FROM: primary
//! START TIME: 2026-11-27 06:45:12 UTC
//! LABEL: pg_basebackup base backup
//! START TIMELINE: 1
//! ```

use std::str::FromStr;

use crate::{Lsn, Timeline, WalFileName};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupLabel {
    pub start_lsn: Lsn,
    /// The segment holding `start_lsn`, as named in the label.
    pub start_wal: WalFileName,
    pub checkpoint_lsn: Lsn,
    /// `streamed` or `pg_start_backup`.
    pub method: String,
    /// Taken from a primary (false) or a standby (true).
    pub from_standby: bool,
    /// As PostgreSQL wrote it, e.g. `2026-11-27 06:45:12 UTC`.
    pub start_time: String,
    pub label: String,
    pub start_timeline: Timeline,
    /// Set for an incremental backup (PostgreSQL 17's `pg_basebackup --incremental`):
    /// where its parent started. Such a backup is restorable only combined with its
    /// parent (`pg_combinebackup`).
    pub incremental_from: Option<ParentStart>,
}

/// Where an incremental backup's parent started, as its label names it
/// (`INCREMENTAL FROM LSN` and `INCREMENTAL FROM TLI`): the parent manifest's first WAL
/// range, which is the parent's own start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParentStart {
    pub timeline: Timeline,
    pub lsn: Lsn,
}

impl std::fmt::Display for ParentStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LSN {} on timeline {}", self.lsn, self.timeline.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a PostgreSQL backup_label: {0}")]
pub struct BackupLabelError(String);

impl FromStr for BackupLabel {
    type Err = BackupLabelError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |m: &str| BackupLabelError(m.to_owned());
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
                .ok_or_else(|| err(&format!("no `{key}` line")))
        };
        // START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
        let start = field("START WAL LOCATION")?;
        let (lsn, file) = start
            .split_once(" (file ")
            .ok_or_else(|| err("bad START WAL LOCATION"))?;
        let start_lsn: Lsn = lsn.parse().map_err(|_| err("bad start LSN"))?;
        let start_wal: WalFileName = file
            .strip_suffix(')')
            .and_then(|f| f.parse().ok())
            .filter(|f: &WalFileName| f.wal_segment().is_some())
            .ok_or_else(|| err("bad start WAL file"))?;
        let checkpoint_lsn = field("CHECKPOINT LOCATION")?
            .parse()
            .map_err(|_| err("bad checkpoint LSN"))?;
        let start_timeline = field("START TIMELINE")?
            .parse::<u32>()
            .ok()
            .filter(|&t| t != 0)
            .map(Timeline)
            .ok_or_else(|| err("bad START TIMELINE"))?;
        if start_wal.timeline() != start_timeline {
            return Err(err("START TIMELINE does not match the start WAL file"));
        }
        Ok(BackupLabel {
            start_lsn,
            start_wal,
            checkpoint_lsn,
            method: field("BACKUP METHOD").unwrap_or("streamed").to_owned(),
            from_standby: field("BACKUP FROM").is_ok_and(|f| f == "standby"),
            start_time: field("START TIME").unwrap_or_default().to_owned(),
            label: field("LABEL").unwrap_or_default().to_owned(),
            start_timeline,
            incremental_from: match field("INCREMENTAL FROM LSN") {
                Ok(lsn) => Some(ParentStart {
                    lsn: lsn.parse().map_err(|_| err("bad INCREMENTAL FROM LSN"))?,
                    timeline: field("INCREMENTAL FROM TLI")?
                        .parse::<u32>()
                        .ok()
                        .filter(|&t| t != 0)
                        .map(Timeline)
                        .ok_or_else(|| err("bad INCREMENTAL FROM TLI"))?,
                }),
                Err(_) => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABEL: &str = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
        CHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: standby\n\
        START TIME: 2026-11-27 06:45:12 UTC\nLABEL: nightly\nSTART TIMELINE: 1\n";

    #[test]
    fn parses_what_pg_basebackup_writes() {
        let l: BackupLabel = LABEL.parse().unwrap();
        assert_eq!(l.start_lsn, Lsn(0x200_0028));
        assert_eq!(l.start_wal.to_string(), "000000010000000000000002");
        assert_eq!(l.checkpoint_lsn, Lsn(0x200_0060));
        assert!(l.from_standby);
        assert_eq!(
            (l.label.as_str(), l.start_timeline),
            ("nightly", Timeline(1))
        );
    }

    #[test]
    fn an_incremental_names_where_its_parent_started() {
        let l: BackupLabel =
            format!("{LABEL}INCREMENTAL FROM LSN: 0/1000028\nINCREMENTAL FROM TLI: 1\n")
                .parse()
                .unwrap();
        assert_eq!(
            l.incremental_from,
            Some(ParentStart {
                timeline: Timeline(1),
                lsn: Lsn(0x100_0028)
            })
        );
        assert_eq!(LABEL.parse::<BackupLabel>().unwrap().incremental_from, None);
    }

    #[test]
    fn refuses_what_is_not_a_label() {
        for bad in [
            "",
            "hello",
            &LABEL.replace("0/2000028", "zz"),
            &LABEL.replace("START TIMELINE: 1", "START TIMELINE: 2"),
            &LABEL.replace("(file 000000010000000000000002)", "(file 00000002.history)"),
            &LABEL.replace("CHECKPOINT LOCATION", "CHECKPOINT"),
            &format!("{LABEL}INCREMENTAL FROM LSN: 0/1000028\n"),
            &format!("{LABEL}INCREMENTAL FROM LSN: 0/1000028\nINCREMENTAL FROM TLI: 0\n"),
            &format!("{LABEL}INCREMENTAL FROM LSN: x\nINCREMENTAL FROM TLI: 1\n"),
        ] {
            assert!(bad.parse::<BackupLabel>().is_err(), "{bad:?}");
        }
    }
}
