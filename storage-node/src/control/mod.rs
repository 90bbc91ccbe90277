//! The control plane: nodes, layout, buckets, access keys and cluster settings, replicated by
//! Raft (openraft) over the storage nodes.
//!
//! - [`state`]: the replicated [`ClusterState`] and the [`Command`]s that change it.
//! - [`log_store`]: the redb file holding the Raft log, vote and snapshot.
//! - [`state_machine`]: the in-memory state machine and its snapshots.
//! - [`network`]: Raft RPCs over the node transport ([`ControlTransport`]).
//! - [`mod@routes`]: the HTTP side: Raft RPCs, commands, joins and the state long-poll.
//!
//! Voters are the first [`MAX_VOTERS`] nodes to join; later nodes are learners. Gateways follow
//! the state by long-polling `/control/state` on any node.

pub mod bucket_config;
pub mod log_store;
pub mod network;
pub mod routes;
pub mod state;
pub mod state_machine;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{ChangeMembers, Raft, RaftMetrics, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;

pub use bucket_config::{BucketChange, CannedAcl, CorsRule, Permissions};
pub use log_store::{ControlStore, StoreClosed, StoreError};
pub use network::{CallError, ControlTransport, TransportError};
pub use routes::{Invitation, routes};
pub use state::{
    AccessKey, BucketInfo, ClusterSettings, ClusterState, Command, CommandResult, Consistency, LayoutTransition,
    Membership, NodeInfo,
};

use network::{NetworkFactory, PATH_COMMAND, PATH_JOIN};
use state_machine::StateMachineStore;

openraft::declare_raft_types!(
    /// Raft type configuration of the control plane.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = ControlNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// Most voters in the Raft group; further nodes are learners.
pub const MAX_VOTERS: usize = 5;
/// Longest wait a `/control/state` long-poll may ask for.
pub const MAX_STATE_WAIT_MS: u64 = 30_000;
/// Snapshot bytes per InstallSnapshot message (JSON inflates them about fourfold).
pub const SNAPSHOT_CHUNK_BYTES: u64 = 1024 * 1024;
/// Longest wait in [`ControlPlane::start`] for Raft to report its restored state.
const STARTUP_TIMEOUT_MS: u64 = 10_000;
/// Longest wait in [`ControlPlane::shutdown`] for Raft's tasks to close the store.
const STORE_RELEASE_TIMEOUT_MS: u64 = 10_000;
/// First delay between retries of a command, forward or join.
const RETRY_INITIAL_DELAY_MS: u64 = 50;
/// Longest delay between retries.
const RETRY_MAX_DELAY_MS: u64 = 1_000;

/// A Raft member as stored in the membership config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlNode {
    /// Stable node id.
    pub node_id: String,
    /// Internal RPC address, `host:port`.
    pub rpc_addr: String,
}

/// The Raft id of a node: the first 8 bytes (big-endian) of SHA-256 of its node id.
pub fn raft_id(node_id: &str) -> u64 {
    let digest = Sha256::digest(node_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Failure of a control-plane operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The redb store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The Raft timing configuration is invalid.
    #[error("raft configuration: {0}")]
    Config(Box<openraft::ConfigError>),
    /// The node configuration is invalid.
    #[error("invalid node: {0}")]
    InvalidNode(String),
    /// The Raft core stopped (shutdown or storage failure).
    #[error("raft stopped: {0}")]
    Fatal(String),
    /// No leader could be reached before the deadline.
    #[error("no control-plane leader within {0:?}")]
    NoLeader(Duration),
    /// A call to a peer failed.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The operation was refused.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The operation did not finish before its deadline.
    #[error("{0} timed out")]
    Timeout(&'static str),
}

/// Configuration of the local control-plane replica.
#[derive(Clone, Debug)]
pub struct ControlConfig {
    /// This node.
    pub node: NodeInfo,
    /// Path of the control-plane redb file.
    pub db_path: PathBuf,
    /// Leader heartbeat period.
    pub heartbeat_interval_ms: u64,
    /// Lower bound of the randomized election timeout.
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomized election timeout.
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many log entries since the last one.
    pub snapshot_every_logs: u64,
    /// Log entries kept behind a snapshot, so that slightly lagging followers need no snapshot.
    pub logs_kept_after_snapshot: u64,
    /// Deadline of one command, including leader election and forwarding.
    pub command_timeout_ms: u64,
    /// Deadline of a join, including waiting for the seed and catching up.
    pub join_timeout_ms: u64,
}

impl ControlConfig {
    /// Defaults suited to a LAN: 200 ms heartbeats, 1–2 s election timeouts.
    pub fn new(node: NodeInfo, db_path: PathBuf) -> Self {
        ControlConfig {
            node,
            db_path,
            heartbeat_interval_ms: 200,
            election_timeout_min_ms: 1_000,
            election_timeout_max_ms: 2_000,
            snapshot_every_logs: 1_000,
            logs_kept_after_snapshot: 100,
            command_timeout_ms: 15_000,
            join_timeout_ms: 60_000,
        }
    }
}

/// Exponential backoff bounded by a deadline.
struct Retry {
    deadline: Instant,
    delay: Duration,
}

impl Retry {
    fn new(timeout: Duration) -> Self {
        Retry { deadline: Instant::now() + timeout, delay: Duration::from_millis(RETRY_INITIAL_DELAY_MS) }
    }

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Sleeps before the next attempt; false (after sleeping out the rest) once the deadline
    /// leaves no time for another attempt.
    async fn backoff(&mut self) -> bool {
        tokio::time::sleep(self.delay.min(self.remaining())).await;
        self.delay = (self.delay * 2).min(Duration::from_millis(RETRY_MAX_DELAY_MS));
        !self.remaining().is_zero()
    }
}

/// What a local attempt at a leader-only operation found.
enum LeaderOnly<R> {
    Done(R),
    /// Another node leads; retry there.
    Forward(ControlNode),
    /// No leader right now, or a membership change is in progress; retry later.
    Later(String),
}

/// The local control-plane replica.
pub struct ControlPlane<T: ControlTransport> {
    raft: Raft<TypeConfig>,
    node: NodeInfo,
    transport: Arc<T>,
    state: watch::Receiver<Arc<ClusterState>>,
    /// Serialises joins handled by this node, so membership changes do not collide.
    join_lock: Mutex<()>,
    command_timeout: Duration,
    join_timeout: Duration,
    /// Fires once Raft's tasks have all let go of the store file.
    store_closed: Mutex<Option<StoreClosed>>,
}

impl<T: ControlTransport> ControlPlane<T> {
    /// Opens the store and starts the Raft replica; a restarted node resumes its membership.
    pub async fn start(config: ControlConfig, transport: T) -> Result<Arc<Self>, ControlError> {
        let node = config.node.clone();
        if node.raft_id != raft_id(&node.node_id) {
            return Err(ControlError::InvalidNode(format!(
                "raft_id {} is not derived from node id {:?}",
                node.raft_id, node.node_id
            )));
        }
        let raft_config = openraft::Config {
            cluster_name: "cairn-control".into(),
            heartbeat_interval: config.heartbeat_interval_ms,
            election_timeout_min: config.election_timeout_min_ms,
            election_timeout_max: config.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every_logs),
            max_in_snapshot_log_to_keep: config.logs_kept_after_snapshot,
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
            // One chunk travels and is written within this time, or the send is retried.
            install_snapshot_timeout: config.election_timeout_max_ms.max(1_000),
            ..Default::default()
        }
        .validate()
        .map_err(|e| ControlError::Config(Box::new(e)))?;

        let path = config.db_path.clone();
        let (store, store_closed) = tokio::task::spawn_blocking(move || ControlStore::open(&path))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))??;
        let log_store = store.log_store();
        let (state_machine, state) = StateMachineStore::open(store).await?;
        let transport = Arc::new(transport);
        let raft = Raft::new(
            node.raft_id,
            Arc::new(raft_config),
            NetworkFactory::new(transport.clone()),
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| ControlError::Fatal(e.to_string()))?;
        // Metrics lag the Raft core; wait until they show the stored membership so that
        // `is_initialized` and the announce check below see the restored replica.
        let stored_membership = raft
            .with_raft_state(|st| *st.membership_state.effective().log_id())
            .await
            .map_err(|e| ControlError::Fatal(e.to_string()))?;
        raft.wait(Some(Duration::from_millis(STARTUP_TIMEOUT_MS)))
            .metrics(|m| *m.membership_config.log_id() >= stored_membership, "metrics show the stored membership")
            .await
            .map_err(|_| ControlError::Timeout("starting raft"))?;

        let control = Arc::new(ControlPlane {
            raft,
            node,
            transport,
            state,
            join_lock: Mutex::new(()),
            command_timeout: Duration::from_millis(config.command_timeout_ms),
            join_timeout: Duration::from_millis(config.join_timeout_ms),
            store_closed: Mutex::new(Some(store_closed)),
        });
        if control.needs_announce() {
            // A restarted member whose address, zone or weight changed tells the leader, so
            // that peers reach it at its new address and the layout sees the change.
            let announcer = control.clone();
            tokio::spawn(async move {
                match announcer.announce().await {
                    Ok(result) => tracing::info!(?result, "announced changed node info"),
                    Err(e) => tracing::warn!(error = %e, "could not announce changed node info"),
                }
            });
        }
        Ok(control)
    }

