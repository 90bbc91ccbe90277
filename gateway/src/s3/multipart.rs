//! Multipart uploads: create, upload part, complete, abort.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use cairn_storage_node::control::BucketInfo;
use cairn_storage_node::manifest::{
    self, ChecksumAlgorithm, ChecksumType, ObjectVersion, PartList, PartRef, PartTable, RECORD_FORMAT_VERSION,
    UploadPartRecord, UploadRecord, decode_record, encode_record, index_shard, metadata_placement_key,
};
use http::StatusCode;
use md5::{Digest, Md5};
use serde::Deserialize;
use uuid::Uuid;

use super::access::{Access, check_object_acl, resolve_bucket};
use super::checksum;
use super::copy;
use super::error::S3Error;
use super::list;
use super::pending::BodyTarget;
use super::put_object::{ObjectAttributes, check_write_conditions, object_attributes};
use super::upload::{BodyChecksums, StoredBody, read_small_body, store_body};
use super::xml::{MAX_XML_BODY_BYTES, XmlWriter};
use super::{Gateway, S3Request, set_header, xml_response};
use crate::replication::RowWrite;
use crate::timefmt::{iso8601, now_ms};

/// Highest part number S3 accepts.
pub const MAX_PART_NUMBER: u32 = 10_000;
/// Smallest size of every part but the last.
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// Part rows read per scan while completing.
const PART_SCAN_ROWS: usize = 1000;
/// Most parts one ListParts page returns.
pub const MAX_LIST_PARTS: usize = 1000;

struct UploadTarget {
    bucket: BucketInfo,
    key: String,
    shard: u16,
    upload_id: Uuid,
}

impl UploadTarget {
    fn placement(&self) -> [u8; 18] {
        metadata_placement_key(self.bucket.bucket_id, self.shard)
    }
    fn body(&self, part: u32) -> BodyTarget<'_> {
        BodyTarget { bucket: &self.bucket, shard: self.shard, part }
    }
    fn upload_row_key(&self) -> Vec<u8> {
        manifest::upload_key(self.bucket.bucket_id, self.shard, &self.key, self.upload_id)
    }
}

fn target(gateway: &Gateway, request: &S3Request) -> Result<UploadTarget, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Write)?;
    let key = request.key.clone().ok_or(S3Error::NoSuchKey)?;
    let upload_id =
        request.query.get("uploadId").and_then(|id| Uuid::try_parse(id).ok()).ok_or(S3Error::NoSuchUpload)?;
    let shard = index_shard(&key, bucket.index_shards);
    Ok(UploadTarget { bucket, key, shard, upload_id })
}

async fn read_upload(gateway: &Gateway, target: &UploadTarget) -> Result<UploadRecord, S3Error> {
    let row =
        gateway.replication.get_row(&target.placement(), &target.upload_row_key(), target.bucket.consistency).await?;
    match row {
        Some(row) if !row.tombstone => decode_record(&row.value).map_err(|_| S3Error::InternalError),
        _ => Err(S3Error::NoSuchUpload),
    }
}

/// CreateMultipartUpload.
pub async fn create(gateway: &Arc<Gateway>, request: &S3Request) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Write)?;
    let key = request.key.clone().ok_or(S3Error::NoSuchKey)?;
    let ObjectAttributes { content_type, headers, user_metadata, acl, tags } = object_attributes(request)?;
    check_object_acl(&bucket, request, acl)?;
    let checksum = requested_checksum(request)?;
    let upload_id = Uuid::now_v7();
    let shard = index_shard(&key, bucket.index_shards);
    let record = UploadRecord {
        format: RECORD_FORMAT_VERSION,
        upload_id,
        key: key.clone(),
        initiated_ms: now_ms(),
        content_type,
        headers,
        user_metadata,
        checksum,
        acl,
        tags,
    };
    let row = RowWrite {
        key: manifest::upload_key(bucket.bucket_id, shard, &key, upload_id),
        tombstone: false,
        value: encode_record(&record),
    };
    gateway
        .replication
        .write_rows(&metadata_placement_key(bucket.bucket_id, shard), vec![row], bucket.consistency)
        .await?;
    let mut xml = XmlWriter::new("InitiateMultipartUploadResult");
    xml.element("Bucket", &bucket.name).element("Key", &key).element("UploadId", &upload_id.simple().to_string());
    let mut response = xml_response(xml.finish("InitiateMultipartUploadResult"));
    if let Some((algorithm, kind)) = checksum {
        set_header(&mut response, "x-amz-checksum-algorithm", algorithm.name());
        set_header(&mut response, "x-amz-checksum-type", kind.name());
    }
    Ok(response)
}

