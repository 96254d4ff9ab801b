//! The gateway's WAL API over blocking HTTP, with bounded retries.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use walgate_core::api::{ErrorBody, ErrorCode};
use walgate_core::{ClusterName, WalFileName};

use crate::config::Settings;

pub struct Gateway {
    agent: ureq::Agent,
    base: String,
    cluster: ClusterName,
    auth: String,
    retry_for: Duration,
    retries: bool,
    /// The least time one request gets, however little of `retry_for` is left.
    attempt_min: Duration,
    /// How long a backup stream may stall before it is given up.
    stream_stall: Duration,
}

/// How long a backup's stream may move no byte: the gateway's own store requests give up
/// sooner, so past it the connection is dead (a gateway gone without closing it), and a
/// restore or a backup would otherwise wait forever.
const STREAM_STALL: Duration = Duration::from_secs(120);

/// The least time one WAL request gets: even the last try, or the only one, must have
/// time to move a segment over a slow link.
const ATTEMPT_MIN: Duration = Duration::from_secs(10);

pub enum Pushed {
    Stored,
    AlreadyStored,
}

pub enum Fetched {
    Written,
    NotArchived,
}

/// The outcome of one try: done, failed for good, or worth repeating (after at least
/// the wait the gateway asked for with `Retry-After`).
enum Attempt<T> {
    Done(T),
    Fail(anyhow::Error),
    Retry(anyhow::Error, Option<Duration>),
}

