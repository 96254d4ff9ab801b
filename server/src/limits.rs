//! Limits on what the gateway takes on at once: base backup uploads, per cluster and
//! overall, so that backups cannot crowd out WAL archiving; backup bandwidth; and the
//! memory WAL uploads may hold. WAL is never refused for backups' sake (a push that
//! fails fills pg_wal on the database host): past its memory budget it waits its turn,
//! and is told to retry (503) only after waiting as long as a silent body may.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use walgate_core::ClusterName;

/// How many backup uploads may run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    pub per_cluster: usize,
    pub overall: usize,
}

/// Why an upload cannot start now.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Busy {
    #[error("cluster `{0}` already uploads {1} backup(s), its limit")]
    Cluster(ClusterName, usize),
    #[error("the gateway already receives {0} backups, its limit")]
    Gateway(usize),
}

/// The uploads running now.
#[derive(Clone)]
pub struct Uploads {
    limits: UploadLimits,
    running: Arc<Mutex<HashMap<ClusterName, usize>>>,
}

/// One running upload; dropping it frees its place.
pub struct Slot {
    uploads: Uploads,
    cluster: ClusterName,
}

impl Uploads {
    pub fn new(limits: UploadLimits) -> Self {
        Uploads {
            limits,
            running: Default::default(),
        }
    }

    /// How many uploads are running.
    pub fn running(&self) -> usize {
        self.running
            .lock()
            .expect("no panics hold this lock")
            .values()
            .sum()
    }

