//! Placement: which nodes hold the replicas of each partition.
//!
//! The key space is `partition_count` partitions (a power of two). A placement key belongs to
//! the partition named by the top `log2(partition_count)` bits of [`stable_hash`] of the key.
//! A [`Layout`] maps every partition to an ordered list of `min(N, node count)` distinct nodes,
//! primary first. Only this module computes replica sets.
//!
//! # How a layout is computed
//!
//! Everything below is a pure function of the node set (input order does not matter: nodes are
//! sorted by `node_id` first) and uses only IEEE-754 `+ - * /` and comparisons, so every
//! platform computes the same layout from the same input.
//!
//! 1. **Rendezvous key.** For partition `p` and node `id`, `h = stable_hash(p as 4 big-endian
//!    bytes || id bytes)`, `u = ((h >> 11) + 0.5) / 2^53` (in the open interval (0, 1)) and
//!    `key = 1 / -ln(u)`. A node's score is `effective_weight × key`; ranking nodes by score is
//!    weighted rendezvous hashing (a node wins a partition with probability proportional to its
//!    weight).
//! 2. **Zone spreading.** Per partition, the *leader* of a zone is its best-scoring node. The
//!    replicas are the leaders of the `min(replicas, zone count)` best zones plus, when there
//!    are fewer zones than replicas, the best remaining nodes for the spare slots; listed in
//!    descending score (ties: smaller `node_id`). So with enough zones every replica is in its
//!    own zone, and with fewer zones every zone holds at least one replica. (Equivalently: scan
//!    nodes by descending score and skip a node of an already used zone unless the slots left
//!    after it still suffice to cover the zones not yet used.)
//! 3. **Targets.** Each node's target load (replicas it should hold) is its weight's share of
//!    `partition_count × replicas`, by water-filling within what the zone rule allows: a zone
//!    holds at most one replica per partition when zones suffice, otherwise at least one and at
//!    most `replicas − zones + 1`; a node holds at most one replica per partition.
//! 4. **Bounded-load correction.** Pure rendezvous leaves random per-node deviations (±2.5
//!    standard deviations is ±10 % for 8 nodes and 1024 partitions). So the effective weights
//!    start at the capacity weights and, for at most `MAX_TUNING_ROUNDS` rounds, each is
//!    multiplied by `1 + gain × (target / load − 1)` (gain shrinking from 1, the factor within
//!    [½, 2], the weight within 16× of its capacity weight) until every load is within
//!    [`LOAD_TOLERANCE_RATIO`] (or [`MIN_LOAD_TOLERANCE_REPLICAS`]) of its target; the round
//!    closest to that is kept. With a few hundred replicas per node the corrections are small,
//!    so adding or removing a node moves little more than that node's share (8 → 9 nodes at
//!    1024 partitions: at most 1.21 × the ideal ninth in the tests). With fewer replicas per
//!    node the integer loads make the corrections noisy and movement grows (about 1.4 × the
//!    ideal at ~100 replicas per node, 3 × at ~30), so size `partition_count` for a few hundred
//!    replicas per node at the expected cluster size.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Default number of partitions of a new cluster.
pub const DEFAULT_PARTITION_COUNT: u32 = 1024;
/// Default number of replicas of every partition.
pub const DEFAULT_REPLICATION_FACTOR: u8 = 3;
/// Largest supported partition count.
pub const MAX_PARTITION_COUNT: u32 = 1 << 16;
/// Largest supported node count (replica entries are `u16` indices into the node list).
pub const MAX_NODE_COUNT: usize = u16::MAX as usize;
/// Tuning stops once every node's load is within this fraction of its target (or within
/// `MIN_LOAD_TOLERANCE_REPLICAS`, whichever is larger).
pub const LOAD_TOLERANCE_RATIO: f64 = 0.01;
/// Absolute load tolerance in replicas, for small targets where 1 % is less than the rounding.
pub const MIN_LOAD_TOLERANCE_REPLICAS: f64 = 2.0;

