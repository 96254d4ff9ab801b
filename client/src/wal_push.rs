//! `wal-push`: archive one WAL file, and push ahead the others PostgreSQL has marked ready.
//!
//! PostgreSQL's archiver calls `archive_command` for one file at a time and waits for each.
//! A call here also uploads up to `push_ahead` more files whose `.ready` status files wait
//! in `pg_wal/archive_status`, on `jobs` threads, and for each one the gateway acknowledged
//! leaves a marker in `pg_wal/.walgate/pushed`. When PostgreSQL later asks for that file,
//! the marker answers at once. A marker is written only after the gateway's durable ack,
//! and it records the file's size and modification time. A file changed since then is
//! uploaded again, and the gateway then refuses different contents with 409.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use walgate_core::WalFileName;

use crate::config::Settings;
use crate::gateway::Gateway;

/// Where markers of files pushed ahead live, under pg_wal.
const PUSHED: &str = ".walgate/pushed";

/// Archives `path` (relative to the data directory, as PostgreSQL passes `%p`).
pub fn push(settings: &Settings, path: &Path) -> anyhow::Result<()> {
    let name = crate::file_name(path)?;
    let wal_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let markers = Markers(wal_dir.join(PUSHED));
    let meta = std::fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
    if markers.take(&name, &meta) {
        settings.log(format_args!("{name} was pushed ahead"));
        return Ok(());
    }
    forget_prefetch(wal_dir);
    let mut files = vec![(name, path.to_owned())];
    if settings.push_ahead > 0 {
        files.extend(markers.ready_others(wal_dir, &name, settings.push_ahead));
    }
    let gateway = Gateway::new(settings)?;
    let results = crate::parallel::map_bounded(&files, settings.jobs, |(name, path)| {
        upload(&gateway, settings.zstd_level, name, path)
    });
    let mut results = files.iter().zip(results);
    let (_, own) = results.next().expect("the file itself is first");
    for ((name, _), result) in results {
        match result {
            Ok(meta) => match markers.put(name, &meta) {
                Ok(()) => settings.log(format_args!("pushed {name} ahead")),
                Err(e) => settings.log(format_args!("pushed {name} ahead, but {e:#}")),
            },
            Err(e) => settings.log(format_args!("push-ahead of {name} failed: {e:#}")),
        }
    }
    own.map(drop)
}

/// Removes segments left prefetched by a recovery that has ended: archiving on a primary
/// (no `recovery.signal` or `standby.signal` in the data directory, the working
/// directory of archive_command) means no restore_command will ask for them.
fn forget_prefetch(wal_dir: &Path) {
    let prefetched = wal_dir.join(crate::wal_fetch::PREFETCH);
    if prefetched.exists()
        && !Path::new("recovery.signal").exists()
        && !Path::new("standby.signal").exists()
    {
        let _ = std::fs::remove_dir_all(prefetched);
    }
}

/// Compresses and uploads one file; returns its metadata from before it was read.
fn upload(
    gateway: &Gateway,
    level: i32,
    name: &WalFileName,
    path: &Path,
) -> anyhow::Result<Metadata> {
    let meta = std::fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
    let raw = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let compressed = zstd::bulk::compress(&raw, level).context("compress")?;
    gateway.push_wal(name, &compressed)?;
    Ok(meta)
}

/// The markers directory.
struct Markers(PathBuf);

/// What a marker holds: enough to tell that the file has not changed since its upload.
fn fingerprint(meta: &Metadata) -> String {
    format!("{} {} {}\n", meta.len(), meta.mtime(), meta.mtime_nsec())
}

impl Markers {
    /// Consumes `name`'s marker; true if it vouches for the file as it is now.
    fn take(&self, name: &WalFileName, meta: &Metadata) -> bool {
        let marker = self.0.join(name.to_string());
        match std::fs::read_to_string(&marker) {
            Ok(text) => {
                let _ = std::fs::remove_file(&marker);
                text == fingerprint(meta)
            }
            Err(_) => false,
        }
    }

    /// Records that `name`, as described by `meta`, is stored on the gateway.
    fn put(&self, name: &WalFileName, meta: &Metadata) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.0).with_context(|| format!("create {}", self.0.display()))?;
        let marker = self.0.join(name.to_string());
        let tmp = self.0.join(format!("{name}.tmp"));
        std::fs::write(&tmp, fingerprint(meta))
            .and_then(|()| std::fs::rename(&tmp, &marker))
            .with_context(|| format!("write {}", marker.display()))
    }

    /// Up to `limit` other files waiting for archiving, in the archiver's order (timeline
    /// history files first, then by name), that have no marker yet. Markers whose file is
    /// no longer waiting are removed.
    fn ready_others(
        &self,
        wal_dir: &Path,
        own: &WalFileName,
        limit: usize,
    ) -> Vec<(WalFileName, PathBuf)> {
        let Ok(status) = std::fs::read_dir(wal_dir.join("archive_status")) else {
            return vec![];
        };
        let mut ready: Vec<WalFileName> = status
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".ready")?.parse().ok())
            .filter(|n| n != own)
            .collect();
        let marked: Vec<WalFileName> = std::fs::read_dir(&self.0)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.parse::<WalFileName>();
                match name {
                    Ok(n) if ready.contains(&n) => Some(n),
                    _ => {
                        let _ = std::fs::remove_file(e.path());
                        None
                    }
                }
            })
            .collect();
        ready.retain(|n| !marked.contains(n));
        ready.sort_by_key(|n| (!matches!(n, WalFileName::History(_)), *n));
        ready
            .into_iter()
            .take(limit)
            .map(|n| (n, wal_dir.join(n.to_string())))
            .collect()
    }
}
