//! Storage targets: named object stores, each a URL plus options, with credentials the
//! gateway alone holds.
//!
//! ```toml
//! [targets.archive]
//! url = "s3://walgate-archive/prod"          # s3://, gs://, az://, file:///
//! aws_region = "eu-west-1"
//! aws_secret_access_key = { file = "/run/secrets/s3-secret" }
//! aws_access_key_id = { env = "ARCHIVE_KEY_ID" }
//! ```
//!
//! Option keys are the `object_store` builders' (`aws_…`, `google_…`, `azure_…`), plus
//! walgate's own: `retry_timeout` (how long one request is retried, default 30s: the
//! database retries a failed push itself, so holding its archiver for minutes buys
//! nothing) and `encryption_keyring` (a keyring file: new objects on this target are
//! encrypted, see [`super::crypt`]), and on `s3://` targets `object_lock` and
//! `object_lock_period` (write-once storage, see [`super::lock`]). An unknown key is an
//! error, not a silent default. Credentials not given fall back to the
//! provider's default chain: its environment variables, then instance roles or workload
//! identity. Option values never appear in logs or `Debug` output.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, Checksum};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::client::ClientOptions;
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, RetryConfig};
use serde::Deserialize;

use walgate_core::TargetName;
use walgate_swift::{Swift, SwiftAuth, SwiftConfig};

use super::StorageError;
use super::crypt::Keyring;
use super::lock::{Locking, S3Lock};

/// Where one option's value comes from. Secrets belong in `env` or `file`, so the config
/// file can be shared.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum OptionValue {
    Literal(String),
    Flag(bool),
    Number(i64),
    Env { env: String },
    File { file: PathBuf },
}

impl OptionValue {
    fn resolve(&self, key: &str) -> Result<String, String> {
        match self {
            OptionValue::Literal(v) => Ok(v.clone()),
            OptionValue::Flag(v) => Ok(v.to_string()),
            OptionValue::Number(v) => Ok(v.to_string()),
            OptionValue::Env { env } => std::env::var(env)
                .map_err(|_| format!("option `{key}`: environment variable {env} is not set")),
            OptionValue::File { file } => std::fs::read_to_string(file)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|e| format!("option `{key}`: cannot read {}: {e}", file.display())),
        }
    }
}

/// Shows where a value comes from, never a literal value (it may be a secret).
impl fmt::Debug for OptionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionValue::Literal(_) => f.write_str("<redacted>"),
            OptionValue::Flag(v) => write!(f, "{v}"),
            OptionValue::Number(v) => write!(f, "{v}"),
            OptionValue::Env { env } => write!(f, "env:{env}"),
            OptionValue::File { file } => write!(f, "file:{}", file.display()),
        }
    }
}

/// One target as configured.
#[derive(Clone, Deserialize)]
pub struct TargetConfig {
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`, `file:///dir`.
    pub url: String,
    /// Builder options by key, e.g. `aws_endpoint`, `azure_storage_account_name`.
    #[serde(flatten)]
    pub options: BTreeMap<String, OptionValue>,
}

/// Logs show the URL without password or query string, like the options' sources.
impl fmt::Debug for TargetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetConfig")
            .field("url", &self.display_url())
            .field("options", &self.options)
            .finish()
    }
}

impl TargetConfig {
    pub fn from_url(url: impl Into<String>) -> Self {
        TargetConfig {
            url: url.into(),
            options: BTreeMap::new(),
        }
    }

    /// The URL as logs may show it: no password or query string.
    pub fn display_url(&self) -> String {
        crate::secret::redact_url(&self.url)
    }

