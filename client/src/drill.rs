//! `walgate-client drill-runner`: proves clusters restorable. It claims a drill from the
//! gateway, restores the backup (or chain) the plan names into its scratch directory,
//! starts PostgreSQL on it with archiving off and the restore_command fetching WAL
//! through this client, waits until recovery reaches the end of the archive and the
//! server accepts connections, runs the checks, and reports what it proved and how
//! long each step took. A drill never writes to the archive.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use time::OffsetDateTime;
use walgate_core::api::{
    DrillAssignment, DrillCheck, DrillClaim, DrillOutcome, DrillReport, DrillStatus,
};
use walgate_core::wal::SegmentName;
use walgate_core::{Lsn, SegmentSize};

use crate::config::Settings;
use crate::gateway::Gateway;

/// How a runner is set up.
pub struct Runner {
    /// The gateway settings; each drill uses them for its cluster.
    pub settings: Settings,
    pub scratch: PathBuf,
    /// PostgreSQL's binaries for each major.
    pub bins: BTreeMap<u32, PathBuf>,
    pub name: String,
    /// The role drills connect as: the restored cluster's superuser.
    pub pg_user: String,
    pub max_replay: Duration,
    /// Print each report as a JSON line on stdout.
    pub json: bool,
}

/// Each drill's directory in the scratch directory starts with this.
const DRILL_DIR: &str = "drill-";

/// The port drills listen on, on a Unix socket in the drill's own directory only.
const PORT: &str = "5432";

/// A failure of the drill itself (the archive did not restore), or of the runner (it
/// could not try).
enum Failure {
    Failed(String),
    Skipped(String),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Failed(format!("{:#}", e.into()))
    }
}

impl Runner {
    /// Cleans up after a crash, then drills whatever is due until stopped (or, `once`,
    /// until nothing is due).
    pub fn run(&self, once: bool, poll: Duration) -> anyhow::Result<()> {
        self.clean_scratch()?;
        let gateway = Gateway::new(&self.settings)?;
        let abandoned: serde_json::Value = gateway
            .post_json(
                &format!("/v1/drills/abandon?runner={}", crate::encode(&self.name)),
                &(),
            )?
            .unwrap_or_default();
        if abandoned["abandoned"].as_u64().unwrap_or(0) > 0 {
            eprintln!(
                "drill-runner: {} drill(s) this runner left running were recorded as skipped",
                abandoned["abandoned"]
            );
        }
        let claim = DrillClaim {
            runner: self.name.clone(),
            majors: self.bins.keys().copied().collect(),
        };
        eprintln!(
            "drill-runner {}: PostgreSQL {:?}, scratch {}",
            self.name,
            claim.majors,
            self.scratch.display()
        );
        loop {
            let Some(a): Option<DrillAssignment> = gateway.post_json("/v1/drills/claim", &claim)?
            else {
                if once {
                    return Ok(());
                }
                std::thread::sleep(poll);
                continue;
            };
            eprintln!(
                "drill {}: cluster {} (PostgreSQL {}), backup {}",
                a.drill, a.cluster, a.pg_version, a.plan.backup.id
            );
            let report = self.drill(&gateway, &a);
            match report.status {
                DrillStatus::Ok => eprintln!(
                    "drill {}: ok: {} restorable up to {} (restore {:.1} s, replay {:.1} s)",
                    a.drill,
                    a.cluster,
                    report.outcome.lsn.as_deref().unwrap_or("?"),
                    report.outcome.restore_seconds.unwrap_or(0.0),
                    report.outcome.replay_seconds.unwrap_or(0.0),
                ),
                status => eprintln!(
                    "drill {}: {}: {}",
                    a.drill,
                    status.as_str(),
                    report.outcome.reason.as_deref().unwrap_or("")
                ),
            }
            if self.json {
                println!("{}", serde_json::to_string(&report)?);
            }
            let sent: anyhow::Result<Option<serde_json::Value>> =
                gateway.post_json(&format!("/v1/drills/{}/result", a.drill), &report);
            if let Err(e) = sent {
                eprintln!("drill {}: the result was not recorded: {e:#}", a.drill);
            }
        }
    }