impl Gateway {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)));
        if settings.url.starts_with("https://") {
            config = config.tls_config(tls(settings.ca_file.as_deref())?);
        }
        Ok(Gateway {
            agent: config.build().into(),
            base: settings.url.clone(),
            cluster: settings.cluster.clone(),
            auth: format!("Bearer {}", settings.token),
            retry_for: settings.retry_for,
            retries: true,
            attempt_min: ATTEMPT_MIN,
            stream_stall: STREAM_STALL,
        })
    }

    /// The same gateway, trying each request once (for work that may simply be skipped),
    /// for at most the retry time.
    pub fn without_retries(mut self) -> Self {
        self.retries = false;
        self
    }

    /// `request` with the token, bounded to `timeout` from connecting to the body's end.
    fn request<B>(
        &self,
        request: ureq::RequestBuilder<B>,
        timeout: Duration,
    ) -> ureq::RequestBuilder<B> {
        request
            .header("Authorization", &self.auth)
            .config()
            .timeout_global(Some(timeout))
            .build()
    }

    fn wal_url(&self, name: &WalFileName) -> String {
        self.cluster_url(&format!("/wal/{name}"))
    }

    /// Repeats `attempt` with exponential backoff while it asks to, for at most `retry_for`.
    /// Each attempt is given the time left (at least `attempt_min`) and must build its
    /// request with [`Gateway::request`]: a gateway that takes connections and never
    /// answers holds a call no longer than one that refuses them.
    fn retrying<T>(&self, mut attempt: impl FnMut(Duration) -> Attempt<T>) -> anyhow::Result<T> {
        let start = Instant::now();
        let mut wait = Duration::from_millis(200);
        loop {
            let left = self.retry_for.saturating_sub(start.elapsed());
            match attempt(left.max(self.attempt_min)) {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(e, asked) => {
                    let pause = asked.map_or(wait, |a| a.max(wait));
                    if !self.retries || start.elapsed() + pause > self.retry_for {
                        return Err(e.context(format!(
                            "gave up on {} after {:?}",
                            self.base,
                            start.elapsed()
                        )));
                    }
                    eprintln!("walgate-client: {e:#}; retrying in {pause:?}");
                    std::thread::sleep(pause);
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// Uploads one zstd-compressed WAL file of `size` bytes; succeeds only on the
    /// gateway's durable ack, which must name this file and its size (a 2xx from a proxy
    /// or another server is no acknowledgement).
    pub fn push_wal(
        &self,
        name: &WalFileName,
        compressed: &[u8],
        size: u64,
    ) -> anyhow::Result<Pushed> {
        let url = self.wal_url(name);
        self.retrying(|timeout| {
            let sent = self
                .request(self.agent.put(&url), timeout)
                .header("Content-Encoding", "zstd")
                .header("Content-Type", "application/octet-stream")
                .send(compressed);
            classify(sent, |status, r| {
                let pushed = match status {
                    201 => Pushed::Stored,
                    200 => Pushed::AlreadyStored,
                    _ => return Err(Box::new(r)),
                };
                Ok(match json::<walgate_core::api::WalFile>(r) {
                    Attempt::Done(ack) if ack.name == name.to_string() && ack.size == size => {
                        Attempt::Done(pushed)
                    }
                    _ => Attempt::Fail(anyhow::anyhow!(
                        "answered {status} without the gateway's acknowledgement of {name} \
                         ({size} bytes): check WALGATE_URL and any proxy in front"
                    )),
                })
            })
        })
    }

    /// Downloads one WAL file to `dest` (atomically: a temporary file, then a rename), of
    /// `size` bytes when given; `durable` syncs it first, for files kept for later.
    pub fn fetch_wal(
        &self,
        name: &WalFileName,
        dest: &Path,
        size: Option<u64>,
        durable: bool,
    ) -> anyhow::Result<Fetched> {
        let url = self.wal_url(name);
        self.retrying(|timeout| {
            let got = self
                .request(self.agent.get(&url), timeout)
                .header("Accept-Encoding", "zstd")
                .call();
            classify(got, |status, mut r| match status {
                200 => {
                    let zstd = r
                        .headers()
                        .get("content-encoding")
                        .is_some_and(|v| v == "zstd");
                    let body = r.body_mut().with_config().limit(u64::MAX).reader();
                    Ok(match write_wal(body, zstd, dest, size, durable) {
                        Ok(()) => Attempt::Done(Fetched::Written),
                        Err(e) => Attempt::Retry(e, None),
                    })
                }
                // Only the gateway's own "not found" means not archived: a 404 from a
                // proxy or a wrong URL must not end a recovery early.
                404 => Ok(match gateway_not_found(r) {
                    Ok(()) => Attempt::Done(Fetched::NotArchived),
                    Err(e) => Attempt::Fail(e),
                }),
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
        self.get_json_at(&self.cluster_url(rest))
    }

    /// Asks `/healthz` once: is a walgate gateway answering at the URL?
    pub fn health(&self) -> anyhow::Result<()> {
        let url = format!("{}/healthz", self.base);
        let got = self
            .agent
            .get(&url)
            .config()
            .timeout_global(Some(self.attempt_min))
            .build()
            .call();
        match classify(got, |status, r| match status {
            200 => Ok(Attempt::Done(())),
            _ => Err(Box::new(r)),
        }) {
            Attempt::Done(()) => Ok(()),
            Attempt::Fail(e) | Attempt::Retry(e, _) => Err(e),
        }
    }

    /// GETs a JSON document at `path` from the gateway's root (`/v1/tokens/self`).
    pub fn get_root_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.get_json_at(&format!("{}{path}", self.base))
    }

    fn get_json_at<T: serde::de::DeserializeOwned>(&self, url: &str) -> anyhow::Result<T> {
        self.retrying(|timeout| {
            let got = self.request(self.agent.get(url), timeout).call();
            classify(got, |status, r| match status {
                200 => Ok(json(r)),
                _ => Err(Box::new(r)),
            })
        })
    }

    /// POSTs `body` as JSON to `path` from the gateway's root (`/v1/drills/claim`),
    /// retrying while the gateway is unreachable; `None` for `204 No Content`.
    pub fn post_json<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<Option<T>> {
        let url = format!("{}{path}", self.base);
        let body = serde_json::to_vec(body)?;
        self.retrying(|timeout| {
            let sent = self
                .request(self.agent.post(&url), timeout)
                .header("Content-Type", "application/json")
                .send(&body[..]);
            classify(sent, |status, r| match status {
                200..=202 => Ok(match json(r) {
                    Attempt::Done(v) => Attempt::Done(Some(v)),
                    Attempt::Fail(e) => Attempt::Fail(e),
                    Attempt::Retry(e, w) => Attempt::Retry(e, w),
                }),
                204 => Ok(Attempt::Done(None)),
                _ => Err(Box::new(r)),
            })
        })
    }

    /// Streams a base backup (a tar stream, zstd-compressed) to the gateway. Not retried:
    /// a stream cannot be replayed. Only a send that stalls is bounded: the gateway's
    /// answer may take long, as it completes a large upload.
    /// `parent`: the backup an incremental was taken against, which the gateway checks.
    pub fn push_backup(
        &self,
        body: &mut dyn Read,
        parent: Option<&str>,
    ) -> anyhow::Result<walgate_core::api::Backup> {
        let query = parent.map(|p| format!("?parent={p}")).unwrap_or_default();
        let sent = self
            .agent
            .post(self.cluster_url(&format!("/backups{query}")))
            .header("Authorization", &self.auth)
            .header("Content-Encoding", "zstd")
            .header("Content-Type", "application/x-tar")
            // A refusal (busy, a revoked token) then arrives before the body is sent,
            // not as a broken pipe half-way through it.
            .header("Expect", "100-continue")
            .config()
            .timeout_global(None)
            .timeout_per_write(Some(self.stream_stall))
            .build()
            .send(ureq::SendBody::from_reader(body));
        match classify(sent, |status, r| match status {
            201 => Ok(json(r)),
            _ => Err(Box::new(r)),
        }) {
            Attempt::Done(b) => Ok(b),
            Attempt::Fail(e) | Attempt::Retry(e, _) => Err(e),
        }
    }

    /// Writes backup `id`'s `backup_manifest` (`latest`: the newest complete backup's)
    /// to `dest`, for `pg_basebackup --incremental`; returns the backup's id.
    pub fn fetch_manifest(&self, id: &str, dest: &Path) -> anyhow::Result<String> {
        let url = self.cluster_url(&format!("/backups/{id}/manifest"));
        self.retrying(|timeout| {
            let got = self.request(self.agent.get(&url), timeout).call();
            classify(got, |status, r| {
                if status != 200 {
                    return Err(Box::new(r));
                }
                let backup = r
                    .headers()
                    .get("x-walgate-backup")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(id)
                    .to_owned();
                let mut body = r.into_body().into_with_config().limit(u64::MAX).reader();
                let written = std::fs::File::create(dest)
                    .and_then(|mut f| std::io::copy(&mut body, &mut f).and_then(|_| f.sync_all()));
                Ok(match written {
                    Ok(()) => Attempt::Done(backup),
                    Err(e) => Attempt::Retry(
                        anyhow::Error::new(e).context(format!("download {url}")),
                        None,
                    ),
                })
            })
        })
    }

    /// Opens a backup's stored zstd stream; the caller decodes it.
    pub fn open_backup(&self, id: &str) -> anyhow::Result<Box<dyn Read + Send>> {
        let url = self.cluster_url(&format!("/backups/{id}/archive"));
        self.retrying(|timeout| {
            // The stream takes as long as the backup needs: only its start is bounded.
            let got = self
                .agent
                .get(&url)
                .header("Authorization", &self.auth)
                .header("Accept-Encoding", "zstd")
                .config()
                .timeout_recv_response(Some(timeout))
                .timeout_per_read(Some(self.stream_stall))
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

/// Where distributions keep the system's CA bundle, as curl looks for it.
const SYSTEM_CA_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",   // RHEL, Fedora
    "/etc/ssl/ca-bundle.pem",             // SUSE
    "/etc/ssl/cert.pem",                  // BSDs, macOS
];

/// A TLS configuration that trusts the CA certificates in `ca_file` (PEM), or else the
/// system's bundle.
fn tls(ca_file: Option<&Path>) -> anyhow::Result<ureq::tls::TlsConfig> {
    let path = match ca_file {
        Some(p) => p,
        None => SYSTEM_CA_BUNDLES
            .iter()
            .map(Path::new)
            .find(|p| p.exists())
            .context("no CA bundle on this host: install ca-certificates or set WALGATE_CA_FILE")?,
    };
    let pem = std::fs::read(path).with_context(|| format!("read CA file {}", path.display()))?;
    let mut certs = vec![];
    for item in ureq::tls::parse_pem(&pem) {
        if let ureq::tls::PemItem::Certificate(c) =
            item.with_context(|| format!("parse CA file {}", path.display()))?
        {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        bail!("CA file {} holds no PEM certificate", path.display());
    }
    Ok(ureq::tls::TlsConfig::builder()
        .unversioned_rustls_crypto_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
        .build())
}

/// Sorts an answer: what `expected` recognises, else transport errors, 5xx and 429 are
/// worth retrying, and any other status is final.
fn classify<T>(
    sent: Result<Answer, ureq::Error>,
    expected: impl FnOnce(u16, Answer) -> Result<Attempt<T>, Box<Answer>>,
) -> Attempt<T> {
    let r = match sent {
        Ok(r) => r,
        Err(e) => {
            let e = anyhow::Error::new(e).context("cannot reach the gateway");
            return Attempt::Retry(e, None);
        }
    };
    let status = r.status().as_u16();
    let mut r = match expected(status, r) {
        Ok(attempt) => return attempt,
        Err(r) => *r,
    };
    let asked = retry_after(r.headers());
    let e = error(status, r.body_mut());
    if status >= 500 || status == 429 {
        Attempt::Retry(e, asked)
    } else {
        Attempt::Fail(e)
    }
}

/// The wait a `Retry-After` header asks for, in seconds (the form the gateway sends).
fn retry_after(headers: &ureq::http::HeaderMap) -> Option<Duration> {
    let secs = headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
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
    refusal(status, &body.read_to_string().unwrap_or_default())
}

/// What a refusal with `status` and body `text` says, for a person.
fn refusal(status: u16, text: &str) -> anyhow::Error {
    match serde_json::from_str::<ErrorBody>(text) {
        // A code newer than this client is shown as the gateway sent it.
        Ok(e) if e.error == ErrorCode::Unknown => {
            let raw = serde_json::from_str::<serde_json::Value>(text).unwrap_or_default();
            let code = raw["error"].as_str().unwrap_or_default();
            anyhow::anyhow!("gateway answered {status} {code}: {}", e.message)
        }
        Ok(e) => anyhow::anyhow!("gateway answered {status} {}: {}", e.error, e.message),
        Err(_) => anyhow::anyhow!(
            "gateway answered {status}: {}",
            text.chars().take(200).collect::<String>()
        ),
    }
}

/// Checks that a 404 is the gateway's "not_found", not some other server's page.
fn gateway_not_found(mut r: Answer) -> anyhow::Result<()> {
    let text = r.body_mut().read_to_string().unwrap_or_default();
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(e) if e.error == ErrorCode::NotFound => Ok(()),
        _ => bail!(
            "a 404 that is not the gateway's (check WALGATE_URL and any proxy in front): {}",
            text.chars().take(200).collect::<String>()
        ),
    }
}

/// Writes a downloaded WAL file to `dest` (see [`crate::durable`]), decoding zstd; it
/// must have `size` bytes when given.
fn write_wal(
    body: impl Read,
    zstd: bool,
    dest: &Path,
    size: Option<u64>,
    durable: bool,
) -> anyhow::Result<()> {
    crate::durable::write_atomically(dest, durable, |file| {
        let mut body: Box<dyn Read> = if zstd {
            Box::new(zstd::Decoder::new(body)?)
        } else {
            Box::new(body)
        };
        let got = std::io::copy(&mut body, file).context("download")?;
        if let Some(want) = size.filter(|w| *w != got) {
            bail!("downloaded {got} bytes where a segment has {want}");
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    const BUSY: &str =
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

    /// A gateway that sends `first` to the first request after `delay`, then sends
    /// nothing more on any connection, and never closes one.
    fn stalling_gateway(delay: Duration, first: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for (i, conn) in listener.incoming().enumerate() {
                let mut conn = conn.unwrap();
                if i == 0 {
                    let mut head = Vec::new();
                    let mut byte = [0u8];
                    while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
                        head.push(byte[0]);
                    }
                    std::thread::sleep(delay);
                    conn.write_all(first.as_bytes()).unwrap();
                }
                held.push(conn);
            }
        });
        url
    }

    /// A client retrying for `retry_for`, each try given at least 300 ms, of a gateway
    /// that answers a 503 after a second, then stalls.
    fn stalled_client(retry_for: Duration) -> Gateway {
        let mut settings = Settings::for_test(&stalling_gateway(Duration::from_secs(1), BUSY));
        settings.retry_for = retry_for;
        let mut gateway = Gateway::new(&settings).unwrap();
        gateway.attempt_min = Duration::from_millis(300);
        gateway
    }

    /// How long `call` took to fail, and its error.
    fn failing<T>(call: impl FnOnce() -> anyhow::Result<T>) -> (Duration, anyhow::Error) {
        let started = Instant::now();
        let e = call().err().expect("the call fails");
        (started.elapsed(), e)
    }

    /// An upper bound that only tells a call that ends from one that hangs (or waits for
    /// a default bound, such as `STREAM_STALL`, instead of the test's): a busy machine
    /// may delay any of these calls by seconds.
    const HANG_MS: u64 = 30_000;

    fn assert_between(took: Duration, from_ms: u64, to_ms: u64) {
        let range = Duration::from_millis(from_ms)..Duration::from_millis(to_ms);
        assert!(range.contains(&took), "{took:?} not in {range:?}");
    }

    #[test]
    fn a_stalled_gateway_holds_a_call_no_longer_than_its_retry_time() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("RECOVERYXLOG");
        let name: WalFileName = "000000010000000000000001".parse().unwrap();
        let gateway = stalled_client(Duration::from_millis(1500));

        // The retry after the 503 (at 1 s, then a 200 ms pause) stalls too, and is given
        // up: what it is given is checked where no scheduling matters, below.
        let (took, e) = failing(|| gateway.fetch_wal(&name, &dest, None, false));
        assert_between(took, 1400, HANG_MS);
        assert!(format!("{e:#}").contains("gave up"), "{e:#}");
        assert!(!dest.exists());

        // Tried once, a request still gets the retry time.
        let once = gateway.without_retries();
        assert_between(failing(|| once.push_wal(&name, b"", 0)).0, 1400, HANG_MS);
    }

    #[test]
    fn a_retry_gets_what_is_left_of_the_retry_time_and_at_least_the_least_time() {
        let mut settings = Settings::for_test("http://127.0.0.1:9");
        settings.retry_for = Duration::from_secs(600);
        let mut gateway = Gateway::new(&settings).unwrap();
        gateway.attempt_min = Duration::from_millis(300);
        let mut given = Vec::new();
        let e = gateway
            .retrying(|timeout| {
                given.push(timeout);
                if given.len() == 1 {
                    // A first try that takes 100 ms, then asks for a retry (after the
                    // 200 ms pause); the second fails for good.
                    std::thread::sleep(Duration::from_millis(100));
                    Attempt::<()>::Retry(anyhow::anyhow!("busy"), None)
                } else {
                    Attempt::Fail(anyhow::anyhow!("refused"))
                }
            })
            .unwrap_err();
        assert_eq!(e.to_string(), "refused");
        // Each try gets what is left of the 600 s, not 600 s afresh: sleeps last at least
        // as long as asked, so these hold however the test is scheduled.
        assert_eq!(given.len(), 2);
        assert!(given[0] <= Duration::from_secs(600), "{given:?}");
        assert!(given[1] <= Duration::from_millis(599_700), "{given:?}");

        // With no time left, a try still gets the least time of an attempt.
        gateway.retry_for = Duration::ZERO;
        let mut given = Vec::new();
        let _ = gateway.retrying(|timeout| {
            given.push(timeout);
            Attempt::<()>::Retry(anyhow::anyhow!("busy"), None)
        });
        assert_eq!(given, [Duration::from_millis(300)]);
    }

    #[test]
    fn the_last_try_gets_at_least_the_least_time_of_an_attempt() {
        let gateway = stalled_client(Duration::ZERO);
        let name: WalFileName = "000000010000000000000001".parse().unwrap();
        // The first answer is a 503: given up, with no time left to retry in.
        assert!(gateway.push_wal(&name, b"", 0).is_err());
        assert_between(failing(|| gateway.push_wal(&name, b"", 0)).0, 300, HANG_MS);
    }

    #[test]
    fn a_backup_stream_that_stalls_is_given_up() {
        let started =
            "HTTP/1.1 200 OK\r\ncontent-encoding: zstd\r\ncontent-length: 1000000\r\n\r\nthe start";
        let settings = Settings::for_test(&stalling_gateway(Duration::ZERO, started));
        let mut gateway = Gateway::new(&settings).unwrap();
        gateway.stream_stall = Duration::from_millis(300);
        let mut body = gateway.open_backup("latest").unwrap();
        // On a thread: without the bound the read would wait forever.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(failing(|| Ok(body.read_to_end(&mut Vec::new())?)).0);
        });
        let took = rx.recv_timeout(crate::TEST_DEADLINE);
        assert_between(took.expect("the stalled stream is given up"), 250, HANG_MS);
    }

    #[test]
    fn a_backup_upload_the_gateway_stops_reading_is_given_up() {
        let settings = Settings::for_test(&stalling_gateway(Duration::ZERO, ""));
        let mut gateway = Gateway::new(&settings).unwrap();
        gateway.stream_stall = Duration::from_millis(300);
        // More than the socket buffers hold; 100-continue is waited for a second.
        let mut backup = std::io::repeat(7).take(256 << 20);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(failing(|| gateway.push_backup(&mut backup, None)).0);
        });
        let took = rx.recv_timeout(crate::TEST_DEADLINE);
        assert_between(took.expect("the stalled upload is given up"), 250, HANG_MS);
    }

    #[test]
    fn refusals_name_the_gateways_code_known_or_not() {
        let known = r#"{"error":"not_found","message":"no such file"}"#;
        let newer = r#"{"error":"quota_exceeded","message":"over quota"}"#;
        assert_eq!(
            refusal(404, known).to_string(),
            "gateway answered 404 not_found: no such file"
        );
        assert_eq!(
            refusal(429, newer).to_string(),
            "gateway answered 429 quota_exceeded: over quota"
        );
        assert_eq!(
            refusal(502, "<html>").to_string(),
            "gateway answered 502: <html>"
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut headers = ureq::http::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", "60".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(60)));
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(
            retry_after(&headers),
            None,
            "dates fall back to the backoff"
        );
    }
}
