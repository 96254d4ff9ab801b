//! Configuration: flags, each with an environment variable (for envdir and systemd), over
//! an optional TOML file, over embedded defaults under the data directory.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde::Deserialize;

use walgate_core::TargetName;

use crate::secret::Secret;
use crate::storage::TargetConfig;

/// Where the gateway keeps its state; shared by every command that opens it.
#[derive(Debug, Clone, Default, Args)]
pub struct StateArgs {
    /// TOML file with any of the settings below (flags and env variables win over it).
    #[arg(long, env = "WALGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the embedded defaults: SQLite catalog, local objects, signing key.
    #[arg(long, env = "WALGATE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Catalog database: sqlite://PATH or postgres://USER@HOST/DB [default: sqlite in the data dir].
    #[arg(
        long,
        env = "WALGATE_CATALOG_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub catalog_url: Option<String>,
    /// Object store of the target named `default`: s3://BUCKET/PREFIX, gs://BUCKET/PREFIX,
    /// az://CONTAINER/PREFIX or file:///PATH [default: objects/ in the data dir, unless the
    /// config file names other targets]. Credentials come from the provider's usual
    /// variables (AWS_*, GOOGLE_*, AZURE_*) or instance identity.
    #[arg(long, env = "WALGATE_STORAGE_URL", value_name = "URL")]
    pub storage_url: Option<String>,
    /// The storage target new clusters are stored on [default: `default`, or the only
    /// target configured].
    #[arg(long, env = "WALGATE_DEFAULT_TARGET", value_name = "NAME")]
    pub default_target: Option<TargetName>,
    /// File holding the token signing key, created on first start [default: signing.key in the data dir].
    #[arg(long, env = "WALGATE_SIGNING_KEY_FILE", value_name = "FILE")]
    pub signing_key_file: Option<PathBuf>,
}

