use std::io::{self, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt, stream};

use super::*;

fn id(n: u32) -> ChunkId {
    ChunkId { chunk_set: uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677), part: 3, index: n }
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// A body stream made of `pieces`.
fn body(pieces: Vec<Bytes>) -> impl Stream<Item = Result<Bytes, io::Error>> + Unpin + Send {
    stream::iter(pieces.into_iter().map(Ok))
}

fn whole(data: &[u8]) -> impl Stream<Item = Result<Bytes, io::Error>> + Unpin + Send {
    body(vec![Bytes::copy_from_slice(data)])
}

fn tmp_files(store: &ChunkStore) -> usize {
    fs::read_dir(store.root().join(TMP_DIR_NAME)).map(|entries| entries.count()).unwrap_or(usize::MAX)
}

fn open(dir: &tempfile::TempDir) -> ChunkStore {
    ChunkStore::open(dir.path(), 0).expect("open chunk store")
}

/// Flips one bit of the file at `offset`.
fn flip_byte(path: &Path, offset: u64) {
    let mut file = OpenOptions::new().read(true).write(true).open(path).expect("open chunk file");
    let mut byte = [0u8; 1];
    file.seek(SeekFrom::Start(offset)).expect("seek");
    io::Read::read_exact(&mut file, &mut byte).expect("read");
    byte[0] ^= 0x40;
    file.seek(SeekFrom::Start(offset)).expect("seek");
    file.write_all(&byte).expect("write");
}

#[test]
fn chunk_id_hex_round_trips_and_is_canonical() {
    let chunk = ChunkId { chunk_set: uuid::Uuid::from_u128(u128::MAX - 5), part: 10_000, index: u32::MAX };
    let text = chunk.to_hex();
    assert_eq!(text.len(), 48);
    assert_eq!(ChunkId::from_hex(&text), Some(chunk));
    assert_eq!(ChunkId::from_hex(&text.to_uppercase()), None);
    assert_eq!(ChunkId::from_hex(&text[..47]), None);
    assert_eq!(ChunkId::from_hex(&format!("{}z", &text[..47])), None);
    assert_eq!(ChunkId::from_bytes(&chunk.placement_key()), chunk);
}

#[test]
fn placement_key_sorts_like_ord() {
    let ids = [id(0), id(1), id(256), ChunkId { part: 4, ..id(0) }, ChunkId { chunk_set: uuid::Uuid::nil(), ..id(9) }];
    for a in &ids {
        for b in &ids {
            assert_eq!(a.cmp(b), a.placement_key().cmp(&b.placement_key()));
        }
    }
}

#[tokio::test]
async fn round_trip_of_various_sizes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let big = payload(4 * 1024 * 1024 + 12_345);
    // Uneven pieces, including empty ones, crossing the write batch size.
    let mut pieces = Vec::new();
    let mut offset = 0;
    for (i, size) in [0, 1, 700_000, 0, 1_500_000, 3].into_iter().cycle().enumerate() {
        if offset >= big.len() || i > 100 {
            break;
        }
        let end = (offset + size).min(big.len());
        pieces.push(Bytes::copy_from_slice(&big[offset..end]));
        offset = end;
    }
    assert_eq!(offset, big.len());
    let cases: Vec<(ChunkId, Vec<u8>, Vec<Bytes>)> = vec![
        (id(0), Vec::new(), Vec::new()),
        (id(1), vec![42], vec![Bytes::from_static(&[42])]),
        (id(2), big.clone(), pieces),
    ];
    for (chunk, data, pieces) in cases {
        let digest = ChunkDigest::of(&data);
        store.put(chunk, digest, body(pieces)).await.expect("put");
        assert_eq!(store.get(chunk).await.expect("get"), data);
        let header = store.head(chunk).await.expect("head");
        assert_eq!(header.digest(), digest);
        assert_eq!(header.format_version, FORMAT_VERSION);
        store.verify_sha256(chunk).await.expect("sha256 proof");
    }
    let range = store.get_range(id(2), 1_000_000, 10).await.expect("range");
    assert_eq!(range, big[1_000_000..1_000_010]);
    let tail = store.get_range(id(2), big.len() as u64 - 1, 1).await.expect("last byte");
    assert_eq!(tail, big[big.len() - 1..]);
    let file = fs::read(chunk_path(store.root(), &id(1))).expect("read file");
    assert_eq!(file.len(), HEADER_LEN + 1);
    assert_eq!(&file[..8], &MAGIC);
    assert_eq!(tmp_files(&store), 0);
}

