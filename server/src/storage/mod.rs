//! Object storage over the `object_store` crate.
//!
//! Every write is create-only (`PutMode::Create`), so an object once stored is never
//! overwritten; on the local filesystem the store fsyncs each file and its directory
//! before a write returns, which is what lets the gateway acknowledge a WAL file.
//! Object keys are built only by [`layout`].

pub mod crypt;
pub mod layout;
pub mod lock;
pub mod target;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
pub use target::TargetConfig;
use walgate_core::TargetName;

use crypt::{CryptError, Keyring, Sealer, Unsealer};
use lock::{BucketLock, Lock, Locking, S3Lock};

/// Part size of multipart uploads: above S3's 5 MiB minimum, small enough that a few
/// parts in flight keep a backup's memory bounded.
pub const MULTIPART_CHUNK: usize = 8 << 20;
/// Parts of one upload in flight at once.
pub const MULTIPART_CONCURRENCY: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object {0} not found")]
    NotFound(Path),
    #[error("storage target `{target}`: {reason}")]
    BadTarget { target: TargetName, reason: String },
    #[error(
        "storage target `{0}` is not configured (clusters stored there cannot be served until it is)"
    )]
    UnknownTarget(TargetName),
    #[error("storage target `{target}` failed its {step} probe: {source}{}", hint_suffix(.source))]
    Probe {
        target: TargetName,
        step: &'static str,
        source: Box<StorageError>,
    },
    #[error("cannot create storage directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("object store: {0}")]
    Backend(#[from] object_store::Error),
    #[error(transparent)]
    Crypt(#[from] CryptError),
    #[error("S3 Object Lock: {0}")]
    ObjectLock(String),
    #[error("object {object} is locked {end} (write-once target): it cannot be deleted before")]
    Locked { object: Path, end: lock::LockEnd },
}

fn hint_suffix(e: &StorageError) -> String {
    target::hint(&e.to_string())
        .map(|h| format!(" ({h})"))
        .unwrap_or_default()
}

/// The bytes of a local object in `range`, read in pieces of `FILE_CHUNK`. (object_store
/// reads a local file 8 KiB per blocking task: about 190 tasks for a compressed WAL
/// segment, and more time spent handing them over than reading.)
fn file_stream(
    file: std::fs::File,
    range: std::ops::Range<u64>,
) -> BoxStream<'static, Result<Bytes, StorageError>> {
    const FILE_CHUNK: u64 = 1 << 20;
    /// The next piece, from `at`, on a blocking thread; hands the file back.
    fn read(mut file: std::fs::File, at: u64, end: u64) -> std::io::Result<(std::fs::File, Bytes)> {
        use std::io::{Read as _, Seek as _};
        file.seek(std::io::SeekFrom::Start(at))?;
        let want = (end - at).min(FILE_CHUNK);
        let mut chunk = Vec::with_capacity(want as usize);
        (&mut file).take(want).read_to_end(&mut chunk)?;
        if (chunk.len() as u64) < want {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the object ended before its recorded size",
            ));
        }
        Ok((file, Bytes::from(chunk)))
    }
    futures_util::stream::try_unfold((file, range.start), move |(file, at)| async move {
        if at >= range.end {
            return Ok(None);
        }
        let (file, chunk) = tokio::task::spawn_blocking(move || read(file, at, range.end))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(|e| object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            })?;
        let next = at + chunk.len() as u64;
        Ok(Some((chunk, (file, next))))
    })
    .boxed()
}

/// Decrypts `stored` (whose first bytes are `head`) as it is read.
fn unseal_stream(
    unsealer: Unsealer,
    head: Bytes,
    stored: BoxStream<'static, Result<Bytes, StorageError>>,
) -> BoxStream<'static, Result<Bytes, StorageError>> {
    struct State {
        stored: BoxStream<'static, Result<Bytes, StorageError>>,
        unsealer: Option<Unsealer>,
        ready: std::collections::VecDeque<Bytes>,
    }
    let stored = futures_util::stream::once(async move { Ok(head) })
        .chain(stored)
        .boxed();
    let state = State {
        stored,
        unsealer: Some(unsealer),
        ready: Default::default(),
    };
    futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(plain) = st.ready.pop_front() {
                return Some((Ok(plain), st));
            }
            let unsealer = st.unsealer.as_mut()?;
            let step: Result<(), StorageError> = match st.stored.next().await {
                Some(Ok(sealed)) => unsealer
                    .push(&sealed)
                    .map(|plain| st.ready.extend(plain))
                    .map_err(Into::into),
                Some(Err(e)) => Err(e),
                None => {
                    let unsealer = st.unsealer.take().expect("checked above");
                    unsealer
                        .finish()
                        .map(|(_, last)| {
                            if !last.is_empty() {
                                st.ready.push_back(last);
                            }
                        })
                        .map_err(Into::into)
                }
            };
            if let Err(e) = step {
                st.unsealer = None;
                return Some((Err(e), st));
            }
        }
    })
    .boxed()
}

