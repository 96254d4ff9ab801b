//! Archiving one WAL file: validate, hash, compress, store, index.
//!
//! The request body is read on the async side and handed in chunks to a blocking worker
//! that decodes it (when the client sent zstd), checks a segment's page header as soon
//! as its first 40 bytes arrive, hashes and compresses. Receiving and compressing thus
//! overlap, and a bad segment is refused after its first chunk.
//!
//! The order of the durable steps is what makes an ack safe (DESIGN rules 1 to 4):
//! nothing is written until the whole body has been read and checked; the object is
//! written create-only and confirmed durable; only then is the catalog row committed;
//! only then does the caller answer 2xx. A crash between the two leaves an object with no
//! row, which the next push of the same file adopts if its content is identical.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::rc::Rc;

use bytes::Bytes;
use object_store::PutPayload;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use walgate_core::{ClusterName, LongPageHeader, PageHeaderError, SegmentSize, WalFileName};

use crate::Services;
use crate::catalog::{Algorithm, CatalogError, ClusterRow, ContentDigest, Inserted, WalRow};
use crate::storage::{Put, StorageError, Store, layout};
use crate::stream::{
    Chunks, Encoding, FRAME, FrameEncoder, IN_FLIGHT, Limited, Tee, channel_reader, drain, forward,
    refuse_trailing,
};

/// Largest timeline or backup history file accepted; PostgreSQL's are a few hundred bytes.
pub const MAX_TEXT_FILE: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{name}: {source}")]
    BadHeader {
        name: WalFileName,
        source: PageHeaderError,
    },
    #[error(
        "{name} is not the segment its page header describes (the header says it starts at {found}); refusing to store it under this name"
    )]
    WrongPosition {
        name: WalFileName,
        found: walgate_core::Lsn,
    },
    #[error(
        "{name} belongs to database system {found}, but cluster `{cluster}` archives system {expected}: check WALGATE_CLUSTER / the URL on this host"
    )]
    WrongSystem {
        cluster: ClusterName,
        name: WalFileName,
        expected: u64,
        found: u64,
    },
    #[error(
        "{name} is WAL of PostgreSQL {found}, but cluster `{cluster}` archives PostgreSQL {expected}: after a major upgrade, archive into a new cluster name"
    )]
    WrongVersion {
        cluster: ClusterName,
        name: WalFileName,
        expected: u32,
        found: u32,
    },
    #[error(
        "{name} has {found}-byte segments, but cluster `{cluster}` uses {expected}-byte segments"
    )]
    WrongSegmentSize {
        cluster: ClusterName,
        name: WalFileName,
        expected: u64,
        found: u64,
    },
    #[error(
        "{name} is {got} bytes, but a segment of this cluster is {expected} bytes: the upload was cut short or the file is damaged"
    )]
    WrongSize {
        name: WalFileName,
        got: u64,
        expected: u64,
    },
    #[error("{name} is empty")]
    Empty { name: WalFileName },
    #[error(
        "{name} is a cluster's first segment, larger than 16 MiB, sent without a Content-Length: send it with its length (curl -T FILE, or walgate-client) so the gateway can set memory aside for it"
    )]
    FirstSegmentUnsized { name: WalFileName },
    #[error(
        "{name} lies more than 1 PiB of WAL past the newest segment archived (position {newest}): no database writes that much between two archived segments, so this is not a WAL file of this cluster; nothing was stored"
    )]
    FarAhead {
        name: WalFileName,
        newest: walgate_core::SegmentPosition,
    },
    #[error("{name} is not a timeline history file PostgreSQL wrote: {reason}")]
    BadHistory { name: WalFileName, reason: String },
    #[error("the body is larger than the {limit} bytes {name} can have")]
    TooLarge { name: WalFileName, limit: u64 },
    #[error("the request body could not be read (cut upload or bad zstd encoding): {0}")]
    Body(io::Error),
    #[error(
        "{name} is already archived with different content (stored {stored}, sent {sent}): this may be split brain between two primaries or corruption; nothing was overwritten"
    )]
    Conflict {
        name: WalFileName,
        stored: ContentDigest,
        sent: ContentDigest,
    },
    #[error(
        "{name} was archived before and retention is deleting it now: retry once the deletion has finished"
    )]
    BeingDeleted { name: WalFileName },
    #[error(
        "the gateway is receiving as many WAL files as its memory for them allows (WALGATE_WAL_MEMORY), and {name} waited {}s for its turn: nothing was stored; retry, or give the gateway more memory or CPU",
        waited.as_secs()
    )]
    Busy {
        name: WalFileName,
        waited: std::time::Duration,
    },
    #[error("a stored object could not be decoded: {0}")]
    Stored(io::Error),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    pub row: WalRow,
    /// False when the identical file was already archived.
    pub created: bool,
}