    /// One drill, start to end; its directory is always removed.
    fn drill(&self, gateway: &Gateway, a: &DrillAssignment) -> DrillReport {
        let dir = self.scratch.join(format!("{DRILL_DIR}{}", a.drill));
        let (stop, stopped) = mpsc::channel::<()>();
        let outcome = std::thread::scope(|s| {
            s.spawn(|| renew_lease(gateway, a, stopped));
            let outcome = self.restore_and_check(a, &dir);
            drop(stop);
            outcome
        });
        if let Err(e) = remove_drill_dir(&dir) {
            eprintln!("drill {}: cannot remove {}: {e:#}", a.drill, dir.display());
        }
        let backup = Some(a.plan.backup.id.clone());
        match outcome {
            Ok(outcome) => DrillReport {
                status: DrillStatus::Ok,
                outcome: DrillOutcome { backup, ..outcome },
            },
            Err(f) => {
                let (status, reason) = match f {
                    Failure::Failed(r) => (DrillStatus::Failed, r),
                    Failure::Skipped(r) => (DrillStatus::Skipped, r),
                };
                DrillReport {
                    status,
                    outcome: DrillOutcome {
                        backup,
                        reason: Some(truncate(reason)),
                        ..Default::default()
                    },
                }
            }
        }
    }

    fn restore_and_check(&self, a: &DrillAssignment, dir: &Path) -> Result<DrillOutcome, Failure> {
        let plan = &a.plan;
        if plan.archive_end_wal != plan.last_wal {
            let why = plan.notes.iter().find(|n| n.contains("gap"));
            return Err(Failure::Failed(why.cloned().unwrap_or_else(|| {
                format!(
                    "replay cannot get past {}, though WAL up to {} is archived",
                    plan.last_wal, plan.archive_end_wal
                )
            })));
        }
        let bin = self.bins.get(&a.pg_version).ok_or_else(|| {
            Failure::Skipped(format!("no PostgreSQL {} binaries here", a.pg_version))
        })?;
        let size = SegmentSize::new(a.segment_size)
            .ok_or_else(|| Failure::Failed(format!("bad segment size {}", a.segment_size)))?;
        self.check_space(a)?;
        std::fs::create_dir_all(&self.scratch)?;
        std::fs::create_dir(dir).with_context(|| format!("create {}", dir.display()))?;
        private(dir)?;
        let data = dir.join("data");

        let settings = self.settings.for_cluster(
            a.cluster
                .parse()
                .map_err(|e: walgate_core::names::ClusterNameError| anyhow::anyhow!(e))?,
        );
        let gateway = Gateway::new(&settings)?;
        let started = Instant::now();
        let chain: Vec<String> = plan.chain.iter().map(|l| l.id.clone()).collect();
        crate::backup::restore_chain(&gateway, &chain, &data, &bin.join("pg_combinebackup"))
            .with_context(|| format!("restore backup {}", plan.backup.id))?;
        let restore_seconds = started.elapsed().as_secs_f64();

        let started = Instant::now();
        let mut server = Server::start(bin, dir, &data, &settings, plan)?;
        server.wait_ready(self.max_replay)?;
        let replay_seconds = started.elapsed().as_secs_f64();

        let psql = Psql {
            bin,
            dir,
            user: &self.pg_user,
        };
        let reached = psql.query(
            "postgres",
            "select pg_last_wal_replay_lsn(), \
             coalesce(extract(epoch from pg_last_xact_replay_timestamp())::text, ''), \
             (select count(*) from pg_catalog.pg_class)",
            &[],
        )?;
        let [lsn, at, _classes] = reached.split('|').collect::<Vec<_>>()[..] else {
            return Err(Failure::Failed(format!("unexpected answer {reached:?}")));
        };
        let lsn: Lsn = lsn
            .parse()
            .map_err(|e| Failure::Failed(format!("recovery reported no LSN: {e}")))?;
        check_reached(lsn, &plan.archive_end_wal, size)?;
        if let Some(check) = &a.check {
            psql.check(check, &a.drill)?;
        }
        server.stop();
        Ok(DrillOutcome {
            lsn: Some(lsn.to_string()),
            timeline: Some(plan.target_timeline),
            restorable_to: at
                .parse::<f64>()
                .ok()
                .and_then(|s| OffsetDateTime::from_unix_timestamp_nanos((s * 1e9) as i128).ok()),
            restore_seconds: Some(restore_seconds),
            replay_seconds: Some(replay_seconds),
            ..Default::default()
        })
    }

    /// The scratch space must hold the backup, each link of a chain and the combined
    /// copy, and the WAL prefetched during replay.
    fn check_space(&self, a: &DrillAssignment) -> Result<(), Failure> {
        let data: u64 = a.plan.chain.iter().map(|l| l.size).sum();
        let combined = if a.plan.chain.len() > 1 {
            a.plan.backup.size.max(data)
        } else {
            0
        };
        let need = data + combined + self.settings.prefetch_max_bytes + (64 << 20);
        std::fs::create_dir_all(&self.scratch)?;
        let fs = rustix::fs::statvfs(&self.scratch).map_err(anyhow::Error::from)?;
        let free = fs.f_bavail * fs.f_frsize;
        if free < need {
            return Err(Failure::Skipped(format!(
                "{} has {} MiB free; this restore needs about {} MiB",
                self.scratch.display(),
                free >> 20,
                need >> 20
            )));
        }
        Ok(())
    }

