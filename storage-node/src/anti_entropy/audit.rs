//! The chunk audit: a part manifest can reach this node while the chunk write to it failed
//! (the write met its quorum elsewhere), so manifests applied by gateways are queued and their
//! chunks checked at the next round; the first round after a start checks every manifest.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{AntiEntropy, PULL_PAGE_ROWS, Round};
use crate::chunk_store::{ChunkError, ChunkId};
use crate::control::ClusterState;
use crate::manifest::{self, PartManifest, RowKind};
use crate::meta_store::Row;
use crate::pace::Pace;

/// Part manifests whose chunks this node must check it holds: a manifest row can arrive while
/// the chunk write to this node failed (the write met its quorum elsewhere). Rows applied by a
/// gateway are queued here and checked at the next round; past a bound, or after a restart,
/// the next round checks every manifest instead.
pub struct ChunkAudit {
    pending: std::sync::Mutex<Vec<Vec<u8>>>,
    sweep: AtomicBool,
}

/// Manifests queued for a chunk check before the next round checks them all instead.
const MAX_PENDING_AUDITS: usize = 100_000;

impl ChunkAudit {
    /// An audit that starts with a full sweep (the node may have stopped with checks pending).
    pub fn new() -> Arc<Self> {
        Arc::new(Self { pending: std::sync::Mutex::new(Vec::new()), sweep: AtomicBool::new(true) })
    }

    /// Queues the part manifests among `rows` (those just applied).
    pub fn note_applied(&self, rows: &[Row], applied: &[bool]) {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (row, _) in rows.iter().zip(applied).filter(|(row, applied)| **applied && is_manifest(row)) {
            if pending.len() >= MAX_PENDING_AUDITS {
                self.sweep.store(true, Ordering::Relaxed);
                pending.clear();
                return;
            }
            pending.push(row.key.clone());
        }
    }

    fn take(&self) -> (bool, Vec<Vec<u8>>) {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (self.sweep.swap(false, Ordering::Relaxed), std::mem::take(&mut *pending))
    }

    fn requeue(&self, keys: Vec<Vec<u8>>) {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(keys);
    }
}

fn is_manifest(row: &Row) -> bool {
    row.key.first() == Some(&(RowKind::PartManifest as u8)) && !row.tombstone
}

impl AntiEntropy {
    /// Checks that this node holds the chunks of the manifests queued since the last round (or,
    /// after a restart or an overflow, of every manifest it holds), fetching what it lacks.
    pub(super) async fn audit_chunks(&self, state: &ClusterState, round: &mut Round, pace: &mut Pace) {
        let (sweep, mut keys) = self.audit.take();
        if sweep {
            keys.clear();
            let mut after: Option<Vec<u8>> = None;
            loop {
                let prefix = vec![RowKind::PartManifest as u8];
                let page = match self.meta.scan(prefix, after.clone(), PULL_PAGE_ROWS).await {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::warn!(error = %e, "chunk audit could not scan the manifests");
                        self.audit.sweep.store(true, Ordering::Relaxed);
                        round.complete = false;
                        return;
                    }
                };
                let Some(last) = page.last() else { break };
                after = Some(last.key.clone());
                let full = page.len() >= PULL_PAGE_ROWS;
                keys.extend(page.into_iter().filter(is_manifest).map(|row| row.key));
                if !full {
                    break;
                }
            }
        }
        let mut retry = Vec::new();
        for key in keys {
            let row = match self.meta.get(key.clone()).await {
                Ok(Some(row)) if is_manifest(&row) => row,
                Ok(_) => continue,
                Err(_) => {
                    retry.push(key);
                    continue;
                }
            };
            if self.fetch_chunks(state, &row, round, pace).await > 0 {
                retry.push(key);
            }
        }
        if !retry.is_empty() {
            round.complete = false;
            self.audit.requeue(retry);
        }
    }

    /// Fetches the chunks of a part manifest that this node should hold and lacks (counted in
    /// `round`); returns how many could not be (no replica supplied a copy matching the
    /// manifest, or the local store failed): only that manifest then waits for the next round.
    pub(super) async fn fetch_chunks(
        &self,
        state: &ClusterState,
        row: &Row,
        round: &mut Round,
        pace: &mut Pace,
    ) -> usize {
        let Some((chunk_set, part)) = manifest::part_manifest_chunk_set(&row.key) else { return 0 };
        let Ok(part_manifest) = manifest::decode_record::<PartManifest>(&row.value) else {
            tracing::warn!("undecodable part manifest pulled by anti-entropy");
            return 0;
        };
        let mut missing = 0;
        let digests = part_manifest.chunk_sha256.as_bytes().chunks(64);
        for (index, expected) in digests.enumerate() {
            let id = ChunkId { chunk_set, part, index: index as u32 };
            let placement = id.placement_key();
            if !state.replica_nodes(&placement).iter().any(|n| n.node_id == self.node_id) {
                continue;
            }
            let holders = super::holders(state, &placement);
            if crate::gc::is_collected(&self.meta, id).await {
                continue;
            }
            match self.chunks.head(id).await {
                Ok(_) => continue,
                Err(ChunkError::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(chunk = %id.to_hex(), error = %e, "chunk audit could not read a local chunk");
                    missing += 1;
                    continue;
                }
            }
            let expected = <[u8; 32]>::try_from(hex::decode(expected).unwrap_or_default()).ok();
            if !self.copy_chunk(id, &holders, expected, round, pace).await {
                missing += 1;
            }
        }
        missing
    }
}
