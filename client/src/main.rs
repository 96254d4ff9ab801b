//! `walgate-client`: archive_command and restore_command for walgate, for database hosts.
//!
//! Blocking and small on purpose: no async runtime, one HTTP client, zstd on the host so
//! the network carries compressed WAL.
#![forbid(unsafe_code)]

mod backup;
mod gateway;
mod parallel;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use walgate_core::WalFileName;

use gateway::{Fetched, Gateway, Pushed};

/// Archive and restore PostgreSQL WAL through a walgate gateway.
///
/// Configure with flags or environment variables (envdir and systemd friendly), e.g. in
/// postgresql.conf:
///
///   archive_command = 'walgate-client wal-push %p'
///   restore_command = 'walgate-client wal-fetch %f %p'
///
/// with WALGATE_URL, WALGATE_CLUSTER and WALGATE_TOKEN_FILE in the server's environment.
#[derive(Parser)]
#[command(name = "walgate-client", version)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Config {
    /// Gateway URL, e.g. http://backup.internal:8432
    #[arg(long, env = "WALGATE_URL", global = true, value_name = "URL")]
    url: Option<String>,
    /// Cluster name on the gateway.
    #[arg(long, env = "WALGATE_CLUSTER", global = true, value_name = "NAME")]
    cluster: Option<String>,
    /// API token (prefer --token-file: a token on the command line shows in `ps`).
    #[arg(
        long,
        env = "WALGATE_TOKEN",
        global = true,
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// File holding the API token.
    #[arg(long, env = "WALGATE_TOKEN_FILE", global = true, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// zstd level for uploads, 1 (fastest) to 19.
    #[arg(long, env = "WALGATE_ZSTD_LEVEL", global = true, default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..=19))]
    zstd_level: i32,
}

