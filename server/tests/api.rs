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

    /// A scrub of cluster `main`, as `admin` asks for it.
    async fn scrub(&self, admin: &str) -> walgate_core::api::VerifyReport {
        let uri = "/v1/clusters/main/verify?scrub=true";
        let (s, _, body) = self.call(Method::GET, uri, Some(admin)).await;
        assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
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
    let r = f.scrub(&admin).await;
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

/// A file archived before BLAKE3, its catalog row holding SHA-256, is still served,
/// verified, and compared with a re-push in SHA-256: the same content is a 200, other
/// content a 409 naming both SHA-256 digests, and nothing is rewritten.
#[tokio::test]
async fn files_hashed_with_sha256_before_stay_verifiable_and_comparable() {
    use sha2::Digest;
    use walgate::catalog::{ContentDigest, Sha256, WalRow};

    let f = Fixture::new().await;
    let archiver = f.token("main", Role::Archiver).await;
    let admin = f.token("main", Role::Admin).await;
    let (s, b) = f
        .put(&archiver, "main", NAME, segment(SYSID, 1, 1, 1))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // Segment 2 as an older gateway left it: a SHA-256 row and its object.
    let old = segment(SYSID, 1, 2, 2);
    let name = "000000010000000000000002";
    let stored = zstd::encode_all(&old[..], 1).unwrap();
    std::fs::write(
        f.objects.join(format!("clusters/main/wal/{name}.zst")),
        &stored,
    )
    .unwrap();
    let sha = Sha256(sha2::Sha256::digest(&old).into());
    let row = WalRow {
        name: name.parse().unwrap(),
        size: old.len() as u64,
        stored_size: stored.len() as u64,
        digest: ContentDigest::Sha256(sha),
        archived_at: time::OffsetDateTime::now_utc(),
        retain_until: None,
    };
    let main = "main".parse().unwrap();
    f.state.catalog.insert_wal(&main, &row).await.unwrap();

    let (s, headers, body) = f
        .call(
            Method::GET,
            &format!("/v1/clusters/main/wal/{name}"),
            Some(&archiver),
        )
        .await;
    assert_eq!((s, body == old), (StatusCode::OK, true));
    assert_eq!(headers["etag"], format!("\"sha256:{sha}\""));
    assert_eq!(headers["x-walgate-digest"], format!("sha256:{sha}"));
    let (_, headers, _) = f
        .call(
            Method::HEAD,
            &format!("/v1/clusters/main/wal/{NAME}"),
            Some(&archiver),
        )
        .await;
    let blake3 = blake3::hash(&segment(SYSID, 1, 1, 1)).to_hex().to_string();
    assert_eq!(headers["x-walgate-digest"], format!("blake3:{blake3}"));

    let before = f.snapshot(&archiver).await;
    let (s, b) = f.put(&archiver, "main", name, old.clone()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let other = segment(SYSID, 1, 2, 3);
    let (s, b) = f.put(&archiver, "main", name, other.clone()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let sent = Sha256(sha2::Sha256::digest(&other).into());
    assert!(
        b.contains(&format!("stored sha256:{sha}, sent sha256:{sent}")),
        "{b}"
    );
    assert_eq!(f.snapshot(&archiver).await, before);

    let r = f.scrub(&admin).await;
    assert_eq!(
        (r.objects_checked, r.object_problems),
        (2, Vec::<String>::new())
    );
    // Damaged, it is found in its own algorithm.
    let mut bytes = stored.clone();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    std::fs::write(
        f.objects.join(format!("clusters/main/wal/{name}.zst")),
        &bytes,
    )
    .unwrap();
    let r = f.scrub(&admin).await;
    assert_eq!(r.object_problems.len(), 1, "{:?}", r.object_problems);
    assert!(
        r.object_problems[0].contains(name),
        "{:?}",
        r.object_problems
    );
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
    // Room for one raw 16 MiB segment (19 MiB), not two; the first upload's body trickles
    // in every 100 ms, far inside the idle limit however busy the machine.
    let f = Fixture::serving(&["--wal-memory=30MiB", "--wal-idle-timeout=5s"]).await;
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
    catalog
        .record_verification(&main, &report, None)
        .await
        .unwrap();
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

/// The fleet page shows a hundred clusters at a time, in the order and filters asked
/// for, with links to the pages around it.
#[tokio::test]
async fn the_fleet_page_shows_a_page_at_a_time() {
    let f = Fixture::new().await;
    let target = f.state.storage.default_target();
    for i in 0..105 {
        let name = format!("c-{i:03}").parse().unwrap();
        f.state.catalog.ensure_cluster(&name, target).await.unwrap();
    }
    let viewer = f.token("*", Role::Viewer).await;
    let cookie = format!("walgate_session={viewer}");
    let fleet = async |uri: &str| {
        let (s, _, b) = f
            .send(Method::GET, uri, None, &[("cookie", &cookie)], vec![])
            .await;
        assert_eq!(s, StatusCode::OK, "{uri}");
        let body = String::from_utf8(b).unwrap();
        let rows: Vec<String> = body
            .split(r#"data-cluster=""#)
            .skip(1)
            .map(|r| r.split('"').next().unwrap().to_owned())
            .collect();
        (rows, body)
    };

    let (rows, body) = fleet("/?sort=name").await;
    assert_eq!((rows.len(), rows[0].as_str()), (100, "c-000"));
    assert!(body.contains("Clusters 1–100 of 105"), "{body}");
    assert!(body.contains("offset=100") && body.contains(r#"rel="next""#));
    assert!(!body.contains(r#"rel="prev""#));

    let (rows, body) = fleet("/?sort=name&offset=100").await;
    assert_eq!(rows, ["c-100", "c-101", "c-102", "c-103", "c-104"]);
    assert!(body.contains("Clusters 101–105 of 105"), "{body}");
    assert!(body.contains(r#"rel="prev""#) && !body.contains(r#"rel="next""#));

    // The order and the search are the server's; a page may ask for up to 1,000.
    let (rows, _) = fleet("/?sort=name&desc=true&limit=2").await;
    assert_eq!(rows, ["c-104", "c-103"]);
    let (rows, body) = fleet("/?search=c-10&limit=3&offset=3").await;
    assert_eq!(rows, ["c-103", "c-104"]);
    assert!(body.contains("Clusters 4–5 of 5"), "{body}");
    let (rows, _) = fleet("/?limit=5000").await;
    assert_eq!(rows.len(), 105);
    let (rows, body) = fleet("/?offset=500").await;
    assert!(rows.is_empty());
    assert!(body.contains("past the last of 105 clusters"), "{body}");
    let (rows, _) = fleet(&format!("/?offset={}", usize::MAX)).await;
    assert!(rows.is_empty());
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

// Restore drills: who may claim, lease and report them, what a claim hands out and
// when, and that every bad report or claim is refused with nothing recorded.

use walgate_core::api::{DrillAssignment, DrillHistory, DrillStatus};

/// A cluster a drill runner can claim: segments 3 and 4 of PostgreSQL 15 (which pin its
/// version) and a complete backup started in segment 3.
/// A gateway whose cluster `main` can be drilled, and a driller token over every
/// cluster.
async fn drill_fixture() -> (Fixture, String) {
    let f = Fixture::new().await;
    let archiver = f.token("*", Role::Archiver).await;
    drillable(&f, &archiver, "main").await;
    let driller = f.token("*", Role::Driller).await;
    (f, driller)
}

async fn drillable(f: &Fixture, archiver: &str, cluster: &str) {
    for segno in [3u64, 4] {
        let name = format!("0000000100000000{segno:08X}");
        let (s, b) = f
            .put(archiver, cluster, &name, segment(SYSID, 1, segno, 1))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let uri = format!("/v1/clusters/{cluster}/backups");
    let (s, _, b) = f
        .send(Method::POST, &uri, Some(archiver), &[], small_backup(15))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{}", String::from_utf8_lossy(&b));
}

/// A request with a JSON body sent as is; the status and the answer as text.
async fn send_json(
    f: &Fixture,
    method: Method,
    uri: &str,
    token: &str,
    body: &[u8],
) -> (StatusCode, String) {
    let headers = [("content-type", "application/json")];
    let (s, _, b) = f
        .send(method, uri, Some(token), &headers, body.to_vec())
        .await;
    (s, String::from_utf8_lossy(&b).into_owned())
}

/// `POST /v1/drills/claim`; the assignment on a `200`.
async fn claim(
    f: &Fixture,
    token: &str,
    runner: &str,
    majors: &[u32],
) -> (StatusCode, Option<DrillAssignment>, String) {
    let body = serde_json::json!({ "runner": runner, "majors": majors }).to_string();
    let (s, b) = send_json(f, Method::POST, "/v1/drills/claim", token, body.as_bytes()).await;
    let assignment = (s == StatusCode::OK).then(|| serde_json::from_str(&b).unwrap());
    (s, assignment, b)
}

/// A claim that must hand out a drill of `cluster`.
async fn claim_of(f: &Fixture, token: &str, runner: &str, cluster: &str) -> DrillAssignment {
    let (s, a, b) = claim(f, token, runner, &[15]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let a = a.unwrap();
    assert_eq!(a.cluster, cluster);
    a
}

/// `POST /v1/drills/{id}/result` with `report` as it is.
async fn report(
    f: &Fixture,
    token: &str,
    id: &str,
    report: &serde_json::Value,
) -> (StatusCode, String) {
    let uri = format!("/v1/drills/{id}/result");
    send_json(f, Method::POST, &uri, token, report.to_string().as_bytes()).await
}

async fn lease(f: &Fixture, token: &str, id: &str) -> StatusCode {
    let uri = format!("/v1/drills/{id}/lease");
    f.call(Method::POST, &uri, Some(token)).await.0
}

/// A successful drill's report.
fn ok_report() -> serde_json::Value {
    serde_json::json!({
        "status": "ok",
        "outcome": {
            "lsn": "0/4000060",
            "timeline": 1,
            "restore_seconds": 2.0,
            "replay_seconds": 0.5,
        }
    })
}

fn failed_report(reason: &str) -> serde_json::Value {
    serde_json::json!({ "status": "failed", "outcome": { "reason": reason } })
}

async fn drill_history(f: &Fixture, token: &str, cluster: &str) -> DrillHistory {
    let uri = format!("/v1/clusters/{cluster}/drills");
    let (s, _, b) = f.call(Method::GET, &uri, Some(token)).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    serde_json::from_slice(&b).unwrap()
}

async fn cluster_info(f: &Fixture, token: &str, cluster: &str) -> walgate_core::api::Cluster {
    let uri = format!("/v1/clusters/{cluster}");
    let (s, _, b) = f.call(Method::GET, &uri, Some(token)).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    serde_json::from_slice(&b).unwrap()
}

/// Asks for a drill of `cluster` now (admin).
async fn ask_for_drill(f: &Fixture, admin: &str, cluster: &str) -> DrillHistory {
    let uri = format!("/v1/clusters/{cluster}/drills");
    let (s, _, b) = f.call(Method::POST, &uri, Some(admin)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&b));
    serde_json::from_slice(&b).unwrap()
}

/// The runners the gateway has heard from: names and majors.
async fn runners(f: &Fixture) -> Vec<(String, Vec<u32>)> {
    let rows = f.state.catalog.runners().await.unwrap();
    rows.into_iter().map(|r| (r.name, r.majors)).collect()
}

/// Only drillers claim, renew and report drills, and only of their clusters; a driller
/// reads and fetches like a restorer but may not archive or administer.
#[tokio::test]
async fn drills_are_for_drillers_of_their_own_clusters() {
    let f = Fixture::new().await;
    let archiver = f.token("*", Role::Archiver).await;
    for c in ["a", "b"] {
        drillable(&f, &archiver, c).await;
    }
    let restorer = f.token("*", Role::Restorer).await;
    let viewer = f.token("*", Role::Viewer).await;
    let driller_a = f.token("a", Role::Driller).await;
    let driller_b = f.token("b", Role::Driller).await;

    for t in [&archiver, &restorer, &viewer] {
        let (s, _, b) = claim(&f, t, "r1", &[15]).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert_eq!(error_code(&b), "forbidden");
        let (s, _, _) = f
            .call(Method::POST, "/v1/drills/abandon?runner=r1", Some(t))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    assert!(
        runners(&f).await.is_empty(),
        "a refused claim records no runner"
    );

    // `a`'s driller gets `a`, and then nothing: `a` is running, `b` is not its own.
    let a = claim_of(&f, &driller_a, "ra", "a").await;
    let (s, _, b) = claim(&f, &driller_a, "ra2", &[15]).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let b_drill = claim_of(&f, &driller_b, "rb", "b").await;

    for t in [&archiver, &restorer, &viewer] {
        assert_eq!(lease(&f, t, &a.drill).await, StatusCode::FORBIDDEN);
        let (s, b) = report(&f, t, &a.drill, &ok_report()).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    }
    // Another cluster's drill is as good as absent.
    assert_eq!(
        lease(&f, &driller_a, &b_drill.drill).await,
        StatusCode::NOT_FOUND
    );
    let (s, b) = report(&f, &driller_a, &b_drill.drill, &failed_report("x")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert!(!b.contains("\"b\""), "names nothing of `b`: {b}");
    assert_eq!(
        lease(&f, &driller_a, "0123abcd").await,
        StatusCode::NOT_FOUND
    );
    for (id, cluster) in [(&a.drill, "a"), (&b_drill.drill, "b")] {
        let d = f.state.catalog.drill(id).await.unwrap().unwrap();
        assert_eq!(
            (d.cluster.as_str(), d.status, d.outcome.reason),
            (cluster, DrillStatus::Running, None)
        );
    }
    // Each driller reports its own.
    let (s, b) = report(&f, &driller_b, &b_drill.drill, &ok_report()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        lease(&f, &driller_a, &a.drill).await,
        StatusCode::NO_CONTENT
    );

    // What a driller may and may not do besides.
    let (s, b) = f
        .put(
            &driller_a,
            "a",
            "000000010000000000000005",
            segment(SYSID, 1, 5, 1),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, _) = f.get(&driller_a, "a", "000000010000000000000003").await;
    assert_eq!(s, StatusCode::OK, "a driller restores, so it fetches WAL");
    let policy = br#"{"interval_hours": 1}"#;
    let (s, b) = send_json(
        &f,
        Method::PUT,
        "/v1/clusters/a/drills/policy",
        &driller_a,
        policy,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    for (method, uri) in [
        (Method::DELETE, "/v1/clusters/a/drills/policy"),
        (Method::POST, "/v1/clusters/a/drills"),
        (Method::GET, "/v1/clusters/b/drills"),
    ] {
        let (s, _, _) = f.call(method.clone(), uri, Some(&driller_a)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {uri}");
    }
    let history = drill_history(&f, &driller_a, "a").await;
    assert_eq!(history.requested_at, None);
    assert_eq!(history.drills[0].status, DrillStatus::Running);
}

/// Runner names are global, but a driller's token is not: one scoped to `a` must not end
/// the drills of `b` by naming `b`'s runner.
#[tokio::test]
async fn a_driller_abandons_no_drill_outside_its_scope() {
    let f = Fixture::new().await;
    let archiver = f.token("b", Role::Archiver).await;
    drillable(&f, &archiver, "b").await;
    let driller_a = f.token("a", Role::Driller).await;
    let driller_b = f.token("b", Role::Driller).await;
    let b = claim_of(&f, &driller_b, "rb", "b").await;
    let (s, _, body) = f
        .call(
            Method::POST,
            "/v1/drills/abandon?runner=rb",
            Some(&driller_a),
        )
        .await;
    let body = String::from_utf8(body).unwrap();
    assert!(
        s == StatusCode::FORBIDDEN || body.contains(r#""abandoned":0"#),
        "{s} {body}"
    );
    let d = f.state.catalog.drill(&b.drill).await.unwrap().unwrap();
    assert_eq!(d.status, DrillStatus::Running, "{:?}", d.outcome);
}

/// A claim hands out the plan to the end of the archive and holds the cluster until the
/// drill is reported; an ok drill shows in the history and the cluster, after which the
/// cluster is not due again until its interval passes, or an admin asks for one.
#[tokio::test]
async fn a_drill_is_claimed_renewed_reported_and_shown() {
    let (f, driller) = drill_fixture().await;
    let viewer = f.token("main", Role::Viewer).await;
    let admin = f.token("main", Role::Admin).await;

    let before = drill_history(&f, &viewer, "main").await;
    assert_eq!(before.interval_hours, 7 * 24);
    assert!(before.drills.is_empty() && before.last_ok.is_none());
    assert_eq!(before.requested_at, None);

    let a = claim_of(&f, &driller, "r1", "main").await;
    assert_eq!((a.pg_version, a.segment_size), (15, SEG as u64));
    assert_eq!(a.lease_seconds, 600);
    assert_eq!(a.check, None);
    let backups = f.backup_ids("main").await;
    assert_eq!(a.plan.cluster, "main");
    let chain: Vec<&str> = a.plan.chain.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(chain, [backups[0].as_str()]);
    assert_eq!(a.plan.first_wal, "000000010000000000000003");
    assert_eq!(a.plan.last_wal, "000000010000000000000004");
    assert_eq!(a.plan.archive_end_wal, a.plan.last_wal);
    assert!(a.plan.covered);

    let running = drill_history(&f, &viewer, "main").await;
    assert_eq!(running.drills.len(), 1);
    let d = &running.drills[0];
    assert_eq!(
        (d.id.as_str(), d.runner.as_str(), d.status, d.finished_at),
        (a.drill.as_str(), "r1", DrillStatus::Running, None)
    );
    assert_eq!(runners(&f).await, [("r1".to_owned(), vec![15])]);

    // One running drill per cluster.
    let (s, _, b) = claim(&f, &driller, "r2", &[15]).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(drill_history(&f, &viewer, "main").await.drills.len(), 1);

    let leased = f
        .state
        .catalog
        .drill(&a.drill)
        .await
        .unwrap()
        .unwrap()
        .lease_until;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(lease(&f, &driller, &a.drill).await, StatusCode::NO_CONTENT);
    let renewed = f
        .state
        .catalog
        .drill(&a.drill)
        .await
        .unwrap()
        .unwrap()
        .lease_until;
    assert!(renewed > leased, "{renewed} after {leased}");

    let mut ok = ok_report();
    ok["outcome"]["backup"] = backups[0].clone().into();
    let (s, b) = report(&f, &driller, &a.drill, &ok).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let done: walgate_core::api::Drill = serde_json::from_str(&b).unwrap();
    assert_eq!(
        (done.id.as_str(), done.status),
        (a.drill.as_str(), DrillStatus::Ok)
    );
    assert!(done.finished_at.is_some_and(|t| t >= done.started_at));
    assert_eq!(done.outcome.lsn.as_deref(), Some("0/4000060"));
    assert_eq!(done.outcome.backup.as_ref(), Some(&backups[0]));
    assert_eq!(done.outcome.restore_seconds, Some(2.0));

    let history = drill_history(&f, &viewer, "main").await;
    assert_eq!(history.drills, std::slice::from_ref(&done));
    assert_eq!(history.last_ok, Some(done.clone()));
    let c = cluster_info(&f, &viewer, "main").await;
    assert_eq!(c.last_ok_drill, Some(done.clone()));
    assert_eq!(c.last_drill, Some(done.clone()));
    assert_eq!(c.status, "ok", "{:?}", c.status_reasons);

    // Drilled: not due for a week.
    let (s, _, b) = claim(&f, &driller, "r1", &[15]).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    // Unless asked for: at once, and the claim answers the request.
    let asked = ask_for_drill(&f, &admin, "main").await;
    let at = asked.requested_at.expect("the request is shown");
    assert_eq!(
        drill_history(&f, &viewer, "main").await.requested_at,
        Some(at)
    );
    let again = claim_of(&f, &driller, "r2", "main").await;
    assert_ne!(again.drill, a.drill);
    let history = drill_history(&f, &viewer, "main").await;
    assert_eq!(history.requested_at, None);
    assert_eq!(history.drills.len(), 2);
    assert_eq!(
        (history.drills[0].id.as_str(), history.drills[0].status),
        (again.drill.as_str(), DrillStatus::Running)
    );
    assert_eq!(
        history.last_ok,
        Some(done),
        "the running drill proves nothing yet"
    );
}

/// A runner is handed only clusters it has binaries for, and only clusters with a
/// complete backup.
#[tokio::test]
async fn drill_runners_get_only_clusters_of_their_majors_with_a_backup() {
    let f = Fixture::new().await;
    let archiver = f.token("*", Role::Archiver).await;
    drillable(&f, &archiver, "main").await;
    let (s, b) = f
        .put(&archiver, "bare", NAME, segment(SYSID, 1, 1, 1))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let driller = f.token("*", Role::Driller).await;

    let (s, _, b) = claim(&f, &driller, "new", &[16, 17]).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(runners(&f).await, [("new".to_owned(), vec![16, 17])]);
    let viewer = f.token("*", Role::Viewer).await;
    assert!(drill_history(&f, &viewer, "main").await.drills.is_empty());

    let a = claim_of(&f, &driller, "new", "main").await;
    assert_eq!(a.pg_version, 15);
    assert_eq!(runners(&f).await, [("new".to_owned(), vec![15])]);
    // `bare` has WAL of 15 but no backup: nothing to drill.
    let (s, _, b) = claim(&f, &driller, "other", &[15]).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert!(drill_history(&f, &viewer, "bare").await.drills.is_empty());
}

/// Every value of a report, a claim and a policy is checked; a refused one is a `400`
/// that records nothing, and the drill can still be reported afterwards.
#[tokio::test]
async fn bad_drill_input_is_refused_and_changes_nothing() {
    let (f, driller) = drill_fixture().await;
    let admin = f.token("main", Role::Admin).await;

    // The longest interval and query are taken, then a policy that stands.
    let longest = serde_json::json!({
        "interval_hours": 8784,
        "check": { "sql": "x".repeat(4096), "min": 1 }
    });
    let uri = "/v1/clusters/main/drills/policy";
    let put = |body: Vec<u8>| {
        let f = &f;
        let admin = &admin;
        async move { send_json(f, Method::PUT, uri, admin, &body).await }
    };
    let (s, b) = put(longest.to_string().into_bytes()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let policy = serde_json::json!({
        "interval_hours": 24,
        "check": { "sql": "select count(*) from orders", "min": 1 }
    });
    let (s, b) = put(policy.to_string().into_bytes()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let set: DrillHistory = serde_json::from_str(&b).unwrap();
    assert_eq!(set.interval_hours, 24);
    let check = set.check.expect("the check is kept");
    assert_eq!((check.database.as_str(), check.min), ("postgres", 1));

    let a = claim_of(&f, &driller, "r1", "main").await;
    assert_eq!(a.check, Some(check), "the runner is told the check");

    let state = || {
        let f = &f;
        let admin = &admin;
        async move {
            let h = drill_history(f, admin, "main").await;
            (serde_json::to_string(&h).unwrap(), runners(f).await)
        }
    };
    let before = state().await;
    let lsn = "0/4000060";
    let bad_reports = [
        serde_json::json!({"status": "running", "outcome": {"lsn": lsn}}),
        serde_json::json!({"status": "ok", "outcome": {}}),
        serde_json::json!({"status": "ok", "outcome": {"lsn": "garbage"}}),
        serde_json::json!({"status": "ok", "outcome": {"lsn": "0/ZZ"}}),
        serde_json::json!({"status": "ok", "outcome": {"lsn": lsn, "restore_seconds": -1.0}}),
        serde_json::json!({"status": "ok", "outcome": {"lsn": lsn, "replay_seconds": 1e12}}),
        serde_json::json!({"status": "ok", "outcome": {"lsn": lsn, "backup": "b".repeat(200)}}),
        serde_json::json!({"status": "failed", "outcome": {"reason": "x".repeat(5000)}}),
        serde_json::json!({"status": "failed", "outcome": {}}),
        serde_json::json!({"status": "failed", "outcome": {"reason": ""}}),
        serde_json::json!({"status": "skipped", "outcome": {}}),
        serde_json::json!({"status": "ok", "outcome": {"lsn": lsn}, "extra": 1}),
        serde_json::json!({"status": "ok", "outcome": {"lsn": lsn, "colour": "red"}}),
        serde_json::json!({"status": "exploded", "outcome": {"reason": "x"}}),
        serde_json::json!({"status": "ok"}),
        serde_json::json!({"status": "ok", "outcome": {"lsn": 42}}),
    ];
    for bad in &bad_reports {
        let (s, b) = report(&f, &driller, &a.drill, bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
        assert_eq!(state().await, before, "{bad}");
    }
    let result_uri = format!("/v1/drills/{}/result", a.drill);
    for garbage in [&b"not json"[..], b"{", b"", b"[]", b"null"] {
        let (s, b) = send_json(&f, Method::POST, &result_uri, &driller, garbage).await;
        assert_eq!(
            s,
            StatusCode::BAD_REQUEST,
            "{}: {b}",
            String::from_utf8_lossy(garbage)
        );
        assert_eq!(state().await, before);
    }

    let bad_claims = [
        serde_json::json!({"runner": "", "majors": [15]}),
        serde_json::json!({"runner": "a/b", "majors": [15]}),
        serde_json::json!({"runner": "../r1", "majors": [15]}),
        serde_json::json!({"runner": "a b", "majors": [15]}),
        serde_json::json!({"runner": "r\n1", "majors": [15]}),
        serde_json::json!({"runner": "r".repeat(129), "majors": [15]}),
        serde_json::json!({"runner": "r2", "majors": []}),
        serde_json::json!({"runner": "r2", "majors": vec![15; 33]}),
        serde_json::json!({"runner": "r2", "majors": [15], "extra": true}),
        serde_json::json!({"runner": "r2"}),
        serde_json::json!({"runner": "r2", "majors": [-15]}),
    ];
    for bad in &bad_claims {
        let (s, b) = send_json(
            &f,
            Method::POST,
            "/v1/drills/claim",
            &driller,
            bad.to_string().as_bytes(),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
        assert_eq!(state().await, before, "{bad}");
    }
    for garbage in [&b"runner=r2"[..], b"{\"runner\":", b""] {
        let (s, b) = send_json(&f, Method::POST, "/v1/drills/claim", &driller, garbage).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert_eq!(state().await, before);
    }
    for uri in [
        "/v1/drills/abandon",
        "/v1/drills/abandon?runner=",
        "/v1/drills/abandon?runner=r%201",
        "/v1/drills/abandon?runner=a%2Fb",
    ] {
        let (s, _, _) = f.call(Method::POST, uri, Some(&driller)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(state().await, before, "{uri}");
    }

    let bad_policies = [
        serde_json::json!({"interval_hours": 8785}),
        serde_json::json!({"interval_hours": u64::from(u32::MAX) + 1}),
        serde_json::json!({"interval_hours": -1}),
        serde_json::json!({"check": {"sql": "", "min": 1}}),
        serde_json::json!({"check": {"sql": "  \n ", "min": 1}}),
        serde_json::json!({"check": {"sql": "x".repeat(4097), "min": 1}}),
        serde_json::json!({"check": {"sql": "select 1\u{0}", "min": 1}}),
        serde_json::json!({"check": {"sql": "select 1", "min": 1, "database": ""}}),
        serde_json::json!({"check": {"sql": "select 1", "min": 1, "database": "d".repeat(64)}}),
        serde_json::json!({"check": {"sql": "select 1"}}),
        serde_json::json!({"interval": 5}),
        serde_json::json!({"check": {"sql": "select 1", "min": 1, "as": "root"}}),
    ];
    for bad in &bad_policies {
        let (s, b) = put(bad.to_string().into_bytes()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
        assert_eq!(state().await, before, "{bad}");
    }
    for garbage in [&b"{"[..], b"interval_hours=1", b"", b"[]"] {
        let (s, b) = put(garbage.to_vec()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert_eq!(state().await, before);
    }

    // The drill was never touched: it still renews and reports.
    assert_eq!(lease(&f, &driller, &a.drill).await, StatusCode::NO_CONTENT);
    let (s, b) = report(&f, &driller, &a.drill, &ok_report()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

/// A drill ends once: a second report, or a lease after it ended, is a `409` and the
/// first report stands.
#[tokio::test]
async fn a_drill_ends_once_and_its_first_report_stands() {
    let (f, driller) = drill_fixture().await;
    let a = claim_of(&f, &driller, "r1", "main").await;
    let why = "segment 000000010000000000000004 is damaged";
    let (s, b) = report(&f, &driller, &a.drill, &failed_report(why)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let first: walgate_core::api::Drill = serde_json::from_str(&b).unwrap();
    assert_eq!(first.status, DrillStatus::Failed);
    assert_eq!(first.outcome.reason.as_deref(), Some(why));

    for again in [ok_report(), failed_report("another reason")] {
        let (s, b) = report(&f, &driller, &a.drill, &again).await;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(error_code(&b), "conflict");
        assert!(b.contains("not running any more"), "{b}");
    }
    assert_eq!(lease(&f, &driller, &a.drill).await, StatusCode::CONFLICT);
    let history = drill_history(&f, &driller, "main").await;
    assert_eq!(history.drills, [first]);
    assert_eq!(history.last_ok, None);
}

/// A runner starting again ends the drills it left running, as skipped (it failed, not
/// the archive): they say nothing of the cluster. A failed drill makes the cluster
/// `failing`, until a drill succeeds.
#[tokio::test]
async fn abandoned_drills_are_skipped_and_failed_ones_make_the_cluster_failing() {
    let (f, driller) = drill_fixture().await;
    let admin = f.token("main", Role::Admin).await;
    let abandon = |runner: &'static str| {
        let f = &f;
        let driller = &driller;
        async move {
            let uri = format!("/v1/drills/abandon?runner={runner}");
            let (s, _, b) = f.call(Method::POST, &uri, Some(driller)).await;
            assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
            serde_json::from_slice::<serde_json::Value>(&b).unwrap()["abandoned"]
                .as_u64()
                .unwrap()
        }
    };

    let a = claim_of(&f, &driller, "r1", "main").await;
    assert_eq!(
        abandon("r2").await,
        0,
        "another runner's drill is left alone"
    );
    assert_eq!(lease(&f, &driller, &a.drill).await, StatusCode::NO_CONTENT);
    assert_eq!(abandon("r1").await, 1);
    let history = drill_history(&f, &admin, "main").await;
    let d = &history.drills[0];
    assert_eq!(
        (d.id.as_str(), d.status),
        (a.drill.as_str(), DrillStatus::Skipped)
    );
    assert!(d.finished_at.is_some());
    let reason = d.outcome.reason.as_deref().unwrap();
    assert!(reason.contains("runner `r1`"), "{reason}");
    assert_eq!(lease(&f, &driller, &a.drill).await, StatusCode::CONFLICT);
    let (s, b) = report(&f, &driller, &a.drill, &ok_report()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(abandon("r1").await, 0);
    let c = cluster_info(&f, &admin, "main").await;
    assert_eq!(c.status, "ok", "{:?}", c.status_reasons);
    assert_eq!(c.last_drill, None, "a skipped drill is no verdict");

    ask_for_drill(&f, &admin, "main").await;
    let b2 = claim_of(&f, &driller, "r1", "main").await;
    let why = "recovery stopped at 0/3000060: 000000010000000000000004 is damaged";
    let (s, b) = report(&f, &driller, &b2.drill, &failed_report(why)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let c = cluster_info(&f, &admin, "main").await;
    assert_eq!(c.status, "failing");
    assert!(
        c.status_reasons
            .iter()
            .any(|r| r.contains("restore drill failed") && r.contains(why)),
        "{:?}",
        c.status_reasons
    );
    assert_eq!(c.last_drill.map(|d| d.id), Some(b2.drill));
    assert_eq!(c.last_ok_drill, None);
    let (_, _, fleet) = f.call(Method::GET, "/v1/clusters", Some(&admin)).await;
    let fleet: Vec<walgate_core::api::Cluster> = serde_json::from_slice(&fleet).unwrap();
    assert_eq!(fleet[0].status, "failing", "the fleet's view agrees");

    ask_for_drill(&f, &admin, "main").await;
    let c3 = claim_of(&f, &driller, "r1", "main").await;
    let (s, b) = report(&f, &driller, &c3.drill, &ok_report()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let c = cluster_info(&f, &admin, "main").await;
    assert_eq!(c.status, "ok", "{:?}", c.status_reasons);
}

/// A cluster whose newest backup cannot be restored (the segment it starts in is not
/// archived) gets a failed drill at claim time, with the reason, and the claim goes on
/// to the next cluster.
#[tokio::test]
async fn a_claim_fails_the_drill_of_an_archive_with_a_gap() {
    let f = Fixture::new().await;
    let archiver = f.token("*", Role::Archiver).await;
    drillable(&f, &archiver, "good").await;
    let (s, b) = f.put(&archiver, "gap", NAME, segment(SYSID, 1, 1, 1)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let gap: walgate_core::ClusterName = "gap".parse().unwrap();
    f.state
        .catalog
        .insert_backup(&gap, &backup_row("g", 5, 0))
        .await
        .unwrap();
    let viewer = f.token("*", Role::Viewer).await;
    let driller = f.token("*", Role::Driller).await;

    // `gap` sorts first: tried, failed, and the claim hands out `good`.
    claim_of(&f, &driller, "r1", "good").await;
    let history = drill_history(&f, &viewer, "gap").await;
    assert_eq!(history.drills.len(), 1);
    let d = &history.drills[0];
    assert_eq!((d.status, d.runner.as_str()), (DrillStatus::Failed, "r1"));
    assert!(d.finished_at.is_some());
    let reason = d.outcome.reason.as_deref().unwrap();
    assert!(
        reason.contains("the archive cannot be restored")
            && reason.contains("000000010000000000000005"),
        "{reason}"
    );
    let c = cluster_info(&f, &viewer, "gap").await;
    assert_eq!(c.status, "failing");
    assert!(
        c.status_reasons
            .iter()
            .any(|r| r.contains("restore drill failed")),
        "{:?}",
        c.status_reasons
    );

    // Nothing else is due: `good` runs, `gap` just failed.
    let (s, _, b) = claim(&f, &driller, "r2", &[15]).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(drill_history(&f, &viewer, "gap").await.drills.len(), 1);
    // Asked for again, by a driller of `gap` alone: failed again, and a 204.
    let admin = f.token("gap", Role::Admin).await;
    ask_for_drill(&f, &admin, "gap").await;
    let only_gap = f.token("gap", Role::Driller).await;
    let (s, _, b) = claim(&f, &only_gap, "r3", &[15]).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let history = drill_history(&f, &viewer, "gap").await;
    assert_eq!(history.drills.len(), 2);
    assert_eq!(history.drills[0].status, DrillStatus::Failed);
    assert_eq!(history.requested_at, None);
}

/// A drill whose lease ran out is ended by the next claim, as skipped with the reason,
/// and no longer holds its cluster; a skipped drill is retried within the hour, not at
/// once.
#[tokio::test]
async fn drills_whose_runner_went_silent_are_ended_by_the_next_claim() {
    let (f, driller) = drill_fixture().await;
    let admin = f.token("main", Role::Admin).await;
    let catalog = f.state.catalog.as_ref();

    let a = claim_of(&f, &driller, "r1", "main").await;
    // Asked for while it runs: the running drill holds the cluster.
    ask_for_drill(&f, &admin, "main").await;
    let (s, _, b) = claim(&f, &driller, "r2", &[15]).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert!(
        drill_history(&f, &admin, "main")
            .await
            .requested_at
            .is_some()
    );

    let past = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    assert!(catalog.renew_drill(&a.drill, past).await.unwrap());
    let b2 = claim_of(&f, &driller, "r2", "main").await;
    let old = catalog.drill(&a.drill).await.unwrap().unwrap();
    assert_eq!(old.status, DrillStatus::Skipped);
    let reason = old.outcome.reason.as_deref().unwrap();
    assert!(reason.contains("stopped reporting"), "{reason}");
    assert!(
        old.finished_at
            .is_some_and(|t| t <= time::OffsetDateTime::now_utc())
    );
    assert_eq!(lease(&f, &driller, &a.drill).await, StatusCode::CONFLICT);
    let (s, b) = report(&f, &driller, &a.drill, &ok_report()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(drill_history(&f, &admin, "main").await.requested_at, None);

    // Silent too: ended, and the cluster waits (up to an hour) before it is tried again.
    assert!(catalog.renew_drill(&b2.drill, past).await.unwrap());
    let (s, _, b) = claim(&f, &driller, "r3", &[15]).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let history = drill_history(&f, &admin, "main").await;
    let statuses: Vec<DrillStatus> = history.drills.iter().map(|d| d.status).collect();
    assert_eq!(statuses, [DrillStatus::Skipped, DrillStatus::Skipped]);
    let c = cluster_info(&f, &admin, "main").await;
    assert_eq!(c.status, "ok", "{:?}", c.status_reasons);

    // A lease renewed in time is not ended by a claim.
    ask_for_drill(&f, &admin, "main").await;
    let c3 = claim_of(&f, &driller, "r3", "main").await;
    let (s, _, b) = claim(&f, &driller, "r4", &[15]).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let d = catalog.drill(&c3.drill).await.unwrap().unwrap();
    assert_eq!(d.status, DrillStatus::Running);
}

/// Once a runner has been seen, each cluster's drill gauges show: 0 until a drill
/// succeeds, then when it did; and whether the newest verdict was a failure.
#[tokio::test]
async fn metrics_show_drills_once_a_runner_is_seen() {
    let f = Fixture::new().await;
    let archiver = f.token("*", Role::Archiver).await;
    drillable(&f, &archiver, "main").await;
    let viewer = f.token("*", Role::Viewer).await;
    let admin = f.token("main", Role::Admin).await;
    let driller = f.token("*", Role::Driller).await;
    let metrics = || {
        let f = &f;
        let viewer = &viewer;
        async move {
            let (s, _, b) = f.call(Method::GET, "/metrics", Some(viewer)).await;
            assert_eq!(s, StatusCode::OK);
            String::from_utf8(b).unwrap()
        }
    };
    let success = "walgate_drill_last_success_timestamp_seconds{cluster=\"main\"}";
    let failed = "walgate_drill_last_failed{cluster=\"main\"}";
    let m = metrics().await;
    assert!(!m.contains(success), "no runner yet:\n{m}");
    assert!(!m.contains(failed));

    // A runner with other binaries claims nothing, but is seen.
    let (s, _, b) = claim(&f, &driller, "r1", &[99]).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let m = metrics().await;
    assert!(m.contains(&format!("{success} 0\n")), "{m}");
    assert!(
        m.contains("walgate_drill_expected_within_seconds{cluster=\"main\"} 691200\n"),
        "a week and a day:\n{m}"
    );
    assert!(!m.contains(failed), "{m}");

    let a = claim_of(&f, &driller, "r1", "main").await;
    let (s, b) = report(&f, &driller, &a.drill, &ok_report()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ok: walgate_core::api::Drill = serde_json::from_str(&b).unwrap();
    let at = ok.finished_at.unwrap().unix_timestamp();
    let m = metrics().await;
    assert!(m.contains(&format!("{success} {at}\n")), "{m}");
    assert!(m.contains(&format!("{failed} 0\n")), "{m}");
    assert!(
        m.contains("walgate_drill_last_success_duration_seconds{cluster=\"main\"} 2.5\n"),
        "{m}"
    );

    ask_for_drill(&f, &admin, "main").await;
    let b2 = claim_of(&f, &driller, "r1", "main").await;
    let (s, b) = report(&f, &driller, &b2.drill, &failed_report("broken")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let m = metrics().await;
    assert!(m.contains(&format!("{failed} 1\n")), "{m}");
    assert!(
        m.contains(&format!("{success} {at}\n")),
        "the last success stands:\n{m}"
    );
    assert!(
        m.contains("walgate_cluster_status{cluster=\"main\",status=\"failing\"} 1"),
        "{m}"
    );
}

/// A drill asked for comes before scheduled ones; a cluster with an interval of 0 is
/// never scheduled (nor expected to be drilled) but is drilled when asked; removing its
/// policy brings the gateway's interval back.
#[tokio::test]
async fn asked_for_drills_come_first_and_an_interval_of_zero_schedules_none() {
    let f = Fixture::new().await;
    let archiver = f.token("*", Role::Archiver).await;
    for c in ["a", "b", "c"] {
        drillable(&f, &archiver, c).await;
    }
    let admin = f.token("*", Role::Admin).await;
    let viewer = f.token("*", Role::Viewer).await;
    let driller = f.token("*", Role::Driller).await;
    let (s, b) = send_json(
        &f,
        Method::PUT,
        "/v1/clusters/c/drills/policy",
        &admin,
        br#"{"interval_hours": 0}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let h: DrillHistory = serde_json::from_str(&b).unwrap();
    assert_eq!((h.interval_hours, h.check), (0, None));

    ask_for_drill(&f, &admin, "b").await;
    claim_of(&f, &driller, "r1", "b").await;
    claim_of(&f, &driller, "r2", "a").await;
    let (s, _, b) = claim(&f, &driller, "r3", &[15]).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert!(drill_history(&f, &viewer, "c").await.drills.is_empty());
    let (_, _, m) = f.call(Method::GET, "/metrics", Some(&viewer)).await;
    let m = String::from_utf8(m).unwrap();
    let gauge = "walgate_drill_last_success_timestamp_seconds";
    assert!(m.contains(&format!("{gauge}{{cluster=\"a\"}} 0\n")), "{m}");
    assert!(!m.contains(&format!("{gauge}{{cluster=\"c\"}}")), "{m}");

    ask_for_drill(&f, &admin, "c").await;
    claim_of(&f, &driller, "r3", "c").await;
    let (s, _, _) = f
        .call(Method::DELETE, "/v1/clusters/c/drills/policy", Some(&admin))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(drill_history(&f, &viewer, "c").await.interval_hours, 7 * 24);

    for (method, uri) in [
        (Method::GET, "/v1/clusters/nope/drills"),
        (Method::POST, "/v1/clusters/nope/drills"),
        (Method::DELETE, "/v1/clusters/nope/drills/policy"),
    ] {
        let (s, _, _) = f.call(method.clone(), uri, Some(&admin)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {uri}");
    }
    let (s, b) = send_json(
        &f,
        Method::PUT,
        "/v1/clusters/nope/drills/policy",
        &admin,
        br#"{"interval_hours": 1}"#,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
}

/// Scheduled verification reads what changed since its last run, and still finds a gap
/// wherever it appears: after the newest segment it saw, or in the middle of what it
/// had already verified. On both catalog backends.
#[tokio::test]
async fn scheduled_verification_reads_changes_and_finds_new_gaps() {
    let sqlite = Fixture::new().await;
    let url = format!(
        "sqlite://{}",
        sqlite._dir.path().join("catalog.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sweeps_find_new_gaps(&sqlite, async |sql: &'static str| {
        sqlx::query(sql).execute(&pool).await.unwrap();
    })
    .await;

    let mut pg = walgate_tests::PgCluster::init(&[]);
    pg.start();
    pg.psql("CREATE DATABASE walgate");
    let postgres = Fixture::serving(&["--catalog-url", &pg.url("walgate")]).await;
    sweeps_find_new_gaps(&postgres, async |sql: &'static str| {
        pg.psql_in("walgate", sql);
    })
    .await;
}

/// The sweeps of [`scheduled_verification_reads_changes_and_finds_new_gaps`]; `sql` runs
/// a statement on the gateway's catalog, as damage from outside would.
async fn sweeps_find_new_gaps(f: &Fixture, sql: impl AsyncFn(&'static str)) {
    use walgate::verify::{Sweep, sweep};
    let archiver = f.token("main", Role::Archiver).await;
    let main: walgate_core::ClusterName = "main".parse().unwrap();
    let push = async |segnos: &[u64]| {
        for &segno in segnos {
            let name = format!("0000000100000000{segno:08X}");
            let body = segment(SYSID, 1, segno, segno as u8);
            let (s, b) = f.put(&archiver, "main", &name, body).await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
        }
    };
    let last = async || {
        let report = f.state.catalog.last_verification(&main).await.unwrap();
        report.expect("a verification")
    };
    push(&[1, 2, 3]).await;
    f.state
        .catalog
        .insert_backup(&main, &backup_row("b", 1, 1))
        .await
        .unwrap();
    let whole = Sweep {
        whole: 1,
        ..Sweep::default()
    };
    assert_eq!(sweep(&f.state).await.unwrap(), whole, "never verified");
    let first = last().await;
    assert!(first.ok, "{first:?}");

    // Nothing changed: renewed in one statement, findings kept.
    let unchanged = Sweep {
        unchanged: 1,
        ..Sweep::default()
    };
    assert_eq!(sweep(&f.state).await.unwrap(), unchanged);
    assert_eq!(last().await.chain_problems, first.chain_problems);

    // New segments carrying the timeline on: only they are read.
    push(&[4, 5]).await;
    let appended = Sweep {
        appended: 1,
        ..Sweep::default()
    };
    assert_eq!(sweep(&f.state).await.unwrap(), appended);
    assert!(last().await.ok);
    assert_eq!(sweep(&f.state).await.unwrap(), unchanged);

    // A gap after the newest segment seen.
    push(&[7]).await;
    assert_eq!(sweep(&f.state).await.unwrap(), whole);
    let found = last().await;
    assert!(!found.ok);
    assert_eq!(
        found.chain_problems,
        ["000000010000000000000006 is missing: replay from backup b stops before it"]
    );
    // Nothing changed since: the findings stand, unread.
    assert_eq!(sweep(&f.state).await.unwrap(), unchanged);
    push(&[6]).await;
    assert_eq!(sweep(&f.state).await.unwrap(), whole);
    assert!(last().await.ok);

    // A scrub's findings on the objects hold for when it ran: not renewed, replaced.
    let admin = f.token("main", Role::Admin).await;
    assert!(f.scrub(&admin).await.scrubbed);
    assert!(last().await.scrubbed);
    assert_eq!(sweep(&f.state).await.unwrap(), whole);
    assert!(!last().await.scrubbed);

    // A gap in the middle of what was verified, made behind the gateway's back.
    sql("DELETE FROM wal_files WHERE name = '000000010000000000000003'").await;
    assert_eq!(sweep(&f.state).await.unwrap(), whole);
    assert_eq!(
        last().await.chain_problems,
        ["000000010000000000000003 is missing: replay from backup b stops before it"]
    );
}
