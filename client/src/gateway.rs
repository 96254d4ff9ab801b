//! The gateway's WAL API over blocking HTTP, with bounded retries.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use walgate_core::api::ErrorBody;
use walgate_core::{ClusterName, WalFileName};

/// How long one command keeps retrying a gateway that does not answer.
const RETRY_FOR: Duration = Duration::from_secs(60);

pub struct Gateway {
    agent: ureq::Agent,
    base: String,
    cluster: ClusterName,
    auth: String,
}

pub enum Pushed {
    Stored,
    AlreadyStored,
}

pub enum Fetched {
    Written,
    NotArchived,
}

/// The outcome of one try: done, failed for good, or worth repeating.
enum Attempt<T> {
    Done(T),
    Fail(anyhow::Error),
    Retry(anyhow::Error),
}

impl Gateway {
    pub fn new(url: &str, cluster: ClusterName, token: String) -> anyhow::Result<Self> {
        if !url.starts_with("http://") {
            bail!(
                "gateway URL `{url}` must start with http:// (put a TLS-terminating proxy in front, or run the client on a trusted network)"
            );
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        Ok(Gateway {
            agent,
            base: url.trim_end_matches('/').to_owned(),
            cluster,
            auth: format!("Bearer {token}"),
        })
    }

    fn wal_url(&self, name: &WalFileName) -> String {
        self.cluster_url(&format!("/wal/{name}"))
    }

    /// Repeats `attempt` with exponential backoff while it asks to, for at most RETRY_FOR.
    fn retrying<T>(&self, mut attempt: impl FnMut() -> Attempt<T>) -> anyhow::Result<T> {
        let start = Instant::now();
        let mut wait = Duration::from_millis(200);
        loop {
            match attempt() {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(e) if start.elapsed() + wait > RETRY_FOR => {
                    return Err(e.context(format!("gave up after {:?}", start.elapsed())));
                }
                Attempt::Retry(e) => {
                    eprintln!("walgate-client: {e:#}; retrying in {wait:?}");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// Uploads one zstd-compressed WAL file; succeeds only on the gateway's durable ack.
    pub fn push_wal(&self, name: &WalFileName, compressed: &[u8]) -> anyhow::Result<Pushed> {
        let url = self.wal_url(name);
        self.retrying(|| {
            let sent = self
                .agent
                .put(&url)
                .header("Authorization", &self.auth)
                .header("Content-Encoding", "zstd")
                .header("Content-Type", "application/octet-stream")
                .send(compressed);
            classify(sent, |status, r| match status {
                201 => Ok(Attempt::Done(Pushed::Stored)),
                200 => Ok(Attempt::Done(Pushed::AlreadyStored)),
                _ => Err(Box::new(r)),
            })
        })
    }

    /// Downloads one WAL file to `dest` (atomically: a temporary file, then a rename).
    pub fn fetch_wal(&self, name: &WalFileName, dest: &Path) -> anyhow::Result<Fetched> {
        let url = self.wal_url(name);
        self.retrying(|| {
            let got = self
                .agent
                .get(&url)
                .header("Authorization", &self.auth)
                .header("Accept-Encoding", "zstd")
                .call();
            classify(got, |status, mut r| match status {
                200 => {
                    let zstd = r
                        .headers()
                        .get("content-encoding")
                        .is_some_and(|v| v == "zstd");
                    let body = r.body_mut().with_config().limit(u64::MAX).reader();
                    Ok(match write_atomically(body, zstd, dest) {
                        Ok(()) => Attempt::Done(Fetched::Written),
                        Err(e) => Attempt::Retry(e),
                    })
                }
                404 => Ok(Attempt::Done(Fetched::NotArchived)),
                _ => Err(Box::new(r)),
            })
        })
    }
}

type Answer = ureq::http::Response<ureq::Body>;

impl Gateway {
    fn cluster_url(&self, rest: &str) -> String {
        format!("{}/v1/clusters/{}{rest}", self.base, self.cluster)
    }

    /// GETs a JSON document under the cluster, retrying while the gateway is unreachable.
    pub fn get_json<T: serde::de::DeserializeOwned>(&self, rest: &str) -> anyhow::Result<T> {
        let url = self.cluster_url(rest);
        self.retrying(|| {
            let got = self
                .agent
                .get(&url)
                .header("Authorization", &self.auth)
                .call();
            classify(got, |status, r| match status {
                200 => Ok(json(r)),
                _ => Err(Box::new(r)),
            })
        })
    }

    /// Streams a base backup (a tar stream, zstd-compressed) to the gateway. Not retried:
    /// a stream cannot be replayed.
    pub fn push_backup(&self, body: &mut dyn Read) -> anyhow::Result<walgate_core::api::Backup> {
        let sent = self
            .agent
            .post(self.cluster_url("/backups"))
            .header("Authorization", &self.auth)
            .header("Content-Encoding", "zstd")
            .header("Content-Type", "application/x-tar")
            .config()
            .timeout_global(None)
            .build()
            .send(ureq::SendBody::from_reader(body));
        match classify(sent, |status, r| match status {
            201 => Ok(json(r)),
            _ => Err(Box::new(r)),
        }) {
            Attempt::Done(b) => Ok(b),
            Attempt::Fail(e) | Attempt::Retry(e) => Err(e),
        }
    }

    /// Opens a backup's stored zstd stream; the caller decodes it.
    pub fn open_backup(&self, id: &str) -> anyhow::Result<Box<dyn Read + Send>> {
        let url = self.cluster_url(&format!("/backups/{id}/archive"));
        self.retrying(|| {
            let got = self
                .agent
                .get(&url)
                .header("Authorization", &self.auth)
                .header("Accept-Encoding", "zstd")
                .config()
                .timeout_global(None)
                .build()
                .call();
            classify(got, |status, r| {
                if status != 200 {
                    return Err(Box::new(r));
                }
                if r.headers()
                    .get("content-encoding")
                    .is_none_or(|v| v != "zstd")
                {
                    let e = anyhow::anyhow!("the gateway did not send the backup as zstd");
                    return Ok(Attempt::Fail(e));
                }
                let body = r.into_body().into_with_config().limit(u64::MAX).reader();
                Ok(Attempt::Done(Box::new(body) as Box<dyn Read + Send>))
            })
        })
    }
}

/// Sorts an answer: what `expected` recognises, else transport errors, 5xx and 429 are
/// worth retrying, and any other status is final.
fn classify<T>(
    sent: Result<Answer, ureq::Error>,
    expected: impl FnOnce(u16, Answer) -> Result<Attempt<T>, Box<Answer>>,
) -> Attempt<T> {
    let r = match sent {
        Ok(r) => r,
        Err(e) => return Attempt::Retry(anyhow::Error::new(e).context("cannot reach the gateway")),
    };
    let status = r.status().as_u16();
    let mut r = match expected(status, r) {
        Ok(attempt) => return attempt,
        Err(r) => *r,
    };
    let e = error(status, r.body_mut());
    if status >= 500 || status == 429 {
        Attempt::Retry(e)
    } else {
        Attempt::Fail(e)
    }
}

/// Reads a JSON answer.
fn json<T: serde::de::DeserializeOwned>(r: Answer) -> Attempt<T> {
    let body = r.into_body().into_with_config().limit(64 << 20).reader();
    match serde_json::from_reader(body) {
        Ok(v) => Attempt::Done(v),
        Err(e) => {
            Attempt::Fail(anyhow::Error::new(e).context("unreadable answer from the gateway"))
        }
    }
}

fn error(status: u16, body: &mut ureq::Body) -> anyhow::Error {
    let text = body.read_to_string().unwrap_or_default();
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(e) => anyhow::anyhow!("gateway answered {status} {}: {}", e.error, e.message),
        Err(_) => anyhow::anyhow!(
            "gateway answered {status}: {}",
            text.chars().take(200).collect::<String>()
        ),
    }
}

fn write_atomically(body: impl Read, zstd: bool, dest: &Path) -> anyhow::Result<()> {
    let tmp = dest.with_extension("walgate-part");
    let result = (|| {
        let mut file =
            std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        let mut body: Box<dyn Read> = if zstd {
            Box::new(zstd::Decoder::new(body)?)
        } else {
            Box::new(body)
        };
        std::io::copy(&mut body, &mut file).context("download")?;
        file.flush()?;
        std::fs::rename(&tmp, dest).with_context(|| format!("rename to {}", dest.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
