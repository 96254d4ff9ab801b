//! Base backups: receive a tar stream, read what it says about itself, store it.
//!
//! The body (plain, zstd or gzip) goes to a blocking worker that decodes it, hashes and
//! compresses the tar stream as it passes, and parses it on the way with the `tar` crate:
//! `backup_label` must be the first entry (it names the start LSN and timeline),
//! `global/pg_control` names the database system, and `backup_manifest`, the last entry
//! when pg_basebackup writes to stdout, gives the LSN where the backup is consistent.
//! Compressed output comes back to the async side in chunks and goes to the object store
//! as a multipart upload, so memory stays bounded whatever the backup's size.
//!
//! A backup becomes visible only at the end (DESIGN rules 1 and 4): its catalog row is
//! `uploading` until the data, the manifest and, last, the sentinel object are durable.
//! Any failure aborts the upload, deletes what was written and drops the row.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use object_store::PutPayload;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;
use tokio::sync::mpsc;
use walgate_core::api;
use walgate_core::{
    BackupLabel, ClusterName, Lsn, ParentStart, SegmentName, SegmentPosition, SegmentSize, Timeline,
};

use crate::catalog::{BackupRow, BackupStatus, Catalog, CatalogError, ClusterRow};
use crate::limits::{MemoryBudget, Reserved};
use crate::storage::lock::{LockEnd, locked_at};
use crate::storage::{StorageError, Store, Writer, layout};
use crate::stream::{Encoding, IN_FLIGHT, Tee, channel_reader, drain, forward, refuse_trailing};

