//! End-to-end harness: throwaway PostgreSQL clusters and walgate gateways, driven the way
//! an operator would drive them (real `initdb`, `pg_ctl`, `curl` and the real binaries).
//!
//! PostgreSQL refuses to run as root, so when the tests run as root every PostgreSQL
//! command runs as the `postgres` user (`runuser`) in a directory it owns.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub mod emulators;

/// The directory of the PostgreSQL server binaries: `$PG_BIN`, or the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout).
pub fn pg_bin() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Ok(dir) = std::env::var("PG_BIN") {
            return PathBuf::from(dir);
        }
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
            .filter(|(_, p)| p.join("initdb").exists())
            .collect();
        found.sort();
        found.pop().map(|(_, p)| p).expect(
            "no PostgreSQL server binaries: install postgresql-15 (apt-get install postgresql-15) or set PG_BIN",
        )
    })
    .clone()
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A command run as the owner of PostgreSQL's files.
fn as_pg_owner(program: impl AsRef<std::ffi::OsStr>) -> Command {
    if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Runs a command to completion; fails with its output when it fails.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed with {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A temporary directory the PostgreSQL owner can write to.
pub fn pg_owned_tempdir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create temp dir");
    if running_as_root() {
        run(Command::new("chown").arg("postgres:").arg(dir.path())).expect("chown temp dir");
    }
    dir
}

/// Writes a file readable by the PostgreSQL owner (and nobody else).
pub fn write_pg_owned(path: &Path, contents: &str) {
    std::fs::write(path, contents).expect("write file");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    if running_as_root() {
        run(Command::new("chown").arg("postgres:").arg(path)).expect("chown file");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A throwaway PostgreSQL cluster, stopped (immediately) and deleted on drop.
pub struct PgCluster {
    pub dir: tempfile::TempDir,
    pub pgdata: PathBuf,
    pub port: u16,
    running: bool,
}

impl PgCluster {
    fn empty() -> Self {
        let dir = pg_owned_tempdir("walgate-pg-");
        let pgdata = dir.path().join("data");
        PgCluster {
            dir,
            pgdata,
            port: free_port(),
            running: false,
        }
    }

    /// `initdb` a new cluster listening on a free port on 127.0.0.1.
    pub fn init(extra_initdb_args: &[&str]) -> Self {
        let c = Self::empty();
        run(as_pg_owner(pg_bin().join("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-N", "-D"])
            .arg(&c.pgdata)
            .args(extra_initdb_args))
        .expect("initdb");
        c.write_base_conf();
        c
    }

    /// A new cluster whose data directory is filled by a shell pipeline run as the
    /// PostgreSQL owner, with `$PGDATA` set (e.g. `curl … | tar -x -C "$PGDATA"`).
    pub fn from_shell(script: &str) -> Self {
        let c = Self::empty();
        std::fs::create_dir(&c.pgdata).expect("create data dir");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&c.pgdata, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        if running_as_root() {
            run(Command::new("chown").arg("postgres:").arg(&c.pgdata)).expect("chown");
        }
        run(as_pg_owner("bash")
            .args(["-o", "pipefail", "-c", script])
            .env("PGDATA", &c.pgdata))
        .expect("fill the data directory");
        c.write_base_conf();
        c
    }

    /// A new cluster from a `pg_basebackup` of `source` (which must be running).
    pub fn from_basebackup(source: &PgCluster, extra: &[&str]) -> Self {
        let c = Self::empty();
        run(as_pg_owner(pg_bin().join("pg_basebackup"))
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-p",
                &source.port.to_string(),
                "-D",
            ])
            .arg(&c.pgdata)
            .args(extra))
        .expect("pg_basebackup");
        c.write_base_conf();
        c
    }

    fn write_base_conf(&self) {
        self.append_conf(&format!(
            "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\n",
            self.port,
            self.dir.path().display()
        ));
    }

    /// Adds settings to `postgresql.auto.conf`-style config (last one wins).
    pub fn append_conf(&self, text: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.pgdata.join("postgresql.conf"))
            .expect("open postgresql.conf");
        writeln!(f, "{text}").expect("write postgresql.conf");
    }

    /// Creates a file in the data directory (e.g. `recovery.signal`).
    pub fn touch(&self, name: &str) {
        write_pg_owned(&self.pgdata.join(name), "");
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts the server and waits until it accepts connections (`pg_ctl -w`).
    /// Does not wait for recovery to finish.
    pub fn start(&mut self) {
        if let Err(e) = self.try_start() {
            panic!("pg_ctl start: {e:#}\nserver log:\n{}", self.log());
        }
    }

    /// Starts the server, or says why it did not come up (it may have stopped itself).
    pub fn try_start(&mut self) -> Result<()> {
        run(as_pg_owner(pg_bin().join("pg_ctl"))
            .args(["-w", "-t", "120", "-D"])
            .arg(&self.pgdata)
            .arg("-l")
            .arg(self.log_path())
            .arg("start"))?;
        self.running = true;
        Ok(())
    }

    pub fn stop(&mut self) {
        if self.running {
            let _ = run(as_pg_owner(pg_bin().join("pg_ctl"))
                .args(["-w", "-m", "fast", "-D"])
                .arg(&self.pgdata)
                .arg("stop"));
            self.running = false;
        }
    }

    /// Switches to a new WAL segment and waits until the one in use before, and every
    /// one before it, is archived; returns that segment's name.
    pub fn archive_current(&self) -> String {
        let last = self.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
        self.psql("SELECT pg_switch_wal()");
        self.wait_for(
            &format!("{last} to be archived"),
            Duration::from_secs(180),
            || {
                // The last archived file may be a backup history file named after its
                // segment (when a backup ended the segment and nothing was written since).
                let archived =
                    self.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
                archived
                    .get(..24)
                    .is_some_and(|segment| segment >= last.as_str())
            },
        );
        last
    }

    /// Waits until recovery has ended and the server accepts writes.
    /// Starts this (restored) cluster in recovery with the README's curl
    /// restore_command against `gateway_url`, and waits until recovery ends.
    pub fn recover_with_curl(&mut self, gateway_url: &str, token: &str) {
        let header = self.dir.path().join("auth-header");
        write_token_header(&header, token);
        self.append_conf(&format!(
            "archive_mode = off\nrestore_command = {}",
            conf_quote(&curl_restore_command(gateway_url, "main", &header))
        ));
        self.touch("recovery.signal");
        self.start();
        self.wait_recovered();
    }

    /// The segment file names PostgreSQL has marked archived, sorted.
    pub fn done_segments(&self) -> Vec<String> {
        let dir = self.pgdata.join("pg_wal/archive_status");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("archive_status")
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".done")
                    .map(str::to_owned)
            })
            .filter(|n| n.len() == 24)
            .collect();
        names.sort();
        names
    }

    pub fn wait_recovered(&self) {
        self.wait_for("recovery to finish", Duration::from_secs(180), || {
            self.psql("SELECT pg_is_in_recovery()") == "f"
        });
    }

    /// Runs SQL with psql, returning unaligned tuples-only output, trimmed.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    /// Runs SQL in database `db`.
    pub fn psql_in(&self, db: &str, sql: &str) -> String {
        let out = run(Command::new(pg_bin().join("psql"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-p"])
            .arg(self.port.to_string())
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql]));
        match out {
            Ok(s) => s.trim().to_owned(),
            Err(e) => panic!(
                "psql {sql:?}: {e:#}\nserver log tail:\n{}",
                tail(&self.log(), 30)
            ),
        }
    }

    /// Runs `pgbench` with the given arguments against this cluster.
    pub fn pgbench(&self, args: &[&str]) {
        run(Command::new(pg_bin().join("pgbench"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .args(args)
            .arg("postgres"))
        .expect("pgbench");
    }

    /// The connection URL of the `postgres` database.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Waits for `cond` to hold, polling; panics with `what` after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            if start.elapsed() > timeout {
                panic!(
                    "timed out waiting for {what}\nserver log tail:\n{}",
                    tail(&self.log(), 40)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = run(as_pg_owner(pg_bin().join("pg_ctl"))
                .args(["-m", "immediate", "-D"])
                .arg(&self.pgdata)
                .arg("stop"));
        }
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<_> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

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
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "walgate",
            "-p",
            "walgate-client",
            "--bins",
        ]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
        run(&mut cmd).expect("build the walgate binaries");
        profile_dir
    })
    .join(name)
}