/// Settings only `serve` uses.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (printed on stdout at start).
    #[arg(long, env = "WALGATE_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// zstd level for WAL at rest, 1 (fastest) to 19.
    #[arg(long, env = "WALGATE_ZSTD_LEVEL", value_name = "N", value_parser = clap::value_parser!(i32).range(1..=19))]
    pub zstd_level: Option<i32>,
    /// Log format on stderr.
    #[arg(long, env = "WALGATE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key). Reloaded on SIGHUP
    /// and when the files change, without dropping connections.
    #[arg(
        long,
        env = "WALGATE_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(
        long,
        env = "WALGATE_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Fleet retention default: keep the newest N complete backups (clusters may set
    /// their own through the API).
    #[arg(long, env = "WALGATE_RETENTION_KEEP_LAST", value_name = "N")]
    pub retention_keep_last: Option<u32>,
    /// Fleet retention default: keep every point of the last D days restorable.
    #[arg(long, env = "WALGATE_RETENTION_WINDOW_DAYS", value_name = "D")]
    pub retention_window_days: Option<u32>,
    /// Fleet retention default: never fewer complete backups than this. [default: 1]
    #[arg(long, env = "WALGATE_RETENTION_MIN_BACKUPS", value_name = "N")]
    pub retention_min_backups: Option<u32>,
    /// How often retention runs over every cluster, e.g. `1h` or `15m`; `0` turns the
    /// schedule off (runs through the API still work). [default: 1h]
    #[arg(long, env = "WALGATE_RETENTION_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub retention_interval: Option<std::time::Duration>,
    /// How often every cluster's WAL chain is verified (gaps, missing history files),
    /// so `/v1/clusters`, the metrics and the dashboard show a broken archive as
    /// `failing`; `0` turns it off. Scrubs that re-read objects run only through the
    /// API. [default: 1h]
    #[arg(long, env = "WALGATE_VERIFY_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub verify_interval: Option<std::time::Duration>,
    /// How many base backups one cluster may upload at once; more get 429 with
    /// Retry-After. WAL is never limited. [default: 1]
    #[arg(long, env = "WALGATE_MAX_BACKUP_UPLOADS_PER_CLUSTER", value_name = "N")]
    pub max_backup_uploads_per_cluster: Option<usize>,
    /// How many base backups the gateway receives at once; more get 503 with
    /// Retry-After. [default: 4]
    #[arg(long, env = "WALGATE_MAX_BACKUP_UPLOADS", value_name = "N")]
    pub max_backup_uploads: Option<usize>,
    /// A cluster with no WAL archived for this long is `late` (four times as long:
    /// `failing`), in `/v1/clusters`, the metrics and the dashboard. [default: 1h]
    #[arg(long, env = "WALGATE_ARCHIVE_LAG_THRESHOLD", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub archive_lag_threshold: Option<std::time::Duration>,
    /// A cluster whose newest complete backup is older than this is `late`. [default: 26h]
    #[arg(long, env = "WALGATE_BACKUP_AGE_THRESHOLD", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub backup_age_threshold: Option<std::time::Duration>,
    /// Reverse proxies (addresses or networks, comma-separated: `10.0.0.0/8,::1`) whose
    /// X-Forwarded-For/-Proto/-Host headers are believed; from anyone else they are
    /// ignored. [default: none]
    #[arg(
        long,
        env = "WALGATE_TRUSTED_PROXIES",
        value_name = "NETS",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<crate::http::forwarded::Network>,
    /// Bandwidth for base backup uploads and restores through this gateway, per second
    /// (e.g. `200MiB`; `0`: unlimited). WAL is never throttled. Re-read from the config
    /// file on SIGHUP. [default: unlimited]
    #[arg(long, env = "WALGATE_BACKUP_RATE_LIMIT", value_name = "RATE", value_parser = crate::limits::Rate::parse)]
    pub backup_rate_limit: Option<crate::limits::Rate>,
    /// The same for each cluster's backups. [default: unlimited]
    #[arg(long, env = "WALGATE_BACKUP_RATE_LIMIT_PER_CLUSTER", value_name = "RATE", value_parser = crate::limits::Rate::parse)]
    pub backup_rate_limit_per_cluster: Option<crate::limits::Rate>,
    /// On SIGTERM, how long `/readyz` answers 503 before the gateway stops accepting
    /// connections, so load balancers move traffic away first. [default: 5s]
    #[arg(long, env = "WALGATE_DRAIN_DELAY", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub drain_delay: Option<std::time::Duration>,
    /// Then, how long requests in flight may take to finish before they are cut off
    /// (an unfinished upload is never acknowledged, so the database retries it).
    /// [default: 30s]
    #[arg(long, env = "WALGATE_SHUTDOWN_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Option<std::time::Duration>,
    /// How long a WAL upload may send nothing before the gateway gives up on it (408):
    /// a host that vanished mid-upload must not hold a worker forever. Also how long
    /// (at most 30 s) a connection may take to send its request headers. [default: 60s]
    #[arg(long, env = "WALGATE_WAL_IDLE_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub wal_idle_timeout: Option<std::time::Duration>,
    /// Memory for WAL uploads in progress (e.g. `1GiB`). Each holds up to twice its
    /// segment size (raw), or its body plus an 8 MiB decoder window (zstd, as
    /// walgate-client sends); past this, uploads wait their turn, unread, and one that
    /// waits WALGATE_WAL_IDLE_TIMEOUT gets 503. [default: 512MiB: 16 raw 16-MiB
    /// segments at once, or about 50 from walgate-client]
    #[arg(long, env = "WALGATE_WAL_MEMORY", value_name = "SIZE", value_parser = crate::limits::Size::parse)]
    pub wal_memory: Option<crate::limits::Size>,
}

/// The certificate and key files of an HTTPS listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The config file: the same settings, by the flags' names with underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    catalog_url: Option<String>,
    storage_url: Option<String>,
    default_target: Option<TargetName>,
    #[serde(default)]
    targets: BTreeMap<TargetName, TargetConfig>,
    signing_key_file: Option<PathBuf>,
    listen: Option<SocketAddr>,
    zstd_level: Option<i32>,
    log_format: Option<LogFormat>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    retention_keep_last: Option<u32>,
    retention_window_days: Option<u32>,
    retention_min_backups: Option<u32>,
    #[serde(default, with = "humantime_serde_opt")]
    retention_interval: Option<std::time::Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    verify_interval: Option<std::time::Duration>,
    backup_rate_limit: Option<String>,
    backup_rate_limit_per_cluster: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    #[serde(default, with = "humantime_serde_opt")]
    archive_lag_threshold: Option<std::time::Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    backup_age_threshold: Option<std::time::Duration>,
    max_backup_uploads_per_cluster: Option<usize>,
    max_backup_uploads: Option<usize>,
    #[serde(default, with = "humantime_serde_opt")]
    drain_delay: Option<std::time::Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    shutdown_timeout: Option<std::time::Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    wal_idle_timeout: Option<std::time::Duration>,
    wal_memory: Option<String>,
}

