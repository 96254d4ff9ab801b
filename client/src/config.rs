//! The client's settings: flags, then `WALGATE_*` environment variables, then an optional
//! file of `KEY=VALUE` lines with the same names (the format of systemd's
//! `EnvironmentFile=`), then defaults.
//!
//! PostgreSQL runs `archive_command` with its own environment, so hosts usually set these
//! in the server's unit, an envdir, or the file named by `WALGATE_CONFIG`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use walgate_core::ClusterName;

#[derive(Args, Default)]
pub struct Flags {
    /// A file of KEY=VALUE lines using the variable names below (systemd EnvironmentFile
    /// format); flags and the environment win over it.
    #[arg(long, env = "WALGATE_CONFIG", global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Gateway URL, e.g. https://backup.internal:8432
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
    /// PEM file of CA certificates to trust for an https:// gateway, instead of the
    /// host's CA bundle.
    #[arg(long, env = "WALGATE_CA_FILE", global = true, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// zstd level for uploads, 1 (fastest) to 19. [default: 1]
    #[arg(long, env = "WALGATE_ZSTD_LEVEL", global = true, value_name = "LEVEL",
          value_parser = clap::value_parser!(i32).range(1..=19))]
    zstd_level: Option<i32>,
    /// How long one command keeps retrying an unreachable, failing or silent gateway; one
    /// that never answers is given up in this time too (each request gets at least 10 s).
    /// [default: 60]
    #[arg(
        long,
        env = "WALGATE_RETRY_SECONDS",
        global = true,
        value_name = "SECONDS"
    )]
    retry_seconds: Option<u64>,
    /// wal-push: keep up to this many other `.ready` files uploaded ahead of
    /// PostgreSQL's archiver, so that its next calls return at once; 0 turns push-ahead
    /// off. [default: 16]
    #[arg(long, env = "WALGATE_PUSH_AHEAD", global = true, value_name = "FILES")]
    push_ahead: Option<usize>,
    /// wal-fetch: download up to this many following segments in the background; 0 turns
    /// prefetch off. [default: 16]
    #[arg(long, env = "WALGATE_PREFETCH", global = true, value_name = "FILES")]
    prefetch: Option<usize>,
    /// wal-fetch: at most this many MiB of prefetched segments on disk. [default: 512]
    #[arg(
        long,
        env = "WALGATE_PREFETCH_MAX_MIB",
        global = true,
        value_name = "MIB"
    )]
    prefetch_max_mib: Option<u64>,
    /// Concurrent uploads or downloads for push-ahead and prefetch; each upload holds
    /// one compressed file in memory (at most its size). [default: 8]
    #[arg(long, env = "WALGATE_JOBS", global = true, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: Option<u16>,
    /// Log every file pushed ahead, prefetched or served from either (to stderr, which
    /// PostgreSQL writes to its log).
    #[arg(short, long, env = "WALGATE_VERBOSE", global = true,
          value_parser = clap::builder::BoolishValueParser::new())]
    verbose: bool,
}

/// Everything a command needs, resolved and checked.
pub struct Settings {
    pub url: String,
    pub cluster: ClusterName,
    /// Never printed: `Settings` has no `Debug`.
    pub token: String,
    pub token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub zstd_level: i32,
    pub retry_for: Duration,
    pub push_ahead: usize,
    pub prefetch: usize,
    pub prefetch_max_bytes: u64,
    pub jobs: usize,
    pub verbose: bool,
}

/// The values of a `KEY=VALUE` file.
struct File {
    path: PathBuf,
    values: HashMap<String, String>,
}

impl File {
    fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read config file {}", path.display()))?;
        let mut values = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                bail!("{}:{}: expected KEY=VALUE", path.display(), n + 1);
            };
            let value = value.trim();
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            values.insert(key.trim().to_owned(), unquoted.to_owned());
        }
        Ok(File {
            path: path.to_owned(),
            values,
        })
    }

    /// `flag` if given, else the file's `key`, parsed.
    fn or<T: FromStr>(&self, flag: Option<T>, key: &str) -> anyhow::Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        match (flag, self.values.get(key)) {
            (Some(v), _) => Ok(Some(v)),
            (None, None) => Ok(None),
            (None, Some(v)) => v
                .parse()
                .map(Some)
                .map_err(|e| anyhow::anyhow!("{}: {key}: {e}", self.path.display())),
        }
    }
}

/// The cluster of settings for work on every cluster the token covers (a drill
/// runner): each piece of work names its own.
const FLEET: &str = "fleet";

