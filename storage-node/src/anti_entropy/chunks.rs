//! Chunk catch-up: per partition, the summaries of the chunk ids each replica holds are
//! compared, then those of the partition's fan-out leaves, then the ids of the leaves that
//! differ; chunks a peer holds and this node lacks are copied from it and proved.

use std::collections::{HashMap, HashSet};

use super::{AntiEntropy, Replicas, Round, SyncError};
use crate::chunk_store::{LEAF_COUNT, LeafSummary, leaves_of_partition};
use crate::control::{ClusterState, NodeInfo};
use crate::pace::Pace;

/// What a round's chunk catch-up has to compare, per partition this node holds.
pub(super) struct ChunkPlan {
    partitions: Vec<PartitionPlan>,
}

/// One partition's replicas, its leaves, and the reachable peers with their summaries.
struct PartitionPlan {
    partition: u32,
    replicas: Replicas,
    leaves: std::ops::Range<usize>,
    peers: Vec<(NodeInfo, LeafSummary)>,
}

impl AntiEntropy {
    /// Compares the chunk summaries of every partition this node holds with the other
    /// replicas', and shows what differs (a layout move's size) in node status before anything
    /// is pulled, so that progress counts down from the start of the round.
    pub(super) async fn plan_chunks(&self, state: &ClusterState) -> ChunkPlan {
        let count = state.layout.partition_count;
        if count == 0 || count as usize > LEAF_COUNT {
            return ChunkPlan { partitions: Vec::new() };
        }
        let mine: Vec<u32> = state.layout.partitions_of_node(&self.node_id).collect();
        let summaries = self.peer_summaries(state, &mine, count).await;
        let mut partitions = Vec::with_capacity(mine.len());
        let (mut differing, mut lacking) = (0u64, 0u64);
        for partition in mine {
            let replicas = Replicas::of(state, partition);
            let leaves = leaves_of_partition(partition, count);
            let ours = LeafSummary::combine(&self.chunks.leaf_summaries(leaves.clone()));
            let peers: Vec<(NodeInfo, LeafSummary)> = self
                .reachable_peers(&replicas)
                .into_iter()
                .filter_map(|peer| {
                    let theirs = summaries.get(&peer.node_id)?[partition as usize];
                    Some((peer, theirs))
                })
                .collect();
            if peers.iter().any(|(_, theirs)| *theirs != ours) {
                differing += 1;
                lacking += peers.iter().map(|(_, theirs)| theirs.bytes.saturating_sub(ours.bytes)).max().unwrap_or(0);
            }
            partitions.push(PartitionPlan { partition, replicas, leaves, peers });
        }
        self.progress(|r| {
            r.partitions_remaining = differing;
            r.bytes_remaining = lacking;
        });
        ChunkPlan { partitions }
    }

    /// Pulls, per planned partition, the chunks a peer holds and this node lacks (some may
    /// have arrived with metadata since the plan was made).
    pub(super) async fn sync_chunks(&self, plan: ChunkPlan, round: &mut Round, pace: &mut Pace) {
        for PartitionPlan { partition, replicas, leaves, peers } in plan.partitions {
            let ours = LeafSummary::combine(&self.chunks.leaf_summaries(leaves.clone()));
            let mut synced = Vec::new();
            let mut pulled = false;
            for (peer, theirs) in peers {
                if theirs == ours {
                    synced.push(peer.node_id);
                    continue;
                }
                pulled = true;
                match self.pull_partition(&peer, leaves.clone(), round, pace).await {
                    Ok(true) => synced.push(peer.node_id),
                    Ok(false) => round.incomplete(),
                    Err(e) => {
                        tracing::warn!(peer = %peer.node_id, partition, error = %e, "chunk anti-entropy failed");
                    }
                }
            }
            if !replicas.enough(&self.node_id, self.rebuilding(), &synced) {
                round.remaining += 1;
                round.incomplete();
            } else if pulled {
                self.progress(|r| r.partitions_remaining = r.partitions_remaining.saturating_sub(1));
            }
        }
    }

    /// Each reachable peer's chunk summary of every partition, asked once per round and of
    /// every peer at once (a peer that hangs costs one timeout, not one per peer); peers that
    /// did not answer are left out.
    async fn peer_summaries(
        &self,
        state: &ClusterState,
        mine: &[u32],
        count: u32,
    ) -> HashMap<String, Vec<LeafSummary>> {
        let mut peers: HashMap<String, NodeInfo> = HashMap::new();
        for &partition in mine {
            for peer in self.reachable_peers(&Replicas::of(state, partition)) {
                peers.entry(peer.node_id.clone()).or_insert(peer);
            }
        }
        let asks = peers.into_values().map(|peer| async move {
            let answer = self.client.chunk_partitions(&peer.rpc_addr, count).await;
            (peer, answer)
        });
        let mut summaries = HashMap::new();
        for (peer, answer) in futures_util::future::join_all(asks).await {
            match answer {
                Ok(all) if all.len() == count as usize => {
                    summaries.insert(peer.node_id, all);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(peer = %peer.node_id, error = %e, "could not read a peer's chunk summaries"),
            }
        }
        summaries
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
