//! Object storage over the `object_store` crate.
//!
//! Every write is create-only (`PutMode::Create`), so an object once stored is never
//! overwritten; on the local filesystem the store fsyncs each file and its directory
//! before a write returns, which is what lets the gateway acknowledge a WAL file.
//! Object keys are built only by [`layout`].

pub mod layout;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};

/// Part size of multipart uploads: above S3's 5 MiB minimum, small enough that a few
/// parts in flight keep a backup's memory bounded.
pub const MULTIPART_CHUNK: usize = 8 << 20;
/// Parts of one upload in flight at once.
pub const MULTIPART_CONCURRENCY: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object {0} not found")]
    NotFound(Path),
    #[error("unsupported storage URL `{0}`: use file:///path")]
    BadUrl(String),
    #[error("cannot create storage directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("object store: {0}")]
    Backend(#[from] object_store::Error),
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

/// The gateway's object store: a thin, clonable handle.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    url: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.url).finish()
    }
}

impl Store {
    /// Opens the store at `url` (`file:///path`; the directory is created if missing).
    pub fn open(url: &str) -> Result<Self, StorageError> {
        let dir = url.strip_prefix("file://").filter(|d| d.starts_with('/'));
        let Some(dir) = dir else {
            return Err(StorageError::BadUrl(url.to_owned()));
        };
        std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let local = LocalFileSystem::new_with_prefix(dir)?.with_fsync(true);
        Ok(Store {
            inner: Arc::new(local),
            url: url.to_owned(),
        })
    }

    /// Wraps any object store, e.g. an in-memory one or a fault-injecting wrapper in tests.
    pub fn from_object_store(inner: Arc<dyn ObjectStore>, url: &str) -> Self {
        Store {
            inner,
            url: url.to_owned(),
        }
    }

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
        match self.inner.put_opts(key, payload, opts).await {
            Ok(_) => Ok(Put::Created),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Put::AlreadyExists),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts a multipart write at `key`. Multipart uploads have no create-only mode, so
    /// callers must own `key` (the catalog row of a new backup id does that).
    pub async fn multipart(&self, key: &Path) -> Result<WriteMultipart, StorageError> {
        let upload = self.inner.put_multipart(key).await?;
        Ok(WriteMultipart::new_with_chunk_size(upload, MULTIPART_CHUNK))
    }

    /// Deletes `key`; a missing object is not an error (deletes are retried).
    pub async fn delete(&self, key: &Path) -> Result<(), StorageError> {
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

    /// Streams the object at `key`.
    pub async fn get(
        &self,
        key: &Path,
    ) -> Result<BoxStream<'static, Result<Bytes, StorageError>>, StorageError> {
        match self.inner.get(key).await {
            Ok(got) => Ok(got.into_stream().map_err(StorageError::from).boxed()),
            Err(object_store::Error::NotFound { .. }) => Err(StorageError::NotFound(key.clone())),
            Err(e) => Err(e.into()),
        }
    }

    /// The size of the object at `key`.
    pub async fn head_size(&self, key: &Path) -> Result<u64, StorageError> {
        match self.inner.head(key).await {
            Ok(meta) => Ok(meta.size),
            Err(object_store::Error::NotFound { .. }) => Err(StorageError::NotFound(key.clone())),
            Err(e) => Err(e.into()),
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

    /// Writes, reads back and deletes a probe object: the store is usable.
    pub async fn probe(&self) -> Result<(), StorageError> {
        let key = layout::probe_key(&uuid::Uuid::new_v4().to_string());
        self.inner
            .put(&key, PutPayload::from_static(b"walgate probe"))
            .await?;
        let back = self.get_all(&key).await?;
        self.inner.delete(&key).await?;
        if back.as_ref() != b"walgate probe" {
            return Err(StorageError::Backend(object_store::Error::Generic {
                store: "probe",
                source: "probe object read back with different content".into(),
            }));
        }
        Ok(())
    }
}
