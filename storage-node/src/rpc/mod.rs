//! The wire contract between the gateway and the storage nodes.
//!
//! Everything that crosses the network between Cairn processes is defined here: the paths,
//! the headers, the request and response bodies, the request authentication, the node-side
//! router and the pooled client the gateway uses. Both sides depend on this one module, so the
//! contract cannot drift.
//!
//! | operation | request | response |
//! |---|---|---|
//! | chunk put | `PUT /v1/chunk/{id}` + digest headers, streamed body | 204 |
//! | chunk get | `GET /v1/chunk/{id}[?offset=&len=]` | 200, verified bytes |
//! | chunk head | `HEAD /v1/chunk/{id}` | 200 + digest headers |
//! | chunk delete | `DELETE /v1/chunk/{id}` | 204 |
//! | metadata put | `POST /v1/meta/put`, rows (binary) | applied flags (binary) |
//! | metadata get | `GET /v1/meta/row/{hex key}` | rows (binary, 0 or 1) |
//! | metadata scan | `GET /v1/meta/scan?prefix=&start_after=&limit=` | rows (binary) |
//! | metadata purge | `POST /v1/meta/purge`, rows (binary; key and timestamp) | removed count (JSON) |
//! | metadata digest | `GET /v1/meta/digest?prefix=` | JSON [`crate::meta_store::RowsDigest`] |
//! | metadata totals | `POST /v1/meta/totals`, JSON hex groups | JSON [`crate::meta_store::Total`] per group |
//! | chunk inventory by partition | `GET /v1/chunks/partitions?count=` | JSON [`crate::chunk_store::LeafSummary`] per partition |
//! | chunk inventory by leaf | `GET /v1/chunks/leaves?start=&end=` | JSON [`crate::chunk_store::LeafSummary`] per leaf |
//! | chunk ids of a leaf | `GET /v1/chunks/leaf/{leaf}` | JSON hex ids |
//! | node status | `GET /v1/status` | JSON [`NodeStatus`] |
//! | scrub report | `GET /v1/scrub` | JSON [`crate::scrubber::ScrubReport`] |
//! | scrub command | `POST /v1/scrub/{start,pause,resume}` | JSON [`crate::scrubber::ScrubReport`] |
//! | control plane | `POST /control/...` | JSON (see `crate::control`) |
//!
//! Errors are JSON [`WireError`] bodies with a stable `code`.

pub mod auth;
pub mod client;
pub mod codec;
pub mod server;

use serde::{Deserialize, Serialize};

/// Path prefix of chunk operations; the chunk id in hex follows.
pub const CHUNK_PATH: &str = "/v1/chunk/";
/// Path of batched metadata writes.
pub const META_PUT_PATH: &str = "/v1/meta/put";
/// Path prefix of a metadata point read; the row key in hex follows.
pub const META_ROW_PATH: &str = "/v1/meta/row/";
/// Path of metadata range scans.
pub const META_SCAN_PATH: &str = "/v1/meta/scan";
/// Path of tombstone purges (garbage collection).
pub const META_PURGE_PATH: &str = "/v1/meta/purge";
/// Path of metadata digests (anti-entropy).
pub const META_DIGEST_PATH: &str = "/v1/meta/digest";
/// Path of the running totals of metadata row groups (bucket usage).
pub const META_TOTALS_PATH: &str = "/v1/meta/totals";
/// Path of the chunk inventory summarised by partition.
pub const CHUNK_PARTITIONS_PATH: &str = "/v1/chunks/partitions";
/// Path of the chunk inventory summarised per fan-out leaf.
pub const CHUNK_LEAVES_PATH: &str = "/v1/chunks/leaves";
/// Path prefix of the chunk ids of one leaf; the leaf number follows.
pub const CHUNK_LEAF_PATH: &str = "/v1/chunks/leaf/";
/// Path of the node status report.
pub const STATUS_PATH: &str = "/v1/status";
/// Path answering `200` while the process runs (unauthenticated, for orchestrators).
pub const HEALTH_LIVE_PATH: &str = "/health/live";
/// Path answering `200` while the node belongs to a cluster and is not rebuilding an emptied
/// data directory, `503` otherwise (unauthenticated, for orchestrators).
pub const HEALTH_READY_PATH: &str = "/health/ready";
/// Path of the scrubber's report; a command name after a slash drives it.
pub const SCRUB_PATH: &str = "/v1/scrub";

