//! Base backup commands: push (pg_basebackup streamed to the gateway), list, fetch into
//! a directory, and restore (fetch the right backup and write the recovery settings).

use std::collections::HashSet;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
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

/// pg_basebackup's output, which ends only once pg_basebackup has exited successfully.
/// A failure becomes a read error, so the upload is cut and the gateway keeps nothing;
/// a clean end would send a short tar stream as if it were the whole backup.
struct BasebackupOutput {
    stdout: ChildStdout,
    child: Arc<Mutex<Child>>,
}

impl Read for BasebackupOutput {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let status = self.child.lock().expect("pg_basebackup").wait()?;
            if !status.success() {
                return Err(io::Error::other(format!(
                    "pg_basebackup failed ({status}); its output is not a backup"
                )));
            }
        }
        Ok(n)
    }
}

/// A backup manifest downloaded for `pg_basebackup --incremental`, removed when dropped.
pub struct ParentManifest {
    pub path: PathBuf,
    /// The backup it is of.
    pub id: String,
}

impl ParentManifest {
    /// Downloads the newest complete backup's manifest into a private temporary file.
    pub fn latest(gateway: &Gateway) -> anyhow::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let path =
            std::env::temp_dir().join(format!("walgate-parent-manifest-{}", std::process::id()));
        // Created here, private, before anything is written into it.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("create {}", path.display()))?;
        let mut manifest = ParentManifest {
            path,
            id: String::new(),
        };
        manifest.id = gateway
            .fetch_manifest("latest", &manifest.path)
            .context("download the newest backup's manifest (take a full backup first)")?;
        Ok(manifest)
    }
}

impl Drop for ParentManifest {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Runs pg_basebackup and streams its tar, zstd-compressed here, to the gateway; with
/// `parent`, an incremental backup against that manifest.
pub fn push(
    gateway: &Gateway,
    level: i32,
    pg_basebackup: &Path,
    parent: Option<&ParentManifest>,
    extra: &[String],
) -> anyhow::Result<Backup> {
    let mut command = Command::new(pg_basebackup);
    command.args(["-D", "-", "-F", "tar", "-X", "fetch", "--checkpoint=fast"]);
    if let Some(parent) = parent {
        command.arg(format!("--incremental={}", parent.path.display()));
    }
    let mut child = command
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
    let child = Arc::new(Mutex::new(child));
    let output = BasebackupOutput {
        stdout,
        child: child.clone(),
    };
    let mut compressed = Progress::new(
        crate::parallel::compress(output, level),
        "backup (compressed)",
    );
    let sent = gateway.push_backup(&mut compressed, parent.map(|p| p.id.as_str()));
    compressed.finish();
    let mut child = child.lock().expect("pg_basebackup");
    // Exited already: it failed (and cut the upload) or it finished. Still running: the
    // gateway answered before the end (busy, a revoked token), so stop it rather than
    // leave it blocked on a pipe nobody reads.
    let exited = child.try_wait()?;
    drop(compressed);
    if exited.is_none() {
        let _ = child.kill();
    }
    let status = child.wait()?;
    match sent {
        Ok(backup) if status.success() => Ok(backup),
        Ok(backup) => bail!(
            "pg_basebackup failed ({status}) after the gateway stored backup {}: delete it with the gateway's API",
            backup.id
        ),
        Err(e) if exited.is_some_and(|s| !s.success()) => Err(e.context(format!(
            "pg_basebackup failed ({status}); the gateway kept nothing"
        ))),
        Err(e) => Err(e),
    }
}

pub fn print_list(backups: &[Backup], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(backups)?);
        return Ok(());
    }
    println!(
        "{:<42}  {:<8}  {:<11}  {:>10}  {:>10}  {:<24}  END WAL",
        "ID", "STATUS", "KIND", "SIZE", "STORED", "START WAL"
    );
    for b in backups {
        println!(
            "{:<42}  {:<8}  {:<11}  {:>10}  {:>10}  {:<24}  {}",
            b.id,
            b.status,
            b.kind.as_str(),
            human_bytes(b.size),
            human_bytes(b.stored_size),
            b.start_wal,
            b.end_wal.as_deref().unwrap_or("?")
        );
    }
    Ok(())
}

