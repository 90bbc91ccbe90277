//! Chunk files on a node's data disk.
//!
//! # Layout
//!
//! ```text
//! root/LOCK                      advisory lock: one open store per root
//! root/tmp/<uuid>.tmp            writes in progress (removed at open)
//! root/quarantine/<id>.<ms>      copies that failed verification, set aside by the scrubber
//! root/<aa>/<bb>/<48-hex id>     chunk files
//! ```
//!
//! `aa` and `bb` are the first two bytes of SHA-256 of the 24 id bytes (see
//! [`ChunkId::placement_key`]), in lowercase hex: 65 536 leaf directories, evenly filled
//! whatever the ids look like. The id is the chunk set UUID, part and index, big-endian.
//!
//! # Chunk file format, version 1
//!
//! A fixed 64-byte header, then the payload. All integers big-endian.
//!
//! | offset | size | field                                           |
//! |-------:|-----:|-------------------------------------------------|
//! |      0 |    8 | magic `b"CAIRNCHK"`                             |
//! |      8 |    2 | format version, `1`                             |
//! |     10 |    2 | reserved, zero                                  |
//! |     12 |    8 | payload length in bytes                         |
//! |     20 |   32 | SHA-256 of the payload (the writer's promise)   |
//! |     52 |    4 | CRC-32C of the payload                          |
//! |     56 |    4 | CRC-32C of header bytes 0..56                   |
//! |     60 |    4 | padding, zero, not checked                      |
//! |     64 |  len | payload                                         |
//!
//! A file is valid when the magic and header checksum match, the version is known, the file is
//! exactly `64 + len` bytes and the payload's CRC-32C matches. Every read checks all of that and
//! returns [`ChunkError::Corrupt`] instead of bytes otherwise. The SHA-256 is not recomputed on
//! writes or reads (about 25 times the cost of CRC-32C); the scrubber proves it with
//! [`ChunkStore::verify_sha256`].
//!
//! # Write protocol
//!
//! 1. Refuse if the disk's free bytes minus the chunk (and writes already in flight) would fall
//!    below the reserve.
//! 2. Write the header (from the promised digest) and then the body as it arrives into
//!    `root/tmp/<uuid>.tmp`, counting bytes and computing CRC-32C.
//! 3. If the length or CRC-32C differ from the promise, delete the temp file: nothing is stored.
//! 4. fsync the file; create the fan-out directories if needed (fsyncing their parents the first
//!    time); hard-link the temp file to its final name, which fails rather than replaces if the
//!    name exists; fsync the leaf directory; remove the temp name.
//!
//! A chunk is therefore visible under its final name only complete and durable. Putting an id
//! that exists with the same digest succeeds without writing; with a different digest it fails
//! with [`ChunkError::Conflict`].

mod error;
mod format;
mod id;
mod inventory;
mod layout;
mod read;
#[cfg(test)]
mod tests;
mod write;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub use error::ChunkError;
pub use format::{FORMAT_VERSION, HEADER_LEN, MAGIC};
pub use id::{CHUNK_ID_BYTES, ChunkId};
use inventory::Inventory;
pub use inventory::{LEAF_COUNT, LeafSummary, leaves_of_partition};
use layout::{DurableDirs, LOCK_FILE_NAME, QUARANTINE_DIR_NAME, TMP_DIR_NAME, chunk_path, id_hash};
use read::{open_chunk, read_header, read_verified};

/// Largest chunk payload the store accepts.
pub const MAX_CHUNK_BYTES: u64 = 64 * 1024 * 1024;

/// What the writer promises about a chunk; the store verifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChunkDigest {
    /// Payload length in bytes.
    pub len: u64,
    /// SHA-256 of the payload: the chunk's identity in the manifest.
    pub sha256: [u8; 32],
    /// CRC-32C of the payload, checked on every write and read.
    pub crc32c: u32,
}

impl ChunkDigest {
    /// Computes the digest of `payload` (SHA-256 included, so not for hot paths).
    pub fn of(payload: &[u8]) -> Self {
        Self { len: payload.len() as u64, sha256: Sha256::digest(payload).into(), crc32c: format::crc32c(payload) }
    }
}

/// A chunk file's decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkHeader {
    /// Format version of the file.
    pub format_version: u16,
    /// Payload length in bytes.
    pub len: u64,
    /// SHA-256 the writer promised.
    pub sha256: [u8; 32],
    /// CRC-32C of the payload.
    pub crc32c: u32,
}

impl ChunkHeader {
    /// The digest recorded in the header.
    pub fn digest(&self) -> ChunkDigest {
        ChunkDigest { len: self.len, sha256: self.sha256, crc32c: self.crc32c }
    }
}

/// What [`ChunkStore::quarantine`] set aside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quarantined {
    /// The digest the bad copy's header still proved, if its header was intact.
    pub digest: Option<ChunkDigest>,
}

