//! Backup bandwidth: token buckets overall and per cluster, which base backup uploads
//! and restores are paced by. WAL is never throttled, so it always goes first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use walgate_core::ClusterName;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_paces_to_its_rate_and_changes_at_once() {
        let started = std::time::Instant::now();
        let bucket = Bucket::new(Some(1_000_000));
        // 1 MB at 1 MB/s from an empty bucket: a second of debt, less what the time
        // these takes took has paid off (however slow a busy machine makes them).
        let wait: f64 = (0..10)
            .map(|_| bucket.take(100_000).as_secs_f64())
            .fold(0.0, f64::max);
        let took = started.elapsed().as_secs_f64();
        assert!(wait <= 1.0 + 1e-6, "{wait}");
        assert!(wait >= 1.0 - took - 1e-6, "{wait} after {took} s");
        bucket.set(None);
        assert_eq!(bucket.take(10_000_000), std::time::Duration::ZERO);
    }
}
