//! GetObject and HeadObject: one metadata quorum read, then chunks streamed in order with a
//! bounded look-ahead.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use cairn_storage_node::control::BucketInfo;
use cairn_storage_node::manifest::{
    self, Checksum, ChecksumType, ObjectVersion, PartList, PartRef, PartTable, decode_record, index_shard,
    metadata_placement_key,
};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use http::StatusCode;

use super::access::{Access, readable_version, resolve_bucket};
use super::conditions::{Conditions, Verdict};
use super::error::S3Error;
use super::multipart::MAX_PART_NUMBER;
use super::put_object::set_checksum_headers;
use super::{Gateway, S3Request, set_header};
use crate::replication::ReplicationError;
use crate::timefmt::http_date;

/// Chunks fetched ahead of the one being sent.
pub const READ_AHEAD_CHUNKS: usize = 2;

/// Reads the current version of a key (quorum read; tombstones mean absent).
pub async fn read_version(gateway: &Gateway, bucket: &BucketInfo, key: &str) -> Result<Option<ObjectVersion>, S3Error> {
    let shard = index_shard(key, bucket.index_shards);
    let row = gateway
        .replication
        .get_row(
            &metadata_placement_key(bucket.bucket_id, shard),
            &manifest::object_key(bucket.bucket_id, shard, key),
            bucket.consistency,
        )
        .await?;
    match row {
        Some(row) if !row.tombstone => decode_record(&row.value).map(Some).map_err(|e| {
            tracing::error!(error = %e, "undecodable object row");
            S3Error::InternalError
        }),
        _ => Ok(None),
    }
}

/// The parts of a version: inline, or from its part table (one more quorum read).
async fn read_parts(
    gateway: &Gateway,
    bucket: &BucketInfo,
    key: &str,
    version: &ObjectVersion,
) -> Result<Vec<PartRef>, S3Error> {
    let count = match &version.parts {
        PartList::Inline(parts) => return Ok(parts.clone()),
        PartList::Table { count } => *count as usize,
    };
    let shard = index_shard(key, bucket.index_shards);
    let row = gateway
        .replication
        .get_row(
            &metadata_placement_key(bucket.bucket_id, shard),
            &manifest::part_table_key(bucket.bucket_id, shard, version.version_id),
            bucket.consistency,
        )
        .await?;
    let table: PartTable = match row {
        Some(row) if !row.tombstone => decode_record(&row.value).map_err(|e| {
            tracing::error!(error = %e, "undecodable part table");
            S3Error::InternalError
        })?,
        _ => {
            tracing::error!(version = %version.version_id, "object version without its part table");
            return Err(S3Error::InternalError);
        }
    };
    if table.parts.len() != count {
        tracing::error!(version = %version.version_id, "part table does not match the object row");
        return Err(S3Error::InternalError);
    }
    Ok(table.parts)
}

/// A byte range request, resolved against the object size: `start..end`.
#[derive(Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// Parses a `Range` header against `size`. `Ok(None)` means "whole object" (no header, or a
/// form S3 ignores); an unsatisfiable range is an error.
pub fn parse_range(header: Option<&str>, size: u64) -> Result<Option<ByteRange>, S3Error> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let Ok(suffix) = last.parse::<u64>() else { return Ok(None) };
        if suffix == 0 {
            return Err(S3Error::InvalidRange);
        }
        ByteRange { start: size.saturating_sub(suffix), end: size }
    } else {
        let Ok(start) = first.parse::<u64>() else { return Ok(None) };
        let end = if last.is_empty() {
            size
        } else {
            let Ok(last) = last.parse::<u64>() else { return Ok(None) };
            if last < start {
                return Ok(None);
            }
            last.saturating_add(1).min(size)
        };
        if start >= size {
            return Err(S3Error::InvalidRange);
        }
        ByteRange { start, end }
    };
    if range.start >= range.end {
        return Err(S3Error::InvalidRange);
    }
    Ok(Some(range))
}

/// The bytes `start..end` of a stored version, streamed chunk by chunk with a bounded
/// look-ahead. The first chunk is read before this returns, so an unreadable object is an
/// error answer rather than a truncated 200.
pub async fn object_stream(
    gateway: &Arc<Gateway>,
    bucket: &BucketInfo,
    key: &str,
    version: &ObjectVersion,
    start: u64,
    end: u64,
) -> Result<BoxStream<'static, Result<Bytes, S3Error>>, S3Error> {
    if end <= start {
        return Ok(Box::pin(futures_util::stream::empty()));
    }
    let parts = read_parts(gateway, bucket, key, version).await?;
    parts_stream(gateway, parts, version.chunk_size, start, end).await
}

