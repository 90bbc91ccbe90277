//! ListObjectsV2 and ListObjects: a merge of one ordered scan per index shard.

use std::collections::VecDeque;

use axum::response::Response;
use cairn_storage_node::control::BucketInfo;
use cairn_storage_node::manifest::{self, OBJECT_KEY_HEADER_LEN, ObjectVersion, decode_record, metadata_placement_key};
use cairn_storage_node::meta_store::Row;

use super::access::{Access, resolve_bucket};
use super::error::S3Error;
use super::xml::XmlWriter;
use super::{Gateway, MAX_KEY_BYTES, S3Request, xml_response};
use crate::timefmt::iso8601;

/// Most keys one listing page returns.
pub const MAX_LIST_KEYS: usize = 1000;
/// Rows asked of each replica per scan.
const SCAN_BATCH_ROWS: usize = 1000;

/// One entry of a listing page.
pub enum Entry {
    /// A live object.
    Object {
        /// Its key.
        key: String,
        /// Its current version.
        version: Box<ObjectVersion>,
    },
    /// Keys rolled up by the delimiter.
    CommonPrefix(String),
}

/// A page of a listing.
pub struct Page {
    /// Objects and common prefixes, in key order.
    pub entries: Vec<Entry>,
    /// Where the next page starts (after these bytes), when the listing is truncated.
    pub next_after: Option<Vec<u8>>,
}

struct ShardCursor {
    shard: u16,
    buffer: VecDeque<Row>,
    after: Option<Vec<u8>>,
    exhausted: bool,
}

/// Lists up to `max_keys` entries of `bucket` whose keys start with `prefix` and sort after
/// `start_after` (raw key bytes), rolling keys up at `delimiter`.
pub async fn list_page(
    gateway: &Gateway,
    bucket: &BucketInfo,
    prefix: &str,
    delimiter: Option<&str>,
    start_after: Option<&[u8]>,
    max_keys: usize,
) -> Result<Page, S3Error> {
    let mut cursors: Vec<ShardCursor> = (0..bucket.index_shards.max(1))
        .map(|shard| ShardCursor {
            shard,
            buffer: VecDeque::new(),
            after: start_after.filter(|after| *after >= prefix.as_bytes()).map(|after| row_key(bucket, shard, after)),
            exhausted: false,
        })
        .collect();
    let mut entries = Vec::new();
    let mut last_emitted: Option<Vec<u8>> = None;
    loop {
        for cursor in cursors.iter_mut() {
            fill(gateway, bucket, prefix, cursor).await?;
        }
        let Some(next) = cursors
            .iter_mut()
            .filter(|c| !c.buffer.is_empty())
            .min_by(|a, b| a.buffer[0].key[OBJECT_KEY_HEADER_LEN..].cmp(&b.buffer[0].key[OBJECT_KEY_HEADER_LEN..]))
        else {
            return Ok(Page { entries, next_after: None });
        };
        let row = next.buffer.pop_front().expect("cursor has a row");
        if row.tombstone {
            continue;
        }
        let key_bytes = &row.key[OBJECT_KEY_HEADER_LEN..];
        let Ok(key) = std::str::from_utf8(key_bytes) else {
            continue;
        };
        let rolled_up = delimiter
            .filter(|d| !d.is_empty())
            .and_then(|d| key[prefix.len()..].find(d).map(|i| key[..prefix.len() + i + d.len()].to_owned()));
        // A rolled-up prefix at or before the marker was on an earlier page (ListObjects v1
        // hands the prefix itself back as NextMarker).
        let already_listed = |common: &str| start_after.is_some_and(|after| common.as_bytes() <= after);
        if entries.len() >= max_keys && !rolled_up.as_deref().is_some_and(already_listed) {
            return Ok(Page { entries, next_after: last_emitted });
        }
        match rolled_up {
            Some(common) => {
                // Skip every key under this prefix in every shard: they sort before
                // `common` followed by 0xFF, which no UTF-8 key contains.
                let mut skip_to = common.as_bytes().to_vec();
                skip_to.push(0xFF);
                for cursor in cursors.iter_mut() {
                    cursor.buffer.retain(|r| !r.key[OBJECT_KEY_HEADER_LEN..].starts_with(common.as_bytes()));
                    let skip_key = row_key(bucket, cursor.shard, &skip_to);
                    if cursor.after.as_ref().is_none_or(|after| *after < skip_key) {
                        cursor.after = Some(skip_key);
                    }
                }
                if already_listed(&common) {
                    continue;
                }
                last_emitted = Some(skip_to);
                entries.push(Entry::CommonPrefix(common));
            }
            None => {
                let version: ObjectVersion = decode_record(&row.value).map_err(|e| {
                    tracing::error!(error = %e, "undecodable object row in listing");
                    S3Error::InternalError
                })?;
                last_emitted = Some(key_bytes.to_vec());
                entries.push(Entry::Object { key: key.to_owned(), version: Box::new(version) });
            }
        }
    }
}

