//! Bad input over real sockets with real curl: each answer's status, and the archive
//! (catalog listing and stored objects) left exactly as it was.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use walgate_tests::{Gateway, body_bytes, run, wait_until};

const SYSID: u64 = 7_300_000_000_000_000_001;
const SEG: usize = 16 << 20;

fn segment(sysid: u64, segno: u64) -> Vec<u8> {
    walgate_tests::synthetic_segment(sysid, 1, segno, 0)
}

struct Env {
    _dir: tempfile::TempDir,
    files: PathBuf,
    gateway: Gateway,
    admin: String,
}

impl Env {
    fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let p = self.files.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// A PUT of `file` with curl, returning the HTTP status and the body. (`-T` would
    /// rewrite a URL that ends in `..`; `--data-binary` sends the path as given.)
    fn put(&self, token: Option<&str>, path: &str, file: &Path) -> (u16, String) {
        let out = self.files.join("answer");
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--path-as-is", "-X", "PUT", "-o"])
            .arg(&out)
            .args(["-w", "%{http_code}"]);
        cmd.arg("--data-binary").arg(format!("@{}", file.display()));
        if let Some(t) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        let code = run(cmd.arg(format!("{}{path}", self.gateway.url))).unwrap();
        (
            code.trim().parse().unwrap(),
            std::fs::read_to_string(out).unwrap_or_default(),
        )
    }

    /// Archives `main`'s segment 3 (pinning the cluster to `SYSID`); returns an archiver
    /// token.
    fn archive_first(&self) -> String {
        let archiver = self.gateway.token("main", "archiver");
        let good = self.file("good", &segment(SYSID, 3));
        let path = "/v1/clusters/main/wal/000000010000000000000003";
        assert_eq!(self.put(Some(&archiver), path, &good).0, 201);
        archiver
    }

    fn snapshot(&self) -> (Vec<(PathBuf, Vec<u8>)>, Vec<u8>) {
        let mut objects = vec![];
        let mut stack = vec![self.gateway.data_dir.join("objects/clusters")];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    objects.push((e.path(), std::fs::read(e.path()).unwrap()));
                }
            }
        }
        objects.sort();
        let list = body_bytes(self.gateway.get("/v1/clusters/main/wal", Some(&self.admin)));
        (objects, list)
    }
}

fn setup() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let gateway =
        Gateway::start_serving(&dir.path().join("data"), &[], &["--wal-idle-timeout", "2s"]);
    let admin = gateway.token("*", "admin");
    Env {
        _dir: dir,
        files,
        gateway,
        admin,
    }
}

