//! Cluster routes: the status at a glance, the nodes, the layout and changes to it.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use cairn_storage_node::control::{ClusterState, Command, Invitation, Membership, NodeInfo};
use cairn_storage_node::failure_detector::NodeHealth;
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::error::{AdminError, AdminResult, JsonBody, command_outcome};
use crate::timefmt::now_ms;

/// What `GET /v1/status` answers: the health verdict, the layout, bucket totals and every
/// node of the layout as this gateway's failure detector sees it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// Control-plane state version.
    pub state_version: u64,
    /// The health verdict and its reasons.
    pub health: crate::health::ClusterHealth,
    /// Current layout version.
    #[serde(default)]
    pub layout_version: u64,
    /// Version data is moving from, while a layout move is in progress.
    #[serde(default)]
    pub moving_from: Option<u64>,
    /// Buckets, objects and bytes stored (from the running totals).
    #[serde(default)]
    pub usage: UsageTotals,
    /// The nodes.
    pub nodes: Vec<NodeHealth>,
}

/// Totals over every bucket.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct UsageTotals {
    /// Buckets.
    pub buckets: u64,
    /// Objects.
    pub objects: u64,
    /// Bytes of objects (before replication).
    pub bytes: u64,
    /// False when some bucket index shard had no replica answering.
    pub complete: bool,
}

pub(super) async fn status(State(admin): State<Arc<AdminState>>) -> Json<ClusterStatus> {
    Json(cluster_status(&admin).await)
}

/// The cluster at a glance (the admin API's status and the console's overview).
pub(crate) async fn cluster_status(admin: &AdminState) -> ClusterStatus {
    let state = admin.gateway.state();
    let nodes = admin.gateway.replication.detector().snapshot();
    let health = crate::health::assess(&state, &nodes);
    let buckets: Vec<_> = state.buckets.values().cloned().collect();
    let usage = crate::usage::bucket_usage(&admin.gateway.replication, &state, &buckets).await;
    let usage = UsageTotals {
        buckets: usage.len() as u64,
        objects: usage.values().map(|u| u.objects).sum(),
        bytes: usage.values().map(|u| u.bytes).sum(),
        complete: usage.values().all(|u| u.complete),
    };
    ClusterStatus {
        state_version: state.version,
        health,
        layout_version: state.layout.version,
        moving_from: state.transition.as_ref().map(|t| t.previous.version),
        usage,
        nodes,
    }
}

/// A node as `GET /v1/nodes` shows it: its place in the layout and what it last reported.
#[derive(Debug, Serialize, Deserialize)]
pub struct NodeView {
    /// Node id.
    pub node_id: String,
    /// RPC address.
    pub rpc_addr: String,
    /// Failure zone.
    pub zone: String,
    /// Relative share of partitions.
    pub capacity_weight: u32,
    /// `active`, `removed` or `evicted`.
    pub membership: String,
    /// `healthy`, `degraded`, `suspect`, `recovering` or `down`, as this gateway sees it.
    pub state: String,
    /// Partition replicas it holds in the current layout.
    pub partitions: usize,
    /// Size of the file system holding its chunks (absent until it answered a probe).
    pub capacity_bytes: Option<u64>,
    /// Bytes of chunk files.
    pub used_bytes: Option<u64>,
    /// Free bytes on that file system.
    pub free_bytes: Option<u64>,
    /// Inodes of that file system.
    pub inodes: Option<u64>,
    /// Free inodes.
    pub free_inodes: Option<u64>,
    /// Software version.
    pub version: Option<String>,
    /// Seconds since the node process started.
    pub uptime_secs: Option<u64>,
    /// Why the last probe failed, if it did.
    pub last_error: Option<String>,
}

/// Every node the control plane knows, joined with what the failure detector last heard.
pub(super) fn node_views(state: &ClusterState, seen: &[NodeHealth]) -> Vec<NodeView> {
    let now = now_ms();
    state
        .nodes
        .values()
        .map(|n| {
            let health = seen.iter().find(|h| h.node_id == n.node_id);
            let status = health.and_then(|h| h.status.as_ref());
            NodeView {
                node_id: n.node_id.clone(),
                rpc_addr: n.rpc_addr.clone(),
                zone: n.zone.clone(),
                capacity_weight: n.capacity_weight,
                membership: n.membership.name().to_owned(),
                state: health.map_or("unknown", |h| h.state.name()).to_owned(),
                partitions: state.layout.partitions_of_node(&n.node_id).count(),
                capacity_bytes: status.map(|s| s.capacity_bytes),
                used_bytes: status.map(|s| s.used_bytes),
                free_bytes: status.map(|s| s.free_bytes),
                inodes: status.map(|s| s.inodes),
                free_inodes: status.map(|s| s.free_inodes),
                version: status.map(|s| s.version.clone()).filter(|v| !v.is_empty()),
                uptime_secs: status.filter(|s| s.started_ms > 0).map(|s| now.saturating_sub(s.started_ms) / 1000),
                last_error: health.and_then(|h| h.last_error.clone()),
            }
        })
        .collect()
}

pub(super) async fn nodes(State(admin): State<Arc<AdminState>>) -> Json<Vec<NodeView>> {
    Json(node_views(&admin.gateway.state(), &admin.gateway.replication.detector().snapshot()))
}

