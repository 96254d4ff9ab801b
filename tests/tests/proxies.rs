//! Behind a reverse proxy: `X-Forwarded-For` names the client in the access log only
//! when the connection comes from a configured proxy; from anyone else the header is
//! ignored, so a client cannot pass itself off as another.

use walgate_tests::{Gateway, gateway_dir, synthetic_segment};

/// Pushes a segment claiming, by header, to come from 198.51.100.7; returns the log line
/// of the push.
fn push_claiming_another_client(gateway: &Gateway) -> String {
    let token = gateway.token("main", "archiver");
    let segment = synthetic_segment(7_300_000_000_000_000_003, 1, 1, 1);
    let response = walgate_tests::agent()
        .put(format!(
            "{}/v1/clusters/main/wal/000000010000000000000001",
            gateway.url
        ))
        .header("Authorization", format!("Bearer {token}"))
        .header("X-Forwarded-For", "198.51.100.7")
        .send(&segment[..])
        .unwrap();
    assert_eq!(response.status(), 201);
    gateway
        .log()
        .lines()
        .find(|l| l.contains("archived"))
        .expect("the push is logged")
        .to_owned()
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let dir = gateway_dir();
    let behind_proxy = Gateway::start_serving(
        &dir.path().join("a"),
        &[],
        &["--trusted-proxies", "127.0.0.1,::1"],
    );
    let line = push_claiming_another_client(&behind_proxy);
    assert!(line.contains("client=Some(198.51.100.7)"), "{line}");

    let direct = Gateway::start(&dir.path().join("b"), &[]);
    let line = push_claiming_another_client(&direct);
    assert!(line.contains("client=Some(127.0.0.1)"), "{line}");
}