    fn control_node(&self) -> ControlNode {
        ControlNode { node_id: self.node.node_id.clone(), rpc_addr: self.node.rpc_addr.clone() }
    }

    fn needs_announce(&self) -> bool {
        let metrics = self.raft.metrics().borrow().clone();
        let Some(member) = metrics.membership_config.membership().get_node(&self.node.raft_id) else {
            return false;
        };
        *member != self.control_node() || !self.state.borrow().knows_node(&self.node)
    }

    /// This node's description.
    pub fn node(&self) -> &NodeInfo {
        &self.node
    }

    /// The underlying Raft handle (metrics, health).
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// Raft metrics of this replica.
    pub fn metrics(&self) -> watch::Receiver<RaftMetrics<u64, ControlNode>> {
        self.raft.metrics()
    }

    /// The applied cluster state, updated after every applied batch.
    pub fn state(&self) -> watch::Receiver<Arc<ClusterState>> {
        self.state.clone()
    }

    /// Whether this replica belongs to an initialized Raft group.
    pub fn is_initialized(&self) -> bool {
        self.raft.metrics().borrow().membership_config.membership().voter_ids().next().is_some()
    }

    /// The state as soon as its version exceeds `known_version`, or the current one after `wait`.
    pub async fn wait_state(&self, known_version: u64, wait: Duration) -> Arc<ClusterState> {
        let mut rx = self.state.clone();
        let wait = wait.min(Duration::from_millis(MAX_STATE_WAIT_MS));
        let newer = tokio::time::timeout(wait, rx.wait_for(|s| s.version > known_version)).await;
        match newer {
            Ok(Ok(state)) => state.clone(),
            // Timed out, or the state machine is gone: answer with what is there.
            _ => self.state.borrow().clone(),
        }
    }

