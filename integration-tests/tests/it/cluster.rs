use bytes::Bytes;
use cairn_integration_tests::{DevCluster, process_alive, test_bytes};
use cairn_storage_node::chunk_store::{ChunkDigest, ChunkId};
use cairn_storage_node::rpc::WireErrorCode;
use cairn_storage_node::rpc::auth::ClusterSecret;
use cairn_storage_node::rpc::client::{ClientConfig, NodeClient, RpcError};

use crate::{get, put};

/// `cairn dev` stops every process it started on SIGTERM, and a second run on the same
/// directory keeps the data and the credentials.
#[tokio::test(flavor = "multi_thread")]
async fn dev_restart_keeps_data_and_credentials() -> anyhow::Result<()> {
    let mut cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("keep").send().await?;
    let data = test_bytes(5 * 1024 * 1024 + 17, 3);
    put(&s3, "keep", "k", data.clone()).await?;
    let first = cluster.info.clone();

    cluster.stop()?;
    let pids: Vec<u32> = first.nodes.iter().map(|n| n.pid).chain([first.gateway_pid]).collect();
    for pid in &pids {
        assert!(!process_alive(*pid), "process {pid} outlived cairn dev");
    }

    cluster.restart()?;
    let addrs =
        |info: &cairn_integration_tests::ClusterInfo| info.nodes.iter().map(|n| n.rpc_addr.clone()).collect::<Vec<_>>();
    assert_eq!(addrs(&cluster.info), addrs(&first), "node addresses are kept across runs");
    assert_eq!(cluster.info.access_key_id, first.access_key_id);
    assert_eq!(cluster.info.secret_access_key, first.secret_access_key);
    let s3 = cluster.s3();
    assert!(get(&s3, "keep", "k").await? == data);
    put(&s3, "keep", "k2", b"after restart".to_vec()).await?;
    assert_eq!(get(&s3, "keep", "k2").await?, b"after restart");
    Ok(())
}

/// The node RPC refuses a request without a valid MAC, and the refused write changed nothing.
#[tokio::test(flavor = "multi_thread")]
async fn node_rpc_requires_the_cluster_secret() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let addr = cluster.info.nodes[0].rpc_addr.clone();
    let data = Bytes::from_static(b"forged chunk");
    let digest = ChunkDigest { len: data.len() as u64, sha256: [0; 32], crc32c: crc32c(&data) };
    let id = ChunkId { chunk_set: uuid_from(7), part: 1, index: 0 };

    let forger = NodeClient::new(ClusterSecret::new("not the cluster secret"), &ClientConfig::default());
    let err = forger.put_chunk(&addr, id, &digest, data.clone()).await.unwrap_err();
    assert!(matches!(err, RpcError::Remote { code: WireErrorCode::Unauthorized, .. }), "{err}");
    let err = forger.status(&addr).await.unwrap_err();
    assert!(matches!(err, RpcError::Remote { code: WireErrorCode::Unauthorized, .. }), "{err}");

    let member = cluster.node_client()?;
    let err = member.head_chunk(&addr, id).await.unwrap_err();
    assert_eq!(err.code(), Some(WireErrorCode::NotFound), "the forged chunk must not exist");
    member.put_chunk(&addr, id, &digest, data).await?;
    assert_eq!(member.head_chunk(&addr, id).await?.len, digest.len);
    Ok(())
}

fn crc32c(data: &[u8]) -> u32 {
    // Bitwise CRC-32C (Castagnoli, reflected 0x82F63B78), independent of the code under test.
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

fn uuid_from(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}
