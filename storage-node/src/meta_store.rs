//! Metadata rows on redb with last-writer-wins by HLC timestamp.
//!
//! A generic ordered key-value store: callers compose the byte keys (partition, bucket, object
//! key, ...) so that related rows sort together; this module knows nothing of S3. Every row keeps
//! the greatest timestamp written to it; deletes are tombstone rows.
//!
//! Writes are funnelled through one writer thread that commits whatever is queued in one
//! transaction with `Durability::Immediate` (group commit): when `put_if_newer` returns, the rows
//! are on disk. Reads run read transactions on blocking threads. No transaction is ever held
//! across an `.await`. Row value encoding: see `codec` (format version 1).

mod codec;
mod error;
#[cfg(test)]
mod tests;
mod writer;

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::hlc::Timestamp;
pub use codec::{ROW_FORMAT_VERSION, ROW_OVERHEAD_BYTES};
pub use error::MetaError;
use writer::{BatchLimits, WriteRequest};

/// Largest number of rows one scan returns.
pub const MAX_SCAN_LIMIT: usize = 1000;
/// Largest key, in bytes.
pub const MAX_KEY_BYTES: usize = 2048;
/// Largest row value, in bytes.
pub const MAX_VALUE_BYTES: usize = 4 * 1024 * 1024;

/// The one table holding every row.
const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rows");
/// Running totals of the rows a [`Tally`] counts, by group: (rows, bytes).
const TOTALS: TableDefinition<&[u8], (u64, u64)> = TableDefinition::new("totals");

/// What a row adds to the running totals kept with the rows: the group it counts in and its
/// bytes, or `None` for a row that counts nowhere (the empty group is reserved). Totals change
/// in the transaction that writes or removes the row, so reading them never needs a scan.
pub type Tally = fn(&Row) -> Option<(Vec<u8>, u64)>;

/// One group's running total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Total {
    /// Rows counted.
    pub rows: u64,
    /// Bytes those rows count for.
    pub bytes: u64,
}

/// One stored row: its timestamp, whether it is a tombstone, and an opaque value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Key bytes, composed by the caller; rows are ordered by them.
    pub key: Vec<u8>,
    /// HLC timestamp of the write; the greatest wins.
    pub timestamp: Timestamp,
    /// True for a delete marker.
    pub tombstone: bool,
    /// Opaque value bytes.
    pub value: Vec<u8>,
}

/// A summary of the rows under one prefix, equal on two replicas that hold the same versions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowsDigest {
    /// Number of rows (tombstones included).
    pub rows: u64,
    /// SHA-256 (hex) over each row's key, timestamp and tombstone flag, in key order.
    pub sha256: String,
}

impl Row {
    /// Bytes the row occupies once stored (key plus encoded value).
    pub fn stored_bytes(&self) -> usize {
        self.key.len() + ROW_OVERHEAD_BYTES + self.value.len()
    }
}

/// Tuning of a metadata store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaStoreConfig {
    /// Most rows committed in one transaction; also the most rows one request may carry.
    pub max_batch_rows: usize,
    /// Most stored bytes committed in one transaction; also the most one request may carry.
    pub max_batch_bytes: usize,
    /// Write requests that may wait for the writer before callers are held back.
    pub queue_depth: usize,
    /// redb page cache size.
    pub cache_size_bytes: usize,
}

impl Default for MetaStoreConfig {
    fn default() -> Self {
        Self {
            max_batch_rows: 4096,
            max_batch_bytes: 64 * 1024 * 1024,
            queue_depth: 1024,
            cache_size_bytes: 256 * 1024 * 1024,
        }
    }
}

impl MetaStoreConfig {
    fn validate(&self) -> Result<(), MetaError> {
        if self.max_batch_rows == 0 {
            return Err(MetaError::InvalidConfig("max_batch_rows must be at least 1"));
        }
        if self.queue_depth == 0 {
            return Err(MetaError::InvalidConfig("queue_depth must be at least 1"));
        }
        if self.max_batch_bytes < MAX_KEY_BYTES + ROW_OVERHEAD_BYTES + MAX_VALUE_BYTES {
            return Err(MetaError::InvalidConfig("max_batch_bytes must hold one row of the largest key and value"));
        }
        Ok(())
    }
}

/// Clone-able handle to one metadata database; the writer stops when the last handle drops.
#[derive(Clone)]
pub struct MetaStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    config: MetaStoreConfig,
    /// `Some` until drop, which closes the queue so the writer ends.
    sender: Option<mpsc::Sender<WriteRequest>>,
    writer: Option<JoinHandle<()>>,
    commits: Arc<AtomicU64>,
    tally: Option<Tally>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.sender = None;
        // Wait for the writer so the database file is closed when the last handle is gone and
        // can be reopened at once. It has at most one batch to finish.
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("metadata writer thread panicked");
        }
    }
}

impl std::fmt::Debug for MetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaStore").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

