//! Running the commands the tests drive (PostgreSQL's tools, curl, openssl, the gateway's
//! own subcommands): a failure carries the command's output, and a log's tail goes into
//! failure messages. Also where a process the harness starts gets a free port.

use std::process::Command;

use anyhow::{Context, Result, bail};

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

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<_> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A free loopback port, for a server told its port before it binds it (PostgreSQL, the
/// object-store emulators). Taken below the kernel's ephemeral range, which outgoing
/// connections draw from: a port `bind(0)` had just handed out was once taken by some
/// client's connection before PostgreSQL bound it. A counter keeps this process's picks
/// apart, each process starting elsewhere; a bind checks that nothing holds the port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 10_000;
    // Linux's default ephemeral range starts at 32768.
    let high = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .filter(|&first| first > LOW + 1000)
        .unwrap_or(32_768);
    let span = high - LOW;
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (start + n) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {high}")
}
