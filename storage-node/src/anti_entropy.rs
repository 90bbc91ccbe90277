//! Anti-entropy: how a node catches up on writes it missed, pulls the partitions a layout change
//! gave it, and hands off the data it no longer holds.
//!
//! Periodically, at once when a peer comes back and when the layout changes, the node runs a
//! round. For every partition it holds it compares, with every other replica it can reach (of
//! the previous layout too while a move is in progress), what each side holds:
//!
//! - metadata ([`metadata`]): per bucket index shard and row kind, a digest of the rows; where
//!   they differ it pulls the peer's rows and keeps the newer of each (last-writer-wins). A part
//!   manifest lands only once the chunks it lists that this node should hold are here;
//! - chunks ([`chunks`]): per partition, the summary of the chunk ids held (count and XOR of id
//!   hashes, kept current by the chunk store); where they differ, the summaries of the
//!   partition's fan-out leaves, then the ids of the leaves that differ; chunks the peer holds
//!   and this node lacks are copied and proved against the peer's SHA-256.
//!
//! Every node pulls; none pushes, so replicas converge once each has run a round. A round is
//! complete when every partition was compared with enough replicas that, with this node, they
//! are a majority of its replicas, and, during a move, a majority of the previous layout's (which
//! hold every acknowledged write). A node is `recovering` until its first complete round after a
//! start (and after a peer returned), and reports a layout move done (`LayoutSynced`) after a
//! complete round under the new layout. Once no move is in progress, data of partitions the
//! node no longer holds is handed off ([`handoff`]): pushed to the current replicas that lack
//! it, then deleted.

mod audit;
mod chunks;
mod handoff;
mod metadata;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, watch};

pub use audit::ChunkAudit;

use crate::chunk_store::ChunkId;
use crate::chunk_store::ChunkStore;
use crate::control::{ClusterState, NodeInfo};
use crate::failure_detector::{FailureDetector, NodeState};
use crate::meta_store::{MetaError, MetaStore};
use crate::pace::Pace;
use crate::repair::{ChunkCopier, RepairError};
use crate::rpc::client::{NodeClient, RpcError};
use crate::rpc::server::DataPlane;

/// Default time between two anti-entropy rounds.
pub const DEFAULT_ANTI_ENTROPY_INTERVAL_MS: u64 = 30_000;
/// Default bound on the bytes of chunks pulled per second (moves and repairs): 100 MiB/s.
pub const DEFAULT_TRANSFER_RATE_BYTES: u64 = 100 * 1024 * 1024;
/// Rows pulled per page.
const PULL_PAGE_ROWS: usize = 256;
/// Bytes of pulled rows applied in one metadata write.
const APPLY_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Why one shard or partition could not be compared or pulled.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Chunk(#[from] crate::chunk_store::ChunkError),
}

/// What one round did (what it pulled is counted in the node's [`SyncReport`] as it goes).
#[derive(Debug, Default)]
struct Round {
    /// Rows newer than ours that were applied.
    rows: usize,
    /// Chunks fetched.
    chunks: usize,
    /// Bytes of chunks fetched.
    bytes: u64,
    /// Shards and partitions not compared with enough replicas.
    remaining: u64,
    /// Whether every shard and partition was compared with enough replicas.
    complete: bool,
    /// Shards and partitions whose data this node no longer holds and could not hand off yet.
    handoff_pending: u64,
}

impl Round {
    fn incomplete(&mut self) {
        self.complete = false;
    }
}

/// Where anti-entropy stands, as node status reports it. While a round runs, the bytes and
/// partitions remaining count down as chunks arrive; after it, they are what the round could
/// not finish.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// The layout version the last round ran under.
    pub layout_version: u64,
    /// Whether a layout move was in progress during the last round.
    pub moving: bool,
    /// Shards and partitions the last round could not compare with enough replicas (0 once
    /// caught up).
    pub partitions_remaining: u64,
    /// Estimated bytes of chunks still to pull.
    pub bytes_remaining: u64,
    /// Shards and partitions this node no longer holds whose data it still has to hand off.
    pub handoff_pending: u64,
    /// Chunks pulled since the node started.
    pub chunks_pulled: u64,
    /// Bytes of chunks pulled since the node started.
    pub bytes_pulled: u64,
    /// Rows pulled since the node started.
    pub rows_pulled: u64,
    /// Rounds completed since the node started.
    pub rounds: u64,
}

