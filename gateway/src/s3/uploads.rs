//! ListMultipartUploads: the in-progress uploads of a bucket, ordered by key and then by
//! initiation, merged from one scan per index shard.

use std::collections::BTreeMap;

use axum::response::Response;
use cairn_storage_node::control::BucketInfo;
use cairn_storage_node::manifest::{self, UPLOAD_KEY_TERMINATOR, UploadRecord, decode_record, metadata_placement_key};
use uuid::Uuid;

use super::access::{Access, resolve_bucket};
use super::error::S3Error;
use super::list::ListParams;
use super::xml::XmlWriter;
use super::{Gateway, MAX_KEY_BYTES, S3Request, xml_response};
use crate::timefmt::iso8601;

/// Most uploads one page returns.
pub const MAX_LIST_UPLOADS: usize = 1000;
/// Rows asked of the replicas per scan.
const SCAN_ROWS: usize = 1000;

/// One entry of a page, in listing order.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    /// An upload: ordered by key, then id.
    Upload { key: String, upload_id: Uuid, initiated_ms: u64 },
    /// Keys rolled up at the delimiter.
    CommonPrefix(String),
}

impl Entry {
    fn sort_key(&self) -> (&str, Option<Uuid>) {
        match self {
            Self::Upload { key, upload_id, .. } => (key, Some(*upload_id)),
            Self::CommonPrefix(prefix) => (prefix, None),
        }
    }
}

/// Where a page starts: after this key (all its uploads), or after one upload of it.
struct Marker<'a> {
    key: &'a str,
    upload_id: Option<Uuid>,
}

/// The first `limit` entries of one shard after `marker`.
async fn shard_entries(
    gateway: &Gateway,
    bucket: &BucketInfo,
    shard: u16,
    prefix: &str,
    delimiter: Option<&str>,
    marker: &Marker<'_>,
    limit: usize,
) -> Result<Vec<Entry>, S3Error> {
    let scan_prefix = manifest::upload_prefix(bucket.bucket_id, shard, prefix);
    let mut after = (!marker.key.is_empty()).then(|| {
        let mut row = manifest::upload_prefix(bucket.bucket_id, shard, marker.key);
        match marker.upload_id {
            Some(id) => {
                row.push(UPLOAD_KEY_TERMINATOR);
                row.extend_from_slice(id.as_bytes());
            }
            // Past every upload of the marker key.
            None => row.push(UPLOAD_KEY_TERMINATOR + 1),
        }
        row
    });
    let mut entries: Vec<Entry> = Vec::new();
    loop {
        let (rows, more) = gateway
            .replication
            .scan_rows(
                &metadata_placement_key(bucket.bucket_id, shard),
                &scan_prefix,
                after.as_deref(),
                SCAN_ROWS,
                bucket.consistency,
            )
            .await?;
        after = rows.last().map(|r| r.key.clone());
        for row in rows.iter().filter(|r| !r.tombstone) {
            let record: UploadRecord = decode_record(&row.value).map_err(|_| S3Error::InternalError)?;
            let rolled_up = delimiter.and_then(|d| {
                record.key[prefix.len()..].find(d).map(|i| record.key[..prefix.len() + i + d.len()].to_owned())
            });
            match rolled_up {
                // A prefix at or before the marker was listed on an earlier page.
                Some(common) if common.as_str() <= marker.key => {}
                Some(common) => {
                    if entries.last() != Some(&Entry::CommonPrefix(common.clone())) {
                        entries.push(Entry::CommonPrefix(common));
                    }
                }
                None => entries.push(Entry::Upload {
                    key: record.key,
                    upload_id: record.upload_id,
                    initiated_ms: record.initiated_ms,
                }),
            }
            if entries.len() > limit {
                entries.truncate(limit);
                return Ok(entries);
            }
        }
        if !more || after.is_none() {
            return Ok(entries);
        }
    }
}

/// ListMultipartUploads.
pub async fn list_uploads(gateway: &Gateway, request: &S3Request) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Read)?;
    let query = |name: &str| request.query.get(name).map(String::as_str);
    let params = ListParams::parse(request, "max-uploads", MAX_LIST_UPLOADS)?;
    let (prefix, delimiter, max_uploads, url) = (params.prefix, params.delimiter, params.max, params.url);
    let encode = |s: &str| params.encode(s);
    let key_marker = query("key-marker").unwrap_or("");
    // S3 ignores the upload id marker without a key marker.
    let upload_id_marker = query("upload-id-marker").filter(|id| !key_marker.is_empty() && !id.is_empty());
    let marker = Marker {
        key: key_marker,
        upload_id: upload_id_marker
            .map(|id| Uuid::try_parse(id).map_err(|_| S3Error::InvalidArgument("Invalid uploadId marker".into())))
            .transpose()?,
    };
    if key_marker.len() > MAX_KEY_BYTES {
        return Err(S3Error::InvalidArgument("key-marker too long".into()));
    }

    // Every shard's first max+1 entries hold the first max+1 of the merge.
    let mut merged: BTreeMap<(String, Option<Uuid>), Entry> = BTreeMap::new();
    for shard in 0..bucket.index_shards.max(1) {
        for entry in shard_entries(gateway, &bucket, shard, prefix, delimiter, &marker, max_uploads + 1).await? {
            let (key, id) = entry.sort_key();
            merged.insert((key.to_owned(), id), entry);
        }
    }
    let truncated = merged.len() > max_uploads;
    let entries: Vec<Entry> = merged.into_values().take(max_uploads).collect();

    let owner = &bucket.owner_key;
    let mut xml = XmlWriter::new("ListMultipartUploadsResult");
    xml.element("Bucket", &bucket.name)
        .element("KeyMarker", &encode(key_marker))
        .element("UploadIdMarker", upload_id_marker.unwrap_or(""));
    if truncated && let Some(last) = entries.last() {
        let (key, id) = last.sort_key();
        xml.element("NextKeyMarker", &encode(key))
            .element("NextUploadIdMarker", &id.map(|id| id.simple().to_string()).unwrap_or_default());
    }
    if let Some(d) = delimiter {
        xml.element("Delimiter", &encode(d));
    }
    xml.element("Prefix", &encode(prefix)).element("MaxUploads", &max_uploads.to_string());
    if url {
        xml.element("EncodingType", "url");
    }
    xml.element("IsTruncated", if truncated { "true" } else { "false" });
    for entry in &entries {
        match entry {
            Entry::Upload { key, upload_id, initiated_ms } => {
                xml.open("Upload").element("Key", &encode(key)).element("UploadId", &upload_id.simple().to_string());
                for role in ["Initiator", "Owner"] {
                    xml.principal(role, owner);
                }
                xml.element("StorageClass", "STANDARD").element("Initiated", &iso8601(*initiated_ms)).close("Upload");
            }
            Entry::CommonPrefix(common) => {
                xml.open("CommonPrefixes").element("Prefix", &encode(common)).close("CommonPrefixes");
            }
        }
    }
    Ok(xml_response(xml.finish("ListMultipartUploadsResult")))
}
