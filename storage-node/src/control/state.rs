//! The replicated cluster state and the commands that change it.
//!
//! [`ClusterState::apply`] is the whole business logic of the control plane. It runs on every
//! replica for every committed command, so it must be deterministic: no clock, no randomness,
//! no I/O. Everything time- or id-dependent (bucket ids, creation times) travels in the command.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::bucket_config::{BucketChange, CannedAcl, CorsRule, Permissions};
use crate::placement::{self, Layout, NodeSpec};

/// Format version of [`ClusterState`] and everything persisted by the control plane.
pub const STATE_FORMAT_VERSION: u32 = 1;
/// Largest accepted number of partitions.
pub const MAX_PARTITION_COUNT: u32 = 1 << 16;
/// Largest accepted replication factor.
pub const MAX_REPLICATION_FACTOR: u8 = 7;
/// Largest accepted chunk size.
pub const MAX_CHUNK_SIZE_BYTES: u64 = 1 << 30;
/// Largest accepted number of index shards per bucket.
pub const MAX_INDEX_SHARDS: u16 = 1024;
/// Largest accepted length of names, ids and addresses carried in commands.
pub const MAX_NAME_BYTES: usize = 256;
/// Largest accepted access key secret.
pub const MAX_SECRET_BYTES: usize = 1024;

/// Everything the control plane holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Format version of this record.
    pub format_version: u32,
    /// Index of the last applied log entry; grows with every change.
    pub version: u64,
    /// Cluster-wide settings; all zero until `InitSettings` is applied.
    pub settings: ClusterSettings,
    /// Nodes by node id.
    pub nodes: BTreeMap<String, NodeInfo>,
    /// Current partition layout.
    pub layout: Layout,
    /// The move from the previous layout to this one, while it is in progress.
    #[serde(default)]
    pub transition: Option<LayoutTransition>,
    /// Buckets by name.
    pub buckets: BTreeMap<String, BucketInfo>,
    /// Access keys by key id.
    pub access_keys: BTreeMap<String, AccessKey>,
}

/// Settings fixed at cluster creation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSettings {
    /// Number of partitions (a power of two).
    pub partition_count: u32,
    /// Replicas per partition.
    pub replication_factor: u8,
    /// Size of object chunks.
    pub chunk_size_bytes: u64,
}

/// One storage node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Stable node id.
    pub node_id: String,
    /// Raft id, derived from `node_id` by [`super::raft_id`].
    pub raft_id: u64,
    /// Failure zone.
    pub zone: String,
    /// Relative share of partitions.
    pub capacity_weight: u32,
    /// Internal RPC address, `host:port`.
    pub rpc_addr: String,
    /// Whether the node takes part in the layout.
    #[serde(default)]
    pub membership: Membership,
}

/// Whether a node takes part in the layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Membership {
    /// Holds replicas.
    #[default]
    Active,
    /// Taken out by an operator; stays out until added again.
    Removed,
    /// Taken out by the leader after being down past the grace period; back in when it
    /// announces itself again.
    Evicted,
}

impl Membership {
    /// The name `cairn admin` shows.
    pub fn name(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Removed => "removed",
            Self::Evicted => "evicted",
        }
    }
}

/// A layout change in progress: data moves from the previous layout's replicas to the
/// current one's. Until every node of the current layout has pulled its partitions, writes go
/// to the replicas of both layouts and reads to the previous one's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutTransition {
    /// The layout data moves from (the oldest one not fully moved).
    pub previous: Layout,
    /// Nodes of the current layout that have pulled every partition they gained.
    pub synced: BTreeSet<String>,
}

/// Per-bucket consistency level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Consistency {
    /// One replica.
    One,
    /// A majority of replicas.
    #[default]
    Quorum,
    /// Every replica.
    All,
}

impl Consistency {
    /// Every level, weakest first.
    pub const LEVELS: [Self; 3] = [Self::One, Self::Quorum, Self::All];

    /// The level's name as operators write it: `one`, `quorum`, `all`.
    pub fn name(self) -> &'static str {
        match self {
            Self::One => "one",
            Self::Quorum => "quorum",
            Self::All => "all",
        }
    }

    /// Parses a level name, in any case.
    pub fn parse(name: &str) -> Option<Self> {
        Self::LEVELS.into_iter().find(|level| level.name().eq_ignore_ascii_case(name.trim()))
    }
}

