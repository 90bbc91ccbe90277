//! PutObject and DeleteObject, and the streaming engine that cuts a body into replicated
//! chunks (also used by UploadPart).

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use cairn_storage_node::chunk_store::{ChunkDigest, ChunkId};
use cairn_storage_node::control::BucketInfo;
use cairn_storage_node::manifest::{
    self, ObjectVersion, PartManifest, PartRef, RECORD_FORMAT_VERSION, encode_record, index_shard,
    metadata_placement_key,
};
use futures_util::StreamExt;
use http::StatusCode;
use md5::Md5;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::error::S3Error;
use super::{Gateway, S3Request, resolve_bucket, set_header};
use crate::auth::PayloadHash;
use crate::replication::RowWrite;
use crate::timefmt::now_ms;

/// Largest single PUT (and part) S3 accepts.
pub const MAX_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// Largest total of user metadata names and values.
pub const MAX_USER_METADATA_BYTES: usize = 2 * 1024;
/// Chunks of one request being replicated at once; bounds per-request memory.
pub const MAX_CHUNKS_IN_FLIGHT: usize = 4;
/// Standard headers kept with an object and returned on GET and HEAD.
pub const STORED_HEADERS: [&str; 5] =
    ["cache-control", "content-disposition", "content-encoding", "content-language", "expires"];

/// A body stored as chunks: what a part or object row needs to reference it.
pub struct StoredBody {
    /// The chunk set the chunks belong to.
    pub chunk_set: Uuid,
    /// Bytes received.
    pub size: u64,
    /// MD5 of the body.
    pub md5: [u8; 16],
    /// SHA-256 of every chunk, in order.
    pub chunk_sha256: Vec<[u8; 32]>,
    /// Chunk size used.
    pub chunk_size: u64,
}

impl StoredBody {
    /// The manifest row value of this body.
    pub fn manifest(&self) -> PartManifest {
        PartManifest {
            format: RECORD_FORMAT_VERSION,
            chunk_size: self.chunk_size,
            chunk_sha256: self.chunk_sha256.iter().map(hex::encode).collect(),
        }
    }
}

/// Running digests of a whole body, moved to a blocking thread for every chunk.
struct BodyDigests {
    md5: Md5,
    sha256: Option<Sha256>,
    crc32: Option<crc_fast::Digest>,
    crc32c: Option<crc_fast::Digest>,
}

/// Checksums the client sent that the body must match.
struct Expected {
    sha256: Option<[u8; 32]>,
    md5: Option<[u8; 16]>,
    crc32: Option<[u8; 4]>,
    crc32c: Option<[u8; 4]>,
}

fn expected_digests(request: &S3Request) -> Result<Expected, S3Error> {
    let sha256 = match &request.auth.payload {
        PayloadHash::Sha256(hash) => Some(*hash),
        PayloadHash::Unsigned => None,
        _ => return Err(S3Error::NotImplemented("aws-chunked payloads".into())),
    };
    let decode_b64 = |name: &str| -> Result<Option<Vec<u8>>, S3Error> {
        request
            .header(name)
            .map(|v| {
                crate::auth::base64::decode(v.trim())
                    .ok_or_else(|| S3Error::InvalidArgument(format!("{name} is not base64")))
            })
            .transpose()
    };
    let fixed = |name: &str, bytes: Option<Vec<u8>>| -> Result<Option<[u8; 4]>, S3Error> {
        bytes
            .map(|b| {
                <[u8; 4]>::try_from(b).map_err(|_| S3Error::InvalidArgument(format!("{name} has the wrong length")))
            })
            .transpose()
    };
    let md5 = decode_b64("content-md5")?
        .map(|b| {
            <[u8; 16]>::try_from(b).map_err(|_| S3Error::InvalidArgument("Content-MD5 has the wrong length".into()))
        })
        .transpose()?;
    let crc32 = fixed("x-amz-checksum-crc32", decode_b64("x-amz-checksum-crc32")?)?;
    let crc32c = fixed("x-amz-checksum-crc32c", decode_b64("x-amz-checksum-crc32c")?)?;
    Ok(Expected { sha256, md5, crc32, crc32c })
}