/// Rounds of weight correction before the best layout seen so far is taken as it is.
const MAX_TUNING_ROUNDS: usize = 40;
/// The correction gain is `1 / (1 + round / this)`: full in round 0, half after this many.
const TUNING_GAIN_HALVING_ROUNDS: f64 = 2.0;
/// An effective weight stays within this factor of the capacity weight, either way.
const MAX_WEIGHT_CORRECTION_FACTOR: f64 = 16.0;
/// Rendezvous keys are cached (8 bytes each) up to this many (partition, node) pairs; larger
/// layouts recompute the hashes in every tuning round instead of holding the table in memory.
const MAX_CACHED_KEY_ENTRIES: usize = 1 << 23;
/// Bisection steps of the water-filling; 200 halvings exhaust an f64 interval.
const WATER_FILL_STEPS: usize = 200;
/// Terms of the `atanh` series in [`ln_open_unit`]; enough for full f64 precision.
const ATANH_SERIES_TERMS: usize = 12;
/// `1 / (2k + 1)` for the terms of the `atanh` series.
const ATANH_SERIES_RECIPROCALS: [f64; ATANH_SERIES_TERMS] = {
    let mut reciprocals = [0.0; ATANH_SERIES_TERMS];
    let mut term = 0;
    while term < ATANH_SERIES_TERMS {
        reciprocals[term] = 1.0 / (2 * term + 1) as f64;
        term += 1;
    }
    reciprocals
};

/// A node as placement sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Stable node identity.
    pub node_id: String,
    /// Failure zone; replicas of one partition are spread over distinct zones.
    pub zone: String,
    /// Relative share of replicas the node should hold (at least 1).
    pub capacity_weight: u32,
}

/// Partition → ordered replica list, with a version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Layout version; the control plane increases it with every new layout.
    pub version: u64,
    /// Number of partitions (a power of two).
    pub partition_count: u32,
    /// Wanted replicas per partition (a partition has fewer when there are fewer nodes).
    pub replication_factor: u8,
    /// Node ids, sorted; `replicas` holds indices into this list.
    pub nodes: Vec<String>,
    /// Partition-major replica indices into `nodes`, `replicas_per_partition()` per partition,
    /// primary first.
    pub replicas: Vec<u16>,
}

/// Why a layout cannot be computed or is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// The partition count is not a power of two in `[1, MAX_PARTITION_COUNT]`.
    #[error("partition count {0} is not a power of two in [1, {MAX_PARTITION_COUNT}]")]
    InvalidPartitionCount(u32),
    /// The replication factor is zero.
    #[error("replication factor must be at least 1")]
    ZeroReplicationFactor,
    /// Two nodes share a node id.
    #[error("duplicate node id {0:?}")]
    DuplicateNodeId(String),
    /// A node has capacity weight zero.
    #[error("node {0:?} has capacity weight 0")]
    ZeroCapacityWeight(String),
    /// More nodes than a replica index can address.
    #[error("{0} nodes exceed the limit of {MAX_NODE_COUNT}")]
    TooManyNodes(usize),
    /// A layout's replica table does not match its partitions and nodes.
    #[error("malformed layout: {0}")]
    MalformedLayout(&'static str),
}

/// The placement hash: the first 8 bytes of SHA-256 of `bytes`, big-endian.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    digest_prefix(Sha256::digest(bytes).as_slice())
}

/// The partition of a hash: its top `log2(partition_count)` bits (0 when there is one partition).
pub fn partition_for_hash(hash: u64, partition_count: u32) -> u32 {
    // `hash × count / 2^64` is exactly `hash >> (64 − log2 count)` for a power of two, needs no
    // special case for one partition, and stays below `count` for any other count.
    ((u128::from(hash) * u128::from(partition_count)) >> 64) as u32
}

/// Computes the layout of `nodes` (in any order) as described in the module documentation.
pub fn compute_layout(
    nodes: &[NodeSpec],
    partition_count: u32,
    replication_factor: u8,
    version: u64,
) -> Result<Layout, PlacementError> {
    check_partition_count(partition_count)?;
    if replication_factor == 0 {
        return Err(PlacementError::ZeroReplicationFactor);
    }
    if nodes.len() > MAX_NODE_COUNT {
        return Err(PlacementError::TooManyNodes(nodes.len()));
    }
    let mut sorted: Vec<&NodeSpec> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    if let Some(pair) = sorted.windows(2).find(|w| w[0].node_id == w[1].node_id) {
        return Err(PlacementError::DuplicateNodeId(pair[0].node_id.clone()));
    }
    if let Some(node) = sorted.iter().find(|n| n.capacity_weight == 0) {
        return Err(PlacementError::ZeroCapacityWeight(node.node_id.clone()));
    }

    let mut layout = Layout {
        version,
        partition_count,
        replication_factor,
        nodes: sorted.iter().map(|n| n.node_id.clone()).collect(),
        replicas: Vec::new(),
    };
    if !sorted.is_empty() {
        layout.replicas = Placement::new(&sorted, partition_count, replication_factor).solve();
    }
    // Cheap, and turns a placement bug into an error instead of a wrong replica set.
    layout.validate()?;
    Ok(layout)
}

