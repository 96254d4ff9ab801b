//! The Swift store against a real OpenStack Swift (tests/emulators/swift-aio, TempAuth):
//! create-only writes, large objects, deletes and token renewal.

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use walgate_swift::{Swift, SwiftAuth, SwiftConfig};
use walgate_tests::emulators::SwiftAio;

fn store(swift: &SwiftAio) -> Arc<dyn ObjectStore> {
    let config = SwiftConfig {
        auth: SwiftAuth::V1 {
            url: format!("{}/auth/v1.0", swift.url),
            user: "test:tester".into(),
            key: "testing".into(),
        },
        container: "walgate".into(),
        storage_url: None,
        retry_timeout: Duration::from_secs(30),
    };
    Arc::new(Swift::new(config).unwrap())
}

fn create_only() -> PutOptions {
    PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    }
}

async fn read(store: &dyn ObjectStore, key: &Path) -> Vec<u8> {
    let got = store.get(key).await.unwrap();
    got.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn create_only_writes_large_objects_and_deletes() {
    let swift = SwiftAio::start();
    let store = store(&swift);
    let key = Path::from("clusters/main/wal/000000010000000000000001.zst");
    let big: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();

    store
        .put_opts(&key, PutPayload::from(big.clone()), create_only())
        .await
        .unwrap();
    // A second create-only write of a 20 MB body: refused, the first kept.
    let again = store
        .put_opts(&key, PutPayload::from(vec![1u8; 20 << 20]), create_only())
        .await;
    assert!(
        matches!(again, Err(object_store::Error::AlreadyExists { .. })),
        "{again:?}"
    );
    assert!(read(store.as_ref(), &key).await == big);

    // A large object in parts (a Static Large Object): read back whole, listed once
    // (its segments are not), and deleted with its segments.
    let backup = Path::from("clusters/main/backups/b1/base.tar.zst");
    let upload = store.put_multipart(&backup).await.unwrap();
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 8 << 20);
    writer.write(&big);
    writer.finish().await.unwrap();
    assert!(read(store.as_ref(), &backup).await == big);
    let listed: Vec<String> = store
        .list(Some(&Path::from("clusters")))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(swift.keys("walgate", ".segments/").len(), 3);
    store.delete(&backup).await.unwrap();
    assert!(swift.keys("walgate", ".segments/").is_empty());
    assert!(matches!(
        store.get(&backup).await,
        Err(object_store::Error::NotFound { .. })
    ));

    // A plain object deletes too; a missing one says so.
    store.delete(&key).await.unwrap();
    assert!(matches!(
        store.head(&key).await,
        Err(object_store::Error::NotFound { .. })
    ));
    assert!(matches!(
        store.delete(&key).await,
        Err(object_store::Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn an_expired_token_is_renewed() {
    let swift = SwiftAio::start_with(&[("SWIFT_AIO_TOKEN_LIFE", "2")]);
    let store = store(&swift);
    let key = Path::from("probe");
    store
        .put(&key, PutPayload::from_static(b"one"))
        .await
        .unwrap();
    swift.wait_for_token_expiry();
    store
        .put(&key, PutPayload::from_static(b"two"))
        .await
        .unwrap();
    assert_eq!(read(store.as_ref(), &key).await, b"two");
}
