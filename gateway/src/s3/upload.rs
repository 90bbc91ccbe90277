//! The streaming upload engine shared by PutObject and UploadPart: it reads a request body
//! (plain or `aws-chunked`), cuts it into chunks of the cluster's chunk size, hashes each chunk
//! once on a blocking thread while the next is received, writes it to its replicas with a
//! bounded number in flight, and verifies every checksum the client sent before the caller
//! makes anything visible.

use std::sync::Arc;

use axum::body::{Body, BodyDataStream};
use bytes::{Bytes, BytesMut};
use cairn_storage_node::chunk_store::{ChunkDigest, ChunkId};
use cairn_storage_node::manifest::{
    self, Checksum, ChecksumAlgorithm, PartManifest, RECORD_FORMAT_VERSION, encode_record,
};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use md5::Md5;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::aws_chunked::AwsChunkedDecoder;
use super::checksum::{self, ChecksumHasher};
use super::error::S3Error;
use super::pending::{BodyTarget, ChunkLease};
use super::{Gateway, S3Request};
use crate::auth::PayloadHash;
use crate::replication::RowWrite;

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
    /// The flexible checksum recorded for the body, raw.
    pub checksum: (ChecksumAlgorithm, Vec<u8>),
    /// The lease on the chunks until a manifest references them (`None`: an empty body).
    lease: Option<ChunkLease>,
}

impl StoredBody {
    /// The rows that make the chunks referenced, to be written in one batch with the rows that
    /// reference them: the part manifest, and the tombstone of the record of pending chunks.
    /// Fails if the lease on the chunks was lost.
    pub async fn manifest_rows(&self, bucket_id: Uuid, shard: u16, part: u32) -> Result<Vec<RowWrite>, S3Error> {
        let mut rows = vec![RowWrite {
            key: manifest::part_manifest_key(bucket_id, shard, self.chunk_set, part),
            tombstone: false,
            value: encode_record(&self.manifest()),
        }];
        if let Some(lease) = &self.lease {
            rows.push(lease.settle().await?);
        }
        Ok(rows)
    }

    /// The manifest row value of this body.
    pub fn manifest(&self) -> PartManifest {
        PartManifest {
            format: RECORD_FORMAT_VERSION,
            chunk_size: self.chunk_size,
            chunk_sha256: self.chunk_sha256.iter().map(hex::encode).collect(),
        }
    }

    /// The recorded checksum as a full-object checksum of these bytes.
    pub fn checksum(&self) -> Checksum {
        checksum::full_object(self.checksum.0, self.checksum.1.clone())
    }
}

/// Where the value of a checksum the client asked to be verified comes from.
enum Claim {
    /// Sent in a request header (raw digest).
    Header(Vec<u8>),
    /// Sent in the `aws-chunked` trailer.
    Trailer,
}

/// Checksums the client sent that the body must match.
#[derive(Default)]
pub struct Expected {
    sha256: Option<[u8; 32]>,
    md5: Option<[u8; 16]>,
    claimed: Option<(ChecksumAlgorithm, Claim)>,
}

impl Expected {
    /// The flexible checksum algorithm the client sent a value for, if any.
    pub fn claimed_algorithm(&self) -> Option<ChecksumAlgorithm> {
        self.claimed.as_ref().map(|(algorithm, _)| *algorithm)
    }
}

/// The checksums a request's headers (and announced trailer) ask Cairn to verify.
pub fn expected_digests(request: &S3Request) -> Result<Expected, S3Error> {
    let sha256 = match &request.auth.payload {
        PayloadHash::Sha256(hash) => Some(*hash),
        _ => None,
    };
    let mut claimed = None;
    for (name, value) in &request.headers {
        let Some(algorithm) = ChecksumAlgorithm::from_header(name.as_str()) else { continue };
        if claimed.is_some() {
            return Err(S3Error::InvalidRequest("Expecting a single x-amz-checksum- header".into()));
        }
        let value = value.to_str().map_err(|_| S3Error::InvalidRequest(format!("{name} is not text")))?;
        claimed = Some((algorithm, Claim::Header(checksum::parse_value(algorithm, value)?)));
    }
    if let Some(trailer) = request.header("x-amz-trailer").map(|t| t.trim().to_ascii_lowercase()) {
        let algorithm = ChecksumAlgorithm::from_header(&trailer)
            .ok_or_else(|| S3Error::InvalidRequest(format!("the trailer {trailer} is not a checksum")))?;
        if claimed.is_some() {
            return Err(S3Error::InvalidRequest("Expecting a single x-amz-checksum- header".into()));
        }
        claimed = Some((algorithm, Claim::Trailer));
    }
    if let Some(announced) = request.header("x-amz-sdk-checksum-algorithm")
        && let Some((algorithm, _)) = &claimed
        && ChecksumAlgorithm::from_name(announced) != Some(*algorithm)
    {
        return Err(S3Error::InvalidRequest("x-amz-sdk-checksum-algorithm does not match the checksum sent".into()));
    }
    let md5 = request
        .header("content-md5")
        .map(|v| {
            crate::auth::base64::decode(v.trim())
                .and_then(|raw| <[u8; 16]>::try_from(raw).ok())
                .ok_or(S3Error::InvalidDigest)
        })
        .transpose()?;
    Ok(Expected { sha256, md5, claimed })
}