    /// Takes a place for an upload of `cluster`, or says which limit is reached.
    pub fn start(&self, cluster: &ClusterName) -> Result<Slot, Busy> {
        let mut running = self.running.lock().expect("no panics hold this lock");
        let total: usize = running.values().sum();
        let mine = running.get(cluster).copied().unwrap_or(0);
        if mine >= self.limits.per_cluster {
            return Err(Busy::Cluster(cluster.clone(), mine));
        }
        if total >= self.limits.overall {
            return Err(Busy::Gateway(total));
        }
        *running.entry(cluster.clone()).or_default() += 1;
        Ok(Slot {
            uploads: self.clone(),
            cluster: cluster.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self
            .uploads
            .running
            .lock()
            .expect("no panics hold this lock");
        if let Some(n) = running.get_mut(&self.cluster) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.cluster);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_taken_per_cluster_and_overall_and_freed_on_drop() {
        let uploads = Uploads::new(UploadLimits {
            per_cluster: 1,
            overall: 2,
        });
        let (a, b, c): (ClusterName, ClusterName, ClusterName) = (
            "a".parse().unwrap(),
            "b".parse().unwrap(),
            "c".parse().unwrap(),
        );
        let first = uploads.start(&a).unwrap();
        assert_eq!(uploads.start(&a).err(), Some(Busy::Cluster(a.clone(), 1)));
        let _second = uploads.start(&b).unwrap();
        assert_eq!(uploads.start(&c).err(), Some(Busy::Gateway(2)));
        drop(first);
        assert!(uploads.start(&a).is_ok());
    }
}

/// The memory WAL uploads in progress may hold: each reserves the most it can buffer
/// before it reads its body, and releases it when done. Past the budget, uploads wait
/// first come first served, their bodies unread (TCP pushes back on the host), so a
/// fleet reconnecting at once after an outage cannot run the gateway out of memory.
#[derive(Clone)]
pub struct WalMemory {
    /// In KiB, the semaphore's unit.
    budget_kib: u32,
    free: Arc<tokio::sync::Semaphore>,
    waiting: Arc<std::sync::atomic::AtomicUsize>,
}

/// Memory held for one WAL upload; dropping it gives the memory back.
pub struct Reserved {
    _held: tokio::sync::OwnedSemaphorePermit,
}

impl WalMemory {
    pub fn new(budget_bytes: u64) -> Self {
        let budget_kib = (budget_bytes >> 10).clamp(1, u64::from(u32::MAX)) as u32;
        WalMemory {
            budget_kib,
            free: Arc::new(tokio::sync::Semaphore::new(budget_kib as usize)),
            waiting: Default::default(),
        }
    }

    /// Waits until `bytes` are free and holds them. An upload needing more than the
    /// whole budget waits until it has the budget to itself.
    pub async fn reserve(&self, bytes: u64) -> Reserved {
        let kib = bytes.div_ceil(1024).clamp(1, u64::from(self.budget_kib)) as u32;
        if let Ok(held) = self.free.clone().try_acquire_many_owned(kib) {
            return Reserved { _held: held };
        }
        // Counted until granted, or until the caller gives up (drops this future).
        let _waiting = Waiting::count(&self.waiting);
        let held = self.free.clone().acquire_many_owned(kib).await;
        Reserved {
            _held: held.expect("the semaphore is never closed"),
        }
    }

    /// How many WAL uploads wait for memory now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// One upload counted in [`WalMemory::waiting`] while this lives.
struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Waiting<'a> {
    fn count(n: &'a std::sync::atomic::AtomicUsize) -> Self {
        n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Waiting(n)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod wal_memory_tests {
    use super::*;
    use futures_util::FutureExt as _;

    #[tokio::test]
    async fn uploads_past_the_budget_wait_in_turn_and_are_counted() {
        let memory = WalMemory::new(32 << 20);
        let first = memory.reserve(20 << 20).await;
        let mut second = Box::pin(memory.reserve(20 << 20));
        // Polled once: it cannot have its memory while the first holds it.
        assert!(second.as_mut().now_or_never().is_none());
        assert_eq!(memory.waiting(), 1);
        drop(first);
        let _second = second.await;
        assert_eq!(memory.waiting(), 0);
        // More than the whole budget: granted the whole budget, once it is free.
        let mut huge = Box::pin(memory.reserve(1 << 30));
        assert!(huge.as_mut().now_or_never().is_none());
        drop(_second);
        drop(huge.await);
    }

    #[tokio::test]
    async fn an_upload_that_gives_up_waiting_is_no_longer_counted() {
        let memory = WalMemory::new(1 << 20);
        let _held = memory.reserve(1 << 20).await;
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(10), memory.reserve(1)).await;
        assert!(waited.is_err());
        assert_eq!(memory.waiting(), 0);
    }
}

/// Bandwidth limits for base backups (uploads and restores), in bytes per second;
/// `None` is unlimited. WAL is never throttled, so it always goes first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    pub overall: Option<u64>,
    pub per_cluster: Option<u64>,
}

/// A token bucket that may run into debt: a taker sleeps off what it overdrew, so
/// concurrent streams share the rate and none is starved.
struct Bucket {
    rate: std::sync::atomic::AtomicU64,
    state: Mutex<(f64, std::time::Instant)>,
}

impl Bucket {
    fn new(rate: Option<u64>) -> Self {
        Bucket {
            rate: std::sync::atomic::AtomicU64::new(rate.unwrap_or(0)),
            state: Mutex::new((0.0, std::time::Instant::now())),
        }
    }

    fn set(&self, rate: Option<u64>) {
        self.rate
            .store(rate.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
    }

    /// How long to wait before sending `n` more bytes.
    fn take(&self, n: usize) -> std::time::Duration {
        let rate = self.rate.load(std::sync::atomic::Ordering::Relaxed) as f64;
        if rate == 0.0 {
            return std::time::Duration::ZERO;
        }
        let mut state = self.state.lock().expect("no panics hold this lock");
        let now = std::time::Instant::now();
        // At most a tenth of a second saved up: bursts stay short.
        let (tokens, last) = *state;
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * rate).min(rate / 10.0);
        let left = tokens - n as f64;
        *state = (left, now);
        std::time::Duration::from_secs_f64((-left).max(0.0) / rate)
    }
}

/// The gateway's backup bandwidth: one bucket overall and one per cluster. Limits can
/// change while streams run (on SIGHUP, from the config file).
#[derive(Clone)]
pub struct Bandwidth {
    overall: Arc<Bucket>,
    per_cluster: Arc<std::sync::atomic::AtomicU64>,
    clusters: Arc<Mutex<HashMap<ClusterName, Arc<Bucket>>>>,
}

impl Bandwidth {
    pub fn new(limits: RateLimits) -> Self {
        let b = Bandwidth {
            overall: Arc::new(Bucket::new(limits.overall)),
            per_cluster: Default::default(),
            clusters: Default::default(),
        };
        b.set(limits);
        b
    }

    /// Applies new limits to every stream, running or not.
    pub fn set(&self, limits: RateLimits) {
        self.overall.set(limits.overall);
        let per = limits.per_cluster.unwrap_or(0);
        self.per_cluster
            .store(per, std::sync::atomic::Ordering::Relaxed);
        for bucket in self.clusters.lock().expect("no panics").values() {
            bucket.set(limits.per_cluster);
        }
    }

    fn bucket(&self, cluster: &ClusterName) -> Arc<Bucket> {
        let per = self.per_cluster.load(std::sync::atomic::Ordering::Relaxed);
        let mut clusters = self.clusters.lock().expect("no panics hold this lock");
        clusters
            .entry(cluster.clone())
            .or_insert_with(|| Arc::new(Bucket::new((per > 0).then_some(per))))
            .clone()
    }

    /// `stream`, paced to the overall and `cluster`'s limits.
    pub fn throttle<S, E>(
        &self,
        cluster: &ClusterName,
        stream: S,
    ) -> futures_util::stream::BoxStream<'static, Result<bytes::Bytes, E>>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Send + 'static,
        E: Send + 'static,
    {
        use futures_util::StreamExt as _;
        let (overall, mine) = (self.overall.clone(), self.bucket(cluster));
        stream
            .then(move |chunk| {
                let wait = match &chunk {
                    Ok(data) => overall.take(data.len()).max(mine.take(data.len())),
                    Err(_) => std::time::Duration::ZERO,
                };
                async move {
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    chunk
                }
            })
            .boxed()
    }
}

/// Bytes per second; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(pub Option<u64>);

impl Rate {
    /// Parses a rate such as `50MiB`, `200M`, `1.5GiB` or `0` (unlimited), per second.
    pub fn parse(s: &str) -> Result<Rate, String> {
        parse_rate(s).map(Rate)
    }
}

fn parse_rate(s: &str) -> Result<Option<u64>, String> {
    let bytes = parse_bytes(s.trim().trim_end_matches("/s"))
        .map_err(|e| format!("{e}: use e.g. 50MiB, 200M or 0 (no limit)"))?;
    Ok((bytes > 0).then_some(bytes))
}

/// An amount of memory, in bytes, more than zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl Size {
    /// Parses a size such as `512MiB`, `1G` or `1.5GiB`.
    pub fn parse(s: &str) -> Result<Size, String> {
        match parse_bytes(s) {
            Ok(0) => Err(format!(
                "`{s}` is no memory at all: use e.g. 512MiB or 2GiB"
            )),
            Ok(bytes) => Ok(Size(bytes)),
            Err(e) => Err(format!("{e}: use e.g. 512MiB or 2GiB")),
        }
    }
}

/// `50MiB`, `200M`, `1.5GiB`, `4096`: a number of bytes with an optional unit.
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a number of bytes"))?;
    let scale: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KB" => 1e3,
        "KiB" => 1024.0,
        "M" | "MB" => 1e6,
        "MiB" => 1024.0 * 1024.0,
        "G" | "GB" => 1e9,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "`{s}`: unknown unit `{other}` (use K, M, G, KiB, MiB or GiB)"
            ));
        }
    };
    Ok((number * scale) as u64)
}