impl Layout {
    /// A layout without nodes: version 0, every partition has no replicas.
    pub fn empty(partition_count: u32, replication_factor: u8) -> Layout {
        Layout { version: 0, partition_count, replication_factor, nodes: Vec::new(), replicas: Vec::new() }
    }

    /// The partition a placement key belongs to.
    pub fn partition_of(&self, placement_key: &[u8]) -> u32 {
        partition_for_hash(stable_hash(placement_key), self.partition_count)
    }

    /// Replicas per partition: `min(replication_factor, node count)`.
    pub fn replicas_per_partition(&self) -> usize {
        usize::from(self.replication_factor).min(self.nodes.len())
    }

    /// The replica nodes of `partition`, primary first (none for an unknown partition).
    pub fn replicas(&self, partition: u32) -> impl Iterator<Item = &str> {
        let per_partition = self.replicas_per_partition();
        let indices = if partition < self.partition_count {
            let start = (partition as usize).saturating_mul(per_partition);
            self.replicas.get(start..start.saturating_add(per_partition)).unwrap_or(&[])
        } else {
            &[]
        };
        indices.iter().filter_map(|&index| self.nodes.get(usize::from(index)).map(String::as_str))
    }

    /// Replicas that make a majority: `replicas_per_partition() / 2 + 1`, or 0 without nodes.
    pub fn quorum(&self) -> usize {
        match self.replicas_per_partition() {
            0 => 0,
            replicas => replicas / 2 + 1,
        }
    }

    /// The partitions `node_id` holds a replica of, in ascending order.
    pub fn partitions_of_node(&self, node_id: &str) -> impl Iterator<Item = u32> {
        let index = self.nodes.iter().position(|n| n == node_id);
        let per_partition = self.replicas_per_partition().max(1);
        (0..self.partition_count).filter(move |&partition| {
            let Some(index) = index else { return false };
            let start = (partition as usize).saturating_mul(per_partition);
            self.replicas
                .get(start..start.saturating_add(per_partition))
                .is_some_and(|set| set.iter().any(|&i| usize::from(i) == index))
        })
    }

    /// Checks a layout received from elsewhere: valid parameters, unique node ids, and exactly
    /// `replicas_per_partition()` distinct, in-range node indices for every partition.
    pub fn validate(&self) -> Result<(), PlacementError> {
        check_partition_count(self.partition_count)?;
        if self.replication_factor == 0 {
            return Err(PlacementError::ZeroReplicationFactor);
        }
        if self.nodes.len() > MAX_NODE_COUNT {
            return Err(PlacementError::TooManyNodes(self.nodes.len()));
        }
        let mut ids: Vec<&str> = self.nodes.iter().map(String::as_str).collect();
        ids.sort_unstable();
        if let Some(pair) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(PlacementError::DuplicateNodeId(pair[0].to_owned()));
        }
        let per_partition = self.replicas_per_partition();
        if self.replicas.len() != self.partition_count as usize * per_partition {
            return Err(PlacementError::MalformedLayout(
                "replica table length is not partitions × replicas per partition",
            ));
        }
        if per_partition == 0 {
            return Ok(());
        }
        for set in self.replicas.chunks_exact(per_partition) {
            for (position, &index) in set.iter().enumerate() {
                if usize::from(index) >= self.nodes.len() {
                    return Err(PlacementError::MalformedLayout("replica index out of range"));
                }
                if set[..position].contains(&index) {
                    return Err(PlacementError::MalformedLayout("a node appears twice in one partition"));
                }
            }
        }
        Ok(())
    }
}

fn check_partition_count(partition_count: u32) -> Result<(), PlacementError> {
    if partition_count.is_power_of_two() && partition_count <= MAX_PARTITION_COUNT {
        Ok(())
    } else {
        Err(PlacementError::InvalidPartitionCount(partition_count))
    }
}

fn digest_prefix(digest: &[u8]) -> u64 {
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(prefix)
}