/// The checksum algorithm and type a CreateMultipartUpload asks for.
fn requested_checksum(request: &S3Request) -> Result<Option<(ChecksumAlgorithm, ChecksumType)>, S3Error> {
    let kind = request
        .header("x-amz-checksum-type")
        .map(|name| {
            ChecksumType::from_name(name)
                .ok_or_else(|| S3Error::InvalidRequest(format!("Value for x-amz-checksum-type is invalid: {name}")))
        })
        .transpose()?;
    let Some(name) = request.header("x-amz-checksum-algorithm") else {
        return match kind {
            Some(_) => Err(S3Error::InvalidRequest(
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.".into(),
            )),
            None => Ok(None),
        };
    };
    let algorithm = ChecksumAlgorithm::from_name(name)
        .ok_or_else(|| S3Error::InvalidRequest(format!("Checksum algorithm provided is unsupported: {name}")))?;
    let kind = kind.unwrap_or(checksum::default_type(algorithm));
    if !checksum::type_allowed(algorithm, kind) {
        return Err(S3Error::InvalidRequest(format!(
            "The {} checksum type cannot be used with the {} checksum algorithm.",
            kind.name(),
            algorithm.name()
        )));
    }
    Ok(Some((algorithm, kind)))
}

/// The algorithm and type an upload's object checksum uses (CRC64NVME over the whole object
/// when the upload named none, as S3 does).
fn upload_checksum(upload: &UploadRecord) -> (ChecksumAlgorithm, ChecksumType) {
    upload.checksum.unwrap_or((ChecksumAlgorithm::Crc64nvme, ChecksumType::FullObject))
}

/// The part number of an UploadPart or UploadPartCopy.
fn part_number(request: &S3Request) -> Result<u32, S3Error> {
    request
        .query
        .get("partNumber")
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            S3Error::InvalidArgument(format!(
                "Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive"
            ))
        })
}

/// Records a stored part of an upload (replacing an earlier upload of the same number).
async fn record_part(
    gateway: &Gateway,
    target: &UploadTarget,
    part_number: u32,
    stored: &StoredBody,
) -> Result<UploadPartRecord, S3Error> {
    let record = UploadPartRecord {
        format: RECORD_FORMAT_VERSION,
        part: PartRef {
            number: part_number,
            chunk_set: stored.chunk_set,
            size: stored.size,
            etag: hex::encode(stored.md5),
            checksum: None,
        },
        chunk_size: stored.chunk_size,
        last_modified_ms: now_ms(),
        checksum: Some(stored.checksum()),
    };
    let mut rows = stored.manifest_rows(target.bucket.bucket_id, target.shard, part_number).await?;
    rows.push(RowWrite {
        key: manifest::upload_part_key(target.bucket.bucket_id, target.shard, target.upload_id, part_number),
        tombstone: false,
        value: encode_record(&record),
    });
    gateway.replication.write_rows(&target.placement(), rows, target.bucket.consistency).await?;
    Ok(record)
}

/// UploadPart: the body becomes a chunk set of its own, so a re-upload replaces the part
/// without touching the chunks of the previous attempt.
pub async fn upload_part(gateway: &Arc<Gateway>, request: &S3Request, body: Body) -> Result<Response, S3Error> {
    let target = target(gateway, request)?;
    let part_number = part_number(request)?;
    let upload = read_upload(gateway, &target).await?;
    let (algorithm, _) = upload_checksum(&upload);
    let stored = store_body(gateway, target.body(part_number), request, body, Some(algorithm)).await?;
    let record = record_part(gateway, &target, part_number, &stored).await?;
    let mut response = StatusCode::OK.into_response();
    set_header(&mut response, "etag", &format!("\"{}\"", record.part.etag));
    if upload.checksum.is_some() {
        set_header(&mut response, algorithm.header(), &crate::auth::base64::encode(&stored.checksum.1));
    }
    Ok(response)
}