fn check_key(key: &[u8]) -> Result<(), MetaError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(MetaError::KeyTooLong { len: key.len() });
    }
    Ok(())
}

impl MetaStore {
    /// Opens (creating if needed) the database at `path` and starts its writer thread.
    /// Blocking: call it at startup.
    pub fn open(path: &Path, config: MetaStoreConfig) -> Result<Self, MetaError> {
        Self::open_with_tally(path, config, None)
    }

    /// Opens the database at `path` keeping running totals of what `tally` counts. Totals that
    /// do not match the rows (a new store, one written before totals were kept, or written since
    /// by a process that did not keep them: the row count recorded with the totals differs) are
    /// counted again from the rows, here. Blocking: call it at startup.
    pub fn open_with_tally(path: &Path, config: MetaStoreConfig, tally: Option<Tally>) -> Result<Self, MetaError> {
        config.validate()?;
        let db = Database::builder().set_cache_size(config.cache_size_bytes).create(path)?;
        // Create the tables up front so readers never meet a missing table.
        let txn = db.begin_write()?;
        let rows = txn.open_table(ROWS)?;
        let mut totals = txn.open_table(TOTALS)?;
        if let Some(tally) = tally
            && writer::counted_rows(&totals)? != Some(rows.len()?)
        {
            drop(totals);
            txn.delete_table(TOTALS)?;
            totals = txn.open_table(TOTALS)?;
            for entry in rows.iter()? {
                let (key, stored) = entry?;
                let row = codec::decode_row(key.value().to_vec(), stored.value())?;
                writer::add_to_totals(&mut totals, tally, &row, true)?;
            }
            writer::mark_counted(&mut totals, rows.len()?)?;
        }
        drop((rows, totals));
        txn.commit()?;

        let db = Arc::new(db);
        let commits = Arc::new(AtomicU64::new(0));
        let (sender, receiver) = mpsc::channel(config.queue_depth);
        let limits = BatchLimits { max_rows: config.max_batch_rows, max_bytes: config.max_batch_bytes };
        let writer = {
            let db = db.clone();
            let commits = commits.clone();
            std::thread::Builder::new()
                .name("meta-writer".to_owned())
                .spawn(move || writer::run(db, receiver, limits, commits, tally))
                .map_err(|e| MetaError::from(redb::Error::from(e)))?
        };
        let inner = Inner { db, config, sender: Some(sender), writer: Some(writer), commits, tally };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Writes each row whose timestamp is strictly greater than the stored one (or whose key is
    /// absent); returns, per row, whether it was applied. Durable when it returns. Rows are
    /// decided in order, so a later row of the same request sees the earlier ones. If the future
    /// is dropped after the request was queued, the rows may still be written.
    pub async fn put_if_newer(&self, rows: Vec<Row>) -> Result<Vec<bool>, MetaError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let config = &self.inner.config;
        if rows.len() > config.max_batch_rows {
            return Err(MetaError::TooManyRows { rows: rows.len(), max: config.max_batch_rows });
        }
        let mut bytes = 0usize;
        for row in &rows {
            check_key(&row.key)?;
            if row.value.len() > MAX_VALUE_BYTES {
                return Err(MetaError::ValueTooLarge { len: row.value.len() });
            }
            bytes = bytes.saturating_add(row.stored_bytes());
        }
        if bytes > config.max_batch_bytes {
            return Err(MetaError::WriteTooLarge { bytes, max: config.max_batch_bytes });
        }
        let sender = self.inner.sender.as_ref().ok_or(MetaError::WriterStopped)?;
        let (reply, answer) = oneshot::channel();
        sender.send(WriteRequest { rows, bytes, reply }).await.map_err(|_| MetaError::WriterStopped)?;
        answer.await.map_err(|_| MetaError::WriterStopped)?
    }

    /// The row stored under `key` (tombstones included).
    pub async fn get(&self, key: Vec<u8>) -> Result<Option<Row>, MetaError> {
        check_key(&key)?;
        self.read(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(ROWS)?;
            let Some(stored) = table.get(key.as_slice())? else {
                return Ok(None);
            };
            let row = codec::decode_row(key.clone(), stored.value())?;
            Ok(Some(row))
        })
        .await
    }

    /// Up to `limit` rows whose keys start with `prefix` and are greater than `start_after`,
    /// in key order, tombstones included.
    pub async fn scan(
        &self,
        prefix: Vec<u8>,
        start_after: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<Row>, MetaError> {
        if limit > MAX_SCAN_LIMIT {
            return Err(MetaError::ScanLimitTooLarge { limit });
        }
        check_key(&prefix)?;
        if let Some(start) = &start_after {
            check_key(start)?;
        }
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.read(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(ROWS)?;
            // Every key with the prefix is ≥ the prefix, so a start key below it adds nothing.
            let start = match &start_after {
                Some(after) if after.as_slice() >= prefix.as_slice() => Bound::Excluded(after.as_slice()),
                _ => Bound::Included(prefix.as_slice()),
            };
            let mut rows = Vec::new();
            // Stopping at the first key without the prefix avoids computing the prefix's
            // successor, which does not exist for a prefix of all 0xFF bytes.
            for entry in table.range::<&[u8]>((start, Bound::Unbounded))? {
                let (key, stored) = entry?;
                let key = key.value();
                if !key.starts_with(&prefix) {
                    break;
                }
                rows.push(codec::decode_row(key.to_vec(), stored.value())?);
                if rows.len() >= limit {
                    break;
                }
            }
            Ok(rows)
        })
        .await
    }

