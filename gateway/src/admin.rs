//! The admin listener (health endpoints and the admin API) and the `cairn admin` client.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use bytes::Bytes;
use cairn_storage_node::control::{AccessKey, BucketChange, Command, CommandResult, Consistency, Membership};
use cairn_storage_node::failure_detector::NodeHealth;
use cairn_storage_node::scrubber::{ScrubCommand, ScrubReport};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};

use crate::s3::Gateway;
use crate::timefmt::now_ms;

const KEY_ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

struct AdminState {
    gateway: Arc<Gateway>,
    token: String,
}

/// The admin router.
pub fn router(gateway: Arc<Gateway>, token: String) -> Router {
    let state = Arc::new(AdminState { gateway, token });
    let api = Router::new()
        .route("/v1/keys", post(create_key))
        .route("/v1/buckets", get(list_buckets))
        .route("/v1/buckets/{name}/consistency", put(set_consistency))
        .route("/v1/status", get(status))
        .route("/v1/health", get(cluster_health))
        .route("/v1/layout", get(layout))
        .route("/v1/nodes", post(add_node))
        .route("/v1/nodes/{id}", axum::routing::delete(remove_node).patch(update_node))
        .route("/v1/scrub", get(scrub_reports))
        .route("/v1/scrub/{command}", post(scrub_command))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(ready))
        .route("/health/cluster", get(health_cluster))
        .merge(api)
        .with_state(state)
}

/// Refuses an admin API request without the admin token.
async fn require_token(
    State(admin): State<Arc<AdminState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let expected = format!("Bearer {}", admin.token);
    let given = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    if crate::auth::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, "missing or wrong admin token").into_response()
    }
}

/// A bucket as the admin API lists it.
#[derive(Debug, Serialize, Deserialize)]
pub struct BucketSummary {
    /// Bucket name.
    pub name: String,
    /// Consistency level: `one`, `quorum` or `all`.
    pub consistency: String,
    /// Access key id of the owner.
    pub owner: String,
    /// Creation time, Unix milliseconds.
    pub created_ms: u64,
}

async fn list_buckets(State(admin): State<Arc<AdminState>>) -> Response {
    let state = admin.gateway.state();
    let buckets: Vec<BucketSummary> = state.buckets.values().map(summary).collect();
    Json(buckets).into_response()
}

fn summary(bucket: &cairn_storage_node::control::BucketInfo) -> BucketSummary {
    BucketSummary {
        name: bucket.name.clone(),
        consistency: bucket.consistency.name().to_owned(),
        owner: bucket.owner_key.clone(),
        created_ms: bucket.created_ms,
    }
}

/// Body of a consistency change.
#[derive(Serialize, Deserialize)]
pub struct SetConsistencyRequest {
    /// `one`, `quorum` or `all`.
    pub level: String,
}

async fn set_consistency(
    State(admin): State<Arc<AdminState>>,
    Path(name): Path<String>,
    Json(request): Json<SetConsistencyRequest>,
) -> Response {
    let Some(level) = Consistency::parse(&request.level) else {
        return (StatusCode::BAD_REQUEST, "the level must be one, quorum or all").into_response();
    };
    let Some(bucket) = admin.gateway.replication.cluster().bucket(&name) else {
        return (StatusCode::NOT_FOUND, format!("no bucket named {name}")).into_response();
    };
    match crate::s3::bucket::update_bucket(&admin.gateway, &bucket, BucketChange::Consistency(level)).await {
        Ok(()) => match admin.gateway.replication.cluster().bucket(&name) {
            Some(bucket) => Json(summary(&bucket)).into_response(),
            None => (StatusCode::NOT_FOUND, format!("no bucket named {name}")).into_response(),
        },
        Err(e) => (e.status(), e.to_string()).into_response(),
    }
}

/// What `GET /v1/status` answers: every node of the layout as this gateway's failure detector
/// sees it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// Control-plane state version.
    pub state_version: u64,
    /// The health verdict and its reasons.
    pub health: crate::health::ClusterHealth,
    /// The nodes.
    pub nodes: Vec<NodeHealth>,
}

