//! WAL file names, timelines and segment sizes.
//!
//! PostgreSQL archives four kinds of file, all named by fixed-width uppercase hexadecimal:
//!
//! | kind | example |
//! | --- | --- |
//! | segment | `000000010000000A000000FE` (timeline, then the segment number split in two) |
//! | partial segment | `000000010000000A000000FE.partial` (the last segment of a timeline left behind by a promotion) |
//! | timeline history | `00000002.history` |
//! | backup history | `000000010000000A000000FE.00000028.backup` (segment, then the start offset) |
//!
//! The two halves of a segment name are the segment number divided by, and modulo, the
//! number of segments per 4 GiB "log id"; so the number a name stands for depends on the
//! cluster's segment size, which [`SegmentName::segment_no`] takes as an argument.

use std::fmt;
use std::str::FromStr;

use crate::Lsn;

/// A timeline id; PostgreSQL starts at 1 and never uses 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timeline(pub u32);

impl fmt::Display for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A WAL segment size: a power of two from 1 MiB to 1 GiB (`initdb --wal-segsize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentSize(u32);

impl SegmentSize {
    pub const MIN: u32 = 1 << 20;
    pub const MAX: u32 = 1 << 30;
    /// The default of every PostgreSQL build.
    pub const DEFAULT: SegmentSize = SegmentSize(16 << 20);

    pub fn new(bytes: u64) -> Option<Self> {
        let ok = bytes.is_power_of_two() && (Self::MIN as u64..=Self::MAX as u64).contains(&bytes);
        ok.then_some(SegmentSize(bytes as u32))
    }

    pub fn bytes(self) -> u64 {
        u64::from(self.0)
    }

    /// Segments per 4 GiB log id: the divisor between the two halves of a segment name.
    pub fn segments_per_log_id(self) -> u64 {
        0x1_0000_0000 / self.bytes()
    }
}

/// Where a segment lies, on whichever timeline: the log id and segment halves of a
/// segment name, written as its 16 hex digits after the timeline (`0000000A000000FE`).
///
/// Ordered as the segments are (for one segment size), which is also the order of the
/// written form: retention compares stored names with one by their text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentPosition {
    pub log: u32,
    pub seg: u32,
}

impl SegmentPosition {
    /// The position of segment `segno`.
    pub fn from_segment_no(segno: u64, size: SegmentSize) -> Self {
        let per = size.segments_per_log_id();
        SegmentPosition {
            log: (segno / per) as u32,
            seg: (segno % per) as u32,
        }
    }

    /// The position of the segment holding `lsn`.
    pub fn of_lsn(lsn: Lsn, size: SegmentSize) -> Self {
        Self::from_segment_no(lsn.0 / size.bytes(), size)
    }

    /// The segment number at this position, or `None` when the segment half is out of
    /// range for `size`.
    pub fn segment_no(self, size: SegmentSize) -> Option<u64> {
        let per = size.segments_per_log_id();
        (u64::from(self.seg) < per).then(|| u64::from(self.log) * per + u64::from(self.seg))
    }
}

impl fmt::Display for SegmentPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}{:08X}", self.log, self.seg)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a segment position: expected 16 uppercase hex digits (log id and segment)")]
pub struct SegmentPositionError(String);

impl FromStr for SegmentPosition {
    type Err = SegmentPositionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        position(s).ok_or_else(|| SegmentPositionError(s.chars().take(40).collect()))
    }
}

/// Written as its text, so a JSON body carries the same string as before the type.
impl serde::Serialize for SegmentPosition {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SegmentPosition {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The timeline and position part of a segment, partial segment or backup history name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentName {
    pub timeline: Timeline,
    pub log: u32,
    pub seg: u32,
}

impl SegmentName {
    /// Where this segment lies, without its timeline.
    pub fn position(self) -> SegmentPosition {
        SegmentPosition {
            log: self.log,
            seg: self.seg,
        }
    }

    /// The segment number this name stands for, or `None` when its low half is out of
    /// range for `size` (a name no cluster of that segment size can produce).
    pub fn segment_no(self, size: SegmentSize) -> Option<u64> {
        self.position().segment_no(size)
    }

    /// The name of segment `segno` on `timeline`.
    pub fn from_segment_no(timeline: Timeline, segno: u64, size: SegmentSize) -> Self {
        let SegmentPosition { log, seg } = SegmentPosition::from_segment_no(segno, size);
        SegmentName { timeline, log, seg }
    }

    /// The segments that follow this one on its timeline, in order.
    pub fn following(self, size: SegmentSize) -> impl Iterator<Item = SegmentName> {
        let first = self.segment_no(size).map(|n| n + 1);
        let timeline = self.timeline;
        first
            .into_iter()
            .flat_map(|n| n..)
            .map(move |n| SegmentName::from_segment_no(timeline, n, size))
    }

    /// The LSN of the segment's first byte.
    pub fn start_lsn(self, size: SegmentSize) -> Option<Lsn> {
        self.segment_no(size).map(|n| Lsn(n * size.bytes()))
    }
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}{}", self.timeline.0, self.position())
    }
}

/// Only a segment's own name: 24 uppercase hex digits, timeline first.
impl FromStr for SegmentName {
    type Err = WalNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        segment(s).ok_or_else(|| WalNameError(s.chars().take(80).collect()))
    }
}

/// What kind of file a [`WalFileName`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WalFileKind {
    Segment,
    Partial,
    History,
    BackupHistory,
}

impl WalFileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WalFileKind::Segment => "segment",
            WalFileKind::Partial => "partial",
            WalFileKind::History => "history",
            WalFileKind::BackupHistory => "backup_history",
        }
    }
}

impl FromStr for WalFileKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [
            Self::Segment,
            Self::Partial,
            Self::History,
            Self::BackupHistory,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or(())
    }
}

/// A file name PostgreSQL hands to `archive_command` or asks of `restore_command`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WalFileName {
    Segment(SegmentName),
    Partial(SegmentName),
    History(Timeline),
    BackupHistory { segment: SegmentName, offset: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a WAL file name: expected a segment (24 uppercase hex digits), \
     a `.partial` segment, a `XXXXXXXX.history` file or a `<segment>.XXXXXXXX.backup` file"
)]
pub struct WalNameError(String);

fn hex8(s: &str) -> Option<u32> {
    let ok = s.len() == 8
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
    ok.then(|| u32::from_str_radix(s, 16).ok()).flatten()
}

fn timeline(s: &str) -> Option<Timeline> {
    hex8(s).filter(|&t| t != 0).map(Timeline)
}

fn position(s: &str) -> Option<SegmentPosition> {
    if s.len() != 16 || !s.is_ascii() {
        return None;
    }
    Some(SegmentPosition {
        log: hex8(&s[..8])?,
        seg: hex8(&s[8..])?,
    })
}

fn segment(s: &str) -> Option<SegmentName> {
    if s.len() != 24 || !s.is_ascii() {
        return None;
    }
    let SegmentPosition { log, seg } = position(&s[8..])?;
    Some(SegmentName {
        timeline: timeline(&s[..8])?,
        log,
        seg,
    })
}

impl FromStr for WalFileName {
    type Err = WalNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = match s.split('.').collect::<Vec<_>>()[..] {
            [seg] => segment(seg).map(WalFileName::Segment),
            [seg, "partial"] => segment(seg).map(WalFileName::Partial),
            [tli, "history"] => timeline(tli).map(WalFileName::History),
            [seg, offset, "backup"] => segment(seg)
                .zip(hex8(offset))
                .map(|(segment, offset)| WalFileName::BackupHistory { segment, offset }),
            _ => None,
        };
        parsed.ok_or_else(|| WalNameError(s.chars().take(80).collect()))
    }
}

impl fmt::Display for WalFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalFileName::Segment(s) => write!(f, "{s}"),
            WalFileName::Partial(s) => write!(f, "{s}.partial"),
            WalFileName::History(t) => write!(f, "{:08X}.history", t.0),
            WalFileName::BackupHistory { segment, offset } => {
                write!(f, "{segment}.{offset:08X}.backup")
            }
        }
    }
}

impl WalFileName {
    /// What [`WalFileName::from_str`] accepts, as a regular expression (for OpenAPI):
    /// timeline 0 does not exist.
    pub const PATTERN: &str =
        "^(?!00000000)[0-9A-F]{8}(\\.history|[0-9A-F]{16}(\\.partial|\\.[0-9A-F]{8}\\.backup)?)$";

    pub fn kind(&self) -> WalFileKind {
        match self {
            WalFileName::Segment(_) => WalFileKind::Segment,
            WalFileName::Partial(_) => WalFileKind::Partial,
            WalFileName::History(_) => WalFileKind::History,
            WalFileName::BackupHistory { .. } => WalFileKind::BackupHistory,
        }
    }

    pub fn timeline(&self) -> Timeline {
        match self {
            WalFileName::Segment(s) | WalFileName::Partial(s) => s.timeline,
            WalFileName::BackupHistory { segment, .. } => segment.timeline,
            WalFileName::History(t) => *t,
        }
    }

    /// The segment whose contents this file carries: set for segments and partial
    /// segments, whose bodies are checked against their WAL page headers.
    pub fn wal_segment(&self) -> Option<SegmentName> {
        match self {
            WalFileName::Segment(s) | WalFileName::Partial(s) => Some(*s),
            _ => None,
        }
    }

    /// The segment this file belongs to, for ordering and range filters.
    pub fn segment(&self) -> Option<SegmentName> {
        match self {
            WalFileName::Segment(s) | WalFileName::Partial(s) => Some(*s),
            WalFileName::BackupHistory { segment, .. } => Some(*segment),
            WalFileName::History(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind() {
        for (name, kind) in [
            ("000000010000000A000000FE", WalFileKind::Segment),
            ("000000010000000A000000FE.partial", WalFileKind::Partial),
            ("0000000A.history", WalFileKind::History),
            (
                "000000010000000A000000FE.00000028.backup",
                WalFileKind::BackupHistory,
            ),
        ] {
            let parsed: WalFileName = name.parse().unwrap();
            assert_eq!(parsed.kind(), kind);
            assert_eq!(parsed.to_string(), name);
        }
    }

    #[test]
    fn rejects_anything_else() {
        for bad in [
            "",
            "..",
            "../000000010000000000000001",
            "00000001/0000000000000001",
            "000000010000000a000000fe",
            "00000001000000000000001",
            "0000000100000000000000011",
            "000000000000000000000001",
            "00000000.history",
            "0000000g.history",
            "000000010000000000000001.PARTIAL",
            "000000010000000000000001.partial.partial",
            "000000010000000000000001.0000028.backup",
            "000000010000000000000001.backup",
            "00000001000000000000000\u{e9}",
            "000000010000000000000001 ",
            "+00000010000000000000001",
        ] {
            assert!(bad.parse::<WalFileName>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn segment_numbers_depend_on_segment_size() {
        let s16 = SegmentSize::DEFAULT;
        let s1g = SegmentSize::new(1 << 30).unwrap();
        let name: WalFileName = "0000000100000002000000FF".parse().unwrap();
        let seg = name.wal_segment().unwrap();
        assert_eq!(seg.segment_no(s16), Some(2 * 256 + 255));
        assert_eq!(seg.start_lsn(s16), Some(Lsn(0x2_FF00_0000)));
        // With 1 GiB segments a log id holds only four: 0xFF is no such segment.
        assert_eq!(seg.segment_no(s1g), None);
        assert_eq!(
            SegmentName::from_segment_no(Timeline(1), 2 * 256 + 255, s16),
            seg
        );
        let next: Vec<String> = seg.following(s16).take(2).map(|s| s.to_string()).collect();
        assert_eq!(
            next,
            ["000000010000000300000000", "000000010000000300000001"]
        );
        let last_1g: SegmentName = match "000000020000000000000003".parse().unwrap() {
            WalFileName::Segment(s) => s,
            other => panic!("{other:?}"),
        };
        let next: Vec<String> = last_1g
            .following(s1g)
            .take(1)
            .map(|s| s.to_string())
            .collect();
        assert_eq!(next, ["000000020000000100000000"]);
    }

    #[test]
    fn positions_round_trip_and_order_like_their_text() {
        let size = SegmentSize::DEFAULT;
        let mut previous: Option<(SegmentPosition, String)> = None;
        for (text, segno) in [
            ("0000000000000000", 0),
            ("00000000000000FF", 0xFF),
            ("0000000100000000", 0x100),
            ("0000000A000000FE", 0xAFE),
        ] {
            let p: SegmentPosition = text.parse().unwrap();
            assert_eq!(p, SegmentPosition::from_segment_no(segno, size));
            assert_eq!(p.to_string(), text);
            if let Some((before, before_text)) = previous {
                assert!(before < p && before_text.as_str() < text);
            }
            previous = Some((p, text.to_owned()));
        }
        let name: SegmentName = "000000020000000A000000FE".parse().unwrap();
        assert_eq!(name.position().to_string(), "0000000A000000FE");
        assert_eq!(
            SegmentPosition::of_lsn(Lsn(0xA_FE00_0028), size),
            name.position()
        );
        // In JSON, the same text.
        let json = serde_json::to_string(&name.position()).unwrap();
        assert_eq!(json, "\"0000000A000000FE\"");
        assert_eq!(
            serde_json::from_str::<SegmentPosition>(&json).unwrap(),
            name.position()
        );
    }

    #[test]
    fn positions_reject_anything_else() {
        for bad in [
            "",
            "000000000000000",
            "00000000000000001",
            "000000000000000a",
            "000000000000000G",
            "+000000000000001",
            " 000000000000001",
            "000000000000001 ",
            "0000000-00000001",
            "00000000000000\u{e9}",
            "000000010000000000000001",
        ] {
            assert!(
                bad.parse::<SegmentPosition>().is_err(),
                "{bad:?} was accepted"
            );
        }
        assert!(serde_json::from_str::<SegmentPosition>("\"000000000000000g\"").is_err());
        assert!(serde_json::from_str::<SegmentPosition>("1").is_err());
    }

    #[test]
    fn segment_names_parse_only_segments() {
        let s: SegmentName = "000000010000000A000000FE".parse().unwrap();
        assert_eq!(s.to_string(), "000000010000000A000000FE");
        for bad in [
            "000000010000000A000000FE.partial",
            "00000002.history",
            "000000000000000A000000FE",
            "000000010000000a000000FE",
            "0000000A000000FE",
        ] {
            assert!(bad.parse::<SegmentName>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn segment_sizes_are_powers_of_two_in_range() {
        assert!(SegmentSize::new(16 << 20).is_some());
        assert!(SegmentSize::new(1 << 30).is_some());
        for bad in [0, 1 << 19, 3 << 20, 1 << 31] {
            assert!(SegmentSize::new(bad).is_none(), "{bad}");
        }
    }
}
