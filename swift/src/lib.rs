//! OpenStack Swift as an [`object_store::ObjectStore`], which has no Swift backend of its
//! own: [`Swift`] turns a container into a store like any other, over Swift's native API.
//!
//! What it supports:
//!
//! - writes, plain or create-only ([`PutMode::Create`], sent as `If-None-Match: *`, so an
//!   existing object answers [`object_store::Error::AlreadyExists`]); conditional updates
//!   ([`PutMode::Update`]) are not implemented;
//! - multipart uploads as Static Large Objects: segments first, then the manifest;
//! - streamed reads and `HEAD`s; ranged and conditional reads are not implemented;
//! - deletes, which take a large object's segments with it (`multipart-manifest=delete`);
//! - listings, paged, flat or by delimiter; copies, plain or create-only.
//!
//! Authentication ([`SwiftAuth`]) is TempAuth/Swauth v1 (`X-Auth-User`/`X-Auth-Key`, as
//! Rackspace Cloud Files) or Keystone v3 (password, project-scoped; the object-store
//! endpoint comes from the token's catalog). A token refused with 401 is renewed once per
//! request; connection failures and 5xx answers are retried until
//! [`SwiftConfig::retry_timeout`].
//!
//! Large-object segments live in the same container under `.segments/<object>/<upload>/`,
//! which flat listings leave out; deleting an object deletes its segments too.
#![forbid(unsafe_code)]

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    UploadPart,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

const STORE: &str = "Swift";
/// Objects per listing page (Swift's default maximum).
const PAGE: usize = 10_000;

/// How to obtain a token and the storage URL.
#[derive(Clone)]
pub enum SwiftAuth {
    /// TempAuth, Swauth, Rackspace: `GET auth_url` with user and key.
    V1 {
        url: String,
        user: String,
        key: String,
    },
    /// Keystone v3 password authentication scoped to a project.
    V3 {
        url: String,
        user: String,
        password: String,
        user_domain: String,
        project: String,
        project_domain: String,
        /// The endpoint's region; without one, the first endpoint for `interface`.
        region: Option<String>,
        /// Which of the catalog's endpoints: `public`, `internal` or `admin`.
        interface: String,
    },
}

/// Never shows the key or password.
impl fmt::Debug for SwiftAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwiftAuth::V1 { url, user, .. } => write!(f, "v1 {user}@{url}"),
            SwiftAuth::V3 {
                url, user, project, ..
            } => write!(f, "keystone v3 {user}@{url} project {project}"),
        }
    }
}

/// Where a [`Swift`] store is: how to authenticate, and which container.
#[derive(Debug, Clone)]
pub struct SwiftConfig {
    pub auth: SwiftAuth,
    /// The container holding the objects; it must exist.
    pub container: String,
    /// Overrides the storage URL the auth service returns.
    pub storage_url: Option<String>,
    /// How long one request is retried on connection errors and 5xx answers.
    pub retry_timeout: Duration,
}

#[derive(Clone)]
struct Session {
    storage_url: String,
    token: String,
}

struct Inner {
    config: SwiftConfig,
    http: reqwest::Client,
    session: tokio::sync::Mutex<Option<Session>>,
}

/// A Swift container as an object store.
#[derive(Clone)]
pub struct Swift {
    inner: Arc<Inner>,
}

impl fmt::Debug for Swift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Swift({:?}, container {})",
            self.inner.config.auth, self.inner.config.container
        )
    }
}

impl fmt::Display for Swift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Swift({})", self.inner.config.container)
    }
}

fn generic(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: e.into(),
    }
}

/// What [`encode`] escapes: every byte but ASCII letters, digits and `-._~/` (non-ASCII
/// bytes always are), so a name keeps the `/` between its segments.
const NAME: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Percent-encodes an object or container name for a URL path.
fn encode(name: &str) -> String {
    utf8_percent_encode(name, NAME).to_string()
}

