//! Settings: each is declared once, as a flag with its environment variable (for envdir
//! and systemd) and its default, and read in this order: flags, environment, the TOML
//! config file (`--config`, by the flags' names with underscores), defaults.
//!
//! The config file goes through the same parsers as flags: its values are handed to
//! clap as if given on the command line, for every setting that neither a flag nor an
//! environment variable gave. So a value means the same wherever it comes from, and a
//! new setting is one field here.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, ValueEnum};
use walgate_core::TargetName;
use walgate_core::api::RetentionPolicy;

use crate::fleet::Thresholds;
use crate::limits::{Rate, RateLimits, Size, UploadLimits};
use crate::secret::Secret;
use crate::storage::TargetConfig;

/// Where the gateway keeps its state; shared by every command that opens it.
#[derive(Debug, Clone, Args)]
pub struct StateSettings {
    /// TOML file with any of these settings, by their flags' names with underscores
    /// (flags and environment variables win over it), and the `[targets.NAME]` tables.
    #[arg(long, env = "WALGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the embedded defaults: SQLite catalog, local objects, signing key.
    #[arg(
        long,
        env = "WALGATE_DATA_DIR",
        value_name = "DIR",
        default_value = "walgate-data"
    )]
    pub data_dir: PathBuf,
    /// Catalog database: sqlite://PATH or postgres://USER@HOST/DB [default: sqlite in the data dir].
    #[arg(
        long,
        env = "WALGATE_CATALOG_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    catalog_url: Option<Secret>,
    /// Object store of the target named `default`: s3://BUCKET/PREFIX, gs://BUCKET/PREFIX,
    /// az://CONTAINER/PREFIX, swift://CONTAINER/PREFIX or file:///PATH [default: objects/
    /// in the data dir, unless the config file names other targets]. Credentials come
    /// from the provider's usual variables (AWS_*, GOOGLE_*, AZURE_*) or instance
    /// identity.
    #[arg(
        long,
        env = "WALGATE_STORAGE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    storage_url: Option<Secret>,
    /// The storage target new clusters are stored on [default: `default`, or the only
    /// target configured].
    #[arg(long, env = "WALGATE_DEFAULT_TARGET", value_name = "NAME")]
    default_target: Option<TargetName>,
    /// File holding the token signing key, created on first start [default: signing.key in the data dir].
    #[arg(long, env = "WALGATE_SIGNING_KEY_FILE", value_name = "FILE")]
    signing_key_file: Option<PathBuf>,
}