/// Largest `backup_label` and `backup_manifest` read into memory.
const MAX_LABEL: u64 = 64 << 10;
const MAX_MANIFEST: u64 = 512 << 20;
/// The memory all backup manifests read so far and not yet stored may take together:
/// uploads past it wait for their turn to read theirs.
pub const MANIFEST_MEMORY: u64 = MAX_MANIFEST;
/// How long an upload waits for memory to read its manifest in.
const MANIFEST_PATIENCE: std::time::Duration = std::time::Duration::from_secs(600);
/// Compressed output is handed to the uploader in chunks of this size.
const EVENT_CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "not a base backup: {0} (send the tar stream of `pg_basebackup -D - -Ft -X fetch`, plain, zstd or gzip)"
    )]
    NotABackup(String),
    #[error(
        "the backup is of database system {found}, but cluster `{cluster}` archives system {expected}"
    )]
    WrongSystem {
        cluster: ClusterName,
        expected: u64,
        found: u64,
    },
    #[error(
        "the backup is of PostgreSQL {found}, but cluster `{cluster}` archives WAL of PostgreSQL {expected}: after a major upgrade, back up into a new cluster name"
    )]
    WrongVersion {
        cluster: ClusterName,
        expected: u32,
        found: u32,
    },
    #[error(
        "this incremental backup was taken against a backup that started at {from}, and cluster `{cluster}` holds no complete backup that did: take it against a manifest the gateway serves (GET /v1/clusters/{cluster}/backups/latest/manifest), or take a full backup"
    )]
    NoParent {
        cluster: ClusterName,
        from: ParentStart,
    },
    #[error(
        "the upload names backup {named} as its parent, but its backup_label says it was taken against a backup that started at {from}, which {named} did not (or it is not this cluster's): nothing was kept"
    )]
    NotTheNamedParent { named: String, from: ParentStart },
    #[error(
        "an incremental backup is a backup without its parent, and a full one has none: ?parent= names {0}, but this backup's label has no INCREMENTAL FROM lines; nothing was kept"
    )]
    ParentOfAFullBackup(String),
    #[error(
        "backup {parent} ends a chain of {MAX_CHAIN} backups, the longest kept: take a full backup (pg_basebackup without --incremental) and build on that"
    )]
    ChainTooLong { parent: String },
    #[error(
        "{0}: an incremental backup on that chain could not be restored, so nothing was kept; take a full backup"
    )]
    BrokenChain(BrokenLink),
    #[error(
        "this incremental backup was taken against backup {parent}, which is {status}: nothing was kept; take it against the newest complete backup (GET …/backups/latest/manifest), or take a full backup"
    )]
    ParentNotComplete {
        parent: String,
        status: &'static str,
    },
    #[error(
        "this incremental backup is of database system {found}, but backup {parent}, which it names as its parent, is of system {expected}: nothing was kept"
    )]
    ParentOfOtherSystem {
        parent: String,
        expected: u64,
        found: u64,
    },
    #[error(
        "incremental backups were taken against backup {id}: {}; delete them first (newest first), or let retention expire the chain as a whole",
        dependants.join(", ")
    )]
    HasDependants { id: String, dependants: Vec<String> },
    #[error("the request body could not be read (cut upload or bad compression): {0}")]
    Body(io::Error),
    #[error(
        "the backup starts at {start}, more than 1 TiB of WAL past the newest WAL archived (position {newest}): archive WAL before taking backups (is archive_command set, and does it reach this cluster?)"
    )]
    BeyondArchive { start: Lsn, newest: SegmentPosition },
    #[error(
        "other uploads' backup manifests fill the memory kept for them, and this one waited 10 minutes: nothing was kept; retry the backup"
    )]
    ManifestsBusy,
    #[error("{MAX_SAME_ID} backups with id {0} exist already: retry in a second")]
    Duplicate(String),
    #[error("no backup {0}")]
    NotFound(String),
    #[error(
        "backup {id} is locked {end} (write-once target): it cannot be deleted before; retention deletes it once its lock ends and the policy expires it"
    )]
    Locked { id: String, end: LockEnd },
    #[error(
        "backup {0} was deleted while it was uploading (by an admin, a purge of the cluster or the cleanup of uploads that stopped sending); nothing was kept: take the backup again"
    )]
    DeletedWhileUploading(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What the worker tells the uploader, in order: the label, then data.
enum Event {
    Label(Box<BackupLabel>),
    Data(Bytes),
}

/// What the worker learned by the end of the stream.
struct Summary {
    size: u64,
    sha256: crate::catalog::Sha256,
    system_identifier: Option<u64>,
    /// The major version in its `PG_VERSION` file.
    pg_version: Option<u32>,
    manifest: Option<HeldManifest>,
    end: Option<(Timeline, Lsn)>,
}

/// A backup manifest read into memory, counted in the manifest budget until stored.
struct HeldManifest {
    bytes: Vec<u8>,
    _memory: Reserved,
}

/// A `Write` that hands compressed output to the uploader in `EVENT_CHUNK` pieces, and
/// holds it back until the label has gone first. It hashes what it stores: the catalog
/// keeps the SHA-256 of the stored object, which a scrub (or `sha256sum`) can check
/// without decompressing, while each zstd frame's own checksum guards the tar inside.
struct EventSink {
    tx: mpsc::Sender<Event>,
    buf: BytesMut,
    label_sent: Arc<AtomicBool>,
    sha: Sha256,
}

impl EventSink {
    fn send(&mut self) -> io::Result<()> {
        let data = std::mem::take(&mut self.buf).freeze();
        self.tx
            .blocking_send(Event::Data(data))
            .map_err(|_| io::Error::other("the upload was abandoned"))
    }
}

impl Write for EventSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        self.sha.update(buf);
        if self.buf.len() >= EVENT_CHUNK && self.label_sent.load(Ordering::Acquire) {
            self.send()?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

/// The part of a backup manifest the gateway uses.
#[derive(Deserialize)]
struct Manifest {
    #[serde(rename = "WAL-Ranges", default)]
    wal_ranges: Vec<WalRange>,
}

#[derive(Deserialize)]
struct WalRange {
    #[serde(rename = "Timeline")]
    timeline: u32,
    #[serde(rename = "End-LSN")]
    end_lsn: String,
}

/// The timeline and LSN where the backup is consistent: the end of the manifest's first
/// WAL range (PostgreSQL lists them newest timeline first, from the backup's end back to
/// its start, when a standby's backup spans a promotion).
fn manifest_end(manifest: &[u8]) -> Result<Option<(Timeline, Lsn)>, BackupError> {
    let bad = |e: String| BackupError::NotABackup(format!("unreadable backup_manifest: {e}"));
    let m: Manifest = serde_json::from_slice(manifest).map_err(|e| bad(e.to_string()))?;
    m.wal_ranges
        .first()
        .map(|r| {
            let lsn = r
                .end_lsn
                .parse()
                .map_err(|e: walgate_core::lsn::LsnParseError| bad(e.to_string()))?;
            Ok((Timeline(r.timeline), lsn))
        })
        .transpose()
}

fn read_small(entry: &mut impl Read, limit: u64, what: &str) -> Result<Vec<u8>, BackupError> {
    let mut buf = Vec::new();
    entry
        .take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(BackupError::Body)?;
    if buf.len() as u64 > limit {
        return Err(BackupError::NotABackup(format!(
            "{what} is larger than {limit} bytes"
        )));
    }
    Ok(buf)
}

/// Tar bytes per stored zstd frame. Frames decode independently, so a restore can
/// decode them on every core.
const FRAME: usize = 8 << 20;

/// Compresses into a sequence of independent zstd frames of `FRAME` input bytes each.
struct Framed<W: Write> {
    encoder: Option<zstd::Encoder<'static, W>>,
    in_frame: usize,
    level: i32,
}

/// Compression workers per backup upload: a backup streamed raw is one long stream, and
/// its speed is that of its compression, so spread it.
fn compression_workers() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4) as u32)
}

impl<W: Write> Framed<W> {
    fn new(out: W, level: i32) -> io::Result<Self> {
        Ok(Framed {
            encoder: Some(Self::encoder(out, level)?),
            in_frame: 0,
            level,
        })
    }

    fn encoder(out: W, level: i32) -> io::Result<zstd::Encoder<'static, W>> {
        let mut e = zstd::Encoder::new(out, level)?;
        e.multithread(compression_workers())?;
        e.include_checksum(true)?;
        Ok(e)
    }

    fn finish(mut self) -> io::Result<W> {
        self.encoder.take().expect("an open frame").finish()
    }
}