    /// Stops the servers of drills a crash left behind and removes their directories.
    fn clean_scratch(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.scratch)
            .with_context(|| format!("create scratch directory {}", self.scratch.display()))?;
        for entry in std::fs::read_dir(&self.scratch)? {
            let entry = entry?;
            if !entry.file_name().to_string_lossy().starts_with(DRILL_DIR) {
                continue;
            }
            eprintln!(
                "drill-runner: removing {}, left by a drill that did not finish",
                entry.path().display()
            );
            remove_drill_dir(&entry.path())?;
        }
        Ok(())
    }
}

/// Renews the drill's lease until `stopped` closes.
fn renew_lease(gateway: &Gateway, a: &DrillAssignment, stopped: mpsc::Receiver<()>) {
    let every = Duration::from_secs((a.lease_seconds / 6).clamp(1, 60));
    let path = format!("/v1/drills/{}/lease", a.drill);
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
        let renewed: anyhow::Result<Option<serde_json::Value>> = gateway.post_json(&path, &());
        if let Err(e) = renewed {
            eprintln!("drill {}: lease not renewed: {e:#}", a.drill);
        }
    }
}

/// Replay must have read into the newest segment archived on the timeline.
fn check_reached(lsn: Lsn, end: &str, size: SegmentSize) -> Result<(), Failure> {
    let end: SegmentName = end
        .parse()
        .map_err(|e| Failure::Failed(format!("bad end of archive {end}: {e}")))?;
    let end_start = end.start_lsn(size).unwrap_or_default();
    if lsn > end_start {
        return Ok(());
    }
    let read = lsn.0.saturating_sub(1) / size.bytes();
    let last_read = SegmentName::from_segment_no(end.timeline, read, size);
    let next = SegmentName::from_segment_no(end.timeline, read + 1, size);
    Err(Failure::Failed(format!(
        "recovery ended at {lsn}, in {last_read}: {next} could not be restored (missing or \
         damaged), though the archive holds WAL up to {end}"
    )))
}

/// A drill's PostgreSQL, started on the restored data directory.
struct Server {
    child: Child,
    data: PathBuf,
    log: PathBuf,
}

impl Server {
    /// Starts recovery with the drill's own configuration: a Unix socket in the drill's
    /// directory only, trust for the runner's user there, archiving off, no preloaded
    /// libraries the source may have had, and WAL fetched through this client.
    fn start(
        bin: &Path,
        dir: &Path,
        data: &Path,
        settings: &Settings,
        plan: &walgate_core::api::RestorePlan,
    ) -> anyhow::Result<Server> {
        let conf = dir.join("postgresql.conf");
        std::fs::write(
            &conf,
            "# A restore drill: every setting is on the command line.\n",
        )?;
        std::fs::write(dir.join("pg_hba.conf"), "local all all trust\n")?;
        std::fs::write(dir.join("pg_ident.conf"), "")?;
        std::fs::write(data.join("recovery.signal"), "")?;
        for stale in ["standby.signal", "postmaster.pid"] {
            let _ = std::fs::remove_file(data.join(stale));
        }
        let exe = std::env::current_exe().context("find this program's path")?;
        let timeline = plan
            .recovery_settings
            .get("recovery_target_timeline")
            .cloned()
            .unwrap_or_else(|| "latest".to_owned());
        let settings_args = [
            format!("config_file={}", conf.display()),
            format!("hba_file={}", dir.join("pg_hba.conf").display()),
            format!("ident_file={}", dir.join("pg_ident.conf").display()),
            "listen_addresses=".to_owned(),
            format!("unix_socket_directories={}", dir.display()),
            format!("port={PORT}"),
            // Never into the production archive, whatever the backup's settings say.
            "archive_mode=off".to_owned(),
            format!("restore_command={} wal-fetch %f %p", exe.display()),
            format!("recovery_target_timeline={timeline}"),
            "hot_standby=off".to_owned(),
            // The copy is thrown away: a crash of the machine ends the drill anyway, so
            // replay need not wait for its writes to reach the disk.
            "fsync=off".to_owned(),
            "shared_preload_libraries=".to_owned(),
            "synchronous_standby_names=".to_owned(),
            "primary_conninfo=".to_owned(),
            "logging_collector=off".to_owned(),
            "cluster_name=walgate-drill".to_owned(),
        ];
        let log = dir.join("postgres.log");
        let out = std::fs::File::create(&log)?;
        let mut command = Command::new(bin.join("postgres"));
        command.arg("-D").arg(data);
        for s in &settings_args {
            command.arg("-c").arg(s);
        }
        use std::os::unix::process::CommandExt as _;
        let child = command
            // The client's settings reach the restore_command through the environment,
            // so the token is in no file and no command line.
            .envs(settings.to_env())
            .env("WALGATE_PUSH_AHEAD", "0")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            // Its own process group: a Ctrl-C meant for the runner does not reach it.
            .process_group(0)
            .spawn()
            .with_context(|| format!("start {}", bin.join("postgres").display()))?;
        Ok(Server {
            child,
            data: data.to_owned(),
            log,
        })
    }

