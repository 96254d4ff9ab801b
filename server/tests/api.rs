//! The HTTP API in-process (no socket): every WAL status of the contract, token scoping,
//! and for each bad input, the archive left exactly as it was.

use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use walgate::Services;
use walgate::catalog::Scope;
use walgate::settings::{self, Settings};
use walgate_core::api::Role;

const SYSID: u64 = 7_300_000_000_000_000_001;
const SEG: usize = 16 << 20;
/// The first segment of timeline 1.
const NAME: &str = "000000010000000000000001";

use walgate_tests::synthetic_segment as segment;
use walgate_tests::wait_until;

/// Waits on a blocking thread, so the runtime meanwhile drives the requests waited on.
async fn wait_for(what: &'static str, done: impl FnMut() -> bool + Send + 'static) {
    tokio::task::spawn_blocking(move || wait_until(Duration::from_secs(60), what, done))
        .await
        .unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
}

struct Fixture {
    _dir: tempfile::TempDir,
    objects: std::path::PathBuf,
    app: Router,
    state: Services,
}

impl Fixture {
    async fn new() -> Self {
        Self::serving(&[]).await
    }

    /// A gateway on a new data directory, with `flags` as `walgate serve` takes them.
    async fn serving(flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap();
        let args = ["walgate", "--data-dir", data_dir];
        let settings: Settings = settings::parse_from(args.iter().chain(flags)).unwrap();
        let state = Services::open(settings).await.unwrap();
        let app = walgate::http::AppState::new(state.clone()).unwrap();
        Fixture {
            objects: dir.path().join("objects"),
            _dir: dir,
            app: walgate::http::app(app),
            state,
        }
    }

    async fn token(&self, clusters: &str, role: Role) -> String {
        let scope: Scope = clusters.parse().unwrap();
        self.state
            .auth
            .issue(scope, role, None, None)
            .await
            .unwrap()
            .1
    }

    async fn send(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        // As curl and the client send it for a body of known size.
        if !body.is_empty()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        {
            req = req.header("content-length", body.len());
        }
        let res = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        (status, headers, bytes)
    }

    /// A request without extra headers or body.
    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        self.send(method, uri, token, &[], vec![]).await
    }

    async fn put(
        &self,
        token: &str,
        cluster: &str,
        name: &str,
        body: Vec<u8>,
    ) -> (StatusCode, String) {
        let uri = format!("/v1/clusters/{cluster}/wal/{name}");
        let (s, _, b) = self.send(Method::PUT, &uri, Some(token), &[], body).await;
        (s, String::from_utf8_lossy(&b).into_owned())
    }

    /// Runs retention on `main` now; the run's answer.
    async fn run_retention(&self, admin: &str) -> Vec<u8> {
        let uri = "/v1/clusters/main/retention/run?confirm=true";
        let (s, _, body) = self.call(Method::POST, uri, Some(admin)).await;
        assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        body
    }

    /// The ids of `cluster`'s backups in the catalog, newest first.
    async fn backup_ids(&self, cluster: &str) -> Vec<String> {
        let cluster: walgate_core::ClusterName = cluster.parse().unwrap();
        let rows = self.state.catalog.backups(&cluster).await.unwrap();
        rows.into_iter().map(|b| b.id).collect()
    }

    async fn get(&self, token: &str, cluster: &str, name: &str) -> (StatusCode, Vec<u8>) {
        let uri = format!("/v1/clusters/{cluster}/wal/{name}");
        let (s, _, b) = self.call(Method::GET, &uri, Some(token)).await;
        (s, b)
    }

    /// Everything stored: object paths with their contents, and the catalog's WAL list.
    async fn snapshot(&self, token: &str) -> (Vec<(String, Vec<u8>)>, String) {
        fn walk(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.push((
                        e.path().display().to_string(),
                        std::fs::read(e.path()).unwrap(),
                    ));
                }
            }
        }
        let mut objects = vec![];
        walk(&self.objects.join("clusters"), &mut objects);
        objects.sort();
        let (_, _, list) = self
            .call(Method::GET, "/v1/clusters/main/wal", Some(token))
            .await;
        (objects, String::from_utf8(list).unwrap())
    }
}

