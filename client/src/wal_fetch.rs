//! `wal-fetch`: restore one WAL file, and prefetch the segments recovery will ask for next.
//!
//! PostgreSQL's startup process calls `restore_command` for one file at a time and replays
//! it before asking for the next, so every round trip to the gateway stalls replay. After
//! each segment, a call here notes it in `pg_wal/.walgate/prefetch/.cursor` and, unless one
//! runs (it holds a lock), starts a detached `walgate-client wal-prefetch`. The prefetcher
//! keeps the segments that follow the cursor downloaded into that directory, each written
//! under a temporary name and renamed when complete, following the cursor as replay moves
//! on, until the archive ends or recovery stops asking. The next call finds its segment
//! there and only renames it into place.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use walgate_core::{SegmentName, SegmentSize, WalFileName};

use crate::config::Settings;
use crate::gateway::{Fetched, Gateway};

/// Where prefetched segments wait, under pg_wal.
pub const PREFETCH: &str = ".walgate/prefetch";

/// The prefetcher's nice value (0 is normal, 19 the lowest).
const PREFETCH_NICE: i32 = 10;

/// The symbolic link to the name of the segment recovery restored last, which the
/// prefetcher follows.
const CURSOR: &str = ".cursor";

/// The file a running prefetcher holds locked.
const LOCK: &str = ".lock";

/// How long the prefetcher waits, its window full, for replay to take a segment before
/// it exits (the next call starts another), and how often it looks meanwhile.
const PREFETCH_IDLE: Duration = Duration::from_secs(5);
const PREFETCH_POLL: Duration = Duration::from_millis(10);

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
    let fetched = if take_prefetched(&dir, name, dest)
        || prefetch_arrives(&dir, name, dest, settings.retry_for)
    {
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
            // A running prefetcher follows it; a failed write only costs prefetching.
            let _ = set_cursor(&dir, *segment);
            if !prefetcher_running(&dir) {
                start_prefetch(settings, *segment, size, &dir);
            }
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

/// Waits, for at most `wait`, for `name` while the running prefetcher is downloading it
/// (its temporary file is there), and takes it. Downloading it again would race the
/// prefetcher for the same cores and the same link, and arrive no sooner.
fn prefetch_arrives(dir: &Path, name: &WalFileName, dest: &Path, wait: Duration) -> bool {
    let part = format!("{name}.{}", crate::durable::PART);
    let downloading = || {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_str().is_some_and(|f| f.starts_with(&part)))
        })
    };
    let deadline = Instant::now() + wait;
    while downloading() && prefetcher_running(dir) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
        if take_prefetched(dir, name, dest) {
            return true;
        }
    }
    take_prefetched(dir, name, dest)
}

/// Whether a prefetcher holds its lock now. Another started meanwhile would only find the
/// lock taken and exit: a process per restored segment for nothing.
fn prefetcher_running(dir: &Path) -> bool {
    std::fs::File::open(dir.join(LOCK))
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

/// The prefetcher (hidden `wal-prefetch` command): keeps the segments that follow the
/// cursor (at first `after`) downloaded into `dir`, at most `settings.prefetch` of them
/// and `prefetch_max_bytes`, on `settings.jobs` threads, and removes any segment there
/// outside that window. It exits at the archive's end (or the first failure), or once
/// replay has taken nothing for `PREFETCH_IDLE`.
pub fn prefetch(
    settings: &Settings,
    after: SegmentName,
    size: SegmentSize,
    dir: &Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    // Below the startup process: it replays (and calls here) while this reads ahead, and
    // must not wait for a core behind the decoding of segments it needs later. Its
    // threads, started later, inherit it. Failing to lower it is no reason not to run.
    let _ = rustix::process::setpriority_process(None, PREFETCH_NICE);
    let lock = std::fs::File::create(dir.join(LOCK))?;
    if lock.try_lock().is_err() {
        return Ok(()); // another prefetcher is at work
    }
    let count = settings
        .prefetch
        .min(usize::try_from(settings.prefetch_max_bytes / size.bytes()).unwrap_or(usize::MAX));
    if count == 0 {
        return Ok(()); // WALGATE_PREFETCH_MAX_MIB holds no whole segment
    }
    let window = Window::new(dir, size, count, after);
    window.adopt_left()?;
    let gateway = Gateway::new(settings)?.without_retries();
    std::thread::scope(|s| {
        for _ in 0..settings.jobs.max(1) {
            s.spawn(|| {
                while let Some(next) = window.next() {
                    let path = dir.join(next.to_string());
                    // Checked for size and synced before the rename that makes it
                    // visible. Synced here, on the prefetcher's threads: PostgreSQL
                    // fsyncs every restored segment as it keeps it in pg_wal
                    // (durable_rename), and would otherwise wait for the writeback on the
                    // replay path.
                    let got = gateway.fetch_wal(
                        &WalFileName::Segment(next),
                        &path,
                        Some(size.bytes()),
                        true,
                    );
                    let more = matches!(got, Ok(Fetched::Written));
                    if more {
                        settings.log(format_args!("prefetched {next}"));
                    }
                    window.finished(next, more);
                }
            });
        }
    });
    Ok(())
}

/// Points the cursor at `segment`: a symbolic link, replaced atomically, that lives in
/// its inode (a file rewritten in place would cost a block write on every call).
fn set_cursor(dir: &Path, segment: SegmentName) -> std::io::Result<()> {
    let tmp = dir.join(format!("{CURSOR}.{}", std::process::id()));
    let target = segment.to_string();
    if let Err(e) = std::os::unix::fs::symlink(&target, &tmp) {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(e);
        }
        // Left by a crashed call that had this process id: only then is it removed, so
        // that every call does not pay for the rare one.
        std::fs::remove_file(&tmp)?;
        std::os::unix::fs::symlink(&target, &tmp)?;
    }
    std::fs::rename(&tmp, dir.join(CURSOR))
}

