//! The quorum coordinator: sends each chunk and metadata row to every replica of its partition
//! in parallel and answers once the bucket's consistency level is met.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_storage_node::chunk_store::{ChunkDigest, ChunkId};
use cairn_storage_node::control::{Consistency, NodeInfo};
use cairn_storage_node::failure_detector::FailureDetector;
use cairn_storage_node::hlc::Clock;
use cairn_storage_node::meta_store::Row;
use cairn_storage_node::rpc::client::{NodeClient, RpcError};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{Semaphore, mpsc};

use crate::cluster::Cluster;

/// Bytes of chunk data a gateway keeps in flight to replicas, across all requests; bounds
/// gateway memory when a replica is slow (a write waits for budget instead of piling up).
pub const REPLICATION_BUDGET_BYTES: usize = 96 * 1024 * 1024;
/// Times a metadata write is re-stamped after replicas held a newer timestamp for its key.
const MAX_STAMP_ATTEMPTS: usize = 3;
/// Default bound on waiting for a quorum: past it the request fails and nothing is acknowledged.
pub const DEFAULT_QUORUM_TIMEOUT_MS: u64 = 5_000;
/// A read still short of its quorum after this fraction of the quorum timeout also asks the
/// next replica, so one hung replica costs a fraction of the timeout, not all of it.
const HEDGE_DIVISOR: u32 = 4;

/// One metadata row to write; the coordinator gives it its timestamp.
#[derive(Clone, Debug)]
pub struct RowWrite {
    /// The row key.
    pub key: Vec<u8>,
    /// Whether the row is a tombstone.
    pub tombstone: bool,
    /// The row value.
    pub value: Vec<u8>,
}

/// How a replicated row write ended.
enum PutOutcome {
    /// Enough replicas applied every row.
    Applied,
    /// Enough replicas answered, but some held a newer row, so the write did not take effect.
    Superseded,
}

/// Why a replicated operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// The layout has no node for the partition.
    #[error("no replicas in the layout")]
    NoReplicas,
    /// Too few replicas acknowledged.
    #[error("{acked} of {needed} required replicas answered: {last_error}")]
    QuorumNotMet {
        /// Replicas that succeeded.
        acked: usize,
        /// Replicas required.
        needed: usize,
        /// The last failure seen.
        last_error: String,
    },
    /// No replica could serve a chunk.
    #[error("chunk {chunk} unavailable: {last_error}")]
    ChunkUnavailable {
        /// The chunk id in hex.
        chunk: String,
        /// The last failure seen.
        last_error: String,
    },
    /// A stored record could not be decoded.
    #[error("undecodable metadata: {0}")]
    Corrupt(String),
    /// Replicas kept holding a newer timestamp than this gateway could issue.
    #[error("metadata write superseded {attempts} times")]
    Superseded {
        /// Attempts made.
        attempts: usize,
    },
}

/// How many replicas a write must reach.
pub fn write_quorum(replicas: usize, level: Consistency) -> usize {
    match level {
        Consistency::One => 1.min(replicas),
        Consistency::Quorum => replicas / 2 + 1,
        Consistency::All => replicas,
    }
}

/// How many replicas a read must hear from.
pub fn read_quorum(replicas: usize, level: Consistency) -> usize {
    match level {
        Consistency::One | Consistency::All => 1.min(replicas),
        Consistency::Quorum => replicas / 2 + 1,
    }
}

