//! The long page header at the start of every WAL segment (`XLogLongPageHeaderData`).
//!
//! It names the database system the segment belongs to, the segment size and the LSN of
//! the segment's first byte, which is what lets the gateway refuse a segment from another
//! database or one stored under the wrong name before a byte of it is kept.
//!
//! Layout (little-endian, as written on the x86-64 and arm64 hosts PostgreSQL runs on):
//!
//! | offset | field |
//! | --- | --- |
//! | 0 | `xlp_magic` u16 (changes with each major version's WAL format) |
//! | 2 | `xlp_info` u16 (`XLP_LONG_HEADER` = 0x0002 on a segment's first page) |
//! | 4 | `xlp_tli` u32 |
//! | 8 | `xlp_pageaddr` u64 |
//! | 16 | `xlp_rem_len` u32, then 4 bytes of padding |
//! | 24 | `xlp_sysid` u64 |
//! | 32 | `xlp_seg_size` u32 |
//! | 36 | `xlp_xlog_blcksz` u32 |

use crate::Lsn;
use crate::wal::{SegmentName, SegmentSize, Timeline};

const XLP_LONG_HEADER: u16 = 0x0002;
/// Set on a page written while no backup forces full-page images.
const XLP_BKP_REMOVABLE: u16 = 0x0004;

/// `XLOG_PAGE_MAGIC` of each supported major version.
const MAGICS: [(u16, u32); 9] = [
    (0xD097, 10),
    (0xD098, 11),
    (0xD101, 12),
    (0xD106, 13),
    (0xD10D, 14),
    (0xD110, 15),
    (0xD113, 16),
    (0xD116, 17),
    (0xD118, 18),
];

/// The fields of a segment's first page header that the gateway checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongPageHeader {
    /// PostgreSQL major version whose WAL format this is.
    pub pg_version: u32,
    pub timeline: Timeline,
    pub page_addr: Lsn,
    pub system_identifier: u64,
    pub segment_size: SegmentSize,
    pub block_size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageHeaderError {
    #[error("the body is {0} bytes, too short to hold a WAL page header")]
    TooShort(usize),
    #[error("not a WAL segment of PostgreSQL 10 or later: page magic is {0:#06X}")]
    BadMagic(u16),
    #[error("not the first page of a WAL segment: the long page header flag is not set")]
    NotLongHeader,
    #[error("the page header names segment size {0}, which PostgreSQL cannot produce")]
    BadSegmentSize(u32),
    #[error("the page header names WAL block size {0}, which PostgreSQL cannot produce")]
    BadBlockSize(u32),
    #[error("the page header names timeline 0")]
    BadTimeline,
}

impl LongPageHeader {
    /// Bytes needed to parse the header.
    pub const LEN: usize = 40;

    pub fn parse(buf: &[u8]) -> Result<Self, PageHeaderError> {
        let b: &[u8; Self::LEN] = buf
            .get(..Self::LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(PageHeaderError::TooShort(buf.len()))?;
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));

