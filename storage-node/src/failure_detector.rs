//! The failure detector: probes every node of the cluster at a fixed interval and keeps, per
//! node, a state that coordinators act on. `down` nodes are skipped instead of waited on;
//! reads go first to the healthy replica with the fewest requests in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::control::NodeInfo;
use crate::rpc::NodeStatus;
use crate::rpc::client::NodeClient;

/// Default time between two probes of a node.
pub const DEFAULT_PROBE_INTERVAL_MS: u64 = 1_000;
/// Default bound on one probe.
pub const DEFAULT_PROBE_TIMEOUT_MS: u64 = 1_000;
/// Default number of failed probes in a row that make a node `suspect`.
pub const DEFAULT_SUSPECT_AFTER: u32 = 1;
/// Default number of failed probes in a row that make a node `down`.
pub const DEFAULT_DOWN_AFTER: u32 = 3;

/// A node's state as the detector sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Answers probes and reports no trouble.
    Healthy,
    /// Answers probes but its disk is nearly full (below its reserve): reads work, writes may not.
    Degraded,
    /// Missed a probe recently; still used, but after the healthy replicas.
    Suspect,
    /// Answers, but is catching up on writes it missed: written to, read from only when no
    /// other replica answers.
    Recovering,
    /// Missed enough probes in a row: coordinators do not wait on it.
    Down,
}

impl NodeState {
    /// The state's name as logs and `cairn admin status` show it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Suspect => "suspect",
            Self::Recovering => "recovering",
            Self::Down => "down",
        }
    }
}

/// How often and how patiently nodes are probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetectorConfig {
    /// Time between two probes of a node.
    pub probe_interval: Duration,
    /// Bound on one probe.
    pub probe_timeout: Duration,
    /// Failed probes in a row that make a node `suspect`.
    pub suspect_after: u32,
    /// Failed probes in a row that make a node `down`.
    pub down_after: u32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_millis(DEFAULT_PROBE_INTERVAL_MS),
            probe_timeout: Duration::from_millis(DEFAULT_PROBE_TIMEOUT_MS),
            suspect_after: DEFAULT_SUSPECT_AFTER,
            down_after: DEFAULT_DOWN_AFTER,
        }
    }
}

/// What the detector knows of one node, as the admin API reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeHealth {
    /// The node's id.
    pub node_id: String,
    /// Its RPC address.
    pub rpc_addr: String,
    /// Its state.
    pub state: NodeState,
    /// When it entered that state, Unix milliseconds.
    pub since_ms: u64,
    /// Failed probes in a row.
    pub failed_probes: u32,
    /// Requests this process has in flight to it.
    pub in_flight: usize,
    /// The last probe failure, if the last probe failed.
    pub last_error: Option<String>,
    /// What the node reported of its disk at the last successful probe.
    pub status: Option<NodeStatus>,
}

struct Tracked {
    health: NodeHealth,
    in_flight: Arc<AtomicUsize>,
}

impl Tracked {
    /// A node not probed yet counts as healthy.
    fn fresh(node: &NodeInfo) -> Self {
        let health = NodeHealth {
            node_id: node.node_id.clone(),
            rpc_addr: node.rpc_addr.clone(),
            state: NodeState::Healthy,
            since_ms: now_ms(),
            failed_probes: 0,
            in_flight: 0,
            last_error: None,
            status: None,
        };
        Self { health, in_flight: Arc::new(AtomicUsize::new(0)) }
    }
}

/// Per-node states, kept current by [`FailureDetector::run`]; cheap to share.
pub struct FailureDetector {
    config: DetectorConfig,
    nodes: RwLock<HashMap<String, Tracked>>,
}

