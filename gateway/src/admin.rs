//! The admin listener (health endpoints and the admin API) and the `cairn admin` client.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use cairn_storage_node::control::{AccessKey, Command, CommandResult};
use http::{HeaderMap, StatusCode};
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
    Router::new()
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(ready))
        .route("/v1/keys", post(create_key))
        .with_state(Arc::new(AdminState { gateway, token }))
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

async fn create_key(
    State(admin): State<Arc<AdminState>>,
    headers: HeaderMap,
    Json(request): Json<CreateKeyRequest>,
) -> Response {
    let expected = format!("Bearer {}", admin.token);
    if headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, "missing or wrong admin token").into_response();
    }
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

/// Asks the admin API at `url` to create a key (what `cairn admin key create` does).
pub async fn request_key(url: &str, token: &str, name: &str) -> anyhow::Result<CreatedKey> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let body = serde_json::to_vec(&CreateKeyRequest { name: name.to_owned() })?;
    let request = http::Request::post(format!("{}/v1/keys", url.trim_end_matches('/')))
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let response = client.request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    anyhow::ensure!(status.is_success(), "admin API answered {status}: {}", String::from_utf8_lossy(&body));
    Ok(serde_json::from_slice(&body)?)
}
