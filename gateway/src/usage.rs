//! Bucket usage: object count and bytes, summed from the running totals each bucket index
//! shard keeps with its rows on the storage nodes (`manifest::object_usage`), so reading it
//! costs one small request per node, never a scan.

use std::collections::{BTreeMap, HashMap};

use cairn_storage_node::control::{BucketInfo, ClusterState, NodeInfo};
use cairn_storage_node::manifest::{metadata_placement_key, usage_group};
use serde::{Deserialize, Serialize};

use crate::replication::Replication;
use crate::timefmt::now_ms;

/// A bucket's usage as its index shards count it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketUsage {
    /// Objects (current versions; delete markers and multipart uploads in progress do not count).
    pub objects: u64,
    /// Bytes of those objects.
    pub bytes: u64,
    /// When the totals were read, Unix milliseconds.
    pub computed_ms: u64,
    /// False when some index shard had no replica answering: the figures are then a floor.
    pub complete: bool,
}

/// One index shard's total to read, and the replicas that may answer for it.
struct ShardQuery {
    bucket: String,
    group: Vec<u8>,
    candidates: Vec<NodeInfo>,
}

/// The usage of each of `buckets`, by name. Each shard is asked of one replica (the previous
/// layout's during a move: they hold everything until it ends), the next one when it fails.
pub async fn bucket_usage(
    replication: &Replication,
    state: &ClusterState,
    buckets: &[BucketInfo],
) -> BTreeMap<String, BucketUsage> {
    let mut usage: BTreeMap<String, BucketUsage> =
        buckets.iter().map(|b| (b.name.clone(), BucketUsage { complete: true, ..BucketUsage::default() })).collect();
    let mut pending: Vec<ShardQuery> = Vec::new();
    for bucket in buckets {
        for shard in 0..bucket.index_shards.max(1) {
            let partition = state.layout.partition_of(&metadata_placement_key(bucket.bucket_id, shard));
            let replicas =
                state.previous_partition_nodes(partition).unwrap_or_else(|| state.partition_nodes(partition));
            pending.push(ShardQuery {
                bucket: bucket.name.clone(),
                group: usage_group(bucket.bucket_id, shard),
                candidates: replication.detector().read_order(replicas),
            });
        }
    }
    let client = replication.client();
    while !pending.is_empty() {
        // Every shard still unanswered goes to its next candidate, grouped into one request
        // per node.
        let mut by_node: HashMap<String, (String, Vec<ShardQuery>)> = HashMap::new();
        for mut query in pending.drain(..) {
            if query.candidates.is_empty() {
                if let Some(u) = usage.get_mut(&query.bucket) {
                    u.complete = false;
                }
                continue;
            }
            let node = query.candidates.remove(0);
            by_node.entry(node.node_id).or_insert_with(|| (node.rpc_addr, Vec::new())).1.push(query);
        }
        let asks = by_node.into_values().map(|(addr, queries)| async move {
            let groups: Vec<Vec<u8>> = queries.iter().map(|q| q.group.clone()).collect();
            (client.row_totals(&addr, &groups).await, queries)
        });
        for (answer, queries) in futures_util::future::join_all(asks).await {
            match answer {
                Ok(totals) => {
                    for (query, total) in queries.iter().zip(totals) {
                        if let Some(u) = usage.get_mut(&query.bucket) {
                            u.objects += total.rows;
                            u.bytes += total.bytes;
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "a replica did not answer for bucket usage");
                    pending.extend(queries);
                }
            }
        }
    }
    let computed_ms = now_ms();
    for u in usage.values_mut() {
        u.computed_ms = computed_ms;
    }
    usage
}