/// Creates `dir` (private) if it is missing; refuses one that is not empty.
fn empty_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && dir.read_dir()?.next().is_some() {
        bail!(
            "{} is not empty: restore into an empty directory",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// How many links of a chain download at once.
const DOWNLOADS: usize = 3;

/// Restores `chain` (a full backup, then the incrementals up to the one to restore)
/// into `dir`: one backup is extracted there; several are extracted side by side into
/// `<dir>.chain`, all at once, then combined into `dir` by `pg_combinebackup`.
pub fn restore_chain(
    gateway: &Gateway,
    chain: &[String],
    dir: &Path,
    pg_combinebackup: &Path,
) -> anyhow::Result<()> {
    let [first, rest @ ..] = chain else {
        bail!("the plan names no backup");
    };
    if rest.is_empty() {
        return fetch(gateway, first, dir);
    }
    empty_dir(dir)?;
    // Beside `dir`, whatever way it was named (a trailing slash, `.`).
    let dir = dir.canonicalize()?;
    let mut name = dir
        .file_name()
        .context("restore into a directory, not /")?
        .to_owned();
    name.push(".chain");
    let staging = dir.with_file_name(name);
    empty_dir(&staging)?;
    let links: Vec<PathBuf> = chain.iter().map(|id| staging.join(id)).collect();
    let combined = std::thread::scope(|s| {
        // A few links at a time: each decodes on every core already.
        for wave in chain
            .iter()
            .zip(&links)
            .collect::<Vec<_>>()
            .chunks(DOWNLOADS)
        {
            let downloads: Vec<_> = wave
                .iter()
                .map(|&(id, link)| s.spawn(move || fetch(gateway, id, link)))
                .collect();
            for d in downloads {
                d.join().expect("a download thread panicked")?;
            }
        }
        // No fsync: PostgreSQL syncs the whole data directory as it starts recovery
        // from a backup (and `backup-fetch` writes without it too).
        let status = Command::new(pg_combinebackup)
            .args(["--no-sync", "-o"])
            .arg(&dir)
            .args(&links)
            .status()
            .with_context(|| {
                format!(
                    "run {} (set --pg-combinebackup to the path of PostgreSQL's own)",
                    pg_combinebackup.display()
                )
            })?;
        if !status.success() {
            bail!("pg_combinebackup failed ({status})");
        }
        Ok(())
    });
    // The extracted links are as large as the data directory: never left behind.
    let removed =
        std::fs::remove_dir_all(&staging).with_context(|| format!("remove {}", staging.display()));
    combined?;
    removed
}

/// Extracts backup `id` into `dir`, which must be missing or empty.
pub fn fetch(gateway: &Gateway, id: &str, dir: &Path) -> anyhow::Result<()> {
    empty_dir(dir)?;
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
    let mut made = HashSet::new();
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
        make_parents(dir, &path, &mut made)?;
        // A symlink of the same name (from an earlier member) is replaced, not followed.
        if std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink()) {
            std::fs::remove_file(&target)?;
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

/// Creates the directories above member `path` in `dir`, through real directories only:
/// a member stored below a symlink that an earlier member made would be written wherever
/// the link points. `made` remembers the directories already checked.
fn make_parents(dir: &Path, path: &Path, made: &mut HashSet<PathBuf>) -> anyhow::Result<()> {
    let mut at = PathBuf::new();
    for part in path.parent().into_iter().flat_map(Path::components) {
        at.push(part);
        if made.contains(&at) {
            continue;
        }
        let full = dir.join(&at);
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!(
                "the backup stores {} below {}, which is not a directory here (a symlink?): \
                 refusing to write outside {}",
                path.display(),
                at.display(),
                dir.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir(&full).with_context(|| format!("create {}", full.display()))?
            }
            Err(e) => return Err(e.into()),
        }
        made.insert(at.clone());
    }
    Ok(())
}

/// Appends the plan's recovery settings to `postgresql.auto.conf` and creates
/// `recovery.signal`, with `restore_command` running this client; for a `drill`, turns
/// archiving off (the setting read last wins, and this file is read last).
pub fn write_recovery(
    dir: &Path,
    plan: &RestorePlan,
    restore_command: &str,
    drill: bool,
) -> anyhow::Result<()> {
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
    if drill {
        text += "# A drill: this copy must never write to the production archive.\narchive_mode = 'off'\n";
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar stream of `members`: (path, symlink target or file contents).
    fn tar_of(members: &[(&str, Result<&Path, &[u8]>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, member) in members {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o600);
            match member {
                Ok(link) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, path, link).unwrap();
                }
                Err(data) => {
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, path, *data).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn members_never_land_outside_the_directory_through_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("kept"), "mine").unwrap();

        // Below a symlink to a directory outside: refused, nothing written there.
        let dir = tmp.path().join("a");
        std::fs::create_dir(&dir).unwrap();
        let stream = tar_of(&[
            ("base/1", Err(b"data")),
            ("link", Ok(&outside)),
            ("link/evil", Err(b"evil")),
        ]);
        let e = format!("{:#}", unpack(&stream[..], &dir).unwrap_err());
        assert!(e.contains("refusing to write outside"), "{e}");
        assert!(!outside.join("evil").exists());
        assert_eq!(std::fs::read(dir.join("base/1")).unwrap(), b"data");

        // A file over a symlink to a file outside: the link is replaced, not followed.
        let dir = tmp.path().join("b");
        std::fs::create_dir(&dir).unwrap();
        let stream = tar_of(&[
            ("kept", Ok(&outside.join("kept"))),
            ("kept", Err(b"theirs")),
        ]);
        unpack(&stream[..], &dir).unwrap();
        assert_eq!(std::fs::read(outside.join("kept")).unwrap(), b"mine");
        assert_eq!(std::fs::read(dir.join("kept")).unwrap(), b"theirs");
    }
}