    /// Builds the store, reading credentials (and the keyring) from env variables and
    /// files now.
    pub fn open(&self, name: &TargetName) -> Result<Opened, StorageError> {
        let bad = |reason: String| StorageError::BadTarget {
            target: name.clone(),
            reason,
        };
        let (scheme, rest) = self
            .url
            .split_once("://")
            .ok_or_else(|| bad(format!("`{}` is not a URL", self.display_url())))?;
        let mut options = Vec::with_capacity(self.options.len());
        let mut retry = RetryConfig {
            max_retries: 6,
            retry_timeout: Duration::from_secs(30),
            ..Default::default()
        };
        let mut keyring = None;
        let (mut object_lock, mut lock_period) = (None, None);
        for (key, value) in &self.options {
            let value = value.resolve(key).map_err(bad)?;
            match key.as_str() {
                "object_lock" => object_lock = Some(value),
                "object_lock_period" => lock_period = Some(value),
                "retry_timeout" => {
                    retry.retry_timeout = humantime::parse_duration(&value)
                        .map_err(|e| bad(format!("retry_timeout `{value}`: {e}")))?;
                }
                "encryption_keyring" => {
                    let ring = Keyring::load(std::path::Path::new(&value))
                        .map_err(|e| bad(e.to_string()))?;
                    keyring = Some(ring);
                }
                _ => options.push((key.as_str(), value)),
            }
        }
        let locking = match (object_lock, lock_period) {
            (Some(mode), period) => Some(Locking::parse(&mode, period.as_deref()).map_err(bad)?),
            (None, Some(_)) => return Err(bad("object_lock_period needs object_lock".into())),
            (None, None) => None,
        };
        if locking.is_some() && !matches!(scheme, "s3" | "s3a") {
            return Err(bad(format!(
                "object_lock is for s3:// targets (S3 Object Lock), not {scheme}://"
            )));
        }
        if scheme == "file" {
            if let Some((key, _)) = options.first() {
                return Err(bad(format!("file:// targets take no option `{key}`")));
            }
            let dir = rest
                .strip_prefix('/')
                .map(|_| rest)
                .ok_or_else(|| bad("use file:///absolute/path".into()))?;
            std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
            let local = LocalFileSystem::new_with_prefix(dir)?.with_fsync(true);
            let store = Arc::new(local);
            return Ok(Opened {
                store,
                keyring,
                local_root: Some(dir.into()),
                s3: None,
                locking: None,
            });
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() || bucket.contains(['@', '?', '#']) {
            return Err(bad(format!(
                "`{}`: give the bucket or container after {scheme}://",
                self.display_url()
            )));
        }
        let base = format!("{scheme}://{bucket}");
        let unknown = |key: String| bad(format!("unknown option `{key}` for {scheme}:// targets"));
        let prefix = prefix.trim_matches('/');
        let mut s3 = None;
        let store: Arc<dyn ObjectStore> = match scheme {
            "s3" | "s3a" => {
                let mut b = AmazonS3Builder::from_env().with_url(base).with_retry(retry);
                // S3 refuses writes without a checksum to a bucket that locks them, and
                // names the SDK header that announces one (signed, as default headers are).
                if locking.is_some() {
                    let mut announce = http::HeaderMap::new();
                    announce.insert(
                        "x-amz-sdk-checksum-algorithm",
                        http::HeaderValue::from_static("SHA256"),
                    );
                    b = b
                        .with_checksum_algorithm(Checksum::SHA256)
                        .with_client_options(ClientOptions::new().with_default_headers(announce));
                }
                let b = configure(b, options, |b, k: AmazonS3ConfigKey, v| b.with_config(k, v))
                    .map_err(unknown)?;
                let store = b.clone().build().map_err(|e| bad(e.to_string()))?;
                s3 = Some(Arc::new(
                    S3Lock::new(&b, store.clone(), bucket, prefix).map_err(bad)?,
                ));
                Arc::new(store)
            }
            "gs" => {
                let b = GoogleCloudStorageBuilder::from_env()
                    .with_url(base)
                    .with_retry(retry);
                let b = configure(b, options, |b, k: GoogleConfigKey, v| b.with_config(k, v));
                Arc::new(
                    b.map_err(unknown)?
                        .build()
                        .map_err(|e| bad(e.to_string()))?,
                )
            }
            "az" | "azure" => {
                let b = MicrosoftAzureBuilder::from_env()
                    .with_url(base)
                    .with_retry(retry);
                let b = configure(b, options, |b, k: AzureConfigKey, v| b.with_config(k, v));
                Arc::new(
                    b.map_err(unknown)?
                        .build()
                        .map_err(|e| bad(e.to_string()))?,
                )
            }
            "swift" => Arc::new(swift_store(bucket, options, retry.retry_timeout).map_err(bad)?),
            other => {
                return Err(bad(format!(
                    "unsupported scheme `{other}://`: use s3://, gs://, az://, swift:// or file:///"
                )));
            }
        };
        let store = if prefix.is_empty() {
            store
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        };
        Ok(Opened {
            store,
            keyring,
            local_root: None,
            s3,
            locking,
        })
    }
}

/// Applies `options` to an `object_store` builder through `set`; an unknown key comes
/// back as the error.
fn configure<B, K: std::str::FromStr>(
    builder: B,
    options: Vec<(&str, String)>,
    set: impl Fn(B, K, String) -> B,
) -> Result<B, String> {
    options.into_iter().try_fold(builder, |b, (key, value)| {
        let key: K = key.parse().map_err(|_| key.to_owned())?;
        Ok(set(b, key, value))
    })
}

/// A Swift container from `swift_*` options, falling back to the variables of the
/// `swift` and `openstack` command-line clients (`ST_AUTH`, `OS_AUTH_URL`, …).
fn swift_store(
    container: &str,
    options: Vec<(&str, String)>,
    retry_timeout: Duration,
) -> Result<Swift, String> {
    let mut given: BTreeMap<&str, String> = BTreeMap::new();
    for (key, value) in options {
        let known = [
            "swift_auth_url",
            "swift_auth_version",
            "swift_user",
            "swift_key",
            "swift_password",
            "swift_user_domain",
            "swift_project",
            "swift_project_domain",
            "swift_region",
            "swift_interface",
            "swift_storage_url",
        ];
        if !known.contains(&key) {
            return Err(format!(
                "unknown option `{key}` for swift:// targets (known: {})",
                known.join(", ")
            ));
        }
        given.insert(key, value);
    }
    let get = |key: &str, vars: &[&str]| {
        given
            .get(key)
            .cloned()
            .or_else(|| vars.iter().find_map(|v| std::env::var(v).ok()))
    };
    let need = |key: &str, vars: &[&str]| {
        get(key, vars).ok_or_else(|| format!("set {key} (or {})", vars.join(" or ")))
    };
    let url = need("swift_auth_url", &["ST_AUTH", "OS_AUTH_URL"])?;
    let v3 = match get(
        "swift_auth_version",
        &["ST_AUTH_VERSION", "OS_IDENTITY_API_VERSION"],
    ) {
        Some(v) if v == "3" => true,
        Some(v) if v == "1" || v == "1.0" => false,
        Some(v) => return Err(format!("swift_auth_version `{v}`: use 1 or 3")),
        None => url.trim_end_matches('/').ends_with("/v3"),
    };
    let auth = if v3 {
        SwiftAuth::V3 {
            url,
            user: need("swift_user", &["OS_USERNAME"])?,
            password: need("swift_password", &["OS_PASSWORD"])?,
            user_domain: get("swift_user_domain", &["OS_USER_DOMAIN_NAME"])
                .unwrap_or_else(|| "Default".into()),
            project: need("swift_project", &["OS_PROJECT_NAME"])?,
            project_domain: get("swift_project_domain", &["OS_PROJECT_DOMAIN_NAME"])
                .unwrap_or_else(|| "Default".into()),
            region: get("swift_region", &["OS_REGION_NAME"]),
            interface: get("swift_interface", &["OS_INTERFACE"]).unwrap_or_else(|| "public".into()),
        }
    } else {
        SwiftAuth::V1 {
            url,
            user: need("swift_user", &["ST_USER"])?,
            key: need("swift_key", &["ST_KEY"])?,
        }
    };
    Swift::new(SwiftConfig {
        auth,
        container: container.to_owned(),
        storage_url: get("swift_storage_url", &["OS_STORAGE_URL"]),
        retry_timeout,
    })
    .map_err(|e| e.to_string())
}

/// A target's store, and its keyring when it encrypts.
#[derive(Debug)]
pub struct Opened {
    pub store: Arc<dyn ObjectStore>,
    pub keyring: Option<Keyring>,
    /// The directory of a `file://` target.
    pub local_root: Option<std::path::PathBuf>,
    /// The Object Lock requests of an `s3://` target.
    pub s3: Option<Arc<S3Lock>>,
    /// How it is configured to lock objects, if at all.
    pub locking: Option<Locking>,
}

/// What an operator should check, from a backend's error text.
pub fn hint(error: &str) -> Option<&'static str> {
    const HINTS: [(&[&str], &str); 5] = [
        (
            &["NoSuchBucket", "ContainerNotFound", "bucket does not exist"],
            "the bucket or container does not exist: create it, or fix the URL",
        ),
        (
            &["AccessDenied", "AuthorizationFailure", "Forbidden", "403"],
            "access denied: the credentials lack write, read or delete permission on this prefix",
        ),
        (
            &[
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "AuthenticationFailed",
                "401",
            ],
            "the credentials were refused: check the key id and secret",
        ),
        (
            &["RequestTimeTooSkewed", "clock skew", "RequestExpired"],
            "the gateway's clock is off: synchronise it (NTP)",
        ),
        (
            &[
                "Connection refused",
                "dns error",
                "error sending request",
                "timed out",
            ],
            "the endpoint cannot be reached: check the URL, endpoint and network",
        ),
    ];
    HINTS
        .iter()
        .find(|(needles, _)| needles.iter().any(|n| error.contains(n)))
        .map(|(_, hint)| *hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str, options: &[(&str, OptionValue)]) -> TargetConfig {
        TargetConfig {
            url: url.into(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }

    fn name() -> TargetName {
        "t".parse().unwrap()
    }

    #[test]
    fn debug_output_never_shows_option_values() {
        let t = target(
            "s3://user:pw@bucket/p?sig=abc",
            &[
                (
                    "aws_secret_access_key",
                    OptionValue::Literal("s3cr3t".into()),
                ),
                (
                    "aws_access_key_id",
                    OptionValue::Env {
                        env: "KEY_ID".into(),
                    },
                ),
            ],
        );
        let shown = format!("{t:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("env:KEY_ID"), "{shown}");
        assert_eq!(t.display_url(), "s3://user:***@bucket/p");
        assert!(!t.display_url().contains("pw"));
    }

    #[test]
    fn gcs_targets_are_configured_from_options() {
        // GCS has no emulator here: building checks the URL, keys and the service
        // account (its private key is parsed now, not at the first request).
        let dir = tempfile::tempdir().unwrap();
        let pem = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .expect("openssl makes a key");
        let account = |key: &str| {
            serde_json::json!({
                "type": "service_account",
                "client_email": "walgate@project.iam.gserviceaccount.com",
                "private_key_id": "1",
                "private_key": key,
            })
            .to_string()
        };
        let good = dir.path().join("good.json");
        std::fs::write(&good, account(&String::from_utf8(pem.stdout).unwrap())).unwrap();
        let ok = target(
            "gs://walgate-archive/prod/eu",
            &[(
                "google_service_account",
                OptionValue::Literal(good.display().to_string()),
            )],
        );
        ok.open(&name())
            .expect("a GCS target with a service account builds");

        let broken = dir.path().join("broken.json");
        std::fs::write(
            &broken,
            account("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        )
        .unwrap();
        let bad_key = target(
            "gs://walgate-archive",
            &[(
                "google_service_account",
                OptionValue::Literal(broken.display().to_string()),
            )],
        );
        let err = bad_key.open(&name()).unwrap_err().to_string();
        assert!(err.starts_with("storage target `t`:"), "{err}");
        assert!(!err.contains("AAAA"), "{err}");

        let typo = target(
            "gs://walgate-archive",
            &[("google_service_acount", OptionValue::Literal("x".into()))],
        );
        let err = typo.open(&name()).unwrap_err().to_string();
        assert!(
            err.contains("unknown option `google_service_acount`"),
            "{err}"
        );
    }

    #[test]
    fn s3_and_azure_options_are_checked_when_built() {
        let kms = target(
            "s3://archive/prod",
            &[
                ("aws_region", OptionValue::Literal("eu-west-1".into())),
                (
                    "aws_server_side_encryption",
                    OptionValue::Literal("aws:kms".into()),
                ),
                (
                    "aws_sse_kms_key_id",
                    OptionValue::Literal("arn:aws:kms:eu-west-1:1:key/k".into()),
                ),
                ("aws_virtual_hosted_style_request", OptionValue::Flag(true)),
                ("retry_timeout", OptionValue::Literal("5s".into())),
            ],
        );
        assert!(kms.open(&name()).is_ok());
        let bad_sse = target(
            "s3://archive",
            &[(
                "aws_server_side_encryption",
                OptionValue::Literal("rot13".into()),
            )],
        );
        assert!(bad_sse.open(&name()).is_err());
        let bad_retry = target(
            "s3://archive",
            &[("retry_timeout", OptionValue::Literal("soon".into()))],
        );
        let err = bad_retry.open(&name()).unwrap_err().to_string();
        assert!(err.contains("retry_timeout `soon`"), "{err}");
        let no_account = target("az://container/prefix", &[]);
        let err = no_account.open(&name()).unwrap_err().to_string();
        assert!(err.contains("target `t`"), "{err}");
        let swift = target(
            "swift://walgate/prod",
            &[
                (
                    "swift_auth_url",
                    OptionValue::Literal("https://keystone:5000/v3".into()),
                ),
                ("swift_user", OptionValue::Literal("u".into())),
                ("swift_password", OptionValue::Literal("p".into())),
            ],
        );
        let err = swift.open(&name()).unwrap_err().to_string();
        assert!(
            err.contains("set swift_project"),
            "v3 needs a project: {err}"
        );
    }

    #[test]
    fn bad_targets_say_what_is_wrong() {
        let cases = [
            ("ftp://host/x", "unsupported scheme"),
            ("s3://", "give the bucket"),
            ("file://relative", "absolute"),
            ("nonsense", "not a URL"),
        ];
        for (url, says) in cases {
            let err = target(url, &[]).open(&name()).unwrap_err().to_string();
            assert!(err.contains(says), "{url}: {err}");
            assert!(err.contains("target `t`"), "{url}: {err}");
        }
        let missing = target(
            "s3://b",
            &[(
                "aws_secret_access_key",
                OptionValue::Env {
                    env: "WALGATE_TEST_UNSET_VARIABLE".into(),
                },
            )],
        );
        let err = missing.open(&name()).unwrap_err().to_string();
        assert!(
            err.contains("WALGATE_TEST_UNSET_VARIABLE is not set"),
            "{err}"
        );
    }

    #[test]
    fn hints_name_the_likely_cause() {
        assert!(
            hint("Error: NoSuchBucket: the bucket")
                .unwrap()
                .contains("does not exist")
        );
        assert!(hint("RequestTimeTooSkewed").unwrap().contains("clock"));
        assert_eq!(hint("something else"), None);
    }
}