/// The replicas of one partition: the current layout's, and the previous one's during a move.
struct Replicas {
    current: Vec<NodeInfo>,
    previous: Option<Vec<NodeInfo>>,
}

impl Replicas {
    fn of(state: &ClusterState, partition: u32) -> Self {
        // An evicted node is gone for good: a move completes without it.
        let present = |n: &NodeInfo| n.membership != crate::control::Membership::Evicted;
        let previous =
            state.previous_partition_nodes(partition).map(|nodes| nodes.into_iter().filter(present).collect());
        Self { current: state.partition_nodes(partition), previous }
    }

    /// Whether `node_id` holds the partition in the current layout.
    fn holds(&self, node_id: &str) -> bool {
        self.current.iter().any(|n| n.node_id == node_id)
    }

    /// Every replica of either layout, once each, current ones first.
    fn all(&self) -> Vec<NodeInfo> {
        let mut all: Vec<NodeInfo> = Vec::new();
        for node in self.current.iter().chain(self.previous.iter().flatten()) {
            if !all.iter().any(|n| n.node_id == node.node_id) {
                all.push(node.clone());
            }
        }
        all
    }

    /// Whether `me` (unless it is rebuilding an emptied data directory and has peers to pull
    /// from) with the peers in `synced` make a majority of each layout's replicas.
    fn enough(&self, me: &str, rebuilding: bool, synced: &[String]) -> bool {
        let majority = |set: &[NodeInfo]| {
            let alone = set.iter().all(|n| n.node_id == me);
            let have = set
                .iter()
                .filter(|n| (n.node_id == me && (!rebuilding || alone)) || synced.contains(&n.node_id))
                .count();
            have > set.len() / 2 || set.is_empty()
        };
        majority(&self.current) && self.previous.as_deref().is_none_or(majority)
    }
}

/// Every node that may hold a copy of `placement_key`'s data: the current replicas, then the
/// previous layout's during a move.
pub(crate) fn holders(state: &ClusterState, placement_key: &[u8]) -> Vec<NodeInfo> {
    Replicas::of(state, state.layout.partition_of(placement_key)).all()
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
    rebuilding: Arc<AtomicBool>,
    rebuild_marker: std::path::PathBuf,
    audit: Arc<ChunkAudit>,
    report: Arc<Mutex<SyncReport>>,
    /// Copies chunks from peers, proved.
    copier: ChunkCopier,
    /// Paces every chunk copied, across rounds.
    pace: tokio::sync::Mutex<Pace>,
    synced_layouts: mpsc::UnboundedSender<u64>,
    wake: Notify,
}

impl AntiEntropy {
    /// A worker over the node's stores; it sets the `recovering` and `rebuilding` flags the
    /// node's status reports, drains its chunk audit, pulls chunks with `copier` at up to
    /// `transfer_rate` bytes per second (0: no bound), and sends the layout versions it
    /// finished moving to `synced_layouts`.
    pub fn new(
        data: &DataPlane,
        copier: ChunkCopier,
        state: watch::Receiver<Arc<ClusterState>>,
        transfer_rate: u64,
        synced_layouts: mpsc::UnboundedSender<u64>,
    ) -> Arc<Self> {
        data.recovering.store(true, Ordering::Relaxed);
        Arc::new(Self {
            node_id: data.node_id.clone(),
            meta: data.meta.clone(),
            chunks: data.chunks.clone(),
            client: copier.client.clone(),
            state,
            peers: copier.peers.clone(),
            copier,
            recovering: data.recovering.clone(),
            rebuilding: data.rebuilding.clone(),
            rebuild_marker: data.rebuild_marker.clone(),
            audit: data.audit.clone(),
            report: data.sync.clone(),
            pace: tokio::sync::Mutex::new(Pace::new(transfer_rate)),
            synced_layouts,
            wake: Notify::new(),
        })
    }

