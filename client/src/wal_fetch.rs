//! `wal-fetch`: restore one WAL file, and prefetch the segments recovery will ask for next.
//!
//! PostgreSQL's startup process calls `restore_command` for one file at a time and replays
//! it before asking for the next, so every round trip to the gateway stalls replay. After
//! each segment, a call here starts a detached `walgate-client wal-prefetch` (at most one
//! runs: it holds a lock) that downloads the following segments into
//! `pg_wal/.walgate/prefetch`, each written as `.part` and renamed when complete. The next
//! call finds its segment there and only renames it into place.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use walgate_core::{SegmentName, SegmentSize, WalFileName};

use crate::config::Settings;
use crate::gateway::{Fetched, Gateway};

/// Where prefetched segments wait, under pg_wal.
pub const PREFETCH: &str = ".walgate/prefetch";

/// The prefetcher's nice value (0 is normal, 19 the lowest).
const PREFETCH_NICE: i32 = 10;

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
        if let Some(size) = SegmentSize::new(size)
            && !prefetcher_running(&dir)
        {
            start_prefetch(settings, *segment, size, &dir);
        }
    }
    Ok(fetched)
}

/// Moves a prefetched `name` into `dest` if there is one of a segment's size (a file
/// cut short by a crash is dropped, and the caller downloads it again).
fn take_prefetched(dir: &Path, name: &WalFileName, dest: &Path) -> bool {
    let file = dir.join(name.to_string());
    let whole = std::fs::metadata(&file).is_ok_and(|m| SegmentSize::new(m.len()).is_some());
    if !whole {
        let _ = std::fs::remove_file(&file);
        return false;
    }
    std::fs::rename(&file, dest).is_ok()
}

/// Whether a prefetcher holds its lock now. Another started meanwhile would only find the
/// lock taken and exit: a process per restored segment for nothing.
fn prefetcher_running(dir: &Path) -> bool {
    std::fs::File::open(dir.join(".lock"))
        .is_ok_and(|lock| matches!(lock.try_lock(), Err(std::fs::TryLockError::WouldBlock)))
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
    // Below the startup process: it replays (and calls here) while this reads ahead, and
    // must not wait for a core behind the decoding of segments it needs later.
    // Its threads, started later, inherit it. Failing to lower it is no reason not to run.
    let _ = rustix::process::setpriority_process(None, PREFETCH_NICE);
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
    for entry in std::fs::read_dir(dir)?.flatten() {
        let file = entry.file_name();
        let keep = file == ".lock" || file.to_str().is_some_and(|f| window.iter().any(|w| w == f));
        if !keep {
            let _ = std::fs::remove_file(entry.path());
        }
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
        // Checked for size and synced before the rename that makes it visible. Synced
        // here, on the prefetcher's threads: PostgreSQL fsyncs every restored segment as
        // it keeps it in pg_wal (durable_rename), and would otherwise wait for the
        // writeback on the replay path.
        match gateway.fetch_wal(&parsed, &path, Some(size.bytes()), true) {
            Ok(Fetched::Written) => settings.log(format_args!("prefetched {name}")),
            Ok(Fetched::NotArchived) | Err(_) => past_end.store(true, Ordering::Relaxed),
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_prefetcher_is_seen_by_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!prefetcher_running(dir.path()), "no lock file yet");
        let lock = std::fs::File::create(dir.path().join(".lock")).unwrap();
        assert!(!prefetcher_running(dir.path()), "not locked");
        lock.try_lock().unwrap();
        assert!(prefetcher_running(dir.path()));
        drop(lock);
        assert!(!prefetcher_running(dir.path()), "its lock ends with it");
    }

    #[test]
    fn only_whole_segments_are_taken_from_prefetch() {
        let pg_wal = tempfile::tempdir().unwrap();
        let dir = pg_wal.path().join(PREFETCH);
        std::fs::create_dir_all(&dir).unwrap();
        let name: WalFileName = "000000010000000000000002".parse().unwrap();
        let dest = pg_wal.path().join("RECOVERYXLOG");

        assert!(!take_prefetched(&dir, &name, &dest));
        std::fs::write(dir.join(name.to_string()), vec![7u8; 1000]).unwrap();
        assert!(!take_prefetched(&dir, &name, &dest));
        assert!(
            !dir.join(name.to_string()).exists(),
            "a cut file is removed"
        );
        assert!(!dest.exists());

        std::fs::write(dir.join(name.to_string()), vec![7u8; 1 << 20]).unwrap();
        assert!(take_prefetched(&dir, &name, &dest));
        assert_eq!(std::fs::metadata(&dest).unwrap().len(), 1 << 20);
    }
}
