//! `wal-fetch`: restore one WAL file, and prefetch the segments recovery will ask for next.
//!
//! PostgreSQL's startup process calls `restore_command` for one file at a time and replays
//! it before asking for the next, so every round trip to the gateway stalls replay. After
//! each segment, a call here starts a detached `walgate-client wal-prefetch` (at most one
//! runs: it holds a lock) that downloads the following segments into
//! `pg_wal/.walgate/prefetch`, each written as `.part` and renamed when complete. The next
//! call finds its segment there and only renames it into place.
//!
//! Prefetched files are not synced, which halved the disk writes of a recovery (most are
//! replayed and removed before the kernel writes them back). They can only be lost by an
//! operating-system crash, which a replay of a file cut short would end recovery early
//! over; the directory is stamped with the kernel's boot id, and a directory from an
//! earlier boot is emptied unused. Where there is no boot id, files are synced.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use walgate_core::{SegmentName, SegmentSize, WalFileName};

use crate::config::Settings;
use crate::gateway::{Fetched, Gateway};

/// Where prefetched segments wait, under pg_wal.
pub const PREFETCH: &str = ".walgate/prefetch";

fn prefetch_dir(dest: &Path) -> PathBuf {
    let wal_dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    wal_dir.join(PREFETCH)
}

/// Restores `name` to `dest` (`%f` and `%p`).
pub fn fetch(settings: &Settings, name: &WalFileName, dest: &Path) -> anyhow::Result<Fetched> {
    let dir = prefetch_dir(dest);
    let fetched = if take_prefetched(&dir, name, dest) {
        settings.log(format_args!("{name} came from prefetch"));
        Fetched::Written
    } else {
        Gateway::new(settings)?.fetch_wal(name, dest, None, false)?
    };
    if let (Fetched::Written, WalFileName::Segment(segment)) = (&fetched, name)
        && settings.prefetch > 0
    {
        let size = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
        if let Some(size) = SegmentSize::new(size) {
            start_prefetch(settings, *segment, size, &dir);
        }
    }
    Ok(fetched)
}

/// Where the boot id of the files in a prefetch directory is kept.
const BOOT: &str = ".boot";

/// This boot of the kernel, on Linux.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()
}

/// Whether files in `dir` were written since this boot, or synced where that is unknown.
fn from_this_boot(dir: &Path) -> bool {
    match boot_id() {
        Some(id) => std::fs::read_to_string(dir.join(BOOT)).is_ok_and(|stamp| stamp == id),
        None => true,
    }
}

/// Moves a prefetched `name` into `dest` if there is one of a segment's size, written
/// since this boot (else the caller downloads it again).
fn take_prefetched(dir: &Path, name: &WalFileName, dest: &Path) -> bool {
    let file = dir.join(name.to_string());
    if !from_this_boot(dir) {
        return false;
    }
    let whole = std::fs::metadata(&file).is_ok_and(|m| SegmentSize::new(m.len()).is_some());
    if !whole {
        let _ = std::fs::remove_file(&file);
        return false;
    }
    std::fs::rename(&file, dest).is_ok()
}

/// Starts a detached prefetcher for the segments after `segment`.
fn start_prefetch(settings: &Settings, segment: SegmentName, size: SegmentSize, dir: &Path) {
    let (after, bytes) = (segment.to_string(), size.bytes().to_string());
    crate::start_detached(
        settings,
        &[
            "wal-prefetch".as_ref(),
            after.as_ref(),
            bytes.as_ref(),
            dir.as_os_str(),
        ],
    );
}

/// The prefetcher (hidden `wal-prefetch` command): downloads the segments that follow
/// `after` into `dir`, at most `settings.prefetch` of them and `prefetch_max_bytes`, and
/// removes any file there outside that window.
pub fn prefetch(
    settings: &Settings,
    after: SegmentName,
    size: SegmentSize,
    dir: &Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let lock = std::fs::File::create(dir.join(".lock"))?;
    if lock.try_lock().is_err() {
        return Ok(()); // another prefetcher is at work
    }
    let count = settings
        .prefetch
        .min(usize::try_from(settings.prefetch_max_bytes / size.bytes()).unwrap_or(usize::MAX));
    let window: Vec<String> = after
        .following(size)
        .take(count)
        .map(|s| s.to_string())
        .collect();
    let this_boot = from_this_boot(dir);
    for entry in std::fs::read_dir(dir)?.flatten() {
        let file = entry.file_name();
        let keep = file == ".lock"
            || file == BOOT
            || this_boot && file.to_str().is_some_and(|f| window.iter().any(|w| w == f));
        if !keep {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let boot = boot_id();
    if let Some(id) = boot.as_ref().filter(|_| !this_boot) {
        stamp(dir, id)?;
    }
    let wanted: Vec<&String> = window
        .iter()
        .filter(|name| !dir.join(name).exists())
        .collect();
    let gateway = Gateway::new(settings)?.without_retries();
    // The archive ends somewhere: past the first missing segment, stop asking.
    let past_end = AtomicBool::new(false);
    crate::parallel::map_bounded(&wanted, settings.jobs, |name| {
        if past_end.load(Ordering::Relaxed) {
            return;
        }
        let parsed: WalFileName = name.parse().expect("names we made parse");
        let path = dir.join(name);
        // Checked for size (and synced, without a boot id) before the rename that makes
        // it visible.
        match gateway.fetch_wal(&parsed, &path, Some(size.bytes()), boot.is_none()) {
            Ok(Fetched::Written) => settings.log(format_args!("prefetched {name}")),
            Ok(Fetched::NotArchived) | Err(_) => past_end.store(true, Ordering::Relaxed),
        }
    });
    Ok(())
}

/// Stamps `dir` with boot `id`, durably: the stamp must not outlive a crash that loses
/// the files written after it.
fn stamp(dir: &Path, id: &str) -> anyhow::Result<()> {
    let tmp = dir.join(".boot.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, id.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(BOOT))?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().with_context(|| format!("stamp {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_prefetched_since_this_boot_are_used() {
        let pg_wal = tempfile::tempdir().unwrap();
        let dir = pg_wal.path().join(PREFETCH);
        std::fs::create_dir_all(&dir).unwrap();
        let name: WalFileName = "000000010000000000000002".parse().unwrap();
        let dest = pg_wal.path().join("RECOVERYXLOG");
        let put = || std::fs::write(dir.join(name.to_string()), vec![7u8; 1 << 20]).unwrap();

        // Unstamped, or stamped by an earlier boot: the kernel may have lost its pages.
        put();
        assert!(!take_prefetched(&dir, &name, &dest));
        std::fs::write(dir.join(BOOT), "0b2d5e5e-0000-0000-0000-000000000000\n").unwrap();
        assert!(!take_prefetched(&dir, &name, &dest));
        assert!(!dest.exists());

        stamp(&dir, &boot_id().expect("Linux has a boot id")).unwrap();
        assert!(take_prefetched(&dir, &name, &dest));
        assert_eq!(std::fs::metadata(&dest).unwrap().len(), 1 << 20);

        // A file cut short is never handed over.
        std::fs::write(dir.join(name.to_string()), vec![7u8; 1000]).unwrap();
        assert!(!take_prefetched(&dir, &name, &dest));
        assert!(!dir.join(name.to_string()).exists());
    }
}