/// One bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketInfo {
    /// Bucket name.
    pub name: String,
    /// Identity of this incarnation of the name.
    pub bucket_id: uuid::Uuid,
    /// Consistency level of reads and writes.
    pub consistency: Consistency,
    /// Number of metadata index shards.
    pub index_shards: u16,
    /// Access key id of the owner.
    pub owner_key: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Who besides the owner may list and write the bucket.
    #[serde(default)]
    pub acl: CannedAcl,
    /// Cross-origin rules answered to browsers.
    #[serde(default)]
    pub cors: Vec<CorsRule>,
    /// Bucket tags.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// Access keys granted rights on the bucket besides its owner, by key id.
    #[serde(default)]
    pub grants: BTreeMap<String, Permissions>,
}

impl BucketInfo {
    /// What `key_id` may do with the bucket: everything for the owner, else its grant.
    pub fn permissions_of(&self, key_id: &str) -> Permissions {
        if !key_id.is_empty() && key_id == self.owner_key {
            return Permissions { read: true, write: true, owner: true };
        }
        let granted = self.grants.get(key_id).copied().unwrap_or_default();
        // Owning implies reading and writing.
        Permissions { read: granted.read || granted.owner, write: granted.write || granted.owner, ..granted }
    }
}

/// One S3 access key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    /// Access key id.
    pub key_id: String,
    /// Secret key.
    pub secret: String,
    /// Human-readable name.
    pub name: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
}

/// A change to the cluster state; the payload of control-plane log entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Set the cluster settings; accepted once.
    InitSettings(ClusterSettings),
    /// Add a node or update its address, zone or weight.
    AddNode(NodeInfo),
    /// Create a bucket unless the name is taken.
    CreateBucket {
        /// Bucket name.
        name: String,
        /// Id of the new bucket.
        bucket_id: uuid::Uuid,
        /// Owner access key id.
        owner_key: String,
        /// Consistency level.
        consistency: Consistency,
        /// Number of metadata index shards.
        index_shards: u16,
        /// Creation time, milliseconds since the Unix epoch.
        created_ms: u64,
        /// Canned ACL.
        #[serde(default)]
        acl: CannedAcl,
    },
    /// Change one setting of a bucket if it still has the given id.
    UpdateBucket {
        /// Bucket name.
        name: String,
        /// Id the bucket must have.
        bucket_id: uuid::Uuid,
        /// The change.
        change: BucketChange,
    },
    /// Delete a bucket if it still has the given id.
    DeleteBucket {
        /// Bucket name.
        name: String,
        /// Id the bucket must have.
        bucket_id: uuid::Uuid,
    },
    /// Create or replace an access key.
    PutAccessKey(AccessKey),
    /// Delete an access key and its grants, unless it owns a bucket.
    DeleteAccessKey {
        /// The access key id.
        key_id: String,
    },
    /// Change a node's zone or capacity weight (what is `None` stays).
    UpdateNode {
        /// The node.
        node_id: String,
        /// New failure zone.
        zone: Option<String>,
        /// New capacity weight.
        capacity_weight: Option<u32>,
    },
    /// Take a node out of the layout (operator).
    RemoveNode {
        /// The node.
        node_id: String,
    },
    /// Put a removed or evicted node back in the layout (operator).
    RestoreNode {
        /// The node.
        node_id: String,
    },
    /// Take a node that stayed down past the grace period out of the layout (leader).
    EvictNode {
        /// The node.
        node_id: String,
    },
    /// A node of the current layout has pulled every partition it gained in this version.
    LayoutSynced {
        /// The node.
        node_id: String,
        /// The layout version it pulled.
        version: u64,
    },
}

/// Outcome of applying a [`Command`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// Applied.
    Ok,
    /// The bucket name is taken.
    BucketAlreadyExists {
        /// Owner of the existing bucket.
        owner_key: String,
    },
    /// No bucket with that name and id.
    NoSuchBucket,
    /// Not applied, with the reason.
    Rejected(String),
}

