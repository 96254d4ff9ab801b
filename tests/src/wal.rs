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

/// A base backup's tar stream with no data: a `backup_label` starting in segment `segno`
/// of timeline 1 (with `extra` lines at its end), `pg_control` naming `sysid`, and
/// `PG_VERSION`. What the gateway reads of a backup, as a host could forge it.
pub fn synthetic_backup(major: u32, sysid: u64, segno: u64, extra: &str) -> Vec<u8> {
    let lsn = (segno << 24) + 0x28;
    let checkpoint = lsn + 0x38;
    let label = format!(
        "START WAL LOCATION: {:X}/{:X} (file 00000001{:08X}{:08X})\n\
         CHECKPOINT LOCATION: {:X}/{:X}\nBACKUP METHOD: streamed\nBACKUP FROM: primary\n\
         START TIME: 2026-12-04 00:00:00 UTC\nLABEL: synthetic\nSTART TIMELINE: 1\n{extra}",
        lsn >> 32,
        lsn & 0xFFFF_FFFF,
        segno >> 8,
        segno & 0xFF,
        checkpoint >> 32,
        checkpoint & 0xFFFF_FFFF,
    );
    let mut control = sysid.to_le_bytes().to_vec();
    control.resize(8192, 0);
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in [
        ("backup_label", label.into_bytes()),
        ("global/pg_control", control),
        ("PG_VERSION", format!("{major}\n").into_bytes()),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        tar.append_data(&mut header, path, &data[..])
            .expect("a tar in memory");
    }
    tar.into_inner().expect("a tar in memory")
}
