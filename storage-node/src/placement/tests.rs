use super::*;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

/// Random cases per property test.
const CASES: u64 = 60;
/// Replica slots of the default layout: 1024 partitions × 3.
const DEFAULT_SLOTS: f64 = 1024.0 * 3.0;

/// splitmix64: tiny, seedable, good enough to draw test clusters.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (bound > 0; the modulo bias is irrelevant here).
    fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// `count` distinct random node ids.
fn node_ids(rng: &mut Rng, count: usize) -> Vec<String> {
    let mut ids = BTreeSet::new();
    let mut out = Vec::new();
    while out.len() < count {
        let len = 3 + rng.below(10);
        let id: String = (0..len).map(|_| char::from(b'a' + rng.below(26) as u8)).collect();
        if ids.insert(id.clone()) {
            out.push(id);
        }
    }
    out
}

fn node(id: &str, zone: &str, weight: u32) -> NodeSpec {
    NodeSpec { node_id: id.to_owned(), zone: zone.to_owned(), capacity_weight: weight }
}

/// How equal-weight test clusters spread their nodes over zones.
#[derive(Clone, Copy, Debug)]
enum ZoneScheme {
    /// Every node in its own zone.
    Distinct,
    /// All nodes in one zone.
    Single,
    /// Two nodes per zone; an added node gets a zone of its own.
    Pairs,
    /// Two zones (fewer than the replicas), nodes alternating; an added node joins zone 0.
    TwoZones,
}

const SCHEMES: [ZoneScheme; 4] = [ZoneScheme::Distinct, ZoneScheme::Single, ZoneScheme::Pairs, ZoneScheme::TwoZones];

impl ZoneScheme {
    /// The zone of the `index`-th node of a cluster of `base` nodes (`index == base`: added).
    fn zone(self, index: usize, base: usize) -> String {
        match self {
            ZoneScheme::Distinct => format!("zone-{index}"),
            ZoneScheme::Single => "zone".to_owned(),
            ZoneScheme::Pairs if index < base => format!("zone-{}", index / 2),
            ZoneScheme::Pairs => "zone-extra".to_owned(),
            ZoneScheme::TwoZones if index < base => format!("zone-{}", index % 2),
            ZoneScheme::TwoZones => "zone-0".to_owned(),
        }
    }
}

/// `count` equal-weight nodes with random ids, zoned by `scheme` for a base cluster of `base`.
fn equal_cluster(rng: &mut Rng, count: usize, base: usize, scheme: ZoneScheme) -> Vec<NodeSpec> {
    node_ids(rng, count).iter().enumerate().map(|(i, id)| node(id, &scheme.zone(i, base), 1)).collect()
}

/// Replicas held per node id.
fn loads(layout: &Layout) -> BTreeMap<String, usize> {
    let mut loads: BTreeMap<String, usize> = layout.nodes.iter().map(|id| (id.clone(), 0)).collect();
    for partition in 0..layout.partition_count {
        for id in layout.replicas(partition) {
            *loads.entry(id.to_owned()).or_default() += 1;
        }
    }
    loads
}

/// (partition, node) pairs of `new` that `old` does not have: replicas that must be copied.
fn moved_replicas(old: &Layout, new: &Layout) -> usize {
    let old_pairs: HashSet<(u32, &str)> =
        (0..old.partition_count).flat_map(|p| old.replicas(p).map(move |id| (p, id))).collect();
    (0..new.partition_count)
        .flat_map(|p| new.replicas(p).map(move |id| (p, id)))
        .filter(|pair| !old_pairs.contains(pair))
        .count()
}

fn compute(nodes: &[NodeSpec]) -> Layout {
    compute_layout(nodes, DEFAULT_PARTITION_COUNT, DEFAULT_REPLICATION_FACTOR, 1).expect("valid cluster")
}

// ---------------------------------------------------------------------------------------------
// Hashing and partitioning

