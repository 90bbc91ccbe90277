//! Hand-off: once no layout move is in progress, data of partitions this node no longer holds
//! is pushed to the current replicas that lack it (rows keep the newer version, chunks are
//! written only where missing) and then deleted here. Pushing before deleting keeps writes
//! that reached this node late (from a gateway that had not seen the new layout yet).

use std::collections::HashSet;

use super::{AntiEntropy, PULL_PAGE_ROWS, Round, SyncError};
use crate::chunk_store::{LEAF_COUNT, LeafSummary, leaves_of_partition};
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
        for partition in (0..count).filter(|p| !mine.contains(p)) {
            let leaves = leaves_of_partition(partition, count);
            if LeafSummary::combine(&self.chunks.leaf_summaries(leaves.clone())).count == 0 {
                continue;
            }
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

    /// Pushes this node's rows under `prefix` to every owner, then deletes them here; false
    /// when an owner is down (nothing is deleted then).
    async fn hand_off_rows(&self, prefix: &[u8], owners: &[NodeInfo]) -> Result<bool, SyncError> {
        if self.meta.scan(prefix.to_vec(), None, 1).await?.is_empty() {
            return Ok(true);
        }
        if owners.iter().any(|n| self.peers.state(&n.node_id) == NodeState::Down) {
            return Ok(false);
        }
        let ours = self.meta.digest(prefix.to_vec()).await?;
        for owner in owners {
            if self.client.meta_digest(&owner.rpc_addr, prefix).await? == ours {
                continue;
            }
            let mut after: Option<Vec<u8>> = None;
            loop {
                let rows = self.meta.scan(prefix.to_vec(), after.clone(), PULL_PAGE_ROWS).await?;
                let Some(last) = rows.last() else { break };
                after = Some(last.key.clone());
                let full = rows.len() >= PULL_PAGE_ROWS;
                self.client.put_rows(&owner.rpc_addr, &rows).await?;
                if !full {
                    break;
                }
            }
        }
        let mut removed = 0;
        loop {
            let rows = self.meta.scan(prefix.to_vec(), None, PULL_PAGE_ROWS).await?;
            if rows.is_empty() {
                break;
            }
            let keys = rows.into_iter().map(|row| (row.key, row.timestamp)).collect();
            let gone = self.meta.remove_unchanged(keys).await?;
            removed += gone;
            if gone == 0 {
                // Rows written since the push: the next round pushes them first.
                return Ok(false);
            }
        }
        tracing::info!(rows = removed, "handed off metadata rows this node no longer holds");
        Ok(true)
    }

    /// Pushes this node's chunks in `leaves` to every owner lacking them, then deletes them
    /// here; false when an owner is down (nothing is deleted then).
    async fn hand_off_chunks(&self, leaves: std::ops::Range<usize>, owners: &[NodeInfo]) -> Result<bool, SyncError> {
        if owners.is_empty() || owners.iter().any(|n| self.peers.state(&n.node_id) == NodeState::Down) {
            return Ok(false);
        }
        let ours = self.chunks.leaf_summaries(leaves.clone());
        let mut moved = 0;
        for (leaf, summary) in leaves.zip(ours) {
            if summary.count == 0 {
                continue;
            }
            let ids = self.chunks.leaf_ids(leaf).await?;
            for owner in owners {
                let theirs: HashSet<_> = self.client.chunk_leaf(&owner.rpc_addr, leaf).await?.into_iter().collect();
                for id in ids.iter().filter(|id| !theirs.contains(id)) {
                    let (header, bytes) = match self.chunks.get_with_header(*id).await {
                        Ok(chunk) => chunk,
                        // A bad copy is not worth moving; the owners' own replicas count.
                        Err(e) => {
                            tracing::warn!(chunk = %id.to_hex(), error = %e, "not handing off an unreadable chunk");
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
                self.chunks.delete(id).await?;
                moved += 1;
            }
        }
        if moved > 0 {
            tracing::info!(chunks = moved, "handed off chunks this node no longer holds");
        }
        Ok(true)
    }
}
