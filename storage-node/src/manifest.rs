//! What metadata rows mean: object versions, multipart uploads and part manifests, and the
//! byte keys they are stored under.
//!
//! The metadata store itself is a generic last-writer-wins key-value store; this module is the
//! one place that gives its rows a meaning, so gateways (which write them) and nodes (which
//! will collect garbage and heal from them) agree.
//!
//! Every row of a bucket lives in the partition of `(bucket_id, index shard)`, where the index
//! shard is `stable_hash(object key) mod index_shards`. Keys start with a row kind, the
//! bucket id and the shard, so listing a bucket is one ordered range scan per shard.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::chunk_store::ChunkId;
use crate::control::CannedAcl;
use crate::placement::stable_hash;

/// Version of the JSON encoding of every record below.
pub const RECORD_FORMAT_VERSION: u8 = 1;

/// Index shards of a new bucket: listing merges this many sorted scans.
pub const DEFAULT_INDEX_SHARDS: u16 = 4;

/// The first byte of every metadata key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RowKind {
    /// The current version (or tombstone) of an object.
    Object = 1,
    /// An in-progress multipart upload.
    Upload = 2,
    /// One uploaded part of a multipart upload.
    UploadPart = 3,
    /// The SHA-256 of every chunk of one part of an object version.
    PartManifest = 4,
    /// The part list of a multipart object version, kept out of the object row so listings
    /// stay small whatever the part count.
    PartTable = 5,
    /// Chunks being written, or left behind by a write that failed or whose gateway died.
    PendingChunks = 6,
}

impl RowKind {
    /// Every kind of metadata row.
    pub const ALL: [Self; 6] =
        [Self::Object, Self::Upload, Self::UploadPart, Self::PartManifest, Self::PartTable, Self::PendingChunks];
}

/// The key prefixes of every row of one bucket index shard, one per row kind: together, what
/// the shard's metadata partition holds for it.
pub fn shard_prefixes(bucket_id: Uuid, shard: u16) -> Vec<Vec<u8>> {
    RowKind::ALL.iter().map(|&kind| shard_prefix(kind, bucket_id, shard)).collect()
}

/// The chunk set and part number a part-manifest row key names.
pub fn part_manifest_chunk_set(key: &[u8]) -> Option<(Uuid, u32)> {
    let rest = key.strip_prefix(&[RowKind::PartManifest as u8])?.get(18..)?;
    let chunk_set = Uuid::from_slice(rest.get(..16)?).ok()?;
    let part = u32::from_be_bytes(rest.get(16..20)?.try_into().ok()?);
    Some((chunk_set, part))
}

/// The index shard of an object key.
pub fn index_shard(key: &str, index_shards: u16) -> u16 {
    (stable_hash(key.as_bytes()) % u64::from(index_shards.max(1))) as u16
}

/// The placement key of a bucket's index shard: its rows live on that partition's replicas.
pub fn metadata_placement_key(bucket_id: Uuid, shard: u16) -> [u8; 18] {
    let mut out = [0u8; 18];
    out[..16].copy_from_slice(bucket_id.as_bytes());
    out[16..].copy_from_slice(&shard.to_be_bytes());
    out
}

fn shard_prefix(kind: RowKind, bucket_id: Uuid, shard: u16) -> Vec<u8> {
    let mut key = Vec::with_capacity(64);
    key.push(kind as u8);
    key.extend_from_slice(bucket_id.as_bytes());
    key.extend_from_slice(&shard.to_be_bytes());
    key
}

/// Prefix of the object rows of one shard whose keys start with `key_prefix`.
pub fn object_prefix(bucket_id: Uuid, shard: u16, key_prefix: &str) -> Vec<u8> {
    let mut key = shard_prefix(RowKind::Object, bucket_id, shard);
    key.extend_from_slice(key_prefix.as_bytes());
    key
}

/// Row key of an object.
pub fn object_key(bucket_id: Uuid, shard: u16, key: &str) -> Vec<u8> {
    object_prefix(bucket_id, shard, key)
}

/// Length of the fixed part of object row keys; the object key follows.
pub const OBJECT_KEY_HEADER_LEN: usize = 19;

/// Ends the object key inside an upload row key, so uploads sort by key first ("a" before
/// "ab") and then by upload id (UUIDv7: initiation order).
pub const UPLOAD_KEY_TERMINATOR: u8 = 0x00;

