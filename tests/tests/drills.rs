//! Restore drills end to end: `walgate-client drill-runner` restores real backups,
//! PostgreSQL recovers them through the client with archiving off, and the gateway
//! records what was proven; a gap, a damaged backup, a failing check and a runner
//! killed mid-drill each end the way an operator needs to see.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use walgate_tests::{
    Gateway, PgCluster, Postgres, gateway_dir, on_every_major, on_majors_since_17,
    pg_owned_tempdir, run, wait_until, write_pg_owned,
};

struct Setup {
    _dir: tempfile::TempDir,
    gateway: Gateway,
    source: PgCluster,
    admin: String,
    scratch: tempfile::TempDir,
    token_file: PathBuf,
}

/// A gateway, a source cluster of `pg`'s major archiving into it as `main` with pgbench
/// data and a backup taken by the client, everything archived.
fn setup(pg: &Postgres) -> Setup {
    let dir = gateway_dir();
    let gateway = Gateway::start(&dir.path().join("data"), &[]);
    let admin = gateway.token("main", "admin");
    let source = walgate_tests::archiving_with_curl(pg, &gateway.url, &admin);
    if pg.major >= 17 {
        // The WAL summaries an incremental backup on the first one reads.
        source.psql("ALTER SYSTEM SET summarize_wal = on");
        source.psql("SELECT pg_reload_conf()");
    }
    source.pgbench(&["-i", "-s", "2", "-q"]);
    let scratch = pg_owned_tempdir("walgate-drills-");
    let token_file = source.dir.path().join("driller-token");
    write_pg_owned(&token_file, &gateway.token("*", "driller"));
    let s = Setup {
        _dir: dir,
        gateway,
        source,
        admin,
        scratch,
        token_file,
    };
    s.client_backup(&[]);
    s.source.pgbench(&["-c", "2", "-t", "200", "-n"]);
    s
}

impl Setup {
    /// `walgate-client` as the PostgreSQL owner, with the driller token.
    fn client(&self, args: &[&str]) -> Command {
        let mut c = Command::new(walgate_tests::bin("walgate-client"));
        c.env("WALGATE_URL", &self.gateway.url)
            .env("WALGATE_TOKEN_FILE", &self.token_file)
            .env_remove("WALGATE_CLUSTER")
            .args(args);
        if is_root() {
            let id = |flag| {
                run(Command::new("id").args([flag, "postgres"]))
                    .unwrap()
                    .trim()
                    .parse::<u32>()
                    .unwrap()
            };
            c.gid(id("-g")).uid(id("-u")).env("HOME", "/tmp");
        }
        c
    }

    /// A backup taken by the client with `flags`; returns its id.
    fn client_backup(&self, flags: &[&str]) -> String {
        let token = self.source.dir.path().join("admin-token");
        write_pg_owned(&token, &self.admin);
        let tool = self.source.pg.tool("pg_basebackup");
        let port = self.source.port.to_string();
        let mut c = self.client(&[]);
        c.env("WALGATE_CLUSTER", "main")
            .env("WALGATE_TOKEN_FILE", &token)
            .args(["backup-push", "--json", "--pg-basebackup"])
            .arg(tool)
            .args(flags)
            .args(["--", "-h", "127.0.0.1", "-p", &port, "-U", "postgres"]);
        let backup: serde_json::Value = serde_json::from_str(&run(&mut c).unwrap()).unwrap();
        backup["id"].as_str().unwrap().to_owned()
    }

    fn runner_args(&self) -> Vec<String> {
        vec![
            "drill-runner".into(),
            "--scratch".into(),
            self.scratch.path().display().to_string(),
            "--pg-bin".into(),
            format!("{}={}", self.source.pg.major, self.source.pg.bin.display()),
            "--name".into(),
            "test-runner".into(),
            "--poll-seconds".into(),
            "1".into(),
        ]
    }