/// What the blocking worker knows about the cluster before it starts.
struct Expect {
    cluster: ClusterName,
    name: WalFileName,
    pinned: Option<Identity>,
    level: i32,
    /// The body's Content-Length, if sent.
    declared_len: Option<u64>,
}

/// What a cluster's first segment pinned: every later segment must match it.
#[derive(Clone, Copy)]
struct Identity {
    system_identifier: u64,
    segment_size: SegmentSize,
    /// Unknown for clusters pinned before versions were recorded.
    pg_version: Option<u32>,
}

impl Identity {
    fn of(c: &ClusterRow) -> Option<Identity> {
        Some(Identity {
            system_identifier: c.system_identifier?,
            segment_size: c.segment_size?,
            pg_version: c.pg_version,
        })
    }
}

/// A checked, hashed and compressed file, ready to store.
struct Encoded {
    header: Option<LongPageHeader>,
    size: u64,
    digest: ContentDigest,
    payload: PutPayload,
    stored_size: u64,
}

fn check_header(e: &Expect, buf: &[u8]) -> Result<LongPageHeader, ArchiveError> {
    let name = e.name;
    let h =
        LongPageHeader::parse(buf).map_err(|source| ArchiveError::BadHeader { name, source })?;
    if let Some(pinned) = e.pinned {
        check_identity(&e.cluster, name, &h, pinned)?;
    }
    let seg = name.wal_segment().expect("only segments have page headers");
    if !h.matches(seg) {
        return Err(ArchiveError::WrongPosition {
            name,
            found: h.page_addr,
        });
    }
    Ok(h)
}

/// A segment must come from the database system its cluster is pinned to.
fn check_identity(
    cluster: &ClusterName,
    name: WalFileName,
    h: &LongPageHeader,
    pinned: Identity,
) -> Result<(), ArchiveError> {
    if let Some(expected) = pinned.pg_version
        && h.pg_version != expected
    {
        return Err(ArchiveError::WrongVersion {
            cluster: cluster.clone(),
            name,
            expected,
            found: h.pg_version,
        });
    }
    let (sysid, size) = (pinned.system_identifier, pinned.segment_size);
    if h.system_identifier != sysid {
        return Err(ArchiveError::WrongSystem {
            cluster: cluster.clone(),
            name,
            expected: sysid,
            found: h.system_identifier,
        });
    }
    if h.segment_size != size {
        return Err(ArchiveError::WrongSegmentSize {
            cluster: cluster.clone(),
            name,
            expected: size.bytes(),
            found: h.segment_size.bytes(),
        });
    }
    Ok(())
}

