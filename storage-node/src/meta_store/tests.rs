use super::*;

fn ts(physical_ms: u64, logical: u32, origin: u64) -> Timestamp {
    Timestamp { physical_ms, logical, origin }
}

fn row(key: &[u8], timestamp: Timestamp, value: &[u8]) -> Row {
    Row { key: key.to_vec(), timestamp, tombstone: false, value: value.to_vec() }
}

fn tombstone(key: &[u8], timestamp: Timestamp) -> Row {
    Row { key: key.to_vec(), timestamp, tombstone: true, value: Vec::new() }
}

fn open(dir: &tempfile::TempDir) -> MetaStore {
    MetaStore::open(&dir.path().join("meta.redb"), MetaStoreConfig::default()).expect("open")
}

fn keys(rows: &[Row]) -> Vec<Vec<u8>> {
    rows.iter().map(|r| r.key.clone()).collect()
}

#[tokio::test]
async fn put_then_get() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let written = row(b"bucket/key", ts(10, 0, 1), b"manifest");
    assert_eq!(store.put_if_newer(vec![written.clone()]).await.expect("put"), vec![true]);
    assert_eq!(store.get(b"bucket/key".to_vec()).await.expect("get"), Some(written));
    assert_eq!(store.get(b"bucket/other".to_vec()).await.expect("get"), None);
    assert_eq!(store.row_count().await.expect("count"), 1);
    assert_eq!(store.put_if_newer(Vec::new()).await.expect("empty write"), Vec::<bool>::new());
}

#[tokio::test]
async fn last_writer_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let newest = row(b"k", ts(10, 5, 1), b"newest");
    store.put_if_newer(vec![newest.clone()]).await.expect("put");
    let attempts = [
        (row(b"k", ts(9, 99, 9), b"older physical"), false),
        (row(b"k", ts(10, 4, 9), b"older logical"), false),
        (row(b"k", ts(10, 5, 0), b"lower origin"), false),
        (row(b"k", ts(10, 5, 1), b"equal"), false),
        (tombstone(b"k", ts(10, 5, 1)), false),
    ];
    for (attempt, expected) in attempts {
        let applied = store.put_if_newer(vec![attempt]).await.expect("put");
        assert_eq!(applied, vec![expected]);
    }
    assert_eq!(store.get(b"k".to_vec()).await.expect("get"), Some(newest.clone()));
    let higher_origin = row(b"k", ts(10, 5, 2), b"higher origin");
    assert_eq!(store.put_if_newer(vec![higher_origin.clone()]).await.expect("put"), vec![true]);
    assert_eq!(store.get(b"k".to_vec()).await.expect("get"), Some(higher_origin));
}

#[tokio::test]
async fn tombstone_replaces_and_can_be_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    store.put_if_newer(vec![row(b"k", ts(1, 0, 1), b"v1")]).await.expect("put");
    let delete = tombstone(b"k", ts(2, 0, 1));
    assert_eq!(store.put_if_newer(vec![delete.clone()]).await.expect("delete"), vec![true]);
    assert_eq!(store.get(b"k".to_vec()).await.expect("get"), Some(delete));
    // An older write arriving late does not resurrect the key.
    assert_eq!(store.put_if_newer(vec![row(b"k", ts(1, 5, 1), b"late")]).await.expect("late put"), vec![false]);
    let again = row(b"k", ts(3, 0, 1), b"v3");
    assert_eq!(store.put_if_newer(vec![again.clone()]).await.expect("put"), vec![true]);
    assert_eq!(store.get(b"k".to_vec()).await.expect("get"), Some(again));
}

#[tokio::test]
async fn rows_of_one_request_apply_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let applied = store
        .put_if_newer(vec![
            row(b"a", ts(5, 0, 1), b"a5"),
            row(b"a", ts(4, 0, 1), b"a4"),
            row(b"a", ts(6, 0, 1), b"a6"),
            row(b"b", ts(1, 0, 1), b"b1"),
        ])
        .await
        .expect("put");
    assert_eq!(applied, vec![true, false, true, true]);
    let stored = store.get(b"a".to_vec()).await.expect("get").expect("row");
    assert_eq!(stored.value, b"a6");
}