    /// Every row under `prefix`, read a page at a time (for background work over one shard,
    /// whose rows are expected to fit in memory).
    pub async fn scan_all(&self, prefix: Vec<u8>) -> Result<Vec<Row>, MetaError> {
        let mut rows = Vec::new();
        loop {
            let after = rows.last().map(|row: &Row| row.key.clone());
            let page = self.scan(prefix.clone(), after, MAX_SCAN_LIMIT).await?;
            let full = page.len() >= MAX_SCAN_LIMIT;
            rows.extend(page);
            if !full {
                return Ok(rows);
            }
        }
    }

    /// What a replica holds under `prefix`: the number of rows and a SHA-256 over every key,
    /// timestamp and tombstone flag in key order. Two stores with equal digests hold the same
    /// versions (a timestamp names one write), so anti-entropy compares digests before rows.
    pub async fn digest(&self, prefix: Vec<u8>) -> Result<RowsDigest, MetaError> {
        check_key(&prefix)?;
        self.read(move |db| {
            use sha2::{Digest, Sha256};
            let txn = db.begin_read()?;
            let table = txn.open_table(ROWS)?;
            let mut hash = Sha256::new();
            let mut rows = 0u64;
            for entry in table.range::<&[u8]>((Bound::Included(prefix.as_slice()), Bound::Unbounded))? {
                let (key, stored) = entry?;
                let key = key.value();
                if !key.starts_with(&prefix) {
                    break;
                }
                let row = codec::decode_row(key.to_vec(), stored.value())?;
                hash.update((key.len() as u32).to_be_bytes());
                hash.update(key);
                hash.update(row.timestamp.physical_ms.to_be_bytes());
                hash.update(row.timestamp.logical.to_be_bytes());
                hash.update(row.timestamp.origin.to_be_bytes());
                hash.update([u8::from(row.tombstone)]);
                rows += 1;
            }
            Ok(RowsDigest { rows, sha256: hex::encode(hash.finalize()) })
        })
        .await
    }

    /// Removes each row of `rows` whose stored timestamp is still the one given, so that a row
    /// written since stays; durable when it returns. For rows this node no longer holds a
    /// replica of (not a delete: deletes are tombstones). Returns how many were removed.
    pub async fn remove_unchanged(&self, rows: Vec<(Vec<u8>, Timestamp)>) -> Result<usize, MetaError> {
        for (key, _) in &rows {
            check_key(key)?;
        }
        let tally = self.inner.tally;
        self.read(move |db| {
            let mut txn = db.begin_write()?;
            txn.set_durability(redb::Durability::Immediate);
            let mut removed = 0;
            {
                let mut table = txn.open_table(ROWS)?;
                let mut totals = txn.open_table(TOTALS)?;
                for (key, timestamp) in &rows {
                    let stored = match table.get(key.as_slice())? {
                        Some(stored) => codec::decode_row(key.clone(), stored.value())?,
                        None => continue,
                    };
                    if stored.timestamp == *timestamp {
                        table.remove(key.as_slice())?;
                        if let Some(tally) = tally {
                            writer::add_to_totals(&mut totals, tally, &stored, false)?;
                        }
                        removed += 1;
                    }
                }
                if tally.is_some() {
                    writer::mark_counted(&mut totals, table.len()?)?;
                }
            }
            txn.commit()?;
            Ok(removed)
        })
        .await
    }

    /// The running total of each group (zero for a group nothing counts in).
    pub async fn totals(&self, groups: Vec<Vec<u8>>) -> Result<Vec<Total>, MetaError> {
        self.read(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(TOTALS)?;
            groups
                .iter()
                .map(|group| {
                    if group.is_empty() {
                        return Ok(Total::default());
                    }
                    let total = table.get(group.as_slice())?.map(|t| t.value()).unwrap_or_default();
                    Ok(Total { rows: total.0, bytes: total.1 })
                })
                .collect()
        })
        .await
    }

    /// Number of rows stored (tombstones included).
    pub async fn row_count(&self) -> Result<u64, MetaError> {
        self.read(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(ROWS)?;
            Ok(table.len()?)
        })
        .await
    }

    /// Write transactions committed by this handle's writer since open.
    pub fn commit_count(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    /// Runs a read on a blocking thread, keeping the store open until it finishes.
    async fn read<T, F>(&self, work: F) -> Result<T, MetaError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, MetaError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner.db)).await.map_err(|e| MetaError::Task(e.to_string()))?
    }
}
