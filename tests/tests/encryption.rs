//! Encryption at rest on every backend: what is stored is sealed, reads give back the
//! exact bytes, a key rotation keeps older objects readable, a damaged object is refused
//! with a clear error, and `walgate decrypt` opens an object without a gateway. Then a
//! real recovery across a key rotation on S3.

use std::path::Path;
use std::process::Command;

use walgate_tests::emulators::{Bucket, write_config};
use walgate_tests::{
    Gateway, PgCluster, basebackup_tar, bin, body_bytes, gateway_dir, pgbench_checksum, run,
    synthetic_segment,
};

const SEALED: &[u8] = b"WGENC\0";

fn keyring_add(keyring: &Path, id: &str) {
    run(Command::new(bin("walgate"))
        .args(["keyring", "add", "--id", id])
        .arg(keyring))
    .unwrap();
}

fn wal_name(segno: u64) -> String {
    format!("0000000100000000{segno:08X}")
}

fn wal_key(segno: u64) -> String {
    format!("clusters/main/wal/{}.zst", wal_name(segno))
}

/// The key id a sealed object's header names.
fn sealed_with(stored: &[u8]) -> String {
    assert!(stored.starts_with(SEALED), "stored in the clear");
    let len = stored[7] as usize;
    String::from_utf8(stored[8..8 + len].to_vec()).unwrap()
}

/// A gateway whose only target is `bucket`, encrypting with `keyring`.
fn encrypting_gateway(dir: &Path, bucket: &Bucket, keyring: &Path) -> Gateway {
    let extra = format!("encryption_keyring = \"{}\"\n", keyring.display());
    let config = write_config(dir, "t", &[bucket.target("t", &extra)]);
    Gateway::start(&dir.join("data"), &["--config", config.to_str().unwrap()])
}

fn round_trips_rotates_and_refuses_damage(bucket: Bucket) {
    let dir = gateway_dir();
    let keyring = dir.path().join("keyring");
    keyring_add(&keyring, "k1");
    let mut gateway = encrypting_gateway(dir.path(), &bucket, &keyring);
    let token = gateway.token("main", "admin");
    let mut source = PgCluster::init(&[]);
    source.start();
    let sysid: u64 = source
        .psql("SELECT system_identifier FROM pg_control_system()")
        .parse()
        .unwrap();
    let segment = |n: u64| synthetic_segment(sysid, 1, n, n as u8);
    let path = |n: u64| format!("/v1/clusters/main/wal/{}", wal_name(n));
    let fetch = |gateway: &Gateway, n: u64| {
        let response = gateway.get(&path(n), Some(&token));
        (response.status().as_u16(), body_bytes(response))
    };

    for n in 1..=3 {
        assert_eq!(gateway.send("PUT", &path(n), &token, segment(n)).0, 201);
        assert_eq!(sealed_with(&bucket.read(&wal_key(n))), "k1");
        assert!(fetch(&gateway, n) == (200, segment(n)), "segment {n}");
    }
    let tar = basebackup_tar(&source);
    let (status, backup) = gateway.send("POST", "/v1/clusters/main/backups", &token, tar.clone());
    assert_eq!(status, 201, "{backup}");
    let id = backup["id"].as_str().unwrap();
    for object in ["base.tar.zst", "backup.json"] {
        let stored = bucket.read(&format!("clusters/main/backups/{id}/{object}"));
        assert_eq!(sealed_with(&stored), "k1", "{object}");
    }
    let archive = gateway.get(
        &format!("/v1/clusters/main/backups/{id}/archive"),
        Some(&token),
    );
    assert_eq!(archive.status(), 200);
    assert!(body_bytes(archive) == tar, "the backup came back different");

    // Rotation: k2 seals from the restart on; k1's objects still open.
    keyring_add(&keyring, "k2");
    gateway.restart();
    assert_eq!(gateway.send("PUT", &path(4), &token, segment(4)).0, 201);
    assert_eq!(sealed_with(&bucket.read(&wal_key(4))), "k2");
    assert!(fetch(&gateway, 1) == (200, segment(1)));
    assert!(fetch(&gateway, 4) == (200, segment(4)));

    // Offline: the object as stored, decrypted with the keyring and decompressed.
    let copy = dir.path().join("copy");
    std::fs::write(&copy, bucket.read(&wal_key(4))).unwrap();
    let plain = dir.path().join("plain.zst");
    run(Command::new(bin("walgate"))
        .args(["decrypt", "--keyring"])
        .arg(&keyring)
        .arg(&copy)
        .arg("-o")
        .arg(&plain))
    .unwrap();
    let out = Command::new("zstd")
        .args(["-d", "-c"])
        .arg(&plain)
        .output()
        .unwrap();
    assert!(out.status.success() && out.stdout == segment(4));

    // One flipped byte: refused on fetch, found by the scrub, and by the offline tool.
    let mut damaged = bucket.read(&wal_key(2));
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    bucket.write(&wal_key(2), &damaged);
    let (status, body) = fetch(&gateway, 2);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"], "unreadable_object", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("failed authentication"),
        "{body}"
    );
    let (status, report) =
        gateway.send("GET", "/v1/clusters/main/verify?scrub=true", &token, vec![]);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], false, "{report}");
    assert!(report.to_string().contains(&wal_name(2)), "{report}");
    std::fs::write(&copy, &damaged).unwrap();
    let refused = Command::new(bin("walgate"))
        .args(["decrypt", "--keyring"])
        .arg(&keyring)
        .arg(&copy)
        .arg("-o")
        .arg(&plain)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(!plain.exists(), "partial output was left behind");

    // An object sealed for another key refuses to stand in for this one.
    bucket.write(&wal_key(3), &bucket.read(&wal_key(1)));
    let (status, body) = fetch(&gateway, 3);
    assert_eq!(status, 500);
    assert!(String::from_utf8_lossy(&body).contains("written for another object"));
}