/// Reads until `buf` is full or the body ends; returns how much was read.
fn read_up_to(body: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match body.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// The most of a refused WAL body read to its end before answering.
const DRAIN_MAX: u64 = 64 << 20;

/// The largest body `name` may have: the cluster's pinned segment size for a segment,
/// the largest there is for a cluster's first, and the most a text file may hold for
/// the others.
fn size_limit(name: WalFileName, pinned: Option<Identity>) -> u64 {
    match (name.wal_segment(), pinned) {
        (Some(_), Some(id)) => id.segment_size.bytes(),
        (Some(_), None) => SegmentSize::MAX.into(),
        (None, _) => MAX_TEXT_FILE,
    }
}

/// The largest zstd window a WAL body may use, as a power of two: 8 MiB, the most zstd's
/// levels 1 to 19 choose (only `--long` and the ultra levels go beyond). It bounds the
/// decoder's memory, which the frame itself would otherwise choose (up to 128 MiB).
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// The most memory receiving a file can take, for the WAL memory budget, with the chunks
/// in flight: for a zstd body, the body as stored (at most its declared length) and the
/// decoder's window; for a raw body, its compressed copy (a little over the file when it
/// does not compress) and the worker's frame buffers and compressor. A
/// cluster's first segment may claim any segment size up to 1 GiB in its header: its
/// declared length bounds it, and without one it may be at most 16 MiB (see `check`).
fn memory_needed(
    name: WalFileName,
    pinned: Option<Identity>,
    encoding: Encoding,
    declared_len: Option<u64>,
) -> u64 {
    let size = match (name.wal_segment(), pinned, declared_len) {
        (Some(_), None, None) => SegmentSize::DEFAULT.bytes(),
        _ => size_limit(name, pinned),
    };
    let buffers = match encoding {
        Encoding::Zstd => {
            let body = declared_len
                .unwrap_or(zstd_limit(size))
                .min(zstd_limit(size));
            body + size.min(1 << ZSTD_WINDOW_LOG_MAX)
        }
        _ => zstd_limit(declared_len.unwrap_or(size).min(size)) + (2 << 20),
    };
    buffers + (1 << 20)
}

impl ArchiveError {
    /// The body stopped arriving (see `stream::forward`'s idle limit).
    pub fn is_idle(&self) -> bool {
        matches!(self, ArchiveError::Body(io) if io.kind() == io::ErrorKind::TimedOut)
    }
}

/// The most a zstd body of a file of at most `limit` bytes may take: zstd's worst case
/// (stored blocks), with room for a frame header and checksum per 256 KiB piece.
fn zstd_limit(limit: u64) -> u64 {
    limit + limit / 128 + (64 << 10)
}

/// The blocking half: decode, check, hash, and compress (or keep the client's zstd).
fn encode(e: Expect, body: impl Read, encoding: Encoding) -> Result<Encoded, ArchiveError> {
    match encoding {
        Encoding::Gzip => Err(ArchiveError::Body(io::Error::other(
            "WAL files are accepted raw or as zstd, not gzip",
        ))),
        Encoding::Identity => {
            let mut out = FrameEncoder::new(e.level).map_err(ArchiveError::Body)?;
            let (header, size, digest) = check(&e, body, &mut out, |_| {})?;
            let (payload, stored_size) = out.finish().map_err(ArchiveError::Body)?.into_payload();
            Ok(Encoded {
                header,
                size,
                digest,
                payload,
                stored_size,
            })
        }
        Encoding::Zstd => {
            let limit = size_limit(e.name, e.pinned);
            let too_large = |err| match err {
                ArchiveError::Body(io) if io.kind() == io::ErrorKind::FileTooLarge => {
                    ArchiveError::TooLarge {
                        name: e.name,
                        limit,
                    }
                }
                other => other,
            };
            let max = Rc::new(Cell::new(zstd_limit(limit)));
            let mut tee = Tee::new(Limited::new(body, max.clone()), Chunks::default());
            let mut decoder = zstd::Decoder::new(&mut tee).map_err(ArchiveError::Body)?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(ArchiveError::Body)?;
            // A segment's header tells its real size: bound the body by that, not by
            // the largest segment size there is.
            let (header, size, digest) = check(&e, decoder, &mut io::sink(), |size| {
                max.set(zstd_limit(size))
            })
            .map_err(too_large)?;
            refuse_trailing(&mut tee)
                .map_err(ArchiveError::Body)
                .map_err(too_large)?;
            let (payload, stored_size) = tee.out.into_payload();
            Ok(Encoded {
                header,
                size,
                digest,
                payload,
                stored_size,
            })
        }
    }
}

/// Reads the whole file into `out` a [`FRAME`] at a time, hashing it, checking a
/// segment's page header first and its size at the end. Returns the header, the size
/// and the digest.
fn check(
    e: &Expect,
    mut body: impl Read,
    out: &mut impl Write,
    on_segment_size: impl FnOnce(u64),
) -> Result<(Option<LongPageHeader>, u64, ContentDigest), ArchiveError> {
    let mut limit = size_limit(e.name, e.pinned);
    let mut size = 0u64;
    let mut header = None;
    let mut buf = vec![0u8; FRAME];
    // A segment's header is checked as soon as it arrives; it then begins the first frame.
    let mut filled = 0;
    if e.name.wal_segment().is_some() {
        filled =
            read_up_to(&mut body, &mut buf[..LongPageHeader::LEN]).map_err(ArchiveError::Body)?;
        let h = check_header(e, &buf[..filled])?;
        // Its memory was reserved for the default size (see `memory_needed`).
        if e.pinned.is_none() && e.declared_len.is_none() && h.segment_size > SegmentSize::DEFAULT {
            return Err(ArchiveError::FirstSegmentUnsized { name: e.name });
        }
        limit = h.segment_size.bytes();
        on_segment_size(limit);
        header = Some(h);
    }
    // A history file is read back to plan restores: it must parse (it is small).
    let mut history = matches!(e.name, WalFileName::History(_)).then(Vec::new);
    let mut hasher = Algorithm::CURRENT.hasher();
    loop {
        let n = filled + read_up_to(&mut body, &mut buf[filled..]).map_err(ArchiveError::Body)?;
        filled = 0;
        if n == 0 {
            break;
        }
        size += n as u64;
        if size > limit {
            return Err(ArchiveError::TooLarge {
                name: e.name,
                limit,
            });
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(ArchiveError::Body)?;
        if let Some(h) = &mut history {
            h.extend_from_slice(&buf[..n]);
        }
    }
    if let Some(text) = history {
        // Timeline N's file lists its ancestors, all below N (so timeline 1 has none);
        // a wrong one would mislead restore plans and block the real one with a 409.
        let timeline = e.name.timeline();
        let reason = match std::str::from_utf8(&text).map(walgate_core::history::parse) {
            Err(_) => Some("not text".to_owned()),
            Ok(Err(e)) => Some(e.to_string()),
            Ok(Ok(branches)) => match branches.last() {
                None => Some("it names no parent timeline".to_owned()),
                Some(b) if b.timeline >= timeline => Some(format!(
                    "it names timeline {} as an ancestor of timeline {timeline}",
                    b.timeline
                )),
                Some(_) => None,
            },
        };
        if let Some(reason) = reason {
            return Err(ArchiveError::BadHistory {
                name: e.name,
                reason,
            });
        }
    }
    match header {
        Some(h) if size != h.segment_size.bytes() => {
            return Err(ArchiveError::WrongSize {
                name: e.name,
                got: size,
                expected: h.segment_size.bytes(),
            });
        }
        None if size == 0 => return Err(ArchiveError::Empty { name: e.name }),
        _ => {}
    }
    Ok((header, size, hasher.finish()))
}

/// One WAL file a client is sending.
#[derive(Debug, Clone, Copy)]
pub struct Upload<'a> {
    pub cluster: &'a ClusterName,
    pub name: WalFileName,
    pub encoding: Encoding,
    /// The Content-Length of the body: an oversized upload is refused before it is read.
    pub declared_len: Option<u64>,
    /// A body silent this long is given up.
    pub idle_timeout: std::time::Duration,
}

/// Archives one WAL file read from `body`.
pub async fn push<S, E>(
    services: &Services,
    upload: Upload<'_>,
    mut body: S,
) -> Result<Archived, ArchiveError>
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::error::Error + Send + Sync + 'static,
{
    let Upload {
        cluster,
        name,
        encoding,
        declared_len,
        idle_timeout,
    } = upload;
    let (catalog, storage) = (services.catalog.as_ref(), &services.storage);
    let (level, memory) = (services.settings.zstd_level, &services.limits.wal_memory);
    let existing_cluster = catalog.cluster(cluster).await?;
    let pinned = existing_cluster.as_ref().and_then(Identity::of);
    let expect = Expect {
        cluster: cluster.clone(),
        name,
        pinned,
        level,
        declared_len,
    };
    if let (Some(segment), Some(id)) = (name.wal_segment(), pinned)
        && let Err(e) = check_position(catalog, cluster, name, segment, id.segment_size).await
    {
        // Read so that the client sees why, as for a refused header below.
        drain(
            &mut body,
            size_limit(name, pinned).min(DRAIN_MAX),
            idle_timeout,
        )
        .await;
        return Err(e);
    }
    if let Some(len) = declared_len {
        let limit = size_limit(name, pinned);
        let most = match encoding {
            Encoding::Zstd => zstd_limit(limit),
            _ => limit,
        };
        if len > most {
            return Err(ArchiveError::TooLarge { name, limit });
        }
    }

    // Nothing is read until the memory for it is there; a wait as long as a silent body
    // is allowed gives up the same way, with nothing stored.
    let _memory = tokio::time::timeout(
        idle_timeout,
        memory.reserve(memory_needed(name, pinned, encoding, declared_len)),
    )
    .await
    .map_err(|_| ArchiveError::Busy {
        name,
        waited: idle_timeout,
    })?;

    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(IN_FLIGHT);
    let reader = channel_reader(rx);
    let worker = tokio::task::spawn_blocking(move || encode(expect, reader, encoding));
    forward(&mut body, tx).await;
    let encoded = match worker.await.expect("archive worker panicked") {
        Ok(encoded) => encoded,
        Err(e) => {
            // A refused file is at most one segment: read the rest so the client sees
            // why (the wrong database system, say), not a broken pipe. A body that went
            // silent is not waited for twice.
            if !e.is_idle() {
                let most = size_limit(name, pinned).min(DRAIN_MAX);
                drain(&mut body, most, idle_timeout).await;
            }
            return Err(e);
        }
    };

    let mut row = WalRow {
        name,
        size: encoded.size,
        stored_size: encoded.stored_size,
        digest: encoded.digest,
        archived_at: OffsetDateTime::now_utc(),
        retain_until: None,
    };
    if let Some(stored) = catalog.wal(cluster, &name).await? {
        return same_content(stored, &row, &encoded.payload)
            .await
            .map(|row| Archived {
                row,
                created: false,
            });
    }
    let registered = match existing_cluster {
        Some(row) => row,
        None => {
            catalog
                .ensure_cluster(cluster, storage.default_target())
                .await?
        }
    };
    if let (Some(h), None) = (encoded.header, pinned) {
        let now = catalog
            .pin_cluster(
                cluster,
                h.system_identifier,
                h.segment_size,
                Some(h.pg_version),
            )
            .await?;
        // Another push may have pinned a different identity first.
        let pinned_now = Identity::of(&now).expect("pin_cluster sets both fields");
        check_identity(cluster, name, &h, pinned_now)?;
    }

    let store = storage.get(&registered.target)?;
    let key = layout::wal_key(cluster, &name);
    if store.put_new(&key, encoded.payload.clone()).await? == Put::AlreadyExists {
        // Left by retention on its way out: the deleter would take it from under a new
        // row, so wait until it is gone.
        if catalog.wal_deleting(cluster, &name).await? {
            return Err(ArchiveError::BeingDeleted { name });
        }
        // Left by a push that crashed before its catalog row, or a concurrent push:
        // adopt it only if it holds exactly this file.
        let stored = read_stored(store, &key, row.digest.algorithm())
            .await?
            .digest;
        if stored != row.digest {
            return Err(ArchiveError::Conflict {
                name,
                stored,
                sent: row.digest,
            });
        }
    }
    row.retain_until = store.locked_until();
    match catalog.insert_wal(cluster, &row).await? {
        Inserted::New => {
            services.verify_soon.stored(services, cluster, &name);
            Ok(Archived { row, created: true })
        }
        Inserted::Existing(stored) => {
            same_content(stored, &row, &encoded.payload)
                .await
                .map(|row| Archived {
                    row,
                    created: false,
                })
        }
        Inserted::Deleting => Err(ArchiveError::BeingDeleted { name }),
    }
}

/// How far past the newest archived segment a segment may lie, in bytes of WAL.
const MAX_AHEAD: u64 = 1 << 50;

/// A segment named absurdly far past the archive is none of the cluster's: PostgreSQL
/// archives its segments in order, and even archiving switched off for a month leaves a
/// gap of terabytes, not petabytes. Positions are compared across timelines.
async fn check_position(
    catalog: &dyn crate::catalog::Catalog,
    cluster: &ClusterName,
    name: WalFileName,
    segment: walgate_core::SegmentName,
    size: SegmentSize,
) -> Result<(), ArchiveError> {
    let Some(newest) = catalog.newest_position(cluster).await? else {
        return Ok(());
    };
    let (Some(at), Some(last)) = (segment.segment_no(size), newest.segment_no(size)) else {
        return Ok(());
    };
    if at.saturating_sub(last) > MAX_AHEAD / size.bytes() {
        return Err(ArchiveError::FarAhead { name, newest });
    }
    Ok(())
}

/// Whether the file sent (`payload`, as it would be stored) is the one archived as
/// `stored`. A row hashed before BLAKE3 holds SHA-256: the file sent is hashed again, in
/// that algorithm.
async fn same_content(
    stored: WalRow,
    sent: &WalRow,
    payload: &PutPayload,
) -> Result<WalRow, ArchiveError> {
    let algorithm = stored.digest.algorithm();
    let sent_digest = if sent.digest.algorithm() == algorithm {
        sent.digest
    } else {
        let compressed = payload.iter().fold(Vec::new(), |mut all, chunk| {
            all.extend_from_slice(chunk);
            all
        });
        tokio::task::spawn_blocking(move || decode(&compressed, algorithm))
            .await
            .expect("hash worker panicked")?
            .digest
    };
    if stored.digest == sent_digest {
        Ok(stored)
    } else {
        Err(ArchiveError::Conflict {
            name: sent.name,
            stored: stored.digest,
            sent: sent_digest,
        })
    }
}

/// Reads a small archived file (a history or backup history file) back, decompressed.
pub async fn read_text(
    store: &Store,
    cluster: &ClusterName,
    name: &WalFileName,
) -> Result<Vec<u8>, ArchiveError> {
    let compressed = store.get_all(&layout::wal_key(cluster, name)).await?;
    let mut out = Vec::new();
    zstd::Decoder::new(&compressed[..])
        .and_then(|d| d.take(MAX_TEXT_FILE).read_to_end(&mut out))
        .map_err(ArchiveError::Stored)?;
    Ok(out)
}

/// A stored WAL object read back: its decompressed content's digest and size, and its
/// first bytes (a segment's long page header).
pub(crate) struct StoredWal {
    pub digest: ContentDigest,
    pub size: u64,
    /// The compressed size (before any encryption at rest).
    pub stored_size: u64,
    pub head: Vec<u8>,
}

/// Reads a stored WAL object back, decompressing and hashing it in `algorithm`, for the
/// duplicate check, the scrub and the catalog rebuild.
pub(crate) async fn read_stored(
    store: &Store,
    key: &object_store::path::Path,
    algorithm: Algorithm,
) -> Result<StoredWal, ArchiveError> {
    let compressed = store.get_all(key).await?;
    tokio::task::spawn_blocking(move || decode(&compressed, algorithm))
        .await
        .expect("hash worker panicked")
}

/// Decodes a compressed WAL file, hashing its content in `algorithm`.
fn decode(compressed: &[u8], algorithm: Algorithm) -> Result<StoredWal, ArchiveError> {
    let mut dec = zstd::Decoder::new(compressed).map_err(ArchiveError::Stored)?;
    let mut head = vec![0u8; LongPageHeader::LEN];
    let got = read_up_to(&mut dec, &mut head).map_err(ArchiveError::Stored)?;
    head.truncate(got);
    let mut hasher = algorithm.hasher();
    hasher.update(&head);
    let rest = io::copy(&mut dec, &mut hasher).map_err(ArchiveError::Stored)?;
    Ok(StoredWal {
        digest: hasher.finish(),
        size: got as u64 + rest,
        stored_size: compressed.len() as u64,
        head,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_reserved_for_what_a_first_segment_can_claim() {
        let name: WalFileName = "000000010000000000000003".parse().unwrap();
        let pinned = Identity {
            system_identifier: 1,
            segment_size: SegmentSize::DEFAULT,
            pg_version: Some(17),
        };
        let mib = 1u64 << 20;
        // Pinned: its compressed copy at worst and the frame buffers for a raw body, the
        // body and a window for zstd.
        let raw = 19 * mib + (192 << 10);
        assert_eq!(
            memory_needed(name, Some(pinned), Encoding::Identity, None),
            raw
        );
        assert_eq!(
            memory_needed(name, Some(pinned), Encoding::Zstd, Some(4 * mib)),
            13 * mib
        );
        // A cluster's first segment may say it is 1 GiB: its length bounds it, and
        // without one it may be no larger than 16 MiB.
        assert_eq!(
            memory_needed(name, None, Encoding::Identity, Some(1 << 30)),
            1035 * mib + (64 << 10)
        );
        assert_eq!(
            memory_needed(name, None, Encoding::Identity, Some(16 * mib)),
            raw
        );
        assert_eq!(memory_needed(name, None, Encoding::Identity, None), raw);
        assert!(memory_needed(name, None, Encoding::Zstd, None) < 26 * mib);
    }
}
