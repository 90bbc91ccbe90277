//! Where chunk files live: fan-out directories, the temp directory, and keeping directory
//! entries durable.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};

use super::ChunkId;
use super::inventory::Inventory;

/// Directory (under the root) where chunk files are written before they get their final name.
pub(super) const TMP_DIR_NAME: &str = "tmp";
/// Suffix of temp files, so cleanup only ever removes files this code created.
pub(super) const TMP_SUFFIX: &str = ".tmp";
/// Directory (under the root) where copies that failed verification are set aside.
pub(super) const QUARANTINE_DIR_NAME: &str = "quarantine";
/// File whose advisory lock marks the root as owned by one open store.
pub(super) const LOCK_FILE_NAME: &str = "LOCK";

/// SHA-256 of a chunk's id bytes: its fan-out directories and its inventory entry.
pub(super) fn id_hash(id: &ChunkId) -> [u8; 32] {
    Sha256::digest(id.placement_key()).into()
}

/// The two fan-out directory bytes of a chunk: the first two bytes of SHA-256(id bytes).
pub(super) fn fan_out(id: &ChunkId) -> [u8; 2] {
    let hash = id_hash(id);
    [hash[0], hash[1]]
}

/// The directory of a fan-out leaf (`0..LEAF_COUNT`).
pub(super) fn leaf_path(root: &Path, leaf: usize) -> PathBuf {
    root.join(format!("{:02x}", (leaf >> 8) & 0xff)).join(format!("{:02x}", leaf & 0xff))
}

