//! Write-once targets: S3 Object Lock.
//!
//! A locked object version cannot be deleted or overwritten before its retain-until date:
//! not by anyone in compliance mode, not without a special permission in governance mode.
//! So an attacker holding the gateway's admin token, or even its store credentials, cannot
//! destroy what is archived. A target locks what walgate stores in one of two ways:
//!
//! - `object_lock = "bucket"`: the bucket's default retention locks each new object;
//!   walgate reads its mode and period at start.
//! - `object_lock = "governance"` or `"compliance"` with `object_lock_period`: walgate
//!   sets a retention on each object right after writing it.
//!
//! Either way the catalog records when each object's lock ends, and retention never
//! sends a delete before then: in a versioned bucket (Object Lock needs versioning) a
//! delete of a locked object succeeds as a delete marker that hides it.
//!
//! object_store makes neither request used here, so they are signed with its SigV4
//! signer and sent with its HTTP client, on the target's credentials and options.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer};
use object_store::client::{ClientConfigKey, ClientOptions, HttpClient, HttpConnector};
use object_store::path::Path;
use time::OffsetDateTime;

use super::StorageError;

/// How long clocks may disagree: a lock is taken to last this much longer than
/// recorded, so a gateway whose clock runs ahead never deletes early.
pub const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// Whether an object locked `until` may still be locked at `now`, allowing for clocks
/// that disagree.
pub fn locked_at(until: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    until.is_some_and(|t| t + CLOCK_SKEW > now)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Governance,
    Compliance,
}

impl LockMode {
    fn as_s3(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "governance",
            LockMode::Compliance => "compliance",
        }
    }
}

/// Locks: each object for `period` from when it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lock {
    pub mode: LockMode,
    pub period: Duration,
}

/// How a target is configured to lock (the `object_lock` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locking {
    /// By the bucket's default retention.
    Bucket,
    /// By walgate, on each object.
    Objects(Lock),
}

impl Locking {
    /// From the `object_lock` and `object_lock_period` options.
    pub fn parse(mode: &str, period: Option<&str>) -> Result<Self, String> {
        let mode = match (mode, period) {
            ("bucket", None) => return Ok(Locking::Bucket),
            ("bucket", Some(_)) => {
                return Err(
                    "object_lock = \"bucket\" takes its period from the bucket: remove object_lock_period".into(),
                );
            }
            ("governance", _) => LockMode::Governance,
            ("compliance", _) => LockMode::Compliance,
            (other, _) => {
                return Err(format!(
                    "object_lock `{other}`: use \"bucket\", \"governance\" or \"compliance\""
                ));
            }
        };
        let period = period.ok_or("object_lock needs object_lock_period, e.g. \"30d\"")?;
        let period = humantime::parse_duration(period)
            .map_err(|e| format!("object_lock_period `{period}`: {e}"))?;
        if period < Duration::from_secs(86_400) {
            return Err("object_lock_period: S3 locks for whole days; give at least 1d".into());
        }
        Ok(Locking::Objects(Lock { mode, period }))
    }
}

/// What a bucket says of Object Lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketLock {
    pub enabled: bool,
    /// Its default retention, if it has one.
    pub default: Option<Lock>,
}

/// The Object Lock requests on one S3 bucket.
#[derive(Debug)]
pub struct S3Lock {
    http: HttpClient,
    store: AmazonS3,
    /// `https://host/bucket` (or the virtual-hosted form), without a trailing slash.
    bucket_url: String,
    /// The target's key prefix, with a trailing slash when not empty.
    prefix: String,
    region: String,
}

/// Client options an S3 target may set that these requests must honour too.
const CLIENT_KEYS: [ClientConfigKey; 8] = [
    ClientConfigKey::AllowHttp,
    ClientConfigKey::AllowInvalidCertificates,
    ClientConfigKey::ConnectTimeout,
    ClientConfigKey::ProxyUrl,
    ClientConfigKey::ProxyCaCertificate,
    ClientConfigKey::ProxyExcludes,
    ClientConfigKey::Timeout,
    ClientConfigKey::Http1Only,
];