/// Prefix of the upload rows of one shard whose keys start with `key_prefix`.
pub fn upload_prefix(bucket_id: Uuid, shard: u16, key_prefix: &str) -> Vec<u8> {
    let mut row = shard_prefix(RowKind::Upload, bucket_id, shard);
    row.extend_from_slice(key_prefix.as_bytes());
    row
}

/// Row key of a multipart upload: sorted by object key, then upload id.
pub fn upload_key(bucket_id: Uuid, shard: u16, key: &str, upload_id: Uuid) -> Vec<u8> {
    let mut row = upload_prefix(bucket_id, shard, key);
    row.push(UPLOAD_KEY_TERMINATOR);
    row.extend_from_slice(upload_id.as_bytes());
    row
}

/// Prefix of the part rows of one upload.
pub fn upload_part_prefix(bucket_id: Uuid, shard: u16, upload_id: Uuid) -> Vec<u8> {
    let mut row = shard_prefix(RowKind::UploadPart, bucket_id, shard);
    row.extend_from_slice(upload_id.as_bytes());
    row
}

/// Row key of one part of an upload.
pub fn upload_part_key(bucket_id: Uuid, shard: u16, upload_id: Uuid, part_number: u32) -> Vec<u8> {
    let mut row = upload_part_prefix(bucket_id, shard, upload_id);
    row.extend_from_slice(&part_number.to_be_bytes());
    row
}

/// Row key of the chunk manifest of one part of a chunk set.
pub fn part_manifest_key(bucket_id: Uuid, shard: u16, chunk_set: Uuid, part_number: u32) -> Vec<u8> {
    let mut row = shard_prefix(RowKind::PartManifest, bucket_id, shard);
    row.extend_from_slice(chunk_set.as_bytes());
    row.extend_from_slice(&part_number.to_be_bytes());
    row
}

/// Row key of the record of a chunk set part being written; it lives in the index shard of
/// the object key, next to the manifest that will reference the chunks.
pub fn pending_chunks_key(bucket_id: Uuid, shard: u16, chunk_set: Uuid, part_number: u32) -> Vec<u8> {
    let mut row = shard_prefix(RowKind::PendingChunks, bucket_id, shard);
    row.extend_from_slice(chunk_set.as_bytes());
    row.extend_from_slice(&part_number.to_be_bytes());
    row
}

/// Chunks of one part of a chunk set that may exist with nothing referencing them yet: written
/// before the first chunk is sent, kept alive by the writing gateway's lease, and replaced by a
/// tombstone in the batch that writes the part's manifest. A record whose lease ran out names
/// chunks of a write that failed or whose gateway died; they may still be referenced (a
/// metadata write that missed its quorum can have reached a replica and surface later), so
/// garbage collection must find no manifest of the chunk set before it deletes anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChunks {
    /// Encoding version.
    pub format: u8,
    /// The chunk set.
    pub chunk_set: Uuid,
    /// The part number within it.
    pub part: u32,
    /// Chunks 0..count may exist.
    pub count: u32,
    /// When the record was written, Unix milliseconds.
    pub recorded_ms: u64,
    /// Until when the writer may still reference the chunks, Unix milliseconds (0: it gave up).
    #[serde(default)]
    pub lease_until_ms: u64,
}

/// The bucket-usage tally of the metadata store: a live object row counts one object of its
/// size in the group of its bucket index shard ([`usage_group`]).
pub fn object_usage(row: &crate::meta_store::Row) -> Option<(Vec<u8>, u64)> {
    /// The one field usage needs; the rest of the record is skipped unparsed.
    #[derive(Deserialize)]
    struct Size {
        size: u64,
    }
    if row.tombstone || row.key.first() != Some(&(RowKind::Object as u8)) {
        return None;
    }
    let group = row.key.get(1..OBJECT_KEY_HEADER_LEN)?.to_vec();
    let size = decode_record::<Size>(&row.value).map(|s| s.size).unwrap_or(0);
    Some((group, size))
}

/// The usage group of a bucket index shard: what [`object_usage`] counts its objects under.
pub fn usage_group(bucket_id: Uuid, shard: u16) -> Vec<u8> {
    metadata_placement_key(bucket_id, shard).to_vec()
}

/// Row key of the part table of an object version.
pub fn part_table_key(bucket_id: Uuid, shard: u16, version_id: Uuid) -> Vec<u8> {
    let mut row = shard_prefix(RowKind::PartTable, bucket_id, shard);
    row.extend_from_slice(version_id.as_bytes());
    row
}

