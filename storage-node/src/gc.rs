//! Garbage collection: chunks no object needs any more, and tombstones every replica has.
//!
//! Each bucket index shard is collected by one node: the first replica of its metadata
//! partition that is not `down`. A pass over a shard runs only when no layout move is in
//! progress, every replica of the shard is up, and every replica holds exactly the same rows
//! (equal digests for every row kind): then this node's rows are everyone's, and a chunk set
//! that none of them references is referenced nowhere. The chunk sets in use are those of the
//! current object rows (their inline parts or their part table) and of the parts of uploads
//! still in progress; a chunk set's part manifest lives in the same shard as every row that can
//! reference it. A part manifest that nothing references and that is older than the grace
//! period is garbage: its chunks are deleted on every replica of their partitions (each records
//! the deletion, so that no later copy, repair or hand-off brings them back), then the manifest
//! is replaced by a tombstone. Parts of finished or abandoned uploads get tombstones the same
//! way. A gateway records the chunks of a body before it sends the first one, keeps that
//! record's lease alive while the request runs, and tombstones it with the manifest; a record
//! whose lease ran out (a failed write, a gateway that died) has its chunks collected once no
//! shard of the bucket, on any replica, holds a manifest for their chunk set. Tombstones older
//! than the grace period are purged from every replica at once.
//!
//! A crash at any moment leaves either the chunks and their manifest, or a manifest whose chunks
//! are partly gone and which nothing references, which the next pass finishes.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use crate::chunk_store::{ChunkId, ChunkStore};
use crate::control::{BucketInfo, ClusterState, NodeInfo};
use crate::failure_detector::{FailureDetector, NodeState};
use crate::hlc::{Clock, Timestamp};
use crate::manifest::{
    self, ObjectVersion, PartList, PartManifest, PartTable, PendingChunks, RowKind, UploadPartRecord, UploadRecord,
};
use crate::meta_store::{MetaError, MetaStore, Row};
use crate::rpc::client::{NodeClient, RpcError};

/// Default age a row must reach before what it frees is collected: one hour.
pub const DEFAULT_GC_GRACE_SECS: u64 = 3600;
/// Default age at which an open multipart upload is aborted: 7 days.
pub const DEFAULT_MULTIPART_EXPIRY_SECS: u64 = 7 * 24 * 3600;
/// Default time between two passes.
pub const DEFAULT_GC_INTERVAL_MS: u64 = 60_000;
/// First key byte of this node's own records of deleted chunk sets (never replicated).
const DELETED_PREFIX: u8 = 0xF0;
/// How long a record of a deleted chunk set is kept.
const DELETED_RECORD_KEEP: Duration = Duration::from_secs(30 * 24 * 3600);
/// Rows read per page.
const PAGE_ROWS: usize = 512;

/// How patient the collector is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcConfig {
    /// Age a row must reach before what it frees is collected.
    pub grace: Duration,
    /// Time between two passes.
    pub interval: Duration,
    /// Age at which an open multipart upload is aborted (`None`: never).
    pub multipart_expiry: Option<Duration>,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(DEFAULT_GC_GRACE_SECS),
            interval: Duration::from_millis(DEFAULT_GC_INTERVAL_MS),
            multipart_expiry: Some(Duration::from_secs(DEFAULT_MULTIPART_EXPIRY_SECS)),
        }
    }
}

/// What the collector did since the node started, as node status reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Passes run.
    pub passes: u64,
    /// Chunk files deleted on replicas.
    pub chunks_deleted: u64,
    /// Part manifests whose chunks were collected.
    pub manifests_collected: u64,
    /// Multipart uploads aborted because they stayed open past the expiry.
    pub uploads_expired: u64,
    /// Records of pending chunks whose writer's lease ran out with nothing referencing them
    /// (failed writes, gateways that died mid-upload) whose chunks were collected.
    pub orphans_collected: u64,
    /// Tombstones purged.
    pub tombstones_purged: u64,
    /// Shards this node collects that the last pass skipped (a replica down or not converged).
    pub shards_skipped: u64,
}

