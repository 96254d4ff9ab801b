//! `durable-rename FROM TO`: what PostgreSQL does with each segment a restore_command
//! brought back (`durable_rename` in KeepFileRestoredFromArchive): fsync the file, rename
//! it to its own name, fsync it again and its directory. One process, as the startup
//! process does it in its own, for the WAL benchmark's recovery loop.
#![forbid(unsafe_code)]

use std::fs::File;
use std::path::Path;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, from, to] = &args[..] else {
        eprintln!("usage: durable-rename FROM TO");
        std::process::exit(2);
    };
    File::open(from)?.sync_all()?;
    std::fs::rename(from, to)?;
    File::open(to)?.sync_all()?;
    let dir = Path::new(to).parent().filter(|d| !d.as_os_str().is_empty());
    File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
}