/// The bytes `start..end` of an object made of `parts`; see [`object_stream`].
async fn parts_stream(
    gateway: &Arc<Gateway>,
    parts: Vec<PartRef>,
    chunk_size: u64,
    start: u64,
    end: u64,
) -> Result<BoxStream<'static, Result<Bytes, S3Error>>, S3Error> {
    if end <= start {
        return Ok(Box::pin(futures_util::stream::empty()));
    }
    let gateway = gateway.clone();
    let slices = manifest::slices(parts, chunk_size, start, end);
    let mut chunks = Box::pin(
        futures_util::stream::iter(slices)
            .map(move |slice| {
                let gateway = gateway.clone();
                async move {
                    let range =
                        (slice.offset != 0 || slice.len != slice.chunk_len).then_some((slice.offset, slice.len));
                    let bytes = gateway.replication.read_chunk(slice.chunk, range).await?;
                    if bytes.len() as u64 != slice.len {
                        return Err(S3Error::from(ReplicationError::ChunkUnavailable {
                            chunk: slice.chunk.to_hex(),
                            last_error: "chunk shorter than its manifest".into(),
                        }));
                    }
                    Ok(bytes)
                }
            })
            .buffered(READ_AHEAD_CHUNKS),
    );
    let first = chunks.next().await.transpose()?;
    Ok(Box::pin(futures_util::stream::iter(first.map(Ok)).chain(chunks)))
}

/// The byte range of part `number` among `parts`.
fn part_range(parts: &[PartRef], number: u32) -> Result<ByteRange, S3Error> {
    let mut start = 0;
    for part in parts {
        if part.number == number {
            return Ok(ByteRange { start, end: start + part.size });
        }
        start += part.size;
    }
    Err(S3Error::InvalidPartNumber)
}

/// Query parameters that override a response header of a GET, and the header each sets.
const RESPONSE_OVERRIDES: [(&str, &str); 6] = [
    ("response-content-type", "content-type"),
    ("response-content-language", "content-language"),
    ("response-expires", "expires"),
    ("response-cache-control", "cache-control"),
    ("response-content-disposition", "content-disposition"),
    ("response-content-encoding", "content-encoding"),
];

/// GetObject (`with_body`) and HeadObject.
pub async fn get_object(gateway: &Arc<Gateway>, request: &S3Request, with_body: bool) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::ReadObject)?;
    let key = request.key.as_deref().ok_or(S3Error::NoSuchKey)?;
    if request.query.get("versionId").is_some_and(|v| v != "null") {
        return Err(S3Error::NoSuchVersion);
    }
    let version = readable_version(&bucket, read_version(gateway, &bucket, key).await?, request)?;
    match Conditions::of(request, "").evaluate(Some(&version)) {
        Verdict::Proceed => {}
        Verdict::PreconditionFailed => return Err(S3Error::PreconditionFailed),
        Verdict::NotModified => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            set_header(&mut response, "etag", &format!("\"{}\"", version.etag));
            set_header(&mut response, "last-modified", &http_date(version.last_modified_ms));
            return Ok(response);
        }
    }
    let part_number = request
        .query
        .get("partNumber")
        .map(|n| {
            n.parse::<u32>().ok().filter(|n| (1..=MAX_PART_NUMBER).contains(n)).ok_or_else(|| {
                S3Error::InvalidArgument(format!(
                    "Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive"
                ))
            })
        })
        .transpose()?;
    let mut parts = None;
    let range = match part_number {
        Some(_) if request.headers.contains_key("range") => {
            return Err(S3Error::InvalidRequest(
                "Cannot specify both Range header and partNumber query parameter".into(),
            ));
        }
        Some(number) => {
            // Read once: the part list gives the range and then the body.
            let listed = read_parts(gateway, &bucket, key, &version).await?;
            let range = part_range(&listed, number)?;
            parts = Some(listed);
            Some(range)
        }
        None => parse_range(request.header("range"), version.size)?,
    };
    let (start, end) = range.as_ref().map_or((0, version.size), |r| (r.start, r.end));
    let part_checksum =
        part_number.and_then(|number| parts.as_ref()?.iter().find(|part| part.number == number)?.checksum.clone());

    let body = match (with_body, parts) {
        (false, _) => Body::empty(),
        (true, Some(parts)) => Body::from_stream(parts_stream(gateway, parts, version.chunk_size, start, end).await?),
        (true, None) => Body::from_stream(object_stream(gateway, &bucket, key, &version, start, end).await?),
    };

    let mut response = Response::new(body);
    *response.status_mut() = if range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    set_header(&mut response, "content-length", &(end - start).to_string());
    if range.is_some() && end > start {
        set_header(
            &mut response,
            "content-range",
            &format!("bytes {start}-{}/{}", end.saturating_sub(1), version.size),
        );
    }
    set_object_headers(&mut response, &version);

    if !version.tags.is_empty() {
        set_header(&mut response, "x-amz-tagging-count", &version.tags.len().to_string());
    }
    if let (Some(_), PartList::Table { count }) = (part_number, &version.parts) {
        set_header(&mut response, "x-amz-mp-parts-count", &count.to_string());
    }
    // A Range read gets no checksum: none covers exactly its bytes.
    if (range.is_none() || part_number.is_some())
        && request.header("x-amz-checksum-mode").is_some_and(|m| m.eq_ignore_ascii_case("enabled"))
    {
        set_checksum_headers(&mut response, returned_checksum(&version, part_number, part_checksum.as_ref()));
    }
    for (parameter, header) in RESPONSE_OVERRIDES {
        if let Some(value) = request.query.get(parameter) {
            set_header(&mut response, header, value);
        }
    }
    Ok(response)
}

