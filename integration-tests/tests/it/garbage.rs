//! Garbage collection: chunks of overwritten and deleted objects, of abandoned and replaced
//! multipart parts, of failed writes and of uploads whose gateway died go away; what visible
//! objects and uploads still running need stays.

use std::time::{Duration, Instant};

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use cairn_integration_tests::fault::FaultCluster;
use cairn_integration_tests::{DevCluster, test_bytes};

use crate::{get, put, sha256_hex};

const MIB: usize = 1024 * 1024;
/// Chunk size of a `cairn dev` cluster.
const CHUNK: usize = 4 * MIB;
/// Bytes of a chunk file's header.
const HEADER: usize = 64;

/// Chunk files and their bytes that an object of `len` bytes (in one part) needs on a replica.
fn footprint(len: usize) -> (u64, u64) {
    let chunks = len.div_ceil(CHUNK).max(1);
    (chunks as u64, (len + chunks * HEADER) as u64)
}

async fn upload_part(
    s3: &aws_sdk_s3::Client,
    key: &str,
    upload_id: &str,
    number: i32,
    data: Vec<u8>,
) -> anyhow::Result<CompletedPart> {
    let out = s3
        .upload_part()
        .bucket("garbage")
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .body(data.into())
        .send()
        .await?;
    Ok(CompletedPart::builder().part_number(number).e_tag(out.e_tag().unwrap_or_default()).build())
}