impl<W: Write> Write for Framed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(FRAME - self.in_frame);
        let encoder = self.encoder.as_mut().expect("an open frame");
        encoder.write_all(&buf[..n])?;
        self.in_frame += n;
        if self.in_frame == FRAME {
            let out = self.encoder.take().expect("an open frame").finish()?;
            self.encoder = Some(Self::encoder(out, self.level)?);
            self.in_frame = 0;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the tar stream says about itself.
struct Parsed {
    system_identifier: Option<u64>,
    pg_version: Option<u32>,
    manifest: Option<HeldManifest>,
}

/// The blocking half: decode, hash and parse the tar stream, and send it to storage
/// compressed (a zstd body as it came, anything else compressed here).
fn read_backup(
    body: impl Read,
    upload: Upload,
    events: mpsc::Sender<Event>,
) -> Result<Summary, BackupError> {
    let Upload {
        level,
        encoding,
        manifests,
    } = upload;
    let label_sent = Arc::new(AtomicBool::new(false));
    let sink = EventSink {
        tx: events.clone(),
        buf: BytesMut::new(),
        label_sent: label_sent.clone(),
        sha: Sha256::new(),
    };
    let send_label = |label: BackupLabel| {
        events
            .blocking_send(Event::Label(Box::new(label)))
            .map_err(|_| BackupError::Body(io::Error::other("the upload was abandoned")))?;
        label_sent.store(true, Ordering::Release);
        Ok(())
    };
    let (sha, size, parsed) = match encoding {
        Encoding::Zstd => {
            // The client's frames are stored as sent; the decoded tar is only parsed.
            let decoder = zstd::Decoder::new(Tee::new(body, sink)).map_err(BackupError::Body)?;
            let (tee, parsed) = parse(decoder, io::sink(), &manifests, send_label)?;
            let mut raw = tee.inner.finish().into_inner();
            refuse_trailing(&mut raw).map_err(BackupError::Body)?;
            raw.out.flush().map_err(BackupError::Body)?;
            (raw.out.sha, tee.bytes, parsed)
        }
        Encoding::Identity | Encoding::Gzip => {
            let decoded: Box<dyn Read> = match encoding {
                Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(body)),
                _ => Box::new(body),
            };
            let encoder = Framed::new(sink, level).map_err(BackupError::Body)?;
            let (tee, parsed) = parse(decoded, encoder, &manifests, send_label)?;
            let mut sink = tee.out.finish().map_err(BackupError::Body)?;
            sink.flush().map_err(BackupError::Body)?;
            (sink.sha, tee.bytes, parsed)
        }
    };
    let end = parsed
        .manifest
        .as_ref()
        .map(|m| manifest_end(&m.bytes))
        .transpose()?
        .flatten();
    Ok(Summary {
        size,
        sha256: sha.finalize().into(),
        system_identifier: parsed.system_identifier,
        pg_version: parsed.pg_version,
        manifest: parsed.manifest,
        end,
    })
}

/// Parses the decoded tar stream, counting it and copying it to `out` on the way; hands
/// the label to `on_label` as soon as it is read.
fn parse<R: Read, W: Write>(
    decoded: R,
    out: W,
    manifests: &MemoryBudget,
    on_label: impl FnOnce(BackupLabel) -> Result<(), BackupError>,
) -> Result<(Tee<R, W>, Parsed), BackupError> {
    let tee = Tee::new(decoded, out);
    let mut archive = tar::Archive::new(tee);
    let not_tar = |e: io::Error| {
        if e.kind() == io::ErrorKind::Other || e.kind() == io::ErrorKind::InvalidData {
            BackupError::NotABackup(format!("not a tar stream: {e}"))
        } else {
            BackupError::Body(e)
        }
    };
    let mut parsed = Parsed {
        system_identifier: None,
        pg_version: None,
        manifest: None,
    };
    let mut on_label = Some(on_label);
    // Where the last member's padded data ends: a stream that stops there, without the
    // end-of-archive marker, was cut (a failed pg_basebackup piped into curl ends its
    // body cleanly), and the tar crate takes that for the end of the archive.
    let mut members_end = 0u64;
    let mut last = String::new();
    // Raw: the tar crate would read a GNU long-name or PAX member whole into memory,
    // whatever size its header claims. pg_basebackup writes neither (its names fit the
    // ustar header), and the members read here have short names.
    for entry in archive.entries().map_err(not_tar)?.raw(true) {
        let mut entry = entry.map_err(not_tar)?;
        let path = entry
            .path()
            .map_err(not_tar)?
            .to_string_lossy()
            .into_owned();
        members_end = entry.raw_file_position() + entry.size().div_ceil(512) * 512;
        if let Some(send) = on_label.take() {
            if path != "backup_label" {
                return Err(BackupError::NotABackup(format!(
                    "the tar stream starts with `{path}`, not `backup_label`"
                )));
            }
            let text = read_small(&mut entry, MAX_LABEL, "backup_label")?;
            let label: BackupLabel = String::from_utf8_lossy(&text).parse().map_err(
                |e: walgate_core::backup::BackupLabelError| BackupError::NotABackup(e.to_string()),
            )?;
            send(label)?;
        } else if path == "global/pg_control" {
            let head = read_small(&mut entry.by_ref().take(8), 8, "pg_control")?;
            let bytes: [u8; 8] = head
                .try_into()
                .map_err(|_| BackupError::NotABackup("global/pg_control is truncated".into()))?;
            parsed.system_identifier = Some(u64::from_le_bytes(bytes));
        } else if path == "PG_VERSION" {
            let text = read_small(&mut entry, 16, "PG_VERSION")?;
            let version = std::str::from_utf8(&text)
                .ok()
                .and_then(|t| t.trim().parse().ok());
            parsed.pg_version = Some(version.ok_or_else(|| {
                BackupError::NotABackup("PG_VERSION does not hold a major version".into())
            })?);
        } else if path == "backup_manifest" {
            // Counted before it is read: the header says how large it is. Others' large
            // manifests, read slowly, may hold the budget: wait a while, then give up.
            let memory = manifests
                .reserve_blocking(entry.size().min(MAX_MANIFEST + 1), MANIFEST_PATIENCE)
                .ok_or(BackupError::ManifestsBusy)?;
            parsed.manifest = Some(HeldManifest {
                bytes: read_small(&mut entry, MAX_MANIFEST, "backup_manifest")?,
                _memory: memory,
            });
        }
        last = path;
    }
    if on_label.is_some() {
        return Err(BackupError::NotABackup("the tar stream is empty".into()));
    }
    // The tar crate stops at the end-of-archive marker: the record padding after it is
    // part of the stream too, and a body cut there must still be noticed.
    let mut tee = archive.into_inner();
    if tee.bytes < members_end + 512 {
        return Err(BackupError::NotABackup(format!(
            "the tar stream stops after `{last}` without the end-of-archive marker: \
             pg_basebackup failed or the upload was cut (check pg_basebackup's exit status)"
        )));
    }
    io::copy(&mut tee, &mut io::sink()).map_err(BackupError::Body)?;
    Ok((tee, parsed))
}