#[test]
fn stable_hash_known_answers() {
    // First 8 bytes of SHA-256, big-endian, as computed by Python's hashlib.
    assert_eq!(stable_hash(b""), 0xe3b0_c442_98fc_1c14);
    assert_eq!(stable_hash(b"abc"), 0xba78_16bf_8f01_cfea);
    assert_eq!(stable_hash(b"cairn"), 0x4a99_09a9_516d_02fd);
}

#[test]
fn pair_hash_is_stable_hash_of_partition_then_node_id() {
    assert_eq!(pair_hash(7, "node-a"), 0x0737_e962_eb2a_cc09);
    assert_eq!(pair_hash(0, "n1"), 0xef87_7be7_bc53_3bf0);
    assert_eq!(pair_hash(1023, "storage-7"), 0x3199_fc7f_c394_e810);
    assert_eq!(pair_hash(7, "node-a"), stable_hash(b"\0\0\0\x07node-a"));
}

#[test]
fn rendezvous_key_known_answer() {
    // u = ((h >> 11) + 0.5) / 2^53 = 0.028196894311956544; 1 / -ln(u) per Python's math.log.
    let key = rendezvous_key(0x0737_e962_eb2a_cc09);
    assert!((key - 0.280_226_377_345_932_8).abs() < 1e-15, "{key}");
}

#[test]
fn ln_open_unit_matches_std_ln() {
    let mut rng = Rng(11);
    let extremes = [f64::powi(2.0, -54), 0.5, std::f64::consts::FRAC_1_SQRT_2, 0.999_999, 1.0 - f64::powi(2.0, -53)];
    let random = (0..10_000).map(|_| ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64);
    for x in extremes.into_iter().chain(random) {
        let (ours, std) = (ln_open_unit(x), x.ln());
        assert!((ours - std).abs() <= 4.0 * f64::EPSILON * std.abs(), "ln({x}): {ours} vs {std}");
    }
}

