//! One suite, run against both backends: SQLite in a temp dir and a throwaway
//! PostgreSQL 15 cluster started by the harness.

use time::OffsetDateTime;
use walgate_core::api::Role;
use walgate_core::{ClusterName, SegmentSize, WalFileName};
use walgate_tests::{PgCluster, Postgres};

use super::*;

fn wal(name: &str, sha: u8) -> WalRow {
    WalRow {
        name: name.parse().unwrap(),
        size: 16 << 20,
        stored_size: 1000,
        digest: ContentDigest::Blake3([sha; 32]),
        archived_at: OffsetDateTime::now_utc().replace_nanosecond(0).unwrap(),
        retain_until: None,
    }
}

/// An uploading backup of the cluster pinned to `sysid`.
fn backup(id: &str, sysid: u64) -> BackupRow {
    BackupRow {
        id: id.into(),
        status: BackupStatus::Uploading,
        label: "nightly".into(),
        method: "streamed".into(),
        from_standby: true,
        start_lsn: walgate_core::Lsn(0x200_0028),
        start_timeline: walgate_core::Timeline(1),
        checkpoint_lsn: walgate_core::Lsn(0x200_0060),
        end_lsn: None,
        end_timeline: None,
        system_identifier: Some(sysid),
        size: 0,
        stored_size: 0,
        sha256: None,
        has_manifest: false,
        started_at: OffsetDateTime::now_utc().replace_nanosecond(0).unwrap(),
        finished_at: None,
        retain_until: None,
        parent: None,
    }
}

/// The names of files waiting for deletion.
fn names(pending: Vec<(WalFileName, Option<OffsetDateTime>)>) -> Vec<WalFileName> {
    pending.into_iter().map(|(name, _)| name).collect()
}