/// `retention_interval = "1h"` in the config file.
mod humantime_serde_opt {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<std::time::Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Fully resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub catalog_url: Secret,
    /// Every storage target by name (`storage_url` is the one named `default`).
    pub targets: BTreeMap<TargetName, TargetConfig>,
    pub default_target: TargetName,
    pub signing_key_file: PathBuf,
    pub listen: SocketAddr,
    pub zstd_level: i32,
    pub log_format: LogFormat,
    /// HTTPS when set, plain HTTP (behind a TLS-terminating proxy) otherwise.
    pub tls: Option<TlsFiles>,
    /// The fleet's default retention policy; `None` keeps everything.
    pub retention: Option<walgate_core::api::RetentionPolicy>,
    /// How often retention runs; zero: never on its own.
    pub retention_interval: std::time::Duration,
    pub verify_interval: std::time::Duration,
    pub upload_limits: crate::limits::UploadLimits,
    pub backup_rates: crate::limits::RateLimits,
    pub trusted_proxies: Vec<crate::http::forwarded::Network>,
    pub thresholds: crate::fleet::Thresholds,
    /// SIGTERM: unready for this long, then this long for requests in flight.
    pub drain_delay: std::time::Duration,
    pub shutdown_timeout: std::time::Duration,
    /// A WAL upload silent this long is given up.
    pub wal_idle_timeout: std::time::Duration,
    /// Bytes WAL uploads in progress may hold.
    pub wal_memory: u64,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8432";
pub const DEFAULT_DATA_DIR: &str = "walgate-data";

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("resolve {}", p.display()))
}