fn row_key(bucket: &BucketInfo, shard: u16, key: &[u8]) -> Vec<u8> {
    let mut row = manifest::object_prefix(bucket.bucket_id, shard, "");
    row.extend_from_slice(key);
    row
}

async fn fill(gateway: &Gateway, bucket: &BucketInfo, prefix: &str, cursor: &mut ShardCursor) -> Result<(), S3Error> {
    if !cursor.buffer.is_empty() || cursor.exhausted {
        return Ok(());
    }
    let (rows, more) = gateway
        .replication
        .scan_rows(
            &metadata_placement_key(bucket.bucket_id, cursor.shard),
            &manifest::object_prefix(bucket.bucket_id, cursor.shard, prefix),
            cursor.after.as_deref(),
            SCAN_BATCH_ROWS,
            bucket.consistency,
        )
        .await?;
    if let Some(last) = rows.last() {
        cursor.after = Some(last.key.clone());
    }
    cursor.exhausted = !more || rows.is_empty();
    cursor.buffer.extend(rows);
    Ok(())
}

/// The parameters every listing shares: prefix, delimiter, page size and key encoding.
pub struct ListParams<'a> {
    /// Keys must start with this.
    pub prefix: &'a str,
    /// Keys are rolled up at this, when given.
    pub delimiter: Option<&'a str>,
    /// Most entries in the page.
    pub max: usize,
    /// Whether keys are written URL-encoded (`encoding-type=url`).
    pub url: bool,
}

impl<'a> ListParams<'a> {
    /// Reads the parameters; the page size comes from `max_name`, capped at `cap`.
    pub fn parse(request: &'a S3Request, max_name: &str, cap: usize) -> Result<Self, S3Error> {
        let query = |name: &str| request.query.get(name).map(String::as_str);
        let max = match query(max_name) {
            Some(v) => {
                v.parse::<usize>().map_err(|_| S3Error::InvalidArgument(format!("{max_name} must be an integer")))?
            }
            None => cap,
        }
        .min(cap);
        let url = match query("encoding-type") {
            None => false,
            Some("url") => true,
            Some(_) => return Err(S3Error::InvalidArgument("Invalid Encoding Method specified in Request".into())),
        };
        let prefix = query("prefix").unwrap_or("");
        if prefix.len() > MAX_KEY_BYTES {
            return Err(S3Error::InvalidArgument("prefix too long".into()));
        }
        Ok(Self { prefix, delimiter: query("delimiter").filter(|d| !d.is_empty()), max, url })
    }

    /// A key or prefix as the response carries it.
    pub fn encode(&self, text: &str) -> String {
        if self.url { url_encode(text) } else { text.to_owned() }
    }
}

/// S3's `encoding-type=url`: form-encoding, which clients undo with `unquote_plus`.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(byte as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// ListObjectsV2 (`list-type=2`) and ListObjects (v1).
pub async fn list_objects(gateway: &Gateway, request: &S3Request) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Read)?;
    let v2 = request.query.get("list-type").map(String::as_str) == Some("2");
    let params = ListParams::parse(request, "max-keys", MAX_LIST_KEYS)?;
    let (prefix, delimiter, max_keys, url) = (params.prefix, params.delimiter, params.max, params.url);
    let encode = |s: &str| params.encode(s);

    let token = request.query.get("continuation-token");
    let start_after_param = request.query.get(if v2 { "start-after" } else { "marker" });
    let start_after: Option<Vec<u8>> = match (v2, token) {
        (true, Some(token)) => Some(
            hex::decode(token)
                .map_err(|_| S3Error::InvalidArgument("The continuation token provided is incorrect".into()))?,
        ),
        _ => start_after_param.map(|s| s.as_bytes().to_vec()),
    };
    // Keys are at most MAX_KEY_BYTES, so longer bounds cannot match anything; refusing them
    // keeps row keys within what the nodes accept.
    if start_after.as_ref().is_some_and(|s| s.len() > MAX_KEY_BYTES + 1) {
        return Err(S3Error::InvalidArgument("marker or continuation token too long".into()));
    }
    let page = list_page(gateway, &bucket, prefix, delimiter, start_after.as_deref(), max_keys).await?;

    let mut xml = XmlWriter::new("ListBucketResult");
    xml.element("Name", &bucket.name).element("Prefix", &encode(prefix));
    if let Some(d) = &delimiter {
        xml.element("Delimiter", &encode(d));
    }
    xml.element("MaxKeys", &max_keys.to_string());
    if url {
        xml.element("EncodingType", "url");
    }
    xml.element("IsTruncated", if page.next_after.is_some() { "true" } else { "false" });
    if v2 {
        xml.element("KeyCount", &page.entries.len().to_string());
        if let Some(token) = token {
            xml.element("ContinuationToken", token);
        }
        if let Some(next) = &page.next_after {
            xml.element("NextContinuationToken", &hex::encode(next));
        }
        if let Some(start_after) = start_after_param {
            xml.element("StartAfter", &encode(start_after));
        }
    } else {
        xml.element("Marker", &encode(start_after_param.map(String::as_str).unwrap_or("")));
        if let (Some(next), Some(_)) = (&page.next_after, &delimiter) {
            let next = String::from_utf8_lossy(next.strip_suffix(&[0xFF]).unwrap_or(next)).into_owned();
            xml.element("NextMarker", &encode(&next));
        }
    }
    // v1 always names the owner; v2 only when asked.
    let with_owner = !v2 || request.query.get("fetch-owner").is_some_and(|v| v == "true");
    for entry in &page.entries {
        match entry {
            Entry::Object { key, version } => {
                xml.open("Contents")
                    .element("Key", &encode(key))
                    .element("LastModified", &iso8601(version.last_modified_ms))
                    .element("ETag", &format!("\"{}\"", version.etag));
                checksum_elements(&mut xml, version);
                xml.element("Size", &version.size.to_string());
                if with_owner {
                    xml.principal("Owner", &bucket.owner_key);
                }
                xml.element("StorageClass", "STANDARD").close("Contents");
            }
            Entry::CommonPrefix(common) => {
                xml.open("CommonPrefixes").element("Prefix", &encode(common)).close("CommonPrefixes");
            }
        }
    }
    Ok(xml_response(xml.finish("ListBucketResult")))
}