#[tokio::test]
async fn get_range_outside_the_chunk_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let data = payload(100);
    store.put(id(0), ChunkDigest::of(&data), whole(&data)).await.expect("put");
    for (offset, len) in [(0, 101), (100, 1), (u64::MAX, 2), (50, u64::MAX)] {
        let result = store.get_range(id(0), offset, len).await;
        assert!(matches!(result, Err(ChunkError::InvalidRange { chunk_len: 100, .. })), "{offset}+{len}: {result:?}");
    }
    assert!(store.get_range(id(0), 100, 0).await.expect("empty range").is_empty());
}

#[tokio::test]
async fn corrupt_payload_byte_is_never_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let data = payload(300_000);
    store.put(id(0), ChunkDigest::of(&data), whole(&data)).await.expect("put");
    flip_byte(&chunk_path(store.root(), &id(0)), HEADER_LEN as u64 + 123_456);
    fn corrupt<T>(result: &Result<T, ChunkError>) -> bool {
        matches!(result, Err(ChunkError::Corrupt { .. }))
    }
    assert!(corrupt(&store.get(id(0)).await));
    assert!(corrupt(&store.get_range(id(0), 0, 1).await));
    assert!(corrupt(&store.verify_sha256(id(0)).await));
    // The header alone is intact.
    assert_eq!(store.head(id(0)).await.expect("head").digest(), ChunkDigest::of(&data));
}

#[tokio::test]
async fn corrupt_header_byte_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let data = payload(1000);
    for (n, offset) in [0u64, 9, 15, 30, 53, 58].into_iter().enumerate() {
        let chunk = id(n as u32);
        store.put(chunk, ChunkDigest::of(&data), whole(&data)).await.expect("put");
        flip_byte(&chunk_path(store.root(), &chunk), offset);
        let got = store.get(chunk).await;
        assert!(matches!(got, Err(ChunkError::Corrupt { .. })), "offset {offset}: {got:?}");
        let head = store.head(chunk).await;
        assert!(matches!(head, Err(ChunkError::Corrupt { .. })), "offset {offset}: {head:?}");
    }
}

#[tokio::test]
async fn truncated_or_extended_file_is_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let data = payload(1000);
    for (n, new_len) in [999u64 + HEADER_LEN as u64, 1001 + HEADER_LEN as u64, 10].into_iter().enumerate() {
        let chunk = id(n as u32);
        store.put(chunk, ChunkDigest::of(&data), whole(&data)).await.expect("put");
        let file = OpenOptions::new().write(true).open(chunk_path(store.root(), &chunk)).expect("open");
        file.set_len(new_len).expect("set_len");
        let got = store.get(chunk).await;
        assert!(matches!(got, Err(ChunkError::Corrupt { .. })), "len {new_len}: {got:?}");
    }
}

#[tokio::test]
async fn wrong_promise_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let data = payload(5000);
    let good = ChunkDigest::of(&data);
    let promises = [
        ChunkDigest { crc32c: good.crc32c ^ 1, ..good },
        ChunkDigest { len: good.len + 1, ..good },
        ChunkDigest { len: good.len - 1, ..good },
    ];
    for promise in promises {
        let result = store.put(id(0), promise, whole(&data)).await;
        assert!(matches!(result, Err(ChunkError::DigestMismatch { .. })), "{result:?}");
        assert!(!chunk_path(store.root(), &id(0)).exists());
        assert_eq!(tmp_files(&store), 0);
        assert!(matches!(store.get(id(0)).await, Err(ChunkError::NotFound { .. })));
    }
    assert_eq!(store.usage().expect("usage").chunk_count, 0);
}

#[derive(Debug, thiserror::Error)]
#[error("connection reset")]
struct ResetError;

