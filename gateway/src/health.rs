//! The cluster's health verdict, from the layout and what this gateway's failure detector
//! sees: `/health/cluster` answers from it, and the admin API shows it with its reasons.

use std::collections::HashMap;

use cairn_storage_node::control::{ClusterState, Consistency};
use cairn_storage_node::failure_detector::{NodeHealth, NodeState};
use cairn_storage_node::placement::Layout;
use serde::{Deserialize, Serialize};

use crate::replication::{read_quorum, write_quorum};

/// How the cluster is, in one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every node of the layout answers and serves.
    Healthy,
    /// Some node is down, rebuilding, short of disk, or data is moving, but every partition
    /// has a quorum of serving replicas: QUORUM reads and writes work.
    Degraded,
    /// Some partition has no quorum of serving replicas (or there are no nodes): QUORUM
    /// requests to it fail.
    Unavailable,
}

impl Verdict {
    /// The verdict as `cairn admin status` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unavailable => "unavailable",
        }
    }
}

/// The verdict and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterHealth {
    /// The verdict.
    pub verdict: Verdict,
    /// What keeps the cluster from being healthy, one sentence each.
    pub reasons: Vec<String>,
    /// Partitions without a quorum of serving replicas.
    pub partitions_below_quorum: u32,
    /// Partitions in the layout.
    pub partitions: u32,
}

/// Whether a node serves reads and writes: it answers and is not rebuilding an emptied disk.
fn serving(health: Option<&NodeHealth>) -> bool {
    // A node not probed yet counts as serving, as the failure detector does.
    health.is_none_or(|h| h.state != NodeState::Down && !h.status.as_ref().is_some_and(|s| s.rebuilding))
}

/// The serving replicas of each partition of `layout`.
fn serving_replicas<'a>(layout: &'a Layout, nodes: &'a HashMap<&str, &NodeHealth>) -> impl Iterator<Item = usize> + 'a {
    (0..layout.partition_count)
        .map(move |partition| layout.replicas(partition).filter(|id| serving(nodes.get(id).copied())).count())
}

/// Partitions of `layout` with fewer serving replicas than a quorum.
fn partitions_below_quorum(layout: &Layout, nodes: &HashMap<&str, &NodeHealth>) -> u32 {
    let quorum = layout.quorum();
    serving_replicas(layout, nodes).filter(|&up| up < quorum).count() as u32
}

/// What a bucket's requests can do at its consistency level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BucketHealth {
    /// Every replica of every partition serves.
    Healthy,
    /// Some replica is missing, but reads and writes at the bucket's level succeed.
    Degraded,
    /// Reads succeed, writes at the bucket's level do not.
    ReadOnly,
    /// Some partition has too few serving replicas even to read.
    Unavailable,
}

impl BucketHealth {
    /// The health as `cairn admin` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::ReadOnly => "read-only",
            Self::Unavailable => "unavailable",
        }
    }

    /// What a bucket at `level` can do when every partition has `serving` of its
    /// `replication_factor` replicas serving (chunks are spread over every partition).
    pub fn at(level: Consistency, serving: usize, replication_factor: usize) -> Self {
        if serving >= replication_factor {
            Self::Healthy
        } else if serving >= write_quorum(replication_factor, level) {
            Self::Degraded
        } else if serving >= read_quorum(replication_factor, level) {
            Self::ReadOnly
        } else {
            Self::Unavailable
        }
    }
}

/// The fewest serving replicas any partition has, in both layouts during a move.
pub fn fewest_serving_replicas(state: &ClusterState, seen: &[NodeHealth]) -> usize {
    let nodes: HashMap<&str, &NodeHealth> = seen.iter().map(|h| (h.node_id.as_str(), h)).collect();
    let fewest = |layout: &Layout| serving_replicas(layout, &nodes).min().unwrap_or(0);
    let current = fewest(&state.layout);
    state.transition.as_ref().map_or(current, |t| current.min(fewest(&t.previous)))
}

