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
    let err = s3.put_object_tagging().bucket("subres").key("k").tagging(tagging).send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NotImplemented"));
    let err = s3.delete_object_tagging().bucket("subres").key("k").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NotImplemented"));
    let err = s3.delete_bucket_policy().bucket("subres").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NotImplemented"));
    assert_eq!(get(&s3, "subres", "k").await?, b"payload");
    s3.head_bucket().bucket("subres").send().await?;
    Ok(())
}
