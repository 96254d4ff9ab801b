//! Benchmark: retention over a large synthetic catalog — 100 clusters, 10,000 WAL files
//! and 5 backups each (a million WAL rows) — on SQLite and on PostgreSQL 15. Prints how
//! long a preview and a run take for every cluster, and how many SQL statements each
//! issues (counted from sqlx's own statement events). Retention never lists the object
//! store: what to delete comes from the catalog alone.
//!
//!   cargo bench -p walgate --bench retention [-- CLUSTERS FILES_PER_CLUSTER]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tracing_subscriber::layer::SubscriberExt;
use walgate::Services;
use walgate::catalog::BackupRow;
use walgate::settings::{self, Settings};
use walgate_core::api::RetentionPolicy;
use walgate_core::{ClusterName, Lsn, Timeline};
use walgate_tests::PgCluster;

const SEG: u64 = 16 << 20;

/// Counts the SQL statements sqlx executes.
struct CountStatements(Arc<AtomicU64>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountStatements {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn backup(i: u64, segno: u64) -> BackupRow {
    let mut b = BackupRow::positioned(
        &format!("b{i}"),
        Timeline(1),
        Lsn(segno * SEG + 40),
        Lsn(segno * SEG + 4096),
        OffsetDateTime::now_utc() - Duration::from_secs(86_400 * (5 - i)),
    );
    b.stored_size = 1 << 28;
    b
}

/// Fills the catalog with `files` WAL rows for each of `clusters` clusters, in bulk SQL
/// (the catalog's API inserts one row at a time, as archiving does).
async fn fill(url: &str, state: &Services, clusters: u64, files: u64) {
    let names: Vec<ClusterName> = (0..clusters)
        .map(|c| format!("c{c:03}").parse().unwrap())
        .collect();
    for name in &names {
        state
            .catalog
            .ensure_cluster(name, state.storage.default_target())
            .await
            .unwrap();
        for i in 0..5 {
            // Backups spread over the WAL: the second newest starts 60% of the way in.
            let segno = files * (i + 1) / 5 - files / 5 + 1;
            state
                .catalog
                .insert_backup(name, &backup(i, segno))
                .await
                .unwrap();
        }
    }
    let digest = format!("blake3:{}", "0".repeat(64));
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        for name in &names {
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $2) \
                 INSERT INTO wal_files (cluster, name, kind, timeline, size, stored_size, digest, archived_at) \
                 SELECT $1, printf('00000001%08X%08X', i / 256, i % 256), 'segment', 1, 16777216, 1048576, $3, \
                        '2026-11-27T00:00:00Z' FROM n",
            )
            .bind(name.as_str())
            .bind(files as i64)
            .bind(&digest)
            .execute(&pool)
            .await
            .unwrap();
        }
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(
            "INSERT INTO wal_files (cluster, name, kind, timeline, size, stored_size, digest, archived_at) \
             SELECT c.name, '00000001' || lpad(upper(to_hex(i / 256)), 8, '0') || lpad(upper(to_hex(i % 256)), 8, '0'), \
                    'segment', 1, 16777216, 1048576, $2, now() \
             FROM clusters c, generate_series(0, $1 - 1) i",
        )
        .bind(files as i64)
        .bind(&digest)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    }
}

async fn measure(backend: &str, catalog_url: &str, clusters: u64, files: u64, queries: &AtomicU64) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let args = [
        "walgate",
        "--data-dir",
        data_dir,
        "--catalog-url",
        catalog_url,
    ];
    let settings: Settings = settings::parse_from(args).unwrap();
    let state = Services::open(settings).await.unwrap();
    let started = Instant::now();
    fill(catalog_url, &state, clusters, files).await;
    eprintln!(
        "{backend}: filled {} WAL rows in {:.1} s",
        clusters * files,
        started.elapsed().as_secs_f64()
    );
    let policy = RetentionPolicy {
        keep_last: Some(2),
        ..Default::default()
    };
    let mut rows: Vec<_> = state
        .catalog
        .clusters()
        .await
        .unwrap()
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    for c in &mut rows {
        state
            .catalog
            .set_retention(&c.name, Some(&policy))
            .await
            .unwrap();
        c.retention = Some(policy.clone());
    }

    let (mut expired, mut bytes) = (0, 0);
    queries.store(0, Ordering::Relaxed);
    let t = Instant::now();
    for c in &rows {
        let plan = walgate::retention::preview(&state, c).await.unwrap();
        expired += plan.delete_wal_files;
        bytes += plan.delete_bytes;
    }
    let preview = t.elapsed();
    let preview_queries = queries.swap(0, Ordering::Relaxed);

    let t = Instant::now();
    let mut deleted = 0;
    for c in &rows {
        deleted += walgate::retention::run(&state, c)
            .await
            .unwrap()
            .delete_wal_files;
    }
    let run = t.elapsed();
    let run_queries = queries.swap(0, Ordering::Relaxed);
    assert_eq!(deleted, expired);
    let left: u64 = state
        .catalog
        .clusters()
        .await
        .unwrap()
        .iter()
        .map(|(_, s)| s.wal_files)
        .sum();
    assert_eq!(left, clusters * files - expired);

    println!(
        "{backend:<10} preview: {:>7.2} s for {clusters} clusters ({:>6.1} ms each), {preview_queries:>6} statements ({:.1} per cluster); \
         would delete {expired} WAL files and {} backups, {} GiB",
        preview.as_secs_f64(),
        preview.as_secs_f64() * 1000.0 / clusters as f64,
        preview_queries as f64 / clusters as f64,
        clusters * 3,
        bytes >> 30
    );
    println!(
        "{backend:<10} run:     {:>7.2} s for {clusters} clusters ({:>6.1} ms each), {run_queries:>6} statements ({:.1} per cluster; {:.4} per WAL file deleted)",
        run.as_secs_f64(),
        run.as_secs_f64() * 1000.0 / clusters as f64,
        run_queries as f64 / clusters as f64,
        run_queries as f64 / deleted as f64
    );
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let clusters = args.first().copied().unwrap_or(100);
    let files = args.get(1).copied().unwrap_or(10_000);
    let queries = Arc::new(AtomicU64::new(0));
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::filter::Targets::new()
                .with_target("sqlx::query", tracing::Level::TRACE),
        )
        .with(CountStatements(queries.clone()));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    println!(
        "retention over {clusters} clusters x {files} WAL files and 5 backups each, keep_last = 2"
    );
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/catalog.db", dir.path().display());
    rt.block_on(measure("sqlite", &sqlite, clusters, files, &queries));

    let mut pg = PgCluster::init(&[]);
    pg.start();
    pg.psql("CREATE DATABASE walgate");
    rt.block_on(measure(
        "postgresql",
        &pg.url("walgate"),
        clusters,
        files,
        &queries,
    ));
}
