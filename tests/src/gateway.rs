//! `walgate serve` processes built from this workspace, and the HTTP agents that talk to
//! them: a gateway starts on a free port, is polled until ready, and is killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::run;
use crate::wait::poll_until;

/// The path of one of the workspace's binaries, building them once per test process
/// (so `cargo test` alone is enough), or from `$WALGATE_BIN_DIR`.
pub fn bin(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Ok(dir) = std::env::var("WALGATE_BIN_DIR") {
            return PathBuf::from(dir);
        }
        // The test executable lives in <target>/<profile>/deps/.
        let exe = std::env::current_exe().expect("current exe");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target dir")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        // The whole workspace, as `cargo test --workspace` builds it: the same feature
        // set, so neither build undoes the other's (`-p walgate -p walgate-client` alone
        // resolves ureq's features differently and rebuilt it and the client every run).
        cmd.args(["build", "--quiet", "--workspace", "--bins"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
        // Without what cargo set for this test process: ring's build script reruns
        // when CARGO_MANIFEST_DIR changes, so inheriting it rebuilt ring, rustls and
        // both binaries here, and again at the next `cargo test` (90 s each way).
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
            ]
            .iter()
            .any(|p| key.starts_with(p))
                || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&&*key)
            {
                cmd.env_remove(&*key);
            }
        }
        run(&mut cmd).expect("build the walgate binaries");
        profile_dir
    })
    .join(name)
}

/// A `walgate serve` process on a free port, killed on drop.
pub struct Gateway {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub data_dir: PathBuf,
    /// Flags passed to every `walgate` command (catalog URL and the like).
    pub args: Vec<String>,
    /// Flags for `walgate serve` only.
    serve_args: Vec<String>,
    /// The CA that signed the gateway's certificate, when it serves HTTPS.
    pub ca_file: Option<PathBuf>,
    stderr_log: PathBuf,
}

impl Gateway {
    /// Starts a gateway on `data_dir` with extra state flags, and waits until `/readyz`.
    pub fn start(data_dir: &Path, args: &[&str]) -> Self {
        Self::start_serving(data_dir, args, &[])
    }

    /// Starts a gateway with `serve_args` for `walgate serve` alone (drain and shutdown
    /// timings and the like).
    pub fn start_serving(data_dir: &Path, args: &[&str], serve_args: &[&str]) -> Self {
        let mut g = Gateway {
            child: None,
            url: String::new(),
            data_dir: data_dir.to_owned(),
            args: args.iter().map(|s| s.to_string()).collect(),
            serve_args: serve_args.iter().map(|s| s.to_string()).collect(),
            ca_file: None,
            stderr_log: data_dir.with_extension("log"),
        };
        g.restart();
        g
    }

    /// Starts a gateway serving HTTPS with `cert` and `key`, which `ca` signed.
    pub fn start_https(data_dir: &Path, cert: &Path, key: &Path, ca: &Path) -> Self {
        let mut g = Gateway {
            child: None,
            url: String::new(),
            data_dir: data_dir.to_owned(),
            args: vec![],
            serve_args: vec![
                "--tls-cert".into(),
                cert.display().to_string(),
                "--tls-key".into(),
                key.display().to_string(),
            ],
            ca_file: Some(ca.to_owned()),
            stderr_log: data_dir.with_extension("log"),
        };
        g.restart();
        g
    }

    /// (Re)starts the process, on the port it had if it ran before (PostgreSQL's
    /// commands hold the URL).
    pub fn restart(&mut self) {
        self.kill();
        let listen = match self.url.split_once("://") {
            Some((_, addr)) => addr.to_owned(),
            None => "127.0.0.1:0".to_owned(),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_log)
            .expect("gateway log");
        let mut child = Command::new(bin("walgate"))
            .args(["serve", "--listen", &listen, "--data-dir"])
            .arg(&self.data_dir)
            .args(&self.args)
            .args(&self.serve_args)
            .env("WALGATE_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn walgate serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read stdout");
        let url = line
            .trim()
            .strip_prefix("walgate listening on ")
            .unwrap_or_else(|| panic!("gateway did not start: {line:?}\n{}", self.log()));
        self.url = url.to_owned();
        self.child = Some(child);
        let ready = poll_until(Duration::from_secs(60), || {
            self.get("/readyz", None).status() == 200
        });
        assert!(ready, "gateway not ready within 60 s:\n{}", self.log());
    }