/// Everything `walgate serve` runs with: the state, and how it is served and kept.
#[derive(Debug, Clone, Parser)]
#[command(name = "walgate serve")]
pub struct Settings {
    #[command(flatten)]
    pub state: StateSettings,
    /// Address to listen on; port 0 picks a free port (printed on stdout at start).
    #[arg(
        long,
        env = "WALGATE_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8432"
    )]
    pub listen: SocketAddr,
    /// zstd level for WAL at rest, 1 (fastest) to 19.
    #[arg(long, env = "WALGATE_ZSTD_LEVEL", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..=19))]
    pub zstd_level: i32,
    /// Log format on stderr.
    #[arg(long, env = "WALGATE_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key). Reloaded on SIGHUP
    /// and when the files change, without dropping connections.
    #[arg(long, env = "WALGATE_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "WALGATE_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Fleet retention default: keep the newest N complete backups (clusters may set
    /// their own through the API).
    #[arg(long, env = "WALGATE_RETENTION_KEEP_LAST", value_name = "N")]
    retention_keep_last: Option<u32>,
    /// Fleet retention default: keep every point of the last D days restorable.
    #[arg(long, env = "WALGATE_RETENTION_WINDOW_DAYS", value_name = "D")]
    retention_window_days: Option<u32>,
    /// Fleet retention default: never fewer complete backups than this.
    #[arg(
        long,
        env = "WALGATE_RETENTION_MIN_BACKUPS",
        value_name = "N",
        default_value_t = 1
    )]
    retention_min_backups: u32,
    /// How often retention runs over every cluster, e.g. `1h` or `15m`; `0` turns the
    /// schedule off (runs through the API still work).
    #[arg(long, env = "WALGATE_RETENTION_INTERVAL", value_name = "DURATION",
          default_value = "1h", value_parser = humantime::parse_duration)]
    pub retention_interval: Duration,
    /// How often every cluster's WAL chain is verified (gaps, missing history files),
    /// so `/v1/clusters`, the metrics and the dashboard show a broken archive as
    /// `failing`; `0` turns it off. Scrubs that re-read objects run only through the
    /// API.
    #[arg(long, env = "WALGATE_VERIFY_INTERVAL", value_name = "DURATION",
          default_value = "1h", value_parser = humantime::parse_duration)]
    pub verify_interval: Duration,
    /// How often each cluster is restore-drilled (restored, recovered and started by a
    /// `walgate-client drill-runner`) unless it sets its own interval; `0` schedules
    /// none (drills asked for through the API still run). Once a runner has been seen,
    /// a cluster with no successful drill within this plus a day is `late`.
    #[arg(long, env = "WALGATE_DRILL_INTERVAL", value_name = "DURATION",
          default_value = "7d", value_parser = humantime::parse_duration)]
    pub drill_interval: Duration,
    /// How many base backups one cluster may upload at once; more get 429 with
    /// Retry-After. WAL is never limited.
    #[arg(long, env = "WALGATE_MAX_BACKUP_UPLOADS_PER_CLUSTER", value_name = "N",
          default_value_t = 1, value_parser = at_least_one)]
    max_backup_uploads_per_cluster: usize,
    /// How many base backups the gateway receives at once; more get 503 with
    /// Retry-After.
    #[arg(long, env = "WALGATE_MAX_BACKUP_UPLOADS", value_name = "N",
          default_value_t = 4, value_parser = at_least_one)]
    max_backup_uploads: usize,
    /// A cluster with no WAL archived for this long is `late` (four times as long:
    /// `failing`), in `/v1/clusters`, the metrics and the dashboard.
    #[arg(long, env = "WALGATE_ARCHIVE_LAG_THRESHOLD", value_name = "DURATION",
          default_value = "1h", value_parser = humantime::parse_duration)]
    archive_lag_threshold: Duration,
    /// A cluster whose newest complete backup is older than this is `late`.
    #[arg(long, env = "WALGATE_BACKUP_AGE_THRESHOLD", value_name = "DURATION",
          default_value = "26h", value_parser = humantime::parse_duration)]
    backup_age_threshold: Duration,
    /// Reverse proxies (addresses or networks, comma-separated: `10.0.0.0/8,::1`) whose
    /// X-Forwarded-For/-Proto/-Host headers are believed; from anyone else they are
    /// ignored. [default: none]
    #[arg(
        long,
        env = "WALGATE_TRUSTED_PROXIES",
        value_name = "NETS",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<Network>,
    /// The URL database hosts reach the gateway at (e.g. `https://backup.example.com`),
    /// used in the commands restore plans and the dashboard give. Without it, the
    /// request's own `Host` (or a trusted proxy's `X-Forwarded-Host`) is used, when it
    /// is a well-formed host name.
    #[arg(long, env = "WALGATE_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<PublicUrl>,
    /// Bandwidth for base backup uploads and restores through this gateway, per second
    /// (e.g. `200MiB`; `0`: unlimited). WAL is never throttled. Re-read from the config
    /// file on SIGHUP.
    #[arg(
        long,
        env = "WALGATE_BACKUP_RATE_LIMIT",
        value_name = "RATE",
        default_value = "0"
    )]
    backup_rate_limit: Rate,
    /// The same for each cluster's backups.
    #[arg(
        long,
        env = "WALGATE_BACKUP_RATE_LIMIT_PER_CLUSTER",
        value_name = "RATE",
        default_value = "0"
    )]
    backup_rate_limit_per_cluster: Rate,
    /// On SIGTERM, how long `/readyz` answers 503 before the gateway stops accepting
    /// connections, so load balancers move traffic away first.
    #[arg(long, env = "WALGATE_DRAIN_DELAY", value_name = "DURATION",
          default_value = "5s", value_parser = humantime::parse_duration)]
    pub drain_delay: Duration,
    /// Then, how long requests in flight may take to finish before they are cut off
    /// (an unfinished upload is never acknowledged, so the database retries it).
    #[arg(long, env = "WALGATE_SHUTDOWN_TIMEOUT", value_name = "DURATION",
          default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
    /// How long a WAL upload may send nothing before the gateway gives up on it (408):
    /// a host that vanished mid-upload must not hold a worker forever. Also how long
    /// (at most 30 s) a connection may take to send its request headers. At least 1s.
    #[arg(long, env = "WALGATE_WAL_IDLE_TIMEOUT", value_name = "DURATION",
          default_value = "60s", value_parser = at_least_a_second)]
    pub wal_idle_timeout: Duration,
    /// Memory for WAL uploads in progress (e.g. `1GiB`). Each holds up to twice its
    /// segment size (raw), or its body plus an 8 MiB decoder window (zstd, as
    /// walgate-client sends); past this, uploads wait their turn, unread, and one that
    /// waits WALGATE_WAL_IDLE_TIMEOUT gets 503. The default holds 16 raw 16-MiB
    /// segments at once, or about 50 from walgate-client.
    #[arg(
        long,
        env = "WALGATE_WAL_MEMORY",
        value_name = "SIZE",
        default_value = "512MiB"
    )]
    pub wal_memory: Size,
    /// The most connections held open at once; more are closed at once, with a log line.
    /// Default: the open-file limit (raised to its hard limit at start; set
    /// `LimitNOFILE` in the unit) less 256 kept for the catalog and the store.
    #[arg(long, env = "WALGATE_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The certificate and key files of an HTTPS listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// One trusted proxy address or network, e.g. `10.0.0.0/8`, `::1` or `192.0.2.7`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not an address or network (e.g. 10.0.0.0/8 or ::1)");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Network { addr, prefix })
    }
}