#[tokio::test]
async fn failing_body_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let data = payload(10);
    let failing = stream::iter(vec![Ok(Bytes::copy_from_slice(&data[..5])), Err(ResetError)]);
    let result = store.put(id(0), ChunkDigest::of(&data), failing).await;
    assert!(matches!(result, Err(ChunkError::Body(_))), "{result:?}");
    assert!(!chunk_path(store.root(), &id(0)).exists());
    assert_eq!(tmp_files(&store), 0);
}

#[tokio::test]
async fn cancelled_put_leaves_no_temp_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let data = payload(10);
    let stalled = stream::iter(vec![Ok::<_, io::Error>(Bytes::copy_from_slice(&data[..5]))]).chain(stream::pending());
    let task = {
        let store = store.clone();
        tokio::spawn(async move { store.put(id(0), ChunkDigest::of(&data), stalled).await })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while tmp_files(&store) == 0 {
        assert!(Instant::now() < deadline, "put never started");
        tokio::task::yield_now().await;
    }
    task.abort();
    assert!(task.await.is_err_and(|e| e.is_cancelled()));
    while tmp_files(&store) != 0 {
        assert!(Instant::now() < deadline, "temp file not removed");
        tokio::task::yield_now().await;
    }
    assert!(!chunk_path(store.root(), &id(0)).exists());
}

#[tokio::test]
async fn reserve_is_enforced_before_writing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ChunkStore::open(dir.path(), u64::MAX).expect("open");
    let data = payload(10);
    let result = store.put(id(0), ChunkDigest::of(&data), whole(&data)).await;
    assert!(matches!(result, Err(ChunkError::InsufficientSpace { reserve_bytes: u64::MAX, .. })), "{result:?}");
    assert_eq!(tmp_files(&store), 0);
    assert!(!chunk_path(store.root(), &id(0)).exists());
    // The refused write holds no reservation afterwards.
    assert_eq!(store.inner.in_flight_bytes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn too_large_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let digest = ChunkDigest { len: MAX_CHUNK_BYTES + 1, sha256: [0; 32], crc32c: 0 };
    let result = store.put(id(0), digest, body(Vec::new())).await;
    assert!(matches!(result, Err(ChunkError::TooLarge { .. })), "{result:?}");
}

#[tokio::test]
async fn delete_and_usage_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let sizes = [0usize, 10, 70_000];
    for (n, size) in sizes.iter().enumerate() {
        let data = payload(*size);
        store.put(id(n as u32), ChunkDigest::of(&data), whole(&data)).await.expect("put");
    }
    let usage = store.usage().expect("usage");
    assert_eq!(usage.chunk_count, 3);
    assert_eq!(usage.used_bytes, (70_010 + 3 * HEADER_LEN) as u64);
    assert!(usage.capacity_bytes >= usage.free_bytes && usage.capacity_bytes > 0);
    assert_eq!(usage.reserve_bytes, 0);

    assert!(store.delete(id(1)).await.expect("delete"));
    assert!(!store.delete(id(1)).await.expect("second delete"));
    assert!(matches!(store.get(id(1)).await, Err(ChunkError::NotFound { .. })));
    assert!(matches!(store.head(id(1)).await, Err(ChunkError::NotFound { .. })));
    let usage = store.usage().expect("usage");
    assert_eq!(usage.chunk_count, 2);
    assert_eq!(usage.used_bytes, (70_000 + 2 * HEADER_LEN) as u64);
}

#[tokio::test]
async fn reopen_sees_existing_chunks_and_drops_stale_temp_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = payload(2048);
    {
        let store = open(&dir);
        for n in 0..5 {
            store.put(id(n), ChunkDigest::of(&data), whole(&data)).await.expect("put");
        }
        assert!(matches!(ChunkStore::open(dir.path(), 0), Err(ChunkError::Locked { .. })));
    }
    let stale = dir.path().join(TMP_DIR_NAME).join("leftover.tmp");
    fs::write(&stale, b"half a chunk").expect("write stale temp");
    let store = open(&dir);
    assert!(!stale.exists());
    let usage = store.usage().expect("usage");
    assert_eq!(usage.chunk_count, 5);
    assert_eq!(usage.used_bytes, 5 * (2048 + HEADER_LEN) as u64);
    for n in 0..5 {
        assert_eq!(store.get(id(n)).await.expect("get"), data);
    }
}

