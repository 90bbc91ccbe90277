//! CopyObject and UploadPartCopy: the source bytes are streamed through the gateway into a new
//! chunk set, so a copy never shares chunks with its source and each can be deleted alone.

use std::sync::Arc;

use axum::response::Response;
use cairn_storage_node::control::BucketInfo;
use cairn_storage_node::manifest::{ChecksumAlgorithm, ObjectVersion, index_shard};
use percent_encoding::percent_decode_str;

use super::access::{Access, check_object_acl, readable_version, requested_acl, resolve_bucket};
use super::checksum;
use super::conditions::{Conditions, Verdict};
use super::error::S3Error;
use super::get_object::{object_stream, read_version};
use super::pending::BodyTarget;
use super::put_object::{ObjectAttributes, check_write_conditions, commit_single_part, object_attributes};
use super::tagging::tags_from_header;
use super::upload::{Expected, MAX_PUT_BYTES, Payload, StoredBody, store_payload};
use super::xml::XmlWriter;
use super::{Gateway, S3Request, xml_response};
use crate::timefmt::iso8601;

/// The object a copy reads.
pub struct CopySource {
    /// Its bucket.
    pub bucket: BucketInfo,
    /// Its key.
    pub key: String,
    /// Its current version.
    pub version: ObjectVersion,
}

/// Parses `x-amz-copy-source` (`bucket/key` or `/bucket/key`, URL-encoded, optionally with
/// `?versionId=null`), reads the source and checks the `x-amz-copy-source-if-*` conditions.
pub async fn read_source(gateway: &Gateway, request: &S3Request) -> Result<CopySource, S3Error> {
    let header = request.header("x-amz-copy-source").ok_or(S3Error::InvalidArgument("missing copy source".into()))?;
    let (path, query) = header.split_once('?').unwrap_or((header, ""));
    if let Some(version) = query.strip_prefix("versionId=")
        && version != "null"
    {
        return Err(S3Error::NoSuchVersion);
    }
    let path = percent_decode_str(path.trim_start_matches('/'))
        .decode_utf8()
        .map_err(|_| S3Error::InvalidArgument("Invalid copy source encoding".into()))?;
    let (bucket_name, key) = path.split_once('/').filter(|(b, k)| !b.is_empty() && !k.is_empty()).ok_or_else(|| {
        S3Error::InvalidArgument("Copy Source must mention the source bucket and key: sourcebucket/sourcekey".into())
    })?;
    let bucket = gateway.replication.cluster().bucket(bucket_name).ok_or(S3Error::NoSuchBucket)?;
    let version = readable_version(&bucket, read_version(gateway, &bucket, key).await?, request)?;
    // S3 answers 412 to every failed copy-source condition, 304 included.
    if Conditions::of(request, "x-amz-copy-source-").evaluate(Some(&version)) != Verdict::Proceed {
        return Err(S3Error::PreconditionFailed);
    }
    Ok(CopySource { bucket, key: key.to_owned(), version })
}

/// The checksum algorithm a copy records: the one asked for, else the source's, else
/// CRC64NVME.
pub fn copy_checksum(request: &S3Request, source: &ObjectVersion) -> Result<ChecksumAlgorithm, S3Error> {
    if let Some(name) = request.header("x-amz-checksum-algorithm") {
        return ChecksumAlgorithm::from_name(name)
            .ok_or_else(|| S3Error::InvalidRequest(format!("Checksum algorithm provided is unsupported: {name}")));
    }
    // A copy is single-part: it gets a full-object checksum in the source's algorithm.
    Ok(source.checksum.as_ref().map_or(ChecksumAlgorithm::Crc64nvme, |c| c.algorithm))
}

