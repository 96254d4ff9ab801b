//! `delay-proxy LISTEN UPSTREAM DELAY_MS`: a TCP proxy that makes a fast link look like a
//! WAN one, for benchmarks on a kernel without netem.
//!
//! Every byte is held `DELAY_MS` in each direction (so a round trip costs twice that), and
//! a new connection's first bytes to the upstream wait one more round trip, as TCP's
//! handshake would. Bytes are timestamped as they arrive and released when due, never
//! queued behind each other, so the link's bandwidth is not capped. Prints
//! `listening on ADDR` once ready.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, upstream, delay_ms] = &args[..] else {
        eprintln!("usage: delay-proxy LISTEN UPSTREAM DELAY_MS");
        std::process::exit(2);
    };
    let delay = Duration::from_millis(delay_ms.parse().expect("DELAY_MS is a number"));
    let listener = TcpListener::bind(listen).expect("bind LISTEN");
    println!("listening on {}", listener.local_addr().expect("address"));
    for client in listener.incoming().flatten() {
        let upstream = upstream.clone();
        thread::spawn(move || {
            if let Err(e) = connect(client, &upstream, delay) {
                eprintln!("delay-proxy: {e}");
            }
        });
    }
}

fn connect(client: TcpStream, upstream: &str, delay: Duration) -> std::io::Result<()> {
    let accepted = Instant::now();
    let server = TcpStream::connect(upstream)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    // The handshake's round trip: nothing reaches the upstream before it is over.
    pump(
        client.try_clone()?,
        server.try_clone()?,
        delay,
        accepted + 2 * delay,
    );
    pump(server, client, delay, accepted);
    Ok(())
}

/// Copies `from` to `to`, each chunk `delay` after it arrived (and not before
/// `not_before + delay`), then passes the end of the stream on.
fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration, not_before: Instant) {
    let (tx, rx) = mpsc::channel::<(Instant, Option<Vec<u8>>)>();
    thread::spawn(move || {
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = from.read(&mut buf).unwrap_or(0);
            let due = Instant::now().max(not_before) + delay;
            let chunk = (n > 0).then(|| buf[..n].to_vec());
            if tx.send((due, chunk)).is_err() || n == 0 {
                break;
            }
        }
    });
    thread::spawn(move || {
        for (due, chunk) in rx {
            thread::sleep(due.saturating_duration_since(Instant::now()));
            match chunk {
                Some(bytes) if to.write_all(&bytes).is_ok() => {}
                _ => {
                    let _ = to.shutdown(Shutdown::Write);
                    break;
                }
            }
        }
    });
}