/// Header carrying the promised chunk length.
pub const HEADER_CHUNK_LEN: &str = "x-cairn-chunk-len";
/// Header carrying the promised chunk SHA-256 (hex).
pub const HEADER_CHUNK_SHA256: &str = "x-cairn-chunk-sha256";
/// Header carrying the promised chunk CRC32C (decimal).
pub const HEADER_CHUNK_CRC32C: &str = "x-cairn-chunk-crc32c";
/// Header carrying the SHA-256 (hex) of a non-chunk request body, covered by the request MAC.
pub const HEADER_BODY_SHA256: &str = "x-cairn-body-sha256";
/// Header carrying the request MAC.
pub const HEADER_AUTH: &str = "x-cairn-auth";

/// Largest non-chunk request or response body accepted (metadata batches, control messages).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Capacity and usage of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Stable node id.
    pub node_id: String,
    /// Size of the file system holding the chunks.
    pub capacity_bytes: u64,
    /// Free bytes on that file system.
    pub free_bytes: u64,
    /// Free space below which writes are refused.
    pub reserve_bytes: u64,
    /// Bytes of chunk files.
    pub used_bytes: u64,
    /// Number of chunks stored.
    pub chunk_count: u64,
    /// Whether the node is still catching up on writes it missed (it should not serve reads).
    #[serde(default)]
    pub recovering: bool,
    /// The scrubber and the repair queue.
    #[serde(default)]
    pub scrub: Option<crate::scrubber::ScrubReport>,
    /// Whether the node started with an empty data directory and has not pulled its
    /// partitions back yet (it must not be read from).
    #[serde(default)]
    pub rebuilding: bool,
    /// Anti-entropy: catch-up, layout moves and hand-off.
    #[serde(default)]
    pub sync: Option<crate::anti_entropy::SyncReport>,
    /// Garbage collection.
    #[serde(default)]
    pub gc: Option<crate::gc::GcReport>,
    /// Inodes of the file system holding the chunks.
    #[serde(default)]
    pub inodes: u64,
    /// Inodes free on it.
    #[serde(default)]
    pub free_inodes: u64,
    /// The node's software version.
    #[serde(default)]
    pub version: String,
    /// When the node process started, Unix milliseconds.
    #[serde(default)]
    pub started_ms: u64,
}

/// Stable error codes a node answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireErrorCode {
    /// The request MAC is missing, stale or wrong.
    Unauthorized,
    /// The chunk or row does not exist.
    NotFound,
    /// The stored chunk failed verification; nothing was served.
    Corrupt,
    /// The received bytes did not match the promised digest; nothing was stored.
    DigestMismatch,
    /// The disk is at its reserve; nothing was stored.
    InsufficientSpace,
    /// The chunk was deleted by garbage collection; a copy is not taken back.
    Collected,
    /// The request is malformed or over a limit.
    BadRequest,
    /// Anything else; details are in the node's log.
    Internal,
}

impl WireErrorCode {
    /// The HTTP status that carries this code.
    pub fn status(self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            Self::Unauthorized => S::UNAUTHORIZED,
            Self::NotFound => S::NOT_FOUND,
            Self::Corrupt => S::INTERNAL_SERVER_ERROR,
            Self::DigestMismatch => S::UNPROCESSABLE_ENTITY,
            Self::InsufficientSpace => S::INSUFFICIENT_STORAGE,
            Self::Collected => S::GONE,
            Self::BadRequest => S::BAD_REQUEST,
            Self::Internal => S::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The JSON body of every node error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// Machine-readable code.
    pub code: WireErrorCode,
    /// Human-readable message.
    pub message: String,
}