    /// Waits until recovery is over and the server accepts connections: the
    /// postmaster writes `ready` into `postmaster.pid` then.
    fn wait_ready(&mut self, limit: Duration) -> Result<(), Failure> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(Failure::Failed(format!(
                    "PostgreSQL stopped during recovery ({status}); its log ends:\n{}",
                    tail(&self.log)
                )));
            }
            let pid_file = std::fs::read_to_string(self.data.join("postmaster.pid"));
            if pid_file.is_ok_and(|p| p.lines().nth(7).is_some_and(|s| s.trim() == "ready")) {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(Failure::Failed(format!(
                    "recovery did not finish within {} s; its log ends:\n{}",
                    limit.as_secs(),
                    tail(&self.log)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        stop_postmaster(self.child.id());
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// Immediate shutdown (no checkpoint: the copy is thrown away), then SIGKILL if the
/// postmaster lingers.
fn stop_postmaster(pid: u32) {
    use rustix::process::{Pid, Signal, kill_process, test_kill_process};
    let Some(pid) = Pid::from_raw(pid as i32) else {
        return;
    };
    let _ = kill_process(pid, Signal::QUIT);
    let deadline = Instant::now() + Duration::from_secs(30);
    while test_kill_process(pid).is_ok() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        // Reaped by whoever is its parent; a zombie still answers, so stop at its
        // state rather than wait out the deadline.
        let state = std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()));
        if state.is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        }) {
            return;
        }
    }
    let _ = kill_process(pid, Signal::KILL);
}

/// Stops a drill's postmaster if one still runs there (a crash left it), then
/// removes the directory.
fn remove_drill_dir(dir: &Path) -> anyhow::Result<()> {
    let pid_file = dir.join("data").join("postmaster.pid");
    if let Ok(text) = std::fs::read_to_string(&pid_file)
        && let Some(pid) = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<u32>().ok())
    {
        // Only a postgres of this very directory: the number may be another process's
        // by now.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let ours = String::from_utf8_lossy(&cmdline).contains(&*dir.join("data").to_string_lossy());
        if ours {
            stop_postmaster(pid);
        }
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// psql against a drill's server.
struct Psql<'a> {
    bin: &'a Path,
    dir: &'a Path,
    user: &'a str,
}

