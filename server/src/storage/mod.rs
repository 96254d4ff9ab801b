//! Object storage over the `object_store` crate.
//!
//! Every write is create-only (`PutMode::Create`), so an object once stored is never
//! overwritten; on the local filesystem the store fsyncs each file and its directory
//! before a write returns, which is what lets the gateway acknowledge a WAL file.
//! Object keys are built only by [`layout`].

pub mod layout;
pub mod target;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
pub use target::{TargetConfig, TargetName};

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
}

fn hint_suffix(e: &StorageError) -> String {
    target::hint(&e.to_string())
        .map(|h| format!(" ({h})"))
        .unwrap_or_default()
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
            let store = Store {
                inner: config.open(name)?,
                target: name.clone(),
                url: config.display_url(),
            };
            stores.insert(name.clone(), store);
        }
        Self::new(stores, default)
    }

    /// Wraps stores already built, e.g. an in-memory one or a fault-injecting wrapper in tests.
    pub fn from_object_stores(
        stores: impl IntoIterator<Item = (TargetName, Arc<dyn ObjectStore>)>,
        default: &TargetName,
    ) -> Result<Self, StorageError> {
        let stores = stores
            .into_iter()
            .map(|(name, inner)| {
                let store = Store {
                    inner,
                    url: format!("{name} (in process)"),
                    target: name.clone(),
                };
                (name, store)
            })
            .collect();
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

    /// The store holding a cluster's objects; one not registered yet goes to the default.
    pub fn of(&self, cluster: Option<&crate::catalog::ClusterRow>) -> Result<&Store, StorageError> {
        self.get(cluster.map_or(&self.default, |c| &c.target))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Store> {
        self.stores.values()
    }
}

/// One target's object store: a thin, clonable handle.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    target: TargetName,
    /// Without credentials or query string.
    url: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("target", &self.target)
            .field("url", &self.url)
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

    /// Writes, reads back and deletes a probe object: the store is usable. The error
    /// names the target and the step that failed.
    pub async fn probe(&self) -> Result<(), StorageError> {
        let failed = |step: &'static str| {
            let target = self.target.clone();
            move |e: StorageError| StorageError::Probe {
                target,
                step,
                source: Box::new(e),
            }
        };
        let key = layout::probe_key(&uuid::Uuid::new_v4().to_string());
        let content = PutPayload::from_static(b"walgate probe");
        self.put_new(&key, content).await.map_err(failed("write"))?;
        // A store that ignores create-only writes could let a retried push overwrite
        // archived WAL: refuse to run on it.
        let again = PutPayload::from_static(b"walgate probe, overwritten");
        if self
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
        self.inner
            .delete(&key)
            .await
            .map_err(|e| failed("delete")(e.into()))?;
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