#[test]
fn encryption_on_local_files() {
    let dir = gateway_dir();
    round_trips_rotates_and_refuses_damage(Bucket::local(dir.path()));
}

#[test]
fn encryption_on_s3() {
    round_trips_rotates_and_refuses_damage(Bucket::s3());
}

#[test]
fn encryption_on_swift() {
    round_trips_rotates_and_refuses_damage(Bucket::swift());
}

#[test]
fn encryption_on_gcs() {
    round_trips_rotates_and_refuses_damage(Bucket::gcs());
}

#[test]
fn encryption_on_azure() {
    round_trips_rotates_and_refuses_damage(Bucket::azure());
}

/// PostgreSQL archives into an encrypted S3 target; the key is rotated half-way; a
/// recovery from the base backup replays WAL sealed with both keys to the same rows.
#[test]
fn recovery_across_a_key_rotation_on_s3() {
    let bucket = Bucket::s3();
    let dir = gateway_dir();
    let keyring = dir.path().join("keyring");
    keyring_add(&keyring, "before");
    let mut gateway = encrypting_gateway(dir.path(), &bucket, &keyring);
    let archiver = gateway.token("main", "archiver");
    let restorer = gateway.token("main", "restorer");

    let source = walgate_tests::archiving_with_curl(
        walgate_tests::Postgres::default_major(),
        &gateway.url,
        &archiver,
    );
    source.pgbench(&["-i", "-s", "2", "-q"]);
    source.psql("CREATE TABLE marker (note text)");
    let mut restored = PgCluster::from_basebackup(&source, &["-X", "none", "--checkpoint=fast"]);
    source.pgbench(&["-c", "2", "-t", "500", "-n"]);
    let before = source.archive_current();

    keyring_add(&keyring, "after");
    gateway.restart();
    source.pgbench(&["-c", "2", "-t", "500", "-n"]);
    let after = source.archive_current();
    let expected = pgbench_checksum(&source);
    let key = |name: &str| format!("clusters/main/wal/{name}.zst");
    assert_eq!(sealed_with(&bucket.read(&key(&before))), "before");
    assert_eq!(sealed_with(&bucket.read(&key(&after))), "after");

    restored.recover_with_curl(&gateway.url, &restorer);
    assert_eq!(pgbench_checksum(&restored), expected);
    let log = restored.log();
    for name in [&before, &after] {
        assert!(
            log.contains(&format!("restored log file \"{name}\"")),
            "{name} was not replayed:\n{log}"
        );
    }
}
