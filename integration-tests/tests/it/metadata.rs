use cairn_integration_tests::DevCluster;
use cairn_storage_node::control::ClusterState;
use cairn_storage_node::hlc::Timestamp;
use cairn_storage_node::manifest::{index_shard, metadata_placement_key, object_key};
use cairn_storage_node::meta_store::Row;

use crate::{error_code, get, put};

/// A replica holding a row stamped in the future (another gateway's clock ahead of this one)
/// must not swallow a later acknowledged write: the gateway catches its clock up and writes again.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_behind_a_replica_clock_still_takes_effect() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("clock").send().await?;
    put(&s3, "clock", "k", b"old".to_vec()).await?;

    let nodes = cluster.node_client()?;
    let state: ClusterState = nodes
        .post_json(
            &cluster.info.nodes[0].rpc_addr,
            "/control/state",
            &serde_json::json!({"known_version": 0, "wait_ms": 0}),
        )
        .await?;
    let bucket = &state.buckets["clock"];
    let shard = index_shard("k", bucket.index_shards);
    let partition = state.layout.partition_of(&metadata_placement_key(bucket.bucket_id, shard));
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    let future_tombstone = Row {
        key: object_key(bucket.bucket_id, shard, "k"),
        timestamp: Timestamp { physical_ms: now_ms + 120_000, logical: 0, origin: 1 },
        tombstone: true,
        value: Vec::new(),
    };
    for node_id in state.layout.replicas(partition) {
        let applied = nodes.put_rows(&state.nodes[node_id].rpc_addr, std::slice::from_ref(&future_tombstone)).await?;
        assert_eq!(applied, vec![true]);
    }
    let err = s3.get_object().bucket("clock").key("k").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NoSuchKey"));

    put(&s3, "clock", "k", b"new".to_vec()).await?;
    assert_eq!(get(&s3, "clock", "k").await?, b"new");
    Ok(())
}

/// Unimplemented subresources are refused, never taken for the data operation of the same verb.
#[tokio::test(flavor = "multi_thread")]
async fn unknown_subresources_do_not_touch_data() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("subres").send().await?;
    put(&s3, "subres", "k", b"payload".to_vec()).await?;

    let tagging = aws_sdk_s3::types::Tagging::builder()
        .tag_set(aws_sdk_s3::types::Tag::builder().key("a").value("b").build()?)
        .build()?;
    // Bucket subresources Cairn lacks are not object listings or bucket creations.
    let err = s3.get_bucket_website().bucket("subres").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NotImplemented"));
    let err = s3.get_bucket_lifecycle_configuration().bucket("subres").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NotImplemented"));
    // Tagging the object is not overwriting it.
    s3.put_object_tagging().bucket("subres").key("k").tagging(tagging).send().await?;
    let err = s3.put_object_retention().bucket("subres").key("k").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NotImplemented"));
    let err = s3.delete_bucket_policy().bucket("subres").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NotImplemented"));
    // Encryption, object lock and other storage classes are refused, never pretended.
    use aws_sdk_s3::types::{ServerSideEncryption, StorageClass};
    let body = || aws_sdk_s3::primitives::ByteStream::from(b"x".to_vec());
    let err = s3
        .put_object()
        .bucket("subres")
        .key("k")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(body())
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NotImplemented"));
    let err = s3
        .put_object()
        .bucket("subres")
        .key("k")
        .storage_class(StorageClass::Glacier)
        .body(body())
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NotImplemented"));
    s3.put_object().bucket("subres").key("std").storage_class(StorageClass::Standard).body(body()).send().await?;
    // A wrong expected owner is refused; a version other than `null` does not exist.
    let err = s3.get_object().bucket("subres").key("k").expected_bucket_owner("someone-else").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("AccessDenied"));
    let err = s3.delete_object().bucket("subres").key("k").version_id("3HL4kqtJlcpXroDTDmJ").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NoSuchVersion"));
    assert_eq!(get(&s3, "subres", "k").await?, b"payload");
    s3.head_bucket().bucket("subres").send().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn object_tags_are_set_read_counted_copied_and_removed() -> anyhow::Result<()> {
    use aws_sdk_s3::types::{Tag, Tagging, TaggingDirective};
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("tags").send().await?;
    s3.put_object()
        .bucket("tags")
        .key("k")
        .tagging("project=cairn&team=storage%20core")
        .body(b"tagged".to_vec().into())
        .send()
        .await?;
    let tags = |out: &[Tag]| -> Vec<(String, String)> {
        out.iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()
    };
    let read = s3.get_object_tagging().bucket("tags").key("k").send().await?;
    assert_eq!(tags(read.tag_set()), vec![("project".into(), "cairn".into()), ("team".into(), "storage core".into())]);
    assert_eq!(s3.get_object().bucket("tags").key("k").send().await?.tag_count(), Some(2));

    let replaced = Tagging::builder().tag_set(Tag::builder().key("only").value("one").build()?).build()?;
    s3.put_object_tagging().bucket("tags").key("k").tagging(replaced).send().await?;
    let read = s3.get_object_tagging().bucket("tags").key("k").send().await?;
    assert_eq!(tags(read.tag_set()), vec![("only".into(), "one".into())]);
    assert_eq!(get(&s3, "tags", "k").await?, b"tagged");

    // Copies keep the tags unless told to replace them.
    s3.copy_object().bucket("tags").key("copy").copy_source("tags/k").send().await?;
    assert_eq!(s3.get_object_tagging().bucket("tags").key("copy").send().await?.tag_set().len(), 1);
    s3.copy_object()
        .bucket("tags")
        .key("retagged")
        .copy_source("tags/k")
        .tagging_directive(TaggingDirective::Replace)
        .tagging("a=1&b=2&c=3")
        .send()
        .await?;
    assert_eq!(s3.get_object_tagging().bucket("tags").key("retagged").send().await?.tag_set().len(), 3);

    // Eleven tags, or a repeated key, are refused.
    let eleven: String = (0..11).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join("&");
    let err =
        s3.put_object().bucket("tags").key("many").tagging(eleven).body(b"x".to_vec().into()).send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidTag"));
    let err = s3
        .put_object()
        .bucket("tags")
        .key("dup")
        .tagging("a=1&a=2")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidTag"));

    s3.delete_object_tagging().bucket("tags").key("k").send().await?;
    assert!(s3.get_object_tagging().bucket("tags").key("k").send().await?.tag_set().is_empty());
    assert_eq!(s3.get_object().bucket("tags").key("k").send().await?.tag_count(), None);
    Ok(())
}