/// Where an object version's parts are listed. Untagged, so rows written when this field was a
/// plain list of parts still read as [`PartList::Inline`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PartList {
    /// In the object row itself (a single PUT: one part).
    Inline(Vec<PartRef>),
    /// In the version's [`PartTable`] row (multipart uploads).
    Table {
        /// Number of parts.
        count: u32,
    },
}

/// The parts of a multipart object version, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartTable {
    /// Encoding version.
    pub format: u8,
    /// The parts in order.
    pub parts: Vec<PartRef>,
}

/// A stored object version: everything a listing needs, and with its parts everything a GET
/// needs besides the chunk bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectVersion {
    /// Encoding version.
    pub format: u8,
    /// Unique id of this version (UUIDv7).
    pub version_id: Uuid,
    /// Object size in bytes.
    pub size: u64,
    /// The S3 ETag without quotes: MD5 hex, or `md5-of-md5s-N` for multipart.
    pub etag: String,
    /// When the version was written, in Unix milliseconds.
    pub last_modified_ms: u64,
    /// `Content-Type` given at upload.
    pub content_type: Option<String>,
    /// Standard headers kept and returned (`cache-control`, `content-disposition`, ...).
    pub headers: Vec<(String, String)>,
    /// `x-amz-meta-*` pairs, names lower-cased without the prefix.
    pub user_metadata: Vec<(String, String)>,
    /// Chunk size the parts were cut with.
    pub chunk_size: u64,
    /// The parts, or where they are listed.
    pub parts: PartList,
    /// The flexible checksum recorded for the object (absent on rows written before
    /// checksums were kept).
    #[serde(default)]
    pub checksum: Option<Checksum>,
    /// Who besides the bucket owner may read the object.
    #[serde(default)]
    pub acl: CannedAcl,
    /// Object tags, in the order given.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

/// A flexible checksum algorithm of S3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgorithm {
    /// CRC-32 (ISO-HDLC).
    Crc32,
    /// CRC-32C (Castagnoli).
    Crc32c,
    /// CRC-64/NVME.
    Crc64nvme,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl ChecksumAlgorithm {
    /// Every algorithm.
    pub const ALL: [Self; 5] = [Self::Crc32, Self::Crc32c, Self::Crc64nvme, Self::Sha1, Self::Sha256];

    /// The name S3 uses in `x-amz-checksum-algorithm` and XML (`CRC32`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    /// The header that carries a value of this algorithm.
    pub fn header(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The XML element that carries a value of this algorithm (`ChecksumCRC32`, ...).
    pub fn xml_element(self) -> &'static str {
        match self {
            Self::Crc32 => "ChecksumCRC32",
            Self::Crc32c => "ChecksumCRC32C",
            Self::Crc64nvme => "ChecksumCRC64NVME",
            Self::Sha1 => "ChecksumSHA1",
            Self::Sha256 => "ChecksumSHA256",
        }
    }

    /// Length of a digest in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Crc32 | Self::Crc32c => 4,
            Self::Crc64nvme => 8,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    /// Whether whole-object values can be combined from part values (the CRCs).
    pub fn is_crc(self) -> bool {
        matches!(self, Self::Crc32 | Self::Crc32c | Self::Crc64nvme)
    }

    /// Parses an S3 algorithm name, in any case.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The algorithm whose header is `name` (lower case).
    pub fn from_header(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.header() == name)
    }
}

/// How a checksum covers an object: its bytes, or the checksums of its parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumType {
    /// The checksum of the whole object's bytes.
    FullObject,
    /// The checksum of the concatenated part checksums, reported with `-<part count>`.
    Composite,
}

impl ChecksumType {
    /// The name S3 uses (`FULL_OBJECT`, `COMPOSITE`).
    pub fn name(self) -> &'static str {
        match self {
            Self::FullObject => "FULL_OBJECT",
            Self::Composite => "COMPOSITE",
        }
    }

    /// Parses an S3 checksum type name, in any case.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::FullObject, Self::Composite].into_iter().find(|t| t.name().eq_ignore_ascii_case(name.trim()))
    }
}

/// A checksum of an object or a part as S3 reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    /// The algorithm.
    pub algorithm: ChecksumAlgorithm,
    /// Full-object or composite.
    pub kind: ChecksumType,
    /// The raw digest, hex.
    pub value: String,
    /// For a composite checksum, the number of parts it combines.
    #[serde(default)]
    pub parts: u32,
}