/// Reads the request body, cuts it into chunks of the cluster's chunk size and writes each to
/// its replicas while the next is received; verifies every client checksum at the end.
/// Nothing references the chunks until the caller writes a row, so a failed body leaves only
/// garbage, never a visible object.
pub async fn store_body(
    gateway: &Arc<Gateway>,
    bucket: &BucketInfo,
    request: &S3Request,
    body: Body,
    part: u32,
) -> Result<StoredBody, S3Error> {
    let declared_len: Option<u64> = request.header("content-length").and_then(|v| v.parse().ok());
    let declared_len = declared_len.ok_or(S3Error::MissingContentLength)?;
    if declared_len > MAX_PUT_BYTES {
        return Err(S3Error::EntityTooLarge);
    }
    let expected = expected_digests(request)?;
    let chunk_size = gateway.state().settings.chunk_size_bytes.max(1);
    let chunk_set = Uuid::now_v7();
    let level = bucket.consistency;

    let mut digests = Some(BodyDigests {
        md5: Md5::new(),
        sha256: expected.sha256.map(|_| Sha256::new()),
        crc32: expected.crc32.map(|_| crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32IsoHdlc)),
        crc32c: expected.crc32c.map(|_| crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi)),
    });
    let mut body = body.into_data_stream();
    let mut buffer = BytesMut::new();
    let mut received = 0u64;
    let mut chunk_sha256 = Vec::new();
    let mut writes: JoinSet<Result<(), S3Error>> = JoinSet::new();
    // The chunk being hashed on a blocking thread while the next one is received.
    let mut hashing: Option<tokio::task::JoinHandle<(BodyDigests, ChunkDigest, Bytes)>> = None;
    let mut index = 0u32;
    let mut body_done = false;

    loop {
        while !body_done && (buffer.len() as u64) < chunk_size {
            match body.next().await {
                Some(Ok(frame)) => {
                    received += frame.len() as u64;
                    if received > declared_len {
                        return Err(S3Error::InvalidArgument("body longer than Content-Length".into()));
                    }
                    buffer.extend_from_slice(&frame);
                }
                Some(Err(e)) => {
                    tracing::info!(error = %e, "client body failed");
                    return Err(S3Error::IncompleteBody);
                }
                None => body_done = true,
            }
        }
        if let Some(hashed) = hashing.take() {
            let (returned, chunk_digest, data) = hashed.await.map_err(|_| S3Error::InternalError)?;
            digests = Some(returned);
            chunk_sha256.push(chunk_digest.sha256);
            let id = ChunkId { chunk_set, part, index };
            index += 1;
            while writes.len() >= MAX_CHUNKS_IN_FLIGHT {
                join_one(&mut writes).await?;
            }
            let gateway = gateway.clone();
            writes.spawn(async move {
                gateway.replication.write_chunk(id, chunk_digest, data, level).await.map_err(S3Error::from)
            });
        }
        let take = buffer.len().min(chunk_size as usize);
        if take == 0 {
            break;
        }
        let data = buffer.split_to(take).freeze();
        let state = digests.take().ok_or(S3Error::InternalError)?;
        // Hash off the executor threads; every byte goes through each digest once.
        hashing = Some(tokio::task::spawn_blocking(move || {
            let (state, chunk_digest) = hash_chunk(state, &data);
            (state, chunk_digest, data)
        }));
    }
    while !writes.is_empty() {
        join_one(&mut writes).await?;
    }
    if received != declared_len {
        return Err(S3Error::IncompleteBody);
    }
    let digests = digests.ok_or(S3Error::InternalError)?;

    let md5: [u8; 16] = digests.md5.finalize().into();
    if let (Some(expected), Some(hasher)) = (expected.sha256, digests.sha256)
        && <[u8; 32]>::from(hasher.finalize()) != expected
    {
        return Err(S3Error::XAmzContentSha256Mismatch);
    }
    if expected.md5.is_some_and(|e| e != md5) {
        return Err(S3Error::BadDigest);
    }
    for (expected, digest) in [(expected.crc32, digests.crc32), (expected.crc32c, digests.crc32c)] {
        if let (Some(expected), Some(digest)) = (expected, digest)
            && (digest.finalize() as u32).to_be_bytes() != expected
        {
            return Err(S3Error::BadDigest);
        }
    }
    Ok(StoredBody { chunk_set, size: received, md5, chunk_sha256, chunk_size })
}

async fn join_one(writes: &mut JoinSet<Result<(), S3Error>>) -> Result<(), S3Error> {
    match writes.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(_)) => Err(S3Error::InternalError),
        None => Ok(()),
    }
}

