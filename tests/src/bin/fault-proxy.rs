//! `fault-proxy LISTEN UPSTREAM FAULTS_FILE`: an HTTP proxy in front of an object store
//! that refuses to delete some objects, as a store with a deny policy or a fault would.
//!
//! A `DELETE` whose path contains a line of FAULTS_FILE (read at each request, so a test
//! lifts the fault by emptying the file) gets S3's `403 AccessDenied`. A bulk delete
//! (`POST ?delete`) naming such an object gets what S3 answers when a policy denies it:
//! `200` with an `AccessDenied` error for each object the request names. Every other
//! request passes through. Each connection carries one request: the proxy asks both
//! sides to close after it, so it reads no body but a bulk delete's. Prints
//! `listening on ADDR` once ready.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, upstream, faults] = &args[..] else {
        eprintln!("usage: fault-proxy LISTEN UPSTREAM FAULTS_FILE");
        std::process::exit(2);
    };
    let listener = TcpListener::bind(listen).expect("bind LISTEN");
    println!("listening on {}", listener.local_addr().expect("address"));
    for client in listener.incoming().flatten() {
        let upstream = upstream.clone();
        let faults = PathBuf::from(faults);
        thread::spawn(move || {
            if let Err(e) = serve(client, &upstream, &faults) {
                eprintln!("fault-proxy: {e}");
            }
        });
    }
}

fn serve(mut client: TcpStream, upstream: &str, faults: &Path) -> io::Result<()> {
    let (head, mut rest) = read_head(&mut client)?;
    let request_line = head.lines().next().unwrap_or_default();
    let mut words = request_line.split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let faults = std::fs::read_to_string(faults).unwrap_or_default();
    let refused = |key: &str| faults.lines().any(|f| !f.is_empty() && key.contains(f));
    if method == "DELETE" && refused(target) {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
                    <Message>Access Denied (fault-proxy)</Message></Error>";
        return answer(client, "403 Forbidden", body);
    }
    if method == "POST" && target.ends_with("?delete") {
        let length = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        while rest.len() < length {
            let mut chunk = vec![0u8; length - rest.len()];
            let n = client.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        let request = String::from_utf8_lossy(&rest);
        let keys: Vec<&str> = request
            .split("<Key>")
            .skip(1)
            .filter_map(|k| k.split_once("</Key>").map(|(k, _)| k))
            .collect();
        if keys.iter().any(|k| refused(k)) {
            let errors: String = keys
                .iter()
                .map(|k| {
                    format!(
                        "<Error><Key>{k}</Key><Code>AccessDenied</Code>\
                         <Message>Access Denied (fault-proxy)</Message></Error>"
                    )
                })
                .collect();
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DeleteResult \
                 xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{errors}</DeleteResult>"
            );
            return answer(client, "200 OK", &body);
        }
    }
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(closing(&head).as_bytes())?;
    server.write_all(&rest)?;
    let (mut from_client, mut to_server) = (client.try_clone()?, server.try_clone()?);
    thread::spawn(move || {
        let _ = io::copy(&mut from_client, &mut to_server);
    });
    let (head, rest) = read_head(&mut server)?;
    client.write_all(closing(&head).as_bytes())?;
    client.write_all(&rest)?;
    io::copy(&mut server, &mut client)?;
    let _ = server.shutdown(Shutdown::Both);
    client.shutdown(Shutdown::Both)
}

/// Answers with `status` and an XML `body`, and closes.
fn answer(mut client: TcpStream, status: &str, body: &str) -> io::Result<()> {
    write!(
        client,
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    client.shutdown(Shutdown::Both)
}

/// Reads up to the end of an HTTP head; returns it (without the blank line) and the
/// bytes read past it.
fn read_head(from: &mut TcpStream) -> io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            return Ok((head, buf[end + 4..].to_vec()));
        }
        let n = from.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before the end of an HTTP head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `head` asking for the connection to close after this message.
fn closing(head: &str) -> String {
    let mut out: String = head
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
        .flat_map(|line| [line, "\r\n"])
        .collect();
    out.push_str("Connection: close\r\n\r\n");
    out
}
