//! The Raft state machine: [`ClusterState`] in memory, snapshots in redb.
//!
//! `apply` does not touch the disk. After a restart the state is rebuilt from the last
//! snapshot plus the committed log entries after it (the log store persists the committed
//! pointer), so snapshots are written durably before Raft may purge the logs they cover.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use tokio::sync::watch;

use super::log_store::{ControlStore, StoreError, StoredSnapshot};
use super::state::{ClusterState, CommandResult, STATE_FORMAT_VERSION};
use super::{ControlNode, TypeConfig};

/// Decodes snapshot data into a state, refusing formats newer than this build.
pub(crate) fn decode_state(data: &[u8]) -> Result<ClusterState, StoreError> {
    let state: ClusterState = serde_json::from_slice(data)?;
    if state.format_version > STATE_FORMAT_VERSION {
        return Err(StoreError::FormatVersion { found: state.format_version, supported: STATE_FORMAT_VERSION });
    }
    Ok(state)
}

/// The state machine handed to Raft.
pub struct StateMachineStore {
    store: ControlStore,
    state: ClusterState,
    last_applied: Option<LogId<u64>>,
    last_membership: StoredMembership<u64, ControlNode>,
    published: watch::Sender<Arc<ClusterState>>,
}

impl StateMachineStore {
    /// Loads the state machine from the store's snapshot (if any); also returns the receiver
    /// side of the applied-state watch.
    pub async fn open(store: ControlStore) -> Result<(Self, watch::Receiver<Arc<ClusterState>>), StoreError> {
        let snapshot = store.run(ControlStore::read_snapshot).await?;
        let (state, last_applied, last_membership) = match snapshot {
            Some(snapshot) => (decode_state(&snapshot.data)?, snapshot.meta.last_log_id, snapshot.meta.last_membership),
            None => (ClusterState::empty(), None, StoredMembership::default()),
        };
        let (published, rx) = watch::channel(Arc::new(state.clone()));
        Ok((StateMachineStore { store, state, last_applied, last_membership, published }, rx))
    }

    fn publish(&self) {
        self.published.send_replace(Arc::new(self.state.clone()));
    }
}

/// Builds a snapshot from a copy of the state taken when the build was requested.
pub struct SnapshotBuilder {
    store: ControlStore,
    state: ClusterState,
    last_applied: Option<LogId<u64>>,
    last_membership: StoredMembership<u64, ControlNode>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let data = serde_json::to_vec(&self.state).map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let snapshot_id = match &self.last_applied {
            Some(log_id) => format!("{}-{}-{}", log_id.leader_id.term, log_id.index, uuid::Uuid::new_v4().simple()),
            None => format!("empty-{}", uuid::Uuid::new_v4().simple()),
        };
        let meta =
            SnapshotMeta { last_log_id: self.last_applied, last_membership: self.last_membership.clone(), snapshot_id };
        let stored = StoredSnapshot { meta: meta.clone(), data };
        let signature = meta.signature();
        let stored = self
            .store
            .run(move |db| {
                ControlStore::write_snapshot(db, &stored)?;
                Ok(stored)
            })
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(signature), &e))?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(stored.data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, ControlNode>), StorageError<u64>> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut results = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            self.state.version = entry.log_id.index;
            let result = match entry.payload {
                EntryPayload::Blank => CommandResult::Ok,
                EntryPayload::Normal(command) => self.state.apply(&command),
                EntryPayload::Membership(membership) => {
                    self.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    CommandResult::Ok
                }
            };
            results.push(result);
        }
        self.publish();
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            store: self.store.clone(),
            state: self.state.clone(),
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, ControlNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let signature = meta.signature();
        let data = snapshot.into_inner();
        let mut state = decode_state(&data).map_err(|e| StorageIOError::read_snapshot(Some(signature.clone()), &e))?;
        // The snapshot covers exactly the log up to its last log id.
        state.version = meta.last_log_id.map_or(0, |id| id.index);
        let stored = StoredSnapshot { meta: meta.clone(), data };
        self.store
            .run(move |db| ControlStore::write_snapshot(db, &stored))
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(signature), &e))?;
        self.state = state;
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let stored =
            self.store.run(ControlStore::read_snapshot).await.map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(stored.map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
    }
}