/// A whole `pg_basebackup -Ft -X none` tar of `pg`, in memory.
pub fn basebackup_tar(pg: &PgCluster) -> Vec<u8> {
    let out = Command::new(pg_bin().join("pg_basebackup"))
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-D",
            "-",
            "-Ft",
            "-X",
            "none",
        ])
        .args(["--checkpoint=fast", "-p", &pg.port.to_string()])
        .output()
        .expect("run pg_basebackup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
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
        let start = Instant::now();
        while self.get("/readyz", None).status() != 200 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "gateway not ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM, as systemd or Kubernetes would, and waits up to `within` for the
    /// process to exit; returns its status, or `None` if it is still running (then
    /// killed).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        run(Command::new("kill").args(["-TERM", &child.id().to_string()])).expect("kill -TERM");
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some(status) = child.try_wait().expect("wait for the gateway") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
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

/// A certificate for `127.0.0.1` and `localhost`, signed by a new CA, made with the
/// `openssl` command in `dir`: returns the CA's PEM, the certificate and its key.
pub fn make_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    let script = format!(
        "set -e
         openssl req -x509 {ec} -keyout {name}-ca.key -out {name}-ca.pem -days 2 -subj '/CN=walgate test CA'
         openssl req {ec} -keyout {name}-key.pem -out {name}.csr -subj /CN=localhost
         printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > {name}.ext
         openssl x509 -req -in {name}.csr -CA {name}-ca.pem -CAkey {name}-ca.key -CAcreateserial \\
             -days 2 -extfile {name}.ext -out {name}-cert.pem"
    );
    run(Command::new("sh").arg("-c").arg(script).current_dir(dir))
        .expect("make a certificate with openssl (install the openssl package)");
    let file = |f: String| dir.join(f);
    (
        file(format!("{name}-ca.pem")),
        file(format!("{name}-cert.pem")),
        file(format!("{name}-key.pem")),
    )
}