impl Settings {
    pub fn resolve(state: &StateArgs, serve: &ServeArgs) -> anyhow::Result<Self> {
        let file = match &state.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("read config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("parse config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let data_dir = absolute(
            &state
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
        )?;
        let catalog_url = state
            .catalog_url
            .clone()
            .or(file.catalog_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("catalog.db").display()));
        let (targets, default_target) = resolve_targets(
            state.storage_url.clone().or(file.storage_url),
            file.targets,
            state.default_target.clone().or(file.default_target),
            &data_dir,
        )?;
        let signing_key_file = absolute(
            &state
                .signing_key_file
                .clone()
                .or(file.signing_key_file)
                .unwrap_or_else(|| data_dir.join("signing.key")),
        )?;
        let zstd_level = serve.zstd_level.or(file.zstd_level).unwrap_or(1);
        anyhow::ensure!((1..=19).contains(&zstd_level), "zstd_level must be 1 to 19");
        let tls = match (
            serve.tls_cert.clone().or(file.tls_cert),
            serve.tls_key.clone().or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: absolute(&cert)?,
                key: absolute(&key)?,
            }),
            (None, None) => None,
            _ => anyhow::bail!("TLS needs both a certificate and a key (tls_cert and tls_key)"),
        };
        let keep_last = serve.retention_keep_last.or(file.retention_keep_last);
        let window_days = serve.retention_window_days.or(file.retention_window_days);
        let retention = (keep_last.is_some() || window_days.is_some()).then(|| {
            walgate_core::api::RetentionPolicy {
                keep_last,
                window_days,
                min_backups: serve
                    .retention_min_backups
                    .or(file.retention_min_backups)
                    .unwrap_or(1),
            }
        });
        Ok(Settings {
            data_dir,
            catalog_url: Secret::new(catalog_url),
            targets,
            default_target,
            signing_key_file,
            listen: serve
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid")),
            zstd_level,
            log_format: serve.log_format.or(file.log_format).unwrap_or_default(),
            tls,
            retention,
            retention_interval: serve
                .retention_interval
                .or(file.retention_interval)
                .unwrap_or(std::time::Duration::from_secs(3600)),
            verify_interval: serve
                .verify_interval
                .or(file.verify_interval)
                .unwrap_or(std::time::Duration::from_secs(3600)),
            thresholds: crate::fleet::Thresholds {
                archive_lag: serve
                    .archive_lag_threshold
                    .or(file.archive_lag_threshold)
                    .unwrap_or(crate::fleet::Thresholds::default().archive_lag),
                backup_age: serve
                    .backup_age_threshold
                    .or(file.backup_age_threshold)
                    .unwrap_or(crate::fleet::Thresholds::default().backup_age),
            },
            trusted_proxies: if serve.trusted_proxies.is_empty() {
                file.trusted_proxies
                    .iter()
                    .map(|n| n.parse().map_err(anyhow::Error::msg))
                    .collect::<anyhow::Result<_>>()?
            } else {
                serve.trusted_proxies.clone()
            },
            backup_rates: crate::limits::RateLimits {
                overall: rate(serve.backup_rate_limit, file.backup_rate_limit.as_deref())?,
                per_cluster: rate(
                    serve.backup_rate_limit_per_cluster,
                    file.backup_rate_limit_per_cluster.as_deref(),
                )?,
            },
            upload_limits: crate::limits::UploadLimits {
                per_cluster: serve
                    .max_backup_uploads_per_cluster
                    .or(file.max_backup_uploads_per_cluster)
                    .unwrap_or(1)
                    .max(1),
                overall: serve
                    .max_backup_uploads
                    .or(file.max_backup_uploads)
                    .unwrap_or(4)
                    .max(1),
            },
            drain_delay: serve
                .drain_delay
                .or(file.drain_delay)
                .unwrap_or(std::time::Duration::from_secs(5)),
            shutdown_timeout: serve
                .shutdown_timeout
                .or(file.shutdown_timeout)
                .unwrap_or(std::time::Duration::from_secs(30)),
            wal_idle_timeout: serve
                .wal_idle_timeout
                .or(file.wal_idle_timeout)
                .unwrap_or(std::time::Duration::from_secs(60))
                .max(std::time::Duration::from_secs(1)),
            wal_memory: match (serve.wal_memory, file.wal_memory.as_deref()) {
                (Some(size), _) => size.0,
                (None, Some(s)) => crate::limits::Size::parse(s).map_err(anyhow::Error::msg)?.0,
                (None, None) => 512 << 20,
            },
        })
    }
}

/// A rate from a flag (already parsed) or the config file.
fn rate(flag: Option<crate::limits::Rate>, file: Option<&str>) -> anyhow::Result<Option<u64>> {
    match (flag, file) {
        (Some(r), _) => Ok(r.0),
        (None, Some(text)) => Ok(crate::limits::Rate::parse(text)
            .map_err(anyhow::Error::msg)?
            .0),
        (None, None) => Ok(None),
    }
}

