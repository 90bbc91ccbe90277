//! Bucket routes: buckets with their usage and replica health, creating and deleting them,
//! their consistency level, and the rights access keys are granted on them.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use cairn_storage_node::control::{BucketChange, BucketInfo, CannedAcl, Consistency, CorsRule, Permissions};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::error::{AdminError, AdminResult, JsonBody};
use crate::health::BucketHealth;
use crate::usage::BucketUsage;

/// A bucket as the admin API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct BucketView {
    /// Bucket name.
    pub name: String,
    /// Consistency level: `one`, `quorum` or `all`.
    pub consistency: String,
    /// Access key id of the owner.
    pub owner: String,
    /// Creation time, Unix milliseconds.
    pub created_ms: u64,
    /// Canned ACL: `private`, `public-read`, ...
    pub acl: String,
    /// Cross-origin rules.
    pub cors: Vec<CorsRule>,
    /// Rights granted to other access keys, by key id.
    pub grants: BTreeMap<String, Permissions>,
    /// Objects and bytes, from the running totals.
    pub usage: BucketUsage,
    /// What requests at its consistency level can do with the replicas serving now.
    pub health: BucketHealth,
}

/// Every bucket of `buckets` with its usage and health.
pub(crate) async fn bucket_views(admin: &AdminState, buckets: Vec<BucketInfo>) -> Vec<BucketView> {
    let state = admin.gateway.state();
    let replication = &admin.gateway.replication;
    let mut usage = crate::usage::bucket_usage(replication, &state, &buckets).await;
    let serving = crate::health::fewest_serving_replicas(&state, &replication.detector().snapshot());
    let replicas = usize::from(state.layout.replication_factor);
    buckets
        .into_iter()
        .map(|b| BucketView {
            usage: usage.remove(&b.name).unwrap_or_default(),
            health: BucketHealth::at(b.consistency, serving, replicas),
            consistency: b.consistency.name().to_owned(),
            owner: b.owner_key,
            created_ms: b.created_ms,
            acl: b.acl.name().to_owned(),
            cors: b.cors,
            grants: b.grants,
            name: b.name,
        })
        .collect()
}

/// The bucket named `name`.
fn bucket(admin: &AdminState, name: &str) -> Result<BucketInfo, AdminError> {
    admin.gateway.replication.cluster().bucket(name).ok_or_else(|| AdminError::NotFound(format!("no bucket {name}")))
}

/// The view of one bucket as it stands now.
async fn view(admin: &AdminState, name: &str) -> AdminResult<BucketView> {
    let bucket = bucket(admin, name)?;
    let view = bucket_views(admin, vec![bucket]).await.pop();
    view.map(Json).ok_or_else(|| AdminError::Internal("bucket view lost".into()))
}

pub(super) async fn list(State(admin): State<Arc<AdminState>>) -> Json<Vec<BucketView>> {
    let buckets = admin.gateway.state().buckets.values().cloned().collect();
    Json(bucket_views(&admin, buckets).await)
}

pub(super) async fn show(State(admin): State<Arc<AdminState>>, Path(name): Path<String>) -> AdminResult<BucketView> {
    view(&admin, &name).await
}

/// Body of `POST /v1/buckets`.
#[derive(Serialize, Deserialize)]
pub struct CreateBucketRequest {
    /// Bucket name (S3 rules).
    pub name: String,
    /// Access key id of the owner.
    pub owner: String,
    /// `one`, `quorum` or `all` (default `quorum`).
    #[serde(default)]
    pub consistency: Option<String>,
}

pub(super) async fn create(
    State(admin): State<Arc<AdminState>>,
    JsonBody(request): JsonBody<CreateBucketRequest>,
) -> Result<(StatusCode, Json<BucketView>), AdminError> {
    create_bucket(&admin, &request).await?;
    Ok((StatusCode::CREATED, view(&admin, &request.name).await?))
}

/// Creates the bucket a request describes (the admin API and the console).
pub(crate) async fn create_bucket(admin: &AdminState, request: &CreateBucketRequest) -> Result<(), AdminError> {
    let consistency = match request.consistency.as_deref() {
        None => Consistency::default(),
        Some(level) => parse_level(level)?,
    };
    if !admin.gateway.state().access_keys.contains_key(&request.owner) {
        return Err(AdminError::BadRequest(format!("no access key {}", request.owner)));
    }
    crate::s3::bucket::create(&admin.gateway, &request.name, &request.owner, consistency, CannedAcl::Private).await?;
    Ok(())
}

fn parse_level(level: &str) -> Result<Consistency, AdminError> {
    Consistency::parse(level).ok_or_else(|| AdminError::BadRequest("the level must be one, quorum or all".into()))
}

pub(super) async fn delete(
    State(admin): State<Arc<AdminState>>,
    Path(name): Path<String>,
) -> Result<StatusCode, AdminError> {
    delete_bucket(&admin, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes an empty bucket (the admin API and the console).
pub(crate) async fn delete_bucket(admin: &AdminState, name: &str) -> Result<(), AdminError> {
    let bucket = bucket(admin, name)?;
    crate::s3::bucket::delete_empty(&admin.gateway, &bucket).await?;
    Ok(())
}

/// Body of a consistency change.
#[derive(Serialize, Deserialize)]
pub struct SetConsistencyRequest {
    /// `one`, `quorum` or `all`.
    pub level: String,
}

pub(super) async fn set_consistency(
    State(admin): State<Arc<AdminState>>,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<SetConsistencyRequest>,
) -> AdminResult<BucketView> {
    let level = parse_level(&request.level)?;
    change(&admin, &name, BucketChange::Consistency(level)).await?;
    view(&admin, &name).await
}

pub(super) async fn grant(
    State(admin): State<Arc<AdminState>>,
    Path((name, key_id)): Path<(String, String)>,
    JsonBody(permissions): JsonBody<Permissions>,
) -> AdminResult<BucketView> {
    change(&admin, &name, BucketChange::Grant { key_id, permissions }).await?;
    view(&admin, &name).await
}

/// Applies one change to bucket `name` (the admin API and the console).
pub(crate) async fn change(admin: &AdminState, name: &str, change: BucketChange) -> Result<(), AdminError> {
    if let BucketChange::Grant { key_id, .. } = &change
        && !admin.gateway.state().access_keys.contains_key(key_id)
    {
        return Err(AdminError::NotFound(format!("no access key {key_id}")));
    }
    let bucket = bucket(admin, name)?;
    crate::s3::bucket::update_bucket(&admin.gateway, &bucket, change).await?;
    Ok(())
}
