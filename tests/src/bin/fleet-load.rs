//! `fleet-load`: a fleet of small clusters archiving at once, for the load benchmark.
//!
//! ```text
//! fleet-load URL ADMIN_TOKEN SEGMENT CLUSTERS PERIOD_S DURATION_S
//! ```
//!
//! Plays CLUSTERS clusters (`load-0001`, ...), each with its own archiver token (issued
//! through the API with ADMIN_TOKEN) and system identifier. Each pushes one segment every
//! PERIOD_S seconds for DURATION_S seconds, the clusters' turns spread evenly over the
//! period, on a new connection each time, as an `archive_command` does. A segment is
//! SEGMENT (a real 16 MiB WAL segment) with its first page header rewritten for the
//! cluster, timeline 1 and its position, sent as `walgate-client wal-push` sends it: zstd
//! frames of 256 KiB, level 1. Only the first frame differs between pushes, so the others
//! are compressed once: the generator must not take the cores the gateway is measured on.
//!
//! Latency is counted from each push's turn, not from when a worker got to it, so a slow
//! gateway cannot hide behind a queue here. Prints one line of JSON: pushes, latencies
//! (p50, p99, worst, in ms), how late the slowest push started, and answers by status.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use walgate_core::{LongPageHeader, Lsn, SegmentSize, Timeline};

/// The client's frame size.
const FRAME: usize = 256 << 10;
/// Pushes in flight at most: enough that the generator never queues at 250 ms a push.
const WORKERS: usize = 32;
const SYSID_BASE: u64 = 7_400_000_000_000_000_000;

struct Push {
    cluster: usize,
    segno: u64,
    due: Instant,
}

#[derive(Default)]
struct Tally {
    latencies_ms: Vec<f64>,
    late_ms: f64,
    by_status: BTreeMap<String, u64>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, admin, segment, clusters, period, duration] = &args[..] else {
        eprintln!("usage: fleet-load URL ADMIN_TOKEN SEGMENT CLUSTERS PERIOD_S DURATION_S");
        std::process::exit(2);
    };
    let number = |s: &str, what: &str| -> u64 {
        s.parse()
            .unwrap_or_else(|_| panic!("{what} must be a number"))
    };
    let clusters = number(clusters, "CLUSTERS") as usize;
    let period = Duration::from_secs(number(period, "PERIOD_S"));
    let duration = Duration::from_secs(number(duration, "DURATION_S"));
    let segment = std::fs::read(segment).expect("read SEGMENT");
    assert_eq!(segment.len(), 16 << 20, "SEGMENT must be a 16 MiB segment");
    let template = LongPageHeader::parse(&segment).expect("SEGMENT starts with a page header");
    let rest: Arc<Vec<u8>> = Arc::new(
        segment[FRAME..]
            .chunks(FRAME)
            .flat_map(|frame| zstd::bulk::compress(frame, 1).expect("zstd"))
            .collect(),
    );
    let first = Arc::new(segment[..FRAME].to_vec());

    let tokens: Vec<String> = (0..clusters).map(|i| issue(url, admin, &name(i))).collect();
    eprintln!("fleet-load: {clusters} tokens issued");

    // Every push, in the order of its turn: cluster i's k-th at start + (i/N + k) periods.
    let start = Instant::now() + Duration::from_secs(1);
    let rounds = duration.as_secs_f64() / period.as_secs_f64();
    let mut plan: Vec<Push> = (0..clusters)
        .flat_map(|cluster| {
            let offset = period.mul_f64(cluster as f64 / clusters as f64);
            (0..)
                .map(move |k| (k, offset + period.mul_f64(k as f64)))
                .take_while(move |(k, _)| (*k as f64) < rounds)
                .map(move |(k, at)| Push {
                    cluster,
                    segno: k + 1,
                    due: start + at,
                })
        })
        .collect();
    plan.sort_by_key(|p| p.due);
    let total = plan.len();
    let queue = Arc::new(Mutex::new(plan.into_iter()));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let tokens = Arc::new(tokens);
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (queue, tally, tokens) = (queue.clone(), tally.clone(), tokens.clone());
            let (first, rest, url) = (first.clone(), rest.clone(), url.clone());
            thread::spawn(move || {
                loop {
                    let Some(push) = queue.lock().expect("queue").next() else {
                        return;
                    };
                    thread::sleep(push.due.saturating_duration_since(Instant::now()));
                    let late = Instant::now().saturating_duration_since(push.due);
                    let body = body(&template, &first, &rest, push.cluster, push.segno);
                    let status = put(&url, &tokens[push.cluster], push.cluster, push.segno, body);
                    let took = push.due.elapsed();
                    let mut t = tally.lock().expect("tally");
                    t.latencies_ms.push(took.as_secs_f64() * 1000.0);
                    t.late_ms = t.late_ms.max(late.as_secs_f64() * 1000.0);
                    *t.by_status.entry(status).or_default() += 1;
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let mut t = tally.lock().expect("tally");
    t.latencies_ms.sort_by(f64::total_cmp);
    let at = |q: f64| t.latencies_ms[((t.latencies_ms.len() - 1) as f64 * q).round() as usize];
    let summary = serde_json::json!({
        "pushes": total,
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "worst_ms": at(1.0),
        "latest_start_ms": t.late_ms,
        "by_status": t.by_status,
    });
    println!("{summary}");
}

fn name(cluster: usize) -> String {
    format!("load-{:04}", cluster + 1)
}

/// An archiver token for `cluster`, issued through the API.
fn issue(url: &str, admin: &str, cluster: &str) -> String {
    let request = serde_json::json!({
        "clusters": [cluster],
        "role": "archiver",
        "description": "fleet-load",
    });
    let mut answer = ureq::post(format!("{url}/v1/tokens"))
        .header("Authorization", format!("Bearer {admin}"))
        .send_json(&request)
        .unwrap_or_else(|e| panic!("issuing a token for {cluster}: {e}"));
    let issued: serde_json::Value = answer.body_mut().read_json().expect("token JSON");
    issued["token"]
        .as_str()
        .expect("the answer holds the token")
        .to_owned()
}

/// Segment `segno` of `cluster`: the template's first frame with the cluster's page
/// header, then the frames compressed once.
fn body(
    template: &LongPageHeader,
    first: &[u8],
    rest: &[u8],
    cluster: usize,
    segno: u64,
) -> Vec<u8> {
    let header = LongPageHeader {
        timeline: Timeline(1),
        page_addr: Lsn(segno * SegmentSize::DEFAULT.bytes()),
        system_identifier: SYSID_BASE + cluster as u64,
        ..*template
    }
    .encode();
    let mut frame = first.to_vec();
    frame[..header.len()].copy_from_slice(&header);
    let mut body = zstd::bulk::compress(&frame, 1).expect("zstd");
    body.extend_from_slice(rest);
    body
}

/// One push on a new connection; the answer's status, or what failed.
fn put(url: &str, token: &str, cluster: usize, segno: u64, body: Vec<u8>) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections(0)
        .build()
        .into();
    let file = format!("00000001{:08X}{:08X}", segno >> 8, segno & 0xFF);
    let sent = agent
        .put(format!("{url}/v1/clusters/{}/wal/{file}", name(cluster)))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Encoding", "zstd")
        .header("Content-Type", "application/octet-stream")
        .send(&body[..]);
    match sent {
        Ok(mut r) => {
            // The acknowledgement is read whole, as the client does.
            let _ = r.body_mut().read_to_vec();
            r.status().as_u16().to_string()
        }
        Err(e) => format!("error: {e}"),
    }
}