/// Chunk counts and disk space, for capacity reports and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreUsage {
    /// Chunk files in the store.
    pub chunk_count: u64,
    /// Bytes of chunk files (headers included).
    pub used_bytes: u64,
    /// Size of the file system holding the store.
    pub capacity_bytes: u64,
    /// Bytes available to this process on that file system.
    pub free_bytes: u64,
    /// Free bytes that writes must leave untouched.
    pub reserve_bytes: u64,
    /// Inodes of that file system.
    pub inodes: u64,
    /// Inodes available to this process on it.
    pub free_inodes: u64,
}

/// Runs blocking file work off the async executor.
async fn blocking<T, F>(work: F) -> Result<T, ChunkError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ChunkError> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|e| ChunkError::Io(io::Error::other(e)))?
}

/// Chunk files under one root directory. Cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct ChunkStore {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    tmp_dir: PathBuf,
    reserve_bytes: u64,
    chunk_count: AtomicU64,
    used_bytes: AtomicU64,
    /// Bytes promised by puts in progress, counted against free space.
    in_flight_bytes: AtomicU64,
    dirs: DurableDirs,
    /// Per-leaf summaries of the ids held, for anti-entropy.
    inventory: Inventory,
    /// Held for the store's lifetime; the lock is released when the file closes.
    _lock: Flock<File>,
}

impl std::fmt::Debug for ChunkStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkStore")
            .field("root", &self.inner.root)
            .field("reserve_bytes", &self.inner.reserve_bytes)
            .finish_non_exhaustive()
    }
}

/// Free and total bytes and inodes of the file system holding `path`.
pub(super) struct DiskSpace {
    pub(super) free: u64,
    capacity: u64,
    free_inodes: u64,
    inodes: u64,
}

fn disk_space(path: &Path) -> Result<DiskSpace, ChunkError> {
    let stats = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
    let fragment = stats.fragment_size();
    Ok(DiskSpace {
        free: stats.blocks_available().saturating_mul(fragment),
        capacity: stats.blocks().saturating_mul(fragment),
        free_inodes: stats.files_available(),
        inodes: stats.files(),
    })
}

impl Inner {
    /// Updates the counters and the inventory after a chunk file left its name.
    fn forget(&self, id: &ChunkId, file_len: u64) {
        self.chunk_count.fetch_sub(1, Ordering::Relaxed);
        self.used_bytes.fetch_sub(file_len, Ordering::Relaxed);
        self.inventory.toggle(&id_hash(id), false, file_len);
    }
}

impl ChunkStore {
    /// Opens (creating if needed) the store at `root`, refusing writes that would leave fewer
    /// than `reserve_bytes` free. Takes the root's lock, removes stale temp files and scans the
    /// existing chunks to initialise usage counters: blocking, call it at startup.
    pub fn open(root: &Path, reserve_bytes: u64) -> Result<Self, ChunkError> {
        fs::create_dir_all(root)?;
        let lock_file = OpenOptions::new().create(true).truncate(false).write(true).open(root.join(LOCK_FILE_NAME))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock)
            .map_err(|_| ChunkError::Locked { root: root.to_path_buf() })?;
        let tmp_dir = root.join(TMP_DIR_NAME);
        fs::create_dir_all(&tmp_dir)?;
        let removed = layout::clean_tmp(&tmp_dir)?;
        if removed > 0 {
            tracing::info!(removed, root = %root.display(), "removed unfinished chunk writes");
        }
        let dirs = DurableDirs::new();
        let inventory = Inventory::new();
        let totals = layout::scan(root, &dirs, &inventory)?;
        Ok(Self {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                tmp_dir,
                reserve_bytes,
                chunk_count: AtomicU64::new(totals.chunk_count),
                used_bytes: AtomicU64::new(totals.used_bytes),
                in_flight_bytes: AtomicU64::new(0),
                dirs,
                inventory,
                _lock: lock,
            }),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The whole chunk payload, CRC-32C verified before returning.
    pub async fn get(&self, id: ChunkId) -> Result<Bytes, ChunkError> {
        let path = chunk_path(&self.inner.root, &id);
        blocking(move || read_verified(&path, id).map(|(_, payload)| payload)).await
    }

    /// The whole chunk with its header, CRC-32C verified before returning.
    pub async fn get_with_header(&self, id: ChunkId) -> Result<(ChunkHeader, Bytes), ChunkError> {
        let path = chunk_path(&self.inner.root, &id);
        blocking(move || read_verified(&path, id)).await
    }

    /// `len` bytes from `offset`, sliced from the verified whole chunk.
    pub async fn get_range(&self, id: ChunkId, offset: u64, len: u64) -> Result<Bytes, ChunkError> {
        let payload = self.get(id).await?;
        let chunk_len = payload.len() as u64;
        let invalid = ChunkError::InvalidRange { offset, len, chunk_len };
        let end = match offset.checked_add(len) {
            Some(end) if end <= chunk_len => end,
            _ => return Err(invalid),
        };
        // Both bounds are ≤ the payload length, which fits in usize.
        let (Ok(start), Ok(end)) = (usize::try_from(offset), usize::try_from(end)) else {
            return Err(invalid);
        };
        Ok(payload.slice(start..end))
    }