/// The most backups given the same id (time and start WAL file) told apart by a suffix.
const MAX_SAME_ID: u32 = 16;

/// The id of a backup started at `at` from `label`: sorts by time, says where it starts.
fn backup_id(at: OffsetDateTime, label: &BackupLabel) -> String {
    let stamp = at
        .format(format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .expect("a UTC timestamp formats");
    format!("{stamp}-{}", label.start_wal)
}

/// A link of a chain that a restore cannot use: a backup's parent is missing, or is not
/// complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    /// The backup whose parent is unusable.
    pub backup: String,
    pub parent: String,
    /// `missing`, `uploading` or `deleting`.
    pub state: &'static str,
}

impl std::fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "incremental backup {} was taken against backup {}, which is {}",
            self.backup, self.parent, self.state
        )
    }
}

/// The chains of a cluster's backups: which full backup and incrementals a restore of
/// each combines.
pub struct Chains<'a> {
    by_id: std::collections::HashMap<&'a str, &'a BackupRow>,
}

impl<'a> Chains<'a> {
    pub fn new(backups: &'a [BackupRow]) -> Self {
        Chains {
            by_id: backups.iter().map(|b| (b.id.as_str(), b)).collect(),
        }
    }

    /// `b`'s chain as far as the catalog has it, full backup (or the oldest link left)
    /// first and `b` last, and the first link found unusable on the way.
    fn walk(&self, b: &'a BackupRow) -> (Vec<&'a BackupRow>, Option<BrokenLink>) {
        let mut links = vec![b];
        let mut broken = None;
        while let Some(parent) = &links[links.len() - 1].parent {
            let at = links[links.len() - 1];
            let link = |state| BrokenLink {
                backup: at.id.clone(),
                parent: parent.clone(),
                state,
            };
            // Parents are older than their children, so a chain cannot loop; the bound
            // keeps a corrupt catalog from hanging a request.
            if links.len() > self.by_id.len() {
                broken.get_or_insert(link("a link of a loop"));
                break;
            }
            let Some(&next) = self.by_id.get(parent.as_str()) else {
                broken.get_or_insert(link("missing"));
                break;
            };
            if next.status != BackupStatus::Complete {
                broken.get_or_insert(link(next.status.as_str()));
            }
            links.push(next);
        }
        links.reverse();
        (links, broken)
    }