/// One entry of a JSON container listing.
#[derive(Deserialize)]
struct Listed {
    name: Option<String>,
    subdir: Option<String>,
    #[serde(default)]
    bytes: u64,
    last_modified: Option<String>,
    hash: Option<String>,
}

impl Listed {
    fn meta(self, name: String) -> ObjectMeta {
        ObjectMeta {
            location: Path::from(name),
            last_modified: self
                .last_modified
                .as_deref()
                .map(listing_time)
                .unwrap_or_default(),
            size: self.bytes,
            e_tag: self.hash,
            version: None,
        }
    }
}

/// The report of a `multipart-manifest=delete`.
#[derive(Deserialize)]
struct BulkDelete {
    #[serde(rename = "Response Status")]
    response_status: String,
    #[serde(rename = "Number Deleted", default)]
    number_deleted: u64,
    #[serde(rename = "Number Not Found", default)]
    number_not_found: u64,
    #[serde(rename = "Errors", default)]
    errors: Vec<Vec<String>>,
}

fn listing_time(s: &str) -> DateTime<Utc> {
    // `2026-11-27T10:00:00.123456`, UTC without a zone.
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|t| t.and_utc())
        .unwrap_or_default()
}

impl Swift {
    /// A store for `config`'s container. Nothing is sent until the first request, which
    /// authenticates.
    pub fn new(config: SwiftConfig) -> Result<Self, object_store::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(generic)?;
        Ok(Swift {
            inner: Arc::new(Inner {
                config,
                http,
                session: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// A token and storage URL: the current one, or a new one when `stale` is it.
    async fn session(&self, stale: Option<&str>) -> Result<Session, object_store::Error> {
        let mut current = self.inner.session.lock().await;
        if let Some(s) = current.as_ref()
            && Some(s.token.as_str()) != stale
        {
            return Ok(s.clone());
        }
        let mut fresh = authenticate(&self.inner.http, &self.inner.config.auth).await?;
        if let Some(url) = &self.inner.config.storage_url {
            fresh.storage_url = url.clone();
        }
        *current = Some(fresh.clone());
        Ok(fresh)
    }

    fn object_url(&self, s: &Session, location: &str) -> String {
        format!(
            "{}/{}/{}",
            s.storage_url.trim_end_matches('/'),
            encode(&self.inner.config.container),
            encode(location)
        )
    }

    /// Sends a request built by `build` (given the session), renewing the token once on
    /// 401 and retrying connection failures and 5xx answers until `retry_timeout`.
    async fn send(
        &self,
        build: impl Fn(&Session) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, object_store::Error> {
        let started = std::time::Instant::now();
        let mut session = self.session(None).await?;
        let mut renewed = false;
        let mut backoff = Duration::from_millis(100);
        loop {
            let sent = build(&session)
                .header("X-Auth-Token", &session.token)
                .send()
                .await;
            let retry = match &sent {
                Ok(r) if r.status() == StatusCode::UNAUTHORIZED && !renewed => {
                    renewed = true;
                    session = self.session(Some(&session.token)).await?;
                    continue;
                }
                Ok(r) => r.status().is_server_error(),
                Err(e) => e.is_connect() || e.is_timeout() || e.is_request(),
            };
            if !retry || started.elapsed() + backoff > self.inner.config.retry_timeout {
                return sent.map_err(generic);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Maps an unsuccessful answer about `location` to the `object_store` error kinds.
    async fn failure(location: &str, r: reqwest::Response) -> object_store::Error {
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        let source = format!("{status}: {}", body.chars().take(200).collect::<String>()).into();
        let path = location.to_owned();
        match status {
            StatusCode::NOT_FOUND => object_store::Error::NotFound { path, source },
            StatusCode::PRECONDITION_FAILED => object_store::Error::AlreadyExists { path, source },
            StatusCode::UNAUTHORIZED => object_store::Error::Unauthenticated { path, source },
            StatusCode::FORBIDDEN => object_store::Error::PermissionDenied { path, source },
            _ => object_store::Error::Generic {
                store: STORE,
                source,
            },
        }
    }

    async fn put_object(
        &self,
        location: &str,
        body: Bytes,
        create_only: bool,
        query: &[(&str, &str)],
    ) -> Result<PutResult, object_store::Error> {
        let r = self
            .send(|s| {
                let req = self
                    .inner
                    .http
                    .put(self.object_url(s, location))
                    .query(query)
                    .body(body.clone());
                if create_only {
                    req.header("If-None-Match", "*")
                } else {
                    req
                }
            })
            .await?;
        if !r.status().is_success() {
            return Err(Self::failure(location, r).await);
        }
        let e_tag = header(&r, "etag");
        Ok(PutResult {
            e_tag,
            version: None,
            extensions: Default::default(),
        })
    }

    /// Deletes an object, and its segments when it is a large object. Swift's
    /// `multipart-manifest=delete` answers 200 whatever happened and reports in its
    /// body; on a plain object it refuses ("Not an SLO manifest") and a plain DELETE
    /// follows.
    async fn delete_object(&self, location: &Path) -> Result<(), object_store::Error> {
        let r = self
            .send(|s| {
                self.inner
                    .http
                    .delete(self.object_url(s, location.as_ref()))
                    .query(&[("multipart-manifest", "delete")])
                    .header("Accept", "application/json")
            })
            .await?;
        if !r.status().is_success() {
            return Err(Self::failure(location.as_ref(), r).await);
        }
        let report: BulkDelete = r.json().await.map_err(generic)?;
        if report.response_status.starts_with("200") {
            return match (report.number_deleted, report.number_not_found) {
                (0, n) if n > 0 => Err(object_store::Error::NotFound {
                    path: location.to_string(),
                    source: "no such object".into(),
                }),
                _ => Ok(()),
            };
        }
        let not_a_manifest = report
            .errors
            .iter()
            .any(|e| e.iter().any(|field| field.contains("Not an SLO manifest")));
        if !not_a_manifest {
            return Err(generic(format!(
                "deleting {location}: {} {:?}",
                report.response_status, report.errors
            )));
        }
        let r = self
            .send(|s| {
                self.inner
                    .http
                    .delete(self.object_url(s, location.as_ref()))
            })
            .await?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(Self::failure(location.as_ref(), r).await)
        }
    }

    /// One page of the container listing.
    async fn list_page(
        &self,
        prefix: &str,
        marker: &str,
        delimiter: bool,
    ) -> Result<Vec<Listed>, object_store::Error> {
        let limit = PAGE.to_string();
        let r = self
            .send(|s| {
                let url = format!(
                    "{}/{}",
                    s.storage_url.trim_end_matches('/'),
                    encode(&self.inner.config.container)
                );
                let mut q = vec![
                    ("format", "json"),
                    ("prefix", prefix),
                    ("marker", marker),
                    ("limit", limit.as_str()),
                ];
                if delimiter {
                    q.push(("delimiter", "/"));
                }
                self.inner.http.get(url).query(&q)
            })
            .await?;
        if r.status() == StatusCode::NO_CONTENT {
            return Ok(vec![]);
        }
        if !r.status().is_success() {
            return Err(Self::failure(&self.inner.config.container, r).await);
        }
        r.json().await.map_err(generic)
    }
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn meta(location: &Path, r: &reqwest::Response) -> ObjectMeta {
    ObjectMeta {
        location: location.clone(),
        last_modified: header(r, "last-modified")
            .and_then(|t| DateTime::parse_from_rfc2822(&t).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default(),
        size: header(r, "content-length")
            .and_then(|n| n.parse().ok())
            .unwrap_or_default(),
        e_tag: header(r, "etag"),
        version: None,
    }
}

/// Authenticates, returning a token and the storage URL.
async fn authenticate(
    http: &reqwest::Client,
    auth: &SwiftAuth,
) -> Result<Session, object_store::Error> {
    let refused = |status: StatusCode, what: &str| object_store::Error::Unauthenticated {
        path: String::new(),
        source: format!("Swift authentication refused ({status}): {what}").into(),
    };
    match auth {
        SwiftAuth::V1 { url, user, key } => {
            let r = http
                .get(url)
                .header("X-Auth-User", user)
                .header("X-Auth-Key", key)
                .send()
                .await
                .map_err(generic)?;
            if !r.status().is_success() {
                return Err(refused(r.status(), "check the user and key"));
            }
            match (header(&r, "x-storage-url"), header(&r, "x-auth-token")) {
                (Some(storage_url), Some(token)) => Ok(Session { storage_url, token }),
                _ => Err(generic(
                    "the auth answer has no X-Storage-Url or X-Auth-Token",
                )),
            }
        }
        SwiftAuth::V3 {
            url,
            user,
            password,
            user_domain,
            project,
            project_domain,
            region,
            interface,
        } => {
            let body = serde_json::json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": user, "domain": {"name": user_domain}, "password": password}}},
                "scope": {"project": {"name": project, "domain": {"name": project_domain}}},
            }});
            let r = http
                .post(format!("{}/auth/tokens", url.trim_end_matches('/')))
                .json(&body)
                .send()
                .await
                .map_err(generic)?;
            if !r.status().is_success() {
                return Err(refused(r.status(), "check the user, password and project"));
            }
            let token = header(&r, "x-subject-token")
                .ok_or_else(|| generic("the Keystone answer has no X-Subject-Token"))?;
            let answer: serde_json::Value = r.json().await.map_err(generic)?;
            let storage_url = object_store_endpoint(&answer, region.as_deref(), interface)
                .ok_or_else(|| {
                    generic(format!(
                        "the token's catalog has no object-store endpoint for interface `{interface}`{}",
                        region.as_deref().map(|r| format!(" in region `{r}`")).unwrap_or_default()
                    ))
                })?;
            Ok(Session { storage_url, token })
        }
    }
}

/// The object-store endpoint URL in a Keystone v3 token, for `interface` (and `region`).
fn object_store_endpoint(
    token: &serde_json::Value,
    region: Option<&str>,
    interface: &str,
) -> Option<String> {
    token["token"]["catalog"]
        .as_array()?
        .iter()
        .filter(|service| service["type"] == "object-store")
        .flat_map(|service| service["endpoints"].as_array().into_iter().flatten())
        .find(|e| {
            e["interface"] == interface
                && region.is_none_or(|r| e["region"] == r || e["region_id"] == r)
        })
        .and_then(|e| e["url"].as_str())
        .map(str::to_owned)
}

#[async_trait]
impl ObjectStore for Swift {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let create_only = match opts.mode {
            PutMode::Overwrite => false,
            PutMode::Create => true,
            PutMode::Update(_) => {
                return Err(object_store::Error::NotImplemented {
                    operation: "conditional update".into(),
                    implementer: STORE.into(),
                });
            }
        };
        self.put_object(location.as_ref(), payload.into(), create_only, &[])
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let upload = uuid::Uuid::new_v4().simple().to_string();
        Ok(Box::new(SwiftUpload {
            store: self.clone(),
            location: location.to_string(),
            segments: format!(".segments/{location}/{upload}"),
            parts: Arc::new(Mutex::new(vec![])),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if options.range.is_some() || options.if_match.is_some() || options.if_none_match.is_some()
        {
            return Err(object_store::Error::NotImplemented {
                operation: "ranged or conditional reads".into(),
                implementer: STORE.into(),
            });
        }
        let method = if options.head {
            Method::HEAD
        } else {
            Method::GET
        };
        let r = self
            .send(|s| {
                self.inner
                    .http
                    .request(method.clone(), self.object_url(s, location.as_ref()))
            })
            .await?;
        if !r.status().is_success() {
            return Err(Self::failure(location.as_ref(), r).await);
        }
        let meta = meta(location, &r);
        let stream = r.bytes_stream().map_err(generic).boxed();
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream),
            range: 0..meta.size,
            meta,
            attributes: Default::default(),
            extensions: Default::default(),
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let store = self.clone();
        locations
            .and_then(move |location| {
                let store = store.clone();
                async move {
                    store.delete_object(&location).await?;
                    Ok(location)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let prefix = prefix.map(|p| format!("{p}/")).unwrap_or_default();
        let store = self.clone();
        futures_util::stream::try_unfold(Some(String::new()), move |marker| {
            let (store, prefix) = (store.clone(), prefix.clone());
            async move {
                let Some(marker) = marker else {
                    return Ok::<_, object_store::Error>(None);
                };
                let page = store.list_page(&prefix, &marker, false).await?;
                let next = (page.len() == PAGE)
                    .then(|| page.last().and_then(|e| e.name.clone()))
                    .flatten();
                let objects: Vec<object_store::Result<ObjectMeta>> = page
                    .into_iter()
                    .filter_map(|e| {
                        let name = e.name.clone()?;
                        if name.starts_with(".segments/") {
                            return None;
                        }
                        Some(Ok(e.meta(name)))
                    })
                    .collect();
                Ok(Some((futures_util::stream::iter(objects), next)))
            }
        })
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let prefix = prefix.map(|p| format!("{p}/")).unwrap_or_default();
        let mut result = ListResult {
            common_prefixes: vec![],
            objects: vec![],
            extensions: Default::default(),
        };
        let mut marker = String::new();
        loop {
            let page = self.list_page(&prefix, &marker, true).await?;
            let full = page.len() == PAGE;
            for e in page {
                if let Some(dir) = e.subdir {
                    marker = dir.clone();
                    result
                        .common_prefixes
                        .push(Path::from(dir.trim_end_matches('/')));
                } else if let Some(name) = e.name.clone() {
                    marker = name.clone();
                    result.objects.push(e.meta(name));
                }
            }
            if !full {
                return Ok(result);
            }
        }
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let source = format!(
            "/{}/{}",
            encode(&self.inner.config.container),
            encode(from.as_ref())
        );
        let create_only = matches!(options.mode, CopyMode::Create);
        let r = self
            .send(|s| {
                let req = self
                    .inner
                    .http
                    .put(self.object_url(s, to.as_ref()))
                    .header("X-Copy-From", &source)
                    .header("Content-Length", "0");
                if create_only {
                    req.header("If-None-Match", "*")
                } else {
                    req
                }
            })
            .await?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(Self::failure(to.as_ref(), r).await)
        }
    }
}

/// A large object being written: segments first, then its SLO manifest.
#[derive(Debug)]
struct SwiftUpload {
    store: Swift,
    location: String,
    /// Where this upload's segments go: `.segments/<object>/<upload id>`.
    segments: String,
    /// Each segment, by part number, once stored.
    parts: Arc<Mutex<Vec<Option<Segment>>>>,
}

/// A stored segment of a large object.
#[derive(Debug, Clone)]
struct Segment {
    name: String,
    etag: String,
    size: u64,
}

#[async_trait]
impl MultipartUpload for SwiftUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let index = {
            let mut parts = self.parts.lock().expect("parts lock");
            parts.push(None);
            parts.len() - 1
        };
        let name = format!("{}/{index:08}", self.segments);
        let (store, parts) = (self.store.clone(), self.parts.clone());
        Box::pin(async move {
            let size = data.content_length() as u64;
            let put = store.put_object(&name, data.into(), false, &[]).await?;
            let etag = put.e_tag.unwrap_or_default().trim_matches('"').to_owned();
            parts.lock().expect("parts lock")[index] = Some(Segment { name, etag, size });
            Ok(())
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let parts: Vec<Segment> = self
            .parts
            .lock()
            .expect("parts lock")
            .iter()
            .map(|p| {
                p.clone()
                    .ok_or_else(|| generic("a segment upload did not finish"))
            })
            .collect::<Result<_, _>>()?;
        if parts.is_empty() {
            return self
                .store
                .put_object(&self.location, Bytes::new(), false, &[])
                .await;
        }
        let container = &self.store.inner.config.container;
        let manifest: Vec<serde_json::Value> = parts
            .iter()
            .map(|Segment { name, etag, size }| {
                serde_json::json!({"path": format!("/{container}/{name}"), "etag": etag, "size_bytes": size})
            })
            .collect();
        let body = Bytes::from(serde_json::to_vec(&manifest).expect("serialisable"));
        self.store
            .put_object(
                &self.location,
                body,
                false,
                &[("multipart-manifest", "put")],
            )
            .await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        let names: Vec<String> = self
            .parts
            .lock()
            .expect("parts lock")
            .iter()
            .flatten()
            .map(|segment| segment.name.clone())
            .collect();
        for name in names {
            match self.store.delete_object(&Path::from(name)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_for_urls() {
        for (name, encoded) in [
            ("clusters/main/wal/0001.zst", "clusters/main/wal/0001.zst"),
            ("a b/c#d", "a%20b/c%23d"),
            ("AZaz09-._~/", "AZaz09-._~/"),
            ("?&=+;,:@$", "%3F%26%3D%2B%3B%2C%3A%40%24"),
            ("%2F", "%252F"),
            ("!*'()[]", "%21%2A%27%28%29%5B%5D"),
            ("\"<>\\^`{|}", "%22%3C%3E%5C%5E%60%7B%7C%7D"),
            ("\0\t\n\x7f", "%00%09%0A%7F"),
            ("é/€", "%C3%A9/%E2%82%AC"),
            ("", ""),
        ] {
            assert_eq!(encode(name), encoded, "{name:?}");
        }
    }

    #[test]
    fn encoding_is_the_hand_written_one_it_replaced() {
        let by_hand = |name: &str| {
            name.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        };
        for c in (0..=0x7f_u8).map(char::from).chain(['é', 'ß', '€', '😀']) {
            let name = format!("a{c}/b");
            assert_eq!(encode(&name), by_hand(&name), "{c:?}");
        }
    }

    #[test]
    fn keystone_catalog_gives_the_endpoint_for_the_interface_and_region() {
        let token = serde_json::json!({"token": {"catalog": [
            {"type": "identity", "endpoints": [{"interface": "public", "region": "r1", "url": "https://id"}]},
            {"type": "object-store", "endpoints": [
                {"interface": "internal", "region": "r1", "url": "https://internal/v1/AUTH_p"},
                {"interface": "public", "region": "r1", "url": "https://r1/v1/AUTH_p"},
                {"interface": "public", "region": "r2", "url": "https://r2/v1/AUTH_p"},
            ]},
        ]}});
        let pick = |region, interface| object_store_endpoint(&token, region, interface);
        assert_eq!(
            pick(None, "public").as_deref(),
            Some("https://r1/v1/AUTH_p")
        );
        assert_eq!(
            pick(Some("r2"), "public").as_deref(),
            Some("https://r2/v1/AUTH_p")
        );
        assert_eq!(
            pick(Some("r1"), "internal").as_deref(),
            Some("https://internal/v1/AUTH_p")
        );
        assert_eq!(pick(Some("r3"), "public"), None);
    }

    #[test]
    fn listing_times_are_utc() {
        let t = listing_time("2026-11-27T10:00:01.500000");
        assert_eq!(t.to_rfc3339(), "2026-11-27T10:00:01.500+00:00");
    }

    #[test]
    fn debug_never_shows_the_key() {
        let auth = SwiftAuth::V1 {
            url: "http://swift/auth/v1.0".into(),
            user: "test:tester".into(),
            key: "s3cr3t".into(),
        };
        assert!(!format!("{auth:?}").contains("s3cr3t"));
    }
}
