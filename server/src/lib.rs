//! The walgate gateway: an HTTP backup gateway for PostgreSQL fleets.
//!
//! Layers, from the wire inwards: [`http`] (routes, extractors, the one error mapping),
//! [`archive`] (what it takes to archive a WAL file safely), [`auth`] (tokens),
//! [`catalog`] (the index, SQLite or PostgreSQL) and [`storage`] (objects).
#![forbid(unsafe_code)]

pub mod archive;
pub mod auth;
pub mod backup;
pub mod catalog;
pub mod config;
pub mod fleet;
pub mod http;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod rebuild;
pub mod secret;
pub mod restore;
pub mod retention;
pub mod storage;
pub mod stream;
pub mod tls;
pub mod verify;

use std::sync::Arc;

use anyhow::Context as _;

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    pub catalog: Arc<dyn catalog::Catalog>,
    /// The storage targets; each cluster's objects live on its own one.
    pub storage: storage::Targets,
    pub auth: auth::Authority,
    /// zstd level for WAL at rest.
    pub zstd_level: i32,
    /// A WAL upload silent this long is given up.
    pub wal_idle_timeout: std::time::Duration,
    /// The fleet's default retention policy, for clusters without their own.
    pub retention: Option<walgate_core::api::RetentionPolicy>,
    /// How often scheduled retention runs; zero: never.
    pub retention_interval: std::time::Duration,
    /// How often scheduled verification runs; zero: never.
    pub verify_interval: std::time::Duration,
    /// Request and WAL counters for `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// The memory WAL uploads in progress hold, within its budget.
    pub wal_memory: limits::WalMemory,
    /// Base backup uploads running now, within their limits.
    pub uploads: limits::Uploads,
    /// Base backup bandwidth, overall and per cluster.
    pub bandwidth: limits::Bandwidth,
    /// When clusters count as late or failing.
    pub thresholds: fleet::Thresholds,
    /// Whether the gateway serves HTTPS itself.
    pub tls: bool,
    /// Reverse proxies whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Arc<http::forwarded::TrustedProxies>,
    /// Cancelled when shutdown's deadline passes: backup uploads still running end as
    /// cut uploads, which clean up after themselves.
    pub cut_uploads: tokio_util::sync::CancellationToken,
    /// Set on SIGTERM: `/readyz` answers 503 while requests in flight finish.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    /// Opens the catalog (migrating it), the object store and the signing key.
    pub async fn open(s: &config::Settings) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&s.data_dir)
            .with_context(|| format!("create data directory {}", s.data_dir.display()))?;
        let catalog = catalog::open(s.catalog_url.expose())
            .await
            .with_context(|| format!("open catalog {}", s.catalog_url))?;
        let storage = storage::Targets::open(&s.targets, &s.default_target)?;
        let keys = auth::Keys::load_or_create(&s.signing_key_file)?;
        let auth = auth::Authority::new(keys, catalog.clone());
        Ok(AppState {
            catalog,
            storage,
            auth,
            zstd_level: s.zstd_level,
            wal_idle_timeout: s.wal_idle_timeout,
            retention: s.retention.clone(),
            retention_interval: s.retention_interval,
            verify_interval: s.verify_interval,
            draining: Default::default(),
            metrics: Default::default(),
            cut_uploads: Default::default(),
            wal_memory: limits::WalMemory::new(s.wal_memory),
            uploads: limits::Uploads::new(s.upload_limits),
            bandwidth: limits::Bandwidth::new(s.backup_rates),
            thresholds: s.thresholds,
            tls: s.tls.is_some(),
            trusted_proxies: Arc::new(http::forwarded::TrustedProxies(s.trusted_proxies.clone())),
        })
    }
}