async fn status(State(admin): State<Arc<AdminState>>) -> Response {
    let state = admin.gateway.state();
    let nodes = admin.gateway.replication.detector().snapshot();
    let health = crate::health::assess(&state, &nodes);
    Json(ClusterStatus { state_version: state.version, health, nodes }).into_response()
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

fn layout_view(state: &cairn_storage_node::control::ClusterState) -> LayoutView {
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

async fn layout(State(admin): State<Arc<AdminState>>) -> Response {
    Json(layout_view(&admin.gateway.state())).into_response()
}

/// Body of `POST /v1/nodes`: a running node that belongs to no cluster yet.
#[derive(Serialize, Deserialize)]
pub struct AddNodeRequest {
    /// Its RPC address.
    pub rpc_addr: String,
}

async fn add_node(State(admin): State<Arc<AdminState>>, Json(request): Json<AddNodeRequest>) -> Response {
    let state = admin.gateway.state();
    let Some(seed) =
        admin.gateway.replication.detector().read_order(state.nodes.values().cloned().collect()).into_iter().next()
    else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no node to join through").into_response();
    };
    let invitation = cairn_storage_node::control::Invitation { seed_addr: seed.rpc_addr };
    let client = admin.gateway.replication.client();
    let joined: Result<cairn_storage_node::control::NodeInfo, _> =
        client.post_json(&request.rpc_addr, cairn_storage_node::control::network::PATH_INVITE, &invitation).await;
    match joined {
        Ok(node) => {
            let node_id = node.node_id.clone();
            let cluster = admin.gateway.replication.cluster();
            cluster.wait_until(|s| s.nodes.contains_key(&node_id), std::time::Duration::from_secs(10)).await;
            // A node removed earlier is a member already: adding it puts it back in the layout.
            let removed = cluster.state().nodes.get(&node_id).is_some_and(|n| n.membership != Membership::Active);
            if removed {
                return node_command(&admin, Command::RestoreNode { node_id }).await;
            }
            Json(layout_view(&cluster.state())).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("{} could not join: {e}", request.rpc_addr)).into_response(),
    }
}

async fn remove_node(State(admin): State<Arc<AdminState>>, Path(id): Path<String>) -> Response {
    node_command(&admin, Command::RemoveNode { node_id: id }).await
}

/// Body of `PATCH /v1/nodes/{id}`.
#[derive(Default, Serialize, Deserialize)]
pub struct UpdateNodeRequest {
    /// New failure zone.
    pub zone: Option<String>,
    /// New capacity weight.
    pub capacity_weight: Option<u32>,
}

async fn update_node(
    State(admin): State<Arc<AdminState>>,
    Path(id): Path<String>,
    Json(request): Json<UpdateNodeRequest>,
) -> Response {
    node_command(
        &admin,
        Command::UpdateNode { node_id: id, zone: request.zone, capacity_weight: request.capacity_weight },
    )
    .await
}

/// Commits a node command and answers the layout after it.
async fn node_command(admin: &AdminState, command: Command) -> Response {
    let cluster = admin.gateway.replication.cluster();
    let before = cluster.state().version;
    match cluster.command(&command, |s| s.version > before).await {
        Ok(CommandResult::Ok) => Json(layout_view(&cluster.state())).into_response(),
        Ok(CommandResult::Rejected(reason)) => (StatusCode::BAD_REQUEST, reason).into_response(),
        Ok(other) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{other:?}")).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// One node's answer to a scrub request: its report, or why it has none.
#[derive(Debug, Serialize, Deserialize)]
pub struct NodeScrub {
    /// The node.
    pub node_id: String,
    /// Its scrubber's report.
    pub report: Option<ScrubReport>,
    /// Why the node did not answer.
    pub error: Option<String>,
}

/// Which nodes a scrub request is for.
#[derive(Deserialize)]
struct NodeFilter {
    node: Option<String>,
}

async fn scrub_reports(State(admin): State<Arc<AdminState>>, Query(filter): Query<NodeFilter>) -> Response {
    let client = admin.gateway.replication.client().clone();
    scrub_fan_out(&admin, filter, move |addr| {
        let client = client.clone();
        async move { client.scrub_report(&addr).await }
    })
    .await
}

async fn scrub_command(
    State(admin): State<Arc<AdminState>>,
    Path(command): Path<String>,
    Query(filter): Query<NodeFilter>,
) -> Response {
    let Some(command) = ScrubCommand::parse(&command) else {
        return (StatusCode::BAD_REQUEST, "the scrub command must be start, pause or resume").into_response();
    };
    let client = admin.gateway.replication.client().clone();
    scrub_fan_out(&admin, filter, move |addr| {
        let client = client.clone();
        async move { client.scrub_command(&addr, command).await }
    })
    .await
}

/// Asks every node of the layout (or the one named) in parallel.
async fn scrub_fan_out<F, Fut>(admin: &AdminState, filter: NodeFilter, ask: F) -> Response
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<ScrubReport, cairn_storage_node::rpc::client::RpcError>>,
{
    let state = admin.gateway.state();
    let nodes: Vec<_> =
        state.nodes.values().filter(|n| filter.node.as_ref().is_none_or(|name| *name == n.node_id)).cloned().collect();
    if nodes.is_empty() {
        return (StatusCode::NOT_FOUND, "no such node").into_response();
    }
    let answers = futures_util::future::join_all(nodes.iter().map(|n| ask(n.rpc_addr.clone()))).await;
    let reports: Vec<NodeScrub> = nodes
        .into_iter()
        .zip(answers)
        .map(|(node, answer)| match answer {
            Ok(report) => NodeScrub { node_id: node.node_id, report: Some(report), error: None },
            Err(e) => NodeScrub { node_id: node.node_id, report: None, error: Some(e.to_string()) },
        })
        .collect();
    Json(reports).into_response()
}

/// The verdict as this gateway sees the cluster.
fn assess(admin: &AdminState) -> crate::health::ClusterHealth {
    crate::health::assess(&admin.gateway.state(), &admin.gateway.replication.detector().snapshot())
}

async fn cluster_health(State(admin): State<Arc<AdminState>>) -> Response {
    Json(assess(&admin)).into_response()
}

/// `200` while QUORUM requests can succeed on every partition, `503` otherwise; the body is the
/// verdict with its reasons.
async fn health_cluster(State(admin): State<Arc<AdminState>>) -> Response {
    let health = assess(&admin);
    let status = match health.verdict {
        crate::health::Verdict::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    (status, Json(health)).into_response()
}

async fn ready(State(admin): State<Arc<AdminState>>) -> Response {
    let state = admin.gateway.state();
    if state.layout.nodes.is_empty() {
        return (StatusCode::SERVICE_UNAVAILABLE, "no storage nodes in the layout").into_response();
    }
    "ok".into_response()
}

/// Body of a key-creation request.
#[derive(Serialize, Deserialize)]
pub struct CreateKeyRequest {
    /// Human-readable name of the key.
    pub name: String,
}

/// A newly created access key, as printed by `cairn admin key create --json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreatedKey {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

/// A new random access key named `name`.
pub fn new_access_key(name: &str) -> AccessKey {
    AccessKey {
        key_id: format!("CK{}", crate::random_string(18, KEY_ID_ALPHABET)),
        secret: crate::random_string(40, SECRET_ALPHABET),
        name: name.to_owned(),
        created_ms: now_ms(),
    }
}

async fn create_key(State(admin): State<Arc<AdminState>>, Json(request): Json<CreateKeyRequest>) -> Response {
    let key = new_access_key(&request.name);
    let key_id = key.key_id.clone();
    let settled = |s: &cairn_storage_node::control::ClusterState| s.access_keys.contains_key(&key_id);
    match admin.gateway.replication.cluster().command(&Command::PutAccessKey(key.clone()), settled).await {
        Ok(CommandResult::Ok) => {
            Json(CreatedKey { access_key_id: key.key_id, secret_access_key: key.secret }).into_response()
        }
        Ok(other) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{other:?}")).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// A client of the admin API: what `cairn admin` is.
pub struct AdminClient {
    url: String,
    token: String,
}

impl AdminClient {
    /// A client of the admin API at `url`, presenting `token`.
    pub fn new(url: &str, token: &str) -> Self {
        Self { url: url.trim_end_matches('/').to_owned(), token: token.to_owned() }
    }

    /// Creates an access key (`cairn admin key create`).
    pub async fn create_key(&self, name: &str) -> anyhow::Result<CreatedKey> {
        self.call(Method::POST, "/v1/keys", Some(&CreateKeyRequest { name: name.to_owned() })).await
    }

    /// Lists buckets (`cairn admin bucket list`).
    pub async fn buckets(&self) -> anyhow::Result<Vec<BucketSummary>> {
        self.call::<(), _>(Method::GET, "/v1/buckets", None).await
    }

    /// Changes a bucket's consistency level (`cairn admin bucket set-consistency`).
    pub async fn set_consistency(&self, bucket: &str, level: &str) -> anyhow::Result<BucketSummary> {
        let path = format!("/v1/buckets/{bucket}/consistency");
        self.call(Method::PUT, &path, Some(&SetConsistencyRequest { level: level.to_owned() })).await
    }

    /// The cluster as the gateway sees it (`cairn admin status`).
    pub async fn status(&self) -> anyhow::Result<ClusterStatus> {
        self.call::<(), _>(Method::GET, "/v1/status", None).await
    }

    /// The layout and any move in progress (`cairn admin node list`).
    pub async fn layout(&self) -> anyhow::Result<LayoutView> {
        self.call::<(), _>(Method::GET, "/v1/layout", None).await
    }

    /// Asks the node at `rpc_addr` to join the cluster (`cairn admin node add`).
    pub async fn add_node(&self, rpc_addr: &str) -> anyhow::Result<LayoutView> {
        self.call(Method::POST, "/v1/nodes", Some(&AddNodeRequest { rpc_addr: rpc_addr.to_owned() })).await
    }

    /// Takes a node out of the layout (`cairn admin node remove`).
    pub async fn remove_node(&self, node_id: &str) -> anyhow::Result<LayoutView> {
        self.call::<(), _>(Method::DELETE, &node_path(node_id), None).await
    }

    /// Changes a node's zone or capacity weight (`cairn admin node set-zone|set-capacity`).
    pub async fn update_node(&self, node_id: &str, update: &UpdateNodeRequest) -> anyhow::Result<LayoutView> {
        self.call(Method::PATCH, &node_path(node_id), Some(update)).await
    }

    /// Every node's scrubber report (`cairn admin scrub status`), or one node's.
    pub async fn scrub_status(&self, node: Option<&str>) -> anyhow::Result<Vec<NodeScrub>> {
        self.call::<(), _>(Method::GET, &with_node("/v1/scrub", node), None).await
    }

    /// Sends every node's scrubber (or one node's) a command (`cairn admin scrub start|pause|resume`).
    pub async fn scrub_command(&self, command: &str, node: Option<&str>) -> anyhow::Result<Vec<NodeScrub>> {
        self.call::<(), _>(Method::POST, &with_node(&format!("/v1/scrub/{command}"), node), None).await
    }

    async fn call<Req: Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Req>,
    ) -> anyhow::Result<Resp> {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
        let body = body.map(serde_json::to_vec).transpose()?.unwrap_or_default();
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header(http::header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = client.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::ensure!(status.is_success(), "admin API answered {status}: {}", String::from_utf8_lossy(&body));
        Ok(serde_json::from_slice(&body)?)
    }
}

/// `path` restricted to one node when `node` is given.
fn with_node(path: &str, node: Option<&str>) -> String {
    match node {
        Some(node) => {
            format!("{path}?node={}", percent_encoding::utf8_percent_encode(node, percent_encoding::NON_ALPHANUMERIC))
        }
        None => path.to_owned(),
    }
}

/// The admin path of one node.
fn node_path(node_id: &str) -> String {
    format!("/v1/nodes/{}", percent_encoding::utf8_percent_encode(node_id, percent_encoding::NON_ALPHANUMERIC))
}
