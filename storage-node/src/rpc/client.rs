//! The typed, pooled client of the node RPC, used by gateways and by nodes talking to peers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use super::auth::ClusterSecret;
use super::codec::{self, CodecError};
use super::{
    CHUNK_LEAF_PATH, CHUNK_LEAVES_PATH, CHUNK_PARTITIONS_PATH, CHUNK_PATH, HEADER_BODY_SHA256, HEADER_CHUNK_CRC32C,
    HEADER_CHUNK_LEN, HEADER_CHUNK_SHA256, MAX_MESSAGE_BYTES, META_DIGEST_PATH, META_PURGE_PATH, META_PUT_PATH,
    META_ROW_PATH, META_SCAN_PATH, META_TOTALS_PATH, NodeStatus, SCRUB_PATH, STATUS_PATH, WireError, WireErrorCode,
};
use crate::chunk_store::{ChunkDigest, ChunkId, LeafSummary};
use crate::meta_store::{Row, RowsDigest, Total};
use crate::scrubber::{ScrubCommand, ScrubReport};

/// Default bound on one RPC, from sending the request to receiving the whole response.
pub const DEFAULT_RPC_TIMEOUT_MS: u64 = 30_000;
/// Default bound on establishing a TCP connection to a node.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
/// Largest chunk response accepted.
const MAX_CHUNK_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Why an RPC failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The node could not be reached or did not answer in time.
    #[error("node {addr} unreachable: {reason}")]
    Unreachable {
        /// The node's address.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The node answered with an error.
    #[error("node {addr} answered {code:?}: {message}")]
    Remote {
        /// The node's address.
        addr: String,
        /// The node's error code.
        code: WireErrorCode,
        /// The node's message.
        message: String,
    },
    /// The node answered an error status without a wire error body (control-plane routes).
    #[error("node {addr} answered {status}: {body}")]
    Status {
        /// The node's address.
        addr: String,
        /// The HTTP status.
        status: u16,
        /// The response body, as text.
        body: String,
    },
    /// The node answered something that breaks the contract.
    #[error("protocol error from node {addr}: {reason}")]
    Protocol {
        /// The node's address.
        addr: String,
        /// What was wrong.
        reason: String,
    },
}

impl RpcError {
    /// The node's error code, when the node answered.
    pub fn code(&self) -> Option<WireErrorCode> {
        match self {
            Self::Remote { code, .. } => Some(*code),
            _ => None,
        }
    }

    fn protocol(addr: &str, reason: impl ToString) -> Self {
        Self::Protocol { addr: addr.to_owned(), reason: reason.to_string() }
    }
}

/// Timeouts and routes of a [`NodeClient`].
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Bound on one whole RPC.
    pub rpc_timeout_ms: u64,
    /// Bound on connecting.
    pub connect_timeout_ms: u64,
    /// Node addresses reached through another address (a NAT, a port forward, a proxy):
    /// advertised address → address to connect to.
    pub routes: BTreeMap<String, String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            rpc_timeout_ms: DEFAULT_RPC_TIMEOUT_MS,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            routes: BTreeMap::new(),
        }
    }
}

/// Told of every RPC a client makes, for metrics: the node's advertised address, how long the
/// exchange took, and whether it succeeded (a node's refusal counts as an answer).
pub trait RpcObserver: Send + Sync {
    /// One RPC to `addr` ended after `elapsed`; `failed` when no answer came.
    fn observe(&self, addr: &str, elapsed: Duration, failed: bool);
}

/// Parses `ADVERTISED=ACTUAL` route specifications.
pub fn parse_routes(specs: &[String]) -> Result<BTreeMap<String, String>, String> {
    specs
        .iter()
        .map(|spec| {
            spec.split_once('=')
                .filter(|(from, to)| !from.is_empty() && !to.is_empty())
                .map(|(from, to)| (from.trim().to_owned(), to.trim().to_owned()))
                .ok_or_else(|| format!("a node route is ADVERTISED=ACTUAL, not {spec:?}"))
        })
        .collect()
}

/// A pooled, authenticated client for every node of the cluster (cheap to clone).
#[derive(Clone)]
pub struct NodeClient {
    http: Client<HttpConnector, Full<Bytes>>,
    secret: ClusterSecret,
    rpc_timeout: Duration,
    routes: Arc<BTreeMap<String, String>>,
    observer: Option<Arc<dyn RpcObserver>>,
}