#[tokio::test]
async fn verify_sha256_detects_a_false_promise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let data = payload(4096);
    let mut digest = ChunkDigest::of(&data);
    digest.sha256[0] ^= 1;
    // The write path checks only length and CRC-32C, so the false SHA-256 is stored.
    store.put(id(0), digest, whole(&data)).await.expect("put");
    assert_eq!(store.get(id(0)).await.expect("crc-verified read"), data);
    let proof = store.verify_sha256(id(0)).await;
    assert!(matches!(proof, Err(ChunkError::Corrupt { reason, .. }) if reason.contains("sha256")), "{proof:?}");
    assert!(matches!(store.verify_sha256(id(9)).await, Err(ChunkError::NotFound { .. })));
}

#[tokio::test]
async fn put_is_idempotent_and_refuses_a_different_digest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let data = payload(100);
    let digest = ChunkDigest::of(&data);
    store.put(id(0), digest, whole(&data)).await.expect("put");
    store.put(id(0), digest, whole(&data)).await.expect("same again");
    let other = payload(101);
    let result = store.put(id(0), ChunkDigest::of(&other), whole(&other)).await;
    assert!(matches!(result, Err(ChunkError::Conflict { .. })), "{result:?}");
    assert_eq!(store.get(id(0)).await.expect("get"), data);
    assert_eq!(store.usage().expect("usage").chunk_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_of_one_id_store_it_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let data = payload(200_000);
    let digest = ChunkDigest::of(&data);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let data = data.clone();
            tokio::spawn(async move { store.put(id(0), digest, whole(&data)).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("put");
    }
    let usage = store.usage().expect("usage");
    assert_eq!(usage.chunk_count, 1);
    assert_eq!(usage.used_bytes, 200_000 + HEADER_LEN as u64);
    assert_eq!(tmp_files(&store), 0);
    assert_eq!(store.get(id(0)).await.expect("get"), data);
}

#[tokio::test]
async fn quarantine_sets_a_bad_copy_aside_and_the_inventory_follows() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let data = payload(10_000);
    let digest = ChunkDigest::of(&data);
    for n in 0..4 {
        store.put(id(n), digest, whole(&data)).await.unwrap();
    }
    let all = 0..LEAF_COUNT;
    let before = LeafSummary::combine(&store.leaf_summaries(all.clone()));
    assert_eq!(before.count, 4);
    let leaf = ChunkStore::leaf_of(&id(2));
    assert!(store.leaf_ids(leaf).await.unwrap().contains(&id(2)));

    flip_byte(&chunk_path(store.root(), &id(2)), HEADER_LEN as u64 + 17);
    assert!(matches!(store.verify_sha256(id(2)).await, Err(ChunkError::Corrupt { .. })));
    let aside = store.quarantine(id(2)).await.unwrap().expect("the chunk was there");
    assert_eq!(aside.digest, Some(digest), "an intact header still proves the digest");
    assert!(matches!(store.get(id(2)).await, Err(ChunkError::NotFound { .. })));
    assert_eq!(fs::read_dir(store.root().join(QUARANTINE_DIR_NAME)).unwrap().count(), 1);
    assert_eq!(store.usage().unwrap().chunk_count, 3);
    assert_eq!(store.quarantine(id(2)).await.unwrap(), None);

    // A good copy takes the name again; the summaries are those of the same set of ids.
    store.put(id(2), digest, whole(&data)).await.unwrap();
    assert_eq!(LeafSummary::combine(&store.leaf_summaries(all.clone())), before);
    store.delete(id(3)).await.unwrap();
    let after_delete = store.leaf_summaries(all.clone());
    drop(store);
    let reopened = open(&dir);
    assert_eq!(reopened.leaf_summaries(all.clone()), after_delete, "rebuilt at open");
    assert_eq!(LeafSummary::combine(&after_delete).count, 3);
    assert_eq!(reopened.purge_quarantine(Duration::from_secs(3600)).await.unwrap(), 0);
    assert_eq!(reopened.purge_quarantine(Duration::ZERO).await.unwrap(), 1);
}
