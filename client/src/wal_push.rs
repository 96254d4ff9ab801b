//! `wal-push`: archive one WAL file, and push ahead the others PostgreSQL has marked ready.
//!
//! PostgreSQL's archiver calls `archive_command` for one file at a time and waits for each.
//! A call here uploads its own file and starts a detached pusher (hidden command
//! `wal-push-ahead`; at most one runs: it holds a lock) that uploads the other files whose
//! `.ready` status files wait in `pg_wal/archive_status`, on `jobs` threads, at most
//! `push_ahead` of them acknowledged but not yet asked for. For each one the gateway
//! acknowledged it leaves a marker in `pg_wal/.walgate/pushed`; when PostgreSQL later asks
//! for that file, the marker answers at once. The archiver never waits for a whole batch,
//! and the pusher keeps both cores busy while the archiver works through the markers.
//!
//! A marker is written only after the gateway's durable ack, and it records the file's
//! size and modification time: a file changed since is uploaded again, and the gateway
//! then refuses different contents with 409. Whoever uploads a file holds a lock on its
//! claim file: a call for a file the pusher is uploading waits for it, then finds the
//! marker, or (if the pusher died or failed) uploads the file itself.

use std::cell::RefCell;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use walgate_core::WalFileName;

use crate::config::Settings;
use crate::gateway::Gateway;

/// Where markers of files pushed ahead live, under pg_wal.
const PUSHED: &str = ".walgate/pushed";

/// How long the pusher waits for the archiver to catch up before it exits.
const IDLE: Duration = Duration::from_secs(10);

/// Archives `path` (relative to the data directory, as PostgreSQL passes `%p`).
pub fn push(settings: &Settings, path: &Path) -> anyhow::Result<()> {
    let name = crate::file_name(path)?;
    let wal_dir = wal_dir(path);
    let markers = Markers::new(settings, wal_dir);
    let meta = std::fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
    if markers.vouches(&name, &meta) {
        settings.log(format_args!("{name} was pushed ahead"));
        return Ok(());
    }
    forget_prefetch(wal_dir);
    // Claimed before the pusher starts, so that it leaves this file alone; if the pusher
    // holds the claim, it is uploading the file: wait, then look for its marker again.
    // Claims only save work (the gateway stores a file once), so without one the call
    // still uploads.
    let _claim = markers
        .claim(&name)
        .inspect_err(|e| eprintln!("walgate-client: uploading {name} unclaimed: {e:#}"));
    if markers.vouches(&name, &meta) {
        settings.log(format_args!("{name} was pushed ahead"));
        return Ok(());
    }
    if settings.push_ahead > 0 && !markers.pusher_running() {
        crate::start_detached(settings, &["wal-push-ahead".as_ref(), wal_dir.as_os_str()]);
    }
    upload(&Gateway::new(settings)?, settings.zstd_level, &name, path).map(drop)
}

