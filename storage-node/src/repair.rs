//! The repair queue: chunks this node should hold a good copy of and may not.
//!
//! The scrubber and the read path queue the chunks they found corrupt. A worker takes each queued chunk when it is due:
//! if the node no longer holds the chunk's partition there is nothing to do; otherwise it
//! checks the local copy (a chunk queued as suspect may be fine), sets a bad one aside, and
//! copies the chunk from another replica, proving the copy before storing it: its SHA-256 must
//! match the header of the replica that sent it and, when known, the digest the bad copy's
//! header or the part manifest promised. A failed attempt is retried with exponential backoff;
//! items whose last attempt failed are counted as errored until they succeed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::chunk_store::{ChunkDigest, ChunkError, ChunkId, ChunkStore};
use crate::control::{ClusterState, NodeInfo};
use crate::failure_detector::{FailureDetector, NodeState};
use crate::meta_store::MetaStore;
use crate::rpc::client::NodeClient;

/// Wait before the first retry of a failed repair; doubled at each failure.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest wait between two attempts.
const MAX_RETRY: Duration = Duration::from_secs(300);
/// Attempts after which an item is given up (about a day at the longest wait).
const MAX_ATTEMPTS: u32 = 300;
/// Repairs running at once.
const PARALLEL_REPAIRS: usize = 4;

/// Why a chunk could not be repaired.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// No other replica supplied a copy that proved good.
    #[error("no replica supplied a good copy: {0}")]
    NoGoodCopy(String),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] ChunkError),
    /// Garbage collection deleted the chunk: it is not wanted back.
    #[error("the chunk was garbage-collected")]
    Collected,
}

/// Counters of the repair queue, as node status reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairStats {
    /// Chunks waiting for repair.
    pub queued: u64,
    /// Queued chunks whose last attempt failed.
    pub errored: u64,
    /// Chunks repaired since the node started.
    pub repaired: u64,
    /// Chunks given up after every attempt failed, since the node started.
    pub abandoned: u64,
    /// The last failure, if any item is errored.
    pub last_error: Option<String>,
}

struct Item {
    /// A bad copy was found (and set aside): its repair counts as a corruption repaired.
    corrupt: bool,
    /// The SHA-256 a good copy must have, when known.
    expected: Option<[u8; 32]>,
    attempts: u32,
    due: Instant,
    last_error: Option<String>,
}

/// Chunks to repair, and the worker that repairs them.
pub struct RepairQueue {
    items: Mutex<HashMap<ChunkId, Item>>,
    wake: Notify,
    repaired: AtomicU64,
    abandoned: AtomicU64,
    /// Corrupt copies found by the repair worker itself (queued as suspect), not yet reported.
    found: AtomicU64,
    /// Corrupt copies replaced, not yet reported.
    fixed: AtomicU64,
}

/// What the worker did with one item.
enum Outcome {
    /// A good copy is in place (fetched, or the local one proved fine).
    Done { fetched: bool },
    /// This node does not hold the chunk's partition any more.
    NotOurs,
}