impl Psql<'_> {
    /// One query's answer, unaligned (`a|b|c`), as `user` (default: the superuser).
    fn query(&self, database: &str, sql: &str, env: &[(&str, &str)]) -> Result<String, Failure> {
        self.query_as(self.user, database, sql, env)
    }

    fn query_as(
        &self,
        user: &str,
        database: &str,
        sql: &str,
        env: &[(&str, &str)],
    ) -> Result<String, Failure> {
        // One connection string, every value quoted: a database name cannot smuggle in
        // a host or other options.
        let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
        let conninfo = format!(
            "host={} port={PORT} user={} dbname={}",
            quote(&self.dir.to_string_lossy()),
            quote(user),
            quote(database)
        );
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(conninfo)
            .args(["-c", sql])
            .envs(env.iter().copied())
            .env_remove("PGSERVICE")
            .stdin(Stdio::null())
            .output()
            .context("run psql")?;
        if !out.status.success() {
            return Err(Failure::Failed(format!(
                "query failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The cluster's own check, run read-only as a role that may read every table and
    /// nothing else: an admin's query cannot reach the runner's files or programs.
    fn check(&self, check: &DrillCheck, drill: &str) -> Result<(), Failure> {
        // The drill id comes from the gateway: only its letters and digits reach SQL.
        let id: String = drill
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect();
        let role = format!("walgate_drill_{}", id.to_ascii_lowercase());
        self.query(
            "postgres",
            &format!("create role {role} login; grant pg_read_all_data to {role}"),
            &[],
        )?;
        let options = "-c default_transaction_read_only=on -c statement_timeout=600000";
        let got = self
            .query_as(
                &role,
                &check.database,
                &check.sql,
                &[("PGOPTIONS", options)],
            )
            .map_err(|f| match f {
                Failure::Failed(r) => Failure::Failed(format!("the check `{}`: {r}", check.sql)),
                skipped => skipped,
            })?;
        let value: i64 = got.parse().map_err(|_| {
            Failure::Failed(format!(
                "the check `{}` must return one integer, not {got:?}",
                check.sql
            ))
        })?;
        if value < check.min {
            return Err(Failure::Failed(format!(
                "the check `{}` returned {value}; at least {} was expected",
                check.sql, check.min
            )));
        }
        Ok(())
    }
}

fn private(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// The last lines of a log, for a reason.
fn tail(log: &Path) -> String {
    let mut text = String::new();
    let _ = std::fs::File::open(log).and_then(|mut f| f.read_to_string(&mut text));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// Reasons are kept to what the gateway records.
fn truncate(mut reason: String) -> String {
    const MAX: usize = 4000;
    if reason.len() > MAX {
        let mut cut = MAX;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push('…');
    }
    reason
}

/// `MAJOR=DIR`, as `--pg-bin` takes it.
pub fn parse_bin(s: &str) -> Result<(u32, PathBuf), String> {
    let (major, dir) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected MAJOR=DIR, e.g. 17=/usr/lib/postgresql/17/bin"))?;
    let major = major
        .trim()
        .parse()
        .map_err(|_| format!("`{major}` is not a PostgreSQL major version"))?;
    Ok((major, PathBuf::from(dir.trim())))
}

/// The binaries given, or else Debian's `/usr/lib/postgresql/MAJOR/bin`; each must
/// hold `postgres` and `psql`.
pub fn binaries(given: Vec<(u32, PathBuf)>) -> anyhow::Result<BTreeMap<u32, PathBuf>> {
    let mut bins: BTreeMap<u32, PathBuf> = given.into_iter().collect();
    if bins.is_empty()
        && let Ok(dirs) = std::fs::read_dir("/usr/lib/postgresql")
    {
        for d in dirs.flatten() {
            if let Some(major) = d.file_name().to_str().and_then(|n| n.parse().ok()) {
                bins.insert(major, d.path().join("bin"));
            }
        }
    }
    if bins.is_empty() {
        bail!(
            "no PostgreSQL binaries: pass --pg-bin MAJOR=DIR (or WALGATE_DRILL_PG_BIN) for each major to drill"
        );
    }
    for (major, dir) in &bins {
        for program in ["postgres", "psql"] {
            if !dir.join(program).is_file() {
                bail!(
                    "PostgreSQL {major}: no {program} in {}: point --pg-bin {major}=DIR at its bin directory",
                    dir.display()
                );
            }
        }
    }
    Ok(bins)
}

/// This host's name, as runner names go.
pub fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .collect();
    if name.is_empty() {
        "drill-runner".to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_must_reach_the_last_archived_segment() {
        let size = SegmentSize::DEFAULT;
        let end = "000000010000000000000005";
        assert!(check_reached(Lsn(5 * (16 << 20) + 0x60), end, size).is_ok());
        let Err(Failure::Failed(why)) = check_reached(Lsn(3 * (16 << 20) + 0x28), end, size) else {
            panic!("stopped early must fail");
        };
        assert!(
            why.contains("in 000000010000000000000003")
                && why.contains("000000010000000000000004 could not be restored"),
            "{why}"
        );
        // Ending exactly at a segment's end: that segment was read, the next was not.
        let Err(Failure::Failed(why)) = check_reached(Lsn(4 * (16 << 20)), end, size) else {
            panic!("stopped early must fail");
        };
        assert!(why.contains("000000010000000000000004 could not"), "{why}");
    }

    #[test]
    fn binaries_are_given_as_major_and_directory() {
        assert_eq!(
            parse_bin("17=/opt/pg17/bin"),
            Ok((17, PathBuf::from("/opt/pg17/bin")))
        );
        assert!(parse_bin("/opt/pg17/bin").is_err());
        assert!(parse_bin("x=/opt").is_err());
        assert!(binaries(vec![(17, PathBuf::from("/nonexistent"))]).is_err());
    }

    #[test]
    fn long_reasons_are_cut_on_a_character() {
        let r = truncate("é".repeat(3000));
        assert!(r.len() <= 4004 && r.ends_with('…'));
    }
}
