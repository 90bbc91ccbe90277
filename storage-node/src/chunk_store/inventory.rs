//! Which chunk ids a store holds, summarised per fan-out leaf directory so that two replicas
//! can compare what they hold without listing it.
//!
//! A leaf's summary is its chunk count and the XOR of SHA-256(id bytes) over its chunks: adding
//! and removing a chunk both toggle the same bits, so the summary is kept current at every put
//! and delete without rereading the leaf, and two leaves with the same ids have the same
//! summary whatever the order they were written in.
//!
//! The leaf of a chunk is the first 16 bits of SHA-256(id bytes), and a partition is the first
//! `log2(partition_count)` bits of the same hash ([`crate::placement::stable_hash`]): every
//! partition owns a contiguous range of leaves ([`leaves_of_partition`]).

use std::ops::Range;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Number of fan-out leaf directories (`<aa>/<bb>`).
pub const LEAF_COUNT: usize = 256 * 256;

/// The summary of the chunk ids under one leaf directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafSummary {
    /// Chunks in the leaf.
    pub count: u64,
    /// Bytes of their files (headers included), for progress estimates.
    #[serde(default)]
    pub bytes: u64,
    /// XOR of SHA-256(id bytes) over the leaf's chunks.
    #[serde(with = "hex_bytes")]
    pub xor: [u8; 32],
}

impl LeafSummary {
    fn toggle(&mut self, id_hash: &[u8; 32], added: bool, bytes: u64) {
        if added {
            self.count += 1;
            self.bytes += bytes;
        } else {
            self.count = self.count.saturating_sub(1);
            self.bytes = self.bytes.saturating_sub(bytes);
        }
        for (bit, byte) in self.xor.iter_mut().zip(id_hash) {
            *bit ^= byte;
        }
    }

    /// The summary of several leaves together (a partition's).
    pub fn combine(summaries: &[LeafSummary]) -> LeafSummary {
        let mut total = LeafSummary::default();
        for summary in summaries {
            total.count += summary.count;
            total.bytes += summary.bytes;
            for (bit, byte) in total.xor.iter_mut().zip(summary.xor) {
                *bit ^= byte;
            }
        }
        total
    }
}

/// The leaf directories holding a partition's chunks, for `partition_count` a power of two no
/// larger than [`LEAF_COUNT`].
pub fn leaves_of_partition(partition: u32, partition_count: u32) -> Range<usize> {
    let per_partition = LEAF_COUNT / (partition_count.max(1) as usize).min(LEAF_COUNT);
    let start = partition as usize * per_partition;
    start.min(LEAF_COUNT)..(start + per_partition).min(LEAF_COUNT)
}

/// Per-leaf summaries of a store, kept in memory (2 MiB) and rebuilt at open.
pub(super) struct Inventory {
    leaves: Mutex<Box<[LeafSummary]>>,
}

impl Inventory {
    pub(super) fn new() -> Self {
        Self { leaves: Mutex::new(vec![LeafSummary::default(); LEAF_COUNT].into_boxed_slice()) }
    }

    /// Records that the chunk whose id hashes to `id_hash` was added (or removed).
    pub(super) fn toggle(&self, id_hash: &[u8; 32], added: bool, bytes: u64) {
        let leaf = usize::from(id_hash[0]) << 8 | usize::from(id_hash[1]);
        let mut leaves = self.leaves.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        leaves[leaf].toggle(id_hash, added, bytes);
    }

    /// One summary per partition, for `partition_count` partitions (a power of two up to
    /// [`LEAF_COUNT`]), combined under the lock without copying every leaf out.
    pub(super) fn partition_summaries(&self, partition_count: u32) -> Vec<LeafSummary> {
        let leaves = self.leaves.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let per_partition = LEAF_COUNT / (partition_count.max(1) as usize).min(LEAF_COUNT);
        leaves.chunks(per_partition).map(LeafSummary::combine).collect()
    }

    /// The summaries of `range` (clamped to the leaves that exist).
    pub(super) fn summaries(&self, range: Range<usize>) -> Vec<LeafSummary> {
        let leaves = self.leaves.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let end = range.end.min(LEAF_COUNT);
        leaves[range.start.min(end)..end].to_vec()
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = hex::decode(text).map_err(serde::de::Error::custom)?;
        <[u8; 32]>::try_from(bytes).map_err(|_| serde::de::Error::custom("expected 32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk_store::ChunkId;
    use crate::placement::{partition_for_hash, stable_hash};
    use sha2::{Digest as _, Sha256};

    #[test]
    fn a_chunk_leaf_lies_in_its_partition_range() {
        for count in [1, 2, 16, 1024, 65_536] {
            for index in 0..200 {
                let id = ChunkId { chunk_set: uuid::Uuid::from_u128(0xfeed_0000 + index), part: 1, index: 3 };
                let hash: [u8; 32] = Sha256::digest(id.placement_key()).into();
                let leaf = usize::from(hash[0]) << 8 | usize::from(hash[1]);
                let partition = partition_for_hash(stable_hash(&id.placement_key()), count);
                assert!(leaves_of_partition(partition, count).contains(&leaf), "count {count}");
            }
        }
    }

    #[test]
    fn summaries_depend_on_the_set_not_the_order() {
        let hashes: Vec<[u8; 32]> = (0u8..5).map(|i| Sha256::digest([i]).into()).collect();
        let (a, b) = (Inventory::new(), Inventory::new());
        for hash in &hashes {
            a.toggle(hash, true, 10);
        }
        for hash in hashes.iter().rev() {
            b.toggle(hash, true, 10);
        }
        assert_eq!(a.summaries(0..LEAF_COUNT), b.summaries(0..LEAF_COUNT));
        b.toggle(&hashes[2], false, 10);
        assert_ne!(a.summaries(0..LEAF_COUNT), b.summaries(0..LEAF_COUNT));
        b.toggle(&hashes[2], true, 10);
        assert_eq!(LeafSummary::combine(&a.summaries(0..LEAF_COUNT)).count, 5);
        assert_eq!(a.summaries(0..LEAF_COUNT), b.summaries(0..LEAF_COUNT));
    }
}
