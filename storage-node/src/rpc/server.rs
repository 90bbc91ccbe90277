//! The node side of the RPC: an axum router over the chunk and metadata stores.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::auth::{ClusterSecret, now_ms};
use super::codec;
use super::{
    CHUNK_PATH, HEADER_BODY_SHA256, HEADER_CHUNK_CRC32C, HEADER_CHUNK_LEN, HEADER_CHUNK_SHA256, MAX_MESSAGE_BYTES,
    NodeStatus, WireError, WireErrorCode,
};
use crate::chunk_store::{ChunkDigest, ChunkError, ChunkId, ChunkStore};
use crate::meta_store::{MAX_SCAN_LIMIT, MetaError, MetaStore};

/// What the data-plane handlers of a node need.
pub struct DataPlane {
    /// This node's id, reported in its status.
    pub node_id: String,
    /// Chunk files.
    pub chunks: ChunkStore,
    /// Metadata rows.
    pub meta: MetaStore,
    /// Set while the node catches up on writes it missed; it reports so in its status.
    pub recovering: Arc<std::sync::atomic::AtomicBool>,
    /// Set while a node that started with an empty data directory has not pulled its
    /// partitions yet: it must not serve reads.
    pub rebuilding: Arc<std::sync::atomic::AtomicBool>,
    /// File whose presence says the node is rebuilding (it survives a restart mid-rebuild).
    pub rebuild_marker: std::path::PathBuf,
    /// Where anti-entropy stands.
    pub sync: Arc<std::sync::Mutex<crate::anti_entropy::SyncReport>>,
    /// What garbage collection did.
    pub gc: Arc<std::sync::Mutex<crate::gc::GcReport>>,
    /// Part manifests whose chunks the next anti-entropy round checks.
    pub audit: Arc<crate::anti_entropy::ChunkAudit>,
    /// Chunks this node must get a good copy of.
    pub repairs: Arc<crate::repair::RepairQueue>,
    /// The scrubber, for its report and commands.
    pub scrubber: Arc<crate::scrubber::Scrubber>,
    /// When the process started, Unix milliseconds.
    pub started_ms: u64,
}

/// The full node router: data-plane routes plus `extra` (the control-plane routes), all behind
/// request authentication.
pub fn router(data: Arc<DataPlane>, extra: Router, secret: ClusterSecret) -> Router {
    let chunk_route = format!("{CHUNK_PATH}{{id}}");
    Router::new()
        .route(&chunk_route, get(get_chunk).put(put_chunk).head(head_chunk).delete(delete_chunk))
        .route(&format!("{}{{key}}", super::META_ROW_PATH), get(get_row))
        .route(super::META_PUT_PATH, post(put_rows))
        .route(super::META_PURGE_PATH, post(purge_rows))
        .route(super::META_SCAN_PATH, get(scan_rows))
        .route(super::META_DIGEST_PATH, get(digest_rows))
        .route(super::META_TOTALS_PATH, post(row_totals))
        .route(super::CHUNK_PARTITIONS_PATH, get(chunk_partitions))
        .route(super::CHUNK_LEAVES_PATH, get(chunk_leaves))
        .route(&format!("{}{{leaf}}", super::CHUNK_LEAF_PATH), get(chunk_leaf))
        .route(super::STATUS_PATH, get(status))
        .route(super::SCRUB_PATH, get(scrub_report))
        .route(&format!("{}/{{command}}", super::SCRUB_PATH), post(scrub_command))
        .with_state(data)
        // Metadata batches may exceed axum's default 2 MiB extractor limit.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
        .merge(extra)
        .layer(middleware::from_fn_with_state(Arc::new(secret), authenticate))
}

