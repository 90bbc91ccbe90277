//! Anti-entropy: how a node catches up on writes it missed while it was down or cut off.
//!
//! Periodically, and at once when a peer comes back, the node walks every bucket index shard
//! whose metadata partition it holds and, for each other replica it can reach, compares the
//! digest of each row kind's prefix with the peer's. Where they differ it pulls the peer's rows
//! and keeps the newer of each (last-writer-wins, as every write does). A part manifest that
//! arrives this way brings the chunks it lists: those this node should hold and lacks are read
//! from the peer, checked against the manifest's SHA-256 and stored. Every node pulls; none
//! pushes, so two replicas converge once both have run a round.
//!
//! A manifest can also reach this node while the chunk write to it failed (the write met its
//! quorum on other replicas): manifests applied by gateways are queued for a chunk check at the
//! next round, and the first round after a start checks every manifest the node holds.
//!
//! From start until its first complete round (every shard compared with enough replicas that,
//! with this node, they are a majority of its replicas), and again after a peer returns until
//! the next complete round, the node reports itself `recovering`: coordinators then read from it
//! only when no other replica answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::chunk_store::{ChunkError, ChunkId, ChunkStore};
use crate::control::{ClusterState, NodeInfo};
use crate::failure_detector::{FailureDetector, NodeState};
use crate::manifest::{self, PartManifest, RowKind};
use crate::meta_store::{MetaError, MetaStore, Row, RowsDigest};
use crate::repair;
use crate::rpc::client::{NodeClient, RpcError};
use crate::rpc::server::DataPlane;

/// Default time between two anti-entropy rounds.
pub const DEFAULT_ANTI_ENTROPY_INTERVAL_MS: u64 = 30_000;
/// Rows pulled per page.
const PULL_PAGE_ROWS: usize = 256;
/// Bytes of pulled rows applied in one metadata write.
const APPLY_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Why one shard could not be compared or pulled.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// What one round did.
#[derive(Debug, Default)]
struct Round {
    /// Rows newer than ours that were applied.
    rows: usize,
    /// Chunks fetched.
    chunks: usize,
    /// Whether every shard was compared with every replica.
    complete: bool,
}

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

/// A node's anti-entropy worker.
pub struct AntiEntropy {
    node_id: String,
    meta: MetaStore,
    chunks: ChunkStore,
    client: NodeClient,
    state: watch::Receiver<Arc<ClusterState>>,
    peers: Arc<FailureDetector>,
    recovering: Arc<AtomicBool>,
    audit: Arc<ChunkAudit>,
    wake: Notify,
}

impl AntiEntropy {
    /// A worker over the node's stores; it sets the `recovering` flag the node's status
    /// reports and drains its chunk audit.
    pub fn new(
        data: &DataPlane,
        client: NodeClient,
        state: watch::Receiver<Arc<ClusterState>>,
        peers: Arc<FailureDetector>,
    ) -> Arc<Self> {
        data.recovering.store(true, Ordering::Relaxed);
        Arc::new(Self {
            node_id: data.node_id.clone(),
            meta: data.meta.clone(),
            chunks: data.chunks.clone(),
            client,
            state,
            peers,
            recovering: data.recovering.clone(),
            audit: data.audit.clone(),
            wake: Notify::new(),
        })
    }

