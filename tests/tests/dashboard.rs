//! The dashboard in a real browser: Debian's headless chromium, driven over the DevTools
//! protocol by puppeteer-core (`tests/browser/dashboard.cjs`), against a gateway that
//! real PostgreSQL clusters archive into, one per state. Screenshots of every page go
//! to `<target>/tmp/dashboard-screenshots/` for review.

use std::time::Duration;

use serde_json::{Value, json};
use walgate_tests::browser::run_script;
use walgate_tests::{
    Gateway, PgCluster, basebackup_tar, conf_quote, curl_archive_command, gateway_dir, poll_until,
    write_token_header,
};

/// A running cluster archiving into `cluster` with curl. With `skip`, the archive
/// script reports success for segments ending in it without sending them: the kind of
/// broken script (`… || true`) that leaves real archives with gaps.
fn archiving(gw: &Gateway, token: &str, cluster: &str, skip: Option<&str>) -> PgCluster {
    let mut pg = PgCluster::init(&[]);
    let header = pg.dir.path().join("auth-header");
    write_token_header(&header, token);
    let push = curl_archive_command(&gw.url, cluster, &header);
    let command = match skip {
        Some(s) => format!("case %f in *{s}) exit 0;; esac; {push}"),
        None => push,
    };
    pg.append_conf(&format!(
        "wal_level = replica\narchive_mode = on\narchive_command = {}",
        conf_quote(&command)
    ));
    pg.start();
    pg
}

/// A base backup of `pg` stored as `cluster`'s, and a few segments archived after it.
fn backed_up(gw: &Gateway, token: &str, cluster: &str, pg: &PgCluster) {
    let (status, body) = gw.send(
        "PUT",
        &format!("/v1/clusters/{cluster}/backups"),
        token,
        basebackup_tar(pg),
    );
    assert_eq!(status, 201, "{body}");
    for _ in 0..4 {
        // Something to write, or the switch would be a no-op.
        pg.psql("CREATE TABLE IF NOT EXISTS t (x int); INSERT INTO t VALUES (1)");
        pg.archive_current();
    }
}

fn put(gw: &Gateway, token: &str, path: &str, body: Value) {
    let (status, answer) = gw.send("PUT", path, token, body.to_string().into_bytes());
    assert_eq!(status, 200, "{path}: {answer}");
}