/// `stable_hash(partition as 4 big-endian bytes || node_id)`, without building the buffer.
fn pair_hash(partition: u32, node_id: &str) -> u64 {
    let digest = Sha256::new().chain_update(partition.to_be_bytes()).chain_update(node_id.as_bytes()).finalize();
    digest_prefix(digest.as_slice())
}

/// The weight-independent part of a rendezvous score, `1 / -ln(u)`, with `u` from `hash`.
fn rendezvous_key(hash: u64) -> f64 {
    // 53 bits plus one half: exactly representable and strictly inside (0, 1).
    let unit = ((hash >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
    1.0 / -ln_open_unit(unit)
}

/// Natural logarithm of `x` in (0, 1), from basic IEEE-754 operations only, so that it gives
/// the same bits on every platform (libm's `ln` need not).
fn ln_open_unit(x: f64) -> f64 {
    const MANTISSA_BITS: u64 = (1 << 52) - 1;
    const EXPONENT_BIAS: i64 = 1023;
    let bits = x.to_bits();
    // x = mantissa × 2^exponent with the mantissa in [1, 2); x is normal (at least 2^-54).
    let mut exponent = ((bits >> 52) & 0x7ff) as i64 - EXPONENT_BIAS;
    let mut mantissa = f64::from_bits((bits & MANTISSA_BITS) | ((EXPONENT_BIAS as u64) << 52));
    // Centre the mantissa on 1 so the series below converges fast.
    if mantissa > std::f64::consts::SQRT_2 {
        mantissa /= 2.0;
        exponent += 1;
    }
    // ln(m) = 2 atanh(s) = 2 (s + s³/3 + s⁵/5 + …) with s = (m − 1)/(m + 1), |s| < 0.172.
    let s = (mantissa - 1.0) / (mantissa + 1.0);
    let s_squared = s * s;
    let mut series = 0.0;
    for reciprocal in ATANH_SERIES_RECIPROCALS.iter().rev() {
        series = series * s_squared + reciprocal;
    }
    exponent as f64 * std::f64::consts::LN_2 + 2.0 * s * series
}

/// Everything that stays fixed while the effective weights are tuned.
struct Placement<'a> {
    nodes: &'a [&'a NodeSpec],
    partition_count: u32,
    replicas_per_partition: usize,
    node_zone: Vec<usize>,
    zone_count: usize,
    /// Partition-major rendezvous keys, when the table fits in `MAX_CACHED_KEY_ENTRIES`.
    cached_keys: Option<Vec<f64>>,
}