    /// Runs rounds forever: every `interval`, and when a peer comes back.
    pub async fn run(self: Arc<Self>, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let watcher = self.clone();
        tokio::spawn(async move { watcher.watch_peers(interval).await });
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = self.wake.notified() => {}
            }
            let round = self.round().await;
            if round.rows > 0 || round.chunks > 0 {
                tracing::info!(rows = round.rows, chunks = round.chunks, "anti-entropy pulled missed writes");
            }
            if round.complete && self.recovering.swap(false, Ordering::Relaxed) {
                tracing::info!("caught up with every replica peer");
            }
        }
    }

    /// Wakes a round, and reports `recovering`, when a peer that was down answers again.
    async fn watch_peers(self: Arc<Self>, interval: Duration) {
        let mut down: Vec<String> = Vec::new();
        let mut ticks = tokio::time::interval(self.peers.config().probe_interval.min(interval));
        loop {
            ticks.tick().await;
            let snapshot = self.peers.snapshot();
            let returned =
                down.iter().any(|id| snapshot.iter().any(|n| &n.node_id == id && n.state != NodeState::Down));
            down = snapshot.iter().filter(|n| n.state == NodeState::Down).map(|n| n.node_id.clone()).collect();
            if returned {
                // Writes may have gone to one side only while the peer was away.
                self.recovering.store(true, Ordering::Relaxed);
                self.wake.notify_one();
            }
        }
    }

    async fn round(&self) -> Round {
        let state = self.state.borrow().clone();
        let mut round = Round { complete: true, ..Round::default() };
        self.audit_chunks(&state, &mut round).await;
        for bucket in state.buckets.values() {
            for shard in 0..bucket.index_shards {
                let placement = manifest::metadata_placement_key(bucket.bucket_id, shard);
                let replicas = state.replica_nodes(&placement);
                if !replicas.iter().any(|n| n.node_id == self.node_id) {
                    continue;
                }
                // Caught up once this node and the peers it synced with are a majority: every
                // acknowledged QUORUM or ALL write is on one of them.
                let mut synced = 1;
                // Our digests, once per shard rather than once per peer; pulling from one peer
                // can leave them stale for the next, which only costs a redundant pull.
                let ours = match self.shard_digests(bucket.bucket_id, shard).await {
                    Ok(ours) => ours,
                    Err(e) => {
                        tracing::warn!(bucket = %bucket.name, shard, error = %e, "anti-entropy could not digest a shard");
                        round.complete = false;
                        continue;
                    }
                };
                for peer in replicas.iter().filter(|n| n.node_id != self.node_id) {
                    if self.peers.state(&peer.node_id) == NodeState::Down {
                        continue;
                    }
                    match self.sync_shard(&state, peer, &ours, &mut round).await {
                        Ok(()) => synced += 1,
                        Err(e) => {
                            tracing::warn!(peer = %peer.node_id, bucket = %bucket.name, shard, error = %e, "anti-entropy failed");
                        }
                    }
                }
                if synced < replicas.len() / 2 + 1 {
                    round.complete = false;
                }
            }
        }
        round
    }

    /// Compares one shard with one peer and pulls what differs.
    /// This node's digest of each row kind's prefix of one shard.
    async fn shard_digests(&self, bucket_id: uuid::Uuid, shard: u16) -> Result<Vec<(Vec<u8>, RowsDigest)>, MetaError> {
        let mut digests = Vec::new();
        for prefix in manifest::shard_prefixes(bucket_id, shard) {
            let digest = self.meta.digest(prefix.clone()).await?;
            digests.push((prefix, digest));
        }
        Ok(digests)
    }

    async fn sync_shard(
        &self,
        state: &ClusterState,
        peer: &NodeInfo,
        ours: &[(Vec<u8>, RowsDigest)],
        round: &mut Round,
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
                    {
                        let (fetched, missing) = self.fetch_chunks(state, &row).await;
                        round.chunks += fetched;
                        if missing > 0 {
                            round.complete = false;
                            continue;
                        }
                    }
                    ready.push(row);
                }
                round.rows += self.apply(ready).await?;
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

    /// Checks that this node holds the chunks of the manifests queued since the last round (or,
    /// after a restart or an overflow, of every manifest it holds), fetching what it lacks.
    async fn audit_chunks(&self, state: &ClusterState, round: &mut Round) {
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
            let (fetched, missing) = self.fetch_chunks(state, &row).await;
            round.chunks += fetched;
            if missing > 0 {
                retry.push(key);
            }
        }
        if !retry.is_empty() {
            round.complete = false;
            self.audit.requeue(retry);
        }
    }

    /// Fetches the chunks of a part manifest that this node should hold and lacks; returns how
    /// many were fetched and how many could not be (no replica supplied a copy matching the
    /// manifest, or the local store failed): only that manifest then waits for the next round.
    async fn fetch_chunks(&self, state: &ClusterState, row: &Row) -> (usize, usize) {
        let Some((chunk_set, part)) = manifest::part_manifest_chunk_set(&row.key) else { return (0, 0) };
        let Ok(part_manifest) = manifest::decode_record::<PartManifest>(&row.value) else {
            tracing::warn!("undecodable part manifest pulled by anti-entropy");
            return (0, 0);
        };
        let (mut fetched, mut missing) = (0, 0);
        let digests = part_manifest.chunk_sha256.as_bytes().chunks(64);
        for (index, expected) in digests.enumerate() {
            let id = ChunkId { chunk_set, part, index: index as u32 };
            let holders = state.replica_nodes(&id.placement_key());
            if !holders.iter().any(|n| n.node_id == self.node_id) {
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
            let copied = repair::fetch_verified_copy(
                &self.client,
                &self.chunks,
                &self.peers,
                id,
                &holders,
                &self.node_id,
                expected,
            )
            .await;
            match copied {
                Ok(()) => fetched += 1,
                Err(e) => {
                    tracing::warn!(chunk = %id.to_hex(), error = %e, "no replica could supply a missed chunk");
                    missing += 1;
                }
            }
        }
        (fetched, missing)
    }
}