impl ClusterSettings {
    /// Checks the settings a cluster can be created with.
    pub fn validate(&self) -> Result<(), String> {
        if !self.partition_count.is_power_of_two() || self.partition_count > MAX_PARTITION_COUNT {
            return Err(format!(
                "partition_count must be a power of two up to {MAX_PARTITION_COUNT}, got {}",
                self.partition_count
            ));
        }
        if self.replication_factor == 0 || self.replication_factor > MAX_REPLICATION_FACTOR {
            return Err(format!(
                "replication_factor must be 1..={MAX_REPLICATION_FACTOR}, got {}",
                self.replication_factor
            ));
        }
        if self.chunk_size_bytes == 0 || self.chunk_size_bytes > MAX_CHUNK_SIZE_BYTES {
            return Err(format!("chunk_size_bytes must be 1..={MAX_CHUNK_SIZE_BYTES}, got {}", self.chunk_size_bytes));
        }
        Ok(())
    }
}

impl Default for ClusterState {
    fn default() -> Self {
        Self::empty()
    }
}

impl ClusterState {
    /// The state before any command.
    pub fn empty() -> Self {
        ClusterState {
            format_version: STATE_FORMAT_VERSION,
            version: 0,
            settings: ClusterSettings::default(),
            nodes: BTreeMap::new(),
            layout: Layout::empty(0, 0),
            transition: None,
            buckets: BTreeMap::new(),
            access_keys: BTreeMap::new(),
        }
    }

    /// The nodes holding the replicas of a placement key's partition in the current layout,
    /// in layout order.
    pub fn replica_nodes(&self, placement_key: &[u8]) -> Vec<NodeInfo> {
        self.partition_nodes(self.layout.partition_of(placement_key))
    }

    /// The nodes holding the replicas of a partition in the current layout, in layout order.
    pub fn partition_nodes(&self, partition: u32) -> Vec<NodeInfo> {
        self.nodes_of(&self.layout, partition)
    }

    /// The nodes holding a partition in the previous layout, while a move is in progress.
    pub fn previous_partition_nodes(&self, partition: u32) -> Option<Vec<NodeInfo>> {
        self.transition.as_ref().map(|t| self.nodes_of(&t.previous, partition))
    }

    /// The replicas that hold every acknowledged write of a partition: the previous layout's
    /// while a move is in progress, else the current one's. Reads go there.
    pub fn read_nodes(&self, placement_key: &[u8]) -> Vec<NodeInfo> {
        let partition = self.layout.partition_of(placement_key);
        self.previous_partition_nodes(partition).unwrap_or_else(|| self.partition_nodes(partition))
    }

    /// Every replica set a write must meet its quorum in: the current layout's, and the
    /// previous one's while a move is in progress.
    pub fn write_sets(&self, placement_key: &[u8]) -> Vec<Vec<NodeInfo>> {
        let partition = self.layout.partition_of(placement_key);
        let mut sets = vec![self.partition_nodes(partition)];
        sets.extend(self.previous_partition_nodes(partition));
        sets
    }

    /// Whether the state records `node` as an active member at its address.
    pub fn knows_node(&self, node: &NodeInfo) -> bool {
        self.nodes.get(&node.node_id).is_some_and(|known| {
            known.rpc_addr == node.rpc_addr && known.raft_id == node.raft_id && known.membership != Membership::Evicted
        })
    }

    fn nodes_of(&self, layout: &Layout, partition: u32) -> Vec<NodeInfo> {
        layout.replicas(partition).filter_map(|id| self.nodes.get(id).cloned()).collect()
    }

    /// Whether `InitSettings` has been applied.
    pub fn has_settings(&self) -> bool {
        // Validated settings never have zero partitions.
        self.settings.partition_count != 0
    }