#[test]
fn bad_requests_get_clear_errors_and_store_nothing() {
    let env = setup();
    let archiver = env.archive_first();
    let before = env.snapshot();

    let mut short = segment(SYSID, 4);
    short.truncate(SEG / 2);
    let short = env.file("short", &short);
    let foreign = env.file("foreign", &segment(SYSID + 1, 4));
    let next = env.file("next", &segment(SYSID, 4));
    let other_cluster = env.gateway.token("other", "archiver");
    let expired =
        env.gateway
            .token_with(&["--cluster", "main", "--role", "archiver", "--expires", "1s"]);
    let revoked = env.gateway.token_with(&[
        "--cluster",
        "main",
        "--role",
        "archiver",
        "--description",
        "to-revoke",
    ]);
    let list = run(&mut env.gateway.command(&["token", "list", "--json"])).unwrap();
    let tokens: serde_json::Value = serde_json::from_str(&list).unwrap();
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["description"] == "to-revoke")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    run(&mut env.gateway.command(&["token", "revoke", &id])).unwrap();
    wait_until(Duration::from_secs(60), "the 1 s token to expire", || {
        env.gateway.get("/v1/tokens/self", Some(&expired)).status() == 401
    });

    let wal = "/v1/clusters/main/wal/000000010000000000000004";
    // A restore plan reads history files back: one that does not parse is refused.
    let garbage_history = env.file("garbage-history", b"1\tnot-an-lsn\tno recovery target\n");
    // A real segment of this system, named at the very end of the WAL address space.
    let far = env.file("far", &segment(SYSID, u64::MAX >> 24));
    // (what, token, path, body, status, error code)
    type Case<'a> = (&'a str, Option<&'a str>, &'a str, &'a Path, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "dot-dot name",
            Some(&archiver),
            "/v1/clusters/main/wal/..",
            &next,
            400,
            "bad_name",
        ),
        (
            "escaped slash",
            Some(&archiver),
            "/v1/clusters/main/wal/..%2F000000010000000000000004",
            &next,
            400,
            "bad_name",
        ),
        (
            "lowercase hex",
            Some(&archiver),
            "/v1/clusters/main/wal/00000001000000000000000a",
            &next,
            400,
            "bad_name",
        ),
        (
            "wrong size",
            Some(&archiver),
            wal,
            &short,
            400,
            "bad_content",
        ),
        (
            "other database",
            Some(&archiver),
            wal,
            &foreign,
            409,
            "wrong_system",
        ),
        (
            "segment a petabyte past the archive",
            Some(&archiver),
            "/v1/clusters/main/wal/00000001FFFFFFFF000000FF",
            &far,
            409,
            "conflict",
        ),
        (
            "garbage history file",
            Some(&archiver),
            "/v1/clusters/main/wal/00000002.history",
            &garbage_history,
            400,
            "bad_content",
        ),
        ("no token", None, wal, &next, 401, "unauthorized"),
        (
            "other cluster's token",
            Some(&other_cluster),
            wal,
            &next,
            403,
            "forbidden",
        ),
        (
            "expired token",
            Some(&expired),
            wal,
            &next,
            401,
            "unauthorized",
        ),
        (
            "revoked token",
            Some(&revoked),
            wal,
            &next,
            401,
            "unauthorized",
        ),
        (
            "garbage token",
            Some("eyJhbGciOiJub25lIn0.e30."),
            wal,
            &next,
            401,
            "unauthorized",
        ),
    ];
    for (what, token, path, file, status, code) in cases {
        let (got, body) = env.put(token, path, file);
        assert_eq!(got, status, "{what}: {body}");
        let json: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: {body}"));
        assert_eq!(json["error"], code, "{what}: {body}");
        assert!(
            json["message"].as_str().unwrap().len() > 20,
            "{what}: {body}"
        );
        assert!(env.snapshot() == before, "{what} changed the archive");
    }
    // The good token still works: nothing above broke the gateway.
    assert_eq!(env.put(Some(&archiver), wal, &next).0, 201);
}

#[test]
fn cut_uploads_leave_nothing_behind() {
    let env = setup();
    let archiver = env.gateway.token("main", "archiver");
    let addr = env.gateway.url.trim_start_matches("http://").to_owned();
    let body = segment(SYSID, 4);
    let head = |extra: &str| {
        format!(
            "PUT /v1/clusters/main/wal/000000010000000000000004 HTTP/1.1\r\nHost: {addr}\r\n\
             Authorization: Bearer {archiver}\r\n{extra}\r\n"
        )
    };
    // With a length, cut after 1 MiB.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(head(&format!("Content-Length: {SEG}\r\n")).as_bytes())
        .unwrap();
    s.write_all(&body[..1 << 20]).unwrap();
    drop(s);
    // Chunked, cut before the last chunk.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(head("Transfer-Encoding: chunked\r\n").as_bytes())
        .unwrap();
    for chunk in body[..SEG - 4096].chunks(1 << 20) {
        write!(s, "{:x}\r\n", chunk.len()).unwrap();
        s.write_all(chunk).unwrap();
        s.write_all(b"\r\n").unwrap();
    }
    drop(s);
    // Stalled after 1 MiB (a host that vanished without a reset): given up with a 408
    // once the idle timeout passes, instead of holding a worker forever.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(head(&format!("Content-Length: {SEG}\r\n")).as_bytes())
        .unwrap();
    s.write_all(&body[..1 << 20]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("sent nothing for 2 s"), "{answer}");
    drop(s);
    // Each cut upload is refused (and logged) once the gateway has seen its end.
    wait_until(
        Duration::from_secs(60),
        "the three cut uploads to be refused",
        || env.gateway.log().matches("WAL file refused").count() >= 3,
    );

    let head_status = |name: &str| {
        let req = walgate_tests::agent()
            .head(format!("{}/v1/clusters/main/wal/{name}", env.gateway.url))
            .header("Authorization", format!("Bearer {archiver}"));
        req.call().unwrap().status().as_u16()
    };
    assert_eq!(head_status("000000010000000000000004"), 404);
    let (objects, _) = env.snapshot();
    assert!(objects.is_empty(), "a cut upload left objects: {objects:?}");
    let stray: Vec<_> = walk_all(&env.gateway.data_dir.join("objects"));
    assert!(stray.is_empty(), "a cut upload left files: {stray:?}");
    // The full upload afterwards succeeds.
    let file = env.file("seg", &body);
    assert_eq!(
        env.put(
            Some(&archiver),
            "/v1/clusters/main/wal/000000010000000000000004",
            &file
        )
        .0,
        201
    );
}

