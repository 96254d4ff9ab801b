//! Real object-store servers for the storage tests: moto (S3), Azurite (Azure blob),
//! OpenStack Swift and fake-gcs-server (Google Cloud Storage), installed by
//! `tests/emulators/install` into `$WALGATE_EMULATORS` (default
//! `/var/cache/walgate-ci/emulators`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::{free_port, run};
use crate::wait::wait_until;

/// Where the emulators are installed.
pub fn emulators_dir() -> PathBuf {
    std::env::var_os("WALGATE_EMULATORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/cache/walgate-ci/emulators".into())
}

/// An installed file or directory under [`emulators_dir`]; panics with the fix if missing.
pub fn installed(relative: &str) -> PathBuf {
    let path = emulators_dir().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run tests/emulators/install (or set WALGATE_EMULATORS)",
        path.display()
    );
    path
}

fn wait_listening(port: u16, child: &mut Child, what: &str) {
    wait_until(
        Duration::from_secs(60),
        &format!("{what} to listen on {port}"),
        || {
            let listening = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if !listening && let Ok(Some(status)) = child.try_wait() {
                panic!("{what} exited at start: {status}");
            }
            listening
        },
    );
}

/// Runs a Python snippet in the emulators' virtualenv (boto3 and the Azure SDK are
/// there); returns its output lines.
pub fn python(code: &str) -> Vec<String> {
    let out =
        run(Command::new(installed("venv/bin/python")).args(["-c", code])).expect("python helper");
    out.lines().map(str::to_owned).collect()
}

/// Runs the Python snippet `code(path)` with a temporary file holding `data`; returns
/// what the file holds afterwards (objects go in and out of the SDKs through it).
fn through_file(data: &[u8], code: impl FnOnce(&str) -> String) -> Vec<u8> {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), data).expect("write temp file");
    python(&code(&file.path().display().to_string()));
    std::fs::read(file.path()).expect("read temp file")
}