/// Why a shard could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// A node did not answer as expected.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The local metadata store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// A row could not be decoded, or a chunk file not removed.
    #[error("{0}")]
    Record(String),
}

/// The key of this node's record that `chunk_set`/`part` was deleted.
fn deleted_key(chunk_set: Uuid, part: u32) -> Vec<u8> {
    let mut key = vec![DELETED_PREFIX];
    key.extend_from_slice(chunk_set.as_bytes());
    key.extend_from_slice(&part.to_be_bytes());
    key
}

/// Records that chunk `id`'s chunk set part was deleted by garbage collection, then deletes the
/// chunk: whatever later offers a copy of it (a repair, a hand-off, a catch-up) is refused.
pub async fn delete_collected(meta: &MetaStore, chunks: &ChunkStore, id: ChunkId) -> Result<bool, GcError> {
    let row = Row {
        key: deleted_key(id.chunk_set, id.part),
        timestamp: wall_timestamp(),
        tombstone: false,
        value: Vec::new(),
    };
    meta.put_if_newer(vec![row]).await?;
    chunks.delete(id).await.map_err(|e| GcError::Record(e.to_string()))
}

/// Whether chunk `id` belongs to a chunk set part this node deleted as garbage.
pub async fn is_collected(meta: &MetaStore, id: ChunkId) -> bool {
    matches!(meta.get(deleted_key(id.chunk_set, id.part)).await, Ok(Some(_)))
}