/// A zstd body that decodes to a valid segment and then to nothing, for ever (empty
/// frames): refused once it is longer than any segment compresses to, not buffered.
#[test]
fn zstd_bodies_that_decode_to_little_are_bounded() {
    let env = setup();
    let archiver = env.gateway.token("main", "archiver");
    let mut body = zstd::encode_all(&segment(SYSID, 4)[..], 1).unwrap();
    let empty = zstd::encode_all(&[][..], 1).unwrap();
    while body.len() < SEG + (1 << 20) {
        body.extend_from_slice(&empty);
    }
    let before = env.snapshot();
    let put = || {
        walgate_tests::agent()
            .put(format!(
                "{}/v1/clusters/main/wal/000000010000000000000004",
                env.gateway.url
            ))
            .header("Authorization", format!("Bearer {archiver}"))
            .header("Content-Encoding", "zstd")
    };
    // Chunked, so only the stream itself can tell.
    let r = put()
        .send(ureq::SendBody::from_reader(&mut &body[..]))
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(env.snapshot(), before);
    // With its length declared, before a byte is read.
    assert_eq!(put().send(&body[..]).unwrap().status(), 413);
    assert_eq!(env.snapshot(), before);
}

/// Connections that never finish their request headers (or send nothing at all) are
/// closed once they have been silent as long as a WAL body may be, not kept for ever.
#[test]
fn connections_that_never_send_their_headers_are_closed() {
    let env = setup();
    let addr = env.gateway.url.trim_start_matches("http://").to_owned();
    // The gateway's idle timeout is 2 s; hyper's own default is 30 s, so a close within
    // 20 s is the gateway's doing, however slow the machine.
    let closed = |s: &mut TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut answer = Vec::new();
        std::io::Read::read_to_end(s, &mut answer).expect("the gateway should close it");
    };
    let mut silent = TcpStream::connect(&addr).unwrap();
    let mut partial = TcpStream::connect(&addr).unwrap();
    partial
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n").as_bytes())
        .unwrap();
    closed(&mut silent);
    closed(&mut partial);
    // A request sent in time is answered as ever.
    let r = walgate_tests::agent()
        .get(format!("{}/healthz", env.gateway.url))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Sends `head` and then `piece` about every second, reading for the answer in between,