impl<'a> Placement<'a> {
    fn new(nodes: &'a [&'a NodeSpec], partition_count: u32, replication_factor: u8) -> Self {
        let mut zones: Vec<&str> = nodes.iter().map(|n| n.zone.as_str()).collect();
        zones.sort_unstable();
        zones.dedup();
        let node_zone = nodes.iter().map(|n| zones.binary_search(&n.zone.as_str()).unwrap_or(0)).collect();
        let replicas_per_partition = usize::from(replication_factor).min(nodes.len());
        let entries = (partition_count as usize).saturating_mul(nodes.len());
        let mut placement = Placement {
            nodes,
            partition_count,
            replicas_per_partition,
            node_zone,
            zone_count: zones.len(),
            cached_keys: None,
        };
        if entries <= MAX_CACHED_KEY_ENTRIES {
            let mut keys = vec![0.0; entries];
            for (partition, row) in (0..partition_count).zip(keys.chunks_exact_mut(nodes.len())) {
                placement.fill_keys(partition, row);
            }
            placement.cached_keys = Some(keys);
        }
        placement
    }

    fn fill_keys(&self, partition: u32, row: &mut [f64]) {
        for (key, node) in row.iter_mut().zip(self.nodes) {
            *key = rendezvous_key(pair_hash(partition, &node.node_id));
        }
    }

    /// Tunes the effective weights and returns the replica table closest to the targets.
    fn solve(&self) -> Vec<u16> {
        let targets = self.target_loads();
        let capacity: Vec<f64> = self.nodes.iter().map(|n| f64::from(n.capacity_weight)).collect();
        let mut weights = capacity.clone();
        let mut replicas = Vec::new();
        let mut loads = vec![0u32; self.nodes.len()];
        let mut best: Option<(f64, Vec<u16>)> = None;
        for round in 0..MAX_TUNING_ROUNDS {
            self.assign(&weights, &mut replicas, &mut loads);
            let excess =
                loads.iter().zip(&targets).map(|(&load, &target)| load_excess(load, target)).fold(0.0, f64::max);
            if best.as_ref().is_none_or(|(best_excess, _)| excess < *best_excess) {
                best = Some((excess, replicas.clone()));
            }
            if excess == 0.0 {
                break;
            }
            // Loads are integers, so a constant gain keeps jumping around the targets; a
            // shrinking one lets the weights settle.
            let gain = 1.0 / (1.0 + round as f64 / TUNING_GAIN_HALVING_ROUNDS);
            for ((weight, &load), (&target, &base)) in weights.iter_mut().zip(&loads).zip(targets.iter().zip(&capacity))
            {
                let error = target / f64::from(load).max(0.5) - 1.0;
                let factor = (1.0 + gain * error).clamp(0.5, 2.0);
                *weight =
                    (*weight * factor).clamp(base / MAX_WEIGHT_CORRECTION_FACTOR, base * MAX_WEIGHT_CORRECTION_FACTOR);
            }
        }
        best.map_or(replicas, |(_, replicas)| replicas)
    }

    /// Picks the replicas of every partition for the given effective weights.
    fn assign(&self, weights: &[f64], replicas: &mut Vec<u16>, loads: &mut [u32]) {
        let node_count = self.nodes.len();
        replicas.clear();
        loads.fill(0);
        let mut row = vec![0.0; node_count];
        let mut scores = vec![0.0; node_count];
        let mut buffers = SelectionBuffers::default();
        let mut chosen = Vec::with_capacity(self.replicas_per_partition);
        for partition in 0..self.partition_count {
            let keys: &[f64] = match &self.cached_keys {
                Some(table) => {
                    let start = partition as usize * node_count;
                    &table[start..start + node_count]
                }
                None => {
                    self.fill_keys(partition, &mut row);
                    &row
                }
            };
            for ((score, &key), &weight) in scores.iter_mut().zip(keys).zip(weights) {
                *score = weight * key;
            }
            select_replicas(
                &scores,
                &self.node_zone,
                self.zone_count,
                self.replicas_per_partition,
                &mut buffers,
                &mut chosen,
            );
            for &node in &chosen {
                loads[node] += 1;
                // `node < node_count <= MAX_NODE_COUNT`, checked by `compute_layout`.
                replicas.push(node as u16);
            }
        }
    }

    /// Replicas each node should hold: weight-proportional within the zone rule's bounds.
    fn target_loads(&self) -> Vec<f64> {
        let partitions = f64::from(self.partition_count);
        let total = partitions * self.replicas_per_partition as f64;
        let mut zone_weight = vec![0.0; self.zone_count];
        let mut zone_nodes = vec![0usize; self.zone_count];
        for (node, &zone) in self.nodes.iter().zip(&self.node_zone) {
            zone_weight[zone] += f64::from(node.capacity_weight);
            zone_nodes[zone] += 1;
        }
        let (zone_lower, zone_upper): (Vec<f64>, Vec<f64>) = if self.zone_count >= self.replicas_per_partition {
            // One replica per zone and partition at most.
            (vec![0.0; self.zone_count], vec![partitions; self.zone_count])
        } else {
            // Every zone in every partition, and the spare slots anywhere.
            let most_per_zone = self.replicas_per_partition - self.zone_count + 1;
            let upper = zone_nodes.iter().map(|&count| partitions * count.min(most_per_zone) as f64).collect();
            (vec![partitions; self.zone_count], upper)
        };
        let zone_targets = water_fill(&zone_weight, &zone_lower, &zone_upper, total);

        let mut zone_members: Vec<Vec<usize>> = vec![Vec::new(); self.zone_count];
        for (node, &zone) in self.node_zone.iter().enumerate() {
            zone_members[zone].push(node);
        }
        let mut targets = vec![0.0; self.nodes.len()];
        for (members, &zone_target) in zone_members.iter().zip(&zone_targets) {
            let weights: Vec<f64> = members.iter().map(|&node| f64::from(self.nodes[node].capacity_weight)).collect();
            // A node holds at most one replica per partition.
            let shares = water_fill(&weights, &vec![0.0; members.len()], &vec![partitions; members.len()], zone_target);
            for (&node, share) in members.iter().zip(shares) {
                targets[node] = share;
            }
        }
        targets
    }
}