/// The `Authorization` header line, in a file for `curl -H @file`: the token stays out
/// of the process list.
pub fn write_token_header(path: &Path, token: &str) {
    write_pg_owned(path, &format!("Authorization: Bearer {token}\n"));
}

/// The README's archive_command recipe, for `cluster` on `gateway_url`.
pub fn curl_archive_command(gateway_url: &str, cluster: &str, header_file: &Path) -> String {
    walgate_core::recipe::curl_archive_command(
        gateway_url,
        cluster,
        &header_file.display().to_string(),
    )
}

/// A running cluster archiving as `main` into `gateway_url` with the README's curl
/// recipe and `token`; the header file it reads is `<dir>/auth-header`.
pub fn archiving_with_curl(gateway_url: &str, token: &str) -> PgCluster {
    let mut pg = PgCluster::init(&[]);
    let header = pg.dir.path().join("auth-header");
    write_token_header(&header, token);
    pg.append_conf(&format!(
        "wal_level = replica\narchive_mode = on\narchive_command = {}",
        conf_quote(&curl_archive_command(gateway_url, "main", &header))
    ));
    pg.start();
    pg
}

/// The README's restore_command recipe.
pub fn curl_restore_command(gateway_url: &str, cluster: &str, header_file: &Path) -> String {
    walgate_core::recipe::curl_restore_command(
        gateway_url,
        cluster,
        &header_file.display().to_string(),
    )
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

/// A string as a postgresql.conf value.
pub fn conf_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A checksum of every pgbench table's rows and of the `marker` table, in a fixed order:
/// equal checksums mean a restore holds exactly the source's data.
pub fn pgbench_checksum(pg: &PgCluster) -> String {
    pg.psql(
        "SELECT md5(string_agg(t, '|')) FROM (
           SELECT (SELECT md5(string_agg(a::text, ',' ORDER BY aid)) FROM pgbench_accounts a) AS t
           UNION ALL SELECT (SELECT md5(string_agg(b::text, ',' ORDER BY bid)) FROM pgbench_branches b)
           UNION ALL SELECT (SELECT md5(string_agg(t::text, ',' ORDER BY tid)) FROM pgbench_tellers t)
           UNION ALL SELECT (SELECT md5(string_agg(h::text, ',' ORDER BY h::text)) FROM pgbench_history h)
           UNION ALL SELECT (SELECT string_agg(note, ',' ORDER BY note) FROM marker)
         ) s",
    )
}

/// A `walgate-client` command line for PostgreSQL to run for cluster `main`, with its
/// token in a file next to `pg` and `flags` before the subcommand.
pub fn client_command(
    gateway_url: &str,
    pg: &PgCluster,
    token: &str,
    flags: &str,
    sub: &str,
) -> String {
    let file = pg.dir.path().join("walgate-token");
    write_pg_owned(&file, token);
    format!(
        "WALGATE_URL={gateway_url} WALGATE_CLUSTER=main WALGATE_TOKEN_FILE={} {} {flags} {sub}",
        file.display(),
        bin("walgate-client").display()
    )
}

/// A 16 MiB WAL segment as PostgreSQL 15 writes it: a long page header for `segno` on
/// `timeline` of database system `sysid`, then `fill`.
pub fn synthetic_segment(sysid: u64, timeline: u32, segno: u64, fill: u8) -> Vec<u8> {
    const SEG: usize = 16 << 20;
    let mut b = vec![fill; SEG];
    b[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
    b[2..4].copy_from_slice(&0x0006u16.to_le_bytes());
    b[4..8].copy_from_slice(&timeline.to_le_bytes());
    b[8..16].copy_from_slice(&(segno * SEG as u64).to_le_bytes());
    b[16..24].fill(0);
    b[24..32].copy_from_slice(&sysid.to_le_bytes());
    b[32..36].copy_from_slice(&(SEG as u32).to_le_bytes());
    b[36..40].copy_from_slice(&8192u32.to_le_bytes());
    b
}