    /// `b`'s chain, full backup first and `b` last, when every link before `b` is
    /// complete.
    pub fn of(&self, b: &'a BackupRow) -> Result<Vec<&'a BackupRow>, BrokenLink> {
        match self.walk(b) {
            (links, None) => Ok(links),
            (_, Some(broken)) => Err(broken),
        }
    }

    /// The ids of `b`'s chain as far as the catalog has it, oldest first.
    pub fn ids(&self, b: &'a BackupRow) -> Vec<String> {
        self.walk(b).0.iter().map(|l| l.id.clone()).collect()
    }

    /// The backups taken against `id` that are not being deleted.
    pub fn dependants(&self, id: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .by_id
            .values()
            .filter(|b| b.parent.as_deref() == Some(id) && b.status != BackupStatus::Deleting)
            .map(|b| b.id.clone())
            .collect();
        ids.sort();
        ids
    }
}

/// The backup's API form (and sentinel), given its cluster's chains and segment size if
/// known.
pub fn to_api(
    cluster: &ClusterName,
    b: &BackupRow,
    chains: &Chains,
    segment_size: Option<SegmentSize>,
) -> api::Backup {
    let size = segment_size.unwrap_or(SegmentSize::DEFAULT);
    let segment_of = |tli: Timeline, lsn: Lsn| {
        SegmentName::from_segment_no(tli, lsn.0 / size.bytes(), size).to_string()
    };
    api::Backup {
        id: b.id.clone(),
        cluster: cluster.to_string(),
        status: b.status.as_str().to_owned(),
        label: b.label.clone(),
        method: b.method.clone(),
        from_standby: b.from_standby,
        system_identifier: b.system_identifier.map(|s| s.to_string()),
        start_lsn: b.start_lsn.to_string(),
        start_timeline: b.start_timeline.0,
        checkpoint_lsn: b.checkpoint_lsn.to_string(),
        end_lsn: b.end_lsn.map(|l| l.to_string()),
        end_timeline: b.end_timeline.map(|t| t.0),
        start_wal: segment_of(b.start_timeline, b.start_lsn),
        // The end LSN points just past the last record: that byte's segment is needed.
        end_wal: b
            .end_lsn
            .zip(b.end_timeline)
            .map(|(l, t)| segment_of(t, Lsn(l.0.saturating_sub(1)))),
        size: b.size,
        stored_size: b.stored_size,
        sha256: b.sha256_hex(),
        has_manifest: b.has_manifest,
        started_at: b.started_at,
        finished_at: b.finished_at,
        kind: b.kind(),
        parent: b.parent.clone(),
        chain: chains.ids(b),
    }
}

/// How often a running upload records that it is alive.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(60);
/// An upload silent this long belongs to a gateway that died; retention removes it.
pub const STALE_UPLOAD: std::time::Duration = std::time::Duration::from_secs(600);

/// The most of a refused backup body read before answering, the longest wait for its
/// next chunk, and for all of it: a sender trickling bytes must not keep the cluster's
/// upload slot.
const REFUSED_DRAIN_MAX: u64 = 256 << 20;
const REFUSED_DRAIN_IDLE: std::time::Duration = std::time::Duration::from_secs(10);
const REFUSED_DRAIN_TOTAL: std::time::Duration = std::time::Duration::from_secs(60);

/// How a backup upload is read.
pub struct Upload {
    /// The zstd level a body not sent as zstd is compressed at.
    pub level: i32,
    pub encoding: Encoding,
    /// The budget its manifest is read within.
    pub manifests: MemoryBudget,
}

/// Receives one base backup from `body` and stores it; returns the completed row.
/// `named_parent`: the backup the uploader took an incremental against (`?parent=`),
/// checked against its label.
pub async fn push<S, E>(
    catalog: &dyn Catalog,
    store: &Store,
    cluster: &ClusterName,
    upload: Upload,
    named_parent: Option<String>,
    body: S,
) -> Result<BackupRow, BackupError>
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let (body_tx, body_rx) = mpsc::channel::<io::Result<Bytes>>(IN_FLIGHT);
    let (event_tx, mut events) = mpsc::channel::<Event>(8);
    let pump = tokio::spawn(async move {
        let mut body = body;
        // The HTTP layer's backup pace allows an hour of silence: pg_basebackup sends
        // nothing while its checkpoint runs, which may take minutes.
        forward(&mut body, body_tx).await;
        body
    });
    let reader = channel_reader(body_rx);
    let worker = tokio::task::spawn_blocking(move || read_backup(reader, upload, event_tx));

    let mut upload: Option<(BackupRow, Writer)> = None;
    let mut failure: Option<BackupError> = None;
    // Beats go by the clock, not by data: a stretch of input that compresses to almost
    // nothing must not look like a dead gateway's upload.
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = beat.tick() => {
                if let Some((row, _)) = &upload {
                    let now = OffsetDateTime::now_utc();
                    if let Err(e) = catalog.beat_backup(cluster, &row.id, now).await {
                        tracing::warn!(%cluster, backup = %row.id, error = %e, "backup heartbeat not recorded");
                    }
                }
                continue;
            }
        };
        let Some(event) = event else { break };
        let step = match event {
            Event::Label(label) => start(catalog, store, cluster, &label, named_parent.as_deref())
                .await
                .map(|u| upload = Some(u)),
            Event::Data(data) => match upload.as_mut() {
                Some((_, writer)) => writer.write(data).await.map_err(BackupError::from),
                None => Ok(()),
            },
        };
        if let Err(e) = step {
            failure = Some(e);
            break;
        }
    }
    drop(events); // unblocks a worker waiting to send
    let summary = worker.await.expect("backup worker panicked");
    let refused = match (&failure, &summary) {
        (Some(e), _) | (None, Err(e)) => !matches!(e, BackupError::Body(_)),
        _ => false,
    };
    if refused {
        // The rest of a refused body is read and dropped (within bounds), so that curl
        // reads the refusal instead of failing on a broken pipe half-way through.
        // The pump ends at its next chunk, now that the worker's reader is gone.
        let abort = pump.abort_handle();
        match tokio::time::timeout(REFUSED_DRAIN_IDLE, pump).await {
            Ok(Ok(mut body)) => {
                let drained = drain(&mut body, REFUSED_DRAIN_MAX, REFUSED_DRAIN_IDLE);
                let _ = tokio::time::timeout(REFUSED_DRAIN_TOTAL, drained).await;
            }
            _ => abort.abort(),
        }
    } else {
        pump.abort();
    }
    let id = upload.as_ref().map(|(row, _)| row.id.clone());
    let result = match (failure, summary, upload) {
        (None, Ok(summary), Some((row, writer))) => {
            finish(catalog, store, cluster, row, writer, summary).await
        }
        (Some(e), _, upload) | (None, Err(e), upload) => {
            if let Some((_, writer)) = upload {
                let _ = writer.abort().await;
            }
            Err(e)
        }
        (None, Ok(_), None) => Err(BackupError::NotABackup("no backup_label".into())),
    };
    if let (Err(_), Some(id)) = (&result, id)
        && let Err(e) = discard(catalog, store, cluster, &id).await
    {
        // The store is likely down: leave the row for retention's next run to finish.
        tracing::error!(%cluster, backup = %id, error = %e, "could not clean up a failed backup upload; retention will");
        if let Err(e) = mark_deleting(catalog, cluster, &id).await {
            tracing::error!(%cluster, backup = %id, error = %e, "could not mark a failed backup upload for deletion");
        }
    }
    result
}

