//! The streaming upload engine shared by PutObject and UploadPart: it reads a request body
//! (plain or `aws-chunked`), cuts it into chunks of the cluster's chunk size, hashes each chunk
//! once on a blocking thread while the next is received, writes it to its replicas with a
//! bounded number in flight, and verifies every checksum the client sent before the caller
//! makes anything visible.

use std::sync::Arc;

use axum::body::{Body, BodyDataStream};
use bytes::{Bytes, BytesMut};
use cairn_storage_node::chunk_store::{ChunkDigest, ChunkId};
use cairn_storage_node::control::BucketInfo;
use cairn_storage_node::manifest::{PartManifest, RECORD_FORMAT_VERSION};
use futures_util::StreamExt;
use md5::Md5;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::aws_chunked::AwsChunkedDecoder;
use super::error::S3Error;
use super::{Gateway, S3Request};
use crate::auth::PayloadHash;

/// Largest single PUT (and part) S3 accepts.
pub const MAX_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// Chunks of one request being replicated at once; bounds per-request memory.
pub const MAX_CHUNKS_IN_FLIGHT: usize = 4;

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

/// A CRC checksum the client asked to be verified, and where its value comes from.
enum Claim {
    /// Sent in a request header.
    Header([u8; 4]),
    /// Sent in the `aws-chunked` trailer under this header name.
    Trailer(&'static str),
}

/// Checksums the client sent that the body must match.
struct Expected {
    sha256: Option<[u8; 32]>,
    md5: Option<[u8; 16]>,
    crc32: Option<Claim>,
    crc32c: Option<Claim>,
}

const CRC32_HEADER: &str = "x-amz-checksum-crc32";
const CRC32C_HEADER: &str = "x-amz-checksum-crc32c";

fn decode_base64(name: &str, value: &str) -> Result<Vec<u8>, S3Error> {
    crate::auth::base64::decode(value.trim()).ok_or_else(|| S3Error::InvalidArgument(format!("{name} is not base64")))
}

fn crc_value(name: &str, value: &str) -> Result<[u8; 4], S3Error> {
    <[u8; 4]>::try_from(decode_base64(name, value)?)
        .map_err(|_| S3Error::InvalidArgument(format!("{name} has the wrong length")))
}

fn expected_digests(request: &S3Request) -> Result<Expected, S3Error> {
    let sha256 = match &request.auth.payload {
        PayloadHash::Sha256(hash) => Some(*hash),
        _ => None,
    };
    // A checksum Cairn cannot verify yet is refused rather than silently accepted.
    for (name, _) in &request.headers {
        let name = name.as_str();
        if name.starts_with("x-amz-checksum-") && ![CRC32_HEADER, CRC32C_HEADER, "x-amz-checksum-type"].contains(&name)
        {
            return Err(S3Error::NotImplemented(format!("the {name} checksum")));
        }
    }
    let trailer = request.header("x-amz-trailer").map(|t| t.trim().to_ascii_lowercase());
    let claim = |name: &'static str| -> Result<Option<Claim>, S3Error> {
        if let Some(value) = request.header(name) {
            return Ok(Some(Claim::Header(crc_value(name, value)?)));
        }
        Ok((trailer.as_deref() == Some(name)).then_some(Claim::Trailer(name)))
    };
    if let Some(name) = trailer.as_deref()
        && name != CRC32_HEADER
        && name != CRC32C_HEADER
    {
        return Err(S3Error::NotImplemented(format!("the {name} trailer checksum")));
    }
    let md5 = request
        .header("content-md5")
        .map(|v| {
            <[u8; 16]>::try_from(decode_base64("Content-MD5", v)?)
                .map_err(|_| S3Error::InvalidArgument("Content-MD5 has the wrong length".into()))
        })
        .transpose()?;
    Ok(Expected { sha256, md5, crc32: claim(CRC32_HEADER)?, crc32c: claim(CRC32C_HEADER)? })
}

/// The payload of a request body: as sent, or decoded from `aws-chunked`.
enum Payload {
    Plain(BodyDataStream),
    Chunked(Box<AwsChunkedDecoder<BodyDataStream>>),
}

impl Payload {
    /// The payload and its declared length.
    fn open(request: &S3Request, body: Body) -> Result<(Self, u64), S3Error> {
        let header_len = |name: &str| request.header(name).and_then(|v| v.trim().parse::<u64>().ok());
        let streaming = !matches!(request.auth.payload, PayloadHash::Sha256(_) | PayloadHash::Unsigned);
        tracing::debug!(streaming, "receiving a request body");
        if !streaming {
            let len = header_len("content-length").ok_or(S3Error::MissingContentLength)?;
            return Ok((Self::Plain(body.into_data_stream()), len));
        }
        let len = header_len("x-amz-decoded-content-length").ok_or(S3Error::MissingContentLength)?;
        let decoder = AwsChunkedDecoder::for_payload(body.into_data_stream(), &request.auth.payload, Some(len))
            .ok_or(S3Error::InternalError)?;
        Ok((Self::Chunked(Box::new(decoder)), len))
    }

    async fn next(&mut self) -> Option<Result<Bytes, S3Error>> {
        match self {
            Self::Plain(body) => body.next().await.map(|frame| {
                frame.map_err(|e| {
                    tracing::info!(error = %e, "client body failed");
                    S3Error::IncompleteBody
                })
            }),
            Self::Chunked(decoder) => decoder.next().await.map(|frame| frame.map_err(S3Error::from)),
        }
    }

    /// A trailer header's value, once the body ended cleanly.
    fn trailer(&self, name: &str) -> Option<&str> {
        match self {
            Self::Plain(_) => None,
            Self::Chunked(decoder) => decoder.trailer().and_then(|t| t.get(name)),
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
    let (mut payload, declared_len) = Payload::open(request, body)?;
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
        crc32: expected.crc32.as_ref().map(|_| crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32IsoHdlc)),
        crc32c: expected.crc32c.as_ref().map(|_| crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi)),
    });
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
            match payload.next().await {
                Some(frame) => {
                    let frame = frame?;
                    received += frame.len() as u64;
                    if received > declared_len {
                        return Err(S3Error::InvalidArgument("body longer than its declared length".into()));
                    }
                    buffer.extend_from_slice(&frame);
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
    for (claim, digest) in [(expected.crc32, digests.crc32), (expected.crc32c, digests.crc32c)] {
        let (Some(claim), Some(digest)) = (claim, digest) else { continue };
        let claimed = match claim {
            Claim::Header(value) => value,
            Claim::Trailer(name) => {
                let value = payload.trailer(name).ok_or_else(|| {
                    S3Error::InvalidRequest(format!("the trailer does not carry the {name} it announced"))
                })?;
                crc_value(name, value)?
            }
        };
        if (digest.finalize() as u32).to_be_bytes() != claimed {
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