#[tokio::test]
async fn scan_orders_filters_and_pages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let all: Vec<&[u8]> = vec![b"a/1", b"b/", b"b/1", b"b/2", b"b/3", b"b0", b"c/1"];
    // Written in reverse and with a tombstone, to show order is by key and tombstones are kept.
    let mut rows: Vec<Row> = all.iter().rev().map(|k| row(k, ts(1, 0, 1), k)).collect();
    rows.push(tombstone(b"b/2", ts(2, 0, 1)));
    store.put_if_newer(rows).await.expect("put");

    let page = store.scan(b"b/".to_vec(), None, 10).await.expect("scan");
    assert_eq!(keys(&page), vec![b"b/".to_vec(), b"b/1".to_vec(), b"b/2".to_vec(), b"b/3".to_vec()]);
    assert!(page[2].tombstone);

    let first = store.scan(b"b/".to_vec(), None, 2).await.expect("scan");
    assert_eq!(keys(&first), vec![b"b/".to_vec(), b"b/1".to_vec()]);
    let second = store.scan(b"b/".to_vec(), Some(b"b/1".to_vec()), 2).await.expect("scan");
    assert_eq!(keys(&second), vec![b"b/2".to_vec(), b"b/3".to_vec()]);
    let after_end = store.scan(b"b/".to_vec(), Some(b"b/3".to_vec()), 2).await.expect("scan");
    assert!(after_end.is_empty());
    // A start key that is not itself stored, and one below the prefix.
    let between = store.scan(b"b/".to_vec(), Some(b"b/15".to_vec()), 10).await.expect("scan");
    assert_eq!(keys(&between), vec![b"b/2".to_vec(), b"b/3".to_vec()]);
    let below = store.scan(b"b/".to_vec(), Some(b"a".to_vec()), 1).await.expect("scan");
    assert_eq!(keys(&below), vec![b"b/".to_vec()]);
    // Past the prefix entirely.
    let beyond = store.scan(b"b/".to_vec(), Some(b"c".to_vec()), 10).await.expect("scan");
    assert!(beyond.is_empty());

    let everything = store.scan(Vec::new(), None, 100).await.expect("scan");
    let mut expected: Vec<Vec<u8>> = all.iter().map(|k| k.to_vec()).collect();
    expected.sort();
    assert_eq!(keys(&everything), expected);
    assert!(store.scan(b"b/".to_vec(), None, 0).await.expect("scan").is_empty());
}

#[tokio::test]
async fn scan_with_0xff_prefix_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let stored: Vec<Vec<u8>> = vec![
        vec![0x01, 0xFE, 0xFF],
        vec![0x01, 0xFF],
        vec![0x01, 0xFF, 0x00],
        vec![0x01, 0xFF, 0xFF],
        vec![0x01, 0xFF, 0xFF, 0xFF],
        vec![0x02],
        vec![0xFF],
        vec![0xFF, 0xFF],
    ];
    let rows = stored.iter().map(|k| row(k, ts(1, 0, 1), b"")).collect();
    store.put_if_newer(rows).await.expect("put");

    let page = store.scan(vec![0x01, 0xFF], None, 10).await.expect("scan");
    assert_eq!(keys(&page), stored[1..5].to_vec());
    let page = store.scan(vec![0x01, 0xFF], Some(vec![0x01, 0xFF, 0x00]), 10).await.expect("scan");
    assert_eq!(keys(&page), stored[3..5].to_vec());
    let page = store.scan(vec![0xFF], None, 10).await.expect("scan");
    assert_eq!(keys(&page), stored[6..8].to_vec());
    let page = store.scan(vec![0xFF, 0xFF], Some(vec![0xFF, 0xFF]), 10).await.expect("scan");
    assert!(page.is_empty());
}

#[tokio::test]
async fn limits_are_typed_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let long_key = vec![b'k'; MAX_KEY_BYTES + 1];
    let result = store.put_if_newer(vec![row(&long_key, ts(1, 0, 1), b"")]).await;
    assert!(matches!(result, Err(MetaError::KeyTooLong { .. })), "{result:?}");
    let big_value = vec![0u8; MAX_VALUE_BYTES + 1];
    let result = store.put_if_newer(vec![row(b"k", ts(1, 0, 1), &big_value)]).await;
    assert!(matches!(result, Err(MetaError::ValueTooLarge { .. })), "{result:?}");
    let result = store.scan(Vec::new(), None, MAX_SCAN_LIMIT + 1).await;
    assert!(matches!(result, Err(MetaError::ScanLimitTooLarge { .. })), "{result:?}");
    let result = store.get(long_key.clone()).await;
    assert!(matches!(result, Err(MetaError::KeyTooLong { .. })), "{result:?}");
    let result = store.scan(long_key, None, 1).await;
    assert!(matches!(result, Err(MetaError::KeyTooLong { .. })), "{result:?}");
    // The largest allowed key and value are accepted.
    let max_key = vec![b'k'; MAX_KEY_BYTES];
    let max_value = vec![7u8; MAX_VALUE_BYTES];
    let applied = store.put_if_newer(vec![row(&max_key, ts(1, 0, 1), &max_value)]).await.expect("largest row");
    assert_eq!(applied, vec![true]);
    assert_eq!(store.row_count().await.expect("count"), 1);
}