fn error_code(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body).unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn push_fetch_and_idempotence() {
    let f = Fixture::new().await;
    let t = f.token("main", Role::Archiver).await;
    let seg3 = segment(SYSID, 1, 3, 0xAB);
    assert_eq!(
        f.put(&t, "main", "000000010000000000000003", seg3.clone())
            .await
            .0,
        StatusCode::CREATED
    );
    let before = f.snapshot(&t).await;
    // Same name, same content: 200 and nothing rewritten.
    let (status, body) = f
        .put(&t, "main", "000000010000000000000003", seg3.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(f.snapshot(&t).await, before);
    // Same name, other content: 409 and nothing rewritten.
    let (status, body) = f
        .put(
            &t,
            "main",
            "000000010000000000000003",
            segment(SYSID, 1, 3, 0xCD),
        )
        .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::CONFLICT, "conflict"),
        "{body}"
    );
    assert!(body.contains("split brain"), "{body}");
    assert_eq!(f.snapshot(&t).await, before);

    assert_eq!(
        f.get(&t, "main", "000000010000000000000003").await,
        (StatusCode::OK, seg3.clone())
    );
    let (status, headers, zbody) = f
        .send(
            Method::GET,
            "/v1/clusters/main/wal/000000010000000000000003",
            Some(&t),
            &[("accept-encoding", "zstd")],
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-encoding"], "zstd");
    assert!(zbody.len() < 4096, "stored compressed");
    assert_eq!(zstd::decode_all(&zbody[..]).unwrap(), seg3);
    let (status, headers, _) = f
        .call(
            Method::HEAD,
            "/v1/clusters/main/wal/000000010000000000000003",
            Some(&t),
        )
        .await;
    assert_eq!(
        (status, headers["content-length"].to_str().unwrap()),
        (StatusCode::OK, "16777216")
    );
    assert_eq!(
        f.get(&t, "main", "000000010000000000000004").await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _, _) = f
        .call(
            Method::HEAD,
            "/v1/clusters/main/wal/000000010000000000000004",
            Some(&t),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A zstd-encoded upload is stored and served decoded.
    let seg4 = segment(SYSID, 1, 4, 0x11);
    let (status, _, body) = f
        .send(
            Method::PUT,
            "/v1/clusters/main/wal/000000010000000000000004",
            Some(&t),
            &[("content-encoding", "zstd")],
            zstd::encode_all(&seg4[..], 3).unwrap(),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        f.get(&t, "main", "000000010000000000000004").await,
        (StatusCode::OK, seg4)
    );

    // History, backup history and partial files.
    let history = b"1\t0/5000000\tno recovery target specified\n".to_vec();
    assert_eq!(
        f.put(&t, "main", "00000002.history", history.clone())
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        f.get(&t, "main", "00000002.history").await,
        (StatusCode::OK, history)
    );
    let backup = b"START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\n".to_vec();
    assert_eq!(
        f.put(
            &t,
            "main",
            "000000010000000000000003.00000028.backup",
            backup
        )
        .await
        .0,
        StatusCode::CREATED
    );
    let partial = segment(SYSID, 1, 5, 0);
    assert_eq!(
        f.put(&t, "main", "000000010000000000000005.partial", partial)
            .await
            .0,
        StatusCode::CREATED
    );
    // A new timeline's first segment starts with pages of the old timeline.
    assert_eq!(
        f.put(
            &t,
            "main",
            "000000020000000000000005",
            segment(SYSID, 1, 5, 2)
        )
        .await
        .0,
        StatusCode::CREATED
    );

    let (status, _, list) = f
        .call(
            Method::GET,
            "/v1/clusters/main/wal?timeline=1&limit=2",
            Some(&t),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let list: walgate_core::api::WalList = serde_json::from_slice(&list).unwrap();
    let names: Vec<_> = list.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "000000010000000000000003",
            "000000010000000000000003.00000028.backup"
        ]
    );
    assert_eq!(
        list.next_after.as_deref(),
        Some("000000010000000000000003.00000028.backup")
    );

    let (_, _, cluster) = f.call(Method::GET, "/v1/clusters/main", Some(&t)).await;
    let cluster: walgate_core::api::Cluster = serde_json::from_slice(&cluster).unwrap();
    assert_eq!(cluster.system_identifier, Some(SYSID.to_string()));
    assert_eq!(
        (cluster.segment_size, cluster.pg_version, cluster.wal_files),
        (Some(SEG as u64), Some(15), 6)
    );
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let f = Fixture::new().await;
    let t = f.token("main", Role::Archiver).await;
    assert_eq!(
        f.put(
            &t,
            "main",
            "000000010000000000000003",
            segment(SYSID, 1, 3, 1)
        )
        .await
        .0,
        StatusCode::CREATED
    );
    let before = f.snapshot(&t).await;

    let mut short = segment(SYSID, 1, 4, 1);
    short.truncate(SEG - 8192);
    let mut long = segment(SYSID, 1, 4, 1);
    long.push(0);
    let cases: Vec<(&str, &str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "main",
            "000000010000000a00000004",
            segment(SYSID, 1, 0xA00000004, 1),
            StatusCode::BAD_REQUEST,
            "bad_name",
        ),
        ("main", "..", vec![1], StatusCode::BAD_REQUEST, "bad_name"),
        (
            "main",
            "..%2F..%2Fetc",
            vec![1],
            StatusCode::BAD_REQUEST,
            "bad_name",
        ),
        (
            "main",
            "000000010000000000000004%2Fx",
            vec![1],
            StatusCode::BAD_REQUEST,
            "bad_name",
        ),
        (
            "main",
            "000000010000000000000004.gz",
            vec![1],
            StatusCode::BAD_REQUEST,
            "bad_name",
        ),
        (
            "Main",
            "000000010000000000000004",
            segment(SYSID, 1, 4, 1),
            StatusCode::BAD_REQUEST,
            "bad_cluster",
        ),
        (
            "main",
            "000000010000000000000004",
            short,
            StatusCode::BAD_REQUEST,
            "bad_content",
        ),
        (
            "main",
            "000000010000000000000004",
            long,
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            "main",
            "000000010000000000000004",
            vec![],
            StatusCode::BAD_REQUEST,
            "bad_content",
        ),
        (
            "main",
            "000000010000000000000004",
            b"garbage, not WAL".repeat(100_000),
            StatusCode::BAD_REQUEST,
            "bad_content",
        ),
        (
            "main",
            "000000010000000000000004",
            segment(SYSID, 1, 5, 1),
            StatusCode::BAD_REQUEST,
            "bad_content",
        ),
        (
            "main",
            "000000010000000000000004",
            segment(SYSID + 1, 1, 4, 1),
            StatusCode::CONFLICT,
            "wrong_system",
        ),
        (
            "main",
            "000000010000000000000004",
            segment(SYSID, 2, 4, 1),
            StatusCode::BAD_REQUEST,
            "bad_content",
        ),
        (
            "main",
            "00000002.history",
            vec![],
            StatusCode::BAD_REQUEST,
            "bad_content",
        ),
        (
            "main",
            "00000002.history",
            b"# only a comment\n".to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_content",
        ),
        (
            "main",
            "00000002.history",
            b"1\t0/3000000\tfine\n5\t0/4000000\tnot an ancestor of 2\n".to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_content",
        ),
        (
            "main",
            "00000002.history",
            vec![b'x'; (1 << 20) + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
    ];
    for (cluster, name, body, status, code) in cases {
        let (got, body) = f.put(&t, cluster, name, body).await;
        assert_eq!(
            (got, error_code(&body).as_str()),
            (status, code),
            "{cluster}/{name}: {body}"
        );
        let message = serde_json::from_str::<serde_json::Value>(&body).unwrap()["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            message.len() > 20,
            "{cluster}/{name}: unhelpful message {message:?}"
        );
        assert_eq!(
            f.snapshot(&t).await,
            before,
            "{cluster}/{name} changed the archive"
        );
    }

    // Bodies that are not what their encoding says.
    let uri = "/v1/clusters/main/wal/000000010000000000000004";
    let put_as = async |encoding: &str, body: Vec<u8>| {
        let headers = [("content-encoding", encoding)];
        let (status, _, body) = f.send(Method::PUT, uri, Some(&t), &headers, body).await;
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    let (status, body) = put_as("zstd", b"not zstd".to_vec()).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "bad_body")
    );
    // A zstd frame asking for a 128 MiB window (`--long=27`, streamed: no content size),
    // more memory than a WAL body may make the gateway spend.
    let mut long = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
    long.long_distance_matching(true).unwrap();
    long.window_log(27).unwrap();
    std::io::Write::write_all(&mut long, &segment(SYSID, 1, 4, 1)).unwrap();
    let (status, body) = put_as("zstd", long.finish().unwrap()).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "bad_body"),
        "{body}"
    );
    assert!(body.contains("memory"), "{body}");
    let (status, _) = put_as("br", segment(SYSID, 1, 4, 1)).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // An oversized declared length is refused before the body is read.
    let (status, _, _) = f
        .send(
            Method::PUT,
            uri,
            Some(&t),
            &[("content-length", "99999999999")],
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(f.snapshot(&t).await, before);
}