/// Counts one request in flight to a node until dropped.
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl FailureDetector {
    /// A detector that knows no node yet: unknown nodes count as healthy until probed.
    pub fn new(config: DetectorConfig) -> Arc<Self> {
        Arc::new(Self { config, nodes: RwLock::new(HashMap::new()) })
    }

    /// The configuration.
    pub fn config(&self) -> DetectorConfig {
        self.config
    }

    /// A node's state (`healthy` until a probe says otherwise).
    pub fn state(&self, node_id: &str) -> NodeState {
        self.read().get(node_id).map_or(NodeState::Healthy, |t| t.health.state)
    }

    /// Everything known of every probed node, by node id.
    pub fn snapshot(&self) -> Vec<NodeHealth> {
        let nodes = self.read();
        let mut all: Vec<NodeHealth> = nodes
            .values()
            .map(|t| NodeHealth { in_flight: t.in_flight.load(Ordering::Relaxed), ..t.health.clone() })
            .collect();
        all.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        all
    }

    /// Marks a request to `node` as in flight until the guard drops.
    pub fn start_request(&self, node: &NodeInfo) -> InFlight {
        let counter = self.counter(node);
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }

    /// The replicas worth sending a write to: every one not `down`.
    pub fn writable(&self, replicas: Vec<NodeInfo>) -> Vec<NodeInfo> {
        let nodes = self.read();
        replicas
            .into_iter()
            .filter(|n| nodes.get(&n.node_id).is_none_or(|t| t.health.state != NodeState::Down))
            .collect()
    }

    /// The replicas in the order a read should try them: by state (healthy first, `down` last),
    /// then by fewest requests in flight, then in layout order. A node rebuilding an emptied
    /// data directory is left out: it does not hold what it should yet.
    pub fn read_order(&self, replicas: Vec<NodeInfo>) -> Vec<NodeInfo> {
        let nodes = self.read();
        let mut ranked: Vec<(NodeState, usize, usize, NodeInfo)> = replicas
            .into_iter()
            .filter(|node| {
                !nodes.get(&node.node_id).and_then(|t| t.health.status.as_ref()).is_some_and(|s| s.rebuilding)
            })
            .enumerate()
            .map(|(position, node)| {
                let (state, in_flight) = nodes
                    .get(&node.node_id)
                    .map_or((NodeState::Healthy, 0), |t| (t.health.state, t.in_flight.load(Ordering::Relaxed)));
                // Degraded disks read fine; suspicion, catching up and absence demote a replica.
                let rank = if state == NodeState::Degraded { NodeState::Healthy } else { state };
                (rank, in_flight, position, node)
            })
            .collect();
        ranked.sort_by_key(|&(state, in_flight, position, _)| (state, in_flight, position));
        ranked.into_iter().map(|(_, _, _, node)| node).collect()
    }

    /// Probes every node `nodes` returns, every interval, forever.
    pub async fn run(self: Arc<Self>, client: NodeClient, nodes: impl Fn() -> Vec<NodeInfo> + Send + 'static) {
        let mut ticks = tokio::time::interval(self.config.probe_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let current = nodes();
            self.forget_all_but(&current);
            let timeout = self.config.probe_timeout;
            let probes = current.into_iter().map(|node| {
                let client = client.clone();
                async move {
                    let outcome = match tokio::time::timeout(timeout, client.status(&node.rpc_addr)).await {
                        Ok(Ok(status)) => Ok(status),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
                    };
                    (node, outcome)
                }
            });
            for (node, outcome) in futures_util::future::join_all(probes).await {
                self.record(&node, outcome);
            }
        }
    }

    /// Records a probe's outcome and logs a change of state.
    pub fn record(&self, node: &NodeInfo, outcome: Result<NodeStatus, String>) {
        let mut nodes = self.write();
        let tracked = nodes.entry(node.node_id.clone()).or_insert_with(|| Tracked::fresh(node));
        let health = &mut tracked.health;
        health.rpc_addr = node.rpc_addr.clone();
        let state = match outcome {
            Ok(status) => {
                health.failed_probes = 0;
                health.last_error = None;
                let state = if status.recovering {
                    NodeState::Recovering
                } else if status.free_bytes < status.reserve_bytes {
                    NodeState::Degraded
                } else {
                    NodeState::Healthy
                };
                health.status = Some(status);
                state
            }
            Err(error) => {
                health.failed_probes = health.failed_probes.saturating_add(1);
                health.last_error = Some(error);
                if health.failed_probes >= self.config.down_after {
                    NodeState::Down
                } else if health.failed_probes >= self.config.suspect_after {
                    NodeState::Suspect
                } else {
                    health.state
                }
            }
        };
        if state != health.state {
            tracing::info!(
                node = %health.node_id,
                from = health.state.name(),
                to = state.name(),
                error = health.last_error.as_deref().unwrap_or(""),
                "node state changed"
            );
            health.state = state;
            health.since_ms = now_ms();
        }
    }

    fn counter(&self, node: &NodeInfo) -> Arc<AtomicUsize> {
        if let Some(tracked) = self.read().get(&node.node_id) {
            return tracked.in_flight.clone();
        }
        self.write().entry(node.node_id.clone()).or_insert_with(|| Tracked::fresh(node)).in_flight.clone()
    }

    fn forget_all_but(&self, current: &[NodeInfo]) {
        self.write().retain(|id, _| current.iter().any(|n| &n.node_id == id));
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Tracked>> {
        self.nodes.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Tracked>> {
        self.nodes.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> NodeInfo {
        NodeInfo { node_id: id.into(), rpc_addr: format!("{id}:1"), ..NodeInfo::default() }
    }

    fn status(free: u64) -> NodeStatus {
        NodeStatus {
            node_id: String::new(),
            capacity_bytes: 100,
            free_bytes: free,
            reserve_bytes: 10,
            used_bytes: 0,
            chunk_count: 0,
            recovering: false,
            scrub: None,
            rebuilding: false,
            sync: None,
            gc: None,
            ..NodeStatus::default()
        }
    }

    #[test]
    fn failed_probes_make_a_node_suspect_then_down_and_one_answer_heals_it() {
        let detector = FailureDetector::new(DetectorConfig { suspect_after: 1, down_after: 3, ..Default::default() });
        let a = node("a");
        assert_eq!(detector.state("a"), NodeState::Healthy);
        detector.record(&a, Err("refused".into()));
        assert_eq!(detector.state("a"), NodeState::Suspect);
        detector.record(&a, Err("refused".into()));
        assert_eq!(detector.state("a"), NodeState::Suspect);
        detector.record(&a, Err("refused".into()));
        assert_eq!(detector.state("a"), NodeState::Down);
        assert!(detector.writable(vec![a.clone(), node("b")]).iter().all(|n| n.node_id == "b"));
        detector.record(&a, Ok(status(50)));
        assert_eq!(detector.state("a"), NodeState::Healthy);
        detector.record(&a, Ok(status(5)));
        assert_eq!(detector.state("a"), NodeState::Degraded);
        assert_eq!(detector.snapshot()[0].failed_probes, 0);
    }

    #[test]
    fn reads_prefer_healthy_replicas_with_fewer_requests_in_flight() {
        let detector = FailureDetector::new(DetectorConfig::default());
        let (a, b, c) = (node("a"), node("b"), node("c"));
        let order = |d: &FailureDetector| -> Vec<String> {
            d.read_order(vec![a.clone(), b.clone(), c.clone()]).into_iter().map(|n| n.node_id).collect()
        };
        assert_eq!(order(&detector), ["a", "b", "c"]);
        let _busy = detector.start_request(&a);
        assert_eq!(order(&detector), ["b", "c", "a"]);
        detector.record(&b, Err("timeout".into()));
        assert_eq!(order(&detector), ["c", "a", "b"]);
        drop(_busy);
        assert_eq!(order(&detector), ["a", "c", "b"]);
    }
}
