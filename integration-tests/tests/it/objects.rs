use cairn_integration_tests::{DevCluster, test_bytes};

use crate::{error_code, get, put, sha256_hex};

const CHUNK: usize = 4 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn objects_round_trip_byte_for_byte() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("objects").send().await?;

    for (i, len) in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 100 * 1024 * 1024].into_iter().enumerate() {
        let data = test_bytes(len, i as u64);
        let key = format!("size/{len}");
        let etag = put(&s3, "objects", &key, data.clone()).await?;
        let expected_etag = format!("\"{}\"", md5_hex(&data));
        assert_eq!(etag, expected_etag, "ETag of {len} bytes");
        let back = get(&s3, "objects", &key).await?;
        assert_eq!(back.len(), len);
        assert!(back == data, "{len} bytes differ: {} vs {}", sha256_hex(&back), sha256_hex(&data));
    }

    // Replication factor 3 on 3 nodes: every node holds a full replica of every chunk.
    let total: u64 = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 100 * 1024 * 1024].iter().map(|&n| n as u64).sum();
    let chunks: u64 =
        [0usize, 1, CHUNK - 1, CHUNK, CHUNK + 1, 100 * 1024 * 1024].iter().map(|n| n.div_ceil(CHUNK) as u64).sum();
    let nodes = cluster.node_client()?;
    for node in &cluster.info.nodes {
        // The replica past the quorum may still be receiving its last chunks.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            let status = nodes.status(&node.rpc_addr).await?;
            if status.chunk_count >= chunks || std::time::Instant::now() > deadline {
                break status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert_eq!(status.node_id, node.id);
        assert_eq!(status.chunk_count, chunks, "{} chunk count", node.id);
        assert!(status.used_bytes >= total, "{} holds {} bytes of {total}", node.id, status.used_bytes);
        assert!(status.capacity_bytes >= status.free_bytes && status.free_bytes > 0);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn ranges_metadata_and_deletes() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("ranges").send().await?;
    let len = 3 * CHUNK + 12_345;
    let data = test_bytes(len, 99);
    s3.put_object()
        .bucket("ranges")
        .key("obj")
        .body(data.clone().into())
        .content_type("text/x-cairn")
        .cache_control("max-age=60")
        .content_disposition("attachment; filename=\"r.bin\"")
        .content_language("de-CH")
        .expires(aws_sdk_s3::primitives::DateTime::from_secs(1_900_000_000))
        .metadata("color", "blue")
        .metadata("shape", "round")
        .send()
        .await?;

    let cases: Vec<(String, usize, usize)> = vec![
        (format!("bytes={}-{}", CHUNK - 10, CHUNK + 9), CHUNK - 10, CHUNK + 10),
        (format!("bytes={}-{}", 1, 3 * CHUNK), 1, 3 * CHUNK + 1),
        (format!("bytes={}-", 2 * CHUNK + 5), 2 * CHUNK + 5, len),
        ("bytes=-100".to_owned(), len - 100, len),
        ("bytes=0-0".to_owned(), 0, 1),
        (format!("bytes={}-{}", len - 1, len + 1000), len - 1, len),
    ];
    for (range, start, end) in cases {
        let out = s3.get_object().bucket("ranges").key("obj").range(&range).send().await?;
        assert_eq!(out.content_range(), Some(format!("bytes {start}-{}/{len}", end - 1).as_str()), "{range}");
        let body = out.body.collect().await?.into_bytes();
        assert!(body[..] == data[start..end], "range {range} returned wrong bytes");
    }
    let err = s3.get_object().bucket("ranges").key("obj").range(format!("bytes={len}-")).send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidRange"));

    let head = s3.head_object().bucket("ranges").key("obj").send().await?;
    assert_eq!(head.content_length(), Some(len as i64));
    assert_eq!(head.content_type(), Some("text/x-cairn"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(head.content_disposition(), Some("attachment; filename=\"r.bin\""));
    assert_eq!(head.content_language(), Some("de-CH"));
    assert_eq!(head.expires_string(), Some("Sun, 17 Mar 2030 17:46:40 GMT"));
    let meta = head.metadata().cloned().unwrap_or_default();
    assert_eq!(meta.get("color").map(String::as_str), Some("blue"));
    assert_eq!(meta.get("shape").map(String::as_str), Some("round"));
    assert!(head.last_modified().is_some());

    s3.delete_object().bucket("ranges").key("obj").send().await?;
    let err = s3.get_object().bucket("ranges").key("obj").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NoSuchKey"));
    let err = s3.head_object().bucket("ranges").key("obj").send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    // Deleting a missing key is not an error in S3.
    s3.delete_object().bucket("ranges").key("never-there").send().await?;

    // User metadata is limited to 2 KiB of names and values.
    let err = s3
        .put_object()
        .bucket("ranges")
        .key("heavy")
        .metadata("big", "v".repeat(2048))
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("MetadataTooLarge"));
    s3.put_object()
        .bucket("ranges")
        .key("light")
        .metadata("big", "v".repeat(2000))
        .body(b"x".to_vec().into())
        .send()
        .await?;
    Ok(())
}

fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// A body the SDK streams from a file goes out as `aws-chunked` with a trailing CRC32
/// (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`), even over plain HTTP.
#[tokio::test(flavor = "multi_thread")]
async fn streamed_file_bodies_round_trip() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("streams").send().await?;
    let data = test_bytes(2 * CHUNK + 12_345, 7);
    let path = cluster.dir().join("upload.bin");
    std::fs::write(&path, &data)?;
    let body = aws_sdk_s3::primitives::ByteStream::from_path(&path).await?;
    s3.put_object().bucket("streams").key("file").body(body).send().await?;
    assert!(get(&s3, "streams", "file").await? == data);
    Ok(())
}