/// `name` if it names a segment.
pub fn segment_name(name: &str) -> Option<SegmentName> {
    match name.parse() {
        Ok(WalFileName::Segment(s)) => Some(s),
        _ => None,
    }
}

/// The segments the prefetcher keeps ready: the `count` after the cursor.
struct Window<'a> {
    dir: &'a Path,
    size: SegmentSize,
    count: usize,
    state: Mutex<WindowState>,
}

struct WindowState {
    /// The segment recovery restored last.
    after: SegmentName,
    /// Downloaded into the directory: a call takes them from there, then moves the cursor.
    ready: HashSet<SegmentName>,
    in_flight: HashSet<SegmentName>,
    /// The archive ended, or the gateway failed: no more asking.
    done: bool,
    /// When a download last ended or replay last moved on.
    busy_at: Instant,
    cursor_read_at: Instant,
}

impl Window<'_> {
    fn new(dir: &Path, size: SegmentSize, count: usize, after: SegmentName) -> Window<'_> {
        let now = Instant::now();
        Window {
            dir,
            size,
            count,
            state: Mutex::new(WindowState {
                after,
                ready: HashSet::new(),
                in_flight: HashSet::new(),
                done: false,
                busy_at: now,
                cursor_read_at: now,
            }),
        }
    }

    /// Keeps what an earlier prefetcher left in the window (renamed into place, so
    /// whole) and removes the rest: segments outside it, a crashed download's temporary
    /// file. Later, only segments outside the window go, as downloads are under way.
    fn adopt_left(&self) -> std::io::Result<()> {
        let mut state = self.state.lock().expect("no panics hold this lock");
        let window: HashSet<SegmentName> = self.segments(state.after).collect();
        for entry in std::fs::read_dir(self.dir)?.flatten() {
            let file = entry.file_name();
            match file.to_str().and_then(segment_name) {
                Some(s) if window.contains(&s) => {
                    state.ready.insert(s);
                }
                _ if file == LOCK || file == CURSOR => {}
                _ => {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(())
    }

    fn segments(&self, after: SegmentName) -> impl Iterator<Item = SegmentName> {
        after.following(self.size).take(self.count)
    }

    /// The next segment to download, waiting while the window is full; `None` when the
    /// prefetcher is done.
    fn next(&self) -> Option<SegmentName> {
        loop {
            {
                let mut state = self.state.lock().expect("no panics hold this lock");
                if state.done {
                    return None;
                }
                if state.cursor_read_at.elapsed() >= PREFETCH_POLL {
                    self.follow_cursor(&mut state);
                }
                let wanted = self
                    .segments(state.after)
                    .find(|s| !state.ready.contains(s) && !state.in_flight.contains(s));
                if let Some(next) = wanted {
                    state.in_flight.insert(next);
                    return Some(next);
                }
                if state.in_flight.is_empty() && state.busy_at.elapsed() > PREFETCH_IDLE {
                    return None;
                }
            }
            std::thread::sleep(PREFETCH_POLL);
        }
    }

    /// Moves the window to where replay is, removing the segments it left behind (those
    /// before it were taken already; those past it belong to another timeline or an
    /// earlier start).
    fn follow_cursor(&self, state: &mut WindowState) {
        state.cursor_read_at = Instant::now();
        let cursor = std::fs::read_link(self.dir.join(CURSOR))
            .ok()
            .and_then(|c| segment_name(c.to_str()?));
        let Some(cursor) = cursor.filter(|c| *c != state.after) else {
            return;
        };
        state.after = cursor;
        state.busy_at = Instant::now();
        let window: HashSet<SegmentName> = self.segments(cursor).collect();
        state.ready.retain(|s| {
            let keep = window.contains(s);
            if !keep {
                let _ = std::fs::remove_file(self.dir.join(s.to_string()));
            }
            keep
        });
    }

    /// Records the end of `segment`'s download; past the first that failed or was not
    /// archived, nothing more is asked for.
    fn finished(&self, segment: SegmentName, written: bool) {
        let mut state = self.state.lock().expect("no panics hold this lock");
        state.in_flight.remove(&segment);
        state.busy_at = Instant::now();
        if written {
            state.ready.insert(segment);
        } else {
            state.done = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_running_prefetcher_is_seen_by_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!prefetcher_running(dir.path()), "no lock file yet");
        let lock = std::fs::File::create(dir.path().join(LOCK)).unwrap();
        assert!(!prefetcher_running(dir.path()), "not locked");
        lock.try_lock().unwrap();
        assert!(prefetcher_running(dir.path()));
        drop(lock);
        assert!(!prefetcher_running(dir.path()), "its lock ends with it");
    }

    #[test]
    fn the_window_follows_the_cursor_and_drops_what_replay_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let seg = |s: &str| segment_name(s).unwrap();
        let file = |s: &str| dir.path().join(s);
        let download = |w: &Window, s: SegmentName| {
            std::fs::write(file(&s.to_string()), b"segment").unwrap();
            w.finished(s, true);
        };
        let move_cursor = |s: &str| {
            set_cursor(dir.path(), seg(s)).unwrap();
            // Not a race: a sleep lasts at least this long, so the window's next call
            // reads the cursor again, however the threads are scheduled.
            std::thread::sleep(PREFETCH_POLL);
        };
        let size = SegmentSize::new(16 << 20).unwrap();
        let w = Window::new(dir.path(), size, 3, seg("000000010000000000000001"));
        // An earlier prefetcher's segment in the window stays; the rest goes.
        for left in [
            "000000010000000000000003",
            "000000010000000000000009",
            "x.walgate-part-7",
        ] {
            std::fs::write(file(left), b"left").unwrap();
        }
        w.adopt_left().unwrap();
        assert!(file("000000010000000000000003").exists());
        assert!(!file("000000010000000000000009").exists());
        assert!(!file("x.walgate-part-7").exists());

        let first: Vec<SegmentName> = (0..2).map(|_| w.next().unwrap()).collect();
        assert_eq!(
            first,
            ["000000010000000000000002", "000000010000000000000004"].map(seg)
        );
        for s in first {
            download(&w, s);
        }
        // Replay took 02 and 03: the window moves on by two.
        std::fs::remove_file(file("000000010000000000000002")).unwrap();
        std::fs::remove_file(file("000000010000000000000003")).unwrap();
        move_cursor("000000010000000000000003");
        let next = [w.next().unwrap(), w.next().unwrap()];
        assert_eq!(
            next,
            ["000000010000000000000005", "000000010000000000000006"].map(seg)
        );
        for s in next {
            download(&w, s);
        }

        // Recovery went on on timeline 2: the old timeline's segments go.
        move_cursor("000000020000000000000004");
        assert_eq!(w.next(), Some(seg("000000020000000000000005")));
        for s in ["04", "05", "06"] {
            assert!(!file(&format!("0000000100000000000000{s}")).exists(), "{s}");
        }

        // The archive ends at timeline 2's segment 05: nothing more is asked for.
        w.finished(seg("000000020000000000000005"), false);
        assert_eq!(w.next(), None);
    }

    #[test]
    fn a_cursor_link_left_by_a_crashed_call_does_not_block_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let left = dir.path().join(format!("{CURSOR}.{}", std::process::id()));
        std::os::unix::fs::symlink("000000010000000000000001", &left).unwrap();
        let segment = segment_name("000000010000000000000002").unwrap();
        set_cursor(dir.path(), segment).unwrap();
        let cursor = std::fs::read_link(dir.path().join(CURSOR)).unwrap();
        assert_eq!(cursor.to_str(), Some("000000010000000000000002"));
        assert!(!left.exists());
    }

    #[test]
    fn a_prefetcher_with_no_room_for_a_segment_exits_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::for_test("http://127.0.0.1:9");
        (settings.prefetch, settings.prefetch_max_bytes) = (16, 8 << 20);
        let after = segment_name("000000010000000000000001").unwrap();
        let started = std::time::Instant::now();
        prefetch(
            &settings,
            after,
            SegmentSize::new(16 << 20).unwrap(),
            dir.path(),
        )
        .unwrap();
        // Waiting for a window with no room to free up would take PREFETCH_IDLE at least.
        assert!(started.elapsed() < PREFETCH_IDLE, "{:?}", started.elapsed());
    }

    /// A pg_wal with its prefetch directory; the directory and a call's `%p` in it.
    fn pg_wal() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let pg_wal = tempfile::tempdir().unwrap();
        let dir = pg_wal.path().join(PREFETCH);
        std::fs::create_dir_all(&dir).unwrap();
        let dest = pg_wal.path().join("RECOVERYXLOG");
        (pg_wal, dir, dest)
    }

    /// Runs `prefetch_arrives` on a thread of its own: its answer comes on the receiver.
    fn waiting_call(dir: &Path, name: WalFileName, dest: &Path) -> mpsc::Receiver<bool> {
        let (tx, rx) = mpsc::channel();
        let (dir, dest) = (dir.to_owned(), dest.to_owned());
        std::thread::spawn(move || tx.send(prefetch_arrives(&dir, &name, &dest, LONG)));
        rx
    }

    /// How long a call may wait for the prefetcher in these tests: longer than any of
    /// them takes, so only a call that waits for nothing ends before the event it waits on.
    const LONG: Duration = Duration::from_secs(120);

    #[test]
    fn a_call_waits_for_the_prefetcher_downloading_its_segment() {
        let (_pg_wal, dir, dest) = pg_wal();
        let name: WalFileName = "000000010000000000000002".parse().unwrap();
        let part = dir.join(format!("{name}.{}7", crate::durable::PART));
        std::fs::write(&part, b"half").unwrap();

        // No prefetcher holds the lock: the file is a crashed one's, not waited for.
        let answer = waiting_call(&dir, name, &dest).recv_timeout(crate::TEST_DEADLINE);
        assert_eq!(answer, Ok(false));

        // A running prefetcher is downloading it: the call waits, however long that
        // takes, and takes the segment once it is renamed into place.
        let lock = std::fs::File::create(dir.join(LOCK)).unwrap();
        lock.try_lock().unwrap();
        std::fs::write(&part, vec![7u8; 1 << 20]).unwrap();
        let answer = waiting_call(&dir, name, &dest);
        assert_eq!(
            answer.recv_timeout(Duration::from_millis(300)),
            Err(mpsc::RecvTimeoutError::Timeout),
            "the call waits while the download is under way"
        );
        std::fs::rename(&part, dir.join(name.to_string())).unwrap();
        assert_eq!(answer.recv_timeout(crate::TEST_DEADLINE), Ok(true));
        assert_eq!(std::fs::metadata(&dest).unwrap().len(), 1 << 20);

        // A download that fails (its file goes, nothing arrives) is waited for no longer.
        std::fs::write(&part, b"half").unwrap();
        let answer = waiting_call(&dir, name, &dest);
        assert_eq!(
            answer.recv_timeout(Duration::from_millis(100)),
            Err(mpsc::RecvTimeoutError::Timeout),
            "the call waits while the download is under way"
        );
        std::fs::remove_file(&part).unwrap();
        assert_eq!(answer.recv_timeout(crate::TEST_DEADLINE), Ok(false));
    }

    #[test]
    fn only_whole_segments_are_taken_from_prefetch() {
        let (_pg_wal, dir, dest) = pg_wal();
        let name: WalFileName = "000000010000000000000002".parse().unwrap();

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