impl Network {
    /// Whether `ip` (an IPv4-mapped IPv6 address as its IPv4 address) is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let bits = |a: IpAddr| -> (u128, u32) {
            match a {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        };
        let ((net, width), (addr, addr_width)) = (bits(self.addr), bits(ip));
        if width != addr_width {
            return false;
        }
        let shift = u32::from(width as u8 - self.prefix);
        shift >= width || net >> shift == addr >> shift
    }
}

fn at_least_one(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    Ok(n.max(1))
}

fn at_least_a_second(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    Ok(d.max(Duration::from_secs(1)))
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("resolve {}", p.display()))
}

impl StateSettings {
    /// The data directory, as an absolute path.
    pub fn data_dir(&self) -> anyhow::Result<PathBuf> {
        absolute(&self.data_dir)
    }

    pub fn catalog_url(&self) -> anyhow::Result<Secret> {
        Ok(match &self.catalog_url {
            Some(url) => url.clone(),
            None => Secret::new(format!(
                "sqlite://{}",
                self.data_dir()?.join("catalog.db").display()
            )),
        })
    }

    pub fn signing_key_file(&self) -> anyhow::Result<PathBuf> {
        match &self.signing_key_file {
            Some(file) => absolute(file),
            None => Ok(self.data_dir()?.join("signing.key")),
        }
    }

