//! End-to-end harness: throwaway PostgreSQL clusters and walgate gateways, driven the way
//! an operator would drive them (real `initdb`, `pg_ctl`, `curl` and the real binaries).
//!
//! One module per subject, each re-exported here so tests `use walgate_tests::…` alone.
#![forbid(unsafe_code)]

pub mod browser;
pub mod certs;
pub mod emulators;
pub mod gateway;
pub mod pg;
pub mod process;
pub mod recipes;
pub mod wait;
pub mod wal;

pub use certs::make_certificate;
pub use gateway::{Gateway, agent, agent_trusting, bin, body_bytes, gateway_dir, refused_start};
pub use pg::{
    MAJORS, PgCluster, Postgres, basebackup_tar, conf_quote, pg_owned_tempdir, pgbench_checksum,
    write_pg_owned,
};
pub use process::{free_port, run, tail};
pub use recipes::{
    archiving_with_curl, client_command, curl_archive_command, curl_restore_command,
    restore_by_commands, restore_plan, write_token_header,
};
pub use wait::{poll_until, wait_until};
pub use wal::{synthetic_backup, synthetic_segment, synthetic_segment_of};