    /// Applies one command; deterministic on every replica.
    pub fn apply(&mut self, command: &Command) -> CommandResult {
        match command {
            Command::InitSettings(settings) => self.init_settings(settings),
            Command::AddNode(node) => self.add_node(node),
            Command::CreateBucket { name, bucket_id, owner_key, consistency, index_shards, created_ms, acl } => {
                if let Some(existing) = self.buckets.get(name) {
                    if existing.bucket_id == *bucket_id {
                        // The same create applied twice (a forward retried after a lost
                        // answer): it succeeded the first time.
                        return CommandResult::Ok;
                    }
                    return CommandResult::BucketAlreadyExists { owner_key: existing.owner_key.clone() };
                }
                if let Err(reason) = check_name("bucket name", name).and_then(|()| check_name("owner key", owner_key)) {
                    return CommandResult::Rejected(reason);
                }
                if *index_shards == 0 || *index_shards > MAX_INDEX_SHARDS {
                    return CommandResult::Rejected(format!(
                        "index_shards must be 1..={MAX_INDEX_SHARDS}, got {index_shards}"
                    ));
                }
                self.buckets.insert(
                    name.clone(),
                    BucketInfo {
                        name: name.clone(),
                        bucket_id: *bucket_id,
                        consistency: *consistency,
                        index_shards: *index_shards,
                        owner_key: owner_key.clone(),
                        created_ms: *created_ms,
                        acl: *acl,
                        cors: Vec::new(),
                        tags: Vec::new(),
                        grants: BTreeMap::new(),
                    },
                );
                CommandResult::Ok
            }
            Command::UpdateBucket { name, change: BucketChange::Grant { key_id, .. }, .. }
                if !self.access_keys.contains_key(key_id) && self.buckets.contains_key(name) =>
            {
                CommandResult::Rejected(format!("no access key {key_id}"))
            }
            Command::UpdateBucket { name, bucket_id, change } => match self.buckets.get_mut(name) {
                Some(bucket) if bucket.bucket_id == *bucket_id => {
                    change.apply_to(bucket);
                    CommandResult::Ok
                }
                _ => CommandResult::NoSuchBucket,
            },
            Command::DeleteBucket { name, bucket_id } => match self.buckets.get(name) {
                Some(bucket) if bucket.bucket_id == *bucket_id => {
                    self.buckets.remove(name);
                    CommandResult::Ok
                }
                _ => CommandResult::NoSuchBucket,
            },
            Command::UpdateNode { node_id, zone, capacity_weight } => {
                self.update_node(node_id, zone.as_deref(), *capacity_weight)
            }
            Command::RemoveNode { node_id } => self.set_membership(node_id, Membership::Removed),
            Command::EvictNode { node_id } => self.set_membership(node_id, Membership::Evicted),
            Command::RestoreNode { node_id } => self.set_membership(node_id, Membership::Active),
            Command::LayoutSynced { node_id, version } => {
                let members: BTreeSet<&String> = self.layout.nodes.iter().collect();
                if let Some(transition) = self.transition.as_mut()
                    && *version == self.layout.version
                    && members.contains(node_id)
                {
                    transition.synced.insert(node_id.clone());
                    if members.iter().all(|n| transition.synced.contains(*n)) {
                        self.transition = None;
                    }
                }
                CommandResult::Ok
            }
            Command::PutAccessKey(key) => {
                if let Err(reason) = check_name("key id", &key.key_id).and_then(|()| check_name("key name", &key.name))
                {
                    return CommandResult::Rejected(reason);
                }
                if key.secret.is_empty() || key.secret.len() > MAX_SECRET_BYTES {
                    return CommandResult::Rejected(format!("secret must be 1..={MAX_SECRET_BYTES} bytes"));
                }
                self.access_keys.insert(key.key_id.clone(), key.clone());
                CommandResult::Ok
            }
            Command::DeleteAccessKey { key_id } => {
                let owned: Vec<&str> =
                    self.buckets.values().filter(|b| b.owner_key == *key_id).map(|b| b.name.as_str()).collect();
                if !owned.is_empty() {
                    return CommandResult::Rejected(format!(
                        "{key_id} owns {}: delete them or keep the key",
                        owned.join(", ")
                    ));
                }
                if self.access_keys.remove(key_id).is_none() {
                    return CommandResult::Rejected(format!("no access key {key_id}"));
                }
                for bucket in self.buckets.values_mut() {
                    bucket.grants.remove(key_id);
                }
                CommandResult::Ok
            }
        }
    }

    fn init_settings(&mut self, settings: &ClusterSettings) -> CommandResult {
        if self.has_settings() {
            return CommandResult::Rejected("cluster settings are already initialized".into());
        }
        if let Err(reason) = settings.validate() {
            return CommandResult::Rejected(reason);
        }
        self.settings = settings.clone();
        self.layout = Layout::empty(settings.partition_count, settings.replication_factor);
        CommandResult::Ok
    }