/// The bytes an upload stores: a request body as sent, decoded from `aws-chunked`, or a
/// stream read from another object (copies).
pub enum Payload {
    /// A plain request body.
    Plain(BodyDataStream),
    /// An `aws-chunked` request body.
    Chunked(Box<AwsChunkedDecoder<BodyDataStream>>),
    /// Bytes produced inside the gateway.
    Stream(BoxStream<'static, Result<Bytes, S3Error>>),
}

impl Payload {
    /// The payload of a request body and its declared length.
    pub fn open(request: &S3Request, body: Body) -> Result<(Self, u64), S3Error> {
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
            Self::Stream(stream) => stream.next().await,
        }
    }

    /// A trailer header's value, once the body ended cleanly.
    fn trailer(&self, name: &str) -> Option<&str> {
        match self {
            Self::Chunked(decoder) => decoder.trailer().and_then(|t| t.get(name)),
            _ => None,
        }
    }
}

/// Running digests of a whole body (moved to a blocking thread for every chunk of an upload),
/// and the check of every checksum the client sent once the body has ended.
pub struct BodyDigests {
    expected: Expected,
    md5: Md5,
    sha256: Option<Sha256>,
    recorded_algorithm: ChecksumAlgorithm,
    recorded: ChecksumHasher,
    claimed_other: Option<ChecksumHasher>,
}

/// What a verified body hashed to.
pub struct VerifiedDigests {
    /// MD5 of the body (the ETag of a single PUT).
    pub md5: [u8; 16],
    /// The recorded flexible checksum, raw.
    pub checksum: (ChecksumAlgorithm, Vec<u8>),
}

impl BodyDigests {
    /// Digests for a body expected to match `expected`, recording `record` (`None`: the
    /// algorithm the client sent, or CRC64NVME when it sent none, as S3 does).
    pub fn new(expected: Expected, record: Option<ChecksumAlgorithm>) -> Self {
        let recorded_algorithm = record.or(expected.claimed_algorithm()).unwrap_or(ChecksumAlgorithm::Crc64nvme);
        // A part may carry a checksum of another algorithm than its upload records (SDKs add
        // CRC32 by default); it is verified all the same.
        let claimed_other = expected.claimed_algorithm().filter(|claimed| *claimed != recorded_algorithm);
        Self {
            md5: Md5::new(),
            sha256: expected.sha256.map(|_| Sha256::new()),
            recorded_algorithm,
            recorded: ChecksumHasher::new(recorded_algorithm),
            claimed_other: claimed_other.map(ChecksumHasher::new),
            expected,
        }
    }

    /// Feeds bytes to every digest.
    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        if let Some(sha) = self.sha256.as_mut() {
            sha.update(data);
        }
        self.recorded.update(data);
        if let Some(hasher) = self.claimed_other.as_mut() {
            hasher.update(data);
        }
    }

    /// Checks the digests against every checksum the client sent (a trailer value is looked
    /// up in `payload`).
    pub fn verify(self, payload: &Payload) -> Result<VerifiedDigests, S3Error> {
        let md5: [u8; 16] = self.md5.finalize().into();
        if let (Some(expected), Some(hasher)) = (self.expected.sha256, self.sha256)
            && <[u8; 32]>::from(hasher.finalize()) != expected
        {
            return Err(S3Error::XAmzContentSha256Mismatch);
        }
        if self.expected.md5.is_some_and(|e| e != md5) {
            return Err(S3Error::BadDigest);
        }
        let checksum = self.recorded.finish(self.recorded_algorithm);
        if let Some((algorithm, claim)) = self.expected.claimed {
            let computed = match self.claimed_other {
                Some(hasher) => hasher.finish(algorithm),
                None => checksum.clone(),
            };
            let claimed = match claim {
                Claim::Header(value) => value,
                Claim::Trailer => {
                    let value = payload.trailer(algorithm.header()).ok_or_else(|| {
                        S3Error::InvalidRequest(format!(
                            "the trailer does not carry the {} it announced",
                            algorithm.header()
                        ))
                    })?;
                    checksum::parse_value(algorithm, value)?
                }
            };
            if claimed != computed {
                return Err(S3Error::BadDigest);
            }
        }
        Ok(VerifiedDigests { md5, checksum: (self.recorded_algorithm, checksum) })
    }
}