#[test]
fn the_dashboard_shows_each_cluster_in_its_state() {
    let dir = gateway_dir();
    // Verified below, when every cluster is in place.
    let gw = Gateway::start_serving(&dir.path().join("data"), &[], &["--verify-interval", "0"]);
    let admin = gw.token("*", "admin");

    // ok: archiving, backed up, verified.
    let billing = archiving(&gw, &admin, "billing", None);
    backed_up(&gw, &admin, "billing", &billing);
    // late: its backup is older than its own one-second threshold.
    let reports = archiving(&gw, &admin, "reports", None);
    backed_up(&gw, &admin, "reports", &reports);
    put(
        &gw,
        &admin,
        "/v1/clusters/reports",
        json!({"thresholds": {"backup_age_seconds": 1}}),
    );
    // failing: archiving stopped (more than four times its archive-lag threshold ago).
    let mut inventory = archiving(&gw, &admin, "inventory", None);
    backed_up(&gw, &admin, "inventory", &inventory);
    inventory.stop();
    put(
        &gw,
        &admin,
        "/v1/clusters/inventory",
        json!({"thresholds": {"archive_lag_seconds": 1}}),
    );
    // failing: segment 4 never reached the archive, as verification finds.
    let ledger = archiving(&gw, &admin, "ledger", Some("00000004"));
    backed_up(&gw, &admin, "ledger", &ledger);
    // new: registered, nothing archived.
    put(&gw, &admin, "/v1/clusters/fresh", json!({}));

    for cluster in ["billing", "reports", "inventory", "ledger"] {
        let (status, report) = gw.send(
            "GET",
            &format!("/v1/clusters/{cluster}/verify"),
            &admin,
            vec![],
        );
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["ok"], cluster != "ledger", "{cluster}: {report}");
    }
    // Once the one-second thresholds have passed, the API shows each state the browser
    // should see.
    let states = || {
        let (status, fleet) = gw.send("GET", "/v1/clusters", &admin, vec![]);
        assert_eq!(status, 200, "{fleet}");
        let states: serde_json::Map<String, Value> = fleet
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap().to_owned(), c["status"].clone()))
            .collect();
        Value::Object(states)
    };
    let expected = json!({"billing": "ok", "reports": "late", "inventory": "failing",
                          "ledger": "failing", "fresh": "new"});
    let shown = poll_until(Duration::from_secs(120), || states() == expected);
    assert!(shown, "the fleet never showed each state: {}", states());

    // The JSON API never takes the dashboard's cookie: only bearer tokens.
    let cookie_only = walgate_tests::agent()
        .get(format!("{}/v1/clusters", gw.url))
        .header("Cookie", format!("walgate_session={admin}"))
        .call()
        .unwrap();
    assert_eq!(cookie_only.status(), 401);

    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let seen = run_script(
        "dashboard.cjs",
        &gw,
        &shots,
        &[
            ("WALGATE_CLUSTER_GAP", "ledger"),
            ("WALGATE_CLUSTER_OK", "billing"),
        ],
    );
    eprintln!("browser saw: {seen:#}\nscreenshots in {}", shots.display());

    assert_eq!(seen["redirectedTo"], "/login");
    assert_eq!(seen["refusedAt"], "/login");
    assert!(
        seen["refused"]
            .as_str()
            .unwrap()
            .starts_with("That token was refused"),
        "{seen}"
    );
    assert_eq!(seen["afterLogin"], "/");
    assert_eq!(
        seen["states"],
        json!({"billing": "ok", "reports": "late", "inventory": "failing",
               "ledger": "failing", "fresh": "new"})
    );
    // Failing first, then late, new, ok; by name within a state.
    assert_eq!(
        seen["order"],
        json!(["inventory", "ledger", "reports", "fresh", "billing"])
    );
    let reasons = &seen["reasons"];
    assert!(
        reasons["inventory"]
            .as_str()
            .unwrap()
            .contains("no WAL archived for"),
        "{reasons}"
    );
    assert!(
        reasons["ledger"]
            .as_str()
            .unwrap()
            .contains("verification found"),
        "{reasons}"
    );
    assert!(
        reasons["reports"]
            .as_str()
            .unwrap()
            .contains("newest backup finished"),
        "{reasons}"
    );
    assert_eq!(seen["failingOnly"], json!(["inventory", "ledger"]));
    assert_eq!(
        seen["byName"],
        json!(["billing", "fresh", "inventory", "ledger", "reports"])
    );
    assert_eq!(
        seen["byNameDesc"],
        json!(["reports", "ledger", "inventory", "fresh", "billing"])
    );

    assert_eq!(seen["gapState"], "failing");
    assert_eq!(seen["gapRows"], json!(["missing 000000010000000000000004"]));
    assert!(
        seen["gapProblems"][0]
            .as_str()
            .unwrap()
            .starts_with("000000010000000000000004 is missing"),
        "{seen}"
    );

    assert_eq!(seen["okState"], "ok");
    assert_eq!(seen["okBackups"], 1);
    // 30 days of WAL volume and one backup.
    assert_eq!(seen["okBars"], 31);
    let commands = seen["restoreCommands"].as_str().unwrap();
    assert!(
        commands.contains("/v1/clusters/billing/backups/"),
        "{commands}"
    );
    assert!(commands.contains("restore_command = "), "{commands}");
    assert!(commands.contains("recovery.signal"), "{commands}");

    let mut listed: Vec<String> = serde_json::from_value(seen["operations"].clone()).unwrap();
    listed.sort();
    assert_eq!(listed, gw.operations());
    assert_eq!(seen["explorerAnswer"], "200 OK");
    assert_eq!(seen["afterLogout"], "/login");
    assert_eq!(seen["consoleErrors"], json!([]));
    for shot in [
        "login-refused.png",
        "fleet.png",
        "cluster-ledger.png",
        "cluster-billing.png",
        "api-explorer.png",
    ] {
        let size = std::fs::metadata(shots.join(shot)).unwrap().len();
        assert!(size > 10_000, "{shot}: {size} bytes");
    }
}
