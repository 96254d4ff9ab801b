//! The gateway's working parts, without anything HTTP: what archive, backup, restore,
//! retention, verify, rebuild and fleet take. The HTTP layer wraps it with what only
//! requests need (see `http::AppState`); the command-line tools use it alone.

use std::sync::Arc;

use anyhow::Context as _;

use crate::auth;
use crate::catalog::{self, Catalog};
use crate::limits::{Bandwidth, MemoryBudget, Uploads};
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::storage::Targets;

/// A cheap, clonable handle to the catalog, the storage targets, the limits and the
/// metrics, with the settings they were opened with.
#[derive(Clone)]
pub struct Services {
    pub catalog: Arc<dyn Catalog>,
    /// The storage targets; each cluster's objects live on its own one.
    pub storage: Targets,
    /// Token issue and verification, against the catalog's revocations.
    pub auth: auth::Authority,
    pub limits: Limits,
    /// Request and WAL counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Verifications brought forward when a cluster's timelines change.
    pub verify_soon: crate::verify::Soon,
    pub settings: Arc<Settings>,
}

/// What the gateway takes on at once.
#[derive(Clone)]
pub struct Limits {
    /// The memory WAL uploads in progress hold, within its budget.
    pub wal_memory: MemoryBudget,
    /// The memory backup manifests held until stored take, within theirs.
    pub manifest_memory: MemoryBudget,
    /// Base backup uploads running now, within their limits.
    pub uploads: Uploads,
    /// Base backup bandwidth, overall and per cluster.
    pub bandwidth: Bandwidth,
}

impl Services {
    /// Opens the catalog (migrating it), the object stores and the signing key.
    pub async fn open(settings: Settings) -> anyhow::Result<Self> {
        let state = &settings.state;
        let data_dir = state.data_dir()?;
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("create data directory {}", data_dir.display()))?;
        // Everything that can be wrong with the settings is found before the catalog,
        // perhaps shared with other gateways, is migrated.
        let (targets, default_target) = state.targets()?;
        let storage = Targets::open(&targets, &default_target)?;
        let key_file = state.signing_key_file()?;
        let url = state.catalog_url()?;
        let catalog = catalog::open(url.expose())
            .await
            .with_context(|| format!("open catalog {url}"))?;
        let keys = auth::Keys::load_or_create(&key_file)?;
        let auth = auth::Authority::new(keys, catalog.clone());
        Ok(Services {
            catalog,
            storage,
            auth,
            limits: Limits {
                wal_memory: MemoryBudget::new(settings.wal_memory.0),
                manifest_memory: MemoryBudget::new(crate::backup::MANIFEST_MEMORY),
                uploads: Uploads::new(settings.upload_limits()),
                bandwidth: Bandwidth::new(settings.backup_rates()),
            },
            metrics: Default::default(),
            verify_soon: Default::default(),
            settings: Arc::new(settings),
        })
    }
}