#[tokio::test]
async fn tokens_are_scoped_to_clusters_and_roles() {
    let f = Fixture::new().await;
    let archiver = f.token("main", Role::Archiver).await;
    let other = f.token("other", Role::Admin).await;
    let restorer = f.token("main", Role::Restorer).await;
    let viewer = f.token("main", Role::Viewer).await;
    let admin = f.token("*", Role::Admin).await;
    let seg = || segment(SYSID, 1, 3, 1);
    let name = "000000010000000000000003";
    assert_eq!(
        f.put(&archiver, "main", name, seg()).await.0,
        StatusCode::CREATED
    );
    let before = f.snapshot(&admin).await;

    for (token, status) in [
        ("", StatusCode::UNAUTHORIZED),
        ("not-a-jwt", StatusCode::UNAUTHORIZED),
        (&other, StatusCode::FORBIDDEN),
        (&restorer, StatusCode::FORBIDDEN),
        (&viewer, StatusCode::FORBIDDEN),
    ] {
        let (got, body) = f
            .put(
                token,
                "main",
                "000000010000000000000004",
                segment(SYSID, 1, 4, 1),
            )
            .await;
        assert_eq!(got, status, "{body}");
    }
    let uri = format!("/v1/clusters/main/wal/{name}");
    let (status, _, _) = f.send(Method::PUT, &uri, None, &[], seg()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(f.snapshot(&admin).await, before);

    assert_eq!(f.get(&other, "main", name).await.0, StatusCode::FORBIDDEN);
    assert_eq!(f.get(&viewer, "main", name).await.0, StatusCode::FORBIDDEN);
    assert_eq!(f.get(&restorer, "main", name).await.0, StatusCode::OK);
    assert_eq!(f.get(&admin, "main", name).await.0, StatusCode::OK);
    let (status, _, _) = f.call(Method::HEAD, &uri, Some(&viewer)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = f
        .call(Method::GET, "/v1/clusters/main/wal", Some(&other))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The fleet view shows only what the token covers.
    let (_, _, list) = f.call(Method::GET, "/v1/clusters", Some(&other)).await;
    assert_eq!(String::from_utf8(list).unwrap(), "[]");
    let (_, _, list) = f.call(Method::GET, "/v1/clusters", Some(&viewer)).await;
    assert!(String::from_utf8(list).unwrap().contains("\"main\""));

    // Registering a cluster takes an admin; pinning another identity later is refused.
    let body = br#"{"system_identifier": "42"}"#.to_vec();
    let json = [("content-type", "application/json")];
    let (status, _, _) = f
        .send(
            Method::PUT,
            "/v1/clusters/new",
            Some(&archiver),
            &json,
            body.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = f
        .send(Method::PUT, "/v1/clusters/new", Some(&admin), &json, body)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = f
        .send(
            Method::PUT,
            "/v1/clusters/new",
            Some(&admin),
            &json,
            br#"{"system_identifier": "43"}"#.to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let new_seg = segment(SYSID, 1, 3, 1);
    assert_eq!(
        f.put(&admin, "new", name, new_seg).await.0,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn probes_answer_without_a_token() {
    let f = Fixture::new().await;
    let (status, _, body) = f.call(Method::GET, "/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = f.call(Method::GET, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
}

/// A complete backup row starting in segment `segno`, finished `age_days` ago.
fn backup_row(id: &str, segno: u64, age_days: i64) -> walgate::catalog::BackupRow {
    use walgate_core::{Lsn, Timeline};
    walgate::catalog::BackupRow::positioned(
        id,
        Timeline(1),
        Lsn(segno * SEG as u64 + 40),
        Lsn(segno * SEG as u64 + 4096),
        time::OffsetDateTime::now_utc() - time::Duration::days(age_days),
    )
}

/// A retention run that died after marking its deletions (catalog updated, objects still
/// there) is finished by the next run, which then deletes nothing else it should keep.
#[tokio::test]
async fn a_half_done_retention_run_is_finished_by_the_next() {
    let f = Fixture::new().await;
    let archiver = f.token("main", Role::Archiver).await;
    let admin = f.token("main", Role::Admin).await;
    for segno in 1..=6u64 {
        let name = format!("0000000100000000{segno:08X}");
        let (s, b) = f
            .put(&archiver, "main", &name, segment(SYSID, 1, segno, 1))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let main: walgate_core::ClusterName = "main".parse().unwrap();
    let catalog = f.state.catalog.as_ref();
    catalog
        .insert_backup(&main, &backup_row("old", 1, 2))
        .await
        .unwrap();
    catalog
        .insert_backup(&main, &backup_row("new", 4, 1))
        .await
        .unwrap();
    let policy = walgate_core::api::RetentionPolicy {
        keep_last: Some(1),
        ..Default::default()
    };
    catalog.set_retention(&main, Some(&policy)).await.unwrap();

    // The first run's durable marks, and then it died: the old backup marked deleting,
    // the WAL before segment 4 moved out of the catalog, every object still stored.
    let mut old = catalog.backup(&main, "old").await.unwrap().unwrap();
    old.status = walgate::catalog::BackupStatus::Deleting;
    let from = walgate::catalog::BackupStatus::Complete;
    assert!(catalog.update_backup(&main, &old, from).await.unwrap());
    assert_eq!(
        catalog
            .expire_wal(&main, "0000000000000004".parse().unwrap())
            .await
            .unwrap(),
        3
    );
    let wal_dir = f.objects.join("clusters/main/wal");
    let stored = || {
        let mut names: Vec<String> = std::fs::read_dir(&wal_dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(stored().len(), 6);
    // Already invisible: nothing can plan a restore from what is being deleted.
    let (s, _) = f.get(&admin, "main", "000000010000000000000001").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let body = f.run_retention(&admin).await;
    assert_eq!(
        stored(),
        [
            "000000010000000000000004.zst",
            "000000010000000000000005.zst",
            "000000010000000000000006.zst"
        ]
    );
    assert!(
        catalog
            .wal_deletions(&main, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let ids = f.backup_ids("main").await;
    assert_eq!(ids, ["new"]);
    let plan: walgate_core::api::RetentionPlan = serde_json::from_slice(&body).unwrap();
    assert_eq!(plan.keep, ["new"]);
    assert_eq!(
        plan.delete_wal_files, 0,
        "nothing left to expire after the resume"
    );
}

/// Verification names a segment missing from the middle of the chain, and a scrub finds
/// a stored object that was damaged or deleted behind the gateway's back.
#[tokio::test]
async fn verify_finds_gaps_and_damaged_objects() {
    let f = Fixture::new().await;
    let archiver = f.token("main", Role::Archiver).await;
    let admin = f.token("main", Role::Admin).await;
    let viewer = f.token("main", Role::Viewer).await;
    for segno in [1u64, 2, 3, 5, 6, 7] {
        let name = format!("0000000100000000{segno:08X}");
        let (s, b) = f
            .put(
                &archiver,
                "main",
                &name,
                segment(SYSID, 1, segno, segno as u8),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let main: walgate_core::ClusterName = "main".parse().unwrap();
    f.state
        .catalog
        .insert_backup(&main, &backup_row("b", 1, 1))
        .await
        .unwrap();
    let report =
        |body: Vec<u8>| serde_json::from_slice::<walgate_core::api::VerifyReport>(&body).unwrap();

    let (s, _, body) = f
        .call(Method::GET, "/v1/clusters/main/verify", Some(&viewer))
        .await;
    assert_eq!(s, StatusCode::OK);
    let r = report(body);
    assert!(!r.ok);
    assert_eq!(
        r.chain_problems,
        ["000000010000000000000004 is missing: replay from backup b stops before it"]
    );
    // A scrub reads the whole archive: admins only.
    let (s, _, _) = f
        .call(
            Method::GET,
            "/v1/clusters/main/verify?scrub=true",
            Some(&viewer),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Damage one object and delete another behind the gateway's back.
    let wal = f.objects.join("clusters/main/wal");
    let damaged = wal.join("000000010000000000000005.zst");
    let mut bytes = std::fs::read(&damaged).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(&damaged, bytes).unwrap();
    std::fs::remove_file(wal.join("000000010000000000000007.zst")).unwrap();
    let (s, _, body) = f
        .call(
            Method::GET,
            "/v1/clusters/main/verify?scrub=true",
            Some(&admin),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let r = report(body);
    assert!(r.scrubbed && !r.ok);
    assert_eq!(
        r.objects_checked, 7,
        "six WAL files and the backup, whose object is missing"
    );
    let problems = r.object_problems.join("\n");
    assert!(problems.contains("000000010000000000000005"), "{problems}");
    assert!(problems.contains("000000010000000000000007"), "{problems}");
    assert!(problems.contains("backup b"), "{problems}");
    assert_eq!(r.object_problems.len(), 3, "{problems}");

    // The last report is kept for the cluster.
    let (s, _, body) = f
        .call(Method::GET, "/v1/clusters/main/verification", Some(&viewer))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(report(body), r);
}

/// Base backup uploads beyond a cluster's limit get 429 and beyond the gateway's 503,
/// both with Retry-After; other clusters, and WAL, are not held up.
#[tokio::test]
async fn backup_uploads_beyond_the_limits_wait_their_turn() {
    let f = Fixture::new().await;
    let token = f.token("*", Role::Archiver).await;
    // A first upload whose body stays open.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/clusters/main/backups")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from_stream(stream))
        .unwrap();
    let app = f.app.clone();
    let first = tokio::spawn(async move { app.oneshot(req).await.unwrap() });
    // The start of a tar: backup_label's header, then less of it than the header says.
    let mut header = tar::Header::new_gnu();
    header.set_path("backup_label").unwrap();
    header.set_size(4096);
    header.set_cksum();
    let mut start = header.as_bytes().to_vec();
    start.extend_from_slice(b"START WAL LOCATION: ");
    tx.send(Ok(start.into())).await.unwrap();
    // Wait until it holds its place (asking takes none while it is held).
    let main: walgate_core::ClusterName = "main".parse().unwrap();
    let state = f.state.clone();
    wait_for("the first upload to hold its place", move || {
        state.limits.uploads.start(&main).is_err()
    })
    .await;
    let (status, headers, body) = f
        .call(Method::POST, "/v1/clusters/main/backups", Some(&token))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "60");
    let body = String::from_utf8(body).unwrap();
    assert_eq!(error_code(&body), "busy");
    assert!(body.contains("cluster `main` already uploads"), "{body}");

    // Another cluster may upload (this body is no backup: 400, not 429), and WAL flows.
    let (status, _, _) = f
        .call(Method::POST, "/v1/clusters/other/backups", Some(&token))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = f.put(&token, "main", NAME, segment(SYSID, 1, 1, 0)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // The first upload ends (not a tar: 400) and frees its place.
    drop(tx);
    assert_eq!(first.await.unwrap().status(), StatusCode::BAD_REQUEST);
    let (status, _, _) = f
        .call(Method::POST, "/v1/clusters/main/backups", Some(&token))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// A tar stream as `pg_basebackup -Ft` writes it for a data directory of PostgreSQL
/// `major` and database system `SYSID`, started at segment 3: its label,
/// pg_control and PG_VERSION.
fn small_backup(major: u32) -> Vec<u8> {
    small_backup_labelled(major, "")
}

/// [`small_backup`] with `extra` lines at the end of its label.
fn small_backup_labelled(major: u32, extra: &str) -> Vec<u8> {
    walgate_tests::synthetic_backup(major, SYSID, 3, extra)
}

/// Backups started in the same second from the same WAL file, as two taken from a
/// standby between its restartpoints are, are each kept under their own id (three
/// pushes this small take well under a second, so at least two share one). A backup
/// of another major than the cluster's WAL is refused, naming both versions.
#[tokio::test]
async fn backups_with_the_same_start_are_each_kept() {
    let f = Fixture::new().await;
    let token = f.token("main", Role::Archiver).await;
    let third = "000000010000000000000003";
    let (status, body) = f.put(&token, "main", third, segment(SYSID, 1, 3, 0)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let push = |major| {
        f.send(
            Method::POST,
            "/v1/clusters/main/backups",
            Some(&token),
            &[],
            small_backup(major),
        )
    };
    for _ in 0..3 {
        let (status, _, body) = push(15).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    let mut ids = f.backup_ids("main").await;
    ids.dedup();
    assert_eq!(ids.len(), 3, "{ids:?}");

    let (status, _, body) = push(17).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let body = String::from_utf8(body).unwrap();
    assert_eq!(error_code(&body), "wrong_system");
    assert!(
        body.contains("PostgreSQL 17") && body.contains("PostgreSQL 15"),
        "{body}"
    );
    assert_eq!(f.backup_ids("main").await.len(), 3);

    // An incremental backup on a parent the cluster does not hold: refused before
    // anything is stored.
    let before = f.snapshot(&token).await;
    let incremental = |from: &str| {
        small_backup_labelled(
            15,
            &format!("INCREMENTAL FROM LSN: {from}\nINCREMENTAL FROM TLI: 1\n"),
        )
    };
    let post = |body| {
        f.send(
            Method::POST,
            "/v1/clusters/main/backups",
            Some(&token),
            &[],
            body,
        )
    };
    let (status, _, body) = post(incremental("0/2000028")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let body = String::from_utf8(body).unwrap();
    assert_eq!(error_code(&body), "no_parent");
    assert!(
        body.contains(
            "started at LSN 0/2000028 on timeline 1, and cluster `main` holds no complete backup"
        ),
        "{body}"
    );
    assert_eq!(f.snapshot(&token).await, before);

    // On one of them: tied to the newest that started there, which then cannot go
    // before it.
    let (status, _, body) = post(incremental("0/3000028")).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let stored: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let parent = &ids[0];
    assert_eq!(stored["kind"], "incremental");
    assert_eq!(stored["parent"], parent.as_str());
    assert_eq!(stored["chain"], serde_json::json!([parent, stored["id"]]));
    let admin = f.token("main", Role::Admin).await;
    let (status, _, body) = f
        .send(
            Method::DELETE,
            &format!("/v1/clusters/main/backups/{parent}"),
            Some(&admin),
            &[],
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let body = String::from_utf8(body).unwrap();
    assert_eq!(error_code(&body), "has_dependants");
    assert!(body.contains(stored["id"].as_str().unwrap()), "{body}");

    // A parent named by the uploader must be the one its label names, and a full
    // backup has none; nothing is kept either way.
    let before = f.snapshot(&token).await;
    let post_to = |query: String, body| {
        let f = &f;
        let token = &token;
        async move {
            let uri = format!("/v1/clusters/main/backups{query}");
            f.send(Method::POST, &uri, Some(token), &[], body).await
        }
    };
    let elsewhere = format!("?parent={}", ids[1]);
    let (status, _, body) = post_to(elsewhere.clone(), incremental("0/2000028")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(String::from_utf8(body).unwrap().contains("names backup"));
    let (status, _, body) = post_to(elsewhere, small_backup(15)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("no INCREMENTAL FROM")
    );
    let (status, _, _) = post_to("?parent=..%2Fx".into(), incremental("0/3000028")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(f.snapshot(&token).await, before);

    // Chains are bounded: 64 links at most. Each link starts a segment after its parent.
    let link = |segno: u64| {
        let from = ((segno - 1) << 24) + 0x28;
        walgate_tests::synthetic_backup(
            15,
            SYSID,
            segno,
            &format!(
                "INCREMENTAL FROM LSN: {:X}/{:X}\nINCREMENTAL FROM TLI: 1\n",
                from >> 32,
                from & 0xFFFF_FFFF
            ),
        )
    };
    let mut tip = stored["id"].as_str().unwrap().to_owned();
    for segno in 4..66 {
        let (status, _, body) = post_to(String::new(), link(segno)).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&body)
        );
        let b: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(b["parent"], tip.as_str());
        tip = b["id"].as_str().unwrap().to_owned();
    }
    let (status, _, body) = post_to(String::new(), link(66)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("chain of 64 backups")
    );

    // Nor on a backup whose own chain lacks a link (a catalog that lost a row).
    let mut orphan = walgate::catalog::BackupRow::positioned(
        "20261204T000000Z-000000010000000000000050",
        walgate_core::Timeline(1),
        walgate_core::Lsn((80 << 24) + 0x28),
        walgate_core::Lsn((80 << 24) + 0x100),
        time::OffsetDateTime::now_utc(),
    );
    orphan.parent = Some("20261203T000000Z-000000010000000000000001".into());
    let main: walgate_core::ClusterName = "main".parse().unwrap();
    f.state.catalog.insert_backup(&main, &orphan).await.unwrap();
    let (status, _, body) = post_to(String::new(), link(81)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.contains(
            "which is missing: an incremental backup on that chain could not be restored"
        ),
        "{body}"
    );
}

/// WAL uploads past the gateway's WAL memory wait, unread, until an earlier one is done;
/// one that waits as long as a silent body may gets 503 with Retry-After, nothing of it
/// stored, and is counted as waiting meanwhile.
#[tokio::test]
async fn wal_uploads_past_the_memory_budget_wait_their_turn() {
    // Room for one raw 16 MiB segment (33 MiB), not two; the first upload's body trickles
    // in every 100 ms, far inside the idle limit however busy the machine.
    let f = Fixture::serving(&["--wal-memory=40MiB", "--wal-idle-timeout=5s"]).await;
    let token = f.token("*", Role::Archiver).await;
    let first = segment(SYSID, 1, 1, 0);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let req = Request::builder()
        .method(Method::PUT)
        .uri(format!("/v1/clusters/main/wal/{NAME}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-length", SEG)
        .body(Body::from_stream(stream))
        .unwrap();
    let app = f.app.clone();
    let pushing = tokio::spawn(async move { app.oneshot(req).await.unwrap() });
    // The first upload sends slowly, never silent for long, until told to finish.
    let pieces: Vec<_> = first
        .chunks(256 << 10)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let mut pieces = pieces.into_iter();
    for piece in pieces.by_ref().take(2) {
        // The second piece goes in once the first was read: the memory is held.
        tx.send(Ok(piece)).await.unwrap();
    }
    let (finish, mut finishing) = tokio::sync::oneshot::channel::<()>();
    let feeder = tokio::spawn(async move {
        for piece in pieces {
            if finishing.try_recv().is_err() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            tx.send(Ok(piece)).await.unwrap();
        }
    });

    let second = "000000010000000000000002";
    let waiting = f.put(&token, "main", second, segment(SYSID, 1, 2, 0));
    let state = f.state.clone();
    let watch = wait_for("the second upload to wait for memory", move || {
        state.limits.wal_memory.waiting() == 1
    });
    let ((status, body), ()) = tokio::join!(waiting, watch);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(error_code(&body), "busy");
    assert!(body.contains("WALGATE_WAL_MEMORY"), "{body}");
    assert_eq!(f.state.limits.wal_memory.waiting(), 0);
    let (status, _) = f.get(&token, "main", second).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The first finishes and frees its memory; the second, sent again, is stored.
    finish.send(()).unwrap();
    feeder.await.unwrap();
    assert_eq!(pushing.await.unwrap().status(), StatusCode::CREATED);
    let (status, body) = f.put(&token, "main", second, segment(SYSID, 1, 2, 0)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(f.get(&token, "main", NAME).await.1, first);
}

/// `/metrics` in Prometheus text: each cluster's state from the catalog and its WAL
/// traffic, only for the clusters the token covers.
#[tokio::test]
async fn metrics_report_each_clusters_state_and_traffic() {
    let f = Fixture::new().await;
    let archiver = f.token("*", Role::Archiver).await;
    let viewer = f.token("main", Role::Viewer).await;
    for segno in [1u64, 2] {
        let name = format!("0000000100000000{segno:08X}");
        let (s, b) = f
            .put(&archiver, "main", &name, segment(SYSID, 1, segno, 3))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (s, _) = f
        .put(
            &archiver,
            "main",
            "000000010000000000000003",
            b"junk".to_vec(),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = f
        .put(&archiver, "other", NAME, segment(SYSID + 1, 1, 1, 3))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = f.get(&viewer, "main", "000000010000000000000001").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a viewer may not fetch WAL");
    // Another cluster's token counts against no cluster it names, real or invented.
    let stranger = f.token("other", Role::Archiver).await;
    for cluster in ["main", "invented"] {
        let (s, _) = f.put(&stranger, cluster, NAME, b"junk".to_vec()).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    let restorer = f.token("main", Role::Restorer).await;
    let (s, _) = f.get(&restorer, "main", "000000010000000000000001").await;
    assert_eq!(s, StatusCode::OK);
    let main: walgate_core::ClusterName = "main".parse().unwrap();
    f.state
        .catalog
        .insert_backup(&main, &backup_row("b", 1, 0))
        .await
        .unwrap();
    let (s, _, _) = f
        .call(Method::GET, "/v1/clusters/main/verify", Some(&viewer))
        .await;
    assert_eq!(s, StatusCode::OK);

    let (s, headers, body) = f.call(Method::GET, "/metrics", Some(&viewer)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = String::from_utf8(body).unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(value("walgate_up"), 1.0);
    assert!(!text.contains("invented"), "{text}");
    assert_eq!(value("walgate_wal_files{cluster=\"main\"}"), 2.0);
    assert!(value("walgate_wal_seconds_since_last_archive{cluster=\"main\"}") < 60.0);
    assert_eq!(
        value("walgate_wal_pushes_total{cluster=\"main\",result=\"ok\"}"),
        2.0
    );
    assert_eq!(
        value("walgate_wal_pushes_total{cluster=\"main\",result=\"error\"}"),
        1.0
    );
    assert!(value("walgate_wal_pushes_bytes_total{cluster=\"main\"}") >= 2.0 * (16 << 20) as f64);
    assert_eq!(
        value("walgate_wal_fetches_total{cluster=\"main\",result=\"ok\"}"),
        1.0
    );
    assert_eq!(
        value("walgate_wal_fetches_total{cluster=\"main\",result=\"error\"}"),
        1.0
    );
    assert_eq!(value("walgate_catalog_up"), 1.0);
    assert_eq!(value("walgate_backups{cluster=\"main\"}"), 1.0);
    // Started and finished at the same moment in this catalog row.
    assert_eq!(
        value("walgate_backup_last_duration_seconds{cluster=\"main\"}"),
        0.0
    );
    // Two archived segments, as stored: more than nothing, less than their raw size.
    let stored = value("walgate_storage_bytes{target=\"default\"}");
    assert!(stored > 0.0 && stored < 2.0 * SEG as f64, "{stored}");
    assert!(value("walgate_backup_seconds_since_last_complete{cluster=\"main\"}") < 60.0);
    // The backup starts at segment 1, which is archived: nothing missing.
    assert_eq!(value("walgate_verify_problems{cluster=\"main\"}"), 0.0);
    assert!(
        value(
            "walgate_http_request_duration_seconds_count{route=\"/v1/clusters/{cluster}/wal/{file}\"}"
        ) >= 5.0
    );
    assert!(
        !text.contains("cluster=\"other\""),
        "another cluster leaked:\n{text}"
    );
    // Every sample line is `name{labels} number`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, v) = line.rsplit_once(' ').unwrap();
        assert!(v.parse::<f64>().is_ok(), "{line}");
    }

    // The example alert rules use only metrics the gateway exports.
    let rules = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus-alerts.yml"),
    )
    .unwrap();
    let mut used: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("walgate_"))
        .collect();
    used.dedup();
    assert!(used.len() >= 5, "{used:?}");
    for name in used {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "alert rules use unknown {name}"
        );
    }

    let (s, _, _) = f.call(Method::GET, "/metrics", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// Tokens over the API: an admin issues, lists and revokes tokens within its own scope
/// only, a revoked token stops working at once, and no answer shows a token twice.
#[tokio::test]
async fn admins_manage_tokens_within_their_scope() {
    let f = Fixture::new().await;
    let root = f.token("*", Role::Admin).await;
    let main_admin = f.token("main", Role::Admin).await;
    let archiver = f.token("main", Role::Archiver).await;
    let issue = |token: String, body: serde_json::Value| {
        let f = &f;
        async move {
            let (s, _, b) = f
                .send(
                    Method::POST,
                    "/v1/tokens",
                    Some(&token),
                    &[("content-type", "application/json")],
                    body.to_string().into_bytes(),
                )
                .await;
            (s, serde_json::from_slice::<serde_json::Value>(&b).unwrap())
        }
    };

    // A lifetime past ten years is refused, not a panic.
    for secs in [u64::MAX, 10 * 366 * 86_400 + 1] {
        let (s, refused) = issue(
            main_admin.clone(),
            serde_json::json!({"clusters": ["main"], "role": "viewer", "expires_in_seconds": secs}),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{refused}");
        assert!(
            refused["message"].as_str().unwrap().contains("ten years"),
            "{refused}"
        );
    }

    let (s, issued) = issue(
        main_admin.clone(),
        serde_json::json!({"clusters": ["main"], "role": "restorer", "description": "db1"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{issued}");
    let new = issued["token"].as_str().unwrap().to_owned();
    assert_eq!(issued["info"]["role"], "restorer");
    let (s, _) = f.get(&new, "main", "000000010000000000000001").await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "the new token works (nothing archived yet)"
    );

    // Beyond the caller's scope or role: refused.
    for body in [
        serde_json::json!({"clusters": ["other"], "role": "viewer"}),
        serde_json::json!({"clusters": ["*"], "role": "viewer"}),
    ] {
        let (s, e) = issue(main_admin.clone(), body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    }
    let (s, _) = issue(
        archiver.clone(),
        serde_json::json!({"clusters": ["main"], "role": "viewer"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for bad in [
        serde_json::json!({"clusters": [], "role": "viewer"}),
        serde_json::json!({"clusters": ["no such/name"], "role": "viewer"}),
        serde_json::json!({"clusters": ["main"], "role": "superuser"}),
        serde_json::json!({"clusters": ["main"], "role": "viewer", "scope": "x"}),
    ] {
        let (s, _) = issue(root.clone(), bad.clone()).await;
        assert!(
            s == StatusCode::BAD_REQUEST || s == StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {s}"
        );
    }

    // Lists show tokens within the caller's scope, never the token strings.
    let (s, _, list) = f.call(Method::GET, "/v1/tokens", Some(&main_admin)).await;
    assert_eq!(s, StatusCode::OK);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&list).unwrap();
    assert_eq!(
        list.len(),
        3,
        "main's admin, archiver and the new restorer: {list:?}"
    );
    assert!(!String::from_utf8_lossy(&serde_json::to_vec(&list).unwrap()).contains(&new));
    let (_, _, all) = f.call(Method::GET, "/v1/tokens", Some(&root)).await;
    assert_eq!(
        serde_json::from_slice::<Vec<serde_json::Value>>(&all)
            .unwrap()
            .len(),
        4
    );

    // Revocation: at once; not of tokens beyond the caller's scope.
    let id = issued["info"]["id"].as_str().unwrap();
    let root_id = serde_json::from_slice::<Vec<serde_json::Value>>(&all)
        .unwrap()
        .into_iter()
        .find(|t| t["clusters"] == serde_json::json!(["*"]))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Another scope's token answers as an unknown one: neither is named.
    let (s, _, refused) = f
        .call(
            Method::DELETE,
            &format!("/v1/tokens/{root_id}"),
            Some(&main_admin),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(!String::from_utf8_lossy(&refused).contains('*'));
    let (s, _, _) = f
        .call(Method::DELETE, "/v1/tokens/nope", Some(&main_admin))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = f
        .call(
            Method::DELETE,
            &format!("/v1/tokens/{id}"),
            Some(&main_admin),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = f.get(&new, "main", "000000010000000000000001").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = f.call(Method::DELETE, "/v1/tokens/nope", Some(&root)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// A gateway that died mid-upload leaves an `uploading` row that never beats again:
/// the next retention run removes it (and its objects); an upload that is alive stays.
#[tokio::test]
async fn retention_removes_uploads_whose_gateway_died() {
    let f = Fixture::new().await;
    let admin = f.token("main", Role::Admin).await;
    let main: walgate_core::ClusterName = "main".parse().unwrap();
    let catalog = f.state.catalog.as_ref();
    let target = f.state.storage.default_target().clone();
    catalog.ensure_cluster(&main, &target).await.unwrap();
    let hour_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    for (id, started) in [
        ("dead", hour_ago),
        ("alive", time::OffsetDateTime::now_utc()),
    ] {
        let mut row = backup_row(id, 2, 0);
        row.status = walgate::catalog::BackupStatus::Uploading;
        row.started_at = started;
        row.finished_at = None;
        catalog.insert_backup(&main, &row).await.unwrap();
    }
    // The dead upload got as far as part of its data.
    let data = f.objects.join("clusters/main/backups/dead/base.tar.zst");
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    std::fs::write(&data, b"partial").unwrap();

    f.run_retention(&admin).await;
    let ids = f.backup_ids("main").await;
    assert_eq!(ids, ["alive"]);
    assert!(!data.exists(), "the dead upload's data is left");
}

/// A cluster's status follows what it has: `new` before any WAL, `late` without a
/// backup, `ok` with one, `failing` once verification finds a problem; the API and the
/// metrics say the same.
#[tokio::test]
async fn cluster_status_follows_archive_backups_and_verification() {
    let f = Fixture::new().await;
    let admin = f.token("main", Role::Admin).await;
    let status = |body: &[u8]| -> (String, Vec<String>) {
        let c: walgate_core::api::Cluster = serde_json::from_slice(body).unwrap();
        (c.status, c.status_reasons)
    };
    let (s, _, body) = f.call(Method::PUT, "/v1/clusters/main", Some(&admin)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(status(&body).0, "new");

    let first = segment(SYSID, 1, 1, 1);
    let (s, b) = f.put(&admin, "main", NAME, first).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (_, _, body) = f.call(Method::GET, "/v1/clusters/main", Some(&admin)).await;
    let (state, why) = status(&body);
    assert_eq!(state, "late");
    assert_eq!(why, ["no complete base backup yet"]);

    // The cluster's own threshold wins over the gateway's; `{}` goes back.
    let own = |t: serde_json::Value| {
        let body = serde_json::json!({ "thresholds": t })
            .to_string()
            .into_bytes();
        f.send(
            Method::PUT,
            "/v1/clusters/main",
            Some(&admin),
            &[("content-type", "application/json")],
            body,
        )
    };
    let (s, _, body) = own(serde_json::json!({"archive_lag_seconds": 0})).await;
    assert_eq!(s, StatusCode::OK);
    let (state, why) = status(&body);
    assert_eq!(state, "failing");
    assert!(why[0].starts_with("no WAL archived for"), "{why:?}");
    let (_, _, body) = own(serde_json::json!({})).await;
    assert_eq!(status(&body).0, "late");
    // Hostile values are refused, and one stored by an older gateway cannot break the
    // fleet's views for anybody.
    for t in [
        serde_json::json!({"archive_lag_seconds": u64::MAX}),
        serde_json::json!({"backup_age_seconds": 366 * 86_400 + 1}),
    ] {
        let (s, _, body) = own(t.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{t}");
        let body = String::from_utf8(body).unwrap();
        assert!(body.contains("at most 31622400 (a year)"), "{body}");
    }
    let huge = walgate_core::api::StatusThresholds {
        archive_lag_seconds: Some(u64::MAX),
        backup_age_seconds: Some(u64::MAX),
    };
    let main: walgate_core::ClusterName = "main".parse().unwrap();
    f.state
        .catalog
        .set_thresholds(&main, Some(&huge))
        .await
        .unwrap();
    for path in ["/v1/clusters", "/v1/clusters/main", "/metrics"] {
        let (s, _, _) = f.call(Method::GET, path, Some(&admin)).await;
        assert_eq!(s, StatusCode::OK, "{path}");
    }
    let (_, _, body) = own(serde_json::json!({})).await;
    assert_eq!(status(&body).0, "late");

    let main: walgate_core::ClusterName = "main".parse().unwrap();
    let catalog = f.state.catalog.as_ref();
    catalog
        .insert_backup(&main, &backup_row("b1", 1, 0))
        .await
        .unwrap();
    let (_, _, body) = f.call(Method::GET, "/v1/clusters", Some(&admin)).await;
    let fleet: Vec<walgate_core::api::Cluster> = serde_json::from_slice(&body).unwrap();
    assert_eq!(fleet[0].status, "ok", "{:?}", fleet[0].status_reasons);
    assert_eq!(fleet[0].backups, 1);
    assert!(fleet[0].recovery_window_start.is_some());

    let report = walgate_core::api::VerifyReport {
        cluster: "main".into(),
        verified_at: time::OffsetDateTime::now_utc(),
        ok: false,
        chain_problems: vec!["a gap".into()],
        forks: vec![],
        scrubbed: false,
        objects_checked: 0,
        object_problems: vec![],
    };
    catalog.record_verification(&main, &report).await.unwrap();
    let (_, _, body) = f.call(Method::GET, "/v1/clusters/main", Some(&admin)).await;
    let (state, why) = status(&body);
    assert_eq!(state, "failing");
    assert!(why[0].contains("1 problem"), "{why:?}");
    let (_, _, metrics) = f.call(Method::GET, "/metrics", Some(&admin)).await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("walgate_cluster_status{cluster=\"main\",status=\"failing\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("walgate_cluster_status{cluster=\"main\",status=\"ok\"} 0"));
}

/// The dashboard shows a token only its own clusters, refuses the others' pages, sends
/// visitors without a session to sign in, and marks its pages against framing and
/// foreign scripts.
#[tokio::test]
async fn dashboard_pages_follow_the_token_scope() {
    let f = Fixture::new().await;
    let admin = f.token("*", Role::Admin).await;
    for c in ["alpha", "beta"] {
        let (s, _, _) = f
            .call(Method::PUT, &format!("/v1/clusters/{c}"), Some(&admin))
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let viewer = f.token("alpha", Role::Viewer).await;
    let cookie = format!("walgate_session={viewer}");
    let page = |uri: &'static str| {
        let cookie = cookie.clone();
        let f = &f;
        async move {
            let (s, h, b) = f
                .send(Method::GET, uri, None, &[("cookie", &cookie)], vec![])
                .await;
            (s, h, String::from_utf8(b).unwrap())
        }
    };

    let (s, h, fleet) = page("/").await;
    assert_eq!(s, StatusCode::OK);
    assert!(fleet.contains(r#"data-cluster="alpha""#), "{fleet}");
    assert!(!fleet.contains("beta"), "another cluster leaked:\n{fleet}");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    let (s, _, _) = page("/clusters/alpha").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, other) = page("/clusters/beta").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        other.contains("beta"),
        "the refusal names the cluster: {other}"
    );
    let (s, _, bad) = page("/?sort=colour").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(bad.contains("sort `colour` is not one of"), "{bad}");

    // No session, or a revoked token's: to the sign-in page, coming back afterwards.
    let (s, h, _) = f.call(Method::GET, "/clusters/alpha", None).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h["location"], "/login?next=%2Fclusters%2Falpha");
    let id = f.state.auth.verify(&viewer).await.unwrap().token_id;
    let (s, _, _) = f
        .call(Method::DELETE, &format!("/v1/tokens/{id}"), Some(&admin))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, h, _) = page("/").await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(h["location"].to_str().unwrap().starts_with("/login"));
}

/// Sign-in and sign-out take form posts from the gateway's own pages only: a browser
/// names the page's site in `Origin` (or `Sec-Fetch-Site`), and another site's form
/// is refused. Clients that are no browsers (curl) send neither and are served.
#[tokio::test]
async fn sign_in_and_out_refuse_other_sites() {
    let f = Fixture::new().await;
    let viewer = f.token("*", Role::Viewer).await;
    let form = format!("token={viewer}").into_bytes();
    let post = |uri: &'static str, extra: &'static [(&'static str, &'static str)]| {
        let f = &f;
        let form = form.clone();
        async move {
            let mut headers = vec![
                ("host", "gw.example:8432"),
                ("content-type", "application/x-www-form-urlencoded"),
            ];
            headers.extend_from_slice(extra);
            let (s, h, _) = f.send(Method::POST, uri, None, &headers, form).await;
            (s, h.get("set-cookie").is_some())
        }
    };
    for hostile in [
        &[("origin", "https://evil.example")][..],
        &[("origin", "null")],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
        &[("origin", "null"), ("sec-fetch-site", "cross-site")],
        &[
            ("origin", "http://gw.example:8432"),
            ("sec-fetch-site", "cross-site"),
        ],
    ] {
        assert_eq!(
            post("/login", hostile).await,
            (StatusCode::FORBIDDEN, false)
        );
        assert_eq!(
            post("/logout", hostile).await,
            (StatusCode::FORBIDDEN, false)
        );
    }
    for own in [
        &[("origin", "http://gw.example:8432")][..],
        &[("origin", "https://gw.example:8432")],
        &[("sec-fetch-site", "same-origin")],
        // What Chromium sends from a page with `Referrer-Policy: no-referrer`.
        &[("origin", "null"), ("sec-fetch-site", "same-origin")],
        // Behind a proxy that rewrote the host: the browser's own word decides.
        &[
            ("origin", "https://backup.example.com"),
            ("sec-fetch-site", "same-origin"),
        ],
        &[],
    ] {
        assert_eq!(post("/login", own).await, (StatusCode::SEE_OTHER, true));
        assert_eq!(post("/logout", own).await, (StatusCode::SEE_OTHER, true));
    }
}

/// The `restore_command` of `main`'s plan, asked for with `host`.
async fn planned_restore_command(f: &Fixture, token: &str, host: &str) -> String {
    let (s, _, b) = f
        .send(
            Method::GET,
            "/v1/clusters/main/restore-plan",
            Some(token),
            &[("host", host)],
            vec![],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    let plan: serde_json::Value = serde_json::from_slice(&b).unwrap();
    plan["recovery_settings"]["restore_command"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The request's `Host` goes into the shell command a restore plan gives: a malformed
/// one is not believed (the plan says GATEWAY instead), and a configured public URL
/// wins over any header.
#[tokio::test]
async fn restore_plans_do_not_echo_hostile_hosts() {
    for flags in [&[][..], &["--public-url", "https://backup.example.com"]] {
        let f = Fixture::serving(flags).await;
        let token = f.token("main", Role::Archiver).await;
        let third = "000000010000000000000003";
        let (status, body) = f.put(&token, "main", third, segment(SYSID, 1, 3, 0)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, _, _) = f
            .send(
                Method::POST,
                "/v1/clusters/main/backups",
                Some(&token),
                &[],
                small_backup(15),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let viewer = f.token("main", Role::Viewer).await;
        let hostile = planned_restore_command(&f, &viewer, "x;touch${IFS}pwned;#").await;
        assert!(!hostile.contains("pwned"), "{hostile}");
        let fine = planned_restore_command(&f, &viewer, "gw.example:8432").await;
        if flags.is_empty() {
            assert!(hostile.contains("http://GATEWAY:8432/"), "{hostile}");
            assert!(fine.contains("http://gw.example:8432/"), "{fine}");
        } else {
            assert!(hostile.contains("https://backup.example.com/"), "{hostile}");
            assert!(fine.contains("https://backup.example.com/"), "{fine}");
        }
    }
}
