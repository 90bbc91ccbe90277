//! The control-plane redb file: Raft log, vote, committed pointer and snapshot.
//!
//! Every value is a JSON record carrying [`STATE_FORMAT_VERSION`]. All redb calls run on
//! blocking threads and every write transaction commits with `Durability::Immediate` before
//! the caller learns of success, so nothing acknowledged to Raft can be lost in a crash.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, OptionalSend, RaftLogReader, SnapshotMeta, StorageError, StorageIOError, Vote};
use redb::{Database, Durability, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::state::STATE_FORMAT_VERSION;
use super::{ControlNode, TypeConfig};

/// Log entries by index.
const LOG_TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("control_log");
/// Vote, committed and last purged log id.
const META_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("control_meta");
/// The current snapshot: its meta and its data.
const SNAPSHOT_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("control_snapshot");

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_LAST_PURGED: &str = "last_purged";
const KEY_SNAPSHOT_META: &str = "meta";
const KEY_SNAPSHOT_DATA: &str = "data";

/// Failure of the control-plane store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// redb failed.
    #[error("control store: {0}")]
    Db(Box<redb::Error>),
    /// A record could not be encoded or decoded.
    #[error("control store record: {0}")]
    Codec(#[from] serde_json::Error),
    /// A record was written by a newer format.
    #[error("control store record has format version {found}, this build reads up to {supported}")]
    FormatVersion {
        /// Version found on disk.
        found: u32,
        /// Newest version this build reads.
        supported: u32,
    },
    /// The blocking task running a store operation died.
    #[error("control store task: {0}")]
    Task(String),
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        // Boxed: redb's error is large and would bloat every `Result` on the happy path.
        StoreError::Db(Box::new(e))
    }
}

/// A persisted value with its format version.
#[derive(Serialize, Deserialize)]
struct Record<T> {
    format_version: u32,
    body: T,
}

/// Encodes `body` as a versioned record.
pub(crate) fn encode<T: Serialize>(body: &T) -> Result<Vec<u8>, StoreError> {
    Ok(serde_json::to_vec(&Record { format_version: STATE_FORMAT_VERSION, body })?)
}

/// Decodes a versioned record, refusing formats newer than this build.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    let record: Record<T> = serde_json::from_slice(bytes)?;
    if record.format_version > STATE_FORMAT_VERSION {
        return Err(StoreError::FormatVersion { found: record.format_version, supported: STATE_FORMAT_VERSION });
    }
    Ok(record.body)
}

/// The open database plus a signal that fires once it is closed.
struct StoreFile {
    // Fields drop in order: the file is closed before `_closed` tells anyone.
    db: Database,
    _closed: tokio::sync::oneshot::Sender<()>,
}

/// Resolves once every user of a [`ControlStore`] is gone and its file is closed.
pub struct StoreClosed(tokio::sync::oneshot::Receiver<()>);

impl StoreClosed {
    /// Waits for the file to be closed.
    pub async fn wait(self) {
        // The sender is never used: only its drop matters.
        let _closed = self.0.await;
    }
}

/// The control-plane redb file.
#[derive(Clone)]
pub struct ControlStore {
    db: Arc<StoreFile>,
}

/// A snapshot as stored: meta and serialized [`super::ClusterState`].
pub(crate) struct StoredSnapshot {
    pub(crate) meta: SnapshotMeta<u64, ControlNode>,
    pub(crate) data: Vec<u8>,
}