        let magic = u16_at(0);
        let pg_version = MAGICS
            .iter()
            .find(|(m, _)| *m == magic)
            .map(|(_, v)| *v)
            .ok_or(PageHeaderError::BadMagic(magic))?;
        if u16_at(2) & XLP_LONG_HEADER == 0 {
            return Err(PageHeaderError::NotLongHeader);
        }
        let timeline = match u32_at(4) {
            0 => return Err(PageHeaderError::BadTimeline),
            t => Timeline(t),
        };
        let seg = u32_at(32);
        let segment_size =
            SegmentSize::new(u64::from(seg)).ok_or(PageHeaderError::BadSegmentSize(seg))?;
        let block_size = u32_at(36);
        if !(block_size.is_power_of_two() && (1024..=65536).contains(&block_size)) {
            return Err(PageHeaderError::BadBlockSize(block_size));
        }
        Ok(LongPageHeader {
            pg_version,
            timeline,
            page_addr: Lsn(u64_at(8)),
            system_identifier: u64_at(24),
            segment_size,
            block_size,
        })
    }

    /// The header as PostgreSQL writes it on a segment's first page outside a backup
    /// (`xlp_info` = `XLP_LONG_HEADER | XLP_BKP_REMOVABLE`, no record continued from the
    /// previous segment): the inverse of [`parse`](Self::parse), so
    /// `parse(&h.encode()) == Ok(h)` for every header `parse` returns.
    ///
    /// # Panics
    ///
    /// If `pg_version` is not a major version whose page magic is known (`parse` never
    /// returns such a header).
    pub fn encode(&self) -> [u8; Self::LEN] {
        let magic = MAGICS
            .iter()
            .find(|(_, v)| *v == self.pg_version)
            .map(|(m, _)| *m)
            .unwrap_or_else(|| panic!("no WAL page magic for PostgreSQL {}", self.pg_version));
        let seg_size = u32::try_from(self.segment_size.bytes()).expect("segment sizes fit in u32");
        let mut b = [0u8; Self::LEN];
        b[0..2].copy_from_slice(&magic.to_le_bytes());
        b[2..4].copy_from_slice(&(XLP_LONG_HEADER | XLP_BKP_REMOVABLE).to_le_bytes());
        b[4..8].copy_from_slice(&self.timeline.0.to_le_bytes());
        b[8..16].copy_from_slice(&self.page_addr.0.to_le_bytes());
        // 16..24: xlp_rem_len and padding, zero.
        b[24..32].copy_from_slice(&self.system_identifier.to_le_bytes());
        b[32..36].copy_from_slice(&seg_size.to_le_bytes());
        b[36..40].copy_from_slice(&self.block_size.to_le_bytes());
        b
    }

    /// Whether this header can start the segment `name`: the page address must be the
    /// segment's first byte, and the page's timeline may be older than the name's (the
    /// first segment of a new timeline begins with a copy of the old one's pages).
    pub fn matches(&self, name: SegmentName) -> bool {
        name.start_lsn(self.segment_size) == Some(self.page_addr) && self.timeline <= name.timeline
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A first page header as PostgreSQL 15 writes it.
    pub fn header(sysid: u64, tli: u32, addr: u64, seg_size: u32) -> Vec<u8> {
        let mut b = Vec::with_capacity(LongPageHeader::LEN);
        b.extend_from_slice(&0xD110u16.to_le_bytes());
        b.extend_from_slice(&0x0006u16.to_le_bytes());
        b.extend_from_slice(&tli.to_le_bytes());
        b.extend_from_slice(&addr.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&sysid.to_le_bytes());
        b.extend_from_slice(&seg_size.to_le_bytes());
        b.extend_from_slice(&8192u32.to_le_bytes());
        b
    }

    #[test]
    fn parses_a_postgres_15_header() {
        let h = LongPageHeader::parse(&header(7_300_000_000_000_000_001, 1, 0x300_0000, 16 << 20))
            .unwrap();
        assert_eq!(h.pg_version, 15);
        assert_eq!(h.system_identifier, 7_300_000_000_000_000_001);
        assert_eq!(h.segment_size, SegmentSize::DEFAULT);
        let name: crate::WalFileName = "000000010000000000000003".parse().unwrap();
        assert!(h.matches(name.wal_segment().unwrap()));
        let other: crate::WalFileName = "000000010000000000000004".parse().unwrap();
        assert!(!h.matches(other.wal_segment().unwrap()));
        // A new timeline's first segment starts with the old timeline's pages...
        let next_tli: crate::WalFileName = "000000020000000000000003".parse().unwrap();
        assert!(h.matches(next_tli.wal_segment().unwrap()));
        // ...but a page never claims a timeline newer than its file's.
        let h2 = LongPageHeader::parse(&header(1, 2, 0x300_0000, 16 << 20)).unwrap();
        assert!(!h2.matches(name.wal_segment().unwrap()));
    }

    #[test]
    fn encodes_what_it_parses() {
        // Byte for byte what PostgreSQL 15 writes.
        let bytes = header(7_300_000_000_000_000_001, 3, 0x5_0300_0000, 16 << 20);
        let h = LongPageHeader::parse(&bytes).unwrap();
        assert_eq!(h.encode()[..], bytes[..]);
        // Every version, segment size, block size and position round-trips.
        for (_, pg_version) in MAGICS {
            for (segment_size, block_size) in
                [(1u64 << 20, 1024), (16 << 20, 8192), (1 << 30, 65536)]
            {
                let h = LongPageHeader {
                    pg_version,
                    timeline: Timeline(u32::MAX),
                    page_addr: Lsn(u64::MAX - (segment_size - 1)),
                    system_identifier: u64::MAX,
                    segment_size: SegmentSize::new(segment_size).unwrap(),
                    block_size,
                };
                assert_eq!(LongPageHeader::parse(&h.encode()), Ok(h));
            }
        }
    }

    #[test]
    #[should_panic(expected = "no WAL page magic for PostgreSQL 9")]
    fn does_not_encode_an_unknown_version() {
        let h = LongPageHeader::parse(&header(1, 1, 0, 16 << 20)).unwrap();
        LongPageHeader { pg_version: 9, ..h }.encode();
    }

    #[test]
    fn refuses_what_is_not_a_first_page() {
        let good = header(1, 1, 0, 16 << 20);
        assert_eq!(
            LongPageHeader::parse(&good[..39]),
            Err(PageHeaderError::TooShort(39))
        );
        let mut b = good.clone();
        b[0] = 0;
        assert!(matches!(
            LongPageHeader::parse(&b),
            Err(PageHeaderError::BadMagic(_))
        ));
        let mut b = good.clone();
        b[2] = 0x04;
        assert_eq!(
            LongPageHeader::parse(&b),
            Err(PageHeaderError::NotLongHeader)
        );
        let b = header(1, 0, 0, 16 << 20);
        assert_eq!(LongPageHeader::parse(&b), Err(PageHeaderError::BadTimeline));
        let b = header(1, 1, 0, 3 << 20);
        assert_eq!(
            LongPageHeader::parse(&b),
            Err(PageHeaderError::BadSegmentSize(3 << 20))
        );
        let mut b = good.clone();
        b[36..40].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(
            LongPageHeader::parse(&b),
            Err(PageHeaderError::BadBlockSize(1000))
        );
    }
}
