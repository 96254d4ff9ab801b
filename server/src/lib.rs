//! The walgate gateway: an HTTP backup gateway for PostgreSQL fleets.
//!
//! Three layers, each importing only those below it:
//! - [`settings`]: flags, environment, config file and defaults, declared once;
//! - [`services`]: the catalog ([`catalog`], SQLite or PostgreSQL), the object stores
//!   ([`storage`]), tokens ([`auth`]), limits and metrics, and the work done with them:
//!   [`archive`] (what it takes to archive a WAL file safely), [`backup`], [`restore`],
//!   [`retention`], [`verify`], [`drill`], [`rebuild`] and [`fleet`]. [`catalog`] and [`storage`]
//!   import neither each other nor anything above them;
//! - [`http`]: routes, extractors, the one error mapping, and the state only requests need.
#![forbid(unsafe_code)]

pub mod archive;
pub mod auth;
pub mod backup;
pub mod catalog;
pub mod connections;
pub mod drill;
pub mod fleet;
pub mod http;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod rebuild;
pub mod restore;
pub mod retention;
pub mod secret;
pub mod services;
pub mod settings;
pub mod storage;
pub mod stream;
pub mod tls;
pub mod verify;

pub use services::Services;