/// A multipart upload in progress, encrypting as it goes on targets that encrypt.
pub struct Writer {
    inner: WriteMultipart,
    sealer: Option<Sealer>,
    /// Bytes written, before encryption.
    written: u64,
    /// Where, to lock the object once complete.
    store: Store,
    key: Path,
}

impl Writer {
    /// Queues `data`, first waiting while too many parts are in flight.
    pub async fn write(&mut self, data: Bytes) -> Result<(), StorageError> {
        self.inner.wait_for_capacity(MULTIPART_CONCURRENCY).await?;
        self.written += data.len() as u64;
        match self.sealer.as_mut() {
            None => self.inner.put(data),
            Some(sealer) => {
                for part in sealer.push(&data) {
                    self.inner.put(part);
                }
            }
        }
        Ok(())
    }

    /// Completes the object; returns its size as written (before encryption).
    pub async fn finish(mut self) -> Result<u64, StorageError> {
        if let Some(mut sealer) = self.sealer.take() {
            self.inner.put(sealer.finish());
        }
        self.inner.finish().await?;
        self.store.retain(&self.key).await?;
        Ok(self.written)
    }

    pub async fn abort(self) -> Result<(), StorageError> {
        Ok(self.inner.abort().await?)
    }
}

/// Whether a create-only write made a new object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Created,
    AlreadyExists,
}

/// An object found by [`Store::list`].
pub struct Listed {
    pub key: Path,
    pub size: u64,
    pub modified: time::OffsetDateTime,
}

/// Every configured target, and the one new clusters are stored on.
#[derive(Debug, Clone)]
pub struct Targets {
    default: TargetName,
    stores: Arc<std::collections::BTreeMap<TargetName, Store>>,
}

impl Targets {
    /// Opens every target (reading their credentials); `default` must be among them.
    pub fn open(
        configs: &std::collections::BTreeMap<TargetName, TargetConfig>,
        default: &TargetName,
    ) -> Result<Self, StorageError> {
        let mut stores = std::collections::BTreeMap::new();
        for (name, config) in configs {
            let opened = config.open(name)?;
            let store = Store {
                inner: opened.store,
                keyring: opened.keyring,
                local_root: opened.local_root,
                target: name.clone(),
                url: config.display_url(),
                s3: opened.s3,
                locking: opened.locking,
                bucket_lock: Arc::default(),
            };
            stores.insert(name.clone(), store);
        }
        Self::new(stores, default)
    }

    fn new(
        stores: std::collections::BTreeMap<TargetName, Store>,
        default: &TargetName,
    ) -> Result<Self, StorageError> {
        if !stores.contains_key(default) {
            return Err(StorageError::UnknownTarget(default.clone()));
        }
        Ok(Targets {
            default: default.clone(),
            stores: Arc::new(stores),
        })
    }

    /// The target new clusters are stored on.
    pub fn default_target(&self) -> &TargetName {
        &self.default
    }

    /// The store of target `name`.
    pub fn get(&self, name: &TargetName) -> Result<&Store, StorageError> {
        self.stores
            .get(name)
            .ok_or_else(|| StorageError::UnknownTarget(name.clone()))
    }

    /// The store of a cluster's recorded target; a cluster not registered yet (no
    /// target) goes to the default.
    pub fn of(&self, target: Option<&TargetName>) -> Result<&Store, StorageError> {
        self.get(target.unwrap_or(&self.default))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Store> {
        self.stores.values()
    }
}

/// One target's object store: a thin, clonable handle.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// Set when new objects are encrypted.
    keyring: Option<Keyring>,
    /// The directory of a local target, whose writes the gateway makes durable itself.
    local_root: Option<std::path::PathBuf>,
    target: TargetName,
    /// Without credentials or query string.
    url: String,
    /// The Object Lock requests, on `s3://` targets.
    s3: Option<Arc<S3Lock>>,
    /// How the target is configured to lock what it stores.
    locking: Option<Locking>,
    /// What the bucket said of Object Lock at the start-up probe.
    bucket_lock: Arc<OnceLock<BucketLock>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("target", &self.target)
            .field("url", &self.url)
            .field("keyring", &self.keyring)
            .finish()
    }
}