/// One part of an object version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRef {
    /// Part number as the client gave it (1 for a single PUT).
    pub number: u32,
    /// The chunk set whose chunks hold this part's bytes.
    pub chunk_set: Uuid,
    /// Part size in bytes.
    pub size: u64,
    /// The part's ETag without quotes.
    pub etag: String,
    /// The part's own checksum in its upload's algorithm (multipart parts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksum>,
}

/// One piece of a byte range: which chunk, and which bytes of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkSlice {
    /// The chunk.
    pub chunk: ChunkId,
    /// First byte within the chunk.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
    /// Full length of the chunk.
    pub chunk_len: u64,
}

impl ObjectVersion {
    /// Number of parts.
    pub fn part_count(&self) -> usize {
        match &self.parts {
            PartList::Inline(parts) => parts.len(),
            PartList::Table { count } => *count as usize,
        }
    }
}

/// The chunk slices that cover `start..end` of an object made of `parts` cut into chunks of
/// `chunk_size`, in order; computed lazily so a huge object costs no memory up front.
pub fn slices(parts: Vec<PartRef>, chunk_size: u64, start: u64, end: u64) -> Slices {
    Slices { parts, chunk_size: chunk_size.max(1), start, end, part: 0, part_start: 0, next_index: None }
}

/// Iterator returned by [`slices`].
#[derive(Debug)]
pub struct Slices {
    parts: Vec<PartRef>,
    chunk_size: u64,
    start: u64,
    end: u64,
    part: usize,
    part_start: u64,
    /// Next chunk index within the current part, once the part was entered.
    next_index: Option<u64>,
}

impl Iterator for Slices {
    type Item = ChunkSlice;

    fn next(&mut self) -> Option<ChunkSlice> {
        while self.start < self.end {
            let part = self.parts.get(self.part)?;
            let part_end = self.part_start + part.size;
            if part_end <= self.start || self.part_start >= self.end {
                if self.part_start >= self.end {
                    return None;
                }
                self.part += 1;
                self.part_start = part_end;
                self.next_index = None;
                continue;
            }
            let from = self.start.max(self.part_start) - self.part_start;
            let to = self.end.min(part_end) - self.part_start;
            let index = *self.next_index.get_or_insert(from / self.chunk_size);
            let chunk_start = index * self.chunk_size;
            if chunk_start >= to {
                self.part += 1;
                self.part_start = part_end;
                self.next_index = None;
                continue;
            }
            let chunk_len = self.chunk_size.min(part.size - chunk_start);
            let offset = from.max(chunk_start) - chunk_start;
            let len = to.min(chunk_start + chunk_len) - chunk_start - offset;
            self.next_index = Some(index + 1);
            return Some(ChunkSlice {
                chunk: ChunkId { chunk_set: part.chunk_set, part: part.number, index: index as u32 },
                offset,
                len,
                chunk_len,
            });
        }
        None
    }
}

/// An in-progress multipart upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// Encoding version.
    pub format: u8,
    /// The upload id given to the client.
    pub upload_id: Uuid,
    /// The object key.
    pub key: String,
    /// When the upload was created, in Unix milliseconds.
    pub initiated_ms: u64,
    /// `Content-Type` given at creation.
    pub content_type: Option<String>,
    /// Standard headers given at creation.
    pub headers: Vec<(String, String)>,
    /// `x-amz-meta-*` pairs given at creation.
    pub user_metadata: Vec<(String, String)>,
    /// The checksum algorithm and type the parts carry (`None`: CRC64NVME, full object).
    #[serde(default)]
    pub checksum: Option<(ChecksumAlgorithm, ChecksumType)>,
    /// The ACL the completed object gets.
    #[serde(default)]
    pub acl: CannedAcl,
    /// The tags the completed object gets.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

/// One uploaded part of a multipart upload (a re-upload replaces it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadPartRecord {
    /// Encoding version.
    pub format: u8,
    /// The reference the completed object will use.
    pub part: PartRef,
    /// Chunk size the part was cut with.
    pub chunk_size: u64,
    /// When the part was uploaded, in Unix milliseconds.
    pub last_modified_ms: u64,
    /// The part's checksum in the upload's algorithm.
    #[serde(default)]
    pub checksum: Option<Checksum>,
}

/// The SHA-256 of every chunk of one part, in order: what the scrubber proves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartManifest {
    /// Encoding version.
    pub format: u8,
    /// Chunk size the part was cut with.
    pub chunk_size: u64,
    /// Concatenated hex SHA-256 digests, 64 characters per chunk.
    pub chunk_sha256: String,
}

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("undecodable metadata record: {0}")]
pub struct RecordError(String);