async fn suite(c: &dyn Catalog) {
    c.ping().await.unwrap();
    let main: ClusterName = "main".parse().unwrap();
    let other: ClusterName = "other".parse().unwrap();
    assert_eq!(c.cluster(&main).await.unwrap(), None);

    // Registration and pinning: first writer wins, later pins change nothing.
    let default = walgate_core::TargetName::default_name();
    let eu: walgate_core::TargetName = "eu".parse().unwrap();
    let row = c.ensure_cluster(&main, &eu).await.unwrap();
    assert_eq!((row.system_identifier, row.segment_size), (None, None));
    assert_eq!(row.target, eu);
    assert_eq!(c.ensure_cluster(&main, &default).await.unwrap(), row);
    // No objects yet: an admin may still move it.
    assert!(c.set_target(&main, &default).await.unwrap());
    let row = c.cluster(&main).await.unwrap().unwrap();
    assert_eq!(row.target, default);
    let big_sysid = u64::MAX - 5; // survives the signed BIGINT column
    let pinned = c
        .pin_cluster(&main, big_sysid, SegmentSize::DEFAULT, Some(15))
        .await
        .unwrap();
    assert_eq!(pinned.system_identifier, Some(big_sysid));
    assert_eq!(pinned.segment_size, Some(SegmentSize::DEFAULT));
    let again = c
        .pin_cluster(&main, 1, SegmentSize::new(1 << 20).unwrap(), Some(16))
        .await
        .unwrap();
    assert_eq!(again, pinned);

    // WAL rows: insert once; a second insert reports the row already there.
    let seg1 = wal("000000010000000000000001", 1);
    assert_eq!(c.insert_wal(&main, &seg1).await.unwrap(), Inserted::New);
    assert_eq!(
        c.insert_wal(&main, &wal("000000010000000000000001", 2))
            .await
            .unwrap(),
        Inserted::Existing(seg1.clone())
    );
    assert_eq!(c.wal(&main, &seg1.name).await.unwrap(), Some(seg1.clone()));
    // The furthest position on any timeline, not the highest name: timeline 3 at
    // position 2 is behind timeline 1 at position 1/5; a history file has none.
    let far: ClusterName = "positions".parse().unwrap();
    c.ensure_cluster(&far, &default).await.unwrap();
    assert_eq!(c.newest_position(&far).await.unwrap(), None);
    c.insert_wal(&far, &wal("00000003.history", 3))
        .await
        .unwrap();
    assert_eq!(c.newest_position(&far).await.unwrap(), None);
    for name in ["000000010000000100000005", "000000030000000000000002"] {
        c.insert_wal(&far, &wal(name, 3)).await.unwrap();
    }
    assert_eq!(
        c.newest_position(&far).await.unwrap(),
        Some("0000000100000005".parse().unwrap())
    );
    // A row hashed before BLAKE3 keeps its SHA-256.
    let old = WalRow {
        digest: ContentDigest::Sha256(Sha256([7; 32])),
        ..wal("000000010000000000000009", 0)
    };
    c.insert_wal(&far, &old).await.unwrap();
    assert_eq!(c.wal(&far, &old.name).await.unwrap(), Some(old.clone()));
    c.expire_all_wal(&far).await.unwrap();
    let gone = names(c.wal_deletions(&far, None, 10).await.unwrap());
    c.forget_wal_deletions(&far, &gone).await.unwrap();
    assert!(c.delete_cluster(&far).await.unwrap());
    assert_eq!(c.wal(&other, &seg1.name).await.unwrap(), None);
    for name in [
        "000000010000000000000002",
        "000000010000000000000002.00000028.backup",
        "00000002.history",
        "000000010000000000000003.partial",
        "000000020000000000000003",
    ] {
        assert_eq!(
            c.insert_wal(&main, &wal(name, 3)).await.unwrap(),
            Inserted::New
        );
    }
    let names = |rows: Vec<WalRow>| rows.iter().map(|r| r.name.to_string()).collect::<Vec<_>>();
    let all = WalFilter {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(c.list_wal(&main, &all).await.unwrap().len(), 6);
    let tl2 = WalFilter {
        timeline: Some(2),
        ..all.clone()
    };
    assert_eq!(
        names(c.list_wal(&main, &tl2).await.unwrap()),
        ["00000002.history", "000000020000000000000003"]
    );
    let page = WalFilter {
        limit: 2,
        after: Some(seg1.name),
        ..all.clone()
    };
    assert_eq!(
        names(c.list_wal(&main, &page).await.unwrap()),
        [
            "000000010000000000000002",
            "000000010000000000000002.00000028.backup"
        ]
    );
    let range = WalFilter {
        from: Some("000000010000000000000002".parse().unwrap()),
        to: Some(
            "000000010000000000000003.partial"
                .parse::<WalFileName>()
                .unwrap(),
        ),
        ..all.clone()
    };
    assert_eq!(c.list_wal(&main, &range).await.unwrap().len(), 3);

    let stats = c.cluster_stats(&main).await.unwrap();
    assert_eq!((stats.wal_files, stats.wal_bytes), (6, 6000));
    let today = OffsetDateTime::now_utc().date();
    let yesterday = OffsetDateTime::now_utc() - time::Duration::days(1);
    assert_eq!(
        c.wal_volume(&main, yesterday).await.unwrap(),
        [(today, 6, 6000)]
    );
    assert!(
        c.wal_volume(&main, OffsetDateTime::now_utc() + time::Duration::hours(1))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        stats.last_wal.map(|s| s.to_string()).as_deref(),
        Some("000000020000000000000003")
    );
    assert!(stats.last_archived_at.is_some());
    assert_eq!(
        c.cluster_stats(&other).await.unwrap(),
        ClusterStats::default()
    );
    c.ensure_cluster(&other, &default).await.unwrap();
    // A cluster's own thresholds are kept and cleared.
    let own = walgate_core::api::StatusThresholds {
        archive_lag_seconds: Some(600),
        backup_age_seconds: None,
    };
    assert!(c.set_thresholds(&main, Some(&own)).await.unwrap());
    assert_eq!(
        c.cluster(&main).await.unwrap().unwrap().thresholds,
        Some(own)
    );
    assert!(c.set_thresholds(&main, None).await.unwrap());
    assert_eq!(c.cluster(&main).await.unwrap().unwrap().thresholds, None);
    // Objects stored: the cluster stays where they are.
    assert!(!c.set_target(&main, &eu).await.unwrap());
    assert!(c.set_target(&main, &default).await.unwrap());
    assert_eq!(c.cluster(&main).await.unwrap().unwrap().target, default);
    let fleet = c.clusters().await.unwrap();
    assert_eq!(fleet.len(), 2);
    assert_eq!(fleet[0].1, stats);
    assert_eq!(fleet[1].1, ClusterStats::default());

    // Backups: newest first by id, updated in place, deleted.
    let mut b1 = backup("20261127T010000Z-000000010000000000000002", big_sysid);
    c.insert_backup(&main, &b1).await.unwrap();
    c.insert_backup(
        &main,
        &backup("20261127T020000Z-000000010000000000000004", big_sysid),
    )
    .await
    .unwrap();
    assert!(c.insert_backup(&main, &b1).await.is_err(), "ids are unique");
    let uploading = b1.clone();
    b1.status = BackupStatus::Complete;
    b1.end_lsn = Some(walgate_core::Lsn(0x200_0100));
    b1.end_timeline = Some(walgate_core::Timeline(1));
    b1.size = 1 << 40;
    b1.has_manifest = true;
    b1.finished_at = Some(b1.started_at);
    assert!(
        !c.update_backup(&main, &b1, BackupStatus::Complete)
            .await
            .unwrap(),
        "an update from the wrong status changes nothing"
    );
    assert_eq!(c.backup(&main, &b1.id).await.unwrap(), Some(uploading));
    assert!(
        c.update_backup(&main, &b1, BackupStatus::Uploading)
            .await
            .unwrap()
    );
    assert_eq!(c.backup(&main, &b1.id).await.unwrap(), Some(b1.clone()));
    assert_eq!(c.backup(&other, &b1.id).await.unwrap(), None);
    // A backup with an incremental on it is not marked deleting, until the incremental is.
    let mut inc = backup("20261127T015000Z-000000010000000000000003", big_sysid);
    inc.parent = Some(b1.id.clone());
    c.insert_backup(&main, &inc).await.unwrap();
    assert_eq!(c.backup(&main, &inc.id).await.unwrap(), Some(inc.clone()));
    let mut deleting = b1.clone();
    deleting.status = BackupStatus::Deleting;
    assert!(
        !c.update_backup(&main, &deleting, BackupStatus::Complete)
            .await
            .unwrap(),
        "a parent is not deleted under its incremental"
    );
    inc.status = BackupStatus::Deleting;
    assert!(
        c.update_backup(&main, &inc, BackupStatus::Uploading)
            .await
            .unwrap()
    );
    assert!(
        c.update_backup(&main, &deleting, BackupStatus::Complete)
            .await
            .unwrap()
    );
    assert!(
        c.update_backup(&main, &b1, BackupStatus::Deleting)
            .await
            .unwrap()
    );
    c.delete_backup(&main, &inc.id).await.unwrap();
    // Only complete backups count, per cluster, for one cluster or the fleet.
    let complete = BackupStats {
        complete: 1,
        stored_bytes: 0,
        newest: Some((b1.started_at, 0)),
        newest_took: Some(time::Duration::ZERO),
        oldest: Some(b1.started_at),
    };
    assert_eq!(
        c.backup_stats(None).await.unwrap(),
        [(main.clone(), complete.clone())]
    );
    assert_eq!(
        c.backup_stats(Some(&main)).await.unwrap(),
        [(main.clone(), complete)]
    );
    assert!(c.backup_stats(Some(&other)).await.unwrap().is_empty());
    let ids: Vec<_> = c
        .backups(&main)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(
        ids,
        ["20261127T020000Z-000000010000000000000004", b1.id.as_str()]
    );
    c.delete_backup(&main, &b1.id).await.unwrap();
    assert_eq!(c.backups(&main).await.unwrap().len(), 1);

    // Uploads go stale when they stop beating; complete backups never do.
    let uploading = "20261127T020000Z-000000010000000000000004";
    let started = OffsetDateTime::now_utc();
    let later = started + time::Duration::minutes(30);
    assert_eq!(c.stale_uploads(&main, later).await.unwrap(), [uploading]);
    assert!(
        c.stale_uploads(&main, started - time::Duration::minutes(30))
            .await
            .unwrap()
            .is_empty()
    );
    c.beat_backup(&main, uploading, later).await.unwrap();
    assert!(
        c.stale_uploads(&main, later - time::Duration::minutes(1))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        c.stale_uploads(&main, later + time::Duration::minutes(1))
            .await
            .unwrap(),
        [uploading]
    );

    // Tokens.
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let token = TokenRow {
        id: "t1".into(),
        scope: Scope::Clusters(vec![main.clone(), other.clone()]),
        role: Role::Archiver,
        description: Some("db1".into()),
        created_at: now,
        expires_at: Some(now + time::Duration::days(1)),
        revoked_at: None,
    };
    c.insert_token(&token).await.unwrap();
    c.insert_token(&TokenRow {
        id: "t2".into(),
        scope: Scope::All,
        expires_at: None,
        ..token.clone()
    })
    .await
    .unwrap();
    assert_eq!(c.token("t1").await.unwrap(), Some(token.clone()));
    assert_eq!(c.token("nope").await.unwrap(), None);
    assert_eq!(c.tokens().await.unwrap().len(), 2);
    assert!(c.revoke_token("t1", now).await.unwrap());
    assert!(!c.revoke_token("nope", now).await.unwrap());
    assert_eq!(c.token("t1").await.unwrap().unwrap().revoked_at, Some(now));
}

/// Retention's catalog side, on the WAL `suite` left in cluster `main`.
async fn retention_suite(c: &dyn Catalog) {
    let main: ClusterName = "main".parse().unwrap();
    let policy = walgate_core::api::RetentionPolicy {
        keep_last: Some(3),
        window_days: None,
        min_backups: 2,
    };
    assert!(c.set_retention(&main, Some(&policy)).await.unwrap());
    assert_eq!(
        c.cluster(&main).await.unwrap().unwrap().retention,
        Some(policy)
    );
    assert!(c.set_retention(&main, None).await.unwrap());
    assert_eq!(c.cluster(&main).await.unwrap().unwrap().retention, None);
    assert!(
        !c.set_retention(&"nope".parse().unwrap(), None)
            .await
            .unwrap()
    );

    // Before segment 3 on any timeline: segments 1 and 2 and 2's backup history file;
    // not the history file, not segment 3 (partial, or on timeline 2).
    let position: walgate_core::SegmentPosition = "0000000000000003".parse().unwrap();
    let span = c.wal_before(&main, position).await.unwrap();
    assert_eq!(
        span,
        WalSpan {
            files: 3,
            bytes: 3000,
            first: Some("000000010000000000000001".parse().unwrap()),
            last: Some("000000010000000000000002.00000028.backup".parse().unwrap()),
        }
    );
    assert_eq!(c.expire_wal(&main, position).await.unwrap(), 3);
    // The totals the triggers keep follow the expiry; the newest segment stays.
    let stats = c.cluster_stats(&main).await.unwrap();
    assert_eq!((stats.wal_files, stats.wal_bytes), (3, 3000));
    assert_eq!(
        stats.last_wal.map(|s| s.to_string()).as_deref(),
        Some("000000020000000000000003")
    );
    let all = WalFilter {
        limit: 100,
        ..Default::default()
    };
    let left: Vec<String> = c
        .list_wal(&main, &all)
        .await
        .unwrap()
        .iter()
        .map(|r| r.name.to_string())
        .collect();
    assert_eq!(
        left,
        [
            "000000010000000000000003.partial",
            "00000002.history",
            "000000020000000000000003"
        ]
    );
    assert_eq!(c.wal_before(&main, position).await.unwrap().files, 0);
    let pending = names(c.wal_deletions(&main, None, 2).await.unwrap());
    assert_eq!(pending.len(), 2);
    // Pages go on after a name, so a run can pass over objects that failed to delete.
    let next = names(c.wal_deletions(&main, Some(&pending[0]), 10).await.unwrap());
    assert_eq!(next[0], pending[1]);
    assert!(!next.contains(&pending[0]));
    c.forget_wal_deletions(&main, &pending).await.unwrap();
    let pending = names(c.wal_deletions(&main, None, 10).await.unwrap());
    assert_eq!(
        pending,
        ["000000010000000000000002.00000028.backup"
            .parse::<WalFileName>()
            .unwrap()]
    );
    // A file whose deletion is pending is not taken back: the deleter would remove the
    // object a new upload of it found.
    assert_eq!(
        c.insert_wal(&main, &wal("000000010000000000000002.00000028.backup", 9))
            .await
            .unwrap(),
        Inserted::Deleting
    );
    for (name, deleting) in [
        ("000000010000000000000002.00000028.backup", true),
        ("000000010000000000000001", false),
    ] {
        let name: WalFileName = name.parse().unwrap();
        assert_eq!(c.wal_deleting(&main, &name).await.unwrap(), deleting);
    }

    // The last verification replaces the one before.
    assert_eq!(c.last_verification(&main).await.unwrap(), None);
    let mut report = walgate_core::api::VerifyReport {
        cluster: "main".into(),
        verified_at: OffsetDateTime::now_utc().replace_nanosecond(0).unwrap(),
        ok: false,
        chain_problems: vec!["a gap".into()],
        forks: vec![],
        scrubbed: false,
        objects_checked: 0,
        object_problems: vec![],
    };
    let seen = Seen::default();
    c.record_verification(&main, &report, Some(&seen))
        .await
        .unwrap();
    report.ok = true;
    report.chain_problems.clear();
    c.record_verification(&main, &report, Some(&seen))
        .await
        .unwrap();
    assert_eq!(
        c.last_verification(&main).await.unwrap(),
        Some(report.clone())
    );
    assert_eq!(c.verifications().await.unwrap(), [report]);

    // Locks: recorded per object, carried along to `wal_deletions`, and their latest
    // end known per cluster.
    let vault: ClusterName = "vault".parse().unwrap();
    c.ensure_cluster(&vault, &TargetName::default_name())
        .await
        .unwrap();
    assert_eq!(c.lock_ends(&vault).await.unwrap(), None);
    let soon = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + time::Duration::days(1);
    let later = soon + time::Duration::days(1);
    let mut locked = wal("000000010000000000000001", 1);
    locked.retain_until = Some(soon);
    c.insert_wal(&vault, &locked).await.unwrap();
    assert_eq!(
        c.wal(&vault, &locked.name).await.unwrap(),
        Some(locked.clone())
    );
    let mut b = BackupRow::positioned(
        "b",
        walgate_core::Timeline(1),
        walgate_core::Lsn(0x100_0028),
        walgate_core::Lsn(0x200_0000),
        soon,
    );
    b.retain_until = Some(later);
    c.insert_backup(&vault, &b).await.unwrap();
    assert_eq!(c.lock_ends(&vault).await.unwrap(), Some(later));
    c.delete_backup(&vault, "b").await.unwrap();
    c.expire_all_wal(&vault).await.unwrap();
    assert_eq!(c.lock_ends(&vault).await.unwrap(), Some(soon));
    let pending = c.wal_deletions(&vault, None, 10).await.unwrap();
    assert_eq!(pending, [(locked.name, Some(soon))]);
    c.forget_wal_deletions(&vault, &names(pending))
        .await
        .unwrap();
    assert!(c.delete_cluster(&vault).await.unwrap());

    // Failed deletions: counted per object, forgotten once the object goes.
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let t1 = t0 + time::Duration::hours(1);
    c.record_deletion_failure(&main, "main/wal/b", "403 denied", t0)
        .await
        .unwrap();
    c.record_deletion_failure(&main, "main/wal/a", "503 slow down", t1)
        .await
        .unwrap();
    c.record_deletion_failure(&main, "main/wal/b", "403 still denied", t1)
        .await
        .unwrap();
    let failing = c.deletion_failures(&main).await.unwrap();
    let seen: Vec<_> = failing
        .iter()
        .map(|f| (f.object.as_str(), f.error.as_str(), f.attempts))
        .collect();
    assert_eq!(
        seen,
        [
            ("main/wal/b", "403 still denied", 2),
            ("main/wal/a", "503 slow down", 1)
        ]
    );
    assert_eq!(
        (failing[0].first_failed_at, failing[0].last_failed_at),
        (t0, t1)
    );
    assert_eq!(
        c.deletion_failure_stats().await.unwrap(),
        [(main.clone(), 2, t0)]
    );
    c.forget_deletion_failure(&main, "main/wal/b")
        .await
        .unwrap();
    assert_eq!(
        c.deletion_failure_stats().await.unwrap(),
        [(main.clone(), 1, t1)]
    );

    // Leases: one holder at a time, renewable, taken over once expired.
    assert!(c.take_lease("retention", "a", 100, 200).await.unwrap());
    assert!(!c.take_lease("retention", "b", 150, 250).await.unwrap());
    assert!(c.take_lease("retention", "a", 150, 300).await.unwrap());
    assert!(!c.take_lease("retention", "b", 299, 400).await.unwrap());
    assert!(c.take_lease("retention", "b", 301, 400).await.unwrap());
    assert_eq!(c.lease_until("retention").await.unwrap(), Some(400));
    assert_eq!(c.lease_until("verify").await.unwrap(), None);

    // Deleting the cluster: refused while it holds anything.
    assert!(!c.delete_cluster(&main).await.unwrap());
    for b in c.backups(&main).await.unwrap() {
        c.delete_backup(&main, &b.id).await.unwrap();
    }
    let left = c.cluster_stats(&main).await.unwrap().wal_files;
    assert_eq!(c.expire_all_wal(&main).await.unwrap(), left);
    assert_eq!(c.cluster_stats(&main).await.unwrap().wal_files, 0);
    assert!(!c.delete_cluster(&main).await.unwrap(), "deletions pending");
    let pending = names(c.wal_deletions(&main, None, 100).await.unwrap());
    assert!(
        pending
            .iter()
            .any(|f| f.kind() == walgate_core::WalFileKind::History)
    );
    c.forget_wal_deletions(&main, &pending).await.unwrap();
    assert!(c.delete_cluster(&main).await.unwrap());
    assert_eq!(c.cluster(&main).await.unwrap(), None);
    assert_eq!(c.last_verification(&main).await.unwrap(), None);
    assert_eq!(c.deletion_failures(&main).await.unwrap(), []);
    assert!(!c.delete_cluster(&main).await.unwrap(), "already gone");
}

/// The change counters and what verifications saw of them: a refresh renews exactly the
/// reports whose cluster is as it was, and every kind of change shows.
async fn changes_suite(c: &dyn Catalog) {
    let counted: ClusterName = "counted".parse().unwrap();
    let idle: ClusterName = "idle".parse().unwrap();
    for name in [&counted, &idle] {
        c.ensure_cluster(name, &TargetName::default_name())
            .await
            .unwrap();
    }
    assert_eq!(c.changes(&idle).await.unwrap(), Changes::default());
    for n in 1..=3 {
        let name = format!("0000000100000000000000{n:02}");
        c.insert_wal(&counted, &wal(&name, n)).await.unwrap();
    }
    // A second insert of the same name changes nothing.
    c.insert_wal(&counted, &wal("000000010000000000000003", 3))
        .await
        .unwrap();
    let three = Changes {
        wal_inserted: 3,
        ..Changes::default()
    };
    assert_eq!(c.changes(&counted).await.unwrap(), three);

    let report = |cluster: &ClusterName, at: OffsetDateTime| {
        walgate_core::api::VerifyReport::clean(cluster.as_str(), at)
    };
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let newest: SegmentName = "000000010000000000000003".parse().unwrap();
    let seen = Seen {
        changes: three,
        newest: Some(newest),
    };
    c.record_verification(&counted, &report(&counted, t0), Some(&seen))
        .await
        .unwrap();
    // `idle` was never verified; `counted` is as its verification saw it.
    let never = Stale {
        cluster: idle.clone(),
        ok: false,
        seen: None,
    };
    assert_eq!(
        stale(c, ["counted", "idle"]).await,
        std::slice::from_ref(&never)
    );
    let t1 = t0 + time::Duration::hours(1);
    let renewed = c.refresh_verifications(t1).await.unwrap();
    assert!(renewed >= 1, "{renewed}");
    let last = c.last_verification(&counted).await.unwrap().unwrap();
    assert_eq!(last, report(&counted, t1), "renewed, findings kept");

    // Appended: counted, and read after the cursor in the same statement.
    c.insert_wal(&counted, &wal("000000010000000000000004", 4))
        .await
        .unwrap();
    c.insert_wal(
        &counted,
        &wal("000000010000000000000002.00000028.backup", 5),
    )
    .await
    .unwrap();
    let (now, names) = c
        .appended(&counted, &WalFileName::Segment(newest), 10)
        .await
        .unwrap();
    assert_eq!(now.wal_inserted, 5);
    assert_eq!(names, ["000000010000000000000004".parse().unwrap()]);
    let (_, one) = c
        .appended(&counted, &"000000010000000000000001".parse().unwrap(), 1)
        .await
        .unwrap();
    assert_eq!(one.len(), 1, "at most the limit");
    let changed = Stale {
        cluster: counted.clone(),
        ok: true,
        seen: Some(seen.clone()),
    };
    assert_eq!(stale(c, ["counted", "idle"]).await, [changed, never]);
    c.refresh_verifications(t1 + time::Duration::hours(1))
        .await
        .unwrap();
    let last = c.last_verification(&counted).await.unwrap().unwrap();
    assert_eq!(last.verified_at, t1, "a changed cluster is not renewed");

    // Deletions and backups count as changes, whatever the totals say.
    let one_change = async |c: &dyn Catalog, change: &str| {
        let now = c.changes(&counted).await.unwrap();
        let seen = Seen {
            changes: now,
            newest: None,
        };
        assert_eq!(stale(c, ["counted"]).await.len(), 1, "{change} is a change");
        c.record_verification(&counted, &report(&counted, t1), Some(&seen))
            .await
            .unwrap();
        assert_eq!(stale(c, ["counted"]).await, [], "after {change}");
        now
    };
    let before = one_change(c, "an insert").await;
    c.expire_wal(&counted, "0000000000000002".parse().unwrap())
        .await
        .unwrap();
    let after = one_change(c, "an expiry").await;
    assert_eq!(after.wal_deleted, before.wal_deleted + 1);
    let b = backup("20261127T010000Z-000000010000000000000002", 1);
    c.insert_backup(&counted, &b).await.unwrap();
    let before = one_change(c, "a new backup").await;
    assert_eq!(before.backups, after.backups + 1);
    c.beat_backup(&counted, &b.id, t1).await.unwrap();
    assert_eq!(
        c.changes(&counted).await.unwrap(),
        before,
        "a heartbeat is none"
    );
    let done = BackupRow {
        status: BackupStatus::Complete,
        stored_size: 5,
        finished_at: Some(t1),
        ..b.clone()
    };
    assert!(
        c.update_backup(&counted, &done, BackupStatus::Uploading)
            .await
            .unwrap()
    );
    let after = one_change(c, "a status").await;
    let stats = c.backup_stats(Some(&counted)).await.unwrap();
    assert_eq!((stats[0].1.complete, stats[0].1.newest), (1, Some((t1, 5))));
    c.delete_backup(&counted, &b.id).await.unwrap();
    assert_eq!(one_change(c, "a deletion").await.backups, after.backups + 1);
    let stats = c.backup_stats(Some(&counted)).await.unwrap();
    assert!(stats.is_empty(), "no complete backup left: {stats:?}");
    assert_eq!(after.backups, before.backups + 1);
}

/// The stale verifications among `clusters`.
async fn stale<const N: usize>(c: &dyn Catalog, clusters: [&str; N]) -> Vec<Stale> {
    let all = c.stale_verifications().await.unwrap();
    all.into_iter()
        .filter(|s| clusters.contains(&s.cluster.as_str()))
        .collect()
}

/// Rows a catalog held before migration 0015: a cluster with two complete backups, one
/// uploading, and a verification.
fn rows_before_0015() -> [String; 3] {
    let report = records::report_json(&walgate_core::api::VerifyReport::clean(
        "old",
        OffsetDateTime::UNIX_EPOCH,
    ));
    let backup = |id: &str, status: &str, stored: u32, day: u32, finished: bool| {
        let finished = match finished {
            true => format!("'2026-11-{day}T02:00:00Z'"),
            false => "NULL".into(),
        };
        format!(
            "('old', '{id}', '{status}', 'x', 'streamed', 0, 1, 1, 1, 10, {stored}, '', 0, \
             '2026-11-{day}T01:00:00Z', {finished})"
        )
    };
    [
        "INSERT INTO clusters (name, created_at, target) \
         VALUES ('old', '2026-11-20T00:00:00Z', 'default')"
            .into(),
        format!(
            "INSERT INTO backups (cluster, id, status, label, method, from_standby, start_lsn, \
               start_timeline, checkpoint_lsn, size, stored_size, sha256, has_manifest, \
               started_at, finished_at) VALUES {}, {}, {}",
            backup("b1", "complete", 5, 27, true),
            backup("b2", "complete", 7, 28, true),
            backup("b3", "uploading", 0, 29, false)
        ),
        format!(
            "INSERT INTO verifications (cluster, verified_at, ok, report) \
             VALUES ('old', '2026-11-28T03:00:00Z', 1, '{report}')"
        ),
    ]
}

/// A catalog as it was before migration 0015: `migrator`'s migrations up to 0014, then
/// [`rows_before_0015`].
async fn before_0015<DB>(pool: sqlx::Pool<DB>, mut migrator: sqlx::migrate::Migrator)
where
    DB: sqlx::Database,
    DB::Connection: sqlx::migrate::Migrate,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments: sqlx::IntoArguments<DB>,
{
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version < 15)
        .cloned()
        .collect();
    migrator.run(&pool).await.unwrap();
    for sql in rows_before_0015() {
        let sql = sqlx::AssertSqlSafe(sql);
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

/// After migration 0015: the backup totals were filled in from the rows already there,
/// and the verification from before is left for a whole run.
async fn upgraded_from_0014(c: &dyn Catalog) {
    let old: ClusterName = "old".parse().unwrap();
    let at = |day: u8, hour: u8| {
        time::Date::from_calendar_date(2026, time::Month::November, day)
            .unwrap()
            .with_hms(hour, 0, 0)
            .unwrap()
            .assume_utc()
    };
    let expected = BackupStats {
        complete: 2,
        stored_bytes: 12,
        newest: Some((at(28, 2), 7)),
        newest_took: Some(time::Duration::HOUR),
        oldest: Some(at(27, 2)),
    };
    assert_eq!(c.backup_stats(Some(&old)).await.unwrap(), [(old, expected)]);
    let stale = stale(c, ["old"]).await;
    assert!(
        matches!(
            &stale[..],
            [Stale {
                ok: true,
                seen: None,
                ..
            }]
        ),
        "{stale:?}"
    );
}

#[tokio::test]
async fn migration_0015_on_sqlite_with_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/catalog.db", dir.path().display());
    let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url)
        .unwrap()
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    before_0015(pool, sqlx::migrate!("../migrations/sqlite")).await;
    upgraded_from_0014(open(&url).await.unwrap().as_ref()).await;
}