    /// Runs the drill runner until no drill is due; returns the reports it printed.
    fn drill_once(&self) -> Vec<serde_json::Value> {
        let mut args = self.runner_args();
        args.extend(["--once".into(), "--json".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&mut self.client(&args)).unwrap();
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Archives everything, stops the source and drills once: the drill succeeds,
    /// replays past all the source wrote, and leaves the archive and scratch directory
    /// as they were. Returns its report and the archive's objects.
    fn drill_to_the_end(
        &mut self,
    ) -> (
        serde_json::Value,
        Vec<(PathBuf, u64, std::time::SystemTime)>,
    ) {
        let reached_at_least = self.source.psql("SELECT pg_current_wal_insert_lsn()");
        let last = self.source.archive_current();
        self.source.stop();
        let before = self.gateway.objects();
        let mut reports = self.drill_once();
        assert_eq!(reports.len(), 1, "{reports:?}");
        let report = reports.remove(0);
        assert_eq!(report["status"], "ok", "{report}");
        let lsn = report["outcome"]["lsn"].as_str().unwrap();
        assert!(
            lsn_value(lsn) >= lsn_value(&reached_at_least),
            "reached {lsn}, archived up to {reached_at_least} ({last})"
        );
        // The drill's copy promoted itself to a new timeline: nothing of it was archived.
        assert_eq!(
            self.gateway.objects(),
            before,
            "a drill wrote to the archive"
        );
        assert!(self.drill_dirs().is_empty(), "{:?}", self.drill_dirs());
        (report, before)
    }

    fn api(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let (status, answer) = self.gateway.send(
            method,
            path,
            &self.admin,
            serde_json::to_vec(&body).unwrap(),
        );
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }

    fn history(&self) -> serde_json::Value {
        let token = self.gateway.token("main", "viewer");
        let body =
            walgate_tests::body_bytes(self.gateway.get("/v1/clusters/main/drills", Some(&token)));
        serde_json::from_slice(&body).unwrap()
    }

    fn cluster(&self) -> serde_json::Value {
        let token = self.gateway.token("main", "viewer");
        let body = walgate_tests::body_bytes(self.gateway.get("/v1/clusters/main", Some(&token)));
        serde_json::from_slice(&body).unwrap()
    }

    /// Asks for a drill now, as an operator would.
    fn request_drill(&self) {
        self.api("POST", "/v1/clusters/main/drills", serde_json::Value::Null);
    }

    fn drill_dirs(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.scratch.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect()
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

on_every_major!(
    drills_prove_the_archive_and_never_write_to_it,
    drills_fail_on_gaps_and_damaged_backups,
    a_killed_runner_is_cleaned_up_after
);

/// A drill restores the newest backup, replays to the end of the archive, runs the
/// cluster's check, records the LSN it reached, and leaves the archive exactly as it
/// was; a check whose expectation is not met fails the drill and the cluster.
fn drills_prove_the_archive_and_never_write_to_it(pg: &Postgres) {
    let mut s = setup(pg);
    s.api(
        "PUT",
        "/v1/clusters/main/drills/policy",
        serde_json::json!({"check": {"sql": "select count(*) from pgbench_accounts", "min": 200000}}),
    );
    s.source.psql("CREATE TABLE marker AS SELECT 1 AS one");
    let (report, before) = s.drill_to_the_end();
    let lsn = report["outcome"]["lsn"].as_str().unwrap();
    assert!(report["outcome"]["restorable_to"].is_string(), "{report}");
    assert!(report["outcome"]["restore_seconds"].as_f64().unwrap() > 0.0);
    assert!(report["outcome"]["replay_seconds"].as_f64().unwrap() > 0.0);

    let history = s.history();
    assert_eq!(history["drills"][0]["status"], "ok", "{history}");
    assert_eq!(history["last_ok"]["outcome"]["lsn"], lsn);
    assert_eq!(history["interval_hours"], 168);
    let cluster = s.cluster();
    assert_eq!(cluster["last_ok_drill"]["outcome"]["lsn"], lsn, "{cluster}");
    assert_eq!(cluster["status"], "ok", "{cluster}");
    // The dashboard says it, on the fleet page and the cluster's.
    let fleet = s.gateway.page("/", &s.admin);
    assert!(fleet.contains("Proven restorable"), "{fleet}");
    assert!(fleet.contains("(restore took "), "{fleet}");
    let page = s.gateway.page("/clusters/main", &s.admin);
    assert!(page.contains("Proven restorable up to"), "{page}");
    assert!(page.contains(lsn) && page.contains("Drill now"), "{page}");
    // Nothing is due again until the interval has passed.
    assert!(s.drill_once().is_empty());

    // A check that is not met fails the drill, and the cluster with it.
    s.api(
        "PUT",
        "/v1/clusters/main/drills/policy",
        serde_json::json!({"check": {"sql": "select count(*) from pgbench_accounts", "min": 1000000000}}),
    );
    s.request_drill();
    let report = &s.drill_once()[0];
    assert_eq!(report["status"], "failed", "{report}");
    let reason = report["outcome"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("returned 200000; at least 1000000000 was expected"),
        "{reason}"
    );
    let cluster = s.cluster();
    assert_eq!(cluster["status"], "failing", "{cluster}");
    assert!(
        cluster["status_reasons"][0]
            .as_str()
            .unwrap()
            .contains("the last restore drill failed"),
        "{cluster}"
    );
    // A check may only read: writing, or reaching the runner's files, fails it.
    s.api(
        "PUT",
        "/v1/clusters/main/drills/policy",
        serde_json::json!({"check": {"sql": "select count(*) from pg_read_file('/etc/passwd')", "min": 0}}),
    );
    s.request_drill();
    let report = &s.drill_once()[0];
    assert_eq!(report["status"], "failed", "{report}");
    assert!(
        report["outcome"]["reason"]
            .as_str()
            .unwrap()
            .contains("permission denied"),
        "{report}"
    );
    assert_eq!(s.gateway.objects(), before, "a drill wrote to the archive");
}

/// A WAL gap after the newest backup fails the drill, naming the missing segment; a
/// flipped byte in the backup's stored object fails it with the backup named.
fn drills_fail_on_gaps_and_damaged_backups(pg: &Postgres) {
    let s = setup(pg);
    s.source.archive_current();
    // One segment PostgreSQL believes archived that never reached the gateway.
    s.source.psql("ALTER SYSTEM SET archive_command = 'true'");
    s.source.psql("SELECT pg_reload_conf()");
    s.source.pgbench(&["-c", "1", "-t", "50", "-n"]);
    let skipped = s.source.archive_current();
    s.source.psql("ALTER SYSTEM RESET archive_command");
    s.source.psql("SELECT pg_reload_conf()");
    s.source.pgbench(&["-c", "1", "-t", "50", "-n"]);
    s.source.archive_current();

    let report = &s.drill_once()[0];
    assert_eq!(report["status"], "failed", "{report}");
    let reason = report["outcome"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("{skipped} is not archived")),
        "{reason}"
    );
    assert!(s.drill_dirs().is_empty(), "{:?}", s.drill_dirs());

    // A new backup past the gap makes the archive whole from there; then damage it.
    let newest = s.client_backup(&[]);
    s.source.archive_current();
    s.request_drill();
    assert_eq!(s.drill_once()[0]["status"], "ok", "the new backup restores");

    let dir = s
        .gateway
        .data_dir
        .join("objects/clusters/main/backups")
        .join(&newest);
    let (object, size) = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| (e.path(), e.metadata().unwrap().len()))
        .max_by_key(|(_, size)| *size)
        .unwrap();
    let mut bytes = std::fs::read(&object).unwrap();
    bytes[size as usize / 2] ^= 0x40;
    std::fs::write(&object, bytes).unwrap();
    s.request_drill();
    let report = &s.drill_once()[0];
    assert_eq!(report["status"], "failed", "{report}");
    let reason = report["outcome"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("restore backup {newest}")),
        "{reason}"
    );
    assert!(s.drill_dirs().is_empty(), "{:?}", s.drill_dirs());
}

/// A runner killed while its drill's PostgreSQL recovers: the next start stops that
/// server, removes its directory and ends the drill as skipped (the runner failed,
/// not the archive); the next drill succeeds.
fn a_killed_runner_is_cleaned_up_after(pg: &Postgres) {
    let s = setup(pg);
    s.source.archive_current();
    // A check that holds the drill once its server is up: killed there, the runner
    // leaves a running server behind, whatever the machine's speed.
    s.api(
        "PUT",
        "/v1/clusters/main/drills/policy",
        serde_json::json!({"check": {"sql": "select count(*) from (select pg_sleep(3600)) s", "min": 0}}),
    );
    let args = s.runner_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut runner: Child = s
        .client(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Mid-drill: its PostgreSQL has recovered and accepts connections.
    wait_until(
        Duration::from_secs(180),
        "the drill's server to be ready",
        || {
            s.drill_dirs().iter().any(|d| {
                std::fs::read_to_string(d.join("data/postmaster.pid"))
                    .is_ok_and(|p| p.lines().nth(7).is_some_and(|l| l.trim() == "ready"))
            })
        },
    );
    runner.kill().unwrap();
    runner.wait().unwrap();
    let left = s.drill_dirs();
    assert_eq!(left.len(), 1, "{left:?}");
    let pid: u32 = std::fs::read_to_string(left[0].join("data/postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the orphaned server runs on"
    );

    s.api(
        "DELETE",
        "/v1/clusters/main/drills/policy",
        serde_json::Value::Null,
    );
    s.request_drill();
    let reports = s.drill_once();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["status"], "ok", "{}", reports[0]);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
            || std::fs::read(format!("/proc/{pid}/cmdline"))
                .unwrap()
                .is_empty(),
        "the orphaned server was stopped"
    );
    assert!(s.drill_dirs().is_empty(), "{:?}", s.drill_dirs());
    let history = s.history();
    let drills = history["drills"].as_array().unwrap();
    assert_eq!(drills.len(), 2, "{history}");
    assert_eq!(drills[1]["status"], "skipped", "{history}");
    assert!(
        drills[1]["outcome"]["reason"]
            .as_str()
            .unwrap()
            .contains("runner `test-runner` started again"),
        "{history}"
    );
    assert_eq!(s.cluster()["status"], "ok");
}

on_majors_since_17!(an_incremental_chain_is_drilled);

/// A full backup and an incremental on it: the drill restores the chain through
/// pg_combinebackup, replays past the incremental and names it as the backup proven.
fn an_incremental_chain_is_drilled(pg: &Postgres) {
    let mut s = setup(pg);
    let incremental = s.client_backup(&["--incremental"]);
    s.source.pgbench(&["-c", "2", "-t", "200", "-n"]);
    let (report, _) = s.drill_to_the_end();
    assert_eq!(
        report["outcome"]["backup"],
        incremental.as_str(),
        "{report}"
    );
}

fn lsn_value(lsn: &str) -> u64 {
    let (hi, lo) = lsn.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}