/// Which checksums of a request cover its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyChecksums {
    /// Every one: the signed payload hash, `Content-MD5` and `x-amz-checksum-*`.
    All,
    /// As `All`, and the request must carry `Content-MD5` or an `x-amz-checksum-*` value
    /// (DeleteObjects).
    AllWithDigest,
    /// The signed payload hash and `Content-MD5` only (`x-amz-checksum-*` means something else).
    SignatureAndMd5,
}

/// Reads a small request body (an XML document) whole, up to `limit` bytes, verifying the
/// checksums the request carries for it.
pub async fn read_small_body(
    request: &S3Request,
    body: Body,
    limit: usize,
    checksums: BodyChecksums,
) -> Result<Bytes, S3Error> {
    let (mut payload, declared_len) = Payload::open(request, body)?;
    if declared_len > limit as u64 {
        return Err(S3Error::MalformedXml);
    }
    let mut expected = expected_digests(request)?;
    match checksums {
        BodyChecksums::All => {}
        BodyChecksums::AllWithDigest if expected.md5.is_some() || expected.claimed.is_some() => {}
        BodyChecksums::AllWithDigest => {
            return Err(S3Error::InvalidRequest(
                "Missing required header for this request: Content-MD5 or x-amz-checksum-*".into(),
            ));
        }
        BodyChecksums::SignatureAndMd5 => expected.claimed = None,
    }
    let mut digests = BodyDigests::new(expected, None);
    let mut buffer = BytesMut::new();
    while let Some(frame) = payload.next().await {
        let frame = frame?;
        if buffer.len() + frame.len() > limit {
            return Err(S3Error::MalformedXml);
        }
        digests.update(&frame);
        buffer.extend_from_slice(&frame);
    }
    if buffer.len() as u64 != declared_len {
        return Err(S3Error::IncompleteBody);
    }
    digests.verify(&payload)?;
    Ok(buffer.freeze())
}

/// Reads a request body and stores it (see [`store_payload`]), verifying every checksum the
/// request carries. `record` is the flexible checksum kept for it; `None` means the one the
/// client sent, or CRC64NVME when it sent none (as S3 does).
pub async fn store_body(
    gateway: &Arc<Gateway>,
    target: BodyTarget<'_>,
    request: &S3Request,
    body: Body,
    record: Option<ChecksumAlgorithm>,
) -> Result<StoredBody, S3Error> {
    let (payload, declared_len) = Payload::open(request, body)?;
    let expected = expected_digests(request)?;
    store_payload(gateway, target, payload, declared_len, expected, record).await
}

/// Cuts a payload into chunks of the cluster's chunk size and writes each to its replicas
/// while the next is received; verifies every expected checksum at the end. Nothing
/// references the chunks until the caller writes their manifest, so a failed body leaves only
/// garbage, never a visible object; the lease taken on the chunks before the first one is sent
/// lets garbage collection find that garbage even if this gateway dies.
pub async fn store_payload(
    gateway: &Arc<Gateway>,
    target: BodyTarget<'_>,
    mut payload: Payload,
    declared_len: u64,
    expected: Expected,
    record: Option<ChecksumAlgorithm>,
) -> Result<StoredBody, S3Error> {
    if declared_len > MAX_PUT_BYTES {
        return Err(S3Error::EntityTooLarge);
    }
    let chunk_size = gateway.state().settings.chunk_size_bytes.max(1);
    let level = target.bucket.consistency;
    let chunk_set = Uuid::now_v7();
    // A body never has more chunks than its declared length needs (a longer one is refused).
    let chunk_count = u32::try_from(declared_len.div_ceil(chunk_size)).map_err(|_| S3Error::EntityTooLarge)?;
    let lease = match chunk_count {
        0 => None,
        count => Some(ChunkLease::take(gateway, target, chunk_set, count).await?),
    };
    let part = target.part;

    let mut digests = Some(BodyDigests::new(expected, record));
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
    let verified = digests.ok_or(S3Error::InternalError)?.verify(&payload)?;
    Ok(StoredBody {
        chunk_set,
        size: received,
        md5: verified.md5,
        chunk_sha256,
        chunk_size,
        checksum: verified.checksum,
        lease,
    })
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
    digests.update(data);
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
        let digests = BodyDigests::new(Expected::default(), Some(ChecksumAlgorithm::Crc32));
        let (digests, chunk) = hash_chunk(digests, b"123456789");
        // CRC-32C check value of "123456789" per the CRC catalogue.
        assert_eq!(chunk.crc32c, 0xE306_9283);
        assert_eq!(hex::encode(chunk.sha256), "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225");
        let verified = digests.verify(&Payload::Stream(Box::pin(futures_util::stream::empty()))).unwrap();
        assert_eq!(hex::encode(verified.md5), "25f9e794323b453885f5181f1b624d0b");
        assert_eq!(hex::encode(verified.checksum.1), "cbf43926");
    }
}
