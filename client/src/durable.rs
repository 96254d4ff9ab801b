//! Files the client writes for PostgreSQL or a later call to read: whole or not at all,
//! and, when asked, durable.
//!
//! Invariant: a file appears under its name only complete. It is written to a temporary
//! file in the same directory (`NAME.walgate-part-PID`: per process, so a foreground
//! fetch and a prefetcher never share one) and renamed over its name once whole. A
//! durable file is fsynced before the rename and its directory after it, so that after a
//! crash its name holds the whole file or nothing new. A write that fails leaves no
//! temporary file behind.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context as _;

/// The extension of a file being written, before its process id: `NAME.walgate-part-PID`.
pub const PART: &str = "walgate-part-";

/// Bytes written to a file at a time.
const WRITE_CHUNK: usize = 256 << 10;

/// Where [`write_atomically`]'s caller writes the file's contents.
pub type Writer = BufWriter<Writeback>;

/// Writes `dest` whole or not at all: `fill` writes its contents into a temporary file,
/// which then replaces `dest`. `durable` syncs the file before the rename and the
/// directory after it, for files kept for later.
pub fn write_atomically(
    dest: &Path,
    durable: bool,
    fill: impl FnOnce(&mut Writer) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let tmp = dest.with_extension(format!("{PART}{}", std::process::id()));
    let result = (|| {
        let file =
            std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        // Large writes: the page cache costs per call, and 8 KiB writes (io::copy's own
        // buffer) tripled the cost of writing a segment. io::copy fills a BufWriter's
        // buffer directly, so a decoder copied into the writer writes into it.
        let file = Writeback {
            file,
            written: 0,
            started: 0,
            on: durable,
        };
        let mut file = BufWriter::with_capacity(WRITE_CHUNK, file);
        fill(&mut file)?;
        let file = file.into_inner().map_err(|e| e.into_error())?.file;
        if durable {
            file.sync_all()?;
        }
        std::fs::rename(&tmp, dest).with_context(|| format!("rename to {}", dest.display()))?;
        if durable && let Some(dir) = dest.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A file whose writeback starts every `WRITEBACK_AFTER` bytes, as PostgreSQL's
/// `*_flush_after` settings do: its final fsync then has little left to write, and never
/// puts a whole segment in the disk's queue ahead of another file's fsync.
pub struct Writeback {
    file: std::fs::File,
    written: u64,
    started: u64,
    on: bool,
}

const WRITEBACK_AFTER: u64 = 1 << 20;

impl Write for Writeback {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.on && self.written - self.started >= WRITEBACK_AFTER {
            // DONTNEED starts writeback of the dirty pages and drops only clean ones:
            // these are dirty, so they stay cached for replay.
            let len = std::num::NonZeroU64::new(self.written - self.started);
            let _ =
                rustix::fs::fadvise(&self.file, self.started, len, rustix::fs::Advice::DontNeed);
            self.started = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The directory's entries, sorted.
    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_file_is_replaced_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("000000010000000000000001");
        let data = vec![7u8; 3 << 20];
        for durable in [false, true] {
            write_atomically(&dest, durable, |w| Ok(w.write_all(&data)?)).unwrap();
            assert_eq!(std::fs::read(&dest).unwrap(), data);
        }
        assert_eq!(listing(dir.path()), ["000000010000000000000001"]);

        // A write that fails half-way leaves the file as it was, and no temporary file.
        let e = write_atomically(&dest, true, |w| {
            w.write_all(b"half")?;
            anyhow::bail!("cut")
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "cut");
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        assert_eq!(listing(dir.path()), ["000000010000000000000001"]);
    }

    #[test]
    fn the_temporary_file_is_named_for_its_file_and_process() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("000000010000000000000001");
        write_atomically(&dest, false, |_| {
            let part = format!("000000010000000000000001.{PART}{}", std::process::id());
            assert_eq!(listing(dir.path()), [part]);
            Ok(())
        })
        .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"");
    }
}