/// The algorithm and type of an entry's checksum, as S3 lists them.
fn checksum_elements(xml: &mut XmlWriter, version: &ObjectVersion) {
    if let Some(checksum) = &version.checksum {
        xml.element("ChecksumAlgorithm", checksum.algorithm.name()).element("ChecksumType", checksum.kind.name());
    }
}

/// ListObjectVersions: an unversioned bucket holds one version of each key, whose id is
/// `null`, as S3 answers for buckets that never had versioning enabled.
pub async fn list_object_versions(gateway: &Gateway, request: &S3Request) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Read)?;
    let query = |name: &str| request.query.get(name).map(String::as_str);
    let params = ListParams::parse(request, "max-keys", MAX_LIST_KEYS)?;
    let (prefix, delimiter, max_keys, url) = (params.prefix, params.delimiter, params.max, params.url);
    let encode = |s: &str| params.encode(s);
    let key_marker = query("key-marker").unwrap_or("");
    let version_marker = query("version-id-marker");
    if version_marker.is_some_and(|v| v != "null") {
        return Err(S3Error::InvalidArgument("Invalid version id specified".into()));
    }
    if key_marker.len() > MAX_KEY_BYTES {
        return Err(S3Error::InvalidArgument("key-marker too long".into()));
    }
    let start_after = (!key_marker.is_empty()).then_some(key_marker.as_bytes());
    let page = list_page(gateway, &bucket, prefix, delimiter, start_after, max_keys).await?;

    let mut xml = XmlWriter::new("ListVersionsResult");
    xml.element("Name", &bucket.name)
        .element("Prefix", &encode(prefix))
        .element("KeyMarker", &encode(key_marker))
        .element("VersionIdMarker", version_marker.unwrap_or(""));
    if let Some(next) = &page.next_after {
        let next = String::from_utf8_lossy(next.strip_suffix(&[0xFF]).unwrap_or(next)).into_owned();
        xml.element("NextKeyMarker", &encode(&next)).element("NextVersionIdMarker", "null");
    }
    xml.element("MaxKeys", &max_keys.to_string());
    if let Some(d) = delimiter {
        xml.element("Delimiter", &encode(d));
    }
    if url {
        xml.element("EncodingType", "url");
    }
    xml.element("IsTruncated", if page.next_after.is_some() { "true" } else { "false" });
    for entry in &page.entries {
        match entry {
            Entry::Object { key, version } => {
                xml.open("Version")
                    .element("Key", &encode(key))
                    .element("VersionId", "null")
                    .element("IsLatest", "true")
                    .element("LastModified", &iso8601(version.last_modified_ms))
                    .element("ETag", &format!("\"{}\"", version.etag));
                checksum_elements(&mut xml, version);
                xml.element("Size", &version.size.to_string());
                xml.principal("Owner", &bucket.owner_key);
                xml.element("StorageClass", "STANDARD").close("Version");
            }
            Entry::CommonPrefix(common) => {
                xml.open("CommonPrefixes").element("Prefix", &encode(common)).close("CommonPrefixes");
            }
        }
    }
    Ok(xml_response(xml.finish("ListVersionsResult")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_matches_what_clients_decode() {
        assert_eq!(url_encode("docs/a b/ü+x=y&z"), "docs/a+b/%C3%BC%2Bx%3Dy%26z");
    }
}