impl RepairQueue {
    /// An empty queue.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            items: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            repaired: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            found: AtomicU64::new(0),
            fixed: AtomicU64::new(0),
        })
    }

    /// Queues a chunk whose local copy may be bad (the scrubber or a read found it corrupt).
    pub fn push(&self, id: ChunkId) {
        self.lock().entry(id).or_insert_with(|| Item {
            corrupt: false,
            expected: None,
            attempts: 0,
            due: Instant::now(),
            last_error: None,
        });
        self.wake.notify_one();
    }

    /// The queue's counters.
    pub fn stats(&self) -> RepairStats {
        let items = self.lock();
        let errored: Vec<&Item> = items.values().filter(|i| i.last_error.is_some()).collect();
        RepairStats {
            queued: items.len() as u64,
            errored: errored.len() as u64,
            repaired: self.repaired.load(Ordering::Relaxed),
            abandoned: self.abandoned.load(Ordering::Relaxed),
            last_error: errored.first().and_then(|i| i.last_error.clone()),
        }
    }

    /// Corrupt copies found and replaced by the worker since the last call, for the scrubber's
    /// lasting counters.
    pub fn take_corruption_counts(&self) -> (u64, u64) {
        (self.found.swap(0, Ordering::Relaxed), self.fixed.swap(0, Ordering::Relaxed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ChunkId, Item>> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes up to `max` due items out of the queue, or tells when the next one is due.
    fn take_due(&self, max: usize) -> Result<Vec<(ChunkId, Item)>, Option<Instant>> {
        let now = Instant::now();
        let mut items = self.lock();
        let due: Vec<ChunkId> = items.iter().filter(|(_, i)| i.due <= now).map(|(id, _)| *id).take(max).collect();
        if due.is_empty() {
            return Err(items.values().map(|i| i.due).min());
        }
        Ok(due.into_iter().filter_map(|id| items.remove(&id).map(|item| (id, item))).collect())
    }

    /// Puts back an item whose attempt failed, due after its backoff, unless it is given up.
    fn retry(&self, id: ChunkId, mut item: Item, error: String) {
        item.attempts += 1;
        if item.attempts >= MAX_ATTEMPTS {
            tracing::error!(chunk = %id.to_hex(), %error, "chunk repair given up");
            self.abandoned.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let backoff = FIRST_RETRY.saturating_mul(1 << item.attempts.min(16)).min(MAX_RETRY);
        item.due = Instant::now() + backoff;
        item.last_error = Some(error);
        let mut items = self.lock();
        // A push while the attempt ran keeps its facts; the attempt count carries over.
        match items.get_mut(&id) {
            Some(newer) => {
                newer.corrupt |= item.corrupt;
                newer.expected = newer.expected.or(item.expected);
                newer.attempts = item.attempts;
                newer.last_error = item.last_error;
            }
            None => {
                items.insert(id, item);
            }
        }
    }

    /// Repairs queued chunks forever.
    pub async fn run(self: Arc<Self>, repairer: Repairer) {
        loop {
            let batch = match self.take_due(PARALLEL_REPAIRS * 4) {
                Ok(batch) => batch,
                Err(next) => {
                    let wait =
                        next.map_or(Duration::from_secs(3600), |due| due.saturating_duration_since(Instant::now()));
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.wake.notified() => {}
                    }
                    continue;
                }
            };
            let attempts = futures_util::stream::iter(batch)
                .map(|(id, mut item)| {
                    let repairer = &repairer;
                    async move {
                        let outcome = repairer.repair(id, &mut item).await;
                        (id, item, outcome)
                    }
                })
                .buffer_unordered(PARALLEL_REPAIRS)
                .collect::<Vec<_>>()
                .await;
            for (id, item, outcome) in attempts {
                match outcome {
                    Ok(Outcome::Done { fetched }) => {
                        if fetched {
                            self.repaired.fetch_add(1, Ordering::Relaxed);
                            if item.corrupt {
                                self.fixed.fetch_add(1, Ordering::Relaxed);
                            }
                            tracing::info!(chunk = %id.to_hex(), corrupt = item.corrupt, "chunk repaired");
                        }
                    }
                    Ok(Outcome::NotOurs) => {}
                    Err(e) => {
                        tracing::warn!(chunk = %id.to_hex(), attempt = item.attempts + 1, error = %e, "chunk repair failed");
                        self.retry(id, item, e.to_string());
                    }
                }
            }
        }
    }
}

/// What the repair worker needs: the node's chunks, the layout, and the peers.
pub struct Repairer {
    /// Copies chunks from peers into the node's store.
    pub copier: ChunkCopier,
    /// The cluster state (layout and nodes).
    pub state: watch::Receiver<Arc<ClusterState>>,
    /// The queue, for the corruption counters of suspect items.
    pub queue: Arc<RepairQueue>,
}

impl Repairer {
    async fn repair(&self, id: ChunkId, item: &mut Item) -> Result<Outcome, RepairError> {
        let copier = &self.copier;
        let (ours, holders) = {
            let state = self.state.borrow();
            let placement = id.placement_key();
            let ours = state.replica_nodes(&placement).iter().any(|n| n.node_id == copier.node_id);
            (ours, crate::anti_entropy::holders(&state, &placement))
        };
        if !ours || crate::gc::is_collected(&copier.meta, id).await {
            return Ok(Outcome::NotOurs);
        }
        if !item.corrupt {
            match copier.chunks.verify_sha256(id).await {
                Ok(header) if item.expected.is_none_or(|e| e == header.sha256) => {
                    return Ok(Outcome::Done { fetched: false });
                }
                Ok(_) | Err(ChunkError::Corrupt { .. }) => {
                    let aside = copier.chunks.quarantine(id).await?;
                    tracing::warn!(chunk = %id.to_hex(), "corrupt chunk set aside");
                    item.corrupt = true;
                    item.expected = item.expected.or(aside.and_then(|q| q.digest).map(|d| d.sha256));
                    self.queue.found.fetch_add(1, Ordering::Relaxed);
                }
                Err(ChunkError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match copier.copy(id, &holders, item.expected).await {
            Ok(_) => Ok(Outcome::Done { fetched: true }),
            Err(RepairError::Collected) => Ok(Outcome::NotOurs),
            Err(e) => Err(e),
        }
    }
}

/// The one way a node copies a chunk from a peer: proved, and never one garbage collection
/// deleted here.
#[derive(Clone)]
pub struct ChunkCopier {
    /// This node's id.
    pub node_id: String,
    /// Where the copy goes.
    pub chunks: ChunkStore,
    /// Where garbage-collected chunk sets are recorded.
    pub meta: MetaStore,
    /// Client of the other nodes.
    pub client: NodeClient,
    /// Peer states, to skip down holders and prefer healthy ones.
    pub peers: Arc<FailureDetector>,
}

impl ChunkCopier {
    /// Copies chunk `id` from the first other holder whose copy proves good (its SHA-256
    /// matches that holder's header and `expected`, when given); returns its length.
    pub async fn copy(
        &self,
        id: ChunkId,
        holders: &[NodeInfo],
        expected: Option<[u8; 32]>,
    ) -> Result<u64, RepairError> {
        let Self { node_id: me, chunks, meta, client, peers } = self;
        if crate::gc::is_collected(meta, id).await {
            return Err(RepairError::Collected);
        }
        let others: Vec<NodeInfo> = holders.iter().filter(|n| n.node_id != *me).cloned().collect();
        let mut why = String::from("no other replica");
        for holder in peers.read_order(others) {
            if peers.state(&holder.node_id) == NodeState::Down {
                why = format!("{} is down", holder.node_id);
                continue;
            }
            let (theirs, bytes) = match client.get_chunk_with_digest(&holder.rpc_addr, id).await {
                Ok(copy) => copy,
                Err(e) => {
                    why = e.to_string();
                    continue;
                }
            };
            let hashed = bytes.clone();
            let actual = tokio::task::spawn_blocking(move || ChunkDigest::of(&hashed))
                .await
                .map_err(|e| ChunkError::Io(std::io::Error::other(e)))?;
            if actual != theirs {
                why = format!("{}'s copy does not match its header", holder.node_id);
                tracing::warn!(chunk = %id.to_hex(), holder = %holder.node_id, "a replica's chunk fails its SHA-256");
                continue;
            }
            if expected.is_some_and(|e| e != actual.sha256) {
                why = format!("{}'s copy differs from the expected digest", holder.node_id);
                continue;
            }
            let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(bytes)]);
            chunks.put(id, actual, body).await?;
            // A collection that ran while the copy travelled recorded the chunk first: drop it.
            if crate::gc::is_collected(meta, id).await {
                chunks.delete(id).await?;
                return Err(RepairError::Collected);
            }
            return Ok(actual.len);
        }
        Err(RepairError::NoGoodCopy(why))
    }
}
