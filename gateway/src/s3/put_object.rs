//! PutObject, and the object attributes every upload carries.

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use cairn_storage_node::control::{BucketInfo, CannedAcl};
use cairn_storage_node::manifest::{
    self, Checksum, ObjectVersion, PartList, PartRef, RECORD_FORMAT_VERSION, encode_record, index_shard,
    metadata_placement_key,
};
use http::StatusCode;
use uuid::Uuid;

use super::access::{Access, check_object_acl, requested_acl, resolve_bucket};
use super::checksum;
use super::conditions::{Conditions, Verdict};
use super::error::S3Error;
use super::get_object::read_version;
use super::pending::BodyTarget;
use super::tagging::tags_from_header;
use super::upload::{StoredBody, store_body};
use super::{Gateway, S3Request, set_header};
use crate::replication::RowWrite;
use crate::timefmt::now_ms;

/// Largest total of user metadata names and values.
pub const MAX_USER_METADATA_BYTES: usize = 2 * 1024;
/// Standard headers kept with an object and returned on GET and HEAD.
pub const STORED_HEADERS: [&str; 5] =
    ["cache-control", "content-disposition", "content-encoding", "content-language", "expires"];

/// What an upload says about the object besides its bytes.
pub struct ObjectAttributes {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// Standard headers kept with the object.
    pub headers: Vec<(String, String)>,
    /// `x-amz-meta-*` pairs.
    pub user_metadata: Vec<(String, String)>,
    /// Canned ACL (`x-amz-acl`).
    pub acl: CannedAcl,
    /// Tags (`x-amz-tagging`).
    pub tags: Vec<(String, String)>,
}

/// The content type, standard headers and user metadata of an upload.
pub fn object_attributes(request: &S3Request) -> Result<ObjectAttributes, S3Error> {
    let content_type = request.header("content-type").map(str::to_owned);
    let headers = STORED_HEADERS
        .iter()
        .filter_map(|name| request.header(name).map(|v| (name.to_string(), v.to_owned())))
        .filter_map(|(name, value)| match name.as_str() {
            // `aws-chunked` describes this request's body, not the object: S3 drops it.
            "content-encoding" => {
                let kept: Vec<&str> =
                    value.split(',').map(str::trim).filter(|e| !e.is_empty() && *e != "aws-chunked").collect();
                (!kept.is_empty()).then(|| (name, kept.join(",")))
            }
            _ => Some((name, value)),
        })
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
    Ok(ObjectAttributes {
        content_type,
        headers,
        user_metadata: user,
        acl: requested_acl(request)?,
        tags: tags_from_header(request)?,
    })
}

/// Checks the conditions of a write against the current version: `If-None-Match: *` (only
/// create) and `If-Match: <etag>` (only replace that version), as S3 supports them; other
/// forms are refused. The check precedes the write: two racing conditional writes may both
/// succeed.
pub async fn check_write_conditions(
    gateway: &Gateway,
    bucket: &BucketInfo,
    request: &S3Request,
    key: &str,
) -> Result<(), S3Error> {
    let if_match = request.header("if-match");
    let if_none_match = request.header("if-none-match");
    match (if_match, if_none_match) {
        (None, None) => Ok(()),
        (Some(_), Some(_)) => Err(S3Error::NotImplemented("If-Match together with If-None-Match".into())),
        (None, Some(value)) if value.trim() != "*" => {
            Err(S3Error::NotImplemented("If-None-Match with a value other than *".into()))
        }
        (None, Some(_)) => match read_version(gateway, bucket, key).await? {
            Some(_) => Err(S3Error::PreconditionFailed),
            None => Ok(()),
        },
        (Some(_), None) => {
            let current = read_version(gateway, bucket, key).await?.ok_or(S3Error::NoSuchKey)?;
            match Conditions::of(request, "").evaluate(Some(&current)) {
                Verdict::Proceed => Ok(()),
                Verdict::NotModified | Verdict::PreconditionFailed => Err(S3Error::PreconditionFailed),
            }
        }
    }
}

/// Makes a single-part body visible as the current version of `key`: its chunk manifest and
/// the object row, in one batch on the index shard's replicas.
pub async fn commit_single_part(
    gateway: &Gateway,
    bucket: &BucketInfo,
    key: &str,
    attributes: ObjectAttributes,
    stored: &StoredBody,
) -> Result<ObjectVersion, S3Error> {
    let ObjectAttributes { content_type, headers, user_metadata, acl, tags } = attributes;
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
        parts: PartList::Inline(vec![PartRef {
            number: 1,
            chunk_set: stored.chunk_set,
            size: stored.size,
            etag,
            checksum: None,
        }]),
        checksum: Some(stored.checksum()),
        acl,
        tags,
    };
    let shard = index_shard(key, bucket.index_shards);
    let mut rows = stored.manifest_rows(bucket.bucket_id, shard, 1).await?;
    rows.push(RowWrite {
        key: manifest::object_key(bucket.bucket_id, shard, key),
        tombstone: false,
        value: encode_record(&version),
    });
    let placement = metadata_placement_key(bucket.bucket_id, shard);
    gateway.replication.write_rows(&placement, rows, bucket.consistency).await?;
    Ok(version)
}

/// Rewrites the current version of `key` with `change` applied (ACL, tags). This is a read
/// then a write, not a compare-and-set: a write that lands in between is overtaken by it.
pub async fn rewrite_current_version(
    gateway: &Gateway,
    bucket: &BucketInfo,
    key: &str,
    change: impl FnOnce(&mut ObjectVersion),
) -> Result<(), S3Error> {
    let mut version = read_version(gateway, bucket, key).await?.ok_or(S3Error::NoSuchKey)?;
    change(&mut version);
    let shard = index_shard(key, bucket.index_shards);
    let row = RowWrite {
        key: manifest::object_key(bucket.bucket_id, shard, key),
        tombstone: false,
        value: encode_record(&version),
    };
    gateway
        .replication
        .write_rows(&metadata_placement_key(bucket.bucket_id, shard), vec![row], bucket.consistency)
        .await?;
    Ok(())
}

/// PutObject.
pub async fn put_object(gateway: &Arc<Gateway>, request: &S3Request, body: Body) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Write)?;
    let key = request.key.clone().ok_or(S3Error::InvalidArgument("missing key".into()))?;
    let attributes = object_attributes(request)?;
    check_object_acl(&bucket, request, attributes.acl)?;
    check_write_conditions(gateway, &bucket, request, &key).await?;
    let target = BodyTarget { bucket: &bucket, shard: index_shard(&key, bucket.index_shards), part: 1 };
    let stored = store_body(gateway, target, request, body, None).await?;
    let version = commit_single_part(gateway, &bucket, &key, attributes, &stored).await?;
    let mut response = StatusCode::OK.into_response();
    set_header(&mut response, "etag", &format!("\"{}\"", version.etag));
    set_checksum_headers(&mut response, version.checksum.as_ref());
    Ok(response)
}

/// Adds `x-amz-checksum-<algorithm>` and `x-amz-checksum-type` for a stored checksum.
pub fn set_checksum_headers(response: &mut Response, checksum: Option<&Checksum>) {
    if let Some(checksum) = checksum {
        set_header(response, checksum.algorithm.header(), &checksum::display_value(checksum));
        set_header(response, "x-amz-checksum-type", checksum.kind.name());
    }
}