/// until the gateway answers or closes (at most `deadline`); returns the answer.
fn trickle(addr: &str, head: &str, piece: &[u8], deadline: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < deadline {
        if s.write_all(piece).is_err() {
            break; // closed: the answer is waiting
        }
        match std::io::Read::read(&mut s, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(_) => break,
        }
    }
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = std::io::Read::read_to_end(&mut s, &mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Bodies that trickle, never silent long enough for an idle limit: a WAL upload is
/// given up (408) once it falls behind 64 KiB/s past its grace, and a sign-in form once
/// behind 1 KiB/s past 10 s; neither holds its memory or connection for ever, and a
/// real push goes through afterwards.
#[test]
fn bodies_that_trickle_are_given_up() {
    let env = setup();
    let archiver = env.gateway.token("main", "archiver");
    let addr = env.gateway.url.trim_start_matches("http://").to_owned();
    let wal = format!(
        "PUT /v1/clusters/main/wal/000000010000000000000004 HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {archiver}\r\nContent-Length: {SEG}\r\n\r\n"
    );
    let body = segment(SYSID, 4);
    let answer = trickle(&addr, &wal, &body[..1024], Duration::from_secs(120));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("too slowly"), "{answer}");

    let login = format!(
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 100000\r\n\r\n"
    );
    let answer = trickle(&addr, &login, b"token=aaaaa", Duration::from_secs(120));
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");

    let file = env.file("seg", &body);
    let path = "/v1/clusters/main/wal/000000010000000000000004";
    assert_eq!(env.put(Some(&archiver), path, &file).0, 201);
}

/// A base backup's body may be silent for minutes while the server's checkpoint runs
/// (pg_basebackup's default is a spread one): `pg_basebackup | curl -T -`, a PUT, is not
/// held to the 10 s pace of small bodies.
#[test]
fn a_backup_silent_through_its_checkpoint_is_stored() {
    let env = setup();
    let archiver = env.archive_first();
    let file = env.file(
        "backup.tar",
        &walgate_tests::synthetic_backup(15, SYSID, 3, ""),
    );
    let header = env.files.join("auth");
    std::fs::write(&header, format!("Authorization: Bearer {archiver}\n")).unwrap();
    let script = format!(
        "(sleep 12; cat {}) | curl -sS -H @{} -T - -o /dev/null -w '%{{http_code}}' {}/v1/clusters/main/backups",
        file.display(),
        header.display(),
        env.gateway.url
    );
    let code = run(Command::new("bash").args(["-o", "pipefail", "-c", &script])).unwrap();
    assert_eq!(code.trim(), "201");
}

/// A WAL upload that trickles gives its memory back before a push waiting behind it
/// gives up: with room for one segment, a real push to another cluster, queued behind
/// a trickle, is stored (201), not told to retry (503).
#[test]
fn a_trickling_upload_does_not_starve_other_clusters() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start_serving(
        &dir.path().join("data"),
        &[],
        &["--wal-idle-timeout", "10s", "--wal-memory", "30MiB"],
    );
    let addr = gateway.url.trim_start_matches("http://").to_owned();
    let slow = gateway.token("slow", "archiver");
    let (status, _) = gateway.send(
        "PUT",
        "/v1/clusters/slow/wal/000000010000000000000003",
        &slow,
        segment(SYSID, 3),
    );
    assert_eq!(status, 201);
    let body = segment(SYSID, 4);
    let head = format!(
        "PUT /v1/clusters/slow/wal/000000010000000000000004 HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {slow}\r\nContent-Length: {SEG}\r\n\r\n"
    );
    let trickler = std::thread::spawn({
        let addr = addr.clone();
        move || trickle(&addr, &head, &body[..1024], Duration::from_secs(120))
    });
    // Once the trickle holds the memory, a push to another cluster queues behind it.
    let waiting = |n: usize| {
        let metrics = body_bytes(gateway.get("/metrics", Some(&gateway.token("*", "viewer"))));
        String::from_utf8_lossy(&metrics).contains(&format!("walgate_wal_uploads_waiting {n}\n"))
    };
    let other = gateway.token("other", "archiver");
    let pushed = std::thread::spawn({
        let (url, other) = (gateway.url.clone(), other.clone());
        move || {
            walgate_tests::agent()
                .put(format!(
                    "{url}/v1/clusters/other/wal/000000010000000000000003"
                ))
                .header("Authorization", format!("Bearer {other}"))
                .config()
                .http_status_as_error(false)
                .build()
                .send(&segment(SYSID + 1, 3)[..])
                .unwrap()
                .status()
                .as_u16()
        }
    });
    wait_until(
        Duration::from_secs(60),
        "the push to queue or finish",
        || waiting(1) || pushed.is_finished(),
    );
    assert_eq!(pushed.join().unwrap(), 201);
    let answer = trickler.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// Past its connection limit the gateway closes new connections at once and says so
/// in its log, instead of running out of file descriptors; once they go, it serves.
#[test]
fn connections_past_the_limit_are_closed_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let gateway =
        Gateway::start_serving(&dir.path().join("data"), &[], &["--max-connections", "8"]);
    let addr = gateway.url.trim_start_matches("http://").to_owned();
    // Silent connections wait up to 30 s for their headers. Of nine, one is closed at
    // once: which one depends on the order the gateway's tasks run in.
    let held: Vec<TcpStream> = (0..9).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    wait_until(Duration::from_secs(20), "the limit to be logged", || {
        gateway.log().contains("connection limit reached")
    });
    let closed = |mut s: &TcpStream| {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = [0u8; 64];
        match std::io::Read::read(&mut s, &mut buf) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    };
    wait_until(
        Duration::from_secs(20),
        "a connection past the limit to be closed",
        || held.iter().any(closed),
    );
    drop(held);
    wait_until(
        Duration::from_secs(30),
        "the gateway to serve again",
        || {
            walgate_tests::agent()
                .get(format!("{}/healthz", gateway.url))
                .call()
                .is_ok_and(|r| r.status() == 200)
        },
    );
}

/// Whatever the umask it is started under (Debian's is 022), the gateway creates its
/// catalog, keys and stored objects (database contents) for its own user alone.
#[test]
fn the_data_directory_is_private_whatever_the_umask() {
    let env = setup();
    env.archive_first();
    let mut paths = walk_all(&env.gateway.data_dir);
    assert!(
        paths
            .iter()
            .any(|p| p.ends_with("000000010000000000000003.zst"))
    );
    let mut stack = vec![env.gateway.data_dir.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
                paths.push(e.path());
            }
        }
    }
    paths.push(env.gateway.data_dir.clone());
    for p in paths {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is {:o}", p.display(), mode & 0o777);
    }
}

fn walk_all(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk_all(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}
