//! Types shared by the walgate gateway and its client.
//!
//! Everything here is parsed once from untrusted text or bytes and never panics on bad
//! input: WAL file names, LSNs, timelines, WAL page headers and the JSON bodies of the
//! HTTP API. The crate has no I/O and no async runtime so the client stays small.
#![forbid(unsafe_code)]

pub mod api;
pub mod backup;
pub mod history;
pub mod lsn;
pub mod names;
pub mod page;
pub mod recipe;
pub mod timestamp;
pub mod units;
pub mod wal;

pub use backup::{BackupLabel, ParentStart};
pub use lsn::Lsn;
pub use names::{ClusterName, TargetName};
pub use page::{LongPageHeader, PageHeaderError};
pub use wal::{
    SegmentName, SegmentPosition, SegmentPositionError, SegmentSize, Timeline, WalFileKind,
    WalFileName, WalNameError,
};
