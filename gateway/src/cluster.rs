//! The gateway's view of the control plane: it follows the cluster state from any node and
//! sends control commands (bucket and key changes) to the cluster.

use std::sync::Arc;
use std::time::Duration;

use cairn_storage_node::control::{BucketInfo, ClusterState, Command, CommandResult, NodeInfo};
use cairn_storage_node::rpc::client::NodeClient;
use serde::Serialize;
use tokio::sync::watch;

/// How long one long-poll for a new cluster state may wait at the node.
const STATE_POLL_WAIT_MS: u64 = 20_000;
/// Pause before retrying after every known node failed to answer.
const RETRY_PAUSE_MS: u64 = 250;
/// Path of the control-plane state long-poll.
const STATE_PATH: &str = "/control/state";
/// How long a command's caller waits for the command to show in this view.
const SETTLE_WAIT_MS: u64 = 5_000;
/// Path of control-plane commands.
const COMMAND_PATH: &str = "/control/command";

/// Why the cluster could not be reached or changed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No node answered.
    #[error("no storage node answered: {0}")]
    Unreachable(String),
}

#[derive(Serialize)]
struct StateRequest {
    known_version: u64,
    wait_ms: u64,
}

/// A live view of the cluster state, kept current by a background task.
pub struct Cluster {
    state: watch::Receiver<Arc<ClusterState>>,
    client: NodeClient,
    seeds: Vec<String>,
}

impl Cluster {
    /// Fetches the state from one of `seeds` (retrying until `deadline`) and starts following it.
    pub async fn connect(
        seeds: Vec<String>,
        client: NodeClient,
        deadline: Duration,
    ) -> Result<Arc<Self>, ClusterError> {
        let give_up = tokio::time::Instant::now() + deadline;
        let initial = loop {
            match fetch_state(&client, &seeds, 0, 0).await {
                Ok(state) if state.version > 0 => break state,
                Ok(_) | Err(_) if tokio::time::Instant::now() < give_up => {
                    tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
                }
                Ok(_) => return Err(ClusterError::Unreachable("the cluster is not initialised".into())),
                Err(e) => return Err(e),
            }
        };
        let (sender, state) = watch::channel(Arc::new(initial));
        let cluster = Arc::new(Self { state, client, seeds });
        let follower = Arc::downgrade(&cluster);
        tokio::spawn(async move {
            while let Some(cluster) = follower.upgrade() {
                let known = cluster.state().version;
                let addrs = cluster.candidate_addrs();
                let client = cluster.client.clone();
                drop(cluster);
                match fetch_state(&client, &addrs, known, STATE_POLL_WAIT_MS).await {
                    Ok(state) if state.version > known => {
                        if sender.send(Arc::new(state)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "following the cluster state failed");
                        tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
                    }
                }
            }
        });
        Ok(cluster)
    }

    /// Waits until the state satisfies `done`, at most `timeout`; whether it does.
    pub async fn wait_until(&self, done: impl Fn(&ClusterState) -> bool, timeout: std::time::Duration) -> bool {
        let mut state = self.state.clone();
        matches!(tokio::time::timeout(timeout, state.wait_for(|s| done(s))).await, Ok(Ok(_)))
    }

    /// The current cluster state.
    pub fn state(&self) -> Arc<ClusterState> {
        self.state.borrow().clone()
    }

    /// A bucket by name.
    pub fn bucket(&self, name: &str) -> Option<BucketInfo> {
        self.state.borrow().buckets.get(name).cloned()
    }

    /// The replicas of `placement_key`'s partition that reads go to (see
    /// [`ClusterState::read_nodes`]), primary first.
    pub fn read_replicas(&self, placement_key: &[u8]) -> Vec<NodeInfo> {
        self.state.borrow().read_nodes(placement_key)
    }

    /// The replica sets a write to `placement_key` must meet its quorum in (see
    /// [`ClusterState::write_sets`]).
    pub fn write_sets(&self, placement_key: &[u8]) -> Vec<Vec<NodeInfo>> {
        self.state.borrow().write_sets(placement_key)
    }

    /// Sends a command to the cluster; after it succeeds, waits (briefly) until this view
    /// shows its effect (`settled`), so the next request sees it.
    pub async fn command(
        &self,
        command: &Command,
        settled: impl Fn(&ClusterState) -> bool,
    ) -> Result<CommandResult, ClusterError> {
        let mut last_error = String::from("no nodes known");
        for addr in self.candidate_addrs() {
            match self.client.post_json::<_, CommandResult>(&addr, COMMAND_PATH, command).await {
                Ok(result) => {
                    if result == CommandResult::Ok {
                        let mut view = self.state.clone();
                        let wait = view.wait_for(|state| settled(state));
                        if tokio::time::timeout(Duration::from_millis(SETTLE_WAIT_MS), wait).await.is_err() {
                            tracing::warn!(?command, "command applied but not yet visible to this gateway");
                        }
                    }
                    return Ok(result);
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(ClusterError::Unreachable(last_error))
    }

    /// Node addresses to try: every known node, then the configured seeds.
    fn candidate_addrs(&self) -> Vec<String> {
        let state = self.state.borrow();
        let mut addrs: Vec<String> = state.nodes.values().map(|n| n.rpc_addr.clone()).collect();
        for seed in &self.seeds {
            if !addrs.contains(seed) {
                addrs.push(seed.clone());
            }
        }
        addrs
    }
}

async fn fetch_state(
    client: &NodeClient,
    addrs: &[String],
    known_version: u64,
    wait_ms: u64,
) -> Result<ClusterState, ClusterError> {
    let mut last_error = String::from("no nodes known");
    let request = StateRequest { known_version, wait_ms };
    for addr in addrs {
        match client.post_json::<_, ClusterState>(addr, STATE_PATH, &request).await {
            Ok(state) => return Ok(state),
            Err(e) => last_error = e.to_string(),
        }
    }
    Err(ClusterError::Unreachable(last_error))
}
