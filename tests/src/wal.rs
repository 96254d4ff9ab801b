//! Synthetic WAL: segments with a real long page header and made-up contents, for tests
//! that push WAL to a gateway without running PostgreSQL.

use walgate_core::{LongPageHeader, Lsn, SegmentSize, Timeline};

/// A 16 MiB WAL segment as PostgreSQL 15 writes it: a long page header for `segno` on
/// `timeline` of database system `sysid`, then `fill`.
pub fn synthetic_segment(sysid: u64, timeline: u32, segno: u64, fill: u8) -> Vec<u8> {
    synthetic_segment_of(15, sysid, timeline, segno, fill)
}

/// [`synthetic_segment`] as PostgreSQL `major` writes it.
pub fn synthetic_segment_of(
    major: u32,
    sysid: u64,
    timeline: u32,
    segno: u64,
    fill: u8,
) -> Vec<u8> {
    let size = SegmentSize::DEFAULT;
    let header = LongPageHeader {
        pg_version: major,
        timeline: Timeline(timeline),
        page_addr: Lsn(segno * size.bytes()),
        system_identifier: sysid,
        segment_size: size,
        block_size: 8192,
    }
    .encode();
    let mut b = vec![fill; size.bytes() as usize];
    b[..header.len()].copy_from_slice(&header);
    b
}