/// UploadPartCopy: a part made of a byte range (`x-amz-copy-source-range`) of another object.
pub async fn upload_part_copy(gateway: &Arc<Gateway>, request: &S3Request) -> Result<Response, S3Error> {
    let target = target(gateway, request)?;
    let part_number = part_number(request)?;
    let upload = read_upload(gateway, &target).await?;
    let (algorithm, _) = upload_checksum(&upload);
    let source = copy::read_source(gateway, request).await?;
    let size = source.version.size;
    let (start, end) = match request.header("x-amz-copy-source-range") {
        None => (0, size),
        Some(spec) => {
            let (first, last) = spec
                .trim()
                .strip_prefix("bytes=")
                .and_then(|r| r.split_once('-'))
                .and_then(|(f, l)| Some((f.trim().parse::<u64>().ok()?, l.trim().parse::<u64>().ok()?)))
                .filter(|(f, l)| f <= l)
                .ok_or_else(|| {
                    S3Error::InvalidArgument(
                        "The x-amz-copy-source-range value must be of the form bytes=first-last".into(),
                    )
                })?;
            if last >= size {
                return Err(S3Error::InvalidArgument(format!(
                    "Range specified is not valid for source object of size: {size}"
                )));
            }
            (first, last + 1)
        }
    };
    let stored = copy::copy_bytes(gateway, target.body(part_number), &source, start, end, algorithm).await?;
    let record = record_part(gateway, &target, part_number, &stored).await?;
    let mut xml = XmlWriter::new("CopyPartResult");
    xml.element("ETag", &format!("\"{}\"", record.part.etag))
        .element("LastModified", &iso8601(record.last_modified_ms));
    if upload.checksum.is_some() {
        xml.element(algorithm.xml_element(), &crate::auth::base64::encode(&stored.checksum.1));
    }
    Ok(xml_response(xml.finish("CopyPartResult")))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CompleteRequest {
    #[serde(default)]
    part: Vec<CompletedPart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CompletedPart {
    part_number: u32,
    #[serde(rename = "ETag")]
    etag: String,
    #[serde(rename = "ChecksumCRC32")]
    checksum_crc32: Option<String>,
    #[serde(rename = "ChecksumCRC32C")]
    checksum_crc32c: Option<String>,
    #[serde(rename = "ChecksumCRC64NVME")]
    checksum_crc64nvme: Option<String>,
    #[serde(rename = "ChecksumSHA1")]
    checksum_sha1: Option<String>,
    #[serde(rename = "ChecksumSHA256")]
    checksum_sha256: Option<String>,
}

impl CompletedPart {
    /// The part checksum the client listed for `algorithm`, if any.
    fn checksum(&self, algorithm: ChecksumAlgorithm) -> Option<&str> {
        match algorithm {
            ChecksumAlgorithm::Crc32 => self.checksum_crc32.as_deref(),
            ChecksumAlgorithm::Crc32c => self.checksum_crc32c.as_deref(),
            ChecksumAlgorithm::Crc64nvme => self.checksum_crc64nvme.as_deref(),
            ChecksumAlgorithm::Sha1 => self.checksum_sha1.as_deref(),
            ChecksumAlgorithm::Sha256 => self.checksum_sha256.as_deref(),
        }
    }
}

/// Up to `limit` uploaded parts numbered above `after_part`, in order, and whether more follow.
/// Tombstoned rows do not count, so a call may take more than one scan.
async fn scan_parts(
    gateway: &Gateway,
    target: &UploadTarget,
    after_part: u32,
    limit: usize,
) -> Result<(Vec<UploadPartRecord>, bool), S3Error> {
    let prefix = manifest::upload_part_prefix(target.bucket.bucket_id, target.shard, target.upload_id);
    let mut after = manifest::upload_part_key(target.bucket.bucket_id, target.shard, target.upload_id, after_part);
    let mut parts = Vec::new();
    loop {
        let (rows, more) = gateway
            .replication
            .scan_rows(&target.placement(), &prefix, Some(&after), PART_SCAN_ROWS, target.bucket.consistency)
            .await?;
        for row in rows.iter().filter(|r| !r.tombstone) {
            if parts.len() == limit {
                return Ok((parts, true));
            }
            parts.push(decode_record::<UploadPartRecord>(&row.value).map_err(|_| S3Error::InternalError)?);
        }
        match rows.last() {
            Some(last) if more => after = last.key.clone(),
            _ => return Ok((parts, false)),
        }
    }
}

async fn uploaded_parts(gateway: &Gateway, target: &UploadTarget) -> Result<BTreeMap<u32, UploadPartRecord>, S3Error> {
    let (parts, _) = scan_parts(gateway, target, 0, usize::MAX).await?;
    Ok(parts.into_iter().map(|record| (record.part.number, record)).collect())
}

/// CompleteMultipartUpload.
pub async fn complete(gateway: &Arc<Gateway>, request: &S3Request, body: Body) -> Result<Response, S3Error> {
    let target = target(gateway, request)?;
    // x-amz-checksum-* on Complete is the whole object's checksum, not the body's.
    let body = read_small_body(request, body, MAX_XML_BODY_BYTES, BodyChecksums::SignatureAndMd5).await?;
    let listed: CompleteRequest = super::xml::parse(&body)?;
    if listed.part.is_empty() {
        return Err(S3Error::MalformedXml);
    }
    let upload = read_upload(gateway, &target).await?;
    check_write_conditions(gateway, &target.bucket, request, &target.key).await?;
    let uploaded = uploaded_parts(gateway, &target).await?;

    let (algorithm, kind) = upload_checksum(&upload);
    // An upload created with a composite checksum must list every part's checksum, as in S3.
    let listing_required = upload.checksum.is_some_and(|(_, kind)| kind == ChecksumType::Composite);
    let mut part_checksums = Vec::with_capacity(listed.part.len());
    let mut parts = Vec::with_capacity(listed.part.len());
    let mut md5s = Md5::new();
    let mut chunk_size = None;
    let mut previous = 0;
    for (i, listed_part) in listed.part.iter().enumerate() {
        if listed_part.part_number <= previous {
            return Err(S3Error::InvalidPartOrder);
        }
        previous = listed_part.part_number;
        let record = uploaded.get(&listed_part.part_number).ok_or(S3Error::InvalidPart)?;
        if listed_part.etag.trim().trim_matches('"') != record.part.etag {
            return Err(S3Error::InvalidPart);
        }
        if i + 1 < listed.part.len() && record.part.size < MIN_PART_BYTES {
            return Err(S3Error::EntityTooSmall);
        }
        if *chunk_size.get_or_insert(record.chunk_size) != record.chunk_size {
            tracing::error!("parts of one upload were cut with different chunk sizes");
            return Err(S3Error::InternalError);
        }
        let recorded = record.checksum.as_ref().filter(|c| c.algorithm == algorithm);
        if listing_required && listed_part.checksum(algorithm).is_none() {
            return Err(S3Error::InvalidRequest(format!(
                "The upload was created using a {} checksum. The complete request must include the checksum for each part. It was missing for part {} in the request.",
                algorithm.name().to_ascii_lowercase(),
                listed_part.part_number
            )));
        }
        if let Some(listed_value) = listed_part.checksum(algorithm) {
            let listed_raw = checksum::parse_value(algorithm, listed_value).map_err(|_| S3Error::InvalidPart)?;
            if recorded.is_none_or(|c| c.value != hex::encode(&listed_raw)) {
                return Err(S3Error::InvalidPart);
            }
        }
        if let Some(recorded) = recorded {
            part_checksums.push((hex::decode(&recorded.value).map_err(|_| S3Error::InternalError)?, record.part.size));
        }
        md5s.update(hex::decode(&record.part.etag).map_err(|_| S3Error::InternalError)?);
        parts.push(PartRef { checksum: recorded.cloned(), ..record.part.clone() });
    }
    // Parts written before checksums were kept leave the object without one.
    let object_checksum =
        (part_checksums.len() == parts.len()).then(|| checksum::combine_parts(algorithm, kind, &part_checksums));
    // A full-object checksum sent with the request is the client's proof of the whole object.
    if let Some(value) = request.header(algorithm.header())
        && kind == ChecksumType::FullObject
    {
        let claimed = checksum::parse_value(algorithm, value)?;
        if object_checksum.as_ref().is_none_or(|c| c.value != hex::encode(&claimed)) {
            return Err(S3Error::BadDigest);
        }
    }
    let etag = format!("{}-{}", hex::encode(md5s.finalize()), parts.len());
    let version = ObjectVersion {
        format: RECORD_FORMAT_VERSION,
        version_id: Uuid::now_v7(),
        size: parts.iter().map(|p| p.size).sum(),
        etag: etag.clone(),
        last_modified_ms: now_ms(),
        content_type: upload.content_type,
        headers: upload.headers,
        user_metadata: upload.user_metadata,
        chunk_size: chunk_size.unwrap_or(1),
        parts: PartList::Table { count: parts.len() as u32 },
        checksum: object_checksum,
        acl: upload.acl,
        tags: upload.tags,
    };
    let table = PartTable { format: RECORD_FORMAT_VERSION, parts };
    // The part table, the object and the end of the upload land in one batch on the same
    // replicas.
    let rows = vec![
        RowWrite {
            key: manifest::part_table_key(target.bucket.bucket_id, target.shard, version.version_id),
            tombstone: false,
            value: encode_record(&table),
        },
        RowWrite {
            key: manifest::object_key(target.bucket.bucket_id, target.shard, &target.key),
            tombstone: false,
            value: encode_record(&version),
        },
        RowWrite { key: target.upload_row_key(), tombstone: true, value: Vec::new() },
    ];
    gateway.replication.write_rows(&target.placement(), rows, target.bucket.consistency).await?;
    let mut xml = XmlWriter::new("CompleteMultipartUploadResult");
    let base = gateway.config.public_endpoint.as_ref().map_or("", |p| p.url.as_str());
    let location = format!("{base}/{}/{}", target.bucket.name, list::url_encode(&target.key).replace('+', "%20"));
    xml.element("Location", &location)
        .element("Bucket", &target.bucket.name)
        .element("Key", &target.key)
        .element("ETag", &format!("\"{etag}\""));
    if let Some(checksum) = &version.checksum {
        xml.element(checksum.algorithm.xml_element(), &checksum::display_value(checksum))
            .element("ChecksumType", checksum.kind.name());
    }
    Ok(xml_response(xml.finish("CompleteMultipartUploadResult")))
}

/// AbortMultipartUpload.
pub async fn abort(gateway: &Arc<Gateway>, request: &S3Request) -> Result<Response, S3Error> {
    let target = target(gateway, request)?;
    read_upload(gateway, &target).await?;
    let row = RowWrite { key: target.upload_row_key(), tombstone: true, value: Vec::new() };
    gateway.replication.write_rows(&target.placement(), vec![row], target.bucket.consistency).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// ListParts: one page of the uploaded parts, in part-number order.
pub async fn list_parts(gateway: &Arc<Gateway>, request: &S3Request) -> Result<Response, S3Error> {
    let target = target(gateway, request)?;
    let number_query = |name: &str| -> Result<Option<usize>, S3Error> {
        request
            .query
            .get(name)
            .map(|v| v.parse::<usize>().map_err(|_| S3Error::InvalidArgument(format!("{name} must be an integer"))))
            .transpose()
    };
    let max_parts = number_query("max-parts")?.unwrap_or(MAX_LIST_PARTS).min(MAX_LIST_PARTS);
    let marker = number_query("part-number-marker")?.unwrap_or(0).min(MAX_PART_NUMBER as usize) as u32;
    let upload = read_upload(gateway, &target).await?;
    let (parts, truncated) = scan_parts(gateway, &target, marker, max_parts).await?;

    let owner = &target.bucket.owner_key;
    let mut xml = XmlWriter::new("ListPartsResult");
    xml.element("Bucket", &target.bucket.name)
        .element("Key", &target.key)
        .element("UploadId", &target.upload_id.simple().to_string());
    for role in ["Initiator", "Owner"] {
        xml.principal(role, owner);
    }
    xml.element("StorageClass", "STANDARD")
        .element("PartNumberMarker", &marker.to_string())
        .element("NextPartNumberMarker", &parts.last().map_or(marker, |p| p.part.number).to_string())
        .element("MaxParts", &max_parts.to_string())
        .element("IsTruncated", if truncated { "true" } else { "false" });
    for record in &parts {
        xml.open("Part")
            .element("PartNumber", &record.part.number.to_string())
            .element("LastModified", &iso8601(record.last_modified_ms))
            .element("ETag", &format!("\"{}\"", record.part.etag))
            .element("Size", &record.part.size.to_string());
        if let Some(checksum) = record.checksum.as_ref().filter(|_| upload.checksum.is_some()) {
            xml.element(checksum.algorithm.xml_element(), &checksum::display_value(checksum));
        }
        xml.close("Part");
    }
    if let Some((algorithm, kind)) = upload.checksum {
        xml.element("ChecksumAlgorithm", algorithm.name()).element("ChecksumType", kind.name());
    }
    Ok(xml_response(xml.finish("ListPartsResult")))
}