    /// Runs rounds forever: every `interval`, when a peer comes back and when the layout
    /// changes.
    pub async fn run(self: Arc<Self>, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let watcher = self.clone();
        tokio::spawn(async move { watcher.watch_peers(interval).await });
        let watcher = self.clone();
        tokio::spawn(async move { watcher.watch_layout().await });
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = self.wake.notified() => {}
            }
            let state = self.state.borrow().clone();
            let round = self.round(&state).await;
            if round.rows > 0 || round.chunks > 0 {
                tracing::info!(
                    rows = round.rows,
                    chunks = round.chunks,
                    bytes = round.bytes,
                    "anti-entropy pulled data"
                );
            }
            if round.complete {
                if self.recovering.swap(false, Ordering::Relaxed) {
                    tracing::info!("caught up with every replica peer");
                }
                if self.rebuilding.load(Ordering::Relaxed) {
                    match std::fs::remove_file(&self.rebuild_marker) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => tracing::warn!(error = %e, "could not remove the rebuild marker"),
                    }
                    tracing::info!("rebuilt every replica this node holds");
                    self.rebuilding.store(false, Ordering::Relaxed);
                }
                if let Some(transition) = &state.transition {
                    let member = state.layout.nodes.contains(&self.node_id);
                    if member && !transition.synced.contains(&self.node_id) {
                        let _ = self.synced_layouts.send(state.layout.version);
                    }
                }
            }
            let mut report = self.report.lock().unwrap_or_else(PoisonError::into_inner);
            report.layout_version = state.layout.version;
            report.moving = state.transition.is_some();
            report.partitions_remaining = round.remaining;
            if round.complete {
                report.bytes_remaining = 0;
            }
            report.handoff_pending = round.handoff_pending;
            report.rounds += 1;
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

    /// Wakes a round when the layout or its move changes.
    async fn watch_layout(self: Arc<Self>) {
        let mut state = self.state.clone();
        let shape = |s: &ClusterState| (s.layout.version, s.transition.is_some());
        let mut last = shape(&state.borrow());
        while state.changed().await.is_ok() {
            let now = shape(&state.borrow());
            if now != last {
                last = now;
                self.wake.notify_one();
            }
        }
    }

    async fn round(&self, state: &ClusterState) -> Round {
        let mut round = Round { complete: true, ..Round::default() };
        let mut pace = self.pace.lock().await;
        // Planned first: metadata sync fetches the chunks of the rows it pulls, and progress
        // must count those down too.
        let chunks = self.plan_chunks(state).await;
        self.audit_chunks(state, &mut round, &mut pace).await;
        self.sync_metadata(state, &mut round, &mut pace).await;
        self.sync_chunks(chunks, &mut round, &mut pace).await;
        // Data moves out only once every node of the layout has pulled what it gained.
        if state.transition.is_none() {
            self.hand_off(state, &mut round).await;
        }
        round
    }

    /// Whether this node is rebuilding an emptied data directory.
    fn rebuilding(&self) -> bool {
        self.rebuilding.load(Ordering::Relaxed)
    }

    /// Copies chunk `id` from `holders` (proved against `expected` when given), counted in
    /// `round` and paced; false when no holder supplied a good copy. A chunk garbage
    /// collection deleted here is not wanted back, which is not a failure.
    async fn copy_chunk(
        &self,
        id: ChunkId,
        holders: &[NodeInfo],
        expected: Option<[u8; 32]>,
        round: &mut Round,
        pace: &mut Pace,
    ) -> bool {
        match self.copier.copy(id, holders, expected).await {
            Ok(bytes) => {
                round.chunks += 1;
                round.bytes += bytes;
                self.progress(|r| {
                    r.chunks_pulled += 1;
                    r.bytes_pulled += bytes;
                    r.bytes_remaining = r.bytes_remaining.saturating_sub(bytes);
                });
                pace.wait(bytes).await;
                true
            }
            Err(RepairError::Collected) => true,
            Err(e) => {
                tracing::warn!(chunk = %id.to_hex(), error = %e, "could not copy a chunk");
                false
            }
        }
    }

    /// Updates the progress node status shows.
    fn progress(&self, update: impl FnOnce(&mut SyncReport)) {
        update(&mut self.report.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// The replicas of either layout, but this node, that answer probes: not `down`, nor
    /// `suspect` (a peer that just missed a probe is likely hung, and a call to it would hold
    /// the round for the whole RPC timeout; the next round asks it again).
    fn reachable_peers(&self, replicas: &Replicas) -> Vec<NodeInfo> {
        replicas
            .all()
            .into_iter()
            .filter(|n| {
                n.node_id != self.node_id
                    && !matches!(self.peers.state(&n.node_id), NodeState::Down | NodeState::Suspect)
            })
            .collect()
    }
}