impl S3Lock {
    pub fn new(
        builder: &AmazonS3Builder,
        store: AmazonS3,
        bucket: &str,
        prefix: &str,
    ) -> Result<Self, String> {
        let get = |key| builder.get_config_value(&key);
        let mut options = ClientOptions::new();
        for key in CLIENT_KEYS {
            if let Some(value) = get(AmazonS3ConfigKey::Client(key)) {
                options = options.with_config(key, value);
            }
        }
        let http = object_store::client::ReqwestConnector::default()
            .connect(&options)
            .map_err(|e| e.to_string())?;
        let region = get(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
        let virtual_hosted = get(AmazonS3ConfigKey::VirtualHostedStyleRequest)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        // As object_store builds it.
        let bucket_url = match (get(AmazonS3ConfigKey::Endpoint), virtual_hosted) {
            (Some(endpoint), true) => endpoint.trim_end_matches('/').to_owned(),
            (Some(endpoint), false) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
            (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
            (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
        };
        let prefix = prefix.trim_matches('/');
        Ok(S3Lock {
            http,
            store,
            bucket_url,
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            region,
        })
    }

    /// The bucket's Object Lock configuration.
    pub async fn bucket(&self) -> Result<BucketLock, StorageError> {
        let url = format!("{}?object-lock", self.bucket_url);
        let (status, _, body) = self.send(http::Method::GET, url, Bytes::new()).await?;
        let text = String::from_utf8_lossy(&body);
        if status == http::StatusCode::NOT_FOUND && text.contains("ObjectLockConfigurationNotFound")
        {
            return Ok(BucketLock {
                enabled: false,
                default: None,
            });
        }
        if !status.is_success() {
            return Err(failed(
                "read the bucket's Object Lock configuration",
                status,
                &text,
            ));
        }
        let enabled = tag(&text, "ObjectLockEnabled") == Some("Enabled");
        let mode = match tag(&text, "Mode") {
            Some("GOVERNANCE") => Some(LockMode::Governance),
            Some("COMPLIANCE") => Some(LockMode::Compliance),
            _ => None,
        };
        let day = 86_400;
        let days = tag(&text, "Days").and_then(|d| d.parse::<u64>().ok());
        let years = tag(&text, "Years").and_then(|y| y.parse::<u64>().ok());
        // A year is 365 days to S3, and a leap day would end the lock one day later:
        // count 366 so the catalog never thinks a lock ended before it did.
        let period = days
            .map(|d| d * day)
            .or(years.map(|y| y * 366 * day))
            .map(Duration::from_secs);
        Ok(BucketLock {
            enabled,
            default: mode.zip(period).map(|(mode, period)| Lock { mode, period }),
        })
    }

    /// Locks the current version of `key` until `until`.
    pub async fn retain(
        &self,
        key: &Path,
        mode: LockMode,
        until: OffsetDateTime,
    ) -> Result<(), StorageError> {
        let until = until
            .replace_nanosecond(0)
            .unwrap_or(until)
            .format(&time::format_description::well_known::Rfc3339)
            .expect("a UTC time formats");
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode>\
             <RetainUntilDate>{until}</RetainUntilDate></Retention>",
            mode.as_s3()
        );
        let url = format!("{}/{}{key}?retention", self.bucket_url, self.prefix);
        let (status, _, body) = self.send(http::Method::PUT, url, body.into()).await?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(failed("lock an object", status, &text));
        }
        Ok(())
    }

    /// Until when the current version of `key` is locked, if it is: from the lock
    /// headers of a `HEAD`, which S3 sends to callers allowed to read retention.
    pub async fn retained_until(&self, key: &Path) -> Result<Option<OffsetDateTime>, StorageError> {
        let url = format!("{}/{}{key}", self.bucket_url, self.prefix);
        let (status, headers, _) = self.send(http::Method::HEAD, url, Bytes::new()).await?;
        if status == http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(failed("read an object's lock", status, ""));
        }
        let Some(until) = headers.get("x-amz-object-lock-retain-until-date") else {
            return Ok(None);
        };
        let until = until.to_str().unwrap_or_default();
        OffsetDateTime::parse(until, &time::format_description::well_known::Rfc3339)
            .map(Some)
            .map_err(|e| StorageError::ObjectLock(format!("retain-until date `{until}`: {e}")))
    }

    async fn send(
        &self,
        method: http::Method,
        url: String,
        body: Bytes,
    ) -> Result<(http::StatusCode, http::HeaderMap, Bytes), StorageError> {
        let transport = |e: &dyn std::fmt::Display| StorageError::ObjectLock(e.to_string());
        let credential = self
            .store
            .credentials()
            .get_credential()
            .await
            .map_err(|e| transport(&e))?;
        let mut request = http::Request::builder()
            .method(method)
            .uri(&url)
            .header(
                "content-md5",
                base64::engine::general_purpose::STANDARD.encode(md5(&body)),
            )
            .body(body.into())
            .map_err(|e| transport(&e))?;
        AwsAuthorizer::new(&credential, "s3", &self.region)
            .try_authorize(&mut request, None)
            .map_err(|e| transport(&e))?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| transport(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .bytes()
            .await
            .map_err(|e| transport(&e))?;
        Ok((status, headers, body))
    }
}

fn md5(data: &[u8]) -> [u8; 16] {
    use md5::Digest as _;
    md5::Md5::digest(data).into()
}

fn failed(what: &str, status: http::StatusCode, body: &str) -> StorageError {
    let code = tag(body, "Code").unwrap_or("");
    let message = tag(body, "Message").unwrap_or("");
    StorageError::ObjectLock(format!("cannot {what}: {status} {code} {message}"))
}

/// The text of the first `<name>` element in `xml`; enough for S3's small answers.
fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let len = xml[start..].find(&format!("</{name}>"))?;
    Some(xml[start..start + len].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_name_a_mode_and_a_period() {
        assert_eq!(Locking::parse("bucket", None), Ok(Locking::Bucket));
        assert_eq!(
            Locking::parse("compliance", Some("30d")),
            Ok(Locking::Objects(Lock {
                mode: LockMode::Compliance,
                period: Duration::from_secs(30 * 86_400)
            }))
        );
        for (mode, period) in [
            ("compliance", None),
            ("governance", Some("1h")),
            ("worm", Some("30d")),
            ("bucket", Some("30d")),
        ] {
            assert!(Locking::parse(mode, period).is_err(), "{mode} {period:?}");
        }
    }

    #[test]
    fn tags_are_read_from_s3_answers() {
        let xml = "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled>\
                   <Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>3</Days>\
                   </DefaultRetention></Rule></ObjectLockConfiguration>";
        assert_eq!(tag(xml, "ObjectLockEnabled"), Some("Enabled"));
        assert_eq!(tag(xml, "Mode"), Some("GOVERNANCE"));
        assert_eq!(tag(xml, "Days"), Some("3"));
        assert_eq!(tag(xml, "Years"), None);
    }
}