    /// Every storage target by name, and the one new clusters go to: the config file's
    /// `[targets.NAME]` tables, plus `default` from `storage_url` (or, with neither, the
    /// embedded local store).
    pub fn targets(&self) -> anyhow::Result<(BTreeMap<TargetName, TargetConfig>, TargetName)> {
        let mut targets = match &self.config {
            Some(path) => {
                let mut file = read_file(path)?;
                match file.remove("targets") {
                    Some(t) => t
                        .try_into()
                        .with_context(|| format!("config file {}: [targets]", path.display()))?,
                    None => BTreeMap::new(),
                }
            }
            None => BTreeMap::new(),
        };
        let default = TargetName::default_name();
        if self.storage_url.is_some() && targets.contains_key(&default) {
            anyhow::bail!(
                "storage_url defines the target `default`, and the config file has [targets.default] too: keep one"
            );
        }
        if self.storage_url.is_some() || targets.is_empty() {
            let url = match &self.storage_url {
                Some(url) => url.expose().to_owned(),
                None => format!("file://{}", self.data_dir()?.join("objects").display()),
            };
            targets.insert(default.clone(), TargetConfig::from_url(url));
        }
        let chosen = match &self.default_target {
            Some(name) => name.clone(),
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
}

impl Settings {
    /// The settings of a command that opens the gateway's state without serving it: its
    /// state settings, and everything else at its default (the environment variables of
    /// `serve` are not that command's business).
    pub fn for_state(state: StateSettings) -> anyhow::Result<Self> {
        let defaults = Settings::command()
            .mut_args(|a| a.env(None))
            .try_get_matches_from(["walgate"])?;
        let mut settings = Settings::from_arg_matches(&defaults)?;
        settings.state = state;
        Ok(settings)
    }

    /// HTTPS when set, plain HTTP (behind a TLS-terminating proxy) otherwise.
    pub fn tls(&self) -> anyhow::Result<Option<TlsFiles>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert: absolute(cert)?,
                key: absolute(key)?,
            })),
            (None, None) => Ok(None),
            _ => anyhow::bail!("TLS needs both a certificate and a key (tls_cert and tls_key)"),
        }
    }

    /// The fleet's default retention policy; `None` keeps everything.
    pub fn retention(&self) -> Option<RetentionPolicy> {
        let (keep_last, window_days) = (self.retention_keep_last, self.retention_window_days);
        (keep_last.is_some() || window_days.is_some()).then_some(RetentionPolicy {
            keep_last,
            window_days,
            min_backups: self.retention_min_backups,
        })
    }

    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            archive_lag: self.archive_lag_threshold,
            backup_age: self.backup_age_threshold,
        }
    }

    pub fn upload_limits(&self) -> UploadLimits {
        UploadLimits {
            per_cluster: self.max_backup_uploads_per_cluster,
            overall: self.max_backup_uploads,
        }
    }

    pub fn backup_rates(&self) -> RateLimits {
        RateLimits {
            overall: self.backup_rate_limit.0,
            per_cluster: self.backup_rate_limit_per_cluster.0,
        }
    }
}

/// Parses this process's command line into `C`, with the config file under it; clap
/// prints help, versions and usage errors of the command line itself and exits.
pub fn parse<C: CommandFactory + FromArgMatches>() -> anyhow::Result<C> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let matches = C::command().get_matches_from(&args);
    with_file(args, matches)
}

/// [`parse`] of `args` (the program's name first), with every error returned.
pub fn parse_from<C: CommandFactory + FromArgMatches>(
    args: impl IntoIterator<Item = impl Into<OsString>>,
) -> anyhow::Result<C> {
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let matches = C::command().try_get_matches_from(&args)?;
    with_file(args, matches)
}