#[tokio::test]
async fn request_limits_follow_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = MetaStoreConfig { max_batch_rows: 3, ..MetaStoreConfig::default() };
    let store = MetaStore::open(&dir.path().join("meta.redb"), config).expect("open");
    let rows: Vec<Row> = (0u8..4).map(|i| row(&[i], ts(1, 0, 1), b"")).collect();
    let result = store.put_if_newer(rows).await;
    assert!(matches!(result, Err(MetaError::TooManyRows { rows: 4, max: 3 })), "{result:?}");
    for bad in [
        MetaStoreConfig { max_batch_rows: 0, ..MetaStoreConfig::default() },
        MetaStoreConfig { queue_depth: 0, ..MetaStoreConfig::default() },
        MetaStoreConfig { max_batch_bytes: MAX_VALUE_BYTES, ..MetaStoreConfig::default() },
    ] {
        let result = MetaStore::open(&dir.path().join("other.redb"), bad);
        assert!(matches!(result, Err(MetaError::InvalidConfig(_))), "{result:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_commits() {
    const WRITERS: u64 = 400;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let before = store.commit_count();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = format!("key/{i:04}").into_bytes();
                store.put_if_newer(vec![row(&key, ts(1, 0, i), b"v")]).await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("task").expect("put"), vec![true]);
    }
    let commits = store.commit_count() - before;
    assert!(commits >= 1);
    assert!(commits < WRITERS, "{commits} commits for {WRITERS} requests: no group commit");
    assert_eq!(store.row_count().await.expect("count"), WRITERS);
    let page = store.scan(b"key/".to_vec(), None, MAX_SCAN_LIMIT).await.expect("scan");
    assert_eq!(page.len(), WRITERS as usize);
}

#[tokio::test]
async fn reopen_keeps_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meta.redb");
    let written = vec![row(b"x/1", ts(7, 1, 2), b"one"), tombstone(b"x/2", ts(7, 2, 2))];
    {
        let store = MetaStore::open(&path, MetaStoreConfig::default()).expect("open");
        let clone = store.clone();
        clone.put_if_newer(written.clone()).await.expect("put");
    }
    // Dropping the last handle closed the database, so it can be opened again at once.
    let store = MetaStore::open(&path, MetaStoreConfig::default()).expect("reopen");
    let page = store.scan(b"x/".to_vec(), None, 10).await.expect("scan");
    assert_eq!(page, written);
    assert_eq!(store.put_if_newer(vec![row(b"x/1", ts(7, 1, 2), b"replay")]).await.expect("replay"), vec![false]);
}

#[tokio::test]
async fn corrupt_stored_row_fails_only_its_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meta.redb");
    {
        // A row of a future format, written behind the store's back.
        let db = Database::create(&path).expect("create");
        let txn = db.begin_write().expect("txn");
        {
            let mut table = txn.open_table(ROWS).expect("table");
            table.insert(b"future".as_slice(), [9u8, 0, 0].as_slice()).expect("insert");
        }
        txn.commit().expect("commit");
    }
    let store = MetaStore::open(&path, MetaStoreConfig::default()).expect("open");
    let result = store.put_if_newer(vec![row(b"fresh", ts(1, 0, 1), b""), row(b"future", ts(1, 0, 1), b"")]).await;
    assert!(matches!(result, Err(MetaError::UnsupportedFormat { version: 9 })), "{result:?}");
    // Nothing of the failed request was written.
    assert_eq!(store.get(b"fresh".to_vec()).await.expect("get"), None);
    let result = store.get(b"future".to_vec()).await;
    assert!(matches!(result, Err(MetaError::UnsupportedFormat { .. })), "{result:?}");
    assert_eq!(store.put_if_newer(vec![row(b"fresh", ts(1, 0, 1), b"")]).await.expect("other request"), vec![true]);
}

