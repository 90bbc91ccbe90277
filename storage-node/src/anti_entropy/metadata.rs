//! Metadata catch-up: per bucket index shard and row kind, digests compared with each replica
//! peer, and the peer's rows pulled where they differ (newest wins).

use super::{APPLY_BATCH_BYTES, AntiEntropy, PULL_PAGE_ROWS, Round, SyncError};
use crate::control::{ClusterState, NodeInfo};
use crate::manifest::{self, RowKind};
use crate::meta_store::{MetaError, Row, RowsDigest};
use crate::pace::Pace;

impl AntiEntropy {
    /// Syncs every shard whose metadata partition this node holds with the other replicas (of
    /// both layouts while a move is in progress).
    pub(super) async fn sync_metadata(&self, state: &ClusterState, round: &mut Round, pace: &mut Pace) {
        for bucket in state.buckets.values() {
            for shard in 0..bucket.index_shards {
                let placement = manifest::metadata_placement_key(bucket.bucket_id, shard);
                let replicas = super::Replicas::of(state, state.layout.partition_of(&placement));
                if !replicas.holds(&self.node_id) {
                    continue;
                }
                // Our digests, once per shard rather than once per peer; pulling from one peer
                // can leave them stale for the next, which only costs a redundant pull.
                let ours = match self.shard_digests(bucket.bucket_id, shard).await {
                    Ok(ours) => ours,
                    Err(e) => {
                        tracing::warn!(bucket = %bucket.name, shard, error = %e, "anti-entropy could not digest a shard");
                        round.incomplete();
                        continue;
                    }
                };
                let mut synced = Vec::new();
                for peer in self.reachable_peers(&replicas) {
                    match self.sync_shard(state, &peer, &ours, round, pace).await {
                        Ok(()) => synced.push(peer.node_id),
                        Err(e) => {
                            tracing::warn!(peer = %peer.node_id, bucket = %bucket.name, shard, error = %e, "anti-entropy failed");
                        }
                    }
                }
                if !replicas.enough(&self.node_id, self.rebuilding(), &synced) {
                    round.incomplete();
                }
            }
        }
    }

    /// This node's digest of each row kind's prefix of one shard.
    async fn shard_digests(&self, bucket_id: uuid::Uuid, shard: u16) -> Result<Vec<(Vec<u8>, RowsDigest)>, MetaError> {
        let mut digests = Vec::new();
        for prefix in manifest::shard_prefixes(bucket_id, shard) {
            let digest = self.meta.digest(prefix.clone()).await?;
            digests.push((prefix, digest));
        }
        Ok(digests)
    }

    /// Compares one shard with one peer and pulls what differs.
    async fn sync_shard(
        &self,
        state: &ClusterState,
        peer: &NodeInfo,
        ours: &[(Vec<u8>, RowsDigest)],
        round: &mut Round,
        pace: &mut Pace,
    ) -> Result<(), SyncError> {
        for (prefix, ours) in ours {
            let theirs = self.client.meta_digest(&peer.rpc_addr, prefix).await?;
            if *ours == theirs {
                continue;
            }
            let mut after: Option<Vec<u8>> = None;
            loop {
                let rows = self.client.scan_rows(&peer.rpc_addr, prefix, after.as_deref(), PULL_PAGE_ROWS).await?;
                let Some(last) = rows.last() else { break };
                after = Some(last.key.clone());
                let full_page = rows.len() >= PULL_PAGE_ROWS;
                // A part manifest lands only once its chunks are here, so a chunk that could
                // not be fetched is tried again next round.
                let mut ready = Vec::with_capacity(rows.len());
                for row in rows {
                    let is_manifest = row.key.first() == Some(&(RowKind::PartManifest as u8)) && !row.tombstone;
                    if is_manifest
                        && self.meta.get(row.key.clone()).await?.is_none_or(|ours| ours.timestamp < row.timestamp)
                        && self.fetch_chunks(state, &row, round, pace).await > 0
                    {
                        round.complete = false;
                        continue;
                    }
                    ready.push(row);
                }
                let applied = self.apply(ready).await?;
                round.rows += applied;
                self.progress(|r| r.rows_pulled += applied as u64);
                if !full_page {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Writes the rows that are newer than ours, in batches; returns how many were.
    async fn apply(&self, rows: Vec<Row>) -> Result<usize, SyncError> {
        let mut applied = 0;
        let mut batch: Vec<Row> = Vec::new();
        let mut batch_bytes = 0;
        let mut rows = rows.into_iter().peekable();
        while let Some(row) = rows.next() {
            batch_bytes += row.stored_bytes();
            batch.push(row);
            let next_fits = rows.peek().is_some_and(|next| batch_bytes + next.stored_bytes() <= APPLY_BATCH_BYTES);
            if !next_fits {
                let flags = self.meta.put_if_newer(std::mem::take(&mut batch)).await?;
                applied += flags.iter().filter(|&&f| f).count();
                batch_bytes = 0;
            }
        }
        Ok(applied)
    }
}