    /// Sends SIGTERM, as systemd or Kubernetes would, and waits up to `within` for the
    /// process to exit; returns its status, or `None` if it is still running (then
    /// killed).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        run(Command::new("kill").args(["-TERM", &child.id().to_string()])).expect("kill -TERM");
        let mut status = None;
        poll_until(within, || {
            status = child.try_wait().expect("wait for the gateway");
            status.is_some()
        });
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        status
    }

    /// Kills the process (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Issues a token with `walgate token issue`, as an operator would.
    pub fn token(&self, cluster: &str, role: &str) -> String {
        self.token_with(&["--cluster", cluster, "--role", role])
    }

    pub fn token_with(&self, flags: &[&str]) -> String {
        run(self.command(&["token", "issue"]).args(flags))
            .expect("token issue")
            .trim()
            .to_owned()
    }

    /// A `walgate` command with this gateway's state flags.
    pub fn command(&self, sub: &[&str]) -> Command {
        let mut c = Command::new(bin("walgate"));
        c.args(sub)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args);
        c
    }

    /// The process id, for signals.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A dashboard page's HTML, signed in with `token` as the session cookie.
    pub fn page(&self, path: &str, token: &str) -> String {
        agent_trusting(self.ca_file.as_deref())
            .get(format!("{}{path}", self.url))
            .header("Cookie", format!("walgate_session={token}"))
            .call()
            .expect("a dashboard page")
            .into_body()
            .read_to_string()
            .expect("HTML")
    }

    /// Runs retention on `cluster` now (an admin `token`); the run's answer.
    pub fn run_retention(&self, cluster: &str, token: &str) -> serde_json::Value {
        let path = format!("/v1/clusters/{cluster}/retention/run?confirm=true");
        let (status, ran) = self.send("POST", &path, token, vec![]);
        assert_eq!(status, 200, "{ran}");
        ran
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> ureq::http::Response<ureq::Body> {
        let mut req = agent_trusting(self.ca_file.as_deref()).get(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        req.call().expect("GET")
    }
}

impl Gateway {
    /// Every operation of the OpenAPI document the gateway serves, as `METHOD /path`.
    pub fn operations(&self) -> Vec<String> {
        let spec: serde_json::Value = agent_trusting(self.ca_file.as_deref())
            .get(format!("{}/openapi.json", self.url))
            .call()
            .expect("GET /openapi.json")
            .body_mut()
            .read_json()
            .expect("the document is JSON");
        let mut ops: Vec<String> = spec["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                let methods = item.as_object().expect("a path item").keys();
                methods.map(move |m| format!("{} {path}", m.to_uppercase()))
            })
            .collect();
        ops.sort();
        ops
    }

    /// Starts a gateway with `config` as its config file, its data under `dir/data`.
    pub fn with_config(dir: &Path, config: &Path) -> Self {
        let config = config.to_str().expect("a UTF-8 path");
        Self::start(&dir.join("data"), &["--config", config])
    }

    /// Sends `body` (JSON when it parses as JSON, bytes otherwise) and returns the status
    /// and the JSON answer (`null` when empty or not JSON).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Vec<u8>,
    ) -> (u16, serde_json::Value) {
        let json = serde_json::from_slice::<serde_json::Value>(&body).is_ok();
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("Authorization", format!("Bearer {token}"))
            .header(
                "Content-Type",
                if json {
                    "application/json"
                } else {
                    "application/octet-stream"
                },
            )
            .body(body)
            .expect("request");
        let response = agent_trusting(self.ca_file.as_deref())
            .run(req)
            .expect("send");
        let status = response.status().as_u16();
        let answer = serde_json::from_slice(&body_bytes(response)).unwrap_or_default();
        (status, answer)
    }
}

impl Gateway {
    /// Every object in the local store (`<data>/objects`) with its size and modification
    /// time, sorted: equal lists mean nothing was stored, replaced or removed.
    pub fn objects(&self) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64, std::time::SystemTime)>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let meta = entry.metadata().expect("stat an object");
                if meta.is_dir() {
                    walk(&entry.path(), out);
                } else {
                    out.push((entry.path(), meta.len(), meta.modified().expect("mtime")));
                }
            }
        }
        let mut out = vec![];
        walk(&self.data_dir.join("objects"), &mut out);
        out.sort();
        out
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP agent that returns 4xx and 5xx answers instead of failing on them.
pub fn agent() -> ureq::Agent {
    agent_trusting(None)
}

/// [`agent`], trusting only the CA in `ca_file` for HTTPS when given.
pub fn agent_trusting(ca_file: Option<&Path>) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder().http_status_as_error(false);
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).expect("read CA file");
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item.expect("PEM") {
                ureq::tls::PemItem::Certificate(c) => Some(c),
                _ => None,
            })
            .collect();
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                .build(),
        );
    }
    config.build().into()
}

/// The whole body of a response, however large.
pub fn body_bytes(response: ureq::http::Response<ureq::Body>) -> Vec<u8> {
    response
        .into_body()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .expect("read body")
}

/// A temporary directory for a gateway's state.
pub fn gateway_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("walgate-gw-")
        .tempdir()
        .expect("temporary directory")
}

/// `walgate serve` on `config`, expected to refuse to start: its stderr.
pub fn refused_start(config: &Path) -> String {
    let out = Command::new(bin("walgate"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(config.with_file_name("data"))
        .output()
        .expect("run walgate serve");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "started anyway:\n{stderr}");
    stderr
}