/// Judges the cluster from its state and the failure detector's view of every node.
pub fn assess(state: &ClusterState, seen: &[NodeHealth]) -> ClusterHealth {
    let nodes: HashMap<&str, &NodeHealth> = seen.iter().map(|h| (h.node_id.as_str(), h)).collect();
    let mut reasons = Vec::new();
    let partitions = state.layout.partition_count;
    if state.layout.nodes.is_empty() {
        reasons.push("no storage node is in the layout".to_owned());
        return ClusterHealth { verdict: Verdict::Unavailable, reasons, partitions_below_quorum: 0, partitions };
    }
    // During a move, a write needs a quorum in both layouts.
    let mut below = partitions_below_quorum(&state.layout, &nodes);
    if let Some(transition) = &state.transition {
        below = below.max(partitions_below_quorum(&transition.previous, &nodes));
        reasons.push(format!("data is moving from layout {} to {}", transition.previous.version, state.layout.version));
    }
    for node_id in &state.layout.nodes {
        match nodes.get(node_id.as_str()) {
            Some(h) if h.state == NodeState::Down => reasons.push(format!("{node_id} is down")),
            Some(h) if h.status.as_ref().is_some_and(|s| s.rebuilding) => {
                reasons.push(format!("{node_id} is rebuilding its data"));
            }
            Some(h) if h.state == NodeState::Degraded => reasons.push(format!("{node_id} is short of disk space")),
            Some(h) if h.state == NodeState::Recovering => {
                reasons.push(format!("{node_id} is catching up on writes it missed"));
            }
            _ => {}
        }
    }
    let verdict = if below > 0 {
        reasons.insert(0, format!("{below} of {partitions} partitions have no quorum of serving replicas"));
        Verdict::Unavailable
    } else if reasons.is_empty() {
        Verdict::Healthy
    } else {
        Verdict::Degraded
    };
    ClusterHealth { verdict, reasons, partitions_below_quorum: below, partitions }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(nodes: &[&str]) -> ClusterState {
        ClusterState {
            layout: Layout {
                version: 1,
                partition_count: 4,
                replication_factor: 3,
                nodes: nodes.iter().map(|n| n.to_string()).collect(),
                replicas: (0..4).flat_map(|_| 0..nodes.len() as u16).collect(),
            },
            ..ClusterState::default()
        }
    }

    fn seen(node_id: &str, state: NodeState) -> NodeHealth {
        NodeHealth {
            node_id: node_id.into(),
            rpc_addr: String::new(),
            state,
            since_ms: 0,
            failed_probes: 0,
            in_flight: 0,
            last_error: None,
            status: None,
        }
    }

    #[test]
    fn verdicts_follow_the_quorum_of_every_partition() {
        let state = cluster(&["a", "b", "c"]);
        let all_up = [seen("a", NodeState::Healthy), seen("b", NodeState::Healthy), seen("c", NodeState::Healthy)];
        assert_eq!(assess(&state, &all_up).verdict, Verdict::Healthy);

        let one_down = [seen("a", NodeState::Healthy), seen("b", NodeState::Down), seen("c", NodeState::Healthy)];
        let health = assess(&state, &one_down);
        assert_eq!(health.verdict, Verdict::Degraded);
        assert_eq!(health.reasons, vec!["b is down".to_owned()]);

        let two_down = [seen("a", NodeState::Down), seen("b", NodeState::Down), seen("c", NodeState::Healthy)];
        let health = assess(&state, &two_down);
        assert_eq!(health.verdict, Verdict::Unavailable);
        assert_eq!(health.partitions_below_quorum, 4);

        assert_eq!(assess(&cluster(&[]), &[]).verdict, Verdict::Unavailable);
        assert_eq!(fewest_serving_replicas(&state, &two_down), 1);
    }

    #[test]
    fn bucket_health_follows_its_consistency_level() {
        use Consistency::*;
        assert_eq!(BucketHealth::at(Quorum, 3, 3), BucketHealth::Healthy);
        assert_eq!(BucketHealth::at(All, 2, 3), BucketHealth::ReadOnly);
        assert_eq!(BucketHealth::at(Quorum, 2, 3), BucketHealth::Degraded);
        assert_eq!(BucketHealth::at(Quorum, 1, 3), BucketHealth::Unavailable);
        assert_eq!(BucketHealth::at(One, 1, 3), BucketHealth::Degraded);
        assert_eq!(BucketHealth::at(One, 0, 3), BucketHealth::Unavailable);
    }
}