/// The chunk ids in one leaf directory, in id order (none if it does not exist).
pub(super) fn leaf_ids(root: &Path, leaf: usize) -> io::Result<Vec<ChunkId>> {
    let entries = match fs::read_dir(leaf_path(root, leaf)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut ids = Vec::new();
    for entry in entries {
        if let Some(id) = entry?.file_name().to_str().and_then(ChunkId::from_hex) {
            ids.push(id);
        }
    }
    ids.sort_by_key(ChunkId::placement_key);
    Ok(ids)
}

/// Final path of a chunk file: `root/<2 hex>/<2 hex>/<48 hex id>`.
pub(super) fn chunk_path(root: &Path, id: &ChunkId) -> PathBuf {
    let [a, b] = fan_out(id);
    root.join(format!("{a:02x}")).join(format!("{b:02x}")).join(id.to_hex())
}

/// Parses a fan-out directory name (exactly two lowercase hex digits).
fn parse_fan_out_name(name: &str) -> Option<u8> {
    let value = u8::from_str_radix(name, 16).ok()?;
    (format!("{value:02x}") == name).then_some(value)
}

/// Makes the directory entries written so far under `dir` durable.
pub(super) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` if missing; true when this call created it.
fn create_dir_if_missing(dir: &Path) -> io::Result<bool> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Which fan-out directories are known to exist durably (their entry in the parent was
/// fsynced), so the parent is fsynced once per directory rather than on every put.
pub(super) struct DurableDirs {
    first: [AtomicU64; 256 / 64],
    second: Box<[AtomicU64]>,
}

impl DurableDirs {
    /// Nothing known yet.
    pub(super) fn new() -> Self {
        Self {
            first: std::array::from_fn(|_| AtomicU64::new(0)),
            second: (0..(256 * 256 / 64)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn test(bits: &[AtomicU64], index: usize) -> bool {
        bits.get(index / 64).is_some_and(|word| word.load(Ordering::Acquire) & (1 << (index % 64)) != 0)
    }

    fn set(bits: &[AtomicU64], index: usize) {
        if let Some(word) = bits.get(index / 64) {
            word.fetch_or(1 << (index % 64), Ordering::Release);
        }
    }

    fn mark(&self, [a, b]: [u8; 2]) {
        Self::set(&self.first, usize::from(a));
        Self::set(&self.second, usize::from(a) * 256 + usize::from(b));
    }

    /// Ensures `root/<a>/<b>` exists and its entries up to `root` are durable. A directory is
    /// marked known only after the fsync that made it durable, so no caller can skip ahead of a
    /// concurrent creator.
    pub(super) fn ensure(&self, root: &Path, fan: [u8; 2]) -> io::Result<PathBuf> {
        let [a, b] = fan;
        let first = root.join(format!("{a:02x}"));
        let leaf = first.join(format!("{b:02x}"));
        if Self::test(&self.second, usize::from(a) * 256 + usize::from(b)) {
            return Ok(leaf);
        }
        if !Self::test(&self.first, usize::from(a)) {
            create_dir_if_missing(&first)?;
            fsync_dir(root)?;
            Self::set(&self.first, usize::from(a));
        }
        create_dir_if_missing(&leaf)?;
        fsync_dir(&first)?;
        self.mark(fan);
        Ok(leaf)
    }
}

/// Chunk files found on disk at open.
#[derive(Debug, Default)]
pub(super) struct ScanTotals {
    pub(super) chunk_count: u64,
    pub(super) used_bytes: u64,
}

/// Counts chunk files under `root` and makes every existing fan-out directory durable (a crash
/// of the previous process may have left entries only in the page cache), recording them in
/// `dirs`.
pub(super) fn scan(root: &Path, dirs: &DurableDirs, inventory: &Inventory) -> io::Result<ScanTotals> {
    let mut totals = ScanTotals::default();
    for first in fs::read_dir(root)? {
        let first = first?;
        let Some(a) = first.file_name().to_str().and_then(parse_fan_out_name) else {
            continue;
        };
        if !first.file_type()?.is_dir() {
            continue;
        }
        for second in fs::read_dir(first.path())? {
            let second = second?;
            let Some(b) = second.file_name().to_str().and_then(parse_fan_out_name) else {
                continue;
            };
            if !second.file_type()?.is_dir() {
                continue;
            }
            for file in fs::read_dir(second.path())? {
                let file = file?;
                let Some(id) = file.file_name().to_str().and_then(ChunkId::from_hex) else { continue };
                let metadata = file.metadata()?;
                if metadata.is_file() {
                    totals.chunk_count += 1;
                    totals.used_bytes += metadata.len();
                    inventory.toggle(&id_hash(&id), true, metadata.len());
                }
            }
            dirs.mark([a, b]);
        }
        fsync_dir(&first.path())?;
    }
    fsync_dir(root)?;
    Ok(totals)
}

/// Removes temp files left by writes that never finished (a crash or a cancelled put).
pub(super) fn clean_tmp(tmp_dir: &Path) -> io::Result<u64> {
    let mut removed = 0;
    for entry in fs::read_dir(tmp_dir)? {
        let entry = entry?;
        let is_tmp = entry.file_name().to_str().is_some_and(|name| name.ends_with(TMP_SUFFIX));
        if is_tmp && entry.file_type()?.is_file() {
            match fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_out_names_are_two_lowercase_hex_digits() {
        assert_eq!(parse_fan_out_name("00"), Some(0));
        assert_eq!(parse_fan_out_name("a7"), Some(0xa7));
        assert_eq!(parse_fan_out_name("A7"), None);
        assert_eq!(parse_fan_out_name("7"), None);
        assert_eq!(parse_fan_out_name("tmp"), None);
        assert_eq!(parse_fan_out_name("+7"), None);
    }

    #[test]
    fn fan_out_is_sha256_of_the_id_bytes() {
        let id = ChunkId { chunk_set: uuid::Uuid::nil(), part: 0, index: 0 };
        let expected = Sha256::digest([0u8; 24]);
        assert_eq!(fan_out(&id), [expected[0], expected[1]]);
        let path = chunk_path(Path::new("/r"), &id);
        let expected_path = format!("/r/{:02x}/{:02x}/{}", expected[0], expected[1], "0".repeat(48));
        assert_eq!(path, PathBuf::from(expected_path));
    }
}
