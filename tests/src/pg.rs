//! Throwaway PostgreSQL clusters, driven the way an operator would drive them (real
//! `initdb`, `pg_ctl`, `pg_basebackup`, `psql` and `pgbench`), and what the tests compare
//! them by.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root every PostgreSQL
//! command runs as the `postgres` user (`runuser`), in a directory and on files it owns.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Result;

use crate::process::{free_port, run, tail};
use crate::recipes::{curl_restore_command, write_token_header};
use crate::wait::poll_until;

/// The PostgreSQL majors walgate supports, and tests on.
pub const MAJORS: [u32; 4] = [15, 16, 17, 18];

/// The server binaries of one PostgreSQL major version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Postgres {
    pub major: u32,
    pub bin: PathBuf,
}

impl Postgres {
    /// The binaries of `major`: Debian's `/usr/lib/postgresql/<major>/bin` if installed,
    /// else the ones `tests/emulators/install` unpacks under
    /// `$WALGATE_EMULATORS/postgresql/<major>/bin`. Panics with the fix when neither exists.
    pub fn major(major: u32) -> Self {
        let debian = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
        let bin = if debian.join("initdb").exists() {
            debian
        } else {
            let unpacked =
                crate::emulators::emulators_dir().join(format!("postgresql/{major}/bin"));
            assert!(
                unpacked.join("initdb").exists(),
                "no PostgreSQL {major} server binaries in {} or {}: run tests/emulators/install \
                 (PostgreSQL 15 comes from Debian: apt-get install postgresql-15)",
                debian.display(),
                unpacked.display()
            );
            unpacked
        };
        Postgres { major, bin }
    }

    /// The binaries of tests that are not about versions: `$PG_BIN`, or the newest
    /// `/usr/lib/postgresql/*/bin` (Debian's layout).
    pub fn default_major() -> &'static Postgres {
        static DEFAULT: OnceLock<Postgres> = OnceLock::new();
        DEFAULT.get_or_init(|| {
            let bin = match std::env::var("PG_BIN") {
                Ok(dir) => PathBuf::from(dir),
                Err(_) => debian_newest().expect(
                    "no PostgreSQL server binaries: install postgresql-15 (apt-get install postgresql-15) or set PG_BIN",
                ),
            };
            let version = run(Command::new(bin.join("postgres")).arg("--version"))
                .expect("postgres --version");
            // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
            let major = version
                .split_whitespace()
                .nth(2)
                .and_then(|v| v.split('.').next()?.parse().ok())
                .unwrap_or_else(|| panic!("cannot read a major version from {version:?}"));
            Postgres { major, bin }
        })
    }

    /// The path of one of its programs (`initdb`, `pg_basebackup`, …).
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// A major other than this one, for tests of what must be refused across versions.
    pub fn other(&self) -> Postgres {
        Postgres::major(if self.major == 15 { 18 } else { 15 })
    }
}

fn debian_newest() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p)| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

/// Declares, for each function named, one test per supported major: module `name` with
/// tests `pg15` … `pg18`, each calling `name(&Postgres::major(n))`. So a failure names
/// its major, and `cargo test pg17` runs one version.
#[macro_export]
macro_rules! on_every_major {
    ($($name:ident),+ $(,)?) => {
        $crate::on_majors!([pg15 = 15, pg16 = 16, pg17 = 17, pg18 = 18] $($name),+);
    };
}

/// Like [`on_every_major!`], for what PostgreSQL 17 brought (incremental backups).
#[macro_export]
macro_rules! on_majors_since_17 {
    ($($name:ident),+ $(,)?) => {
        $crate::on_majors!([pg17 = 17, pg18 = 18] $($name),+);
    };
}

