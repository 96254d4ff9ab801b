//! `wal-push`: archive one WAL file, and push ahead the others PostgreSQL has marked ready.
//!
//! PostgreSQL's archiver calls `archive_command` for one file at a time and waits for each.
//! A call here also uploads up to `push_ahead` more files whose `.ready` status files wait
//! in `pg_wal/archive_status`, on `jobs` threads, and for each one the gateway acknowledged
//! leaves a marker in `pg_wal/.walgate/pushed`. When PostgreSQL later asks for that file,
//! the marker answers at once. A marker is written only after the gateway's durable ack,
//! and it records the file's size and modification time. A file changed since then is
//! uploaded again, and the gateway then refuses different contents with 409.

use std::cell::RefCell;
use std::fs::Metadata;
use std::io::Read;
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
    let markers = Markers {
        dir: wal_dir.join(PUSHED),
        archive: format!("{} {}", settings.url, settings.cluster),
    };
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

thread_local! {
    /// A worker's read and compression buffers, kept across the files it uploads.
    static BUFFERS: RefCell<(Vec<u8>, Vec<u8>)> = RefCell::default();
}

/// Bytes read and compressed at a time, each into a zstd frame of its own (the gateway
/// and `zstd -d` read concatenated frames as one file). A buffer this small stays in the
/// CPU's cache, and whole-buffer compression is faster than zstd's streaming mode, which
/// copies its input into a ring buffer; a whole segment in one fresh buffer cost more in
/// page faults than compressing it. The ratio is within 3% of one frame.
const FRAME: usize = 256 << 10;

/// Compresses and uploads one file; returns its metadata from before it was read.
fn upload(
    gateway: &Gateway,
    level: i32,
    name: &WalFileName,
    path: &Path,
) -> anyhow::Result<Metadata> {
    let meta = std::fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
    BUFFERS.with_borrow_mut(|(chunk, compressed)| {
        let size = compress(path, level, chunk, compressed)?;
        gateway.push_wal(name, compressed, size)
    })?;
    Ok(meta)
}

/// Compresses the file at `path` into `out`, a frame per [`FRAME`] bytes; returns its size.
fn compress(
    path: &Path,
    level: i32,
    chunk: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> anyhow::Result<u64> {
    let mut file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut compressor = zstd::bulk::Compressor::new(level).context("compress")?;
    chunk.resize(FRAME, 0);
    out.clear();
    let mut size = 0u64;
    loop {
        let n = read_up_to(&mut file, chunk).with_context(|| format!("read {}", path.display()))?;
        if n == 0 {
            return Ok(size);
        }
        out.reserve(zstd::zstd_safe::compress_bound(n));
        // Appends: a cursor at the end of `out`.
        let end = out.len() as u64;
        let mut tail = std::io::Cursor::new(&mut *out);
        tail.set_position(end);
        compressor
            .compress_to_buffer(&chunk[..n], &mut tail)
            .context("compress")?;
        size += n as u64;
    }
}

/// Fills `buf` from `r` unless the end comes first; returns the bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// The markers directory, for one archive (gateway URL and cluster).
struct Markers {
    dir: PathBuf,
    archive: String,
}

impl Markers {
    /// Consumes `name`'s marker; true if it vouches for the file as it is now.
    fn take(&self, name: &WalFileName, meta: &Metadata) -> bool {
        let marker = self.dir.join(name.to_string());
        match std::fs::read_to_string(&marker) {
            Ok(text) => {
                let _ = std::fs::remove_file(&marker);
                text == self.fingerprint(meta)
            }
            Err(_) => false,
        }
    }

    /// What a marker holds: the archive that acknowledged the file, and enough to tell
    /// that the file has not changed since (moving to another gateway or cluster
    /// uploads everything again).
    fn fingerprint(&self, meta: &Metadata) -> String {
        format!(
            "{} {} {} {}\n",
            self.archive,
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec()
        )
    }

    /// Records that `name`, as described by `meta`, is stored on the gateway.
    fn put(&self, name: &WalFileName, meta: &Metadata) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("create {}", self.dir.display()))?;
        let marker = self.dir.join(name.to_string());
        let tmp = self.dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, self.fingerprint(meta))
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
        let marked: Vec<WalFileName> = std::fs::read_dir(&self.dir)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> WalFileName {
        s.parse().unwrap()
    }

    #[test]
    fn compressed_frames_decode_to_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("000000010000000000000001");
        let data: Vec<u8> = (0..3 * FRAME as u32 + 12345)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 28) as u8)
            .collect();
        std::fs::write(&file, &data).unwrap();
        let (mut chunk, mut out) = (Vec::new(), b"stale".to_vec());
        let size = compress(&file, 1, &mut chunk, &mut out).unwrap();
        assert_eq!(size, data.len() as u64);
        assert!(out.len() < data.len());
        assert_eq!(zstd::decode_all(out.as_slice()).unwrap(), data);
    }

    #[test]
    fn a_marker_vouches_only_for_the_file_it_was_written_for() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("000000010000000000000001");
        std::fs::write(&file, b"first contents").unwrap();
        let markers = Markers {
            dir: dir.path().join(PUSHED),
            archive: "http://gw main".into(),
        };
        let n = name("000000010000000000000001");

        markers.put(&n, &std::fs::metadata(&file).unwrap()).unwrap();
        assert!(markers.take(&n, &std::fs::metadata(&file).unwrap()));
        // Taken once: the next call uploads again.
        assert!(!markers.take(&n, &std::fs::metadata(&file).unwrap()));

        markers.put(&n, &std::fs::metadata(&file).unwrap()).unwrap();
        std::fs::write(&file, b"other contents, longer").unwrap();
        assert!(!markers.take(&n, &std::fs::metadata(&file).unwrap()));

        // A marker of another archive vouches for nothing here.
        markers.put(&n, &std::fs::metadata(&file).unwrap()).unwrap();
        let elsewhere = Markers {
            dir: markers.dir.clone(),
            archive: "http://other-gw main".into(),
        };
        assert!(!elsewhere.take(&n, &std::fs::metadata(&file).unwrap()));
    }

    #[test]
    fn ready_files_come_in_the_archivers_order_without_marked_ones() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path();
        let status = wal.join("archive_status");
        std::fs::create_dir_all(&status).unwrap();
        for f in [
            "000000010000000000000003",
            "000000010000000000000001",
            "000000010000000000000002",
            "00000002.history",
            "000000010000000000000004",
        ] {
            std::fs::write(wal.join(f), f).unwrap();
            std::fs::write(status.join(format!("{f}.ready")), "").unwrap();
        }
        std::fs::write(status.join("000000010000000000000000.done"), "").unwrap();
        let markers = Markers {
            dir: wal.join(PUSHED),
            archive: "http://gw main".into(),
        };
        let marked = name("000000010000000000000003");
        markers
            .put(
                &marked,
                &std::fs::metadata(wal.join(marked.to_string())).unwrap(),
            )
            .unwrap();
        // A marker of a file no longer waiting is stale and goes.
        let stale = name("000000010000000000000000");
        markers
            .put(
                &stale,
                &std::fs::metadata(wal.join("00000002.history")).unwrap(),
            )
            .unwrap();

        let own = name("000000010000000000000001");
        let ahead: Vec<String> = markers
            .ready_others(wal, &own, 3)
            .into_iter()
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(
            ahead,
            [
                "00000002.history",
                "000000010000000000000002",
                "000000010000000000000004"
            ]
        );
        assert!(!markers.dir.join(stale.to_string()).exists());
        assert!(markers.dir.join(marked.to_string()).exists());
    }
}