/// The targets: those of the config file, plus `default` from `storage_url` (or, with
/// neither, the embedded local store); and the one new clusters go to.
fn resolve_targets(
    storage_url: Option<String>,
    mut targets: BTreeMap<TargetName, TargetConfig>,
    default_target: Option<TargetName>,
    data_dir: &Path,
) -> anyhow::Result<(BTreeMap<TargetName, TargetConfig>, TargetName)> {
    let default = TargetName::default_name();
    if storage_url.is_some() && targets.contains_key(&default) {
        anyhow::bail!(
            "storage_url defines the target `default`, and the config file has [targets.default] too: keep one"
        );
    }
    if storage_url.is_some() || targets.is_empty() {
        let url =
            storage_url.unwrap_or_else(|| format!("file://{}", data_dir.join("objects").display()));
        targets.insert(default.clone(), TargetConfig::from_url(url));
    }
    let chosen = match default_target {
        Some(name) => name,
        None if targets.contains_key(&default) => default,
        None if targets.len() == 1 => targets.keys().next().expect("one").clone(),
        None => anyhow::bail!(
            "several storage targets and none named `default`: set default_target to the one new clusters use"
        ),
    };
    anyhow::ensure!(
        targets.contains_key(&chosen),
        "default_target `{chosen}` is not a configured storage target (configured: {})",
        targets
            .keys()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok((targets, chosen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("postgres://walgate:hunter2@db:5432/catalog?password=x".into());
        assert_eq!(format!("{s}"), "postgres://walgate:***@db:5432/catalog");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(
            Secret::new("sqlite:///x/c.db").to_string(),
            "sqlite:///x/c.db"
        );
        let target = crate::storage::TargetConfig::from_url("s3://key:hunter2@bucket/p?token=x");
        let shown = format!("{target:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("token=x"),
            "{shown}"
        );
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("walgate.toml");
        std::fs::write(
            &file,
            "data_dir = \"/srv/wg\"\nzstd_level = 5\nlisten = \"0.0.0.0:9000\"\n\
             max_backup_uploads = 2\nshutdown_timeout = \"2m\"\nwal_idle_timeout = \"90s\"\n\
             wal_memory = \"1GiB\"\n",
        )
        .unwrap();
        let state = StateArgs {
            config: Some(file.clone()),
            ..Default::default()
        };
        let s = Settings::resolve(&state, &ServeArgs::default()).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/srv/wg"));
        assert_eq!(s.catalog_url.expose(), "sqlite:///srv/wg/catalog.db");
        assert_eq!(s.targets.len(), 1);
        assert_eq!(s.targets[&s.default_target].url, "file:///srv/wg/objects");
        assert_eq!(s.zstd_level, 5);
        assert_eq!(s.upload_limits.overall, 2);
        assert_eq!(s.shutdown_timeout, std::time::Duration::from_secs(120));
        assert_eq!(s.wal_idle_timeout, std::time::Duration::from_secs(90));
        assert_eq!(s.wal_memory, 1 << 30);
        let serve = ServeArgs {
            zstd_level: Some(3),
            ..Default::default()
        };
        let state = StateArgs {
            data_dir: Some("/tmp/x".into()),
            ..state
        };
        let s = Settings::resolve(&state, &serve).unwrap();
        assert_eq!((s.data_dir, s.zstd_level), (PathBuf::from("/tmp/x"), 3));
        std::fs::write(&file, "datadir = \"/x\"\n").unwrap();
        let err = Settings::resolve(
            &StateArgs {
                config: Some(file),
                ..Default::default()
            },
            &serve,
        );
        assert!(format!("{:#}", err.unwrap_err()).contains("unknown field"));
    }

    #[test]
    fn targets_come_from_the_file_and_storage_url() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("walgate.toml");
        std::fs::write(
            &file,
            r#"
default_target = "eu"
[targets.eu]
url = "s3://archive-eu/prod"
aws_region = "eu-west-1"
aws_allow_http = true
aws_secret_access_key = { file = "/run/secrets/eu" }
[targets.local]
url = "file:///srv/objects"
"#,
        )
        .unwrap();
        let state = StateArgs {
            config: Some(file.clone()),
            storage_url: Some("s3://old-bucket".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&state, &ServeArgs::default()).unwrap();
        let names: Vec<&str> = s.targets.keys().map(|t| t.as_str()).collect();
        assert_eq!(names, ["default", "eu", "local"]);
        assert_eq!(s.default_target.as_str(), "eu");
        assert_eq!(s.targets[&s.default_target].options.len(), 3);

        std::fs::write(
            &file,
            "[targets.a]\nurl = \"file:///a\"\n[targets.b]\nurl = \"file:///b\"\n",
        )
        .unwrap();
        let state = StateArgs {
            config: Some(file.clone()),
            ..Default::default()
        };
        let err = Settings::resolve(&state, &ServeArgs::default()).unwrap_err();
        assert!(err.to_string().contains("set default_target"), "{err}");
        std::fs::write(
            &file,
            "default_target = \"c\"\n[targets.a]\nurl = \"file:///a\"\n",
        )
        .unwrap();
        let err = Settings::resolve(&state, &ServeArgs::default()).unwrap_err();
        assert!(err.to_string().contains("`c` is not a configured"), "{err}");
    }
}
