//! The admin listener: health endpoints, metrics, the admin API (JSON, bearer token) and the
//! web console, and `cairn admin`, the client of that API. Routes are documented in
//! `docs/admin-api.md`.

mod buckets;
pub mod cli;
pub mod client;
mod cluster;
mod console;
mod error;
mod keys;
mod scrub;

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use http::StatusCode;

pub use buckets::{BucketView, CreateBucketRequest, SetConsistencyRequest};
pub use client::AdminClient;
pub use cluster::{AddNodeRequest, ClusterStatus, LayoutNode, LayoutView, NodeView, UpdateNodeRequest, UsageTotals};
pub use error::{AdminError, ErrorBody};
pub use keys::{CreateKeyRequest, CreatedKey, KeyBucket, KeyView, new_access_key};
pub use scrub::NodeScrub;

use crate::s3::Gateway;

/// `text` as one percent-encoded URL path segment or query value.
pub(crate) fn url_component(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// What every admin handler sees.
pub(crate) struct AdminState {
    pub(crate) gateway: Arc<Gateway>,
    token: String,
}

/// The admin router; share links made in the console point at S3 port `s3_port` unless a
/// public endpoint is configured.
pub fn router(gateway: Arc<Gateway>, token: String, s3_port: u16) -> Router {
    let state = Arc::new(AdminState { gateway, token });
    let console = console::router(state.clone(), &state.token, s3_port);
    let api = Router::new()
        .route("/v1/status", get(cluster::status))
        .route("/v1/health", get(cluster_health))
        .route("/v1/layout", get(cluster::layout))
        .route("/v1/nodes", get(cluster::nodes).post(cluster::add_node))
        .route("/v1/nodes/{id}", axum::routing::delete(cluster::remove_node).patch(cluster::update_node))
        .route("/v1/buckets", get(buckets::list).post(buckets::create))
        .route("/v1/buckets/{name}", get(buckets::show).delete(buckets::delete))
        .route("/v1/buckets/{name}/consistency", put(buckets::set_consistency))
        .route("/v1/buckets/{name}/grants/{key_id}", put(buckets::grant))
        .route("/v1/keys", get(keys::list).post(keys::create))
        .route("/v1/keys/{id}", axum::routing::delete(keys::delete))
        .route("/v1/scrub", get(scrub::reports))
        .route("/v1/scrub/{command}", post(scrub::command))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(ready))
        .route("/health/cluster", get(health_cluster))
        .route("/metrics", get(metrics))
        .route("/", get(|| async { axum::response::Redirect::to("/console") }))
        .merge(api)
        .with_state(state)
        .nest("/console", console)
        .fallback(|| async { AdminError::NotFound("no such admin route".into()) })
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
        AdminError::Unauthorized.into_response()
    }
}

/// The verdict as this gateway sees the cluster.
fn assess(admin: &AdminState) -> crate::health::ClusterHealth {
    crate::health::assess(&admin.gateway.state(), &admin.gateway.replication.detector().snapshot())
}

async fn cluster_health(State(admin): State<Arc<AdminState>>) -> Response {
    Json(assess(&admin)).into_response()
}

/// Every metric in the Prometheus text format (no token, like the health checks: scrapers
/// carry none, and the figures hold no secret).
async fn metrics(State(admin): State<Arc<AdminState>>) -> Response {
    let state = admin.gateway.state();
    let nodes = admin.gateway.replication.detector().snapshot();
    let health = crate::health::assess(&state, &nodes);
    let text = admin.gateway.replication.metrics().render(&state, &nodes, &health);
    ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
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