/// Counts rows under "g/" by their first two key bytes, with the value's length as bytes.
fn tally_by_prefix(row: &Row) -> Option<(Vec<u8>, u64)> {
    (!row.tombstone && row.key.starts_with(b"g")).then(|| (row.key[..2].to_vec(), row.value.len() as u64))
}

async fn totals_of(store: &MetaStore, groups: &[&[u8]]) -> Vec<(u64, u64)> {
    let totals = store.totals(groups.iter().map(|g| g.to_vec()).collect()).await.expect("totals");
    totals.into_iter().map(|t| (t.rows, t.bytes)).collect()
}

#[tokio::test]
async fn totals_follow_writes_overwrites_tombstones_and_removals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meta.redb");
    let store = MetaStore::open_with_tally(&path, MetaStoreConfig::default(), Some(tally_by_prefix)).expect("open");
    store
        .put_if_newer(vec![
            row(b"ga/1", ts(1, 0, 1), b"12345"),
            row(b"ga/2", ts(1, 0, 1), b"123"),
            row(b"gb/1", ts(1, 0, 1), b"1"),
            row(b"x/1", ts(1, 0, 1), b"uncounted"),
        ])
        .await
        .expect("put");
    assert_eq!(totals_of(&store, &[b"ga", b"gb", b"gc"]).await, vec![(2, 8), (1, 1), (0, 0)]);
    // An overwrite replaces the old size; a stale write changes nothing; a tombstone uncounts.
    store
        .put_if_newer(vec![
            row(b"ga/1", ts(2, 0, 1), b"1234567890"),
            row(b"ga/2", ts(0, 0, 1), b"stale write"),
            tombstone(b"gb/1", ts(2, 0, 1)),
            // Twice in one request: the second replaces the first.
            row(b"gc/1", ts(2, 0, 1), b"12"),
            row(b"gc/1", ts(3, 0, 1), b"1234"),
        ])
        .await
        .expect("put");
    assert_eq!(totals_of(&store, &[b"ga", b"gb", b"gc"]).await, vec![(2, 13), (0, 0), (1, 4)]);
    // Removing a row (a handed-off shard) uncounts it; a row written since stays counted.
    let removed = store.remove_unchanged(vec![(b"ga/2".to_vec(), ts(1, 0, 1)), (b"gc/1".to_vec(), ts(2, 0, 1))]);
    assert_eq!(removed.await.expect("remove"), 1);
    assert_eq!(totals_of(&store, &[b"ga", b"gc"]).await, vec![(1, 10), (1, 4)]);
    drop(store);

    // Reopened, the totals are the ones kept, not counted twice.
    let store = MetaStore::open_with_tally(&path, MetaStoreConfig::default(), Some(tally_by_prefix)).expect("open");
    assert_eq!(totals_of(&store, &[b"ga", b"gc"]).await, vec![(1, 10), (1, 4)]);
    drop(store);

    // A process that does not keep totals writes rows; the next one that does counts again.
    let plain = MetaStore::open(&path, MetaStoreConfig::default()).expect("open");
    plain.put_if_newer(vec![row(b"ga/3", ts(5, 0, 1), b"123456")]).await.expect("put");
    drop(plain);
    let store = MetaStore::open_with_tally(&path, MetaStoreConfig::default(), Some(tally_by_prefix)).expect("open");
    assert_eq!(totals_of(&store, &[b"ga", b"gc", b""]).await, vec![(2, 16), (1, 4), (0, 0)]);
}

#[tokio::test]
async fn a_store_written_without_totals_counts_its_rows_when_opened_with_a_tally() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meta.redb");
    {
        let db = redb::Database::create(&path).expect("create");
        let txn = db.begin_write().expect("txn");
        {
            let mut rows = txn.open_table(ROWS).expect("rows");
            for (key, value) in [(&b"ga/1"[..], &b"123"[..]), (b"ga/2", b"45"), (b"gb/1", b"6")] {
                rows.insert(key, codec::encode_value(&row(key, ts(1, 0, 1), value)).as_slice()).expect("insert");
            }
        }
        txn.commit().expect("commit");
    }
    let store = MetaStore::open_with_tally(&path, MetaStoreConfig::default(), Some(tally_by_prefix)).expect("open");
    assert_eq!(totals_of(&store, &[b"ga", b"gb"]).await, vec![(2, 5), (1, 1)]);
}
