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
    /// The target's key prefix.
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
        Ok(S3Lock {
            http,
            store,
            bucket_url,
            prefix: prefix.to_owned(),
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
        // One of the two is given; some servers send the other as 0.
        let count = |name| {
            tag(&text, name)
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|&n| n > 0)
        };
        let (days, years) = (count("Days"), count("Years"));
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
        let url = format!("{}?retention", self.object_url(key));
        let (status, _, body) = self.send(http::Method::PUT, url, body.into()).await?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(failed("lock an object", status, &text));
        }
        Ok(())
    }

    /// The lock on the current version of `key`, as the store has it. Fails closed: an
    /// answer that does not say (S3 leaves the lock out of a `HEAD` for callers not
    /// allowed to read retention) is an error, never "unlocked".
    pub async fn hold(&self, key: &Path) -> Result<Hold, StorageError> {
        let url = self.object_url(key);
        let (status, headers, _) = self
            .send(http::Method::HEAD, url.clone(), Bytes::new())
            .await?;
        if status == http::StatusCode::NOT_FOUND {
            return Ok(Hold::Absent);
        }
        if !status.is_success() {
            return Err(failed("read an object's lock", status, ""));
        }
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        if header("x-amz-object-lock-legal-hold") == Some("ON") {
            return Ok(Hold::LegalHold);
        }
        if let Some(until) = header("x-amz-object-lock-retain-until-date") {
            return parse_date(until).map(Hold::Until);
        }
        // No lock in the answer: ask for the retention itself.
        let (status, _, body) = self
            .send(http::Method::GET, format!("{url}?retention"), Bytes::new())
            .await?;
        let text = String::from_utf8_lossy(&body);
        if status == http::StatusCode::NOT_FOUND {
            return Ok(Hold::Unlocked); // NoSuchObjectLockConfiguration
        }
        if !status.is_success() {
            return Err(failed("read an object's lock", status, &text));
        }
        match tag(&text, "RetainUntilDate") {
            Some(until) => parse_date(until).map(Hold::Until),
            None => Ok(Hold::Unlocked),
        }
    }

    /// The URL of `key` under the target's prefix, encoded as object_store encodes it,
    /// so that these requests name the very objects its own requests name.
    fn object_url(&self, key: &Path) -> String {
        const PATH: percent_encoding::AsciiSet = percent_encoding::NON_ALPHANUMERIC
            .remove(b'/')
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let full: Path = Path::from(self.prefix.as_str())
            .parts()
            .chain(key.parts())
            .collect();
        let encoded = percent_encoding::utf8_percent_encode(full.as_ref(), &PATH);
        format!("{}/{encoded}", self.bucket_url)
    }

    /// Sends a signed request, retrying a few times when the store is busy or the
    /// connection fails (object_store retries its own requests the same way).
    async fn send(
        &self,
        method: http::Method,
        url: String,
        body: Bytes,
    ) -> Result<(http::StatusCode, http::HeaderMap, Bytes), StorageError> {
        let mut wait = Duration::from_millis(100);
        for attempt in 1.. {
            let answer = self.send_once(method.clone(), &url, body.clone()).await;
            let retry = match &answer {
                Ok((status, _, _)) => {
                    status.is_server_error() || *status == http::StatusCode::TOO_MANY_REQUESTS
                }
                Err(_) => true,
            };
            if !retry || attempt == 4 {
                return answer;
            }
            tokio::time::sleep(wait).await;
            wait *= 4;
        }
        unreachable!("the loop returns")
    }

    async fn send_once(
        &self,
        method: http::Method,
        url: &str,
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
            .uri(url)
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

/// An object's lock, as the store has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// No such object.
    Absent,
    Unlocked,
    /// Locked until then (perhaps a past date: an ended lock).
    Until(OffsetDateTime),
    /// Under a legal hold, which lasts until someone lifts it.
    LegalHold,
}

/// When a lock ends, for errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockEnd {
    At(OffsetDateTime),
    LegalHold,
}

impl std::fmt::Display for LockEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockEnd::At(t) => write!(f, "until {t}"),
            LockEnd::LegalHold => f.write_str("by a legal hold"),
        }
    }
}

impl Hold {
    /// Whether it still keeps the object from deletion at `now`, and until when.
    pub fn keeps(self, now: OffsetDateTime) -> Option<LockEnd> {
        match self {
            Hold::Until(t) if locked_at(Some(t), now) => Some(LockEnd::At(t)),
            Hold::LegalHold => Some(LockEnd::LegalHold),
            _ => None,
        }
    }
}

fn parse_date(date: &str) -> Result<OffsetDateTime, StorageError> {
    OffsetDateTime::parse(date, &time::format_description::well_known::Rfc3339)
        .map_err(|e| StorageError::ObjectLock(format!("retain-until date `{date}`: {e}")))
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

    #[tokio::test]
    async fn object_urls_name_keys_as_object_store_does() {
        use object_store::signer::Signer as _;
        let builder = AmazonS3Builder::new()
            .with_bucket_name("b")
            .with_region("eu-west-1")
            .with_endpoint("http://127.0.0.1:9000")
            .with_access_key_id("k")
            .with_secret_access_key("s");
        let store = builder.clone().build().unwrap();
        let lock = S3Lock::new(&builder, store.clone(), "b", "a~b//c").unwrap();
        let key = Path::from("clusters/main/wal/x+y ü.zst");
        // The key under the prefix, as object_store's prefix store forms it.
        let full: Path = Path::from("a~b//c").parts().chain(key.parts()).collect();
        let theirs = store
            .signed_url(http::Method::GET, &full, Duration::from_secs(60))
            .await
            .unwrap();
        let ours = lock.object_url(&key);
        assert_eq!(ours, format!("http://127.0.0.1:9000{}", theirs.path()));
        assert!(ours.starts_with("http://127.0.0.1:9000/b/a"), "{ours}");
    }

    #[test]
    fn a_lock_keeps_until_its_date_and_a_legal_hold_until_lifted() {
        let now = OffsetDateTime::now_utc();
        let day = time::Duration::days(1);
        assert_eq!(
            Hold::Until(now + day).keeps(now),
            Some(LockEnd::At(now + day))
        );
        assert_eq!(Hold::Until(now - day).keeps(now), None);
        assert_eq!(Hold::LegalHold.keeps(now), Some(LockEnd::LegalHold));
        assert_eq!(Hold::Unlocked.keeps(now), None);
        assert_eq!(Hold::Absent.keeps(now), None);
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
