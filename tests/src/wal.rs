//! Synthetic WAL: segments with a long page header and made-up contents, for tests that
//! push WAL to a gateway without running PostgreSQL.

/// A 16 MiB WAL segment as PostgreSQL 15 writes it: a long page header for `segno` on
/// `timeline` of database system `sysid`, then `fill`.
pub fn synthetic_segment(sysid: u64, timeline: u32, segno: u64, fill: u8) -> Vec<u8> {
    const SEG: usize = 16 << 20;
    let mut b = vec![fill; SEG];
    b[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
    b[2..4].copy_from_slice(&0x0006u16.to_le_bytes());
    b[4..8].copy_from_slice(&timeline.to_le_bytes());
    b[8..16].copy_from_slice(&(segno * SEG as u64).to_le_bytes());
    b[16..24].fill(0);
    b[24..32].copy_from_slice(&sysid.to_le_bytes());
    b[32..36].copy_from_slice(&(SEG as u32).to_le_bytes());
    b[36..40].copy_from_slice(&8192u32.to_le_bytes());
    b
}