/// Records the new backup as `uploading` and opens its data object.
async fn start(
    catalog: &dyn Catalog,
    store: &Store,
    cluster: &ClusterName,
    label: &BackupLabel,
    named_parent: Option<&str>,
) -> Result<(BackupRow, Writer), BackupError> {
    check_start(catalog, cluster, label).await?;
    let parent = match (label.incremental_from, named_parent) {
        (Some(from), named) => Some(find_parent(catalog, cluster, from, named).await?),
        (None, Some(named)) => return Err(BackupError::ParentOfAFullBackup(named.to_owned())),
        (None, None) => None,
    };
    let now = OffsetDateTime::now_utc();
    let mut row = BackupRow {
        id: backup_id(now, label),
        status: BackupStatus::Uploading,
        label: label.label.clone(),
        method: label.method.clone(),
        from_standby: label.from_standby,
        start_lsn: label.start_lsn,
        start_timeline: label.start_timeline,
        checkpoint_lsn: label.checkpoint_lsn,
        end_lsn: None,
        end_timeline: None,
        system_identifier: None,
        size: 0,
        stored_size: 0,
        sha256: None,
        has_manifest: false,
        started_at: now,
        finished_at: None,
        retain_until: None,
        parent,
    };
    let registered = catalog.ensure_cluster(cluster, store.target()).await?;
    if &registered.target != store.target() {
        // An admin moved the (empty) cluster while this upload started: retrying goes
        // to the right store.
        return Err(StorageError::BadTarget {
            target: registered.target,
            reason: "the cluster moved to this target as the upload started; retry".into(),
        }
        .into());
    }
    // Two backups started in the same second from the same WAL file share an id: two
    // from a standby between restartpoints do, since both start at the last one. The
    // later one takes the next free suffix (`…-2`), which still sorts after it.
    let base = row.id.clone();
    for n in 2..=MAX_SAME_ID + 1 {
        match catalog.insert_backup(cluster, &row).await {
            Ok(()) => break,
            Err(e) => match catalog.backup(cluster, &row.id).await? {
                Some(_) if n <= MAX_SAME_ID => row.id = format!("{base}-{n}"),
                Some(_) => return Err(BackupError::Duplicate(base)),
                None => return Err(e.into()),
            },
        }
    }
    let keys = layout::backup_keys(cluster, &row.id);
    match store.multipart(&keys.data).await {
        Ok(writer) => Ok((row, writer)),
        Err(e) => {
            catalog.delete_backup(cluster, &row.id).await?;
            Err(e.into())
        }
    }
}

/// Makes the backup durable and visible: data, manifest, sentinel, then the catalog.
async fn finish(
    catalog: &dyn Catalog,
    store: &Store,
    cluster: &ClusterName,
    mut row: BackupRow,
    writer: Writer,
    summary: Summary,
) -> Result<BackupRow, BackupError> {
    let checked = match catalog.cluster(cluster).await {
        Ok(pinned) => check_system(cluster, pinned.as_ref(), &summary).map(|()| pinned),
        Err(e) => Err(e.into()),
    };
    let checked = match (checked, &row.parent) {
        (Ok(pinned), Some(parent)) => check_parent(catalog, cluster, parent, &summary)
            .await
            .map(|()| pinned),
        (checked, _) => checked,
    };
    let pinned = match checked {
        Ok(pinned) => pinned,
        Err(e) => {
            // A multipart upload left open is billed on S3, GCS and Azure.
            let _ = writer.abort().await;
            return Err(e);
        }
    };
    let keys = layout::backup_keys(cluster, &row.id);
    let stored = writer.finish().await?;
    row.has_manifest = summary.manifest.is_some();
    if let Some(manifest) = summary.manifest {
        // Moved, not copied: a manifest may be hundreds of MiB.
        store
            .put_new(&keys.manifest, PutPayload::from(manifest.bytes))
            .await?;
    }
    row.status = BackupStatus::Complete;
    row.end_timeline = summary.end.map(|(t, _)| t);
    row.end_lsn = summary.end.map(|(_, l)| l);
    row.system_identifier = summary.system_identifier;
    row.size = summary.size;
    row.stored_size = stored;
    row.sha256 = Some(summary.sha256);
    row.finished_at = Some(OffsetDateTime::now_utc());
    // Deleted while it uploaded: no sentinel, so that even if cleaning up fails a
    // catalog rebuilt from the bucket does not bring it back as complete.
    let current = catalog.backup(cluster, &row.id).await?;
    if current.is_none_or(|b| b.status != BackupStatus::Uploading) {
        return Err(BackupError::DeletedWhileUploading(row.id));
    }
    let segment_size = pinned.and_then(|c| c.segment_size);
    let backups = catalog.backups(cluster).await?;
    let chains = Chains::new(&backups);
    let sentinel = serde_json::to_vec_pretty(&to_api(cluster, &row, &chains, segment_size))
        .expect("serialisable");
    store
        .put_new(&keys.sentinel, PutPayload::from(sentinel))
        .await?;
    row.retain_until = store.locked_until();
    if !catalog
        .update_backup(cluster, &row, BackupStatus::Uploading)
        .await?
    {
        return Err(BackupError::DeletedWhileUploading(row.id));
    }
    Ok(row)
}

/// How far a backup's start may lie past the newest archived WAL: what the archiver has
/// not sent yet, a backlog of hours on a busy server. A label further out names WAL that
/// does not exist.
const MAX_AHEAD: u64 = 1 << 40;

