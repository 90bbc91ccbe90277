//! Hand-off: once no layout move is in progress, data of partitions this node no longer holds
//! is pushed to the current replicas that lack it (rows keep the newer version, chunks are
//! written only where missing) and then deleted here. Pushing before deleting keeps writes
//! that reached this node late (from a gateway that had not seen the new layout yet).

use std::collections::HashSet;

use super::{AntiEntropy, PULL_PAGE_ROWS, Round, SyncError};
use crate::chunk_store::{ChunkId, LEAF_COUNT, leaves_of_partition};
use crate::control::{ClusterState, NodeInfo};
use crate::failure_detector::NodeState;
use crate::manifest;

impl AntiEntropy {
    /// Hands off every shard and partition this node holds data of but no replica of.
    pub(super) async fn hand_off(&self, state: &ClusterState, round: &mut Round) {
        for bucket in state.buckets.values() {
            for shard in 0..bucket.index_shards {
                let placement = manifest::metadata_placement_key(bucket.bucket_id, shard);
                let owners = state.replica_nodes(&placement);
                if owners.is_empty() || owners.iter().any(|n| n.node_id == self.node_id) {
                    continue;
                }
                for prefix in manifest::shard_prefixes(bucket.bucket_id, shard) {
                    match self.hand_off_rows(&prefix, &owners).await {
                        Ok(true) => {}
                        Ok(false) => round.handoff_pending += 1,
                        Err(e) => {
                            round.handoff_pending += 1;
                            tracing::warn!(bucket = %bucket.name, shard, error = %e, "metadata hand-off failed");
                        }
                    }
                }
            }
        }
        let count = state.layout.partition_count;
        if count == 0 || count as usize > LEAF_COUNT || state.layout.nodes.is_empty() {
            return;
        }
        let mine: HashSet<u32> = state.layout.partitions_of_node(&self.node_id).collect();
        let held = self.chunks.partition_summaries(count);
        for partition in (0..count).filter(|p| !mine.contains(p) && held[*p as usize].count > 0) {
            let leaves = leaves_of_partition(partition, count);
            let owners = state.partition_nodes(partition);
            match self.hand_off_chunks(leaves, &owners).await {
                Ok(true) => {}
                Ok(false) => round.handoff_pending += 1,
                Err(e) => {
                    round.handoff_pending += 1;
                    tracing::warn!(partition, error = %e, "chunk hand-off failed");
                }
            }
        }
    }

    /// Pushes this node's rows under `prefix` to every owner, then deletes exactly the rows
    /// pushed (a row written since stays for the next round); false when an owner is down
    /// (nothing is deleted then).
    async fn hand_off_rows(&self, prefix: &[u8], owners: &[NodeInfo]) -> Result<bool, SyncError> {
        if self.meta.scan(prefix.to_vec(), None, 1).await?.is_empty() {
            return Ok(true);
        }
        if owners.iter().any(|n| self.peers.state(&n.node_id) == NodeState::Down) {
            return Ok(false);
        }
        let rows = self.meta.scan_all(prefix.to_vec()).await?;
        for owner in owners {
            for page in rows.chunks(PULL_PAGE_ROWS) {
                self.client.put_rows(&owner.rpc_addr, page).await?;
            }
        }
        let pushed: Vec<_> = rows.into_iter().map(|row| (row.key, row.timestamp)).collect();
        let total = pushed.len();
        let removed = self.meta.remove_unchanged(pushed).await?;
        tracing::info!(rows = removed, "handed off metadata rows this node no longer holds");
        Ok(removed == total)
    }

    /// Pushes this node's chunks in `leaves` to every owner lacking them, then deletes them
    /// here; false when an owner is down (nothing is deleted then).
    async fn hand_off_chunks(&self, leaves: std::ops::Range<usize>, owners: &[NodeInfo]) -> Result<bool, SyncError> {
        if owners.is_empty() || owners.iter().any(|n| self.peers.state(&n.node_id) == NodeState::Down) {
            return Ok(false);
        }
        let ours = self.chunks.leaf_summaries(leaves.clone());
        let (mut moved, mut kept) = (0, 0);
        for (leaf, summary) in leaves.zip(ours) {
            if summary.count == 0 {
                continue;
            }
            let ids = self.chunks.leaf_ids(leaf).await?;
            // A chunk leaves only once every owner has it (or collected it as garbage).
            let mut everywhere: HashSet<ChunkId> = ids.iter().copied().collect();
            for owner in owners {
                let theirs: HashSet<_> = self.client.chunk_leaf(&owner.rpc_addr, leaf).await?.into_iter().collect();
                for id in ids.iter().filter(|id| !theirs.contains(id)) {
                    let (header, bytes) = match self.chunks.get_with_header(*id).await {
                        Ok(chunk) => chunk,
                        Err(e) => {
                            // Kept here: a bad copy goes through the scrubber and repair.
                            tracing::warn!(chunk = %id.to_hex(), error = %e, "could not hand off a chunk");
                            everywhere.remove(id);
                            continue;
                        }
                    };
                    match self.client.put_chunk(&owner.rpc_addr, *id, &header.digest(), bytes).await {
                        Ok(()) => {}
                        // Garbage the owner already collected: nothing to keep.
                        Err(e) if e.code() == Some(crate::rpc::WireErrorCode::Collected) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            for id in ids {
                if everywhere.contains(&id) {
                    self.chunks.delete(id).await?;
                    moved += 1;
                } else {
                    kept += 1;
                }
            }
        }
        if moved > 0 {
            tracing::info!(chunks = moved, "handed off chunks this node no longer holds");
        }
        Ok(kept == 0)
    }
}