impl Flags {
    /// Merges flags, environment and the config file, and reads the token.
    pub fn resolve(&self) -> anyhow::Result<Settings> {
        self.resolve_for(true)
    }

    /// [`Flags::resolve`] for work on many clusters, which needs no `WALGATE_CLUSTER`.
    pub fn resolve_fleet(&self) -> anyhow::Result<Settings> {
        self.resolve_for(false)
    }

    fn resolve_for(&self, needs_cluster: bool) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(path) => File::read(path)?,
            None => File {
                path: PathBuf::new(),
                values: HashMap::new(),
            },
        };
        let url = file
            .or(self.url.clone(), "WALGATE_URL")?
            .context("no gateway URL: set WALGATE_URL or pass --url")?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("gateway URL `{url}` must start with http:// or https://");
        }
        let cluster: String = match file.or(self.cluster.clone(), "WALGATE_CLUSTER")? {
            Some(c) => c,
            None if !needs_cluster => FLEET.to_owned(),
            None => bail!("no cluster: set WALGATE_CLUSTER or pass --cluster"),
        };
        let cluster = cluster
            .parse()
            .map_err(|e: walgate_core::names::ClusterNameError| {
                anyhow::anyhow!("WALGATE_CLUSTER: {e}")
            })?;
        let token_file = file.or(self.token_file.clone(), "WALGATE_TOKEN_FILE")?;
        let read_token = |f: &Path| {
            std::fs::read_to_string(f)
                .with_context(|| format!("read token file {}", f.display()))
                .map(|t| t.trim().to_owned())
        };
        // The token and its file are one setting: flags and the environment win over the
        // config file as a pair, so a stale token left in the file cannot shadow the
        // token file a service (or `restore`) names.
        let token = match (
            &self.token,
            &self.token_file,
            file.values.get("WALGATE_TOKEN"),
        ) {
            (Some(t), _, _) => t.trim().to_owned(),
            (None, Some(f), _) => read_token(f)?,
            (None, None, Some(t)) => t.trim().to_owned(),
            (None, None, None) => match &token_file {
                Some(f) => read_token(f)?,
                None => bail!(
                    "no token: set WALGATE_TOKEN_FILE (or WALGATE_TOKEN) or pass --token-file"
                ),
            },
        };
        if token.is_empty() {
            bail!("the token is empty: issue one with `walgate token issue` on the gateway");
        }
        let zstd_level = file.or(self.zstd_level, "WALGATE_ZSTD_LEVEL")?.unwrap_or(1);
        if !(1..=19).contains(&zstd_level) {
            bail!("WALGATE_ZSTD_LEVEL must be 1 to 19, not {zstd_level}");
        }
        let verbose = self.verbose
            || file
                .values
                .get("WALGATE_VERBOSE")
                .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes" | "on"));
        Ok(Settings {
            url: url.trim_end_matches('/').to_owned(),
            cluster,
            token,
            token_file,
            ca_file: file.or(self.ca_file.clone(), "WALGATE_CA_FILE")?,
            zstd_level,
            retry_for: Duration::from_secs(
                file.or(self.retry_seconds, "WALGATE_RETRY_SECONDS")?
                    .unwrap_or(60),
            ),
            push_ahead: file
                .or(self.push_ahead, "WALGATE_PUSH_AHEAD")?
                .unwrap_or(16),
            prefetch: file.or(self.prefetch, "WALGATE_PREFETCH")?.unwrap_or(16),
            prefetch_max_bytes: file
                .or(self.prefetch_max_mib, "WALGATE_PREFETCH_MAX_MIB")?
                .unwrap_or(512)
                << 20,
            jobs: usize::from(
                file.or(self.jobs, "WALGATE_JOBS")?
                    .unwrap_or(8)
                    .clamp(1, 64),
            ),
            verbose,
        })
    }
}

#[cfg(test)]
impl Settings {
    /// Settings for `url` that try each request once, with no pusher or prefetcher (they
    /// would start the test binary).
    pub fn for_test(url: &str) -> Settings {
        Settings {
            url: url.into(),
            cluster: "main".parse().unwrap(),
            token: "t".into(),
            token_file: None,
            ca_file: None,
            zstd_level: 1,
            retry_for: Duration::ZERO,
            push_ahead: 0,
            prefetch: 0,
            prefetch_max_bytes: 0,
            jobs: 1,
            verbose: false,
        }
    }
}