impl NodeClient {
    /// Creates a client that signs its requests with `secret`.
    pub fn new(secret: ClusterSecret, config: &ClientConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(config.connect_timeout_ms)));
        let http = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(60)).build(connector);
        Self {
            http,
            secret,
            rpc_timeout: Duration::from_millis(config.rpc_timeout_ms),
            routes: Arc::new(config.routes.clone()),
            observer: None,
        }
    }

    /// This client, telling `observer` of every RPC it makes.
    pub fn observed_by(self, observer: Arc<dyn RpcObserver>) -> Self {
        Self { observer: Some(observer), ..self }
    }

    /// Stores one chunk on the node; the node verifies length and CRC32C before keeping it.
    pub async fn put_chunk(&self, addr: &str, id: ChunkId, digest: &ChunkDigest, data: Bytes) -> Result<(), RpcError> {
        let headers = [
            (HEADER_CHUNK_LEN, digest.len.to_string()),
            (HEADER_CHUNK_SHA256, hex::encode(digest.sha256)),
            (HEADER_CHUNK_CRC32C, digest.crc32c.to_string()),
        ];
        let path = format!("{CHUNK_PATH}{}", id.to_hex());
        self.call(addr, Method::PUT, &path, &headers, data, 0).await?;
        Ok(())
    }

    /// Reads a chunk, or `len` bytes of it from `offset`; the node verified it before sending.
    pub async fn get_chunk(&self, addr: &str, id: ChunkId, range: Option<(u64, u64)>) -> Result<Bytes, RpcError> {
        let mut path = format!("{CHUNK_PATH}{}", id.to_hex());
        if let Some((offset, len)) = range {
            path.push_str(&format!("?offset={offset}&len={len}"));
        }
        let (_, body) = self.call(addr, Method::GET, &path, &[], Bytes::new(), MAX_CHUNK_RESPONSE_BYTES).await?;
        Ok(body)
    }

    /// Reads a whole chunk with the digest its holder's header records.
    pub async fn get_chunk_with_digest(&self, addr: &str, id: ChunkId) -> Result<(ChunkDigest, Bytes), RpcError> {
        let path = format!("{CHUNK_PATH}{}", id.to_hex());
        let (headers, body) = self.call(addr, Method::GET, &path, &[], Bytes::new(), MAX_CHUNK_RESPONSE_BYTES).await?;
        Ok((digest_from_headers(addr, &headers)?, body))
    }

    /// Reads a chunk's header: its length, SHA-256 and CRC32C.
    pub async fn head_chunk(&self, addr: &str, id: ChunkId) -> Result<ChunkDigest, RpcError> {
        let path = format!("{CHUNK_PATH}{}", id.to_hex());
        let (headers, _) = self.call(addr, Method::HEAD, &path, &[], Bytes::new(), 0).await?;
        digest_from_headers(addr, &headers)
    }

    /// Deletes a chunk; `false` when it did not exist.
    pub async fn delete_chunk(&self, addr: &str, id: ChunkId) -> Result<bool, RpcError> {
        let path = format!("{CHUNK_PATH}{}", id.to_hex());
        match self.call(addr, Method::DELETE, &path, &[], Bytes::new(), 0).await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some(WireErrorCode::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes rows where they are newer than what the node holds; answers which were applied.
    pub async fn put_rows(&self, addr: &str, rows: &[Row]) -> Result<Vec<bool>, RpcError> {
        let body = Bytes::from(codec::encode_rows(rows));
        let (_, answer) = self.call(addr, Method::POST, META_PUT_PATH, &[], body, MAX_MESSAGE_BYTES).await?;
        let applied = codec::decode_applied(&answer).map_err(|e| codec_error(addr, e))?;
        if applied.len() != rows.len() {
            return Err(RpcError::protocol(addr, "applied flags do not match the rows sent"));
        }
        Ok(applied)
    }

    /// Removes rows whose stored timestamp is still the one given (tombstone purges); answers
    /// how many were removed.
    pub async fn purge_rows(&self, addr: &str, rows: &[Row]) -> Result<usize, RpcError> {
        let body = Bytes::from(codec::encode_rows(rows));
        let (_, answer) = self.call(addr, Method::POST, META_PURGE_PATH, &[], body, MAX_MESSAGE_BYTES).await?;
        serde_json::from_slice(&answer).map_err(|e| RpcError::protocol(addr, e))
    }

    /// Reads one row (tombstones included).
    pub async fn get_row(&self, addr: &str, key: &[u8]) -> Result<Option<Row>, RpcError> {
        let path = format!("{META_ROW_PATH}{}", hex::encode(key));
        let (_, answer) = self.call(addr, Method::GET, &path, &[], Bytes::new(), MAX_MESSAGE_BYTES).await?;
        let mut rows = codec::decode_rows(&answer).map_err(|e| codec_error(addr, e))?;
        if rows.len() > 1 {
            return Err(RpcError::protocol(addr, "more than one row for a point read"));
        }
        Ok(rows.pop())
    }

    /// Reads up to `limit` rows whose keys start with `prefix` and sort after `start_after`.
    pub async fn scan_rows(
        &self,
        addr: &str,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Row>, RpcError> {
        let mut path = format!("{META_SCAN_PATH}?prefix={}&limit={limit}", hex::encode(prefix));
        if let Some(start_after) = start_after {
            path.push_str(&format!("&start_after={}", hex::encode(start_after)));
        }
        let (_, answer) = self.call(addr, Method::GET, &path, &[], Bytes::new(), MAX_MESSAGE_BYTES).await?;
        codec::decode_rows(&answer).map_err(|e| codec_error(addr, e))
    }

    /// The node's digest of the rows under `prefix` (anti-entropy).
    pub async fn meta_digest(&self, addr: &str, prefix: &[u8]) -> Result<RowsDigest, RpcError> {
        let path = format!("{META_DIGEST_PATH}?prefix={}", hex::encode(prefix));
        let (_, answer) = self.call(addr, Method::GET, &path, &[], Bytes::new(), MAX_MESSAGE_BYTES).await?;
        serde_json::from_slice(&answer).map_err(|e| RpcError::protocol(addr, e))
    }

    /// The running totals of metadata row groups (what `crate::manifest::object_usage`
    /// counts: a bucket index shard's objects and bytes).
    pub async fn row_totals(&self, addr: &str, groups: &[Vec<u8>]) -> Result<Vec<Total>, RpcError> {
        let groups: Vec<String> = groups.iter().map(hex::encode).collect();
        let totals: Vec<Total> = self.post_json(addr, META_TOTALS_PATH, &groups).await?;
        if totals.len() != groups.len() {
            return Err(RpcError::protocol(addr, "not one total per group"));
        }
        Ok(totals)
    }

    /// Reads the node's capacity and usage.
    pub async fn status(&self, addr: &str) -> Result<NodeStatus, RpcError> {
        let (_, answer) = self.call(addr, Method::GET, STATUS_PATH, &[], Bytes::new(), MAX_MESSAGE_BYTES).await?;
        serde_json::from_slice(&answer).map_err(|e| RpcError::protocol(addr, e))
    }

    /// The node's chunk inventory summarised per partition, for `partition_count` partitions.
    pub async fn chunk_partitions(&self, addr: &str, partition_count: u32) -> Result<Vec<LeafSummary>, RpcError> {
        self.get_json(addr, &format!("{CHUNK_PARTITIONS_PATH}?count={partition_count}")).await
    }

    /// The node's chunk inventory summarised per fan-out leaf, for leaves `start..end`.
    pub async fn chunk_leaves(&self, addr: &str, leaves: std::ops::Range<usize>) -> Result<Vec<LeafSummary>, RpcError> {
        self.get_json(addr, &format!("{CHUNK_LEAVES_PATH}?start={}&end={}", leaves.start, leaves.end)).await
    }

    /// The chunk ids the node holds in one fan-out leaf.
    pub async fn chunk_leaf(&self, addr: &str, leaf: usize) -> Result<Vec<ChunkId>, RpcError> {
        let ids: Vec<String> = self.get_json(addr, &format!("{CHUNK_LEAF_PATH}{leaf}")).await?;
        ids.iter().map(|hex| ChunkId::from_hex(hex).ok_or_else(|| RpcError::protocol(addr, "bad chunk id"))).collect()
    }

    async fn get_json<T: DeserializeOwned>(&self, addr: &str, path: &str) -> Result<T, RpcError> {
        let (_, answer) = self.call(addr, Method::GET, path, &[], Bytes::new(), MAX_MESSAGE_BYTES).await?;
        serde_json::from_slice(&answer).map_err(|e| RpcError::protocol(addr, e))
    }

    /// The node's scrubber report.
    pub async fn scrub_report(&self, addr: &str) -> Result<ScrubReport, RpcError> {
        let (_, answer) = self.call(addr, Method::GET, SCRUB_PATH, &[], Bytes::new(), MAX_MESSAGE_BYTES).await?;
        serde_json::from_slice(&answer).map_err(|e| RpcError::protocol(addr, e))
    }

    /// Sends the node's scrubber a command; answers its report after it.
    pub async fn scrub_command(&self, addr: &str, command: ScrubCommand) -> Result<ScrubReport, RpcError> {
        let name = serde_json::to_value(command).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let path = format!("{SCRUB_PATH}/{name}");
        let (_, answer) = self.call(addr, Method::POST, &path, &[], Bytes::new(), MAX_MESSAGE_BYTES).await?;
        serde_json::from_slice(&answer).map_err(|e| RpcError::protocol(addr, e))
    }

    /// POSTs a JSON message and decodes the JSON answer (control-plane calls).
    pub async fn post_json<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        request: &Req,
    ) -> Result<Resp, RpcError> {
        let body = serde_json::to_vec(request).map_err(|e| RpcError::protocol(addr, e))?;
        let answer = self.post_bytes(addr, path, body).await?;
        serde_json::from_slice(&answer).map_err(|e| RpcError::protocol(addr, e))
    }

    /// POSTs a message body and returns the answer's body.
    pub async fn post_bytes(&self, addr: &str, path: &str, body: Vec<u8>) -> Result<Vec<u8>, RpcError> {
        let (_, answer) = self.call(addr, Method::POST, path, &[], Bytes::from(body), MAX_MESSAGE_BYTES).await?;
        Ok(answer.to_vec())
    }

    async fn call(
        &self,
        addr: &str,
        method: Method,
        path_and_query: &str,
        extra_headers: &[(&str, String)],
        body: Bytes,
        max_response_bytes: usize,
    ) -> Result<(http::HeaderMap, Bytes), RpcError> {
        let unreachable = |reason: String| RpcError::Unreachable { addr: addr.to_owned(), reason };
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("http://{}{path_and_query}", self.routes.get(addr).map_or(addr, String::as_str)))
            .body(Full::new(body.clone()))
            .map_err(|e| RpcError::protocol(addr, e))?;
        let headers = request.headers_mut();
        for (name, value) in extra_headers {
            let value = http::HeaderValue::from_str(value).map_err(|e| RpcError::protocol(addr, e))?;
            let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| RpcError::protocol(addr, e))?;
            headers.insert(name, value);
        }
        let is_chunk_put = method == Method::PUT && path_and_query.starts_with(CHUNK_PATH);
        if !body.is_empty() && !is_chunk_put {
            let digest = hex::encode(Sha256::digest(&body));
            headers.insert(HEADER_BODY_SHA256, http::HeaderValue::from_str(&digest).expect("hex is ASCII"));
        }
        self.secret.sign(&method, path_and_query, headers);

        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| unreachable(e.to_string()))?;
            let (parts, body) = response.into_parts();
            let limit = if parts.status.is_success() { max_response_bytes } else { 64 * 1024 };
            let body = Limited::new(body, limit.max(1))
                .collect()
                .await
                .map_err(|e| unreachable(format!("reading response: {e}")))?
                .to_bytes();
            Ok::<_, RpcError>((parts, body))
        };
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(self.rpc_timeout, exchange)
            .await
            .map_err(|_| unreachable(format!("no answer within {} ms", self.rpc_timeout.as_millis())))
            .and_then(|answer| answer);
        if let Some(observer) = &self.observer {
            observer.observe(addr, started.elapsed(), answer.is_err());
        }
        let (parts, body) = answer?;
        if parts.status.is_success() {
            return Ok((parts.headers, body));
        }
        if method == Method::HEAD && parts.status == StatusCode::NOT_FOUND {
            return Err(RpcError::Remote {
                addr: addr.to_owned(),
                code: WireErrorCode::NotFound,
                message: String::new(),
            });
        }
        match serde_json::from_slice::<WireError>(&body) {
            Ok(error) => Err(RpcError::Remote { addr: addr.to_owned(), code: error.code, message: error.message }),
            Err(_) if parts.status == StatusCode::UNAUTHORIZED => Err(RpcError::Remote {
                addr: addr.to_owned(),
                code: WireErrorCode::Unauthorized,
                message: String::from_utf8_lossy(&body).into_owned(),
            }),
            Err(_) => Err(RpcError::Status {
                addr: addr.to_owned(),
                status: parts.status.as_u16(),
                body: String::from_utf8_lossy(&body).into_owned(),
            }),
        }
    }
}

fn codec_error(addr: &str, e: CodecError) -> RpcError {
    RpcError::protocol(addr, e)
}

/// The chunk digest carried by a response's headers.
fn digest_from_headers(addr: &str, headers: &http::HeaderMap) -> Result<ChunkDigest, RpcError> {
    let field = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RpcError::protocol(addr, format!("missing {name}")))
    };
    let len = field(HEADER_CHUNK_LEN)?.parse().map_err(|_| RpcError::protocol(addr, "bad chunk length"))?;
    let crc32c = field(HEADER_CHUNK_CRC32C)?.parse().map_err(|_| RpcError::protocol(addr, "bad chunk crc32c"))?;
    let sha256 = hex::decode(field(HEADER_CHUNK_SHA256)?)
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| RpcError::protocol(addr, "bad chunk sha256"))?;
    Ok(ChunkDigest { len, sha256, crc32c })
}
