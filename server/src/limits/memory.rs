//! Memory budgets: what uploads in progress may hold in memory. WAL uploads have one of
//! their own, never shared with backups (a WAL push that fails fills pg_wal on the
//! database host): past it an upload waits its turn, and is told to retry (503) only
//! after waiting as long as a silent body may. Backup manifests, read whole, have
//! another.

use std::sync::Arc;

/// Memory uploads in progress may hold: each reserves the most it can buffer before it
/// reads it, and releases it when done. Past the budget, uploads wait first come first
/// served, their bodies unread (TCP pushes back on the host), so a fleet reconnecting
/// at once after an outage cannot run the gateway out of memory.
#[derive(Clone)]
pub struct MemoryBudget {
    /// In KiB, the semaphore's unit.
    budget_kib: u32,
    free: Arc<tokio::sync::Semaphore>,
    waiting: Arc<std::sync::atomic::AtomicUsize>,
}

/// Memory held for one WAL upload; dropping it gives the memory back.
pub struct Reserved {
    _held: tokio::sync::OwnedSemaphorePermit,
}

impl MemoryBudget {
    pub fn new(budget_bytes: u64) -> Self {
        let budget_kib = (budget_bytes >> 10).clamp(1, u64::from(u32::MAX)) as u32;
        MemoryBudget {
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

    /// [`Self::reserve`] from a blocking worker thread, waiting at most `patience`.
    pub fn reserve_blocking(&self, bytes: u64, patience: std::time::Duration) -> Option<Reserved> {
        let handle = tokio::runtime::Handle::current();
        handle.block_on(async {
            tokio::time::timeout(patience, self.reserve(bytes))
                .await
                .ok()
        })
    }

    /// How many uploads wait for memory now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// One upload counted in [`MemoryBudget::waiting`] while this lives.
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
mod tests {
    use super::*;
    use futures_util::FutureExt as _;

    #[tokio::test]
    async fn uploads_past_the_budget_wait_in_turn_and_are_counted() {
        let memory = MemoryBudget::new(32 << 20);
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
        let memory = MemoryBudget::new(1 << 20);
        let _held = memory.reserve(1 << 20).await;
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(10), memory.reserve(1)).await;
        assert!(waited.is_err());
        assert_eq!(memory.waiting(), 0);
    }
}