/// The checksum S3 reports for a read: the object's for a whole-object read; for a `partNumber`
/// read, the part's own when the object's checksum is composite, the object's when a
/// full-object checksum covers exactly that part, else none.
fn returned_checksum<'a>(
    version: &'a ObjectVersion,
    part_number: Option<u32>,
    part_checksum: Option<&'a Checksum>,
) -> Option<&'a Checksum> {
    let object = version.checksum.as_ref()?;
    match part_number {
        None => Some(object),
        Some(_) if object.kind == ChecksumType::Composite => part_checksum,
        Some(_) if version.part_count() == 1 => Some(object),
        Some(_) => None,
    }
}

/// The headers GET and HEAD return for a stored version.
pub fn set_object_headers(response: &mut Response, version: &ObjectVersion) {
    set_header(response, "etag", &format!("\"{}\"", version.etag));
    set_header(response, "last-modified", &http_date(version.last_modified_ms));
    set_header(response, "accept-ranges", "bytes");
    set_header(response, "content-type", version.content_type.as_deref().unwrap_or("binary/octet-stream"));
    for (name, value) in &version.headers {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_str(value))
        {
            response.headers_mut().insert(name, value);
        }
    }
    for (name, value) in &version.user_metadata {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(format!("x-amz-meta-{name}").as_bytes()), http::HeaderValue::from_str(value))
        {
            response.headers_mut().append(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(h: &str, size: u64) -> Option<(u64, u64)> {
        parse_range(Some(h), size).unwrap().map(|r| (r.start, r.end))
    }

    #[test]
    fn ranges_resolve_like_s3() {
        assert_eq!(range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(range("bytes=90-200", 100), Some((90, 100)));
        assert_eq!(range("bytes=10-", 100), Some((10, 100)));
        assert_eq!(range("bytes=-10", 100), Some((90, 100)));
        assert_eq!(range("bytes=-500", 100), Some((0, 100)));
        assert_eq!(range("bytes=0-1,5-6", 100), None);
        assert_eq!(range("items=0-1", 100), None);
        assert_eq!(range("bytes=5-1", 100), None);
        assert!(matches!(parse_range(Some("bytes=100-"), 100), Err(S3Error::InvalidRange)));
        assert!(matches!(parse_range(Some("bytes=0-0"), 0), Err(S3Error::InvalidRange)));
        assert!(matches!(parse_range(Some("bytes=-0"), 10), Err(S3Error::InvalidRange)));
        assert!(matches!(parse_range(Some("bytes=-5"), 0), Err(S3Error::InvalidRange)));
        assert_eq!(parse_range(None, 10).unwrap(), None);
    }
}