impl Settings {
    /// The same settings for another cluster (a drill runner works on many).
    pub fn for_cluster(&self, cluster: ClusterName) -> Settings {
        Settings {
            url: self.url.clone(),
            cluster,
            token: self.token.clone(),
            token_file: self.token_file.clone(),
            ca_file: self.ca_file.clone(),
            ..*self
        }
    }

    /// The environment that gives a child `walgate-client` these same settings.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("WALGATE_URL", self.url.clone()),
            ("WALGATE_CLUSTER", self.cluster.to_string()),
            ("WALGATE_ZSTD_LEVEL", self.zstd_level.to_string()),
            (
                "WALGATE_RETRY_SECONDS",
                self.retry_for.as_secs().to_string(),
            ),
            ("WALGATE_PUSH_AHEAD", self.push_ahead.to_string()),
            ("WALGATE_PREFETCH", self.prefetch.to_string()),
            (
                "WALGATE_PREFETCH_MAX_MIB",
                (self.prefetch_max_bytes >> 20).to_string(),
            ),
            ("WALGATE_JOBS", self.jobs.to_string()),
        ];
        match &self.token_file {
            Some(f) => env.push(("WALGATE_TOKEN_FILE", f.display().to_string())),
            None => env.push(("WALGATE_TOKEN", self.token.clone())),
        }
        if let Some(ca) = &self.ca_file {
            env.push(("WALGATE_CA_FILE", ca.display().to_string()));
        }
        if self.verbose {
            env.push(("WALGATE_VERBOSE", "true".into()));
        }
        env
    }

    /// Prints one line about a file's journey when --verbose is on.
    pub fn log(&self, what: std::fmt::Arguments) {
        if self.verbose {
            // One write: the pusher and prefetcher share PostgreSQL's log with the calls.
            let line = format!("walgate-client: {what}\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.env");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn the_file_fills_what_flags_leave_out() {
        let (_dir, path) = write(
            "# a host's settings\nWALGATE_URL=\"https://gw:8432/\"\nWALGATE_CLUSTER=main\n\
             WALGATE_TOKEN='abc'\nWALGATE_PUSH_AHEAD=3\n",
        );
        let flags = Flags {
            config: Some(path),
            cluster: Some("other".into()),
            ..Flags::default()
        };
        let s = flags.resolve().unwrap();
        assert_eq!(s.url, "https://gw:8432");
        assert_eq!(s.cluster.to_string(), "other");
        assert_eq!(s.token, "abc");
        assert_eq!(s.push_ahead, 3);
        assert_eq!(s.prefetch, 16);
        assert_eq!(s.retry_for, Duration::from_secs(60));
    }

    #[test]
    fn bad_values_name_their_source() {
        let (_dir, path) = write(
            "WALGATE_URL=http://gw\nWALGATE_CLUSTER=main\nWALGATE_TOKEN=t\nWALGATE_JOBS=many\n",
        );
        let flags = Flags {
            config: Some(path.clone()),
            ..Flags::default()
        };
        let e = format!("{:#}", flags.resolve().err().unwrap());
        assert!(
            e.contains("WALGATE_JOBS") && e.contains(&path.display().to_string()),
            "{e}"
        );

        let (_dir, path) = write("WALGATE_URL\n");
        let flags = Flags {
            config: Some(path),
            ..Flags::default()
        };
        let e = format!("{:#}", flags.resolve().err().unwrap());
        assert!(e.contains(":1: expected KEY=VALUE"), "{e}");

        let flags = Flags {
            url: Some("gw:8432".into()),
            ..Flags::default()
        };
        let e = format!("{:#}", flags.resolve().err().unwrap());
        assert!(e.contains("must start with http"), "{e}");

        let flags = Flags {
            url: Some("http://gw".into()),
            cluster: Some("main".into()),
            ..Flags::default()
        };
        let e = format!("{:#}", flags.resolve().err().unwrap());
        assert!(e.contains("no token"), "{e}");
    }

    #[test]
    fn a_token_file_from_the_environment_beats_a_token_in_the_file() {
        let (dir, path) =
            write("WALGATE_URL=http://gw\nWALGATE_CLUSTER=main\nWALGATE_TOKEN=stale\n");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "fresh\n").unwrap();
        let flags = Flags {
            config: Some(path.clone()),
            token_file: Some(token_file),
            ..Flags::default()
        };
        assert_eq!(flags.resolve().unwrap().token, "fresh");
        let flags = Flags {
            config: Some(path),
            ..Flags::default()
        };
        assert_eq!(flags.resolve().unwrap().token, "stale");
    }
}