/// Refuses unauthenticated requests and binds message bodies to the MAC.
async fn authenticate(State(secret): State<Arc<ClusterSecret>>, request: Request, next: Next) -> Response {
    let path_and_query = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/").to_owned();
    if let Err(e) = secret.verify(request.method(), &path_and_query, request.headers(), now_ms()) {
        tracing::warn!(path = %path_and_query, error = %e, "refused unauthenticated RPC");
        return wire_error(WireErrorCode::Unauthorized, e.to_string());
    }
    // Chunk bodies stream straight to disk; their integrity is the chunk store's CRC check.
    let is_chunk_put = request.method() == http::Method::PUT && path_and_query.starts_with(CHUNK_PATH);
    if is_chunk_put {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let body = match http_body_util::Limited::new(body, MAX_MESSAGE_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return wire_error(WireErrorCode::BadRequest, format!("reading body: {e}")),
    };
    if !body.is_empty() {
        let promised = parts.headers.get(HEADER_BODY_SHA256).and_then(|v| v.to_str().ok()).unwrap_or("");
        if promised != hex::encode(Sha256::digest(&body)) {
            return wire_error(WireErrorCode::Unauthorized, "body does not match its signed digest".into());
        }
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// An error answer in the wire format.
pub fn wire_error(code: WireErrorCode, message: String) -> Response {
    (code.status(), axum::Json(WireError { code, message })).into_response()
}

fn chunk_error(e: ChunkError) -> Response {
    let code = match &e {
        ChunkError::NotFound { .. } => WireErrorCode::NotFound,
        ChunkError::Corrupt { .. } => WireErrorCode::Corrupt,
        ChunkError::DigestMismatch { .. } => WireErrorCode::DigestMismatch,
        ChunkError::InsufficientSpace { .. } => WireErrorCode::InsufficientSpace,
        ChunkError::TooLarge { .. } | ChunkError::InvalidRange { .. } => WireErrorCode::BadRequest,
        _ => WireErrorCode::Internal,
    };
    if code == WireErrorCode::Corrupt || code == WireErrorCode::Internal {
        tracing::error!(error = %e, "chunk operation failed");
    }
    wire_error(code, e.to_string())
}

fn meta_error(e: MetaError) -> Response {
    let code = match &e {
        MetaError::KeyTooLong { .. }
        | MetaError::ValueTooLarge { .. }
        | MetaError::TooManyRows { .. }
        | MetaError::WriteTooLarge { .. }
        | MetaError::ScanLimitTooLarge { .. } => WireErrorCode::BadRequest,
        _ => WireErrorCode::Internal,
    };
    if code == WireErrorCode::Internal {
        tracing::error!(error = %e, "metadata operation failed");
    }
    wire_error(code, e.to_string())
}

fn malformed_chunk_id() -> Response {
    wire_error(WireErrorCode::BadRequest, "malformed chunk id".into())
}

fn digest_from_headers(headers: &HeaderMap) -> Option<ChunkDigest> {
    let field = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let len = field(HEADER_CHUNK_LEN)?.parse().ok()?;
    let crc32c = field(HEADER_CHUNK_CRC32C)?.parse().ok()?;
    let sha256 = <[u8; 32]>::try_from(hex::decode(field(HEADER_CHUNK_SHA256)?).ok()?).ok()?;
    Some(ChunkDigest { len, sha256, crc32c })
}

async fn put_chunk(
    State(data): State<Arc<DataPlane>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(id) = ChunkId::from_hex(&id) else {
        return malformed_chunk_id();
    };
    let Some(digest) = digest_from_headers(&headers) else {
        return wire_error(WireErrorCode::BadRequest, "missing or malformed chunk digest headers".into());
    };
    if crate::gc::is_collected(&data.meta, id).await {
        return wire_error(WireErrorCode::Collected, "the chunk was garbage-collected".into());
    }
    match data.chunks.put(id, digest, body.into_data_stream()).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => chunk_error(e),
    }
}

#[derive(Deserialize)]
struct ChunkRange {
    offset: Option<u64>,
    len: Option<u64>,
}

async fn get_chunk(
    State(data): State<Arc<DataPlane>>,
    Path(id): Path<String>,
    Query(range): Query<ChunkRange>,
) -> Response {
    let Some(id) = ChunkId::from_hex(&id) else {
        return malformed_chunk_id();
    };
    let result = match (range.offset, range.len) {
        // A whole chunk comes with its header's digest, so a peer copying it can prove it.
        (None, None) => data.chunks.get_with_header(id).await.map(|(header, bytes)| {
            let mut response = bytes_response(bytes);
            response.headers_mut().extend(digest_headers(&header.digest()));
            response
        }),
        (offset, len) => {
            data.chunks.get_range(id, offset.unwrap_or(0), len.unwrap_or(u64::MAX)).await.map(bytes_response)
        }
    };
    match result {
        Ok(response) => response,
        Err(e) => {
            if matches!(e, ChunkError::Corrupt { .. }) {
                data.repairs.push(id);
            }
            chunk_error(e)
        }
    }
}

async fn head_chunk(State(data): State<Arc<DataPlane>>, Path(id): Path<String>) -> Response {
    let Some(id) = ChunkId::from_hex(&id) else {
        return malformed_chunk_id();
    };
    match data.chunks.head(id).await {
        Ok(header) => (StatusCode::OK, digest_headers(&header.digest())).into_response(),
        Err(e) => chunk_error(e),
    }
}

/// The headers that carry a chunk digest.
fn digest_headers(digest: &ChunkDigest) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let values = [
        (HEADER_CHUNK_LEN, digest.len.to_string()),
        (HEADER_CHUNK_SHA256, hex::encode(digest.sha256)),
        (HEADER_CHUNK_CRC32C, digest.crc32c.to_string()),
    ];
    for (name, value) in values {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    headers
}

async fn delete_chunk(State(data): State<Arc<DataPlane>>, Path(id): Path<String>) -> Response {
    let Some(id) = ChunkId::from_hex(&id) else {
        return malformed_chunk_id();
    };
    // Only garbage collection deletes chunks; the record keeps copies from coming back.
    match crate::gc::delete_collected(&data.meta, &data.chunks, id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => wire_error(WireErrorCode::NotFound, "no such chunk".into()),
        Err(e) => wire_error(WireErrorCode::Internal, e.to_string()),
    }
}

async fn put_rows(State(data): State<Arc<DataPlane>>, body: Bytes) -> Response {
    let rows = match codec::decode_rows(&body) {
        Ok(rows) => rows,
        Err(e) => return wire_error(WireErrorCode::BadRequest, e.to_string()),
    };
    match data.meta.put_if_newer(rows.clone()).await {
        Ok(applied) => {
            data.audit.note_applied(&rows, &applied);
            bytes_response(Bytes::from(codec::encode_applied(&applied)))
        }
        Err(e) => meta_error(e),
    }
}

async fn purge_rows(State(data): State<Arc<DataPlane>>, body: Bytes) -> Response {
    let rows = match codec::decode_rows(&body) {
        Ok(rows) => rows,
        Err(e) => return wire_error(WireErrorCode::BadRequest, e.to_string()),
    };
    match data.meta.remove_unchanged(rows.into_iter().map(|row| (row.key, row.timestamp)).collect()).await {
        Ok(removed) => axum::Json(removed).into_response(),
        Err(e) => meta_error(e),
    }
}

async fn get_row(State(data): State<Arc<DataPlane>>, Path(key): Path<String>) -> Response {
    let Ok(key) = hex::decode(&key) else {
        return wire_error(WireErrorCode::BadRequest, "malformed row key".into());
    };
    match data.meta.get(key).await {
        Ok(row) => bytes_response(Bytes::from(codec::encode_rows(row.as_slice()))),
        Err(e) => meta_error(e),
    }
}

#[derive(Deserialize)]
struct ScanQuery {
    prefix: String,
    start_after: Option<String>,
    limit: usize,
}

async fn scan_rows(State(data): State<Arc<DataPlane>>, Query(query): Query<ScanQuery>) -> Response {
    let (Ok(prefix), Ok(start_after)) = (hex::decode(&query.prefix), query.start_after.map(hex::decode).transpose())
    else {
        return wire_error(WireErrorCode::BadRequest, "malformed scan bounds".into());
    };
    match data.meta.scan(prefix, start_after, query.limit.min(MAX_SCAN_LIMIT)).await {
        Ok(rows) => bytes_response(Bytes::from(codec::encode_rows(&rows))),
        Err(e) => meta_error(e),
    }
}

#[derive(Deserialize)]
struct DigestQuery {
    prefix: String,
}

async fn digest_rows(State(data): State<Arc<DataPlane>>, Query(query): Query<DigestQuery>) -> Response {
    let Ok(prefix) = hex::decode(&query.prefix) else {
        return wire_error(WireErrorCode::BadRequest, "malformed digest prefix".into());
    };
    match data.meta.digest(prefix).await {
        Ok(digest) => axum::Json(digest).into_response(),
        Err(e) => meta_error(e),
    }
}

async fn row_totals(State(data): State<Arc<DataPlane>>, body: Bytes) -> Response {
    let groups: Vec<String> = match serde_json::from_slice(&body) {
        Ok(groups) => groups,
        Err(e) => return wire_error(WireErrorCode::BadRequest, e.to_string()),
    };
    let Ok(groups) = groups.iter().map(hex::decode).collect::<Result<Vec<_>, _>>() else {
        return wire_error(WireErrorCode::BadRequest, "malformed total group".into());
    };
    match data.meta.totals(groups).await {
        Ok(totals) => axum::Json(totals).into_response(),
        Err(e) => meta_error(e),
    }
}

#[derive(Deserialize)]
struct PartitionsQuery {
    count: u32,
}

async fn chunk_partitions(State(data): State<Arc<DataPlane>>, Query(query): Query<PartitionsQuery>) -> Response {
    if !query.count.is_power_of_two() || query.count as usize > crate::chunk_store::LEAF_COUNT {
        return wire_error(WireErrorCode::BadRequest, "partition count must be a power of two up to 65536".into());
    }
    axum::Json(data.chunks.partition_summaries(query.count)).into_response()
}

#[derive(Deserialize)]
struct LeavesQuery {
    start: usize,
    end: usize,
}

async fn chunk_leaves(State(data): State<Arc<DataPlane>>, Query(query): Query<LeavesQuery>) -> Response {
    axum::Json(data.chunks.leaf_summaries(query.start..query.end)).into_response()
}

async fn chunk_leaf(State(data): State<Arc<DataPlane>>, Path(leaf): Path<usize>) -> Response {
    if leaf >= crate::chunk_store::LEAF_COUNT {
        return wire_error(WireErrorCode::BadRequest, "no such leaf".into());
    }
    match data.chunks.leaf_ids(leaf).await {
        Ok(ids) => axum::Json(ids.iter().map(ChunkId::to_hex).collect::<Vec<_>>()).into_response(),
        Err(e) => chunk_error(e),
    }
}

async fn status(State(data): State<Arc<DataPlane>>) -> Response {
    let usage = match data.chunks.usage() {
        Ok(usage) => usage,
        Err(e) => return chunk_error(e),
    };
    axum::Json(NodeStatus {
        node_id: data.node_id.clone(),
        capacity_bytes: usage.capacity_bytes,
        free_bytes: usage.free_bytes,
        reserve_bytes: usage.reserve_bytes,
        used_bytes: usage.used_bytes,
        chunk_count: usage.chunk_count,
        recovering: data.recovering.load(std::sync::atomic::Ordering::Relaxed),
        scrub: Some(data.scrubber.report()),
        rebuilding: data.rebuilding.load(std::sync::atomic::Ordering::Relaxed),
        sync: Some(data.sync.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()),
        gc: Some(data.gc.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()),
        inodes: usage.inodes,
        free_inodes: usage.free_inodes,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_ms: data.started_ms,
    })
    .into_response()
}

async fn scrub_report(State(data): State<Arc<DataPlane>>) -> Response {
    axum::Json(data.scrubber.report()).into_response()
}

async fn scrub_command(State(data): State<Arc<DataPlane>>, Path(command): Path<String>) -> Response {
    let Some(command) = crate::scrubber::ScrubCommand::parse(&command) else {
        return wire_error(WireErrorCode::BadRequest, format!("unknown scrub command {command:?}"));
    };
    match data.scrubber.command(command) {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => wire_error(WireErrorCode::Internal, format!("saving scrub progress: {e}")),
    }
}

fn bytes_response(bytes: Bytes) -> Response {
    (StatusCode::OK, [(http::header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
}