impl ControlStore {
    /// Opens or creates the store at `path`; blocking. The second value tells when the file
    /// has been closed again.
    pub fn open(path: &Path) -> Result<(Self, StoreClosed), StoreError> {
        let db = Database::create(path).map_err(redb::Error::from)?;
        // Create the tables up front so that readers never meet a missing table.
        let mut txn = db.begin_write().map_err(redb::Error::from)?;
        txn.set_durability(Durability::Immediate);
        {
            txn.open_table(LOG_TABLE).map_err(redb::Error::from)?;
            txn.open_table(META_TABLE).map_err(redb::Error::from)?;
            txn.open_table(SNAPSHOT_TABLE).map_err(redb::Error::from)?;
        }
        txn.commit().map_err(redb::Error::from)?;
        let (closed, closed_rx) = tokio::sync::oneshot::channel();
        let store = ControlStore { db: Arc::new(StoreFile { db, _closed: closed }) };
        Ok((store, StoreClosed(closed_rx)))
    }

    /// The Raft log and vote storage over this file.
    pub fn log_store(&self) -> LogStore {
        LogStore { db: self.db.clone() }
    }

    /// Runs `f` on a blocking thread with the database.
    pub(crate) async fn run<F, R>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Database) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        run_blocking(&self.db, f).await
    }

    /// Reads the current snapshot; blocking.
    pub(crate) fn read_snapshot(db: &Database) -> Result<Option<StoredSnapshot>, StoreError> {
        let txn = db.begin_read().map_err(redb::Error::from)?;
        let table = txn.open_table(SNAPSHOT_TABLE).map_err(redb::Error::from)?;
        let meta = table.get(KEY_SNAPSHOT_META).map_err(redb::Error::from)?;
        let data = table.get(KEY_SNAPSHOT_DATA).map_err(redb::Error::from)?;
        match (meta, data) {
            (Some(meta), Some(data)) => {
                Ok(Some(StoredSnapshot { meta: decode(meta.value())?, data: data.value().to_vec() }))
            }
            _ => Ok(None),
        }
    }

    /// Replaces the current snapshot durably; blocking.
    pub(crate) fn write_snapshot(db: &Database, snapshot: &StoredSnapshot) -> Result<(), StoreError> {
        let meta = encode(&snapshot.meta)?;
        let mut txn = db.begin_write().map_err(redb::Error::from)?;
        txn.set_durability(Durability::Immediate);
        {
            let mut table = txn.open_table(SNAPSHOT_TABLE).map_err(redb::Error::from)?;
            table.insert(KEY_SNAPSHOT_META, meta.as_slice()).map_err(redb::Error::from)?;
            table.insert(KEY_SNAPSHOT_DATA, snapshot.data.as_slice()).map_err(redb::Error::from)?;
        }
        txn.commit().map_err(redb::Error::from)?;
        Ok(())
    }
}

async fn run_blocking<F, R>(db: &Arc<StoreFile>, f: F) -> Result<R, StoreError>
where
    F: FnOnce(&Database) -> Result<R, StoreError> + Send + 'static,
    R: Send + 'static,
{
    let db = db.clone();
    tokio::task::spawn_blocking(move || f(&db.db)).await.map_err(|e| StoreError::Task(e.to_string()))?
}

fn read_meta<T: DeserializeOwned>(db: &Database, key: &str) -> Result<Option<T>, StoreError> {
    let txn = db.begin_read().map_err(redb::Error::from)?;
    let table = txn.open_table(META_TABLE).map_err(redb::Error::from)?;
    let value = table.get(key).map_err(redb::Error::from)?;
    value.map(|v| decode(v.value())).transpose()
}

fn write_meta(db: &Database, key: &str, value: &[u8]) -> Result<(), StoreError> {
    let mut txn = db.begin_write().map_err(redb::Error::from)?;
    txn.set_durability(Durability::Immediate);
    {
        let mut table = txn.open_table(META_TABLE).map_err(redb::Error::from)?;
        table.insert(key, value).map_err(redb::Error::from)?;
    }
    txn.commit().map_err(redb::Error::from)?;
    Ok(())
}

/// Raft log and vote storage; clones share the file and serve as log readers.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<StoreFile>,
}