    /// Turns this node into a single-voter cluster with `settings`; a no-op if it already
    /// belongs to a cluster of more nodes.
    pub async fn bootstrap(&self, settings: ClusterSettings) -> Result<(), ControlError> {
        settings.validate().map_err(ControlError::Rejected)?;
        let id = self.node.raft_id;
        let initialized = self.raft.is_initialized().await.map_err(|e| ControlError::Fatal(e.to_string()))?;
        if initialized {
            let voters: Vec<u64> = self.raft.metrics().borrow().membership_config.membership().voter_ids().collect();
            if voters != [id] {
                return Ok(());
            }
            // Our own single-voter cluster: finish a bootstrap a crash may have interrupted.
        } else {
            let members = BTreeMap::from([(id, self.control_node())]);
            match self.raft.initialize(members).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(ControlError::Fatal(e.to_string())),
            }
        }
        if !self.state.borrow().has_settings() {
            let result = self.command(Command::InitSettings(settings)).await?;
            if result != CommandResult::Ok && !self.state.borrow().has_settings() {
                return Err(ControlError::Rejected(format!("{result:?}")));
            }
        }
        if !self.state.borrow().knows_node(&self.node) {
            let result = self.command(Command::AddNode(self.node.clone())).await?;
            if result != CommandResult::Ok {
                return Err(ControlError::Rejected(format!("{result:?}")));
            }
        }
        Ok(())
    }

    /// Joins the cluster that the node at `seed_addr` belongs to, retrying until the join
    /// deadline; returns once this replica has applied its own membership.
    pub async fn join(&self, seed_addr: &str) -> Result<(), ControlError> {
        let mut retry = Retry::new(self.join_timeout);
        loop {
            let attempt = tokio::time::timeout(
                retry.remaining(),
                network::call::<_, _, CommandResult>(self.transport.as_ref(), seed_addr, PATH_JOIN, &self.node),
            )
            .await;
            match attempt {
                Ok(Ok(CommandResult::Ok)) => break,
                Ok(Ok(other)) => return Err(ControlError::Rejected(format!("{other:?}"))),
                Ok(Err(e)) => {
                    tracing::info!(seed = seed_addr, error = %e, "join attempt failed");
                    if !retry.backoff().await {
                        return Err(e.into());
                    }
                }
                Err(_) => return Err(ControlError::Timeout("join")),
            }
        }
        let mut rx = self.state.clone();
        let applied = tokio::time::timeout(retry.remaining(), rx.wait_for(|s| s.knows_node(&self.node))).await;
        match applied {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ControlError::Fatal("state machine stopped".into())),
            Err(_) => Err(ControlError::Timeout("catching up after join")),
        }
    }

    /// Commits `command` through the leader (here or forwarded) and returns its result.
    pub async fn command(&self, command: Command) -> Result<CommandResult, ControlError> {
        let mut retry = Retry::new(self.command_timeout);
        loop {
            let write = tokio::time::timeout(retry.remaining(), self.raft.client_write(command.clone()))
                .await
                .map_err(|_| ControlError::Timeout("command"))?;
            let leader = match write {
                Ok(response) => return Ok(response.data),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => f.leader_node,
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                    return Err(ControlError::Rejected(e.to_string()));
                }
                Err(RaftError::Fatal(e)) => return Err(ControlError::Fatal(e.to_string())),
            };
            if let Some(leader) = leader {
                let forwarded = tokio::time::timeout(
                    retry.remaining(),
                    network::call(self.transport.as_ref(), &leader.rpc_addr, PATH_COMMAND, &command),
                )
                .await
                .map_err(|_| ControlError::Timeout("forwarded command"))?;
                match forwarded {
                    Ok(result) => return Ok(result),
                    Err(e) => {
                        // The leader may have just died; a new one will be elected.
                        tracing::info!(leader = %leader.node_id, error = %e, "forward failed");
                        if !retry.backoff().await {
                            return Err(e.into());
                        }
                    }
                }
            } else if !retry.backoff().await {
                return Err(ControlError::NoLeader(self.command_timeout));
            }
        }
    }

    /// Admits `node` to the Raft group and the cluster state (on the leader, forwarding if
    /// this node is not it); idempotent.
    pub async fn handle_join(&self, node: NodeInfo) -> Result<CommandResult, ControlError> {
        if node.raft_id != raft_id(&node.node_id) {
            return Ok(CommandResult::Rejected(format!(
                "raft_id {} is not derived from node id {:?}",
                node.raft_id, node.node_id
            )));
        }
        let mut retry = Retry::new(self.join_timeout);
        loop {
            let why = match self.join_locally(&node, &retry).await? {
                LeaderOnly::Done(result) => return Ok(result),
                LeaderOnly::Later(why) => why,
                LeaderOnly::Forward(leader) => {
                    let forwarded = tokio::time::timeout(
                        retry.remaining(),
                        network::call(self.transport.as_ref(), &leader.rpc_addr, PATH_JOIN, &node),
                    )
                    .await
                    .map_err(|_| ControlError::Timeout("forwarded join"))?;
                    match forwarded {
                        Ok(result) => return Ok(result),
                        Err(e) => e.to_string(),
                    }
                }
            };
            tracing::info!(node = %node.node_id, reason = %why, "join retry");
            if !retry.backoff().await {
                return Err(ControlError::Rejected(format!("join failed: {why}")));
            }
        }
    }

    /// Sends this node's current info to the leader after a restart. Peers may only know
    /// the old address, so the leader may never contact this node first: go round the other
    /// members, which forward to the leader they know.
    async fn announce(&self) -> Result<CommandResult, ControlError> {
        let mut retry = Retry::new(self.join_timeout);
        let mut attempt = 0usize;
        loop {
            let metrics = self.raft.metrics().borrow().clone();
            if metrics.current_leader == Some(self.node.raft_id) {
                return self.handle_join(self.node.clone()).await;
            }
            let membership = metrics.membership_config.membership();
            let known_leader = metrics.current_leader.and_then(|id| membership.get_node(&id));
            let others: Vec<&ControlNode> =
                membership.nodes().filter(|(id, _)| **id != self.node.raft_id).map(|(_, node)| node).collect();
            let target = known_leader.or_else(|| others.get(attempt % others.len().max(1)).copied()).cloned();
            attempt += 1;
            let why = match target {
                Some(peer) => {
                    let answer = tokio::time::timeout(
                        retry.remaining(),
                        network::call(self.transport.as_ref(), &peer.rpc_addr, PATH_JOIN, &self.node),
                    )
                    .await
                    .map_err(|_| ControlError::Timeout("announce"))?;
                    match answer {
                        Ok(result) => return Ok(result),
                        Err(e) => e.to_string(),
                    }
                }
                None => "no other member".to_string(),
            };
            if !retry.backoff().await {
                return Err(ControlError::Rejected(format!("announce failed: {why}")));
            }
        }
    }

    /// One attempt at a join on this node.
    async fn join_locally(&self, node: &NodeInfo, retry: &Retry) -> Result<LeaderOnly<CommandResult>, ControlError> {
        let serialised = self.join_lock.lock().await;
        let metrics = self.raft.metrics().borrow().clone();
        let leader = metrics.current_leader;
        if leader != Some(self.node.raft_id) {
            let leader_node = leader.and_then(|id| metrics.membership_config.membership().get_node(&id).cloned());
            return Ok(match leader_node {
                Some(leader_node) => LeaderOnly::Forward(leader_node),
                None => LeaderOnly::Later("no leader".into()),
            });
        }
        // A bootstrapping leader commits its settings right after initialising Raft; admitting
        // a voter before that could leave the settings uncommittable if the joiner dies.
        if !self.state.borrow().has_settings() {
            return Ok(LeaderOnly::Later("cluster settings not initialised yet".into()));
        }
        let id = node.raft_id;
        let member = ControlNode { node_id: node.node_id.clone(), rpc_addr: node.rpc_addr.clone() };
        let membership = metrics.membership_config.membership().clone();
        match membership.get_node(&id) {
            Some(existing) if existing.node_id != node.node_id => {
                return Ok(LeaderOnly::Done(CommandResult::Rejected(format!(
                    "raft id {id} already belongs to node {:?}",
                    existing.node_id
                ))));
            }
            Some(existing) if *existing == member => {}
            Some(_) => {
                // Same node, new address: replacing the node entry is safe because its
                // identity (and so every quorum) is unchanged.
                let change = ChangeMembers::SetNodes(BTreeMap::from([(id, member.clone())]));
                if let Some(later) = self.change_membership(change).await? {
                    return Ok(later);
                }
            }
            None => {
                let added = self.raft.add_learner(id, member.clone(), false).await;
                let log_index = match added {
                    Ok(response) => response.log_id.index,
                    Err(e) => return membership_error(e),
                };
                self.wait_caught_up(id, log_index, retry.remaining()).await?;
            }
        }
        let voters: BTreeSet<u64> = self.raft.metrics().borrow().membership_config.membership().voter_ids().collect();
        if !voters.contains(&id) && voters.len() < MAX_VOTERS {
            // A learner added by an earlier, interrupted join may still be behind.
            let last = self.raft.metrics().borrow().last_log_index.unwrap_or(0);
            self.wait_caught_up(id, last, retry.remaining()).await?;
            let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
            if let Some(later) = self.change_membership(change).await? {
                return Ok(later);
            }
        }
        drop(serialised);
        let result = self.command(Command::AddNode(node.clone())).await?;
        Ok(LeaderOnly::Done(result))
    }

    /// Proposes a membership change; `Some` when it has to be retried.
    async fn change_membership(
        &self,
        change: ChangeMembers<u64, ControlNode>,
    ) -> Result<Option<LeaderOnly<CommandResult>>, ControlError> {
        match self.raft.change_membership(change, true).await {
            Ok(_) => Ok(None),
            Err(e) => membership_error(e).map(Some),
        }
    }

    /// Waits until the leader has replicated the log up to `log_index` to node `id`.
    async fn wait_caught_up(&self, id: u64, log_index: u64, timeout: Duration) -> Result<(), ControlError> {
        let caught_up = self
            .raft
            .wait(Some(timeout))
            .metrics(
                |m| {
                    let matched = m.replication.as_ref().and_then(|r| r.get(&id).copied().flatten());
                    // No replication metrics means this node is no longer the leader; stop
                    // waiting and let the next step find out.
                    m.replication.is_none() || matched.is_some_and(|l| l.index >= log_index)
                },
                "learner caught up",
            )
            .await;
        caught_up.map(|_| ()).map_err(|_| ControlError::Timeout("learner catch-up"))
    }

    /// Stops the Raft replica and waits until its store file is closed, so that the same
    /// data dir can be opened again.
    pub async fn shutdown(&self) -> Result<(), ControlError> {
        self.raft.shutdown().await.map_err(|e| ControlError::Fatal(e.to_string()))?;
        // The state machine worker and replication tasks wind down after the Raft core
        // and close the file when the last of them ends.
        let Some(closed) = self.store_closed.lock().await.take() else {
            return Ok(());
        };
        let timeout = Duration::from_millis(STORE_RELEASE_TIMEOUT_MS);
        tokio::time::timeout(timeout, closed.wait())
            .await
            .map_err(|_| ControlError::Timeout("closing the control store"))
    }
}

/// Sorts a membership-change failure into retry-here, retry-at-leader or fatal.
fn membership_error<R>(e: RaftError<u64, ClientWriteError<u64, ControlNode>>) -> Result<LeaderOnly<R>, ControlError> {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => Ok(match f.leader_node {
            Some(leader) => LeaderOnly::Forward(leader),
            None => LeaderOnly::Later("no leader".into()),
        }),
        // In progress, or a learner not yet visible: another change has to settle first.
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => Ok(LeaderOnly::Later(e.to_string())),
        RaftError::Fatal(e) => Err(ControlError::Fatal(e.to_string())),
    }
}