/// Reads the config file named in `matches` (if any) and parses `args` again with the
/// file's settings added as flags, each only where no flag or environment variable set it.
fn with_file<C: CommandFactory + FromArgMatches>(
    mut args: Vec<OsString>,
    matches: ArgMatches,
) -> anyhow::Result<C> {
    let (mut leaf, mut command) = (&matches, C::command());
    while let Some((name, sub)) = leaf.subcommand() {
        command = command
            .find_subcommand(name)
            .expect("parsed subcommand")
            .clone();
        leaf = sub;
    }
    let Some(path) = leaf.try_get_one::<PathBuf>("config").ok().flatten() else {
        return Ok(C::from_arg_matches(&matches)?);
    };
    let known = setting_ids();
    let mut extra: Vec<OsString> = Vec::new();
    let mut file = read_file(path)?;
    file.remove("targets"); // tables of their own: see StateSettings::targets
    for (key, value) in file {
        anyhow::ensure!(
            known.contains(&key),
            "config file {}: unknown setting `{key}`",
            path.display()
        );
        // A setting of another command (`listen` for `walgate token issue`) is not
        // this one's business.
        let Some(arg) = command.get_arguments().find(|a| a.get_id() == key.as_str()) else {
            continue;
        };
        if matches!(
            leaf.value_source(&key),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let values = match value {
            toml::Value::Array(items) => items.iter().map(scalar).collect::<Option<Vec<_>>>(),
            other => scalar(&other).map(|one| vec![one]),
        }
        .with_context(|| {
            format!(
                "config file {}: `{key}` is not a string, number or list of them",
                path.display()
            )
        })?;
        let long = arg.get_long().expect("settings are long flags");
        extra.extend(
            values
                .iter()
                .map(|v| OsString::from(format!("--{long}={v}"))),
        );
    }
    // Before a `--`, after which everything is a positional argument.
    let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
    args.splice(at..at, extra);
    let matches = C::command().try_get_matches_from(&args).map_err(|e| {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default();
        anyhow::anyhow!(
            "config file {}: {}",
            path.display(),
            first.trim_start_matches("error: ")
        )
    })?;
    Ok(C::from_arg_matches(&matches)?)
}

/// A config file value as a flag would write it.
fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Float(x) => Some(x.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The config file's keys that are settings: every flag of [`Settings`] but `config`.
fn setting_ids() -> BTreeSet<String> {
    Settings::command()
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .filter(|id| id != "config")
        .collect()
}

fn read_file(path: &Path) -> anyhow::Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parse config file {}", path.display()))
}

/// Whether `s` is a host as a client may name the gateway: a DNS name or IPv4 address,
/// or a bracketed IPv6 address, with an optional port. Nothing a shell would read as
/// more than a word.
pub fn valid_host(s: &str) -> bool {
    // A port follows the last colon, unless that colon is inside an IPv6 address.
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, Some(p)),
        _ => (s, None),
    };
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(ip) => ip.parse::<std::net::Ipv6Addr>().is_ok(),
        None => host.len() <= 253 && host.split('.').all(label),
    };
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.parse::<u16>().is_ok_and(|n| n > 0));
    host_ok && port_ok
}

/// A URL clients reach the gateway at, as configured (`WALGATE_PUBLIC_URL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    pub scheme: String,
    pub host: String,
}