impl LogStore {
    async fn run<F, R>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Database) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        run_blocking(&self.db, f).await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        let bounds: (Bound<u64>, Bound<u64>) = (range.start_bound().cloned(), range.end_bound().cloned());
        self.run(move |db| {
            let txn = db.begin_read().map_err(redb::Error::from)?;
            let table = txn.open_table(LOG_TABLE).map_err(redb::Error::from)?;
            let mut entries = Vec::new();
            for row in table.range::<u64>(bounds).map_err(redb::Error::from)? {
                let (_, value) = row.map_err(redb::Error::from)?;
                entries.push(decode(value.value())?);
            }
            Ok(entries)
        })
        .await
        .map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        self.run(|db| {
            let last_purged: Option<LogId<u64>> = read_meta(db, KEY_LAST_PURGED)?;
            let txn = db.begin_read().map_err(redb::Error::from)?;
            let table = txn.open_table(LOG_TABLE).map_err(redb::Error::from)?;
            let last = match table.last().map_err(redb::Error::from)? {
                Some((_, value)) => {
                    let entry: Entry<TypeConfig> = decode(value.value())?;
                    Some(entry.log_id)
                }
                None => last_purged,
            };
            Ok(LogState { last_purged_log_id: last_purged, last_log_id: last })
        })
        .await
        .map_err(|e| StorageIOError::read_logs(&e).into())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let value = encode(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        self.run(move |db| write_meta(db, KEY_VOTE, &value)).await.map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        self.run(|db| read_meta(db, KEY_VOTE)).await.map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), StorageError<u64>> {
        let value = encode(&committed).map_err(|e| StorageIOError::write(&e))?;
        self.run(move |db| write_meta(db, KEY_COMMITTED, &value)).await.map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        self.run(|db| Ok(read_meta::<Option<LogId<u64>>>(db, KEY_COMMITTED)?.flatten()))
            .await
            .map_err(|e| StorageIOError::read(&e).into())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let rows = entries
            .into_iter()
            .map(|entry| Ok((entry.log_id.index, encode(&entry)?)))
            .collect::<Result<Vec<(u64, Vec<u8>)>, StoreError>>()
            .map_err(|e| StorageIOError::write_logs(&e))?;
        let result = self
            .run(move |db| {
                let mut txn = db.begin_write().map_err(redb::Error::from)?;
                txn.set_durability(Durability::Immediate);
                {
                    let mut table = txn.open_table(LOG_TABLE).map_err(redb::Error::from)?;
                    for (index, value) in &rows {
                        table.insert(*index, value.as_slice()).map_err(redb::Error::from)?;
                    }
                }
                txn.commit().map_err(redb::Error::from)?;
                Ok(())
            })
            .await;
        match result {
            Ok(()) => {
                // The commit above was durable, so the entries are flushed already.
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(&e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.run(move |db| {
            let mut txn = db.begin_write().map_err(redb::Error::from)?;
            txn.set_durability(Durability::Immediate);
            {
                let mut table = txn.open_table(LOG_TABLE).map_err(redb::Error::from)?;
                table.retain_in(log_id.index.., |_, _| false).map_err(redb::Error::from)?;
            }
            txn.commit().map_err(redb::Error::from)?;
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let purged = encode(&log_id).map_err(|e| StorageIOError::write_logs(&e))?;
        self.run(move |db| {
            let mut txn = db.begin_write().map_err(redb::Error::from)?;
            txn.set_durability(Durability::Immediate);
            {
                // The purge pointer and the deletion commit together, so the log never has
                // a hole between the pointer and the first entry.
                let mut meta = txn.open_table(META_TABLE).map_err(redb::Error::from)?;
                meta.insert(KEY_LAST_PURGED, purged.as_slice()).map_err(redb::Error::from)?;
                let mut table = txn.open_table(LOG_TABLE).map_err(redb::Error::from)?;
                table.retain_in(..=log_id.index, |_, _| false).map_err(redb::Error::from)?;
            }
            txn.commit().map_err(redb::Error::from)?;
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}