/// One module per function named, with one test per `test = major` pair.
#[macro_export]
macro_rules! on_majors {
    ($majors:tt $($name:ident),+) => {$(
        $crate::on_majors!(@one $majors $name);
    )+};
    (@one [$($test:ident = $major:literal),+] $name:ident) => {
        mod $name {
            $(
                #[test]
                fn $test() {
                    super::$name(&$crate::Postgres::major($major))
                }
            )+
        }
    };
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

/// A throwaway PostgreSQL cluster, stopped (immediately) and deleted on drop.
pub struct PgCluster {
    pub dir: tempfile::TempDir,
    pub pgdata: PathBuf,
    pub port: u16,
    /// The binaries it runs on.
    pub pg: Postgres,
    running: bool,
}

impl PgCluster {
    fn empty(pg: &Postgres) -> Self {
        let dir = pg_owned_tempdir("walgate-pg-");
        let pgdata = dir.path().join("data");
        PgCluster {
            dir,
            pgdata,
            port: free_port(),
            pg: pg.clone(),
            running: false,
        }
    }

    /// `initdb` a new cluster of the default major ([`Postgres::default_major`]).
    pub fn init(extra_initdb_args: &[&str]) -> Self {
        Self::init_on(Postgres::default_major(), extra_initdb_args)
    }

    /// `initdb` a new cluster of `pg`'s major, listening on a free port on 127.0.0.1.
    pub fn init_on(pg: &Postgres, extra_initdb_args: &[&str]) -> Self {
        let c = Self::empty(pg);
        run(as_pg_owner(c.pg.tool("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-N", "-D"])
            .arg(&c.pgdata)
            .args(extra_initdb_args))
        .expect("initdb");
        c.write_base_conf();
        c
    }

    /// A new cluster whose data directory is filled by a shell pipeline run as the
    /// PostgreSQL owner, with `$PGDATA` set (e.g. `curl … | tar -x -C "$PGDATA"`), to run
    /// on `pg`'s binaries.
    pub fn from_shell(pg: &Postgres, script: &str) -> Self {
        let c = Self::empty(pg);
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
        let c = Self::empty(&source.pg);
        run(as_pg_owner(c.pg.tool("pg_basebackup"))
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

    /// A hot standby of `primary` (which must be running), streaming from it:
    /// `pg_basebackup -R`, which writes `standby.signal` and `primary_conninfo`.
    pub fn standby_of(primary: &PgCluster) -> Self {
        Self::from_basebackup(primary, &["-R", "-X", "stream", "--checkpoint=fast"])
    }

    /// Promotes this standby or recovering cluster and waits until it accepts writes.
    pub fn promote(&self) {
        run(as_pg_owner(self.pg.tool("pg_ctl"))
            .args(["-w", "-t", "120", "-D"])
            .arg(&self.pgdata)
            .arg("promote"))
        .expect("pg_ctl promote");
        self.wait_recovered();
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
        run(as_pg_owner(self.pg.tool("pg_ctl"))
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
            let _ = run(as_pg_owner(self.pg.tool("pg_ctl"))
                .args(["-w", "-m", "fast", "-D"])
                .arg(&self.pgdata)
                .arg("stop"));
            self.running = false;
        }
    }

    /// Switches to a new WAL segment and waits until the one in use before, and every
    /// one before it, is archived; returns that segment's name.
    pub fn archive_current(&self) -> String {
        // A record first: a switch with nothing written since the last one (a backup
        // just ended) would leave the segment open, and the wait would never end.
        self.psql("SELECT pg_logical_emit_message(false, 'walgate-test', 'switch')");
        let last = self.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
        self.psql("SELECT pg_switch_wal()");
        self.wait_for(
            &format!("{last} to be archived"),
            Duration::from_secs(180),
            || self.archived_up_to(&last),
        );
        last
    }

    /// Whether this server's archiver has archived `segment`, or a later file.
    pub fn archived_up_to(&self, segment: &str) -> bool {
        // The last archived file may be a backup history file named after its segment
        // (when a backup ended the segment and nothing was written since).
        let archived = self.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
        archived.get(..24).is_some_and(|s| s >= segment)
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
        let out = run(Command::new(self.pg.tool("psql"))
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
        run(Command::new(self.pg.tool("pgbench"))
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

    /// Waits for `cond` to hold, polling; panics with `what` and the end of the server
    /// log after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, cond: impl FnMut() -> bool) {
        if !poll_until(timeout, cond) {
            panic!(
                "timed out after {timeout:?} waiting for {what}\nserver log tail:\n{}",
                tail(&self.log(), 40)
            );
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = run(as_pg_owner(self.pg.tool("pg_ctl"))
                .args(["-m", "immediate", "-D"])
                .arg(&self.pgdata)
                .arg("stop"));
        }
    }
}

/// A whole `pg_basebackup -Ft -X none` tar of `pg`, in memory.
pub fn basebackup_tar(pg: &PgCluster) -> Vec<u8> {
    let out = Command::new(pg.pg.tool("pg_basebackup"))
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
