//! Multipart uploads: create, upload part, complete, abort.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use cairn_storage_node::control::BucketInfo;
use cairn_storage_node::manifest::{
    self, ObjectVersion, PartList, PartRef, PartTable, RECORD_FORMAT_VERSION, UploadPartRecord, UploadRecord,
    decode_record, encode_record, index_shard, metadata_placement_key,
};
use http::StatusCode;
use http_body_util::BodyExt;
use md5::{Digest, Md5};
use serde::Deserialize;
use uuid::Uuid;

use super::error::S3Error;
use super::put_object::{ObjectAttributes, object_attributes};
use super::upload::store_body;
use super::xml::{MAX_XML_BODY_BYTES, XmlWriter};
use super::{Gateway, S3Request, resolve_bucket, set_header, xml_response};
use crate::replication::RowWrite;
use crate::timefmt::now_ms;

/// Highest part number S3 accepts.
pub const MAX_PART_NUMBER: u32 = 10_000;
/// Smallest size of every part but the last.
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// Part rows read per scan while completing.
const PART_SCAN_ROWS: usize = 1000;

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
    fn upload_row_key(&self) -> Vec<u8> {
        manifest::upload_key(self.bucket.bucket_id, self.shard, &self.key, self.upload_id)
    }
}

fn target(gateway: &Gateway, request: &S3Request) -> Result<UploadTarget, S3Error> {
    let bucket = resolve_bucket(gateway, request)?;
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
    let bucket = resolve_bucket(gateway, request)?;
    let key = request.key.clone().ok_or(S3Error::NoSuchKey)?;
    let ObjectAttributes { content_type, headers, user_metadata } = object_attributes(request)?;
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
    Ok(xml_response(xml.finish("InitiateMultipartUploadResult")))
}

/// UploadPart: the body becomes a chunk set of its own, so a re-upload replaces the part
/// without touching the chunks of the previous attempt.
pub async fn upload_part(gateway: &Arc<Gateway>, request: &S3Request, body: Body) -> Result<Response, S3Error> {
    let target = target(gateway, request)?;
    let part_number: u32 = request
        .query
        .get("partNumber")
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            S3Error::InvalidArgument(format!(
                "Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive"
            ))
        })?;
    read_upload(gateway, &target).await?;
    let stored = store_body(gateway, &target.bucket, request, body, part_number).await?;
    let etag = hex::encode(stored.md5);
    let record = UploadPartRecord {
        format: RECORD_FORMAT_VERSION,
        part: PartRef { number: part_number, chunk_set: stored.chunk_set, size: stored.size, etag: etag.clone() },
        chunk_size: stored.chunk_size,
        last_modified_ms: now_ms(),
    };
    let rows = vec![
        RowWrite {
            key: manifest::part_manifest_key(target.bucket.bucket_id, target.shard, stored.chunk_set, part_number),
            tombstone: false,
            value: encode_record(&stored.manifest()),
        },
        RowWrite {
            key: manifest::upload_part_key(target.bucket.bucket_id, target.shard, target.upload_id, part_number),
            tombstone: false,
            value: encode_record(&record),
        },
    ];
    gateway.replication.write_rows(&target.placement(), rows, target.bucket.consistency).await?;
    let mut response = StatusCode::OK.into_response();
    set_header(&mut response, "etag", &format!("\"{etag}\""));
    Ok(response)
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
}

async fn uploaded_parts(gateway: &Gateway, target: &UploadTarget) -> Result<BTreeMap<u32, UploadPartRecord>, S3Error> {
    let prefix = manifest::upload_part_prefix(target.bucket.bucket_id, target.shard, target.upload_id);
    let mut parts = BTreeMap::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let (rows, more) = gateway
            .replication
            .scan_rows(&target.placement(), &prefix, after.as_deref(), PART_SCAN_ROWS, target.bucket.consistency)
            .await?;
        after = rows.last().map(|r| r.key.clone());
        for row in rows.iter().filter(|r| !r.tombstone) {
            let record: UploadPartRecord = decode_record(&row.value).map_err(|_| S3Error::InternalError)?;
            parts.insert(record.part.number, record);
        }
        if !more || after.is_none() {
            return Ok(parts);
        }
    }
}

/// CompleteMultipartUpload.
pub async fn complete(gateway: &Arc<Gateway>, request: &S3Request, body: Body) -> Result<Response, S3Error> {
    let target = target(gateway, request)?;
    let body = http_body_util::Limited::new(body, MAX_XML_BODY_BYTES)
        .collect()
        .await
        .map_err(|_| S3Error::MalformedXml)?
        .to_bytes();
    let listed: CompleteRequest = super::xml::parse(&body)?;
    if listed.part.is_empty() {
        return Err(S3Error::MalformedXml);
    }
    let upload = read_upload(gateway, &target).await?;
    let uploaded = uploaded_parts(gateway, &target).await?;

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
        md5s.update(hex::decode(&record.part.etag).map_err(|_| S3Error::InternalError)?);
        parts.push(record.part.clone());
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
    xml.element("Location", &format!("/{}/{}", target.bucket.name, target.key))
        .element("Bucket", &target.bucket.name)
        .element("Key", &target.key)
        .element("ETag", &format!("\"{etag}\""));
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