/// Coordinates replicated reads and writes.
pub struct Replication {
    cluster: Arc<Cluster>,
    client: NodeClient,
    budget: Arc<Semaphore>,
    clock: Clock,
    detector: Arc<FailureDetector>,
    quorum_timeout: Duration,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Replication {
    /// Creates a coordinator over the cluster's current layout; `origin` identifies this
    /// gateway in metadata timestamps. Nodes `detector` finds down are not waited on, and no
    /// quorum is waited for longer than `quorum_timeout`.
    pub fn new(
        cluster: Arc<Cluster>,
        client: NodeClient,
        origin: u64,
        detector: Arc<FailureDetector>,
        quorum_timeout: Duration,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self {
            cluster,
            client,
            budget: Arc::new(Semaphore::new(REPLICATION_BUDGET_BYTES)),
            clock: Clock::new(origin),
            detector,
            quorum_timeout,
            metrics,
        }
    }

    /// The gateway's metrics, which this coordinator feeds.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The cluster view.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// The node client this coordinator uses.
    pub fn client(&self) -> &NodeClient {
        &self.client
    }

    /// The failure detector this coordinator follows.
    pub fn detector(&self) -> &Arc<FailureDetector> {
        &self.detector
    }

    /// The replicas of a partition a write goes to (all but `down` ones, of both layouts while
    /// a layout change moves data) and the quorum each replica set must meet.
    fn write_targets(&self, placement_key: &[u8], level: Consistency) -> Result<WriteTargets, ReplicationError> {
        let sets = self.cluster.write_sets(placement_key);
        if sets.iter().any(Vec::is_empty) {
            return Err(ReplicationError::NoReplicas);
        }
        let mut targets = WriteTargets { nodes: Vec::new(), sets: Vec::new() };
        for set in sets {
            let needed = write_quorum(set.len(), level);
            let writable = self.detector.writable(set.clone());
            if writable.len() < needed {
                // Refuse at once rather than wait on nodes known to be down.
                return Err(ReplicationError::QuorumNotMet {
                    acked: 0,
                    needed,
                    last_error: format!("only {} replicas are up", writable.len()),
                });
            }
            for node in writable {
                if !targets.nodes.iter().any(|n| n.node_id == node.node_id) {
                    targets.nodes.push(node);
                }
            }
            targets.sets.push((set.into_iter().map(|n| n.node_id).collect(), needed));
        }
        Ok(targets)
    }

    /// Writes a chunk to its replicas; returns once `level` is met. Replicas past the quorum
    /// keep receiving it in the background.
    pub async fn write_chunk(
        &self,
        id: ChunkId,
        digest: ChunkDigest,
        data: Bytes,
        level: Consistency,
    ) -> Result<(), ReplicationError> {
        let targets = self.write_targets(&id.placement_key(), level)?;
        let needed = targets.needed();
        let replicas = targets.nodes.clone();
        let cost = u32::try_from(data.len().clamp(1, REPLICATION_BUDGET_BYTES)).unwrap_or(u32::MAX);
        // Waiting for budget counts against the quorum timeout too: replicas that hang before
        // the detector finds them hold budget until their RPCs time out.
        let acquire = self.budget.clone().acquire_many_owned(cost);
        let permit = match tokio::time::timeout(self.quorum_timeout, acquire).await {
            Ok(permit) => permit.expect("budget semaphore never closes"),
            Err(_) => {
                return Err(ReplicationError::QuorumNotMet {
                    acked: 0,
                    needed,
                    last_error: format!(
                        "replicas took more than {} ms to drain the replication budget",
                        self.quorum_timeout.as_millis()
                    ),
                });
            }
        };
        let (results_tx, results_rx) = mpsc::channel(replicas.len());
        let client = self.client.clone();
        let detector = self.detector.clone();
        let metrics = self.metrics.clone();
        let sets = targets.sets.clone();
        // The fan-out runs in its own task, holding the budget until every replica answered.
        tokio::spawn(async move {
            let (mut acked, mut past_quorum) = (Vec::new(), None);
            let mut puts: FuturesUnordered<_> = replicas
                .iter()
                .map(|node| {
                    let client = client.clone();
                    let data = data.clone();
                    let in_flight = detector.start_request(node);
                    let addr = node.rpc_addr.clone();
                    let node_id = node.node_id.clone();
                    async move {
                        let result = client.put_chunk(&addr, id, &digest, data).await;
                        drop(in_flight);
                        (node_id, result)
                    }
                })
                .collect();
            while let Some((node_id, result)) = puts.next().await {
                match &result {
                    Ok(()) => {
                        metrics.chunk_transfer(true);
                        acked.push(node_id.clone());
                    }
                    Err(e) => {
                        tracing::warn!(chunk = %id.to_hex(), node = %node_id, error = %e, "chunk replica write failed");
                    }
                }
                let _ = results_tx.send((node_id, result)).await;
                // Replicas still writing once the quorum answered are the replication backlog.
                if past_quorum.is_none() && !puts.is_empty() && quorum_met(&sets, &acked) {
                    past_quorum = Some(metrics.background_write());
                }
            }
            drop(past_quorum);
            drop(permit);
        });
        await_quorum(results_rx, &targets, self.quorum_timeout).await
    }

    /// Reads `len` bytes at `offset` of a chunk from the first replica that serves it verified,
    /// trying replicas in the detector's read order, each for at most the quorum timeout.
    pub async fn read_chunk(&self, id: ChunkId, range: Option<(u64, u64)>) -> Result<Bytes, ReplicationError> {
        let replicas = self.detector.read_order(self.cluster.read_replicas(&id.placement_key()));
        let mut last_error = String::from("no replicas in the layout");
        for node in &replicas {
            let _in_flight = self.detector.start_request(node);
            let read = tokio::time::timeout(self.quorum_timeout, self.client.get_chunk(&node.rpc_addr, id, range));
            match read.await {
                Ok(Ok(bytes)) => {
                    self.metrics.chunk_transfer(false);
                    return Ok(bytes);
                }
                Ok(Err(e)) => last_error = e.to_string(),
                Err(_) => last_error = format!("{} did not answer in time", node.node_id),
            }
            tracing::warn!(chunk = %id.to_hex(), node = %node.node_id, error = %last_error, "chunk read failed, trying next replica");
        }
        Err(ReplicationError::ChunkUnavailable { chunk: id.to_hex(), last_error })
    }

    /// Writes rows of one partition, stamped with one new timestamp, to its replicas; returns
    /// once `level` replicas applied them. When replicas hold a newer row for a key (another
    /// gateway's clock ran ahead), the clock catches up and the write is stamped again, so an
    /// acknowledged write always takes effect.
    pub async fn write_rows(
        &self,
        placement_key: &[u8],
        writes: Vec<RowWrite>,
        level: Consistency,
    ) -> Result<(), ReplicationError> {
        for _ in 0..MAX_STAMP_ATTEMPTS {
            let timestamp = self.clock.now();
            let rows = writes
                .iter()
                .map(|w| Row { key: w.key.clone(), timestamp, tombstone: w.tombstone, value: w.value.clone() })
                .collect();
            match self.put_rows(placement_key, rows, level).await? {
                PutOutcome::Applied => return Ok(()),
                PutOutcome::Superseded => {
                    for write in &writes {
                        if let Some(row) = self.get_row(placement_key, &write.key, level).await? {
                            self.clock.observe(row.timestamp);
                        }
                    }
                }
            }
        }
        Err(ReplicationError::Superseded { attempts: MAX_STAMP_ATTEMPTS })
    }

    async fn put_rows(
        &self,
        placement_key: &[u8],
        rows: Vec<Row>,
        level: Consistency,
    ) -> Result<PutOutcome, ReplicationError> {
        let targets = self.write_targets(placement_key, level)?;
        let rows = Arc::new(rows);
        let (results_tx, mut results_rx) = mpsc::channel(targets.nodes.len());
        for node in targets.nodes.clone() {
            let client = self.client.clone();
            let rows = rows.clone();
            let results_tx = results_tx.clone();
            let in_flight = self.detector.start_request(&node);
            // Each replica's write runs to its end even after the quorum answered.
            tokio::spawn(async move {
                let result = client.put_rows(&node.rpc_addr, &rows).await;
                drop(in_flight);
                if let Err(e) = &result {
                    tracing::warn!(node = %node.node_id, error = %e, "metadata replica write failed");
                }
                let _ = results_tx.send((node.node_id, result)).await;
            });
        }
        drop(results_tx);
        let (mut applied, mut answered): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
        let mut superseded = false;
        let mut last_error = String::new();
        let deadline = tokio::time::Instant::now() + self.quorum_timeout;
        loop {
            let result = match tokio::time::timeout_at(deadline, results_rx.recv()).await {
                Ok(Some(result)) => result,
                Ok(None) => break,
                Err(_) => {
                    last_error = format!("no quorum within {} ms", self.quorum_timeout.as_millis());
                    break;
                }
            };
            match result {
                (node_id, Ok(flags)) if flags.iter().all(|&f| f) => {
                    applied.push(node_id.clone());
                    answered.push(node_id);
                }
                (node_id, Ok(_)) => {
                    superseded = true;
                    answered.push(node_id);
                }
                (_, Err(e)) => last_error = e.to_string(),
            }
            if targets.met(&applied) {
                return Ok(PutOutcome::Applied);
            }
            if superseded && targets.met(&answered) {
                return Ok(PutOutcome::Superseded);
            }
        }
        Err(ReplicationError::QuorumNotMet { acked: answered.len(), needed: targets.needed(), last_error })
    }

    /// Reads one row from enough replicas for `level`; the newest wins, and replicas found
    /// stale are repaired before the answer (read repair).
    pub async fn get_row(
        &self,
        placement_key: &[u8],
        key: &[u8],
        level: Consistency,
    ) -> Result<Option<Row>, ReplicationError> {
        let answers = self
            .gather(placement_key, level, |client, node| {
                let key = key.to_vec();
                async move { client.get_row(&node.rpc_addr, &key).await }
            })
            .await?;
        let newest = answers.iter().filter_map(|(row, _)| row.clone()).max_by_key(|row| row.timestamp);
        if let Some(newest) = &newest {
            self.clock.observe(newest.timestamp);
            let stale: Vec<NodeInfo> = answers
                .into_iter()
                .filter(|(row, _)| row.as_ref().map(|r| r.timestamp) != Some(newest.timestamp))
                .map(|(_, node)| node)
                .collect();
            self.repair(stale, vec![newest.clone()]).await;
        }
        Ok(newest)
    }

    /// Scans rows of one partition from enough replicas for `level` and merges them by key,
    /// newest first. Returns the merged rows and whether more may follow the last one.
    pub async fn scan_rows(
        &self,
        placement_key: &[u8],
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
        level: Consistency,
    ) -> Result<(Vec<Row>, bool), ReplicationError> {
        let answers = self
            .gather(placement_key, level, |client, node| async move {
                client.scan_rows(&node.rpc_addr, prefix, start_after, limit).await
            })
            .await?;
        let (rows, more) = merge_scans(answers.into_iter().map(|(rows, _)| rows).collect(), limit);
        if let Some(newest) = rows.iter().map(|r| r.timestamp).max() {
            self.clock.observe(newest);
        }
        Ok((rows, more))
    }

    /// Asks replicas of a partition, in the detector's read order, until `level`'s read quorum
    /// answered: as many as needed at first, the next one for each that fails or is slow, all
    /// within the quorum timeout.
    async fn gather<'a, T, F, Fut>(
        &self,
        placement_key: &[u8],
        level: Consistency,
        read: F,
    ) -> Result<Vec<(T, NodeInfo)>, ReplicationError>
    where
        F: Fn(NodeClient, NodeInfo) -> Fut,
        Fut: Future<Output = Result<T, RpcError>> + 'a,
    {
        let replicas = self.cluster.read_replicas(placement_key);
        if replicas.is_empty() {
            return Err(ReplicationError::NoReplicas);
        }
        let needed = read_quorum(replicas.len(), level);
        let mut candidates = self.detector.read_order(replicas).into_iter();
        let ask = |node: NodeInfo| {
            let in_flight = self.detector.start_request(&node);
            let answer = read(self.client.clone(), node.clone());
            async move {
                let result = answer.await;
                drop(in_flight);
                (result, node)
            }
        };
        let mut pending: FuturesUnordered<_> = candidates.by_ref().take(needed).map(ask).collect();
        let mut answers = Vec::with_capacity(needed);
        let mut last_error = String::new();
        let deadline = tokio::time::Instant::now() + self.quorum_timeout;
        let hedge_every = self.quorum_timeout / HEDGE_DIVISOR;
        let mut hedge = tokio::time::Instant::now() + hedge_every;
        while answers.len() < needed {
            match tokio::time::timeout_at(hedge.min(deadline), pending.next()).await {
                Ok(Some((Ok(answer), node))) => answers.push((answer, node)),
                Ok(Some((Err(e), _))) => {
                    last_error = e.to_string();
                    pending.extend(candidates.next().map(ask));
                }
                Ok(None) => break,
                // A replica that hangs before the detector notices: ask the next one as well.
                Err(_) if tokio::time::Instant::now() < deadline => {
                    pending.extend(candidates.next().map(ask));
                    hedge += hedge_every;
                }
                Err(_) => {
                    last_error = format!("no quorum within {} ms", self.quorum_timeout.as_millis());
                    break;
                }
            }
        }
        if answers.len() < needed {
            return Err(ReplicationError::QuorumNotMet { acked: answers.len(), needed, last_error });
        }
        Ok(answers)
    }