/// A node as the layout sees it.
#[derive(Debug, Serialize, Deserialize)]
pub struct LayoutNode {
    /// Node id.
    pub node_id: String,
    /// RPC address.
    pub rpc_addr: String,
    /// Failure zone.
    pub zone: String,
    /// Relative share of partitions.
    pub capacity_weight: u32,
    /// `active`, `removed` or `evicted`.
    pub membership: String,
    /// Partition replicas it holds in the current layout.
    pub partitions: usize,
    /// Partition replicas it held in the previous layout, while a move is in progress.
    pub previous_partitions: Option<usize>,
    /// Whether it has pulled every partition it gained, while a move is in progress.
    pub synced: Option<bool>,
}

/// What `GET /v1/layout` answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct LayoutView {
    /// Current layout version.
    pub version: u64,
    /// Partitions.
    pub partition_count: u32,
    /// Replicas per partition.
    pub replication_factor: u8,
    /// Version of the layout data is moving from, while a move is in progress.
    pub moving_from: Option<u64>,
    /// Every node the control plane knows.
    pub nodes: Vec<LayoutNode>,
}

fn layout_view(state: &ClusterState) -> LayoutView {
    let transition = state.transition.as_ref();
    let nodes = state
        .nodes
        .values()
        .map(|n| LayoutNode {
            node_id: n.node_id.clone(),
            rpc_addr: n.rpc_addr.clone(),
            zone: n.zone.clone(),
            capacity_weight: n.capacity_weight,
            membership: n.membership.name().to_owned(),
            partitions: state.layout.partitions_of_node(&n.node_id).count(),
            previous_partitions: transition.map(|t| t.previous.partitions_of_node(&n.node_id).count()),
            synced: transition.map(|t| t.synced.contains(&n.node_id) || !state.layout.nodes.contains(&n.node_id)),
        })
        .collect();
    LayoutView {
        version: state.layout.version,
        partition_count: state.layout.partition_count,
        replication_factor: state.layout.replication_factor,
        moving_from: transition.map(|t| t.previous.version),
        nodes,
    }
}

pub(super) async fn layout(State(admin): State<Arc<AdminState>>) -> Json<LayoutView> {
    Json(layout_view(&admin.gateway.state()))
}

/// Body of `POST /v1/nodes`: a running node that belongs to no cluster yet.
#[derive(Serialize, Deserialize)]
pub struct AddNodeRequest {
    /// Its RPC address.
    pub rpc_addr: String,
}

pub(super) async fn add_node(
    State(admin): State<Arc<AdminState>>,
    JsonBody(request): JsonBody<AddNodeRequest>,
) -> AdminResult<LayoutView> {
    let state = admin.gateway.state();
    let seed = admin
        .gateway
        .replication
        .detector()
        .read_order(state.nodes.values().cloned().collect())
        .into_iter()
        .next()
        .ok_or_else(|| AdminError::Unavailable("no node to join through".into()))?;
    let invitation = Invitation { seed_addr: seed.rpc_addr };
    let client = admin.gateway.replication.client();
    let joined: Result<NodeInfo, _> =
        client.post_json(&request.rpc_addr, cairn_storage_node::control::network::PATH_INVITE, &invitation).await;
    let node = joined.map_err(|e| AdminError::BadGateway(format!("{} could not join: {e}", request.rpc_addr)))?;
    let node_id = node.node_id.clone();
    let cluster = admin.gateway.replication.cluster();
    cluster.wait_until(|s| s.nodes.contains_key(&node_id), std::time::Duration::from_secs(10)).await;
    // A node removed earlier is a member already: adding it puts it back in the layout.
    let removed = cluster.state().nodes.get(&node_id).is_some_and(|n| n.membership != Membership::Active);
    if removed {
        return node_command(&admin, Command::RestoreNode { node_id }).await;
    }
    Ok(Json(layout_view(&cluster.state())))
}

pub(super) async fn remove_node(
    State(admin): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> AdminResult<LayoutView> {
    known_node(&admin, &id)?;
    node_command(&admin, Command::RemoveNode { node_id: id }).await
}

/// Refuses a request naming a node the control plane does not know.
fn known_node(admin: &AdminState, node_id: &str) -> Result<(), AdminError> {
    if admin.gateway.state().nodes.contains_key(node_id) {
        Ok(())
    } else {
        Err(AdminError::NotFound(format!("no node {node_id}")))
    }
}

/// Body of `PATCH /v1/nodes/{id}`.
#[derive(Default, Serialize, Deserialize)]
pub struct UpdateNodeRequest {
    /// New failure zone.
    pub zone: Option<String>,
    /// New capacity weight.
    pub capacity_weight: Option<u32>,
}

pub(super) async fn update_node(
    State(admin): State<Arc<AdminState>>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<UpdateNodeRequest>,
) -> AdminResult<LayoutView> {
    known_node(&admin, &id)?;
    let command = Command::UpdateNode { node_id: id, zone: request.zone, capacity_weight: request.capacity_weight };
    node_command(&admin, command).await
}

/// Commits a node command and answers the layout after it.
async fn node_command(admin: &AdminState, command: Command) -> AdminResult<LayoutView> {
    let cluster = admin.gateway.replication.cluster();
    let before = cluster.state().version;
    command_outcome(cluster.command(&command, |s| s.version > before).await, AdminError::BadRequest)?;
    Ok(Json(layout_view(&cluster.state())))
}