#[derive(Subcommand)]
enum Command {
    /// Archive one WAL file (archive_command = 'walgate-client wal-push %p').
    ///
    /// Exits 0 only once the gateway has acknowledged the file as durable, and 1 on any
    /// failure (PostgreSQL keeps the file and retries).
    WalPush {
        /// Path of the file, relative to the data directory (%p).
        path: PathBuf,
    },
    /// Fetch one WAL file (restore_command = 'walgate-client wal-fetch %f %p').
    ///
    /// Exits 1 when the gateway says the file is not archived. When the gateway cannot
    /// be reached after retries it exits 1 on a standby (standby.signal: PostgreSQL asks
    /// again later) and 200 otherwise, which stops recovery instead of ending it early
    /// on an incomplete archive.
    WalFetch {
        /// The file name PostgreSQL asks for (%f).
        name: String,
        /// Where to write it (%p).
        path: PathBuf,
    },
    /// Take a base backup with pg_basebackup and stream it to the gateway.
    ///
    /// Connection settings come from the usual PG* variables or from pg_basebackup
    /// options after `--`, e.g. `walgate-client backup-push -- -h /var/run/postgresql`.
    /// Cron, nightly: `0 2 * * * walgate-client backup-push`.
    BackupPush {
        /// The pg_basebackup program.
        #[arg(long, env = "WALGATE_PG_BASEBACKUP", default_value = "pg_basebackup")]
        pg_basebackup: PathBuf,
        /// Print the stored backup as JSON.
        #[arg(long)]
        json: bool,
        /// More pg_basebackup options.
        #[arg(last = true)]
        extra: Vec<String>,
    },
    /// List the cluster's backups, newest first.
    BackupList {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Extract a backup (an id, or `latest`) into an empty directory.
    BackupFetch { dir: PathBuf, id: String },
    /// Prepare a data directory that recovers to a target when started.
    ///
    /// Asks the gateway for a restore plan, extracts the backup it names, and writes
    /// `recovery.signal` and the recovery settings (restore_command running this client)
    /// into `postgresql.auto.conf`. Needs --token-file, which PostgreSQL will read.
    Restore {
        /// The empty directory to restore into.
        #[arg(long)]
        pgdata: PathBuf,
        /// Recover to this time (RFC 3339, e.g. 2026-11-27T06:45:00Z).
        #[arg(long, group = "target")]
        target_time: Option<String>,
        /// Recover to this LSN.
        #[arg(long, group = "target")]
        target_lsn: Option<String>,
        /// Recover to this transaction id.
        #[arg(long, group = "target")]
        target_xid: Option<u64>,
        /// Recover to this restore point.
        #[arg(long, group = "target")]
        target_name: Option<String>,
        /// Timeline to follow: a number or `latest`.
        #[arg(long)]
        target_timeline: Option<String>,
    },
}

/// What PostgreSQL reads from a restore_command that could not ask the gateway outside
/// standby mode: above 125, so recovery stops rather than ends.
const EXIT_STOP_RECOVERY: u8 = 200;

impl Config {
    fn gateway(&self) -> anyhow::Result<Gateway> {
        let url = self
            .url
            .as_deref()
            .context("no gateway URL: set WALGATE_URL or pass --url")?;
        let cluster = self
            .cluster
            .as_deref()
            .context("no cluster: set WALGATE_CLUSTER or pass --cluster")?;
        let cluster = cluster
            .parse()
            .map_err(|e: walgate_core::cluster::ClusterNameError| anyhow::anyhow!(e))?;
        let token = match (&self.token, &self.token_file) {
            (Some(t), _) => t.trim().to_owned(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .with_context(|| format!("read token file {}", f.display()))?
                .trim()
                .to_owned(),
            (None, None) => anyhow::bail!(
                "no token: set WALGATE_TOKEN_FILE (or WALGATE_TOKEN) or pass --token-file"
            ),
        };
        Gateway::new(url, cluster, token)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::WalPush { path } => match wal_push(&cli.config, &path) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("walgate-client: wal-push {}: {e:#}", path.display());
                ExitCode::FAILURE
            }
        },
        Command::WalFetch { name, path } => wal_fetch(&cli.config, &name, &path),
        command => match backup_command(&cli.config, command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("walgate-client: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Percent-encodes a query value.
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn backup_command(config: &Config, command: Command) -> anyhow::Result<()> {
    let gateway = config.gateway()?;
    match command {
        Command::BackupPush {
            pg_basebackup,
            json,
            extra,
        } => {
            let b = backup::push(&gateway, config.zstd_level, &pg_basebackup, &extra)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&b)?);
            } else {
                println!(
                    "stored backup {} ({} bytes, {} stored)",
                    b.id, b.size, b.stored_size
                );
            }
        }
        Command::BackupList { json } => {
            let list: Vec<walgate_core::api::Backup> = gateway.get_json("/backups")?;
            backup::print_list(&list, json)?;
        }
        Command::BackupFetch { dir, id } => backup::fetch(&gateway, &id, &dir)?,
        Command::Restore {
            pgdata,
            target_time,
            target_lsn,
            target_xid,
            target_name,
            target_timeline,
        } => {
            let token_file = config
                .token_file
                .as_deref()
                .context("restore needs --token-file (or WALGATE_TOKEN_FILE): PostgreSQL reads it during recovery")?;
            let mut query = vec![];
            let targets = [
                ("target_time", target_time),
                ("target_lsn", target_lsn),
                ("target_name", target_name),
            ];
            for (key, value) in targets {
                if let Some(v) = value {
                    query.push(format!("{key}={}", encode(&v)));
                }
            }
            if let Some(x) = target_xid {
                query.push(format!("target_xid={x}"));
            }
            if let Some(t) = target_timeline {
                query.push(format!("target_timeline={}", encode(&t)));
            }
            let plan: walgate_core::api::RestorePlan =
                gateway.get_json(&format!("/restore-plan?{}", query.join("&")))?;
            for note in &plan.notes {
                eprintln!("note: {note}");
            }
            backup::fetch(&gateway, &plan.backup.id, &pgdata)?;
            let url = config.url.as_deref().unwrap_or_default();
            let cluster = config.cluster.as_deref().unwrap_or_default();
            let command = backup::client_restore_command(url, cluster, token_file)?;
            backup::write_recovery(&pgdata, &plan, &command)?;
            eprintln!(
                "restored backup {} into {}; start PostgreSQL to replay {} WAL segments ({} to {})",
                plan.backup.id,
                pgdata.display(),
                plan.segments,
                plan.first_wal,
                plan.last_wal
            );
        }
        Command::WalPush { .. } | Command::WalFetch { .. } => unreachable!("handled in main"),
    }
    Ok(())
}

fn file_name(path: &Path) -> anyhow::Result<WalFileName> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .context("the path has no file name")?;
    name.parse()
        .map_err(|e: walgate_core::WalNameError| anyhow::anyhow!(e))
}

fn wal_push(config: &Config, path: &Path) -> anyhow::Result<()> {
    let name = file_name(path)?;
    let gateway = config.gateway()?;
    let raw = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let compressed = zstd::bulk::compress(&raw, config.zstd_level).context("compress")?;
    match gateway.push_wal(&name, &compressed)? {
        Pushed::Stored | Pushed::AlreadyStored => Ok(()),
    }
}

fn wal_fetch(config: &Config, name: &str, path: &Path) -> ExitCode {
    let result = name
        .parse::<WalFileName>()
        .map_err(|e| anyhow::anyhow!(e))
        .and_then(|name| Ok((config.gateway()?, name)))
        .and_then(|(gateway, name)| gateway.fetch_wal(&name, path));
    match result {
        Ok(Fetched::Written) => ExitCode::SUCCESS,
        Ok(Fetched::NotArchived) => ExitCode::FAILURE,
        Err(e) => {
            let standby = Path::new("standby.signal").exists();
            eprintln!("walgate-client: wal-fetch {name}: {e:#}");
            if standby {
                ExitCode::FAILURE
            } else {
                eprintln!(
                    "walgate-client: stopping recovery rather than ending it on an archive that could not be read"
                );
                ExitCode::from(EXIT_STOP_RECOVERY)
            }
        }
    }
}