    /// Writes `rows` back to replicas that answered with something older, waiting (within the
    /// quorum timeout) so the answer that follows is what those replicas now hold.
    async fn repair(&self, nodes: Vec<NodeInfo>, rows: Vec<Row>) {
        let repairs = nodes.into_iter().map(|node| {
            let client = self.client.clone();
            let rows = rows.clone();
            async move {
                match tokio::time::timeout(self.quorum_timeout, client.put_rows(&node.rpc_addr, &rows)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(node = %node.node_id, error = %e, "read repair failed"),
                    Err(_) => tracing::warn!(node = %node.node_id, "read repair timed out"),
                }
            }
        });
        futures_util::future::join_all(repairs).await;
    }
}

/// Merges replica answers to one scan. An answer that filled its `limit` may have more rows
/// after its last key, so the merge stops at the smallest such last key: beyond it, some
/// replica's view is unknown.
fn merge_scans(answers: Vec<Vec<Row>>, limit: usize) -> (Vec<Row>, bool) {
    let cut: Option<Vec<u8>> = answers
        .iter()
        .filter(|rows| rows.len() >= limit && limit > 0)
        .filter_map(|rows| rows.last().map(|r| r.key.clone()))
        .min();
    let mut merged: BTreeMap<Vec<u8>, Row> = BTreeMap::new();
    for row in answers.into_iter().flatten() {
        if cut.as_ref().is_some_and(|cut| &row.key > cut) {
            continue;
        }
        match merged.get(&row.key) {
            Some(existing) if existing.timestamp >= row.timestamp => {}
            _ => {
                merged.insert(row.key.clone(), row);
            }
        }
    }
    (merged.into_values().collect(), cut.is_some())
}