/// A backup must start where the cluster's archive is, give or take the archiver's
/// backlog, once the cluster has WAL: a label forged with a start far ahead would
/// otherwise look like the newest backup. Checked as the label arrives, before anything
/// is stored; positions are compared across timelines.
async fn check_start(
    catalog: &dyn Catalog,
    cluster: &ClusterName,
    label: &BackupLabel,
) -> Result<(), BackupError> {
    let Some(size) = catalog.cluster(cluster).await?.and_then(|c| c.segment_size) else {
        return Ok(());
    };
    let Some(newest) = catalog.newest_position(cluster).await? else {
        return Ok(());
    };
    let Some(last) = newest.segment_no(size) else {
        return Ok(());
    };
    let ahead = (label.start_lsn.0 / size.bytes()).saturating_sub(last);
    if ahead > MAX_AHEAD / size.bytes() {
        return Err(BackupError::BeyondArchive {
            start: label.start_lsn,
            newest,
        });
    }
    Ok(())
}

/// The parent an incremental backup names by its start: the newest complete backup of
/// the cluster that started there. Two backups can share a start (two taken on a
/// standby between restartpoints); either is a valid base, since an incremental holds
/// every block changed since that start. When the upload names its parent (`?parent=`,
/// as the client does), only that backup.
async fn find_parent(
    catalog: &dyn Catalog,
    cluster: &ClusterName,
    from: ParentStart,
    named: Option<&str>,
) -> Result<String, BackupError> {
    let backups = catalog.backups(cluster).await?;
    let mut started_there = backups
        .iter()
        .filter(|b| b.start_lsn == from.lsn && b.start_timeline == from.timeline)
        .filter(|b| named.is_none_or(|n| n == b.id));
    let first = started_there.clone().next();
    let parent = match started_there.find(|b| b.status == BackupStatus::Complete) {
        Some(parent) => parent,
        None => {
            return Err(match (first, named) {
                (Some(b), _) => BackupError::ParentNotComplete {
                    parent: b.id.clone(),
                    status: b.status.as_str(),
                },
                (None, Some(named)) => BackupError::NotTheNamedParent {
                    named: named.to_owned(),
                    from,
                },
                (None, None) => BackupError::NoParent {
                    cluster: cluster.clone(),
                    from,
                },
            });
        }
    };
    // A parent whose own chain lacks a link restores nothing, and nor would this.
    let links = Chains::new(&backups)
        .of(parent)
        .map_err(BackupError::BrokenChain)?
        .len();
    // Each link costs every listing, plan and check that walks the chain.
    if links >= MAX_CHAIN {
        return Err(BackupError::ChainTooLong {
            parent: parent.id.clone(),
        });
    }
    Ok(parent.id.clone())
}

/// The most backups in a chain: a full backup and its incrementals.
pub const MAX_CHAIN: usize = 64;

/// An incremental's parent must still be complete as it finishes (an admin or retention
/// may have deleted it meanwhile), and of the same database system.
async fn check_parent(
    catalog: &dyn Catalog,
    cluster: &ClusterName,
    parent: &str,
    summary: &Summary,
) -> Result<(), BackupError> {
    let row = catalog.backup(cluster, parent).await?;
    let not_complete = |status| BackupError::ParentNotComplete {
        parent: parent.to_owned(),
        status,
    };
    let row = row.ok_or(not_complete("deleted"))?;
    if row.status != BackupStatus::Complete {
        return Err(not_complete(row.status.as_str()));
    }
    match (row.system_identifier, summary.system_identifier) {
        (Some(expected), Some(found)) if expected != found => {
            Err(BackupError::ParentOfOtherSystem {
                parent: parent.to_owned(),
                expected,
                found,
            })
        }
        _ => Ok(()),
    }
}

/// A backup must be of the database system, and so of the major version, whose WAL its
/// cluster archives.
fn check_system(
    cluster: &ClusterName,
    pinned: Option<&ClusterRow>,
    summary: &Summary,
) -> Result<(), BackupError> {
    if let (Some(expected), Some(found)) = (pinned.and_then(|c| c.pg_version), summary.pg_version)
        && expected != found
    {
        return Err(BackupError::WrongVersion {
            cluster: cluster.clone(),
            expected,
            found,
        });
    }
    let Some(found) = summary.system_identifier else {
        return Err(BackupError::NotABackup(
            "the tar stream has no global/pg_control".into(),
        ));
    };
    match pinned.and_then(|c| c.system_identifier) {
        Some(expected) if expected != found => Err(BackupError::WrongSystem {
            cluster: cluster.clone(),
            expected,
            found,
        }),
        _ => Ok(()),
    }
}

/// Removes a backup's objects (sentinel first, so it never looks complete without its
/// data) and then its row. On failure the `deleting`/`uploading` row stays, is never
/// restored from, and deleting again finishes the job.
pub(crate) async fn discard(
    catalog: &dyn Catalog,
    store: &Store,
    cluster: &ClusterName,
    id: &str,
) -> Result<(), BackupError> {
    for key in layout::backup_keys(cluster, id).in_deletion_order() {
        store.delete(key).await?;
        // An earlier retention run may have failed on it.
        catalog
            .forget_deletion_failure(cluster, key.as_ref())
            .await?;
    }
    catalog.delete_backup(cluster, id).await?;
    Ok(())
}

