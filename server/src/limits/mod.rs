//! Limits on what the gateway takes on at once, each in a module of its own: base backup
//! [`uploads`], backup [`bandwidth`], and the memory WAL uploads may hold
//! ([`wal_memory`]); and the [`units`] they are given in.

pub mod bandwidth;
pub mod units;
pub mod uploads;
pub mod wal_memory;

pub use bandwidth::{Bandwidth, RateLimits};
pub use units::{Rate, Size};
pub use uploads::{Busy, Slot, UploadLimits, Uploads};
pub use wal_memory::{Reserved, WalMemory};