impl Store {
    pub fn target(&self) -> &TargetName {
        &self.target
    }

    /// The URL, safe to show.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Writes `payload` at `key` unless an object is there already. Returns only after the
    /// backend has confirmed a durable write.
    pub async fn put_new(&self, key: &Path, payload: PutPayload) -> Result<Put, StorageError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .inner
            .put_opts(key, self.seal(key, payload), opts)
            .await
        {
            Ok(_) => {
                self.retain(key).await?;
                Ok(Put::Created)
            }
            Err(object_store::Error::AlreadyExists { .. }) => {
                self.sync_local(key).await?;
                // A writer that failed after its write may have left it unlocked: lock
                // it now. Should that fail, it must be locked already (a lock cannot be
                // shortened, so one set with a longer period stays), or the write fails.
                if let Err(e) = self.retain(key).await {
                    let now = time::OffsetDateTime::now_utc();
                    match self.hold(key).await? {
                        Some(held) if held.keeps(now).is_some() => {}
                        _ => return Err(e),
                    }
                }
                Ok(Put::AlreadyExists)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes `payload` at `key`, replacing what is there: only for objects that are a
    /// copy of what the catalog holds, never for archived data.
    pub async fn replace(&self, key: &Path, payload: PutPayload) -> Result<(), StorageError> {
        self.inner.put(key, self.seal(key, payload)).await?;
        Ok(())
    }

    /// `payload` as stored: encrypted when the target encrypts at rest.
    fn seal(&self, key: &Path, payload: PutPayload) -> PutPayload {
        let Some(ring) = &self.keyring else {
            return payload;
        };
        let mut plain = Vec::with_capacity(payload.content_length());
        for part in payload.iter() {
            plain.extend_from_slice(part);
        }
        PutPayload::from(ring.seal_all(key.as_ref(), &plain))
    }

    /// Makes an object found on a local target durable. A concurrent writer links its
    /// file in place before it syncs the directory, and a writer that died or failed
    /// may never have synced it: adopting the object must not ack it early.
    async fn sync_local(&self, key: &Path) -> Result<(), StorageError> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let file = root.join(key.as_ref());
        let synced = tokio::task::spawn_blocking(move || {
            std::fs::File::open(&file)?.sync_all()?;
            std::fs::File::open(file.parent().expect("an object's file has a directory"))?
                .sync_all()
        })
        .await
        .expect("sync task panicked");
        synced.map_err(|e| {
            StorageError::Backend(object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            })
        })
    }

    /// Starts a multipart write at `key`. Multipart uploads have no create-only mode, so
    /// callers must own `key` (the catalog row of a new backup id does that).
    pub async fn multipart(&self, key: &Path) -> Result<Writer, StorageError> {
        let upload = self.inner.put_multipart(key).await?;
        let mut inner = WriteMultipart::new_with_chunk_size(upload, MULTIPART_CHUNK);
        let sealer = self.keyring.as_ref().map(|ring| {
            let (header, sealer) = ring.seal(key.as_ref());
            inner.put(header);
            sealer
        });
        Ok(Writer {
            inner,
            sealer,
            written: 0,
            store: self.clone(),
            key: key.clone(),
        })
    }

    /// How objects written now are locked, if they are: as configured, and never shorter
    /// than the bucket's default retention.
    pub fn lock(&self) -> Option<Lock> {
        let bucket = self.bucket_lock.get().and_then(|b| b.default);
        match self.locking? {
            Locking::Bucket => bucket,
            Locking::Objects(own) => Some(Lock {
                period: own.period.max(bucket.map_or(own.period, |b| b.period)),
                ..own
            }),
        }
    }

    /// Until when an object written now is locked, if it is.
    pub fn locked_until(&self) -> Option<time::OffsetDateTime> {
        self.lock()
            .map(|l| time::OffsetDateTime::now_utc() + l.period)
    }

    /// Object Lock on this target, in words, for `/readyz` and the dashboard.
    pub fn object_lock(&self) -> Option<String> {
        let lock = self.lock().map(|l| {
            let days = l.period.as_secs() / 86_400;
            format!("{}, {days} days", l.mode.as_str())
        });
        match (self.locking, lock, self.bucket_lock.get()) {
            (Some(Locking::Bucket), Some(l), _) => {
                Some(format!("{l}, by the bucket's default retention"))
            }
            (Some(Locking::Objects(_)), Some(l), _) => Some(format!("{l}, set on each object")),
            (None, _, Some(b)) if b.enabled => {
                Some("enabled on the bucket, no default retention: objects are not locked".into())
            }
            _ => None,
        }
    }

