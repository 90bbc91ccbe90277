//! HTTP endpoints of the control plane, mounted into the node's internal RPC router.
//!
//! | path | request | response |
//! |---|---|---|
//! | `/control/raft/append` | `AppendEntriesRequest` | `Result<AppendEntriesResponse, RaftError>` |
//! | `/control/raft/vote` | `VoteRequest` | `Result<VoteResponse, RaftError>` |
//! | `/control/raft/snapshot` | `InstallSnapshotRequest` (one chunk) | `Result<InstallSnapshotResponse, RaftError>` |
//! | `/control/command` | [`Command`] | [`CommandResult`] |
//! | `/control/state` | [`StateRequest`] | [`ClusterState`] |
//! | `/control/join` | [`NodeInfo`] | [`CommandResult`] |
//! | `/control/invite` | [`Invitation`] | [`NodeInfo`] of the joined node |
//!
//! Failures other than Raft's own answers are non-2xx with a JSON [`ErrorBody`]. Request
//! bodies are parsed as JSON whatever their content type, since the transport carries bare
//! bytes.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::network::{
    MAX_CONTROL_MESSAGE_BYTES, PATH_COMMAND, PATH_INVITE, PATH_JOIN, PATH_RAFT_APPEND, PATH_RAFT_SNAPSHOT,
    PATH_RAFT_VOTE, PATH_STATE,
};
use super::{ClusterState, Command, CommandResult, ControlError, ControlPlane, ControlTransport, NodeInfo, TypeConfig};

/// Body of a `/control/state` long-poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRequest {
    /// Version the caller already has; 0 for none.
    pub known_version: u64,
    /// How long to wait for a newer version, capped at [`super::MAX_STATE_WAIT_MS`].
    pub wait_ms: u64,
}

/// Body of a failed control request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
}

/// The control-plane router.
pub fn routes<T: ControlTransport>(control: Arc<ControlPlane<T>>) -> Router {
    Router::new()
        .route(PATH_RAFT_APPEND, post(append::<T>))
        .route(PATH_RAFT_VOTE, post(vote::<T>))
        .route(PATH_RAFT_SNAPSHOT, post(snapshot::<T>))
        .route(PATH_COMMAND, post(command::<T>))
        .route(PATH_STATE, post(state::<T>))
        .route(PATH_JOIN, post(join::<T>))
        .route(PATH_INVITE, post(invite::<T>))
        .layer(DefaultBodyLimit::max(MAX_CONTROL_MESSAGE_BYTES))
        .with_state(control)
}

async fn append<T: ControlTransport>(
    State(control): State<Arc<ControlPlane<T>>>,
    JsonBody(request): JsonBody<AppendEntriesRequest<TypeConfig>>,
) -> Json<Result<AppendEntriesResponse<u64>, RaftError<u64>>> {
    Json(control.raft().append_entries(request).await)
}

async fn vote<T: ControlTransport>(
    State(control): State<Arc<ControlPlane<T>>>,
    JsonBody(request): JsonBody<VoteRequest<u64>>,
) -> Json<Result<VoteResponse<u64>, RaftError<u64>>> {
    Json(control.raft().vote(request).await)
}

async fn snapshot<T: ControlTransport>(
    State(control): State<Arc<ControlPlane<T>>>,
    JsonBody(request): JsonBody<InstallSnapshotRequest<TypeConfig>>,
) -> Json<Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>> {
    Json(control.raft().install_snapshot(request).await)
}

async fn command<T: ControlTransport>(
    State(control): State<Arc<ControlPlane<T>>>,
    JsonBody(command): JsonBody<Command>,
) -> Result<Json<CommandResult>, ErrorResponse> {
    Ok(Json(control.command(command).await?))
}

async fn state<T: ControlTransport>(
    State(control): State<Arc<ControlPlane<T>>>,
    JsonBody(request): JsonBody<StateRequest>,
) -> Json<Arc<ClusterState>> {
    let wait = Duration::from_millis(request.wait_ms);
    Json(control.wait_state(request.known_version, wait).await)
}

async fn join<T: ControlTransport>(
    State(control): State<Arc<ControlPlane<T>>>,
    JsonBody(node): JsonBody<NodeInfo>,
) -> Result<Json<CommandResult>, ErrorResponse> {
    Ok(Json(control.handle_join(node).await?))
}

/// Body of a `/control/invite`: the cluster to join.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// Address of any node of the cluster.
    pub seed_addr: String,
}

/// Joins the cluster of `seed_addr` if this node belongs to none yet (`cairn admin node add`).
async fn invite<T: ControlTransport>(
    State(control): State<Arc<ControlPlane<T>>>,
    JsonBody(invitation): JsonBody<Invitation>,
) -> Result<Json<NodeInfo>, ErrorResponse> {
    if !control.is_initialized() {
        control.join(&invitation.seed_addr).await?;
    }
    Ok(Json(control.node().clone()))
}

/// A JSON request body, read without looking at the content type.
struct JsonBody<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state).await.map_err(IntoResponse::into_response)?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            let body = ErrorBody { error: format!("invalid request body: {e}") };
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        })
    }
}

/// A [`ControlError`] as an HTTP answer.
struct ErrorResponse(ControlError);

impl From<ControlError> for ErrorResponse {
    fn from(e: ControlError) -> Self {
        ErrorResponse(e)
    }
}

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            ControlError::NoLeader(_) | ControlError::Fatal(_) | ControlError::Timeout(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ControlError::Call(_) => StatusCode::BAD_GATEWAY,
            ControlError::Rejected(_) | ControlError::InvalidNode(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = ErrorBody { error: self.0.to_string() };
        (status, Json(body)).into_response()
    }
}
