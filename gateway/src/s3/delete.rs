//! DeleteObject and DeleteObjects: deletes are tombstones, written at the bucket's
//! consistency level.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use cairn_storage_node::control::BucketInfo;
use cairn_storage_node::manifest::{self, index_shard, metadata_placement_key};
use futures_util::StreamExt;
use http::StatusCode;
use serde::Deserialize;

use super::access::{Access, resolve_bucket};
use super::error::S3Error;
use super::upload::{BodyChecksums, read_small_body};
use super::xml::{MAX_XML_BODY_BYTES, XmlWriter};
use super::{Gateway, MAX_KEY_BYTES, S3Request, xml_response};
use crate::replication::RowWrite;

/// Most keys one DeleteObjects request may name.
pub const MAX_DELETE_KEYS: usize = 1000;
/// Index shards whose tombstones are written at once by one DeleteObjects request.
const SHARDS_IN_FLIGHT: usize = 4;

/// Writes tombstones for `keys` of one index shard in one batch.
async fn delete_keys(gateway: &Gateway, bucket: &BucketInfo, shard: u16, keys: &[String]) -> Result<(), S3Error> {
    let rows = keys
        .iter()
        .map(|key| RowWrite {
            key: manifest::object_key(bucket.bucket_id, shard, key),
            tombstone: true,
            value: Vec::new(),
        })
        .collect();
    gateway.replication.write_rows(&metadata_placement_key(bucket.bucket_id, shard), rows, bucket.consistency).await?;
    Ok(())
}

/// DeleteObject: S3 answers 204 whether or not the key existed.
pub async fn delete_object(gateway: &Arc<Gateway>, request: &S3Request) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Write)?;
    let key = request.key.clone().ok_or(S3Error::InvalidArgument("missing key".into()))?;
    if request.query.get("versionId").is_some_and(|v| v != "null") {
        return Err(S3Error::NoSuchVersion);
    }
    delete_keys(gateway, &bucket, index_shard(&key, bucket.index_shards), &[key]).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteRequest {
    #[serde(default)]
    quiet: bool,
    #[serde(default)]
    object: Vec<ObjectIdentifier>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ObjectIdentifier {
    key: String,
    version_id: Option<String>,
}

/// DeleteObjects: one batch of tombstones per index shard; a shard that fails reports an
/// error for each of its keys, and the others still succeed.
pub async fn delete_objects(gateway: &Arc<Gateway>, request: &S3Request, body: Body) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Write)?;
    let body = read_small_body(request, body, MAX_XML_BODY_BYTES, BodyChecksums::AllWithDigest).await?;
    let listed: DeleteRequest = super::xml::parse(&body)?;
    if listed.object.is_empty() || listed.object.len() > MAX_DELETE_KEYS {
        return Err(S3Error::MalformedXml);
    }

    // Per listed object: `None` when deleted, else its error's code and message.
    let mut results: BTreeMap<usize, Option<(&'static str, String)>> = BTreeMap::new();
    let failure = |e: &S3Error| Some((e.code(), e.to_string()));
    let mut by_shard: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for (i, object) in listed.object.iter().enumerate() {
        if object.key.is_empty() {
            results.insert(i, failure(&S3Error::InvalidArgument("Object key must not be empty".into())));
        } else if object.key.len() > MAX_KEY_BYTES {
            results.insert(i, failure(&S3Error::KeyTooLongError));
        } else if object.version_id.as_deref().is_some_and(|v| v != "null") {
            // Unversioned buckets hold only the `null` version.
            results.insert(i, failure(&S3Error::NoSuchVersion));
        } else {
            by_shard.entry(index_shard(&object.key, bucket.index_shards)).or_default().push(i);
        }
    }
    let objects = &listed.object;
    let bucket = &bucket;
    let mut batches = futures_util::stream::iter(by_shard)
        .map(|(shard, indices)| async move {
            let keys: Vec<String> = indices.iter().map(|&i| objects[i].key.clone()).collect();
            (indices, delete_keys(gateway, bucket, shard, &keys).await)
        })
        .buffer_unordered(SHARDS_IN_FLIGHT);
    while let Some((indices, outcome)) = batches.next().await {
        for i in indices {
            let error = outcome.as_ref().err().and_then(failure);
            results.insert(i, error);
        }
    }

    let mut xml = XmlWriter::new("DeleteResult");
    for (i, error) in results {
        let object = &objects[i];
        match error {
            None if listed.quiet => {}
            None => {
                xml.open("Deleted").element("Key", &object.key);
                if let Some(version) = &object.version_id {
                    xml.element("VersionId", version);
                }
                xml.close("Deleted");
            }
            Some((code, message)) => {
                xml.open("Error")
                    .element("Key", &object.key)
                    .element("Code", code)
                    .element("Message", &message)
                    .close("Error");
            }
        }
    }
    Ok(xml_response(xml.finish("DeleteResult")))
}