/// Reusable buffers of [`select_replicas`].
#[derive(Default)]
struct SelectionBuffers {
    /// Best node of each zone so far (`usize::MAX`: none yet) and its score.
    zone_leader: Vec<(usize, f64)>,
    /// Best zone leaders, best first.
    leaders: Vec<usize>,
    /// Best nodes that do not lead their zone, best first.
    followers: Vec<usize>,
}

/// The replicas of one partition (`replicas <= scores.len()`), best first: the leaders (best
/// node of a zone) of the `min(replicas, zone count)` best zones, then, when zones are fewer
/// than replicas, the best other nodes for the remaining slots.
///
/// This is the same set, in the same order, as scanning nodes in descending score and skipping
/// a node whose zone is already used unless the slots left after it still suffice to cover
/// `min(replicas, zone count)` zones.
fn select_replicas(
    scores: &[f64],
    node_zone: &[usize],
    zone_count: usize,
    replicas: usize,
    buffers: &mut SelectionBuffers,
    chosen: &mut Vec<usize>,
) {
    // Higher score first; equal scores (practically never) by lower index, for determinism.
    let better = |a: usize, b: usize| scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
    let leader_slots = replicas.min(zone_count);
    let follower_slots = replicas - leader_slots;
    let SelectionBuffers { zone_leader, leaders, followers } = buffers;
    zone_leader.clear();
    zone_leader.resize(zone_count, (usize::MAX, 0.0));
    leaders.clear();
    followers.clear();
    // Nodes come in index order, so a strict `>` keeps the lower index on equal scores.
    for ((node, &zone), &score) in node_zone.iter().enumerate().zip(scores) {
        let (leader, leader_score) = &mut zone_leader[zone];
        let demoted = if *leader == usize::MAX {
            None
        } else if score > *leader_score {
            Some(*leader)
        } else {
            Some(node)
        };
        if *leader == usize::MAX || score > *leader_score {
            *leader = node;
            *leader_score = score;
        }
        if let Some(follower) = demoted
            && follower_slots > 0
        {
            insert_bounded(followers, follower_slots, follower, better);
        }
    }
    for &(leader, score) in zone_leader.iter() {
        // Cheap rejection first: most zones lose to the current last leader outright.
        let clearly_worse = leaders.len() == leader_slots && leaders.last().is_none_or(|&last| score < scores[last]);
        if leader != usize::MAX && !clearly_worse {
            insert_bounded(leaders, leader_slots, leader, better);
        }
    }
    chosen.clear();
    for &node in leaders.iter().chain(followers.iter()) {
        insert_bounded(chosen, replicas, node, better);
    }
}

/// Inserts `node` into `ranked` (best first, at most `capacity` long) if it ranks high enough.
fn insert_bounded(ranked: &mut Vec<usize>, capacity: usize, node: usize, better: impl Fn(usize, usize) -> bool) {
    if ranked.len() == capacity && ranked.last().is_none_or(|&last| !better(node, last)) {
        return;
    }
    let position = ranked.iter().position(|&other| better(node, other)).unwrap_or(ranked.len());
    ranked.insert(position, node);
    ranked.truncate(capacity);
}

/// How far `load` is outside the tolerance around `target`, relative to the target (0: inside).
fn load_excess(load: u32, target: f64) -> f64 {
    let allowed = (target * LOAD_TOLERANCE_RATIO).max(MIN_LOAD_TOLERANCE_REPLICAS);
    ((f64::from(load) - target).abs() - allowed).max(0.0) / target.max(1.0)
}

/// Splits `total` in proportion to `weights` (all positive), each share clamped to its bounds:
/// finds the level `λ` with `Σ clamp(λ·wᵢ, lowerᵢ, upperᵢ) = total` by bisection.
fn water_fill(weights: &[f64], lower: &[f64], upper: &[f64], total: f64) -> Vec<f64> {
    let share = |level: f64, i: usize| (level * weights[i]).max(lower[i]).min(upper[i]);
    let filled = |level: f64| (0..weights.len()).map(|i| share(level, i)).sum::<f64>();
    let mut low = 0.0;
    // At this level every share sits at its upper bound.
    let mut high = (0..weights.len()).map(|i| upper[i] / weights[i]).fold(0.0, f64::max);
    for _ in 0..WATER_FILL_STEPS {
        let middle = (low + high) / 2.0;
        if filled(middle) < total {
            low = middle;
        } else {
            high = middle;
        }
    }
    (0..weights.len()).map(|i| share(high, i)).collect()
}

#[cfg(test)]
mod tests;
