//! Limits on what the gateway takes on at once, each in a module of its own: base backup
//! [`uploads`], backup [`bandwidth`], and the [`memory`] WAL uploads and backup manifests
//! may hold; and the [`units`] they are given in.

pub mod bandwidth;
pub mod memory;
pub mod units;
pub mod uploads;

pub use bandwidth::{Bandwidth, RateLimits};
pub use memory::{MemoryBudget, Reserved};
pub use units::{Rate, Size};
pub use uploads::{Busy, Slot, UploadLimits, Uploads};