    fn add_node(&mut self, node: &NodeInfo) -> CommandResult {
        if !self.has_settings() {
            return CommandResult::Rejected("cluster settings are not initialized".into());
        }
        if let Err(reason) = check_name("node id", &node.node_id)
            .and_then(|()| check_name("zone", &node.zone))
            .and_then(|()| check_name("rpc address", &node.rpc_addr))
        {
            return CommandResult::Rejected(reason);
        }
        if node.raft_id != super::raft_id(&node.node_id) {
            return CommandResult::Rejected(format!(
                "raft id {} does not belong to node {}",
                node.raft_id, node.node_id
            ));
        }
        if node.capacity_weight == 0 {
            return CommandResult::Rejected("capacity_weight must be positive".into());
        }
        match self.nodes.get_mut(&node.node_id) {
            // A node announcing itself again keeps the zone and weight operators gave it, and
            // comes back from an eviction (not from a removal).
            Some(known) => {
                known.rpc_addr = node.rpc_addr.clone();
                if known.membership == Membership::Evicted {
                    known.membership = Membership::Active;
                    self.recompute_layout();
                }
            }
            None => {
                let mut node = node.clone();
                node.membership = Membership::Active;
                self.nodes.insert(node.node_id.clone(), node);
                self.recompute_layout();
            }
        }
        CommandResult::Ok
    }

    fn update_node(&mut self, node_id: &str, zone: Option<&str>, capacity_weight: Option<u32>) -> CommandResult {
        if let Some(zone) = zone
            && let Err(reason) = check_name("zone", zone)
        {
            return CommandResult::Rejected(reason);
        }
        if capacity_weight == Some(0) {
            return CommandResult::Rejected("capacity_weight must be positive".into());
        }
        let Some(node) = self.nodes.get_mut(node_id) else {
            return CommandResult::Rejected(format!("no node {node_id}"));
        };
        let before = (node.zone.clone(), node.capacity_weight);
        node.zone = zone.map_or(before.0.clone(), str::to_owned);
        node.capacity_weight = capacity_weight.unwrap_or(before.1);
        if (node.zone.clone(), node.capacity_weight) != before && node.membership == Membership::Active {
            self.recompute_layout();
        }
        CommandResult::Ok
    }

    fn set_membership(&mut self, node_id: &str, membership: Membership) -> CommandResult {
        let Some(node) = self.nodes.get_mut(node_id) else {
            return CommandResult::Rejected(format!("no node {node_id}"));
        };
        if node.membership == membership {
            return CommandResult::Ok;
        }
        let active = self.nodes.values().filter(|n| n.membership == Membership::Active).count();
        if membership != Membership::Active && active <= 1 {
            return CommandResult::Rejected("the last active node cannot leave the layout".into());
        }
        if let Some(node) = self.nodes.get_mut(node_id) {
            node.membership = membership;
        }
        self.recompute_layout();
        CommandResult::Ok
    }

    /// Recomputes the layout from the node list; keeps the old one if placement refuses.
    /// A layout that differs from the current one starts (or restarts) a move; the move keeps
    /// the oldest layout not fully moved as its source, since that one holds every write.
    fn recompute_layout(&mut self) {
        let specs: Vec<NodeSpec> = self
            .nodes
            .values()
            .filter(|n| n.membership == Membership::Active)
            .map(|n| NodeSpec { node_id: n.node_id.clone(), zone: n.zone.clone(), capacity_weight: n.capacity_weight })
            .collect();
        match placement::compute_layout(
            &specs,
            self.settings.partition_count,
            self.settings.replication_factor,
            self.layout.version + 1,
        ) {
            Ok(layout) if layout.nodes == self.layout.nodes && layout.replicas == self.layout.replicas => {}
            Ok(layout) => {
                let old = std::mem::replace(&mut self.layout, layout);
                let previous = match self.transition.take() {
                    Some(transition) => transition.previous,
                    None => old,
                };
                // The first layout has nothing to move.
                if !previous.nodes.is_empty() {
                    self.transition = Some(LayoutTransition { previous, synced: BTreeSet::new() });
                }
            }
            // The node stays a member; the layout follows once placement accepts the node set
            // (typically once there are as many nodes as replicas).
            Err(e) => tracing::warn!(error = %e, nodes = specs.len(), "layout unchanged"),
        }
    }
}