    /// The chunk's header (length, SHA-256, CRC-32C), checked but without reading the payload.
    pub async fn head(&self, id: ChunkId) -> Result<ChunkHeader, ChunkError> {
        let path = chunk_path(&self.inner.root, &id);
        blocking(move || read_header(&mut open_chunk(&path, id)?, id)).await
    }

    /// Deletes a chunk durably; false if it did not exist.
    pub async fn delete(&self, id: ChunkId) -> Result<bool, ChunkError> {
        let inner = self.inner.clone();
        blocking(move || {
            let path = chunk_path(&inner.root, &id);
            let file_len = match fs::symlink_metadata(&path) {
                Ok(metadata) => metadata.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e.into()),
            };
            match fs::remove_file(&path) {
                Ok(()) => {}
                // A concurrent delete won.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e.into()),
            }
            inner.forget(&id, file_len);
            if let Some(dir) = path.parent() {
                layout::fsync_dir(dir)?;
            }
            Ok(true)
        })
        .await
    }

    /// Moves a chunk that failed verification aside, under `quarantine/<id>.<unix ms>`, so that
    /// a good copy can take its name while the bad one stays available for inspection. Returns
    /// the digest its header still proves, if the header is intact, or `None` if there was no
    /// such chunk.
    pub async fn quarantine(&self, id: ChunkId) -> Result<Option<Quarantined>, ChunkError> {
        let inner = self.inner.clone();
        blocking(move || {
            let path = chunk_path(&inner.root, &id);
            let header = match open_chunk(&path, id) {
                Ok(mut file) => read_header(&mut file, id).ok(),
                Err(ChunkError::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            let file_len = fs::symlink_metadata(&path)?.len();
            let dir = inner.root.join(QUARANTINE_DIR_NAME);
            fs::create_dir_all(&dir)?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let aside = dir.join(format!("{}.{}", id.to_hex(), now.as_millis()));
            match fs::rename(&path, &aside) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.into()),
            }
            inner.forget(&id, file_len);
            layout::fsync_dir(&dir)?;
            if let Some(leaf) = path.parent() {
                layout::fsync_dir(leaf)?;
            }
            Ok(Some(Quarantined { digest: header.map(|h| h.digest()) }))
        })
        .await
    }

    /// Removes quarantined copies set aside more than `keep` ago; returns how many.
    pub async fn purge_quarantine(&self, keep: std::time::Duration) -> Result<u64, ChunkError> {
        let dir = self.inner.root.join(QUARANTINE_DIR_NAME);
        blocking(move || {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(e.into()),
            };
            let mut removed = 0;
            for entry in entries {
                let entry = entry?;
                let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
                if age > keep {
                    fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
    }

    /// The ids stored in one fan-out leaf (`0..LEAF_COUNT`), in id order.
    pub async fn leaf_ids(&self, leaf: usize) -> Result<Vec<ChunkId>, ChunkError> {
        let root = self.inner.root.clone();
        blocking(move || Ok(layout::leaf_ids(&root, leaf)?)).await
    }

    /// The summaries of the ids held in a range of leaves (see [`LeafSummary`]).
    pub fn leaf_summaries(&self, leaves: std::ops::Range<usize>) -> Vec<LeafSummary> {
        self.inner.inventory.summaries(leaves)
    }

    /// The summary of the ids held in each partition, for `partition_count` partitions (a
    /// power of two up to [`LEAF_COUNT`]).
    pub fn partition_summaries(&self, partition_count: u32) -> Vec<LeafSummary> {
        self.inner.inventory.partition_summaries(partition_count)
    }

    /// The fan-out leaf a chunk lives in.
    pub fn leaf_of(id: &ChunkId) -> usize {
        let hash = id_hash(id);
        usize::from(hash[0]) << 8 | usize::from(hash[1])
    }

    /// Chunk count and bytes (kept in memory) with the file system's capacity and free space.
    pub fn usage(&self) -> Result<StoreUsage, ChunkError> {
        let disk = disk_space(&self.inner.root)?;
        Ok(StoreUsage {
            chunk_count: self.inner.chunk_count.load(Ordering::Relaxed),
            used_bytes: self.inner.used_bytes.load(Ordering::Relaxed),
            capacity_bytes: disk.capacity,
            free_bytes: disk.free,
            reserve_bytes: self.inner.reserve_bytes,
            inodes: disk.inodes,
            free_inodes: disk.free_inodes,
        })
    }

    /// Full proof of the chunk: CRC-32C and length as on every read, plus SHA-256 of the payload
    /// against the header. For the scrubber.
    pub async fn verify_sha256(&self, id: ChunkId) -> Result<ChunkHeader, ChunkError> {
        let path = chunk_path(&self.inner.root, &id);
        blocking(move || {
            let (header, payload) = read_verified(&path, id)?;
            let actual: [u8; 32] = Sha256::digest(&payload).into();
            if actual != header.sha256 {
                return Err(ChunkError::Corrupt { id, reason: "payload sha256 mismatch" });
            }
            Ok(header)
        })
        .await
    }
}