/// Feeds one chunk to the whole-body digests and computes the chunk's own digest.
fn hash_chunk(mut digests: BodyDigests, data: &[u8]) -> (BodyDigests, ChunkDigest) {
    digests.md5.update(data);
    if let Some(sha) = digests.sha256.as_mut() {
        sha.update(data);
    }
    if let Some(crc) = digests.crc32.as_mut() {
        crc.update(data);
    }
    if let Some(crc) = digests.crc32c.as_mut() {
        crc.update(data);
    }
    let digest = ChunkDigest {
        len: data.len() as u64,
        sha256: Sha256::digest(data).into(),
        crc32c: crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32,
    };
    (digests, digest)
}

/// What an upload says about the object besides its bytes.
pub struct ObjectAttributes {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// Standard headers kept with the object.
    pub headers: Vec<(String, String)>,
    /// `x-amz-meta-*` pairs.
    pub user_metadata: Vec<(String, String)>,
}

/// The content type, standard headers and user metadata of an upload.
pub fn object_attributes(request: &S3Request) -> Result<ObjectAttributes, S3Error> {
    let content_type = request.header("content-type").map(str::to_owned);
    let headers = STORED_HEADERS
        .iter()
        .filter_map(|name| request.header(name).map(|v| (name.to_string(), v.to_owned())))
        .collect();
    let mut user = Vec::new();
    let mut user_bytes = 0;
    for (name, value) in &request.headers {
        if let Some(meta) = name.as_str().strip_prefix("x-amz-meta-") {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            user_bytes += meta.len() + value.len();
            user.push((meta.to_owned(), value));
        }
    }
    if user_bytes > MAX_USER_METADATA_BYTES {
        return Err(S3Error::MetadataTooLarge);
    }
    Ok(ObjectAttributes { content_type, headers, user_metadata: user })
}

/// PutObject.
pub async fn put_object(gateway: &Arc<Gateway>, request: &S3Request, body: Body) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request)?;
    let key = request.key.clone().ok_or(S3Error::InvalidArgument("missing key".into()))?;
    let ObjectAttributes { content_type, headers, user_metadata } = object_attributes(request)?;
    let stored = store_body(gateway, &bucket, request, body, 1).await?;
    let etag = hex::encode(stored.md5);
    let version = ObjectVersion {
        format: RECORD_FORMAT_VERSION,
        version_id: Uuid::now_v7(),
        size: stored.size,
        etag: etag.clone(),
        last_modified_ms: now_ms(),
        content_type,
        headers,
        user_metadata,
        chunk_size: stored.chunk_size,
        parts: vec![PartRef { number: 1, chunk_set: stored.chunk_set, size: stored.size, etag: etag.clone() }],
    };
    let shard = index_shard(&key, bucket.index_shards);
    let rows = vec![
        RowWrite {
            key: manifest::part_manifest_key(bucket.bucket_id, shard, stored.chunk_set, 1),
            tombstone: false,
            value: encode_record(&stored.manifest()),
        },
        RowWrite {
            key: manifest::object_key(bucket.bucket_id, shard, &key),
            tombstone: false,
            value: encode_record(&version),
        },
    ];
    gateway.replication.write_rows(&metadata_placement_key(bucket.bucket_id, shard), rows, bucket.consistency).await?;
    let mut response = StatusCode::OK.into_response();
    set_header(&mut response, "etag", &format!("\"{etag}\""));
    Ok(response)
}

/// DeleteObject: writes a tombstone (S3 answers 204 whether or not the key existed).
pub async fn delete_object(gateway: &Arc<Gateway>, request: &S3Request) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request)?;
    let key = request.key.as_deref().ok_or(S3Error::InvalidArgument("missing key".into()))?;
    let shard = index_shard(key, bucket.index_shards);
    let row = RowWrite { key: manifest::object_key(bucket.bucket_id, shard, key), tombstone: true, value: Vec::new() };
    gateway
        .replication
        .write_rows(&metadata_placement_key(bucket.bucket_id, shard), vec![row], bucket.consistency)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_digest_matches_reference_values() {
        let digests = BodyDigests { md5: Md5::new(), sha256: None, crc32: None, crc32c: None };
        let (digests, chunk) = hash_chunk(digests, b"123456789");
        // CRC-32C check value of "123456789" per the CRC catalogue.
        assert_eq!(chunk.crc32c, 0xE306_9283);
        assert_eq!(hex::encode(chunk.sha256), "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225");
        assert_eq!(hex::encode(<[u8; 16]>::from(digests.md5.finalize())), "25f9e794323b453885f5181f1b624d0b");
    }
}