fn wall_timestamp() -> Timestamp {
    Timestamp { physical_ms: now_ms(), logical: 0, origin: 0 }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A node's garbage collector.
pub struct Collector {
    node_id: String,
    meta: MetaStore,
    client: NodeClient,
    state: watch::Receiver<Arc<ClusterState>>,
    peers: Arc<FailureDetector>,
    clock: Clock,
    config: GcConfig,
    report: Arc<Mutex<GcReport>>,
}

impl Collector {
    /// A collector for the shards `node_id` leads; `origin` tells its tombstones apart.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node_id: String,
        origin: u64,
        meta: MetaStore,
        client: NodeClient,
        state: watch::Receiver<Arc<ClusterState>>,
        peers: Arc<FailureDetector>,
        config: GcConfig,
        report: Arc<Mutex<GcReport>>,
    ) -> Arc<Self> {
        Arc::new(Self { node_id, meta, client, state, peers, clock: Clock::new(origin), config, report })
    }

    /// Runs passes forever.
    pub async fn run(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(self.config.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let state = self.state.borrow().clone();
            let skipped = self.pass(&state).await;
            if let Err(e) = self.forget_old_deletions().await {
                tracing::warn!(error = %e, "could not expire records of deleted chunks");
            }
            let mut report = self.report.lock().unwrap_or_else(PoisonError::into_inner);
            report.passes += 1;
            report.shards_skipped = skipped;
        }
    }

    /// Collects every shard this node leads; returns how many it had to skip.
    async fn pass(&self, state: &ClusterState) -> u64 {
        if state.transition.is_some() {
            return 0;
        }
        let mut skipped = 0;
        for bucket in state.buckets.values() {
            for shard in 0..bucket.index_shards {
                let placement = manifest::metadata_placement_key(bucket.bucket_id, shard);
                let owners = state.replica_nodes(&placement);
                let leader = owners.iter().find(|n| self.peers.state(&n.node_id) != NodeState::Down);
                if leader.is_none_or(|n| n.node_id != self.node_id) {
                    continue;
                }
                match self.collect_shard(state, bucket, shard, &owners).await {
                    Ok(true) => {}
                    Ok(false) => skipped += 1,
                    Err(e) => {
                        skipped += 1;
                        tracing::warn!(bucket = %bucket.name, shard, error = %e, "garbage collection of a shard failed");
                    }
                }
            }
        }
        skipped
    }

    /// Whether every owner is up and holds exactly this node's rows of the shard.
    async fn converged(&self, bucket: &BucketInfo, shard: u16, owners: &[NodeInfo]) -> Result<bool, GcError> {
        if owners.iter().any(|n| self.peers.state(&n.node_id) == NodeState::Down) {
            return Ok(false);
        }
        for prefix in manifest::shard_prefixes(bucket.bucket_id, shard) {
            let ours = self.meta.digest(prefix.clone()).await?;
            for owner in owners.iter().filter(|n| n.node_id != self.node_id) {
                if self.client.meta_digest(&owner.rpc_addr, &prefix).await? != ours {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// One shard; false when it could not be collected now.
    async fn collect_shard(
        &self,
        state: &ClusterState,
        bucket: &BucketInfo,
        shard: u16,
        owners: &[NodeInfo],
    ) -> Result<bool, GcError> {
        if !self.converged(bucket, shard, owners).await? {
            return Ok(false);
        }
        let Some(live) = self.chunk_sets_in_use(bucket.bucket_id, shard).await? else { return Ok(false) };
        let cutoff = now_ms().saturating_sub(self.config.grace.as_millis() as u64);
        let old = |row: &Row| row.timestamp.physical_ms < cutoff;
        let mut tombstones = Vec::new();

        // Part manifests nothing references: their chunks, then the manifest.
        for row in self.rows(RowKind::PartManifest, bucket.bucket_id, shard).await? {
            let Some((chunk_set, part)) = manifest::part_manifest_chunk_set(&row.key) else { continue };
            if row.tombstone || !old(&row) || live.contains(&chunk_set) {
                continue;
            }
            let manifest: PartManifest = decode(&row.value)?;
            let count = (manifest.chunk_sha256.len() / 64) as u32;
            if self.delete_chunks(chunk_set, part, count).await? {
                self.note(|r| r.manifests_collected += 1);
                tombstones.push(row);
            }
        }
        // Uploads open for longer than the expiry are aborted; their parts go at a later pass.
        if let Some(expiry) = self.config.multipart_expiry {
            let expired_before = now_ms().saturating_sub(expiry.as_millis() as u64);
            for row in self.rows(RowKind::Upload, bucket.bucket_id, shard).await? {
                if !row.tombstone && decode::<UploadRecord>(&row.value)?.initiated_ms < expired_before {
                    self.note(|r| r.uploads_expired += 1);
                    tombstones.push(row);
                }
            }
        }
        // Parts of uploads that are finished or abandoned.
        let uploads: HashSet<Uuid> = self.live_uploads(bucket.bucket_id, shard).await?;
        for row in self.rows(RowKind::UploadPart, bucket.bucket_id, shard).await? {
            if !row.tombstone && old(&row) && upload_of_part(&row.key).is_some_and(|u| !uploads.contains(&u)) {
                tombstones.push(row);
            }
        }
        // Pending chunks whose writer's lease ran out: a failed write or a gateway that died.
        for row in self.rows(RowKind::PendingChunks, bucket.bucket_id, shard).await? {
            if row.tombstone || !old(&row) {
                continue;
            }
            let pending: PendingChunks = decode(&row.value)?;
            if pending.lease_until_ms >= now_ms() {
                continue;
            }
            if self.manifest_anywhere(state, bucket, pending.chunk_set, pending.part).await? {
                tombstones.push(row);
            } else if self.delete_chunks(pending.chunk_set, pending.part, pending.count).await? {
                self.note(|r| r.orphans_collected += 1);
                tombstones.push(row);
            }
        }
        if !tombstones.is_empty() {
            self.write_tombstones(owners, tombstones).await?;
        }
        self.purge_tombstones(state, bucket, shard, owners, cutoff).await?;
        Ok(true)
    }

    /// Whether every node that is not an owner of the shard (removed, evicted, or holding it
    /// from an earlier layout) answers and holds none of its rows: a tombstone is purged only
    /// then, or an older row such a node still has could come back through a hand-off or a
    /// pull.
    async fn others_hold_nothing(
        &self,
        state: &ClusterState,
        bucket: &BucketInfo,
        shard: u16,
        owners: &[NodeInfo],
    ) -> bool {
        for node in state.nodes.values().filter(|n| !owners.iter().any(|o| o.node_id == n.node_id)) {
            for prefix in manifest::shard_prefixes(bucket.bucket_id, shard) {
                match self.client.meta_digest(&node.rpc_addr, &prefix).await {
                    Ok(digest) if digest.rows == 0 => {}
                    _ => return false,
                }
            }
        }
        true
    }

    /// The chunk sets the shard's current objects and open uploads use, or `None` when a part
    /// table an object names is missing here (its rows are still arriving).
    async fn chunk_sets_in_use(&self, bucket_id: Uuid, shard: u16) -> Result<Option<HashSet<Uuid>>, GcError> {
        let mut live = HashSet::new();
        // Uploads before objects: a completion (object row, part table and upload tombstone in
        // one batch) landing between the two scans shows up in one of them either way.
        let uploads = self.live_uploads(bucket_id, shard).await?;
        for row in self.rows(RowKind::UploadPart, bucket_id, shard).await? {
            if row.tombstone || upload_of_part(&row.key).is_none_or(|u| !uploads.contains(&u)) {
                continue;
            }
            let part: UploadPartRecord = decode(&row.value)?;
            live.insert(part.part.chunk_set);
        }
        for row in self.rows(RowKind::Object, bucket_id, shard).await? {
            if row.tombstone {
                continue;
            }
            let version: ObjectVersion = decode(&row.value)?;
            match version.parts {
                PartList::Inline(parts) => live.extend(parts.iter().map(|p| p.chunk_set)),
                PartList::Table { .. } => {
                    let key = manifest::part_table_key(bucket_id, shard, version.version_id);
                    let Some(table) = self.meta.get(key).await?.filter(|r| !r.tombstone) else { return Ok(None) };
                    let table: PartTable = decode(&table.value)?;
                    live.extend(table.parts.iter().map(|p| p.chunk_set));
                }
            }
        }
        Ok(Some(live))
    }

    async fn live_uploads(&self, bucket_id: Uuid, shard: u16) -> Result<HashSet<Uuid>, GcError> {
        let mut uploads = HashSet::new();
        for row in self.rows(RowKind::Upload, bucket_id, shard).await? {
            if !row.tombstone {
                uploads.insert(decode::<UploadRecord>(&row.value)?.upload_id);
            }
        }
        Ok(uploads)
    }

    /// Whether any replica of any shard of the bucket holds a manifest of `chunk_set`/`part`.
    async fn manifest_anywhere(
        &self,
        state: &ClusterState,
        bucket: &BucketInfo,
        chunk_set: Uuid,
        part: u32,
    ) -> Result<bool, GcError> {
        for shard in 0..bucket.index_shards {
            let key = manifest::part_manifest_key(bucket.bucket_id, shard, chunk_set, part);
            for owner in state.replica_nodes(&manifest::metadata_placement_key(bucket.bucket_id, shard)) {
                if self.client.get_row(&owner.rpc_addr, &key).await?.is_some() {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Deletes chunks `0..count` of a chunk set part on every replica of their partitions;
    /// true when every replica answered.
    async fn delete_chunks(&self, chunk_set: Uuid, part: u32, count: u32) -> Result<bool, GcError> {
        for index in 0..count {
            let id = ChunkId { chunk_set, part, index };
            // The latest layout: a move that started since the pass began stops it, since new
            // holders may be copying.
            let state = self.state.borrow().clone();
            if state.transition.is_some() {
                return Ok(false);
            }
            // Every holder records the deletion, whether it has the chunk or not, so that a
            // copy in flight to it is dropped when it lands.
            for holder in state.replica_nodes(&id.placement_key()) {
                if self.peers.state(&holder.node_id) == NodeState::Down {
                    return Ok(false);
                }
                if self.client.delete_chunk(&holder.rpc_addr, id).await? {
                    self.note(|r| r.chunks_deleted += 1);
                }
            }
        }
        Ok(true)
    }

    /// Replaces `rows` by tombstones on every owner.
    async fn write_tombstones(&self, owners: &[NodeInfo], rows: Vec<Row>) -> Result<(), GcError> {
        for row in &rows {
            self.clock.observe(row.timestamp);
        }
        let timestamp = self.clock.now();
        let tombstones: Vec<Row> =
            rows.into_iter().map(|row| Row { key: row.key, timestamp, tombstone: true, value: Vec::new() }).collect();
        for batch in tombstones.chunks(PAGE_ROWS) {
            for owner in owners {
                self.client.put_rows(&owner.rpc_addr, batch).await?;
            }
        }
        Ok(())
    }

    /// Removes tombstones older than `cutoff` from every owner (each still holding the same one).
    async fn purge_tombstones(
        &self,
        state: &ClusterState,
        bucket: &BucketInfo,
        shard: u16,
        owners: &[NodeInfo],
        cutoff: u64,
    ) -> Result<(), GcError> {
        let mut old = Vec::new();
        for prefix in manifest::shard_prefixes(bucket.bucket_id, shard) {
            old.extend(
                self.meta
                    .scan_all(prefix)
                    .await?
                    .into_iter()
                    .filter(|row| row.tombstone && row.timestamp.physical_ms < cutoff)
                    .map(|row| Row { value: Vec::new(), ..row }),
            );
        }
        if old.is_empty() || !self.others_hold_nothing(state, bucket, shard, owners).await {
            return Ok(());
        }
        for batch in old.chunks(PAGE_ROWS) {
            for owner in owners {
                self.client.purge_rows(&owner.rpc_addr, batch).await?;
            }
        }
        self.note(|r| r.tombstones_purged += old.len() as u64);
        Ok(())
    }

    /// Every row of one kind of one shard (a shard's metadata is expected to fit in memory).
    async fn rows(&self, kind: RowKind, bucket_id: Uuid, shard: u16) -> Result<Vec<Row>, GcError> {
        let prefix = manifest::shard_prefixes(bucket_id, shard)
            .into_iter()
            .find(|p| p.first() == Some(&(kind as u8)))
            .unwrap_or_default();
        Ok(self.meta.scan_all(prefix).await?)
    }

    /// Drops records of deletions older than [`DELETED_RECORD_KEEP`].
    async fn forget_old_deletions(&self) -> Result<(), GcError> {
        let cutoff = now_ms().saturating_sub(DELETED_RECORD_KEEP.as_millis() as u64);
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.meta.scan(vec![DELETED_PREFIX], after.clone(), PAGE_ROWS).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            let full = page.len() >= PAGE_ROWS;
            let old: Vec<_> = page
                .into_iter()
                .filter(|row| row.timestamp.physical_ms < cutoff)
                .map(|row| (row.key, row.timestamp))
                .collect();
            if !old.is_empty() {
                self.meta.remove_unchanged(old).await?;
            }
            if !full {
                break;
            }
        }
        Ok(())
    }

    fn note(&self, update: impl FnOnce(&mut GcReport)) {
        update(&mut self.report.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// The upload id an upload-part row key names.
fn upload_of_part(key: &[u8]) -> Option<Uuid> {
    let rest = key.strip_prefix(&[RowKind::UploadPart as u8])?.get(18..)?;
    Uuid::from_slice(rest.get(..16)?).ok()
}

fn decode<T: for<'de> Deserialize<'de>>(value: &[u8]) -> Result<T, GcError> {
    manifest::decode_record(value).map_err(|e| GcError::Record(e.to_string()))
}