/// A moto S3 server on a free port, killed on drop. Its data lives in memory.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Self {
        let port = free_port();
        let mut child = Command::new(installed("venv/bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        wait_listening(port, &mut child, "moto_server");
        Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    fn client(&self) -> String {
        format!(
            "import boto3; s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='test', aws_secret_access_key='test')",
            self.endpoint
        )
    }

    pub fn create_bucket(&self, bucket: &str) {
        python(&format!(
            "{}; s3.create_bucket(Bucket='{bucket}')",
            self.client()
        ));
    }

    /// Creates `bucket` with Object Lock enabled and, with `default`, a default
    /// retention of `(mode, days)`, e.g. `("GOVERNANCE", 1)`.
    pub fn create_locked_bucket(&self, bucket: &str, default: Option<(&str, u32)>) {
        let mut code = format!(
            "{}; s3.create_bucket(Bucket='{bucket}', ObjectLockEnabledForBucket=True)",
            self.client()
        );
        if let Some((mode, days)) = default {
            code += &format!(
                "; s3.put_object_lock_configuration(Bucket='{bucket}', ObjectLockConfiguration=\
                 {{'ObjectLockEnabled': 'Enabled', 'Rule': {{'DefaultRetention': \
                 {{'Mode': '{mode}', 'Days': {days}}}}}}})"
            );
        }
        python(&code);
    }

    /// The lock on an object's current version: its mode and retain-until date as
    /// `MODE UNTIL`, or `none`.
    pub fn retention(&self, bucket: &str, key: &str) -> String {
        python(&format!(
            "{}; h = s3.head_object(Bucket='{bucket}', Key='{key}'); \
             print(h.get('ObjectLockMode', 'none'), h.get('ObjectLockRetainUntilDate', ''))",
            self.client()
        ))
        .join("\n")
    }

    /// Every version and delete marker under `prefix`, as `key version-id` and
    /// `key version-id delete-marker` lines, sorted: what a versioned bucket holds,
    /// hidden or not.
    pub fn versions(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut lines = python(&format!(
            "{}\nr = s3.list_object_versions(Bucket='{bucket}', Prefix='{prefix}')\n\
             [print(v['Key'], v['VersionId']) for v in r.get('Versions', [])]\n\
             [print(m['Key'], m['VersionId'], 'delete-marker') for m in r.get('DeleteMarkers', [])]",
            self.client()
        ));
        lines.sort();
        lines
    }

    /// The stored bytes of one object.
    pub fn read(&self, bucket: &str, key: &str) -> Vec<u8> {
        through_file(&[], |f| {
            format!(
                "{}; s3.download_file('{bucket}', '{key}', '{f}')",
                self.client()
            )
        })
    }

    /// Replaces one object's bytes behind the gateway's back.
    pub fn write(&self, bucket: &str, key: &str, data: &[u8]) {
        through_file(data, |f| {
            format!(
                "{}; s3.upload_file('{f}', '{bucket}', '{key}')",
                self.client()
            )
        });
    }

    /// The keys under `prefix` in `bucket`, sorted.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        python(&format!(
            "{}\nfor page in s3.get_paginator('list_objects_v2').paginate(Bucket='{bucket}', Prefix='{prefix}'):\n    [print(o['Key']) for o in page.get('Contents', [])]",
            self.client()
        ))
    }

    /// A `[targets.NAME]` table for a bucket and prefix on this server.
    pub fn target(&self, name: &str, bucket: &str, prefix: &str) -> String {
        format!(
            "[targets.{name}]\nurl = \"s3://{bucket}/{prefix}\"\naws_endpoint = \"{}\"\n\
             aws_region = \"us-east-1\"\naws_allow_http = true\n\
             aws_access_key_id = \"test\"\naws_secret_access_key = \"test\"\n",
            self.endpoint
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Azurite's well-known development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// An Azurite blob server on a free port, killed on drop.
pub struct Azurite {
    child: Child,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl Azurite {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("azurite dir");
        let port = free_port();
        let mut child = Command::new(installed("npm/node_modules/.bin/azurite-blob"))
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir.path())
            .args(["--disableTelemetry", "--silent", "--skipApiVersionCheck"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start azurite-blob");
        wait_listening(port, &mut child, "azurite-blob");
        Azurite {
            child,
            endpoint: format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"),
            _dir: dir,
        }
    }

    fn client(&self) -> String {
        format!(
            "from azure.storage.blob import BlobServiceClient; \
             az = BlobServiceClient.from_connection_string('DefaultEndpointsProtocol=http;\
             AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={}')",
            self.endpoint
        )
    }

    pub fn create_container(&self, container: &str) {
        python(&format!(
            "{}; az.create_container('{container}')",
            self.client()
        ));
    }

    /// The stored bytes of one blob.
    pub fn read(&self, container: &str, key: &str) -> Vec<u8> {
        through_file(&[], |f| {
            format!(
                "{}; open('{f}', 'wb').write(az.get_blob_client('{container}', '{key}').download_blob().readall())",
                self.client()
            )
        })
    }

    /// Replaces one blob's bytes behind the gateway's back.
    pub fn write(&self, container: &str, key: &str, data: &[u8]) {
        through_file(data, |f| {
            format!(
                "{}; az.get_blob_client('{container}', '{key}').upload_blob(open('{f}', 'rb').read(), overwrite=True)",
                self.client()
            )
        });
    }

    /// The blob names under `prefix` in `container`, sorted.
    pub fn keys(&self, container: &str, prefix: &str) -> Vec<String> {
        python(&format!(
            "{}\nfor b in az.get_container_client('{container}').list_blobs(name_starts_with='{prefix}'): print(b.name)",
            self.client()
        ))
    }

    /// A `[targets.NAME]` table for a container and prefix, signed with `key`.
    pub fn target_with_key(&self, name: &str, container: &str, prefix: &str, key: &str) -> String {
        format!(
            "[targets.{name}]\nurl = \"az://{container}/{prefix}\"\n\
             azure_storage_account_name = \"{AZURITE_ACCOUNT}\"\n\
             azure_storage_account_key = \"{key}\"\n\
             azure_storage_endpoint = \"{}\"\nazure_allow_http = true\n",
            self.endpoint
        )
    }

    pub fn target(&self, name: &str, container: &str, prefix: &str) -> String {
        self.target_with_key(name, container, prefix, AZURITE_KEY)
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// fake-gcs-server, in memory, behind `tests/emulators/gcs-xml-writes` (which gives it
/// the XML-API writes the gateway's GCS client sends); both killed on drop. The gateway
/// reaches it through a service-account file that names its URL and turns OAuth off.
pub struct FakeGcs {
    server: Child,
    writes: Child,
    /// The server's own URL (JSON API), for looking behind the gateway's back.
    server_url: String,
    dir: tempfile::TempDir,
}

impl FakeGcs {
    pub fn start() -> Self {
        let server_port = free_port();
        let mut server = Command::new(installed("fake-gcs-server"))
            .args([
                "-scheme",
                "http",
                "-backend",
                "memory",
                "-host",
                "127.0.0.1",
            ])
            .args([
                "-port",
                &server_port.to_string(),
                "-public-host",
                "127.0.0.1",
            ])
            .args(["-log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fake-gcs-server");
        wait_listening(server_port, &mut server, "fake-gcs-server");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("emulators/gcs-xml-writes");
        // It picks its own port and says which: no other test can take it first.
        let mut writes = Command::new(installed("venv/bin/python"))
            .arg(script)
            .args(["0".to_owned(), server_port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gcs-xml-writes");
        let mut line = String::new();
        let stdout = writes.stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("read gcs-xml-writes");
        let port: u16 = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("gcs-xml-writes did not start: {line:?}"));
        let dir = tempfile::tempdir().expect("service account dir");
        let account = serde_json::json!({
            "gcs_base_url": format!("http://127.0.0.1:{port}"),
            "disable_oauth": true,
            "client_email": "",
            "private_key": "",
            "private_key_id": "",
        });
        std::fs::write(dir.path().join("account.json"), account.to_string())
            .expect("write service account");
        FakeGcs {
            server,
            writes,
            server_url: format!("http://127.0.0.1:{server_port}"),
            dir,
        }
    }

    pub fn create_bucket(&self, bucket: &str) {
        crate::agent()
            .post(format!("{}/storage/v1/b", self.server_url))
            .header("Content-Type", "application/json")
            .send(serde_json::json!({ "name": bucket }).to_string())
            .expect("create a GCS bucket");
    }

    /// `key` as one URL path segment or query value.
    fn escaped(key: &str) -> String {
        key.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    fn object_url(&self, bucket: &str, key: &str) -> String {
        let key = Self::escaped(key);
        format!("{}/storage/v1/b/{bucket}/o/{key}", self.server_url)
    }

    pub fn read(&self, bucket: &str, key: &str) -> Vec<u8> {
        let url = format!("{}?alt=media", self.object_url(bucket, key));
        let response = crate::agent().get(url).call().expect("read a GCS object");
        crate::body_bytes(response)
    }

    pub fn write(&self, bucket: &str, key: &str, data: &[u8]) {
        crate::agent()
            .post(format!(
                "{}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={}",
                self.server_url,
                Self::escaped(key)
            ))
            .header("Content-Type", "application/octet-stream")
            .send(data)
            .expect("write a GCS object");
    }

    /// The keys under `prefix` in `bucket`, sorted.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let url = format!(
            "{}/storage/v1/b/{bucket}/o?prefix={}",
            self.server_url,
            Self::escaped(prefix)
        );
        let listed: serde_json::Value = serde_json::from_slice(&crate::body_bytes(
            crate::agent().get(url).call().expect("list a GCS bucket"),
        ))
        .expect("a JSON listing");
        let mut keys: Vec<String> = listed["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| o["name"].as_str().expect("a name").to_owned())
            .collect();
        keys.sort();
        keys
    }

    /// A `[targets.NAME]` table for a bucket and prefix on this server.
    pub fn target(&self, name: &str, bucket: &str, prefix: &str) -> String {
        format!(
            "[targets.{name}]\nurl = \"gs://{bucket}/{prefix}\"\ngoogle_service_account = \"{}\"\n",
            self.dir.path().join("account.json").display()
        )
    }
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        for child in [&mut self.writes, &mut self.server] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A single-node OpenStack Swift (`tests/emulators/swift-aio`: TempAuth user
/// `test:tester`/`testing`, s3api with the same credentials), stopped on drop.
pub struct SwiftAio {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl SwiftAio {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Started with extra environment, e.g. `SWIFT_AIO_TOKEN_LIFE`.
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let dir = tempfile::tempdir().expect("swift dir");
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("emulators/swift-aio");
        let mut child = Command::new(script)
            .arg(dir.path())
            .arg(port.to_string())
            .envs(env.iter().copied())
            .env("WALGATE_EMULATORS", emulators_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start swift-aio");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read swift-aio");
        if line.trim() != "ready" {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut err);
            panic!("swift-aio did not start: {err}");
        }
        let aio = SwiftAio {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        aio.request("PUT", "walgate", vec![]);
        aio
    }

    /// A TempAuth token and the account's storage URL.
    fn session(&self) -> (String, String) {
        let r = crate::agent()
            .get(format!("{}/auth/v1.0", self.url))
            .header("X-Auth-User", "test:tester")
            .header("X-Auth-Key", "testing")
            .call()
            .expect("swift auth");
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .expect("auth header")
                .to_owned()
        };
        (header("x-auth-token"), header("x-storage-url"))
    }

    /// Waits until every token Swift issued so far has expired (started with a short
    /// `SWIFT_AIO_TOKEN_LIFE`): one asked for now, which lives at least as long, is
    /// refused.
    pub fn wait_for_token_expiry(&self) {
        let (token, storage) = self.session();
        wait_until(Duration::from_secs(60), "a Swift token to expire", || {
            let r = crate::agent()
                .head(&storage)
                .header("X-Auth-Token", &token)
                .call()
                .expect("swift request");
            r.status() == 401
        });
    }

    /// A request to `<storage url>/<path>` with a token; its status and body.
    fn request(&self, method: &str, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        let (token, storage) = self.session();
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{storage}/{path}"))
            .header("X-Auth-Token", token)
            .body(body)
            .expect("request");
        let r = crate::agent().run(req).expect("swift request");
        let status = r.status().as_u16();
        (status, crate::body_bytes(r))
    }

    /// `[targets.NAME]` for the native API (TempAuth v1), container `walgate`, prefix `p`.
    pub fn target(&self, name: &str) -> String {
        format!(
            "[targets.{name}]\nurl = \"swift://walgate/p\"\nswift_auth_url = \"{}/auth/v1.0\"\n\
             swift_user = \"test:tester\"\nswift_key = \"testing\"\n",
            self.url
        )
    }

    /// `[targets.NAME]` for the same account through Swift's S3 API (bucket `s3bucket`).
    pub fn s3_target(&self, name: &str) -> String {
        self.request("PUT", "s3bucket", vec![]);
        format!(
            "[targets.{name}]\nurl = \"s3://s3bucket/p\"\naws_endpoint = \"{}\"\n\
             aws_region = \"us-east-1\"\naws_allow_http = true\n\
             aws_access_key_id = \"test:tester\"\naws_secret_access_key = \"testing\"\n",
            self.url
        )
    }

    pub fn read(&self, container: &str, key: &str) -> Vec<u8> {
        let (status, body) = self.request("GET", &format!("{container}/{key}"), vec![]);
        assert_eq!(status, 200, "GET {key}");
        body
    }

    pub fn write(&self, container: &str, key: &str, data: &[u8]) {
        let (status, _) = self.request("PUT", &format!("{container}/{key}"), data.to_vec());
        assert_eq!(status, 201, "PUT {key}");
    }

    /// Every object name in `container` under `prefix` (segments included), sorted.
    pub fn keys(&self, container: &str, prefix: &str) -> Vec<String> {
        let (status, body) = self.request("GET", &format!("{container}?prefix={prefix}"), vec![]);
        assert!(status == 200 || status == 204, "list {container}: {status}");
        String::from_utf8(body)
            .expect("names")
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for SwiftAio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a gateway config file with these target tables and returns its path.
pub fn write_config(dir: &Path, default_target: &str, tables: &[String]) -> PathBuf {
    let path = dir.join("walgate.toml");
    let text = format!("default_target = \"{default_target}\"\n{}", tables.concat());
    std::fs::write(&path, text).expect("write config");
    path
}

/// A proxy in front of a store: the tests' `delay-proxy`, so a test can make the store
/// hang (pause), vanish (kill) and come back on the same port, or their `fault-proxy`,
/// so it can make the store refuse some deletions.
pub struct Proxy {
    child: Option<Child>,
    exe: PathBuf,
    upstream: String,
    pub port: u16,
    /// The proxy's third argument: its delay, or its faults file.
    setting: String,
}

impl Proxy {
    /// `exe` is the `delay-proxy` binary (`env!("CARGO_BIN_EXE_delay-proxy")`); each
    /// byte is held `delay_ms` each way.
    pub fn start(exe: &Path, upstream: &str, delay_ms: u32) -> Self {
        Self::spawn(exe, upstream, delay_ms.to_string())
    }

    /// `exe` is the `fault-proxy` binary: deletions of objects whose key contains a
    /// line of the file at `faults` are refused.
    pub fn faulty(exe: &Path, upstream: &str, faults: &Path) -> Self {
        Self::spawn(exe, upstream, faults.display().to_string())
    }

    fn spawn(exe: &Path, upstream: &str, setting: String) -> Self {
        let mut p = Proxy {
            child: None,
            exe: exe.to_owned(),
            upstream: upstream.trim_start_matches("http://").to_owned(),
            port: free_port(),
            setting,
        };
        p.restart();
        p
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// (Re)starts it on its port.
    pub fn restart(&mut self) {
        self.kill();
        let mut child = Command::new(&self.exe)
            .args([
                &format!("127.0.0.1:{}", self.port),
                &self.upstream,
                &self.setting,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the proxy");
        wait_listening(self.port, &mut child, "proxy");
        self.child = Some(child);
    }

    /// Stops it: connections are refused and those open are reset.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes it (SIGSTOP): requests hang as on a stalled network.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        run(Command::new("kill").args([sig, &pid])).expect("signal the proxy");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.resume();
        }
        self.kill();
    }
}

/// One storage target under test, its objects readable and writable behind the
/// gateway's back (to look at what is stored, and to damage it).
pub enum Bucket {
    Local(PathBuf),
    S3(Moto),
    Azure(Azurite),
    Swift(SwiftAio),
    /// The same Swift through its S3 API.
    SwiftS3(SwiftAio),
    Gcs(FakeGcs),
}

impl Bucket {
    /// A fresh, empty bucket of each kind: a local directory, moto, Azurite.
    pub fn local(dir: &Path) -> Self {
        Bucket::Local(dir.join("objects"))
    }

    pub fn s3() -> Self {
        let moto = Moto::start();
        moto.create_bucket("walgate");
        Bucket::S3(moto)
    }

    pub fn swift() -> Self {
        Bucket::Swift(SwiftAio::start())
    }

    pub fn swift_s3() -> Self {
        Bucket::SwiftS3(SwiftAio::start())
    }

    pub fn gcs() -> Self {
        let gcs = FakeGcs::start();
        gcs.create_bucket("walgate");
        Bucket::Gcs(gcs)
    }

    pub fn azure() -> Self {
        let azurite = Azurite::start();
        azurite.create_container("walgate");
        Bucket::Azure(azurite)
    }

    /// The `[targets.NAME]` table, with `extra` option lines; objects go under `p/`
    /// (the local directory has no prefix).
    pub fn target(&self, name: &str, extra: &str) -> String {
        let table = match self {
            Bucket::Local(dir) => format!("[targets.{name}]\nurl = \"file://{}\"\n", dir.display()),
            Bucket::S3(moto) => moto.target(name, "walgate", "p"),
            Bucket::Azure(azurite) => azurite.target(name, "walgate", "p"),
            Bucket::Swift(swift) => swift.target(name),
            Bucket::SwiftS3(swift) => swift.s3_target(name),
            Bucket::Gcs(gcs) => gcs.target(name, "walgate", "p"),
        };
        table + extra
    }

    fn path(&self, key: &str) -> String {
        match self {
            Bucket::Local(_) => key.to_owned(),
            _ => format!("p/{key}"),
        }
    }

    /// The stored bytes of `key` (`clusters/…`).
    pub fn read(&self, key: &str) -> Vec<u8> {
        match self {
            Bucket::Local(dir) => std::fs::read(dir.join(key)).expect("read object"),
            Bucket::S3(moto) => moto.read("walgate", &self.path(key)),
            Bucket::Azure(azurite) => azurite.read("walgate", &self.path(key)),
            Bucket::Swift(swift) => swift.read("walgate", &self.path(key)),
            Bucket::SwiftS3(swift) => swift.read("s3bucket", &self.path(key)),
            Bucket::Gcs(gcs) => gcs.read("walgate", &self.path(key)),
        }
    }

    /// The keys stored under `prefix` (`clusters/…`), without the target's prefix.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let strip = |keys: Vec<String>| {
            keys.into_iter()
                .map(|k| k.trim_start_matches("p/").to_owned())
                .collect()
        };
        match self {
            Bucket::Local(dir) => {
                let mut keys = vec![];
                let mut stack = vec![dir.join(prefix)];
                while let Some(d) = stack.pop() {
                    for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                        if e.path().is_dir() {
                            stack.push(e.path());
                        } else if let Ok(rel) = e.path().strip_prefix(dir) {
                            keys.push(rel.display().to_string());
                        }
                    }
                }
                keys.sort();
                keys
            }
            Bucket::S3(moto) => strip(moto.keys("walgate", &self.path(prefix))),
            Bucket::Azure(azurite) => strip(azurite.keys("walgate", &self.path(prefix))),
            Bucket::Swift(swift) => strip(swift.keys("walgate", &self.path(prefix))),
            Bucket::SwiftS3(swift) => strip(swift.keys("s3bucket", &self.path(prefix))),
            Bucket::Gcs(gcs) => strip(gcs.keys("walgate", &self.path(prefix))),
        }
    }

    pub fn write(&self, key: &str, data: &[u8]) {
        match self {
            Bucket::Local(dir) => std::fs::write(dir.join(key), data).expect("write object"),
            Bucket::S3(moto) => moto.write("walgate", &self.path(key), data),
            Bucket::Azure(azurite) => azurite.write("walgate", &self.path(key), data),
            Bucket::Swift(swift) => swift.write("walgate", &self.path(key), data),
            Bucket::SwiftS3(swift) => swift.write("s3bucket", &self.path(key), data),
            Bucket::Gcs(gcs) => gcs.write("walgate", &self.path(key), data),
        }
    }
}