fn migration_0015_on_postgres_with_data(pg: &Postgres) {
    let (_cluster, url) = catalog_database(pg);
    run(async {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        before_0015(pool, sqlx::migrate!("../migrations/postgres")).await;
        upgraded_from_0014(open(&url).await.unwrap().as_ref()).await;
    });
}

#[tokio::test]
async fn sqlite_backend() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(&format!("sqlite://{}/catalog.db", dir.path().display()))
        .await
        .unwrap();
    assert_eq!(c.backend(), "sqlite");
    suite(c.as_ref()).await;
    retention_suite(c.as_ref()).await;
    changes_suite(c.as_ref()).await;
}

fn postgres_backend(pg: &Postgres) {
    let (_cluster, url) = catalog_database(pg);
    run(async {
        let c = open(&url).await.unwrap();
        assert_eq!(c.backend(), "postgres");
        suite(c.as_ref()).await;
        retention_suite(c.as_ref()).await;
        changes_suite(c.as_ref()).await;
        // Migrations are idempotent: opening again applies nothing and loses nothing.
        let c = open(&url).await.unwrap();
        assert_eq!(c.tokens().await.unwrap().len(), 2);
    });
}

// The catalog may live on any PostgreSQL the fleet runs: its migrations, triggers and
// statements are shown on each.
walgate_tests::on_every_major!(postgres_backend, migration_0015_on_postgres_with_data);

/// A throwaway cluster of `pg` (stopped when dropped) with an empty catalog database,
/// and the database's URL.
fn catalog_database(pg: &Postgres) -> (PgCluster, String) {
    let mut cluster = PgCluster::init_on(pg, &[]);
    cluster.start();
    cluster.psql("CREATE DATABASE walgate_catalog");
    let url = cluster.url("walgate_catalog");
    (cluster, url)
}

fn run(test: impl std::future::Future<Output = ()>) {
    tokio::runtime::Runtime::new().unwrap().block_on(test)
}

#[tokio::test]
async fn bad_urls_are_refused() {
    assert!(matches!(
        open("mysql://x").await,
        Err(CatalogError::BadUrl(_))
    ));
}
