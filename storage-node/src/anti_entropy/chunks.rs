//! Chunk catch-up: per partition, the summaries of the chunk ids each replica holds are
//! compared, then those of the partition's fan-out leaves, then the ids of the leaves that
//! differ; chunks a peer holds and this node lacks are copied from it and proved.

use std::collections::{HashMap, HashSet};

use super::{AntiEntropy, Replicas, Round, SyncError};
use crate::chunk_store::{LEAF_COUNT, LeafSummary, leaves_of_partition};
use crate::control::{ClusterState, NodeInfo};
use crate::pace::Pace;

impl AntiEntropy {
    /// Syncs the chunks of every partition this node holds with the other replicas.
    pub(super) async fn sync_chunks(&self, state: &ClusterState, round: &mut Round, pace: &mut Pace) {
        let count = state.layout.partition_count;
        if count == 0 || count as usize > LEAF_COUNT {
            return;
        }
        let mine: Vec<u32> = state.layout.partitions_of_node(&self.node_id).collect();
        // Each peer's summary of every partition, asked once per round.
        let mut summaries: HashMap<String, Option<Vec<LeafSummary>>> = HashMap::new();
        for partition in mine {
            let replicas = Replicas::of(state, partition);
            let leaves = leaves_of_partition(partition, count);
            let ours = LeafSummary::combine(&self.chunks.leaf_summaries(leaves.clone()));
            let mut synced = Vec::new();
            for peer in self.reachable_peers(&replicas) {
                if !summaries.contains_key(&peer.node_id) {
                    let answer = match self.client.chunk_partitions(&peer.rpc_addr, count).await {
                        Ok(all) if all.len() == count as usize => Some(all),
                        Ok(_) => None,
                        Err(e) => {
                            tracing::warn!(peer = %peer.node_id, error = %e, "could not read a peer's chunk summaries");
                            None
                        }
                    };
                    summaries.insert(peer.node_id.clone(), answer);
                }
                let Some(theirs) = summaries.get(&peer.node_id).and_then(|s| s.as_ref()) else { continue };
                let theirs = theirs[partition as usize];
                if theirs == ours {
                    synced.push(peer.node_id.clone());
                    continue;
                }
                round.bytes_remaining += theirs.bytes.saturating_sub(ours.bytes);
                match self.pull_partition(&peer, leaves.clone(), round, pace).await {
                    Ok(true) => synced.push(peer.node_id.clone()),
                    Ok(false) => round.incomplete(),
                    Err(e) => {
                        tracing::warn!(peer = %peer.node_id, partition, error = %e, "chunk anti-entropy failed");
                    }
                }
            }
            if !replicas.enough(&self.node_id, self.rebuilding(), &synced) {
                round.remaining += 1;
                round.incomplete();
            }
        }
    }

    /// Copies the chunks of `leaves` that `peer` holds and this node lacks; true when every
    /// one was copied.
    async fn pull_partition(
        &self,
        peer: &NodeInfo,
        leaves: std::ops::Range<usize>,
        round: &mut Round,
        pace: &mut Pace,
    ) -> Result<bool, SyncError> {
        let theirs = self.client.chunk_leaves(&peer.rpc_addr, leaves.clone()).await?;
        let ours = self.chunks.leaf_summaries(leaves.clone());
        let mut complete = true;
        for ((leaf, theirs), ours) in leaves.zip(theirs).zip(ours) {
            if theirs == ours || theirs.count == 0 {
                continue;
            }
            let held: HashSet<_> = self.chunks.leaf_ids(leaf).await?.into_iter().collect();
            for id in self.client.chunk_leaf(&peer.rpc_addr, leaf).await? {
                if held.contains(&id) || crate::gc::is_collected(&self.meta, id).await {
                    continue;
                }
                if !self.copy_chunk(id, std::slice::from_ref(peer), None, round, pace).await {
                    complete = false;
                }
            }
        }
        Ok(complete)
    }
}