impl std::str::FromStr for PublicUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("`{s}` is not a URL like https://backup.example.com:8432");
        let (scheme, rest) = s.split_once("://").ok_or_else(err)?;
        let host = rest.strip_suffix('/').unwrap_or(rest);
        if !matches!(scheme, "http" | "https") || !valid_host(host) {
            return Err(err());
        }
        Ok(PublicUrl {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> anyhow::Result<Settings> {
        parse_from(std::iter::once("walgate").chain(args.iter().copied()))
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("walgate.toml");
        std::fs::write(
            &file,
            "data_dir = \"/srv/wg\"\nzstd_level = 5\nlisten = \"0.0.0.0:9000\"\n\
             max_backup_uploads = 2\nshutdown_timeout = \"2m\"\nwal_idle_timeout = \"90s\"\n\
             wal_memory = \"1GiB\"\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n",
        )
        .unwrap();
        let config = file.to_str().unwrap();
        let s = serve(&["--config", config]).unwrap();
        assert_eq!(s.state.data_dir().unwrap(), PathBuf::from("/srv/wg"));
        assert_eq!(
            s.state.catalog_url().unwrap().expose(),
            "sqlite:///srv/wg/catalog.db"
        );
        let (targets, default) = s.state.targets().unwrap();
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[&default].url, "file:///srv/wg/objects");
        assert_eq!(s.zstd_level, 5);
        assert_eq!(s.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(s.upload_limits().overall, 2);
        assert_eq!(s.upload_limits().per_cluster, 1);
        assert_eq!(s.shutdown_timeout, Duration::from_secs(120));
        assert_eq!(s.wal_idle_timeout, Duration::from_secs(90));
        assert_eq!(s.wal_memory, Size(1 << 30));
        assert_eq!(s.trusted_proxies.len(), 2);
        assert_eq!(s.drain_delay, Duration::from_secs(5), "the default");
        assert_eq!(s.backup_rates(), RateLimits::default());

        let s = serve(&["--config", config, "--data-dir", "/tmp/x", "--zstd-level=3"]).unwrap();
        assert_eq!(
            (s.state.data_dir().unwrap(), s.zstd_level),
            (PathBuf::from("/tmp/x"), 3)
        );

        // An empty list is no proxies; values from the file go before a `--`.
        std::fs::write(&file, "trusted_proxies = []\nzstd_level = 4\n").unwrap();
        let s = serve(&["--config", config]).unwrap();
        assert!(s.trusted_proxies.is_empty());
        #[derive(Parser)]
        struct Positional {
            #[command(flatten)]
            state: StateSettings,
            name: String,
        }
        let p: Positional = parse_from(["walgate", "--config", config, "--", "-x"]).unwrap();
        assert_eq!(p.name, "-x");

        std::fs::write(&file, "datadir = \"/x\"\n").unwrap();
        let err = serve(&["--config", config]).unwrap_err();
        assert!(
            err.to_string().contains("unknown setting `datadir`"),
            "{err}"
        );
        std::fs::write(&file, "zstd_level = 20\n").unwrap();
        let err = serve(&["--config", config]).unwrap_err().to_string();
        assert!(err.contains("20 is not in 1..=19"), "{err}");
    }

    #[test]
    fn defaults_are_those_documented() {
        let s = serve(&[]).unwrap();
        assert_eq!(s.listen, "127.0.0.1:8432".parse().unwrap());
        assert_eq!(s.zstd_level, 1);
        assert_eq!(s.wal_memory, Size(512 << 20));
        assert_eq!(s.retention(), None);
        assert_eq!(s.thresholds(), Thresholds::default());
        assert_eq!(
            (s.upload_limits().per_cluster, s.upload_limits().overall),
            (1, 4)
        );
        let s = serve(&["--retention-keep-last", "3", "--max-backup-uploads", "0"]).unwrap();
        assert_eq!(s.retention().unwrap().min_backups, 1);
        assert_eq!(s.upload_limits().overall, 1, "at least one");
        assert!(serve(&["--tls-cert", "/c.pem"]).unwrap().tls().is_err());
        let state = serve(&["--data-dir", "/d"]).unwrap().state;
        let s = Settings::for_state(state).unwrap();
        assert_eq!((s.zstd_level, s.wal_memory), (1, Size(512 << 20)));
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
        let config = file.to_str().unwrap();
        let s = serve(&["--config", config, "--storage-url", "s3://old-bucket"]).unwrap();
        let (targets, default) = s.state.targets().unwrap();
        let names: Vec<&str> = targets.keys().map(|t| t.as_str()).collect();
        assert_eq!(names, ["default", "eu", "local"]);
        assert_eq!(default.as_str(), "eu");
        assert_eq!(targets[&default].options.len(), 3);

        std::fs::write(
            &file,
            "[targets.a]\nurl = \"file:///a\"\n[targets.b]\nurl = \"file:///b\"\n",
        )
        .unwrap();
        let err = serve(&["--config", config])
            .unwrap()
            .state
            .targets()
            .unwrap_err();
        assert!(err.to_string().contains("set default_target"), "{err}");
        std::fs::write(
            &file,
            "default_target = \"c\"\n[targets.a]\nurl = \"file:///a\"\n",
        )
        .unwrap();
        let err = serve(&["--config", config])
            .unwrap()
            .state
            .targets()
            .unwrap_err();
        assert!(err.to_string().contains("`c` is not a configured"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let s = serve(&[
            "--catalog-url",
            "postgres://walgate:hunter2@db:5432/catalog?password=x",
        ])
        .unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        let target = TargetConfig::from_url("s3://key:hunter2@bucket/p?token=x");
        let shown = format!("{target:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("token=x"),
            "{shown}"
        );
    }
}
