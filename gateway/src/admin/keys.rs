//! Access key routes: create (the secret is shown once), list with the buckets each key may
//! use, delete.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use cairn_storage_node::control::{AccessKey, ClusterState, Command, Permissions};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::error::{AdminError, JsonBody, command_outcome};
use crate::timefmt::now_ms;

const KEY_ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

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

/// An access key as `GET /v1/keys` lists it (never its secret).
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyView {
    /// The access key id.
    pub access_key_id: String,
    /// Its name.
    pub name: String,
    /// Creation time, Unix milliseconds.
    pub created_ms: u64,
    /// The buckets it owns or was granted rights on.
    pub buckets: Vec<KeyBucket>,
}

/// What one key may do with one bucket.
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyBucket {
    /// The bucket.
    pub bucket: String,
    /// Its rights (all three for the owner).
    pub permissions: Permissions,
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

/// Every access key with the buckets it may use.
pub(crate) fn key_views(state: &ClusterState) -> Vec<KeyView> {
    state
        .access_keys
        .values()
        .map(|key| KeyView {
            access_key_id: key.key_id.clone(),
            name: key.name.clone(),
            created_ms: key.created_ms,
            buckets: state
                .buckets
                .values()
                .map(|b| KeyBucket { bucket: b.name.clone(), permissions: b.permissions_of(&key.key_id) })
                .filter(|k| !k.permissions.is_empty())
                .collect(),
        })
        .collect()
}

pub(super) async fn list(State(admin): State<Arc<AdminState>>) -> Json<Vec<KeyView>> {
    Json(key_views(&admin.gateway.state()))
}

pub(super) async fn create(
    State(admin): State<Arc<AdminState>>,
    JsonBody(request): JsonBody<CreateKeyRequest>,
) -> Result<(StatusCode, Json<CreatedKey>), AdminError> {
    Ok((StatusCode::CREATED, Json(create_key(&admin, &request.name).await?)))
}

/// Creates an access key named `name` (the admin API and the console).
pub(crate) async fn create_key(admin: &AdminState, name: &str) -> Result<CreatedKey, AdminError> {
    let key = new_access_key(name);
    let key_id = key.key_id.clone();
    let settled = |s: &ClusterState| s.access_keys.contains_key(&key_id);
    let result = admin.gateway.replication.cluster().command(&Command::PutAccessKey(key.clone()), settled).await;
    command_outcome(result, AdminError::BadRequest)?;
    Ok(CreatedKey { access_key_id: key.key_id, secret_access_key: key.secret })
}

pub(super) async fn delete(
    State(admin): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Result<StatusCode, AdminError> {
    delete_key(&admin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes an access key that owns no bucket, with its grants (the admin API and the console).
pub(crate) async fn delete_key(admin: &AdminState, key_id: &str) -> Result<(), AdminError> {
    if !admin.gateway.state().access_keys.contains_key(key_id) {
        return Err(AdminError::NotFound(format!("no access key {key_id}")));
    }
    let command = Command::DeleteAccessKey { key_id: key_id.to_owned() };
    let settled = |s: &ClusterState| !s.access_keys.contains_key(key_id);
    command_outcome(admin.gateway.replication.cluster().command(&command, settled).await, AdminError::Conflict)
}