#[test]
fn partition_is_the_top_bits_of_the_hash() {
    let hash = stable_hash(b"abc");
    assert_eq!(partition_for_hash(hash, 1), 0);
    assert_eq!(partition_for_hash(hash, 2), 1);
    assert_eq!(partition_for_hash(hash, 1024), 745);
    assert_eq!(partition_for_hash(hash, 65536), 47736);
    assert_eq!(partition_for_hash(u64::MAX, 1024), 1023);
    assert_eq!(partition_for_hash(1 << 54, 1024), 1);
    assert_eq!(partition_for_hash((1 << 54) - 1, 1024), 0);
    // Not a power of two: still in range, never a panic.
    assert_eq!(partition_for_hash(u64::MAX, 0), 0);
    assert!(partition_for_hash(u64::MAX, 1000) < 1000);

    let mut rng = Rng(5);
    for bits in 0..=16u32 {
        let layout = Layout::empty(1 << bits, 3);
        for _ in 0..50 {
            let key = rng.next_u64().to_be_bytes();
            let expected = if bits == 0 { 0 } else { (stable_hash(&key) >> (64 - bits)) as u32 };
            assert_eq!(layout.partition_of(&key), expected, "bits {bits}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors, edge cases, accessors

#[test]
fn bad_input_is_rejected() {
    let nodes = [node("a", "z1", 1), node("b", "z2", 1)];
    for count in [0, 3, 1000, MAX_PARTITION_COUNT * 2, u32::MAX] {
        assert_eq!(compute_layout(&nodes, count, 3, 1), Err(PlacementError::InvalidPartitionCount(count)));
    }
    assert!(compute_layout(&nodes, MAX_PARTITION_COUNT, 3, 1).is_ok());
    assert_eq!(compute_layout(&nodes, 1024, 0, 1), Err(PlacementError::ZeroReplicationFactor));
    let duplicate = [node("a", "z1", 1), node("b", "z2", 1), node("a", "z3", 2)];
    assert_eq!(compute_layout(&duplicate, 1024, 3, 1), Err(PlacementError::DuplicateNodeId("a".to_owned())));
    let zero_weight = [node("a", "z1", 1), node("b", "z2", 0)];
    assert_eq!(compute_layout(&zero_weight, 1024, 3, 1), Err(PlacementError::ZeroCapacityWeight("b".to_owned())));
    let too_many: Vec<NodeSpec> = (0..=MAX_NODE_COUNT).map(|i| node(&i.to_string(), "z", 1)).collect();
    assert_eq!(compute_layout(&too_many, 1024, 3, 1), Err(PlacementError::TooManyNodes(MAX_NODE_COUNT + 1)));
}

#[test]
fn empty_layout_has_no_replicas() {
    for layout in [Layout::empty(1024, 3), compute_layout(&[], 1024, 3, 9).expect("no nodes is valid")] {
        assert_eq!(layout.replicas_per_partition(), 0);
        assert_eq!(layout.quorum(), 0);
        assert_eq!(layout.replicas(0).count(), 0);
        assert_eq!(layout.partitions_of_node("a").count(), 0);
        assert!(layout.partition_of(b"key") < 1024);
        assert_eq!(layout.validate(), Ok(()));
    }
    assert_eq!(Layout::empty(1024, 3).version, 0);
    assert_eq!(compute_layout(&[], 1024, 3, 9).map(|l| l.version), Ok(9));
}

#[test]
fn single_node_holds_everything_with_quorum_one() {
    let layout = compute_layout(&[node("solo", "z", 5)], 256, 3, 4).expect("valid");
    assert_eq!(layout.version, 4);
    assert_eq!(layout.replicas_per_partition(), 1);
    assert_eq!(layout.quorum(), 1);
    for partition in 0..256 {
        assert_eq!(layout.replicas(partition).collect::<Vec<_>>(), ["solo"]);
    }
    assert_eq!(layout.partitions_of_node("solo").count(), 256);
}

#[test]
fn quorum_is_a_majority_of_the_replicas() {
    let nodes: Vec<NodeSpec> = (0..5).map(|i| node(&format!("n{i}"), &format!("z{i}"), 1)).collect();
    for (node_count, rf, replicas, quorum) in
        [(2, 3, 2, 2), (3, 3, 3, 2), (5, 3, 3, 2), (4, 4, 4, 3), (5, 5, 5, 3), (5, 1, 1, 1)]
    {
        let layout = compute_layout(&nodes[..node_count], 64, rf, 1).expect("valid");
        assert_eq!(layout.replicas_per_partition(), replicas, "{node_count} nodes, rf {rf}");
        assert_eq!(layout.quorum(), quorum, "{node_count} nodes, rf {rf}");
    }
}

#[test]
fn unknown_partition_has_no_replicas() {
    let layout = compute(&[node("a", "z1", 1), node("b", "z2", 1)]);
    assert_eq!(layout.replicas(1023).count(), 2);
    assert_eq!(layout.replicas(1024).count(), 0);
    assert_eq!(layout.replicas(u32::MAX).count(), 0);
}

#[test]
fn validate_rejects_malformed_layouts() {
    let good = compute(&[node("a", "z1", 1), node("b", "z2", 1), node("c", "z3", 1)]);
    assert_eq!(good.validate(), Ok(()));

    let mut short = good.clone();
    short.replicas.pop();
    assert!(matches!(short.validate(), Err(PlacementError::MalformedLayout(_))));
    let mut out_of_range = good.clone();
    out_of_range.replicas[4] = 3;
    assert!(matches!(out_of_range.validate(), Err(PlacementError::MalformedLayout(_))));
    let mut twice = good.clone();
    twice.replicas[1] = twice.replicas[0];
    assert!(matches!(twice.validate(), Err(PlacementError::MalformedLayout(_))));
    let mut duplicate_id = good.clone();
    duplicate_id.nodes[2] = "a".to_owned();
    assert_eq!(duplicate_id.validate(), Err(PlacementError::DuplicateNodeId("a".to_owned())));
    let mut bad_count = good.clone();
    bad_count.partition_count = 1000;
    assert_eq!(bad_count.validate(), Err(PlacementError::InvalidPartitionCount(1000)));
    let mut zero_rf = good;
    zero_rf.replication_factor = 0;
    assert_eq!(zero_rf.validate(), Err(PlacementError::ZeroReplicationFactor));
}

#[test]
fn partitions_of_node_agrees_with_replicas() {
    let mut rng = Rng(21);
    let nodes = equal_cluster(&mut rng, 5, 5, ZoneScheme::Distinct);
    let layout = compute_layout(&nodes, 128, 3, 1).expect("valid");
    for spec in &nodes {
        let held: Vec<u32> = layout.partitions_of_node(&spec.node_id).collect();
        let expected: Vec<u32> = (0..128).filter(|&p| layout.replicas(p).any(|id| id == spec.node_id)).collect();
        assert_eq!(held, expected, "{}", spec.node_id);
    }
    assert_eq!(layout.partitions_of_node("not-a-node").count(), 0);
}

#[test]
fn layout_round_trips_through_serde() {
    let layout =
        compute_layout(&[node("a", "z1", 1), node("b", "z2", 2), node("c", "z1", 1)], 64, 2, 7).expect("valid");
    let json = serde_json::to_string(&layout).expect("serializes");
    let back: Layout = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(back, layout);
    let spec = node("n", "z", 3);
    let back: NodeSpec = serde_json::from_str(&serde_json::to_string(&spec).expect("serializes")).expect("parses");
    assert_eq!(back, spec);
}

#[test]
fn fixed_clusters_have_known_layouts() {
    // Expected sets were computed independently from the module documentation's algorithm
    // (same IEEE-754 operations, outside Rust). Stored layouts are not recomputed, but a changed
    // algorithm would move most replicas at the next membership change.
    let small = [
        node("node-a", "zone-1", 1),
        node("node-b", "zone-2", 1),
        node("node-c", "zone-3", 2),
        node("node-d", "zone-1", 1),
        node("node-e", "zone-2", 1),
    ];
    let layout = compute_layout(&small, 16, 3, 1).expect("valid");
    let expected: [(u32, [&str; 3]); 4] = [
        (0, ["node-b", "node-a", "node-c"]),
        (1, ["node-d", "node-e", "node-c"]),
        (2, ["node-c", "node-e", "node-a"]),
        (3, ["node-a", "node-b", "node-c"]),
    ];
    for (partition, set) in expected {
        assert_eq!(layout.replicas(partition).collect::<Vec<_>>(), set);
    }

    let weighted = [
        node("alpha", "a", 1),
        node("bravo", "b", 1),
        node("charlie", "c", 1),
        node("delta", "a", 3),
        node("echo", "b", 1),
        node("foxtrot", "c", 2),
        node("golf", "d", 1),
    ];
    let layout = compute_layout(&weighted, 256, 3, 1).expect("valid");
    let expected: [(u32, [&str; 3]); 4] = [
        (0, ["foxtrot", "bravo", "delta"]),
        (1, ["foxtrot", "alpha", "golf"]),
        (2, ["bravo", "foxtrot", "delta"]),
        (255, ["foxtrot", "delta", "bravo"]),
    ];
    for (partition, set) in expected {
        assert_eq!(layout.replicas(partition).collect::<Vec<_>>(), set);
    }
}

// ---------------------------------------------------------------------------------------------
// Replica selection

/// The selection rule as documented: scan by descending score, skipping a node of a used zone
/// unless the remaining slots can still cover the missing zones.
fn reference_selection(scores: &[f64], node_zone: &[usize], replicas: usize) -> Vec<usize> {
    let zone_count = node_zone.iter().collect::<BTreeSet<_>>().len();
    let goal = replicas.min(zone_count);
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut chosen: Vec<usize> = Vec::new();
    let mut used = BTreeSet::new();
    for candidate in order {
        if chosen.len() == replicas {
            break;
        }
        let new_zone = !used.contains(&node_zone[candidate]);
        if new_zone || replicas - chosen.len() > goal - used.len() {
            chosen.push(candidate);
            used.insert(node_zone[candidate]);
        }
    }
    chosen
}

#[test]
fn select_replicas_matches_the_documented_scan() {
    let mut buffers = SelectionBuffers::default();
    let mut chosen = Vec::new();
    for seed in 0..2_000 {
        let mut rng = Rng(seed);
        let node_count = 1 + rng.below(12) as usize;
        let zones_drawn = 1 + rng.below(6) as usize;
        // Few distinct score values, so ties occur.
        let scores: Vec<f64> = (0..node_count).map(|_| rng.below(8) as f64).collect();
        let raw_zones: Vec<usize> = (0..node_count).map(|_| rng.below(zones_drawn as u64) as usize).collect();
        // Zone indices must be dense, as `Placement::new` makes them.
        let distinct: Vec<usize> = raw_zones.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
        let node_zone: Vec<usize> = raw_zones.iter().map(|z| distinct.binary_search(z).unwrap_or(0)).collect();
        let replicas = 1 + rng.below(node_count as u64) as usize;
        select_replicas(&scores, &node_zone, distinct.len(), replicas, &mut buffers, &mut chosen);
        assert_eq!(
            chosen,
            reference_selection(&scores, &node_zone, replicas),
            "seed {seed}: scores {scores:?} zones {node_zone:?} replicas {replicas}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Properties over random clusters

#[test]
fn every_partition_has_distinct_replicas_spread_over_zones() {
    for seed in 0..CASES {
        let mut rng = Rng(seed);
        let node_count = 1 + rng.below(12) as usize;
        let zone_names = 1 + rng.below(6);
        let replication_factor = 1 + rng.below(5) as u8;
        let partition_count = *rng.pick(&[1, 2, 64, 256, 1024]);
        let nodes: Vec<NodeSpec> = node_ids(&mut rng, node_count)
            .iter()
            .map(|id| {
                let zone = format!("z{}", rng.below(zone_names));
                node(id, &zone, 1 + rng.below(5) as u32)
            })
            .collect();
        let layout = compute_layout(&nodes, partition_count, replication_factor, seed)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(layout.validate(), Ok(()), "seed {seed}");
        let zone_of: BTreeMap<&str, &str> = nodes.iter().map(|n| (n.node_id.as_str(), n.zone.as_str())).collect();
        let zone_count = zone_of.values().collect::<BTreeSet<_>>().len();
        let replicas = usize::from(replication_factor).min(node_count);
        for partition in 0..partition_count {
            let set: Vec<&str> = layout.replicas(partition).collect();
            assert_eq!(set.len(), replicas, "seed {seed} partition {partition}");
            let distinct: BTreeSet<&str> = set.iter().copied().collect();
            assert_eq!(distinct.len(), replicas, "seed {seed} partition {partition}");
            let zones: BTreeSet<&str> = set.iter().map(|id| zone_of[id]).collect();
            assert_eq!(zones.len(), replicas.min(zone_count), "seed {seed} partition {partition}: {set:?}");
        }
    }
}

#[test]
fn layout_ignores_input_order() {
    for seed in 0..CASES {
        let mut rng = Rng(seed);
        let node_count = 1 + rng.below(16) as usize;
        let mut nodes: Vec<NodeSpec> = node_ids(&mut rng, node_count)
            .iter()
            .map(|id| {
                let zone = format!("z{}", rng.below(4));
                node(id, &zone, 1 + rng.below(4) as u32)
            })
            .collect();
        let first = compute_layout(&nodes, 256, 3, seed).expect("valid");
        rng.shuffle(&mut nodes);
        let second = compute_layout(&nodes, 256, 3, seed).expect("valid");
        assert_eq!(first, second, "seed {seed}");
        let mut sorted = first.nodes.clone();
        sorted.sort();
        assert_eq!(first.nodes, sorted, "seed {seed}: node list is sorted");
    }
}

/// Worst relative deviation from the 384-replica share over 8 equal nodes, for each scheme.
#[test]
fn equal_nodes_hold_equal_shares() {
    let share = DEFAULT_SLOTS / 8.0;
    let mut worst: f64 = 0.0;
    for seed in 0..CASES {
        let scheme = SCHEMES[seed as usize % SCHEMES.len()];
        let mut rng = Rng(1000 + seed);
        let layout = compute(&equal_cluster(&mut rng, 8, 8, scheme));
        for (id, &load) in &loads(&layout) {
            let deviation = (load as f64 - share).abs() / share;
            worst = worst.max(deviation);
            assert!(deviation <= 0.10, "seed {} ({scheme:?}): {id} holds {load}, share {share}", 1000 + seed);
        }
    }
    // Measured worst case is well inside the requirement (see the module docs' tolerance).
    assert!(worst <= 0.03, "worst deviation {worst}");
}

#[test]
fn double_weight_node_holds_twice_as_much() {
    // 8 nodes, one of weight 2: its share is 2/9 of the replicas, the others 1/9 each.
    // Tolerance: every node within ±10 % of its share, so the ratio is within [1.64, 2.44];
    // the ratio to the mean of the others is also checked against ±10 %.
    for seed in 0..CASES {
        let scheme = [ZoneScheme::Distinct, ZoneScheme::Single][seed as usize % 2];
        let mut rng = Rng(2000 + seed);
        let mut nodes = equal_cluster(&mut rng, 8, 8, scheme);
        let heavy = rng.below(8) as usize;
        nodes[heavy].capacity_weight = 2;
        let loads = loads(&compute(&nodes));
        let heavy_load = loads[&nodes[heavy].node_id] as f64;
        let light_mean = (loads.values().sum::<usize>() as f64 - heavy_load) / 7.0;
        for (id, &load) in &loads {
            let share = if *id == nodes[heavy].node_id { 2.0 } else { 1.0 } * DEFAULT_SLOTS / 9.0;
            assert!(
                (load as f64 - share).abs() <= 0.10 * share,
                "seed {} ({scheme:?}): {id} holds {load}, share {share:.1}",
                2000 + seed
            );
        }
        let ratio = heavy_load / light_mean;
        assert!((1.8..=2.2).contains(&ratio), "seed {}: ratio {ratio}", 2000 + seed);
    }
}

#[test]
fn random_weights_give_proportional_shares() {
    // 12–20 nodes of weight 1–4 in 1–5 zones (zones of weight share ≤ 1/3 never cap):
    // every node within ±10 % of its weight's share.
    for seed in 0..CASES {
        let mut rng = Rng(3000 + seed);
        let node_count = 12 + rng.below(9) as usize;
        let zone_names = *rng.pick(&[1, 4, 5, 1000]);
        let nodes: Vec<NodeSpec> = node_ids(&mut rng, node_count)
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let zone = format!("z{}", i as u64 % zone_names);
                node(id, &zone, 1 + rng.below(4) as u32)
            })
            .collect();
        let total_weight: u32 = nodes.iter().map(|n| n.capacity_weight).sum();
        let mut zone_weight: BTreeMap<&str, u32> = BTreeMap::new();
        for n in &nodes {
            *zone_weight.entry(n.zone.as_str()).or_default() += n.capacity_weight;
        }
        if zone_weight.len() >= 3 && zone_weight.values().any(|&w| 3 * w > total_weight) {
            // A zone would need more than one replica per partition: shares are not
            // proportional by design (covered by the zone tests).
            continue;
        }
        let loads = loads(&compute(&nodes));
        for n in &nodes {
            let share = DEFAULT_SLOTS * f64::from(n.capacity_weight) / f64::from(total_weight);
            let load = loads[&n.node_id] as f64;
            assert!(
                (load - share).abs() <= 0.10 * share,
                "seed {}: {} (weight {}) holds {load}, share {share:.1}",
                3000 + seed,
                n.node_id,
                n.capacity_weight
            );
        }
    }
}

#[test]
fn adding_a_ninth_node_moves_about_a_ninth() {
    let bound = 1.3 / 9.0 * DEFAULT_SLOTS;
    let mut worst = 0;
    for seed in 0..CASES {
        let scheme = SCHEMES[seed as usize % SCHEMES.len()];
        let mut rng = Rng(4000 + seed);
        let nodes = equal_cluster(&mut rng, 9, 8, scheme);
        let before = compute(&nodes[..8]);
        let after = compute(&nodes);
        let moved = moved_replicas(&before, &after);
        worst = worst.max(moved);
        assert!(moved as f64 <= bound, "seed {} ({scheme:?}): {moved} replicas moved, bound {bound:.0}", 4000 + seed);
        // Everything the new node holds is new; that alone is about a ninth.
        let gained = after.partitions_of_node(&nodes[8].node_id).count();
        assert!(moved >= gained, "seed {}", 4000 + seed);
    }
    assert!(worst > 0, "adding a node must move something");
}

#[test]
fn removing_a_node_moves_about_its_own_share() {
    // Bound: at most 1.3 × the replicas the removed node held (those must move anyway).
    for seed in 0..CASES {
        let scheme = SCHEMES[seed as usize % SCHEMES.len()];
        let mut rng = Rng(5000 + seed);
        let mut nodes = equal_cluster(&mut rng, 9, 8, scheme);
        let before = compute(&nodes);
        let removed = nodes.remove(rng.below(9) as usize);
        let after = compute(&nodes);
        let own = before.partitions_of_node(&removed.node_id).count();
        let moved = moved_replicas(&before, &after);
        assert!(
            moved >= own && moved as f64 <= 1.3 * own as f64,
            "seed {} ({scheme:?}): removed {} holding {own}, {moved} replicas moved",
            5000 + seed,
            removed.node_id
        );
    }
}

#[test]
fn hundred_nodes_compute_quickly() {
    let mut rng = Rng(77);
    let nodes: Vec<NodeSpec> = node_ids(&mut rng, 100)
        .iter()
        .map(|id| {
            let zone = format!("z{}", rng.below(5));
            node(id, &zone, 1 + rng.below(4) as u32)
        })
        .collect();
    let start = Instant::now();
    let layout = compute(&nodes);
    let elapsed = start.elapsed();
    assert_eq!(layout.nodes.len(), 100);
    // About 20 ms on the reference machine; the slack absorbs parallel tests on 2 cores.
    assert!(elapsed < Duration::from_millis(400), "took {elapsed:?}");
}

#[test]
fn large_layouts_without_the_key_cache_still_work() {
    // 65536 partitions × 130 nodes exceed MAX_CACHED_KEY_ENTRIES: keys are recomputed per round.
    let nodes: Vec<NodeSpec> = (0..130).map(|i| node(&format!("n{i:03}"), &format!("z{}", i % 3), 1)).collect();
    assert!(MAX_PARTITION_COUNT as usize * nodes.len() > MAX_CACHED_KEY_ENTRIES);
    let placement_nodes: Vec<&NodeSpec> = nodes.iter().collect();
    let placement = Placement::new(&placement_nodes, 1 << 16, 3);
    assert!(placement.cached_keys.is_none());
    // One assignment round is enough to check the uncached path.
    let weights = vec![1.0; nodes.len()];
    let (mut replicas, mut loads) = (Vec::new(), vec![0; nodes.len()]);
    placement.assign(&weights, &mut replicas, &mut loads);
    assert_eq!(replicas.len(), 3 << 16);
    assert_eq!(loads.iter().sum::<u32>(), 3 << 16);
}