/// Where a write goes and what acknowledges it.
struct WriteTargets {
    /// Every replica not `down`, of every set, once each.
    nodes: Vec<NodeInfo>,
    /// Each replica set (node ids) with the acknowledgements it needs.
    sets: Vec<(Vec<String>, usize)>,
}

/// Whether the nodes in `acked` meet the quorum of every replica set.
fn quorum_met(sets: &[(Vec<String>, usize)], acked: &[String]) -> bool {
    sets.iter().all(|(ids, needed)| ids.iter().filter(|id| acked.contains(id)).count() >= *needed)
}

impl WriteTargets {
    /// Whether the nodes in `acked` meet the quorum of every set.
    fn met(&self, acked: &[String]) -> bool {
        quorum_met(&self.sets, acked)
    }

    /// The largest quorum, for error messages.
    fn needed(&self) -> usize {
        self.sets.iter().map(|(_, needed)| *needed).max().unwrap_or(0)
    }
}

async fn await_quorum(
    mut results: mpsc::Receiver<(String, Result<(), RpcError>)>,
    targets: &WriteTargets,
    timeout: Duration,
) -> Result<(), ReplicationError> {
    let mut acked = Vec::new();
    let needed = targets.needed();
    let mut last_error = String::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, results.recv()).await {
            Ok(Some((node_id, Ok(())))) => {
                acked.push(node_id);
                if targets.met(&acked) {
                    return Ok(());
                }
            }
            Ok(Some((_, Err(e)))) => last_error = e.to_string(),
            Ok(None) => break,
            Err(_) => {
                last_error = format!("no quorum within {} ms", timeout.as_millis());
                break;
            }
        }
    }
    Err(ReplicationError::QuorumNotMet { acked: acked.len(), needed, last_error })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_storage_node::hlc::Timestamp;

    fn row(key: &str, ms: u64) -> Row {
        Row {
            key: key.as_bytes().to_vec(),
            timestamp: Timestamp { physical_ms: ms, logical: 0, origin: 0 },
            tombstone: false,
            value: vec![],
        }
    }

    #[test]
    fn quorum_sizes() {
        assert_eq!(write_quorum(3, Consistency::Quorum), 2);
        assert_eq!(write_quorum(3, Consistency::One), 1);
        assert_eq!(write_quorum(3, Consistency::All), 3);
        assert_eq!(read_quorum(3, Consistency::All), 1);
        assert_eq!(write_quorum(1, Consistency::Quorum), 1);
        assert_eq!(write_quorum(2, Consistency::Quorum), 2);
    }

    #[test]
    fn merge_keeps_newest_and_stops_at_the_shortest_full_answer() {
        let a = vec![row("a", 1), row("b", 5), row("c", 1)];
        let b = vec![row("b", 7), row("d", 1), row("e", 1)];
        let (rows, more) = merge_scans(vec![a, b], 3);
        let keys: Vec<(&[u8], u64)> = rows.iter().map(|r| (r.key.as_slice(), r.timestamp.physical_ms)).collect();
        assert_eq!(keys, vec![(&b"a"[..], 1), (&b"b"[..], 7), (&b"c"[..], 1)]);
        assert!(more);
        let (rows, more) = merge_scans(vec![vec![row("a", 1)], vec![row("b", 1)]], 3);
        assert_eq!(rows.len(), 2);
        assert!(!more);
    }
}