fn check_name(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_NAME_BYTES {
        return Err(format!("{what} must be 1..={MAX_NAME_BYTES} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClusterSettings {
        ClusterSettings { partition_count: 16, replication_factor: 1, chunk_size_bytes: 4 << 20 }
    }

    fn node(id: &str, addr: &str, zone: &str) -> NodeInfo {
        NodeInfo {
            node_id: id.into(),
            raft_id: super::super::raft_id(id),
            zone: zone.into(),
            capacity_weight: 1,
            rpc_addr: addr.into(),
            membership: Membership::Active,
        }
    }

    fn create(name: &str, owner: &str, id: u128) -> Command {
        Command::CreateBucket {
            name: name.into(),
            bucket_id: uuid::Uuid::from_u128(id),
            owner_key: owner.into(),
            consistency: Consistency::Quorum,
            index_shards: 4,
            created_ms: 1,
            acl: CannedAcl::Private,
        }
    }

    #[test]
    fn bucket_settings_change_only_for_the_same_bucket() {
        let mut s = ClusterState::empty();
        s.apply(&create("b", "k1", 1));
        let set = |id: u128| Command::UpdateBucket {
            name: "b".into(),
            bucket_id: uuid::Uuid::from_u128(id),
            change: BucketChange::Acl(CannedAcl::PublicRead),
        };
        assert_eq!(s.apply(&set(2)), CommandResult::NoSuchBucket);
        assert_eq!(s.buckets["b"].acl, CannedAcl::Private);
        assert_eq!(s.apply(&set(1)), CommandResult::Ok);
        assert_eq!(s.buckets["b"].acl, CannedAcl::PublicRead);
        let tags = vec![("k".to_string(), "v".to_string())];
        let update = Command::UpdateBucket {
            name: "b".into(),
            bucket_id: uuid::Uuid::from_u128(1),
            change: BucketChange::Tags(tags.clone()),
        };
        assert_eq!(s.apply(&update), CommandResult::Ok);
        assert_eq!(s.buckets["b"].tags, tags);
        assert_eq!(s.buckets["b"].acl, CannedAcl::PublicRead);
        assert_eq!(CannedAcl::from_name("public-read-write"), Some(CannedAcl::PublicReadWrite));
        assert!(CannedAcl::AuthenticatedRead.grants_read(false) && !CannedAcl::AuthenticatedRead.grants_read(true));
    }

    #[test]
    fn settings_are_set_once_and_validated() {
        let mut s = ClusterState::empty();
        let mut bad = settings();
        bad.partition_count = 12;
        assert!(matches!(s.apply(&Command::InitSettings(bad)), CommandResult::Rejected(_)));
        assert_eq!(s.apply(&Command::InitSettings(settings())), CommandResult::Ok);
        assert_eq!(s.layout.partition_count, 16);
        assert!(matches!(s.apply(&Command::InitSettings(settings())), CommandResult::Rejected(_)));
    }

    #[test]
    fn node_needs_settings_and_its_own_raft_id() {
        let mut s = ClusterState::empty();
        assert!(matches!(s.apply(&Command::AddNode(node("a", "a:1", "z"))), CommandResult::Rejected(_)));
        s.apply(&Command::InitSettings(settings()));
        let mut forged = node("a", "a:1", "z");
        forged.raft_id ^= 1;
        assert!(matches!(s.apply(&Command::AddNode(forged)), CommandResult::Rejected(_)));
        assert_eq!(s.apply(&Command::AddNode(node("a", "a:1", "z"))), CommandResult::Ok);
        assert_eq!(s.layout.nodes, vec!["a".to_string()]);
    }

    #[test]
    fn readding_a_node_with_a_new_address_keeps_the_layout() {
        let mut s = ClusterState::empty();
        s.apply(&Command::InitSettings(settings()));
        s.apply(&Command::AddNode(node("a", "a:1", "z")));
        let layout = s.layout.clone();
        assert_eq!(s.apply(&Command::AddNode(node("a", "a:2", "z"))), CommandResult::Ok);
        assert_eq!(s.layout, layout);
        assert_eq!(s.nodes["a"].rpc_addr, "a:2");
        // A node announcing itself again keeps the zone an operator gave it.
        s.apply(&Command::AddNode(node("a", "a:2", "other-zone")));
        assert_eq!(s.layout, layout);
        assert_eq!(s.nodes["a"].zone, "z");
    }

    fn three_node_state() -> ClusterState {
        let mut s = ClusterState::empty();
        s.apply(&Command::InitSettings(ClusterSettings { replication_factor: 2, ..settings() }));
        for id in ["a", "b", "c"] {
            s.apply(&Command::AddNode(node(id, &format!("{id}:1"), id)));
        }
        s
    }

    fn synced(s: &mut ClusterState, nodes: &[&str]) {
        for id in nodes {
            let version = s.layout.version;
            assert_eq!(s.apply(&Command::LayoutSynced { node_id: id.to_string(), version }), CommandResult::Ok);
        }
    }

    #[test]
    fn a_layout_change_moves_data_until_every_node_of_the_new_layout_synced() {
        let mut s = three_node_state();
        synced(&mut s, &["a", "b", "c"]);
        assert_eq!(s.transition, None);
        let before = s.layout.clone();
        s.apply(&Command::AddNode(node("d", "d:1", "d")));
        let transition = s.transition.clone().expect("adding a node starts a move");
        assert_eq!(transition.previous, before);
        // Writes meet both layouts; reads use the previous one until the move is over.
        let key = b"some placement key";
        let partition = s.layout.partition_of(key);
        assert_eq!(s.write_sets(key).len(), 2);
        let previous: Vec<String> = before.replicas(partition).map(str::to_owned).collect();
        assert_eq!(s.read_nodes(key).into_iter().map(|n| n.node_id).collect::<Vec<_>>(), previous);
        // A report for another version counts for nothing.
        let stale = s.layout.version - 1;
        s.apply(&Command::LayoutSynced { node_id: "d".into(), version: stale });
        assert!(s.transition.as_ref().is_some_and(|t| t.synced.is_empty()));
        synced(&mut s, &["a", "b", "c"]);
        assert!(s.transition.is_some(), "d has not pulled its partitions yet");
        synced(&mut s, &["d"]);
        assert_eq!(s.transition, None);
        assert_eq!(s.write_sets(key).len(), 1);

        // A change in the middle of a move keeps the oldest layout as the source.
        let before = s.layout.clone();
        s.apply(&Command::RemoveNode { node_id: "b".into() });
        synced(&mut s, &["a"]);
        s.apply(&Command::UpdateNode { node_id: "c".into(), zone: None, capacity_weight: Some(5) });
        let transition = s.transition.clone().expect("moving");
        assert_eq!(transition.previous, before);
        assert!(transition.synced.is_empty(), "the new layout needs new reports");
        assert!(!s.layout.nodes.contains(&"b".to_string()));
        assert_eq!(s.nodes["b"].membership, Membership::Removed);
        // A removed node announcing itself stays out until an operator restores it; an evicted
        // one comes back by itself.
        s.apply(&Command::AddNode(node("b", "b:1", "b")));
        assert!(!s.layout.nodes.contains(&"b".to_string()));
        s.apply(&Command::RestoreNode { node_id: "b".into() });
        assert!(s.layout.nodes.contains(&"b".to_string()));
        s.apply(&Command::EvictNode { node_id: "d".into() });
        assert!(!s.layout.nodes.contains(&"d".to_string()));
        s.apply(&Command::AddNode(node("d", "d:1", "d")));
        assert!(s.layout.nodes.contains(&"d".to_string()));
        assert_eq!(s.nodes["d"].membership, Membership::Active);
    }

    #[test]
    fn the_last_active_node_cannot_leave() {
        let mut s = three_node_state();
        s.apply(&Command::RemoveNode { node_id: "a".into() });
        s.apply(&Command::RemoveNode { node_id: "b".into() });
        assert!(matches!(s.apply(&Command::RemoveNode { node_id: "c".into() }), CommandResult::Rejected(_)));
        assert!(matches!(s.apply(&Command::RemoveNode { node_id: "x".into() }), CommandResult::Rejected(_)));
        assert_eq!(s.layout.nodes, vec!["c".to_string()]);
    }

    #[test]
    fn second_create_of_a_name_reports_the_owner() {
        let mut s = ClusterState::empty();
        assert_eq!(s.apply(&create("b", "k1", 1)), CommandResult::Ok);
        assert_eq!(s.apply(&create("b", "k2", 2)), CommandResult::BucketAlreadyExists { owner_key: "k1".into() });
        assert_eq!(s.buckets["b"].bucket_id, uuid::Uuid::from_u128(1));
        // A retried create (same bucket id) is not a conflict.
        assert_eq!(s.apply(&create("b", "k1", 1)), CommandResult::Ok);
        assert_eq!(s.buckets.len(), 1);
    }

    #[test]
    fn delete_needs_the_matching_bucket_id() {
        let mut s = ClusterState::empty();
        s.apply(&create("b", "k1", 1));
        let wrong = Command::DeleteBucket { name: "b".into(), bucket_id: uuid::Uuid::from_u128(2) };
        assert_eq!(s.apply(&wrong), CommandResult::NoSuchBucket);
        let right = Command::DeleteBucket { name: "b".into(), bucket_id: uuid::Uuid::from_u128(1) };
        assert_eq!(s.apply(&right), CommandResult::Ok);
        assert!(s.buckets.is_empty());
        assert_eq!(s.apply(&right), CommandResult::NoSuchBucket);
    }

    #[test]
    fn grants_need_the_key_and_go_with_it() {
        let mut s = ClusterState::empty();
        let key = |id: &str| AccessKey { key_id: id.into(), secret: "s".into(), name: "n".into(), created_ms: 0 };
        s.apply(&Command::PutAccessKey(key("k1")));
        s.apply(&Command::PutAccessKey(key("k2")));
        s.apply(&create("b", "k1", 1));
        let grant = |key_id: &str, permissions| Command::UpdateBucket {
            name: "b".into(),
            bucket_id: uuid::Uuid::from_u128(1),
            change: BucketChange::Grant { key_id: key_id.into(), permissions },
        };
        let read = Permissions { read: true, ..Permissions::default() };
        assert!(matches!(s.apply(&grant("nobody", read)), CommandResult::Rejected(_)));
        assert_eq!(s.apply(&grant("k2", read)), CommandResult::Ok);
        assert_eq!(s.buckets["b"].permissions_of("k2"), read);
        let owner = Permissions { owner: true, ..Permissions::default() };
        s.apply(&grant("k2", owner));
        assert_eq!(s.buckets["b"].permissions_of("k2"), Permissions { read: true, write: true, owner: true });
        assert_eq!(s.buckets["b"].permissions_of(""), Permissions::default());
        // A key that owns a bucket stays; one that was only granted rights goes with its grants.
        assert!(matches!(s.apply(&Command::DeleteAccessKey { key_id: "k1".into() }), CommandResult::Rejected(_)));
        assert_eq!(s.apply(&Command::DeleteAccessKey { key_id: "k2".into() }), CommandResult::Ok);
        assert!(s.buckets["b"].grants.is_empty());
        assert!(!s.access_keys.contains_key("k2"));
        s.apply(&grant("k1", Permissions::default()));
        assert!(s.buckets["b"].grants.is_empty(), "an empty grant is a revocation");
    }

    #[test]
    fn oversized_input_is_rejected() {
        let mut s = ClusterState::empty();
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        assert!(matches!(s.apply(&create(&long, "k", 1)), CommandResult::Rejected(_)));
        let key = AccessKey { key_id: "k".into(), secret: String::new(), name: "n".into(), created_ms: 0 };
        assert!(matches!(s.apply(&Command::PutAccessKey(key)), CommandResult::Rejected(_)));
        assert!(s.buckets.is_empty() && s.access_keys.is_empty());
    }

    /// Version 1 as written to snapshots and served to gateways; must stay readable.
    #[test]
    fn format_version_1_is_readable() {
        let v1 = r#"{"format_version":1,"version":7,
            "settings":{"partition_count":16,"replication_factor":1,"chunk_size_bytes":4194304},
            "nodes":{"a":{"node_id":"a","raft_id":1,"zone":"z","capacity_weight":1,"rpc_addr":"a:1"}},
            "layout":{"version":1,"partition_count":16,"replication_factor":1,"nodes":["a"],"replicas":[0]},
            "buckets":{"b":{"name":"b","bucket_id":"00000000-0000-0000-0000-000000000001",
                "consistency":"Quorum","index_shards":4,"owner_key":"k","created_ms":5}},
            "access_keys":{"k":{"key_id":"k","secret":"s","name":"n","created_ms":3}}}"#;
        let s: ClusterState = serde_json::from_str(v1).expect("v1 state parses");
        assert_eq!(s.format_version, 1);
        assert_eq!(s.version, 7);
        assert_eq!(s.buckets["b"].consistency, Consistency::Quorum);
        assert_eq!(s.access_keys["k"].secret, "s");
    }
}