/// The pusher (hidden `wal-push-ahead` command): uploads the files waiting in `wal_dir`
/// in the archiver's order, keeping at most `push_ahead` acknowledged ahead of it. It
/// exits when none waits, when a round uploads nothing (the gateway is down: the
/// archiver's own calls report why), or when the archiver has not caught up for [`IDLE`].
pub fn push_ahead(settings: &Settings, wal_dir: &Path) -> anyhow::Result<()> {
    let markers = Markers::new(settings, wal_dir);
    let Some(_running) = markers.lock_pusher()? else {
        return Ok(()); // another pusher is at work
    };
    let gateway = Gateway::new(settings)?.without_retries();
    let mut waiting_since = Instant::now();
    loop {
        let Some(waiting) = markers.waiting(wal_dir) else {
            return Ok(());
        };
        if waiting.unmarked.is_empty() {
            return Ok(());
        }
        let room = settings.push_ahead.saturating_sub(waiting.marked);
        if room == 0 {
            // Wait for the archiver, looking only at the markers: a backlog's status
            // directory may hold thousands of files.
            while markers.outstanding(wal_dir) >= settings.push_ahead {
                if waiting_since.elapsed() > IDLE {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            continue;
        }
        // Not the file the archiver's call is uploading: it would take a slot for nothing.
        let batch: Vec<_> = waiting
            .unmarked
            .into_iter()
            .filter(|n| !markers.claimed_elsewhere(n))
            .take(room)
            .collect();
        let pushed = AtomicUsize::new(0);
        crate::parallel::map_bounded(&batch, settings.jobs, |name| {
            let path = wal_dir.join(name.to_string());
            match markers.push_ahead(&gateway, settings.zstd_level, wal_dir, name, &path) {
                Ok(true) => {
                    pushed.fetch_add(1, Ordering::Relaxed);
                    settings.log(format_args!("pushed {name} ahead"));
                }
                Ok(false) => {}
                Err(e) => settings.log(format_args!("push-ahead of {name} failed: {e:#}")),
            }
        });
        if pushed.into_inner() == 0 {
            return Ok(());
        }
        waiting_since = Instant::now();
    }
}

/// The directory of a WAL file given as `%p`.
fn wal_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
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
    let mut compressor = crate::parallel::frame_compressor(level).context("compress")?;
    chunk.reserve(FRAME);
    out.clear();
    let mut size = 0u64;
    loop {
        chunk.clear();
        let n = (&mut file)
            .take(FRAME as u64)
            .read_to_end(chunk)
            .with_context(|| format!("read {}", path.display()))?;
        if n == 0 {
            return Ok(size);
        }
        out.reserve(zstd::zstd_safe::compress_bound(n));
        // Appends: a cursor at the end of `out`.
        let end = out.len() as u64;
        let mut tail = std::io::Cursor::new(&mut *out);
        tail.set_position(end);
        compressor
            .compress_to_buffer(chunk.as_slice(), &mut tail)
            .context("compress")?;
        size += n as u64;
    }
}

/// The markers directory, for one archive (gateway URL and cluster).
struct Markers {
    dir: PathBuf,
    archive: String,
}

/// A held claim on one file. Its lock file goes with it, so claims do not pile up; a
/// process that opened the file just before may then claim it once more and, finding no
/// marker, upload again, which costs time but nothing else (the gateway answers 200).
struct Claim {
    /// Held open: the lock lives as long as the file handle.
    _file: File,
    path: PathBuf,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Files waiting for archiving, as the pusher sees them.
struct Waiting {
    /// Without a marker, in the archiver's order.
    unmarked: Vec<WalFileName>,
    /// Acknowledged and not yet asked for.
    marked: usize,
}

impl Markers {
    fn new(settings: &Settings, wal_dir: &Path) -> Self {
        Markers {
            dir: wal_dir.join(PUSHED),
            archive: format!("{} {}", settings.url, settings.cluster),
        }
    }

    /// Whether `name`'s marker vouches for the file as it is now. A marker that does
    /// not is removed; one that does stays until the file stops waiting (the pusher then
    /// removes it), so that the pusher does not take the file for one still to upload.
    fn vouches(&self, name: &WalFileName, meta: &Metadata) -> bool {
        let marker = self.dir.join(name.to_string());
        match std::fs::read_to_string(&marker) {
            Ok(text) if text == self.fingerprint(meta) => true,
            Ok(_) => {
                let _ = std::fs::remove_file(&marker);
                false
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

    /// Opens (creating) `path` in the markers directory for locking.
    fn lock_file(&self, path: &Path) -> anyhow::Result<File> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("create {}", self.dir.display()))?;
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("open {}", path.display()))
    }

    /// `name`'s claim file, open and not yet locked (a `Claim` is made only once held:
    /// dropping it removes the file).
    fn claim_file(&self, name: &WalFileName) -> anyhow::Result<(File, PathBuf)> {
        let path = self.dir.join(format!("{name}.lock"));
        Ok((self.lock_file(&path)?, path))
    }

    /// Claims `name` for uploading, waiting while another process holds it. The kernel
    /// drops a dead process's claim.
    fn claim(&self, name: &WalFileName) -> anyhow::Result<Claim> {
        let (file, path) = self.claim_file(name)?;
        file.lock().context("lock")?;
        Ok(Claim { _file: file, path })
    }

    /// Claims `name` unless another process holds it.
    fn try_claim(&self, name: &WalFileName) -> anyhow::Result<Option<Claim>> {
        let (file, path) = self.claim_file(name)?;
        Ok(file.try_lock().is_ok().then(|| Claim { _file: file, path }))
    }

    /// Whether another process holds a claim on `name`.
    fn claimed_elsewhere(&self, name: &WalFileName) -> bool {
        matches!(self.try_claim(name), Ok(None))
    }

    /// The pusher's lock: `None` if another pusher holds it.
    fn lock_pusher(&self) -> anyhow::Result<Option<File>> {
        let file = self.lock_file(&self.dir.join(".lock"))?;
        Ok(file.try_lock().is_ok().then_some(file))
    }

    fn pusher_running(&self) -> bool {
        matches!(self.lock_pusher(), Ok(None))
    }

    /// Uploads `name` ahead unless it is claimed, marked or no longer waiting; true if it
    /// did.
    fn push_ahead(
        &self,
        gateway: &Gateway,
        level: i32,
        wal_dir: &Path,
        name: &WalFileName,
        path: &Path,
    ) -> anyhow::Result<bool> {
        let Some(_claim) = self.try_claim(name)? else {
            return Ok(false);
        };
        let ready = wal_dir.join(format!("archive_status/{name}.ready"));
        if !ready.exists() || self.dir.join(name.to_string()).exists() {
            return Ok(false);
        }
        let meta = upload(gateway, level, name, path)?;
        self.put(name, &meta)?;
        Ok(true)
    }

    /// How many markers vouch for files still waiting: acknowledged, not yet asked for.
    fn outstanding(&self, wal_dir: &Path) -> usize {
        let status = wal_dir.join("archive_status");
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let file_name = e.file_name();
                file_name.to_str().is_some_and(|f| {
                    f.parse::<WalFileName>().is_ok() && status.join(format!("{f}.ready")).exists()
                })
            })
            .count()
    }

    /// The files waiting for archiving in `wal_dir` (`None` without an archive_status
    /// directory). Markers and claims of files no longer waiting are removed.
    fn waiting(&self, wal_dir: &Path) -> Option<Waiting> {
        // Read before the status files: a claim made after this listing is never taken
        // for a stale one (a file is claimed only while it waits).
        let entries: Vec<_> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        let mut ready: Vec<WalFileName> = std::fs::read_dir(wal_dir.join("archive_status"))
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".ready")?.parse().ok())
            .collect();
        let mut marked = Vec::new();
        for entry in entries {
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str().filter(|f| *f != ".lock") else {
                continue;
            };
            let claim_or_tmp = file_name
                .strip_suffix(".lock")
                .or_else(|| file_name.strip_suffix(".tmp"));
            let (base, is_marker) = match claim_or_tmp {
                Some(base) => (base, false),
                None => (file_name, true),
            };
            let name = base.parse::<WalFileName>().ok();
            match name {
                Some(n) if ready.contains(&n) => {
                    if is_marker {
                        marked.push(n);
                    }
                }
                _ => {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        ready.retain(|n| !marked.contains(n));
        // As PostgreSQL's archiver picks them: history files first, then by name.
        ready.sort_by_cached_key(|n| (!matches!(n, WalFileName::History(_)), n.to_string()));
        Some(Waiting {
            unmarked: ready,
            marked: marked.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn name(s: &str) -> WalFileName {
        s.parse().unwrap()
    }

    /// Settings for a gateway nobody answers at: any upload fails at once.
    fn unreachable_gateway() -> Settings {
        Settings::for_test("http://127.0.0.1:9")
    }

    #[test]
    fn a_call_waits_for_the_pusher_uploading_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path();
        std::fs::create_dir_all(wal.join("archive_status")).unwrap();
        let n = name("000000010000000000000001");
        let file = wal.join(n.to_string());
        std::fs::write(&file, b"a segment").unwrap();
        std::fs::write(wal.join(format!("archive_status/{n}.ready")), "").unwrap();
        let settings = unreachable_gateway();

        // The pusher acknowledges the file while the call waits: the call succeeds
        // without uploading (it could not: nothing answers).
        let pusher = Markers::new(&settings, wal);
        let claim = pusher.claim(&n).unwrap();
        let answer = pushing(&file);
        assert!(
            answer.recv_timeout(Duration::from_millis(300)).is_err(),
            "the call waits for the pusher"
        );
        pusher.put(&n, &std::fs::metadata(&file).unwrap()).unwrap();
        drop(claim);
        answer.recv_timeout(crate::TEST_DEADLINE).unwrap().unwrap();

        // A pusher that gives up (or dies: the kernel drops its lock) leaves no marker,
        // and the call uploads the file itself.
        std::fs::remove_file(wal.join(format!("{PUSHED}/{n}"))).unwrap();
        let claim = Markers::new(&settings, wal).claim(&n).unwrap();
        let answer = pushing(&file);
        assert!(
            answer.recv_timeout(Duration::from_millis(100)).is_err(),
            "the call waits for the pusher"
        );
        drop(claim);
        let e = answer
            .recv_timeout(crate::TEST_DEADLINE)
            .unwrap()
            .unwrap_err();
        assert!(format!("{e:#}").contains("127.0.0.1:9"), "{e:#}");
    }

    /// Runs `push` to the unreachable gateway on a thread of its own: its result comes
    /// on the receiver.
    fn pushing(file: &Path) -> mpsc::Receiver<anyhow::Result<()>> {
        let (tx, rx) = mpsc::channel();
        let file = file.to_owned();
        std::thread::spawn(move || tx.send(push(&unreachable_gateway(), &file)));
        rx
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
        assert!(markers.vouches(&n, &std::fs::metadata(&file).unwrap()));
        // PostgreSQL may ask again (a crash before it noted success): still true.
        assert!(markers.vouches(&n, &std::fs::metadata(&file).unwrap()));

        std::fs::write(&file, b"other contents, longer").unwrap();
        assert!(!markers.vouches(&n, &std::fs::metadata(&file).unwrap()));
        assert!(!markers.dir.join(n.to_string()).exists());

        // A marker of another archive vouches for nothing here.
        markers.put(&n, &std::fs::metadata(&file).unwrap()).unwrap();
        let elsewhere = Markers {
            dir: markers.dir.clone(),
            archive: "http://other-gw main".into(),
        };
        assert!(!elsewhere.vouches(&n, &std::fs::metadata(&file).unwrap()));
    }

    #[test]
    fn waiting_files_come_in_the_archivers_order_and_stale_markers_and_claims_go() {
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
            "000000010000000000000002.partial",
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
        std::fs::create_dir_all(&markers.dir).unwrap();
        markers
            .put(
                &marked,
                &std::fs::metadata(wal.join(marked.to_string())).unwrap(),
            )
            .unwrap();
        // A claim of a waiting file stays: its holder may be uploading it.
        let claimed = markers.claim(&name("000000010000000000000002")).unwrap();
        // Markers and claims of a file no longer waiting are stale and go.
        let stale = name("000000010000000000000000");
        markers
            .put(
                &stale,
                &std::fs::metadata(wal.join("00000002.history")).unwrap(),
            )
            .unwrap();
        std::fs::write(markers.dir.join(format!("{stale}.lock")), "").unwrap();
        let pusher = markers.lock_pusher().unwrap().expect("no pusher yet");

        let waiting = markers.waiting(wal).unwrap();
        let unmarked: Vec<String> = waiting.unmarked.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            unmarked,
            [
                "00000002.history",
                "000000010000000000000001",
                "000000010000000000000002",
                "000000010000000000000002.partial",
                "000000010000000000000004"
            ]
        );
        assert_eq!(waiting.marked, 1);
        assert_eq!(markers.outstanding(wal), 1);
        assert!(!markers.dir.join(stale.to_string()).exists());
        assert!(!markers.dir.join(format!("{stale}.lock")).exists());
        assert!(markers.dir.join(marked.to_string()).exists());
        assert!(markers.dir.join("000000010000000000000002.lock").exists());

        // One pusher at a time; a claimed file is left to its holder.
        assert!(markers.pusher_running());
        assert!(markers.lock_pusher().unwrap().is_none());
        assert!(
            markers
                .try_claim(&name("000000010000000000000002"))
                .unwrap()
                .is_none()
        );
        assert!(markers.claimed_elsewhere(&name("000000010000000000000002")));
        // A failed attempt leaves the holder's lock file alone.
        assert!(markers.dir.join("000000010000000000000002.lock").exists());
        drop((claimed, pusher));
        assert!(!markers.pusher_running());
        // A claim takes its lock file with it.
        assert!(!markers.dir.join("000000010000000000000002.lock").exists());
        assert!(
            markers
                .try_claim(&name("000000010000000000000002"))
                .unwrap()
                .is_some()
        );
    }
}