#[cfg(test)]
mod rate_tests {
    use super::*;

    #[test]
    fn rates_parse_with_units() {
        assert_eq!(parse_rate("50MiB"), Ok(Some(50 << 20)));
        assert_eq!(parse_rate("200M/s"), Ok(Some(200_000_000)));
        assert_eq!(parse_rate("1.5GiB"), Ok(Some(3 << 29)));
        assert_eq!(parse_rate("0"), Ok(None));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("5 parsecs").is_err());
    }

    #[test]
    fn sizes_parse_with_units_and_are_never_zero() {
        assert_eq!(Size::parse("512MiB"), Ok(Size(512 << 20)));
        assert_eq!(Size::parse("1G"), Ok(Size(1_000_000_000)));
        assert!(Size::parse("0").unwrap_err().contains("no memory"));
        assert!(Size::parse("lots").unwrap_err().contains("e.g. 512MiB"));
    }

    #[test]
    fn a_bucket_paces_to_its_rate_and_changes_at_once() {
        let bucket = Bucket::new(Some(1_000_000));
        // 1 MB at 1 MB/s: about a second of debt beyond the small saved-up burst.
        let wait: f64 = (0..10)
            .map(|_| bucket.take(100_000).as_secs_f64())
            .fold(0.0, f64::max);
        assert!((0.9..=1.01).contains(&wait), "{wait}");
        bucket.set(None);
        assert_eq!(bucket.take(10_000_000), std::time::Duration::ZERO);
    }
}