/// Streams bytes `start..end` of the source into a new chunk set of `target`.
pub async fn copy_bytes(
    gateway: &Arc<Gateway>,
    target: BodyTarget<'_>,
    source: &CopySource,
    start: u64,
    end: u64,
    record: ChecksumAlgorithm,
) -> Result<StoredBody, S3Error> {
    let stream = object_stream(gateway, &source.bucket, &source.key, &source.version, start, end).await?;
    store_payload(gateway, target, Payload::Stream(stream), end - start, Expected::default(), Some(record)).await
}

/// What a CopyObject writes besides the bytes: the attributes of the new version.
pub fn copied_attributes(request: &S3Request, source: &CopySource) -> Result<ObjectAttributes, S3Error> {
    let directive = request.header("x-amz-metadata-directive").unwrap_or("COPY");
    if directive.eq_ignore_ascii_case("REPLACE") {
        return Ok(ObjectAttributes { tags: copied_tags(request, source)?, ..object_attributes(request)? });
    }
    if !directive.eq_ignore_ascii_case("COPY") {
        return Err(S3Error::InvalidArgument("Unknown metadata directive.".into()));
    }
    let same_object = request.bucket.as_deref() == Some(source.bucket.name.as_str())
        && request.key.as_deref() == Some(source.key.as_str());
    // S3 lets an object be copied onto itself when something else about it changes.
    // (Encryption and website-redirect headers are refused before routing.)
    let changes_something =
        ["x-amz-checksum-algorithm", "x-amz-storage-class"].iter().any(|h| request.headers.contains_key(*h));
    if same_object && !changes_something {
        return Err(S3Error::InvalidRequest(
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.".into(),
        ));
    }
    Ok(ObjectAttributes {
        content_type: source.version.content_type.clone(),
        headers: source.version.headers.clone(),
        user_metadata: source.version.user_metadata.clone(),
        // The ACL is never copied: the new object gets the one the request asks for.
        acl: requested_acl(request)?,
        tags: copied_tags(request, source)?,
    })
}

/// The tags of a copy: the source's (`x-amz-tagging-directive: COPY`, the default) or the
/// request's (`REPLACE`).
fn copied_tags(request: &S3Request, source: &CopySource) -> Result<Vec<(String, String)>, S3Error> {
    match request.header("x-amz-tagging-directive") {
        None => Ok(source.version.tags.clone()),
        Some(d) if d.eq_ignore_ascii_case("COPY") => Ok(source.version.tags.clone()),
        Some(d) if d.eq_ignore_ascii_case("REPLACE") => tags_from_header(request),
        Some(_) => Err(S3Error::InvalidArgument("Unknown tagging directive.".into())),
    }
}

/// CopyObject.
pub async fn copy_object(gateway: &Arc<Gateway>, request: &S3Request) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Write)?;
    let key = request.key.clone().ok_or(S3Error::InvalidArgument("missing key".into()))?;
    let source = read_source(gateway, request).await?;
    let attributes = copied_attributes(request, &source)?;
    check_object_acl(&bucket, request, attributes.acl)?;
    let record = copy_checksum(request, &source.version)?;
    check_write_conditions(gateway, &bucket, request, &key).await?;
    if source.version.size > MAX_PUT_BYTES {
        return Err(S3Error::InvalidRequest(format!(
            "The specified copy source is larger than the maximum allowable size for a copy source: {MAX_PUT_BYTES}"
        )));
    }
    let target = BodyTarget { bucket: &bucket, shard: index_shard(&key, bucket.index_shards), part: 1 };
    let stored = copy_bytes(gateway, target, &source, 0, source.version.size, record).await?;
    let version = commit_single_part(gateway, &bucket, &key, attributes, &stored).await?;
    let mut xml = XmlWriter::new("CopyObjectResult");
    xml.element("ETag", &format!("\"{}\"", version.etag)).element("LastModified", &iso8601(version.last_modified_ms));
    if let Some(checksum) = &version.checksum {
        xml.element(checksum.algorithm.xml_element(), &checksum::display_value(checksum))
            .element("ChecksumType", checksum.kind.name());
    }
    Ok(xml_response(xml.finish("CopyObjectResult")))
}