/// Encodes a record as stored in a row value.
pub fn encode_record<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).expect("records serialise")
}

/// Decodes a row value.
pub fn decode_record<T: for<'de> Deserialize<'de>>(value: &[u8]) -> Result<T, RecordError> {
    serde_json::from_slice(value).map_err(|e| RecordError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(sizes: &[u64]) -> Vec<PartRef> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| PartRef {
                number: i as u32 + 1,
                chunk_set: Uuid::from_u128(i as u128 + 1),
                size,
                etag: String::new(),
                checksum: None,
            })
            .collect()
    }

    #[test]
    fn slices_cover_exactly_the_range() {
        let sizes = [10, 7, 0, 3];
        let size: u64 = sizes.iter().sum();
        for start in 0..=size {
            for end in start..=size {
                let slices: Vec<ChunkSlice> = slices(parts(&sizes), 4, start, end).collect();
                let total: u64 = slices.iter().map(|s| s.len).sum();
                assert_eq!(total, end - start, "{start}..{end}");
                assert!(slices.iter().all(|s| s.len > 0 && s.offset + s.len <= s.chunk_len && s.chunk_len <= 4));
                // Consecutive slices continue where the previous one stopped.
                for pair in slices.windows(2) {
                    let (a, b) = (&pair[0], &pair[1]);
                    assert!(a.offset + a.len == a.chunk_len && b.offset == 0, "{start}..{end}: gap between slices");
                }
            }
        }
        let ids: Vec<(u32, u32)> = slices(parts(&sizes), 4, 0, size).map(|s| (s.chunk.part, s.chunk.index)).collect();
        assert_eq!(ids, vec![(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (4, 0)]);
    }

    #[test]
    fn part_lists_read_both_encodings() {
        let inline: PartList = serde_json::from_str(
            r#"[{"number":1,"chunk_set":"00000000-0000-0000-0000-000000000001","size":3,"etag":"e"}]"#,
        )
        .unwrap();
        assert!(matches!(inline, PartList::Inline(ref parts) if parts.len() == 1));
        assert_eq!(serde_json::from_str::<PartList>(r#"{"count":7}"#).unwrap(), PartList::Table { count: 7 });
        assert_eq!(serde_json::to_string(&PartList::Table { count: 7 }).unwrap(), r#"{"count":7}"#);
    }

    #[test]
    fn checksum_names_round_trip() {
        for algorithm in ChecksumAlgorithm::ALL {
            assert_eq!(ChecksumAlgorithm::from_name(&algorithm.name().to_lowercase()), Some(algorithm));
            assert_eq!(ChecksumAlgorithm::from_header(algorithm.header()), Some(algorithm));
            assert!(algorithm.xml_element().ends_with(algorithm.name()));
        }
        assert_eq!(ChecksumAlgorithm::from_name("MD5"), None);
        assert_eq!(ChecksumType::from_name("composite"), Some(ChecksumType::Composite));
    }

    #[test]
    fn empty_object_has_no_slices() {
        assert_eq!(slices(parts(&[0]), 4, 0, 0).count(), 0);
        assert_eq!(slices(Vec::new(), 4, 0, 10).count(), 0);
    }

    #[test]
    fn object_rows_stay_small_for_multipart_objects() {
        let version = ObjectVersion {
            format: RECORD_FORMAT_VERSION,
            version_id: Uuid::nil(),
            size: 1,
            etag: "e-10000".into(),
            last_modified_ms: 0,
            content_type: None,
            headers: vec![],
            user_metadata: vec![],
            chunk_size: 4,
            parts: PartList::Table { count: 10_000 },
            checksum: None,
            acl: CannedAcl::Private,
            tags: vec![],
        };
        assert_eq!(version.part_count(), 10_000);
        assert!(encode_record(&version).len() < 512);
        let back: ObjectVersion = decode_record(&encode_record(&version)).unwrap();
        assert_eq!(back, version);
    }

    #[test]
    fn keys_sort_by_object_key_within_a_shard() {
        let bucket = Uuid::from_u128(7);
        let a = object_key(bucket, 1, "a");
        let b = object_key(bucket, 1, "a/b");
        let c = object_key(bucket, 1, "b");
        assert!(a < b && b < c);
        assert!(b.starts_with(&object_prefix(bucket, 1, "a/")));
        assert_eq!(a.len(), OBJECT_KEY_HEADER_LEN + 1);
        assert!(index_shard("some/key", 4) < 4);
    }
}
