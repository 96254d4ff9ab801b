//! Base backup commands: push (pg_basebackup streamed to the gateway), list, fetch into
//! a directory, and restore (fetch the right backup and write the recovery settings).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use walgate_core::api::{Backup, RestorePlan};
use walgate_core::units::human_bytes;

use crate::config::Settings;
use crate::gateway::Gateway;

/// Counts bytes read through it and, on a terminal, shows them on stderr twice a second.
pub struct Progress<R> {
    inner: R,
    what: &'static str,
    bytes: u64,
    started: Instant,
    shown: Instant,
    tty: bool,
}

impl<R> Progress<R> {
    pub fn new(inner: R, what: &'static str) -> Self {
        let now = Instant::now();
        Progress {
            inner,
            what,
            bytes: 0,
            started: now,
            shown: now,
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let mib = self.bytes as f64 / (1 << 20) as f64;
        format!(
            "{}: {mib:.0} MiB in {secs:.0} s ({:.0} MiB/s)",
            self.what,
            mib / secs
        )
    }

    pub fn finish(&self) {
        if self.tty {
            eprintln!("\r{}", self.line());
        }
    }
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        if self.tty && self.shown.elapsed() > Duration::from_millis(500) {
            self.shown = Instant::now();
            eprint!("\r{}", self.line());
            let _ = std::io::stderr().flush();
        }
        Ok(n)
    }
}

/// Runs pg_basebackup and streams its tar, zstd-compressed here, to the gateway.
pub fn push(
    gateway: &Gateway,
    level: i32,
    pg_basebackup: &Path,
    extra: &[String],
) -> anyhow::Result<Backup> {
    let mut child = Command::new(pg_basebackup)
        .args(["-D", "-", "-F", "tar", "-X", "fetch", "--checkpoint=fast"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "run {} (set --pg-basebackup to its path)",
                pg_basebackup.display()
            )
        })?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut compressed = Progress::new(
        crate::parallel::compress(stdout, level),
        "backup (compressed)",
    );
    let sent = gateway.push_backup(&mut compressed);
    compressed.finish();
    let status = child.wait()?;
    if !status.success() {
        bail!("pg_basebackup failed ({status}); the gateway kept nothing");
    }
    sent
}

pub fn print_list(backups: &[Backup], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(backups)?);
        return Ok(());
    }
    println!(
        "{:<42}  {:<8}  {:>10}  {:>10}  {:<24}  END WAL",
        "ID", "STATUS", "SIZE", "STORED", "START WAL"
    );
    for b in backups {
        println!(
            "{:<42}  {:<8}  {:>10}  {:>10}  {:<24}  {}",
            b.id,
            b.status,
            human_bytes(b.size),
            human_bytes(b.stored_size),
            b.start_wal,
            b.end_wal.as_deref().unwrap_or("?")
        );
    }
    Ok(())
}

/// Extracts backup `id` into `dir`, which must be missing or empty.
pub fn fetch(gateway: &Gateway, id: &str, dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && dir.read_dir()?.next().is_some() {
        bail!(
            "{} is not empty: restore into an empty directory",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let body = gateway.open_backup(id)?;
    let mut progress = Progress::new(crate::parallel::decompress(body), "restore");
    unpack(&mut progress, dir)
        .with_context(|| format!("extract backup {id} into {}", dir.display()))?;
    progress.finish();
    Ok(())
}

/// Extracts a tar stream into `dir`. Regular files (nearly all of a data directory) are
/// written in 1 MiB pieces rather than the tar crate's 8 KiB ones; everything else goes
/// through the tar crate's own checks.
fn unpack(input: impl Read, dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(true);
    let mut buf = vec![0u8; 1 << 20];
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let safe = path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if entry.header().entry_type() != tar::EntryType::Regular || !safe {
            entry.unpack_in(dir)?;
            continue;
        }
        let target = dir.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::File::create(&target)
            .with_context(|| format!("create {}", target.display()))?;
        loop {
            let n = entry.read(&mut buf)?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n])?;
        }
        let mode = entry.header().mode()? & 0o7777;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Appends the plan's recovery settings to `postgresql.auto.conf` and creates
/// `recovery.signal`, with `restore_command` running this client.
pub fn write_recovery(dir: &Path, plan: &RestorePlan, restore_command: &str) -> anyhow::Result<()> {
    let quote = |v: &str| format!("'{}'", v.replace('\'', "''"));
    let mut text = format!(
        "\n# Written by walgate-client restore from backup {}\n",
        plan.backup.id
    );
    for (key, value) in &plan.recovery_settings {
        let value = if key == "restore_command" {
            restore_command
        } else {
            value
        };
        text += &format!("{key} = {}\n", quote(value));
    }
    let conf = dir.join("postgresql.auto.conf");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&conf)?;
    f.write_all(text.as_bytes())?;
    std::fs::write(dir.join("recovery.signal"), "")?;
    Ok(())
}

/// The restore_command that runs this very client with the same gateway settings.
pub fn client_restore_command(settings: &Settings, token_file: &Path) -> anyhow::Result<String> {
    let exe: PathBuf = std::env::current_exe().context("find this program's path")?;
    let mut command = format!(
        "{} --url {} --cluster {} --token-file {}",
        exe.display(),
        settings.url,
        settings.cluster,
        std::path::absolute(token_file)?.display()
    );
    if let Some(ca) = &settings.ca_file {
        command += &format!(" --ca-file {}", std::path::absolute(ca)?.display());
    }
    Ok(command + " wal-fetch %f %p")
}