#[tokio::test(flavor = "multi_thread")]
async fn chunks_nothing_needs_are_collected_after_the_grace_period() -> anyhow::Result<()> {
    let mut env = crate::FAST_FAILURE_DETECTION.to_vec();
    env.extend([("CAIRN_GC_GRACE_SECS", "1"), ("CAIRN_GC_INTERVAL_MS", "300"), ("CAIRN_MULTIPART_EXPIRY_SECS", "10")]);
    let cluster = DevCluster::start_with(3, &[], &env)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("garbage").send().await?;
    let mut kept: Vec<(String, Vec<u8>)> = Vec::new();
    let mut expected = (0u64, 0u64);
    let mut keep = |key: &str, data: Vec<u8>, parts: &[usize]| {
        for &len in parts {
            let (chunks, bytes) = footprint(len);
            expected.0 += chunks;
            expected.1 += bytes;
        }
        kept.push((key.to_owned(), data));
    };

    // Overwritten, deleted, and kept objects.
    put(&s3, "garbage", "overwritten", test_bytes(9 * MIB, 1)).await?;
    let small = b"the new version".to_vec();
    put(&s3, "garbage", "overwritten", small.clone()).await?;
    keep("overwritten", small.clone(), &[small.len()]);
    put(&s3, "garbage", "deleted", test_bytes(100_000, 2)).await?;
    s3.delete_object().bucket("garbage").key("deleted").send().await?;
    let data = test_bytes(5 * MIB, 3);
    put(&s3, "garbage", "kept", data.clone()).await?;
    keep("kept", data, &[5 * MIB]);

    // An upload left open expires; an aborted one, and a completed one with a replaced part and
    // a part left out.
    let expired = s3.create_multipart_upload().bucket("garbage").key("expired").send().await?;
    upload_part(&s3, "expired", expired.upload_id().unwrap_or_default(), 1, test_bytes(MIB, 10)).await?;
    let aborted = s3.create_multipart_upload().bucket("garbage").key("aborted").send().await?;
    let aborted_id = aborted.upload_id().unwrap_or_default().to_owned();
    upload_part(&s3, "aborted", &aborted_id, 1, test_bytes(5 * MIB, 4)).await?;
    s3.abort_multipart_upload().bucket("garbage").key("aborted").upload_id(&aborted_id).send().await?;
    let upload = s3.create_multipart_upload().bucket("garbage").key("multipart").send().await?;
    let upload_id = upload.upload_id().unwrap_or_default().to_owned();
    upload_part(&s3, "multipart", &upload_id, 1, test_bytes(5 * MIB, 5)).await?;
    let first = upload_part(&s3, "multipart", &upload_id, 1, test_bytes(5 * MIB + 1, 6)).await?;
    let second = upload_part(&s3, "multipart", &upload_id, 2, test_bytes(MIB, 7)).await?;
    upload_part(&s3, "multipart", &upload_id, 3, test_bytes(MIB, 8)).await?;
    s3.complete_multipart_upload()
        .bucket("garbage")
        .key("multipart")
        .upload_id(&upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().parts(first).parts(second).build())
        .send()
        .await?;
    let mut whole = test_bytes(5 * MIB + 1, 6);
    whole.extend(test_bytes(MIB, 7));
    keep("multipart", whole, &[5 * MIB + 1, MIB]);

    // A write that fails (two replicas hang) leaves orphan chunks.
    cluster.pause_node(1);
    cluster.pause_node(2);
    let failed = s3.put_object().bucket("garbage").key("failed").body(test_bytes(6 * MIB, 9).into()).send().await;
    cluster.resume_node(1);
    cluster.resume_node(2);
    let failed_ok = failed.is_ok();
    if failed_ok {
        // The retries of the SDK got it through after all: then it is an object to keep.
        keep("failed", test_bytes(6 * MIB, 9), &[6 * MIB]);
    }

    // Every node ends up holding exactly the chunks of what is visible.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status = cluster.admin_json(&["status"])?;
        let nodes = status["nodes"].as_array().cloned().unwrap_or_default();
        let held: Vec<(u64, u64)> = nodes
            .iter()
            .map(|n| {
                (n["status"]["chunk_count"].as_u64().unwrap_or(0), n["status"]["used_bytes"].as_u64().unwrap_or(0))
            })
            .collect();
        if held.len() == 3 && held.iter().all(|h| *h == expected) {
            let collected: u64 =
                nodes.iter().map(|n| n["status"]["gc"]["manifests_collected"].as_u64().unwrap_or(0)).sum();
            assert!(collected >= 4, "manifests collected: {collected}");
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "nodes hold {held:?} (chunks, bytes), expected {expected:?} each (failed write acknowledged: {failed_ok})"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (key, data) in &kept {
        assert_eq!(sha256_hex(&get(&s3, "garbage", key).await?), sha256_hex(data), "{key}");
    }
    let open = s3.list_multipart_uploads().bucket("garbage").send().await?;
    assert!(open.uploads().is_empty(), "uploads still open: {:?}", open.uploads());
    let err = s3.get_object().bucket("garbage").key("deleted").send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    Ok(())
}

/// A PUT written by hand over TCP, so that its body can stop halfway and the gateway serving
/// it can die with the request open.
struct OpenPut {
    stream: tokio::net::TcpStream,
}

impl OpenPut {
    /// Sends the head of a presigned PUT of `len` bytes to gateway `g`.
    async fn start(cluster: &FaultCluster, g: usize, key: &str, len: usize) -> anyhow::Result<Self> {
        use tokio::io::AsyncWriteExt;
        let expiry = aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(300))?;
        let presigned = cluster.s3(g).put_object().bucket("leases").key(key).presigned(expiry).await?;
        let uri: http::Uri = presigned.uri().parse()?;
        let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let mut head = format!("PUT {target} HTTP/1.1\r\nhost: {authority}\r\ncontent-length: {len}\r\n");
        for (name, value) in presigned.headers().filter(|(n, _)| !n.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut stream = tokio::net::TcpStream::connect(&authority).await?;
        stream.write_all(head.as_bytes()).await?;
        Ok(Self { stream })
    }

    /// Sends more of the body.
    async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// The status line of the response.
    async fn status(mut self) -> anyhow::Result<String> {
        use tokio::io::AsyncReadExt;
        let mut response = Vec::new();
        let mut buffer = [0u8; 1024];
        while !response.windows(2).any(|w| w == b"\r\n") {
            let read = self.stream.read(&mut buffer).await?;
            anyhow::ensure!(read > 0, "the connection closed without a response");
            response.extend_from_slice(&buffer[..read]);
        }
        let text = String::from_utf8_lossy(&response);
        Ok(text.lines().next().unwrap_or_default().to_owned())
    }
}

/// (passes, orphans collected) of the garbage collectors, and each node's (chunks, bytes).
fn collector_view(cluster: &FaultCluster) -> anyhow::Result<CollectorView> {
    let status = cluster.admin_json(0, &["status"])?;
    let nodes = status["nodes"].as_array().cloned().unwrap_or_default();
    let sum = |field: &str| nodes.iter().map(|n| n["status"]["gc"][field].as_u64().unwrap_or(0)).sum::<u64>();
    let held = nodes
        .iter()
        .map(|n| (n["status"]["chunk_count"].as_u64().unwrap_or(0), n["status"]["used_bytes"].as_u64().unwrap_or(0)))
        .collect();
    Ok(((sum("passes"), sum("orphans_collected")), held))
}

type CollectorView = ((u64, u64), Vec<(u64, u64)>);

/// Polls [`collector_view`] until `done`.
fn poll(cluster: &FaultCluster, what: &str, done: impl Fn(&CollectorView) -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = collector_view(cluster)?;
        if done(&view) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{what}: {view:?}\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chunks_of_an_upload_whose_gateway_died_are_collected_and_live_uploads_keep_theirs() -> anyhow::Result<()> {
    const LEASE: Duration = Duration::from_secs(2);
    let mut env = crate::FAST_FAILURE_DETECTION.to_vec();
    env.extend([("CAIRN_GC_GRACE_SECS", "1"), ("CAIRN_GC_INTERVAL_MS", "300"), ("CAIRN_UPLOAD_LEASE_SECS", "2")]);
    let mut cluster = FaultCluster::start(3, 2, &env)?;
    let s3 = cluster.s3(0);
    s3.create_bucket().bucket("leases").send().await?;
    let len = 14 * MIB;

    // A body that stops halfway for several lease lengths: the gateway renews its lease, so
    // the collectors leave its chunks alone and the upload completes.
    let data = test_bytes(len, 21);
    let mut slow = OpenPut::start(&cluster, 0, "slow", len).await?;
    slow.send(&data[..9 * MIB]).await?;
    poll(&cluster, "the first chunks land", |(_, held)| held.iter().all(|&(chunks, _)| chunks >= 1))?;
    let ((passes, _), _) = collector_view(&cluster)?;
    let stalled_until = Instant::now() + 3 * LEASE;
    poll(&cluster, "collectors run while the body is stalled", |((p, _), _)| {
        Instant::now() > stalled_until && *p >= passes + 3 * 3
    })?;
    slow.send(&data[9 * MIB..]).await?;
    let status = slow.status().await?;
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(sha256_hex(&get(&s3, "leases", "slow").await?), sha256_hex(&data));

    // An upload whose gateway is killed halfway: once its lease runs out, its chunks go.
    let mut doomed = OpenPut::start(&cluster, 1, "doomed", len).await?;
    doomed.send(&test_bytes(9 * MIB, 22)[..]).await?;
    let kept = footprint(len);
    poll(&cluster, "the doomed upload's chunks land", |(_, held)| held.iter().any(|&(chunks, _)| chunks > kept.0))?;
    cluster.kill_gateway(1);
    poll(&cluster, "the doomed upload's chunks are collected", |((_, orphans), held)| {
        *orphans >= 1 && held.iter().all(|h| *h == kept)
    })?;
    assert_eq!(sha256_hex(&get(&s3, "leases", "slow").await?), sha256_hex(&data));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_killed_while_collectors_work_never_lose_what_objects_need() -> anyhow::Result<()> {
    const OBJECTS: usize = 48;
    let mut env = crate::FAST_FAILURE_DETECTION.to_vec();
    env.extend([("CAIRN_GC_GRACE_SECS", "1"), ("CAIRN_GC_INTERVAL_MS", "200")]);
    let mut cluster = DevCluster::start_with(3, &[], &env)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("garbage").send().await?;
    let len = |i: usize| if i.is_multiple_of(8) { 5 * MIB } else { 30_000 + i };
    // Every object is overwritten once, and some are deleted: the first versions are garbage.
    for i in 0..OBJECTS {
        put(&s3, "garbage", &format!("k{i:02}"), test_bytes(len(i), i as u64)).await?;
    }
    let held = |cluster: &DevCluster| -> anyhow::Result<Vec<(u64, u64)>> {
        let status = cluster.admin_json(&["status"])?;
        let nodes = status["nodes"].as_array().cloned().unwrap_or_default();
        Ok(nodes
            .iter()
            .map(|n| {
                (n["status"]["chunk_count"].as_u64().unwrap_or(0), n["status"]["used_bytes"].as_u64().unwrap_or(0))
            })
            .collect())
    };
    // Overwrites and deletes go on in batches while the collectors work on the earlier ones
    // (1 s grace, a pass every 200 ms); after each batch a node is killed and started again.
    let mut kept = Vec::new();
    let mut expected = (0, 0);
    for (batch, keys) in (0..OBJECTS).collect::<Vec<_>>().chunks(8).enumerate() {
        for &i in keys {
            let data = test_bytes(len(i) + 1, 1000 + i as u64);
            put(&s3, "garbage", &format!("k{i:02}"), data.clone()).await?;
            if i % 6 == 5 {
                s3.delete_object().bucket("garbage").key(format!("k{i:02}")).send().await?;
            } else {
                let (chunks, bytes) = footprint(data.len());
                expected = (expected.0 + chunks, expected.1 + bytes);
                kept.push((format!("k{i:02}"), data));
            }
        }
        let victim = batch % 3;
        cluster.kill_node(victim);
        cluster.restart_node(victim)?;
        crate::wait_for_state(&cluster, &cluster.info.nodes[victim].id.clone(), "healthy")?;
    }

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = held(&cluster)?;
        if now.len() == 3 && now.iter().all(|h| *h == expected) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "nodes hold {now:?}, expected {expected:?} each");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (key, data) in &kept {
        assert_eq!(sha256_hex(&get(&s3, "garbage", key).await?), sha256_hex(data), "{key}");
    }
    Ok(())
}