/// Deletes a backup: marks it `deleting` (no restore will pick it), then discards it.
pub async fn delete(
    catalog: &dyn Catalog,
    store: &Store,
    cluster: &ClusterName,
    id: &str,
) -> Result<(), BackupError> {
    let id = find(catalog, cluster, id).await?.id;
    // The store has the last word on locks: a catalog rebuilt or a period changed
    // since may know less.
    let sentinel = layout::backup_keys(cluster, &id).sentinel;
    if let Some(end) = store
        .hold(&sentinel)
        .await?
        .and_then(|held| held.keeps(OffsetDateTime::now_utc()))
    {
        return Err(BackupError::Locked { id, end });
    }
    mark_deleting(catalog, cluster, &id).await?;
    discard(catalog, store, cluster, &id).await
}

/// Marks a backup `deleting`: no restore picks it, and retention finishes deleting it.
pub(crate) async fn mark_deleting(
    catalog: &dyn Catalog,
    cluster: &ClusterName,
    id: &str,
) -> Result<(), BackupError> {
    // An upload may finish between the read and the update: then read it again.
    loop {
        let mut row = catalog
            .backup(cluster, id)
            .await?
            .ok_or_else(|| BackupError::NotFound(id.to_owned()))?;
        if let Some(until) = row.retain_until
            && locked_at(row.retain_until, OffsetDateTime::now_utc())
        {
            let end = LockEnd::At(until);
            return Err(BackupError::Locked { id: row.id, end });
        }
        let from = row.status;
        if from == BackupStatus::Deleting {
            return Ok(());
        }
        let backups = catalog.backups(cluster).await?;
        let dependants = Chains::new(&backups).dependants(id);
        if !dependants.is_empty() {
            return Err(BackupError::HasDependants {
                id: row.id,
                dependants,
            });
        }
        // Refused in the same statement if an incremental was taken against it since.
        row.status = BackupStatus::Deleting;
        if catalog.update_backup(cluster, &row, from).await? {
            return Ok(());
        }
    }
}

/// Finds a backup by id, or the newest complete one for `latest`.
pub async fn find(
    catalog: &dyn Catalog,
    cluster: &ClusterName,
    id: &str,
) -> Result<BackupRow, BackupError> {
    let found = if id == "latest" {
        catalog
            .backups(cluster)
            .await?
            .into_iter()
            .find(|b| b.status == BackupStatus::Complete)
    } else {
        catalog.backup(cluster, id).await?
    };
    found.ok_or_else(|| BackupError::NotFound(format!("{id} for cluster `{cluster}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of a backup label and a manifest of `manifest_len` bytes.
    fn tar_with_manifest(manifest_len: usize) -> Vec<u8> {
        let label = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
            CHECKPOINT LOCATION: 0/2000060\nSTART TIMELINE: 1\n";
        let mut tar = tar::Builder::new(Vec::new());
        for (path, data) in [
            ("backup_label", label.as_bytes().to_vec()),
            ("backup_manifest", vec![b' '; manifest_len]),
        ] {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_cksum();
            tar.append_data(&mut header, path, &data[..]).unwrap();
        }
        tar.into_inner().unwrap()
    }

    #[tokio::test]
    async fn manifests_are_read_within_their_memory_budget() {
        let budget = MemoryBudget::new(1 << 20);
        let held = budget.reserve(1 << 20).await;
        let reading = tokio::task::spawn_blocking({
            let budget = budget.clone();
            move || {
                let tar = tar_with_manifest(600 << 10);
                parse(&tar[..], io::sink(), &budget, |_| Ok(())).map(|(_, parsed)| parsed)
            }
        });
        // It waits for the memory before reading its manifest, and reads it once free.
        while budget.waiting() == 0 && !reading.is_finished() {
            tokio::task::yield_now().await;
        }
        assert!(
            !reading.is_finished(),
            "it read its manifest without memory"
        );
        drop(held);
        let parsed = reading.await.unwrap().unwrap();
        assert_eq!(parsed.manifest.as_ref().unwrap().bytes.len(), 600 << 10);
        // While it is held, 600 KiB of the budget are taken.
        let rest = budget.reserve(400 << 10).await;
        let mut more = Box::pin(budget.reserve(100 << 10));
        assert!(futures_util::FutureExt::now_or_never(more.as_mut()).is_none());
        drop((parsed, rest));
        more.await;
    }

    #[test]
    fn manifest_end_is_where_the_newest_wal_range_ends() {
        let m = br#"{"PostgreSQL-Backup-Manifest-Version": 1, "Files": [],
            "WAL-Ranges": [{"Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100"}],
            "Manifest-Checksum": "x"}"#;
        assert_eq!(
            manifest_end(m).unwrap(),
            Some((Timeline(1), Lsn(0x200_0100)))
        );
        // A standby's backup across a promotion: newest timeline first, as PostgreSQL
        // writes them.
        let m = br#"{"WAL-Ranges": [
            {"Timeline": 2, "Start-LSN": "0/3000100", "End-LSN": "0/3000200"},
            {"Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/3000100"}]}"#;
        assert_eq!(
            manifest_end(m).unwrap(),
            Some((Timeline(2), Lsn(0x300_0200)))
        );
        assert!(manifest_end(b"{}").unwrap().is_none());
        assert!(manifest_end(b"not json").is_err());
    }

    #[test]
    fn ids_sort_by_time_and_name_the_start() {
        let label: BackupLabel = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
            CHECKPOINT LOCATION: 0/2000060\nSTART TIMELINE: 1\n"
            .parse()
            .unwrap();
        let at = time::macros::datetime!(2026-11-27 06:45:12 UTC);
        assert_eq!(
            backup_id(at, &label),
            "20261127T064512Z-000000010000000000000002"
        );
    }
}