    /// Locks `key` when the target locks each object itself.
    async fn retain(&self, key: &Path) -> Result<(), StorageError> {
        if let (Some(s3), Some(Locking::Objects(_)), Some(lock)) =
            (&self.s3, self.locking, self.lock())
        {
            let until = time::OffsetDateTime::now_utc() + lock.period;
            s3.retain(key, lock.mode, until).await?;
        }
        Ok(())
    }

    /// Reads the bucket's Object Lock configuration and checks it against the target's:
    /// a bucket that locks by default needs walgate to know (or it would send deletes
    /// that hide locked objects, and writes without the checksum S3 requires).
    pub async fn check_lock(&self) -> Result<(), StorageError> {
        let Some(s3) = &self.s3 else {
            return Ok(());
        };
        let bucket = match s3.bucket().await {
            Ok(b) => b,
            // S3-compatible stores without Object Lock may not know the request.
            Err(e) if self.locking.is_none() => {
                tracing::debug!(target = %self.target, error = %e, "no Object Lock configuration");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let refuse = |why: String| Err(StorageError::ObjectLock(why));
        match (self.locking, bucket.default) {
            (None, Some(d)) => {
                return refuse(format!(
                    "the bucket locks every new object ({}, {} days, its default retention): set \
                     object_lock = \"bucket\" on target `{}` so walgate sends the checksums S3 requires \
                     and never deletes an object before its lock ends",
                    d.mode.as_str(),
                    d.period.as_secs() / 86_400,
                    self.target
                ));
            }
            (Some(Locking::Bucket), None) => {
                return refuse(
                    "object_lock = \"bucket\" but the bucket has no default retention: give it one \
                     (aws s3api put-object-lock-configuration), or set object_lock = \"compliance\" \
                     or \"governance\" with object_lock_period"
                        .into(),
                );
            }
            (Some(_), _) if !bucket.enabled => {
                return refuse(
                    "Object Lock is not enabled on the bucket: create one with Object Lock enabled \
                     (aws s3api create-bucket --object-lock-enabled-for-bucket)"
                        .into(),
                );
            }
            _ => {}
        }
        let _ = self.bucket_lock.set(bucket);
        Ok(())
    }

    /// The lock the store has on `key`, on a bucket with Object Lock; `None` elsewhere.
    pub async fn hold(&self, key: &Path) -> Result<Option<lock::Hold>, StorageError> {
        let lockable = self.lock().is_some() || self.bucket_lock.get().is_some_and(|b| b.enabled);
        match &self.s3 {
            Some(s3) if lockable => Ok(Some(s3.hold(key).await?)),
            _ => Ok(None),
        }
    }

    /// Deletes `key`; a missing object is not an error (deletes are retried). On a
    /// bucket with Object Lock the object's lock is read first, and a locked object is
    /// refused (`Locked`), never sent a delete that would hide it behind a marker.
    pub async fn delete(&self, key: &Path) -> Result<(), StorageError> {
        match self.hold(key).await? {
            Some(lock::Hold::Absent) => return Ok(()),
            Some(held) => {
                if let Some(end) = held.keeps(time::OffsetDateTime::now_utc()) {
                    let object = key.clone();
                    return Err(StorageError::Locked { object, end });
                }
            }
            None => {}
        }
        match self.inner.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object under `prefix`, in no particular order. Only the catalog rebuild
    /// lists: everything else finds objects through the catalog.
    pub fn list(&self, prefix: &str) -> BoxStream<'static, Result<Listed, StorageError>> {
        self.inner
            .list(Some(&Path::from(prefix)))
            .map(|meta| {
                let meta = meta?;
                let at = meta.last_modified;
                let modified = time::OffsetDateTime::from_unix_timestamp(at.timestamp())
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
                Ok(Listed {
                    key: meta.location,
                    size: meta.size,
                    modified,
                })
            })
            .boxed()
    }

    /// Streams the object at `key`, decrypted when it was stored encrypted. The header
    /// and first segment are checked before this returns, so a damaged object is
    /// refused up front; damage further in ends the stream with an error.
    pub async fn get(
        &self,
        key: &Path,
    ) -> Result<BoxStream<'static, Result<Bytes, StorageError>>, StorageError> {
        let mut stored = match self.inner.get(key).await {
            Ok(got) => match got.payload {
                object_store::GetResultPayload::File(file, _) => file_stream(file, got.range),
                _ => got.into_stream().map_err(StorageError::from).boxed(),
            },
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StorageError::NotFound(key.clone()));
            }
            Err(e) => return Err(e.into()),
        };
        // Enough of the start to tell an encrypted object from a plain one.
        let mut head = bytes::BytesMut::new();
        while head.len() < crypt::MAGIC_LEN {
            match stored.next().await {
                Some(chunk) => head.extend_from_slice(&chunk?),
                None => break,
            }
        }
        let head = head.freeze();
        if !crypt::is_sealed(&head) {
            let head = futures_util::stream::once(async move { Ok(head) });
            return Ok(head.chain(stored).boxed());
        }
        let Some(ring) = &self.keyring else {
            return Err(CryptError::NoKeyring {
                object: key.to_string(),
            }
            .into());
        };
        let mut opened = unseal_stream(ring.unsealer(Some(key.as_ref())), head, stored);
        match opened.next().await {
            None => Ok(futures_util::stream::empty().boxed()),
            Some(Err(e)) => Err(e),
            Some(Ok(first)) => {
                let first = futures_util::stream::once(async move { Ok(first) });
                Ok(first.chain(opened).boxed())
            }
        }
    }

    /// Reads a whole (small) object.
    pub async fn get_all(&self, key: &Path) -> Result<Bytes, StorageError> {
        let mut stream = self.get(key).await?;
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk?);
        }
        Ok(buf.into())
    }

    /// Writes, reads back and deletes a probe object: the store is usable. At start
    /// (`semantics`) it must also refuse to overwrite the probe with a create-only
    /// write, and a bucket's Object Lock must match the target's; readiness probes skip
    /// those. On a write-once target the probe object is locked, so readiness probes
    /// only read (each write would stay for the lock period), and the start-up probe
    /// leaves its object in place. The error names the target and the step that failed.
    pub async fn probe(&self, semantics: bool) -> Result<(), StorageError> {
        let failed = |step: &'static str| {
            let target = self.target.clone();
            move |e: StorageError| StorageError::Probe {
                target,
                step,
                source: Box::new(e),
            }
        };
        if semantics {
            self.check_lock().await.map_err(failed("Object Lock"))?;
        }
        let key = layout::probe_key(&uuid::Uuid::new_v4().to_string());
        let locked = self.lock().is_some();
        if locked && !semantics {
            return match self.inner.head(&key).await {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(failed("read")(e.into())),
            };
        }
        let content = PutPayload::from_static(b"walgate probe");
        self.put_new(&key, content).await.map_err(failed("write"))?;
        // A store that ignores create-only writes could let a retried push overwrite
        // archived WAL: refuse to run on it.
        let again = PutPayload::from_static(b"walgate probe, overwritten");
        if semantics
            && self
                .put_new(&key, again)
                .await
                .map_err(failed("create-only write"))?
                != Put::AlreadyExists
        {
            let e = object_store::Error::NotSupported {
                source: "the store overwrote an object on a create-only write (If-None-Match); walgate cannot keep WAL safe on it".into(),
            };
            return Err(failed("create-only write")(e.into()));
        }
        let back = self.get_all(&key).await.map_err(failed("read"))?;
        if !locked {
            self.inner
                .delete(&key)
                .await
                .map_err(|e| failed("delete")(e.into()))?;
        }
        if back.as_ref() != b"walgate probe" {
            let e = object_store::Error::Generic {
                store: "probe",
                source: "the probe object read back with different content".into(),
            };
            return Err(failed("read")(e.into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whole and partial ranges across piece boundaries come back byte for byte; a file
    /// shorter than its range ends the stream with an error, not a short body.
    #[tokio::test]
    async fn local_files_stream_in_large_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        let bytes: Vec<u8> = (0..2_500_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let open = || std::fs::File::open(&path).unwrap();
        let collect = |s: BoxStream<'static, Result<Bytes, StorageError>>| async move {
            let pieces: Vec<Bytes> = s.try_collect().await?;
            Ok::<_, StorageError>(pieces)
        };

        let pieces = collect(file_stream(open(), 0..bytes.len() as u64))
            .await
            .unwrap();
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces.concat(), bytes);
        let part = collect(file_stream(open(), 1_000_000..2_100_000))
            .await
            .unwrap();
        assert_eq!(part.concat(), &bytes[1_000_000..2_100_000]);
        assert!(collect(file_stream(open(), 5..5)).await.unwrap().is_empty());

        let cut = collect(file_stream(open(), 0..bytes.len() as u64 + 10)).await;
        assert!(
            cut.unwrap_err()
                .to_string()
                .contains("ended before its recorded size"),
            "a short file must fail"
        );
    }
}
