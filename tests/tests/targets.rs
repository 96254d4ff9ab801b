//! Several storage targets on one gateway: each cluster's objects live on its own target
//! (the default, or one an admin assigns while the cluster is empty), never on two;
//! `/readyz` reports each target; a cluster whose target is gone from the configuration
//! gets a clear 503; and a catalog rebuild puts each cluster back on its target.

use walgate_tests::{Gateway, gateway_dir, run, synthetic_segment};

const SYSID: u64 = 7_300_000_000_000_000_002;

fn assign(gateway: &Gateway, token: &str, cluster: &str, target: &str) -> (u16, serde_json::Value) {
    let body = serde_json::json!({ "target": target })
        .to_string()
        .into_bytes();
    gateway.send("PUT", &format!("/v1/clusters/{cluster}"), token, body)
}

fn push(gateway: &Gateway, token: &str, cluster: &str, segno: u64) -> u16 {
    let segment = synthetic_segment(SYSID, 1, segno, 1);
    gateway
        .send("PUT", &segment_path(cluster, segno), token, segment)
        .0
}

fn segment_path(cluster: &str, segno: u64) -> String {
    format!("/v1/clusters/{cluster}/wal/0000000100000000{segno:08X}")
}

#[test]
fn clusters_stay_on_their_own_target() {
    let dir = gateway_dir();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let both = format!(
        "default_target = \"a\"\n[targets.a]\nurl = \"file://{}\"\n[targets.b]\nurl = \"file://{}\"\n",
        a.display(),
        b.display()
    );
    let config = dir.path().join("walgate.toml");
    std::fs::write(&config, &both).unwrap();
    let mut gateway = Gateway::with_config(dir.path(), &config);
    let admin = gateway.token("*", "admin");
    let (status, x) = assign(&gateway, &admin, "x", "b");
    assert_eq!((status, x["target"].as_str()), (200, Some("b")), "{x}");
    assert_eq!(push(&gateway, &admin, "x", 1), 201);
    assert_eq!(push(&gateway, &admin, "y", 1), 201);
    let stored = |root: &std::path::Path, cluster: &str| {
        root.join(format!(
            "clusters/{cluster}/wal/000000010000000000000001.zst"
        ))
        .exists()
    };
    assert!(stored(&b, "x") && !stored(&a, "x"));
    assert!(stored(&a, "y") && !stored(&b, "y"));

    let (status, refused) = assign(&gateway, &admin, "x", "a");
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("never mix"),
        "{refused}"
    );
    let (status, refused) = assign(&gateway, &admin, "x", "nowhere");
    assert_eq!(status, 400, "{refused}");
    let (status, same) = assign(&gateway, &admin, "x", "b");
    assert_eq!(status, 200, "{same}");

    let (status, ready) = gateway.send("GET", "/readyz", &admin, vec![]);
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["targets"], serde_json::json!({"a": "ok", "b": "ok"}));

    // Target b dropped from the configuration: x is not served from a by mistake.
    let only_a = format!("[targets.a]\nurl = \"file://{}\"\n", a.display());
    std::fs::write(&config, only_a).unwrap();
    gateway.restart();
    let (status, body) = gateway.send("GET", &segment_path("x", 1), &admin, vec![]);
    assert_eq!(status, 503, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("target `b`"),
        "{body}"
    );
    assert_eq!(push(&gateway, &admin, "x", 2), 503);
    assert!(!a.join("clusters/x").exists());

    // The catalog lost and rebuilt from both targets: each cluster back on its own.
    std::fs::write(&config, &both).unwrap();
    gateway.kill();
    for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
        let _ = std::fs::remove_file(gateway.data_dir.join(f));
    }
    run(&mut gateway.command(&["catalog", "rebuild"])).unwrap();
    gateway.restart();
    let admin = gateway.token("*", "admin");
    for (cluster, target) in [("x", "b"), ("y", "a")] {
        let (status, row) = gateway.send("GET", &format!("/v1/clusters/{cluster}"), &admin, vec![]);
        assert_eq!(status, 200, "{row}");
        assert_eq!(row["target"], target, "{row}");
        let (status, _) = gateway.send("GET", &segment_path(cluster, 1), &admin, vec![]);
        assert_eq!(status, 200);
    }
}

/// `/readyz` needs no token: it tells anyone whether each target works, but only a
/// token's holder why one fails (store errors name buckets and endpoints), and callers
/// share one probe of the stores every few seconds, however often they ask.
#[test]
fn readiness_tells_strangers_little_and_probes_the_stores_sparingly() {
    let dir = gateway_dir();
    let a = dir.path().join("a");
    let config = dir.path().join("walgate.toml");
    let text = format!(
        "default_target = \"a\"\n[targets.a]\nurl = \"file://{}\"\n",
        a.display()
    );
    std::fs::write(&config, text).unwrap();
    let gateway = Gateway::with_config(dir.path(), &config);
    let viewer = gateway.token("*", "viewer");
    // The target's directory replaced by a file: nothing can be written there.
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::write(&a, b"not a directory").unwrap();
    walgate_tests::wait_until(
        std::time::Duration::from_secs(60),
        "/readyz to report the broken target",
        || gateway.get("/readyz", None).status() == 503,
    );
    let stranger: serde_json::Value =
        serde_json::from_slice(&walgate_tests::body_bytes(gateway.get("/readyz", None))).unwrap();
    assert_eq!(stranger["targets"]["a"], "failed", "{stranger}");
    let (status, holder) = gateway.send("GET", "/readyz", &viewer, vec![]);
    assert_eq!(status, 503);
    let why = holder["targets"]["a"].as_str().unwrap();
    assert!(why != "failed" && why != "ok", "{holder}");

    // Many calls, few probes: each failed probe logs one warning.
    let probes = || gateway.log().matches("readiness: storage").count();
    let before = probes();
    let started = std::time::Instant::now();
    for _ in 0..50 {
        assert_eq!(gateway.get("/readyz", None).status(), 503);
    }
    let most = 2 + started.elapsed().as_secs() / 5;
    let made = (probes() - before) as u64;
    assert!(
        made <= most,
        "{made} probes for 50 calls in {:?}",
        started.elapsed()
    );
}
