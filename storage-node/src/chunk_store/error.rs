//! Errors of the chunk store.

use std::io;
use std::path::PathBuf;

use super::format::HeaderError;
use super::{ChunkId, MAX_CHUNK_BYTES};

/// Errors of the chunk store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// No chunk with this id.
    #[error("chunk {id} not found")]
    NotFound {
        /// The chunk asked for.
        id: ChunkId,
    },
    /// The stored file fails its checks; its bytes must not be served.
    #[error("chunk {id} is corrupt: {reason}")]
    Corrupt {
        /// The damaged chunk.
        id: ChunkId,
        /// Which check failed.
        reason: &'static str,
    },
    /// The received bytes do not match the promised length or CRC-32C; nothing was stored.
    #[error("chunk {id} body does not match its digest: {reason}")]
    DigestMismatch {
        /// The chunk being written.
        id: ChunkId,
        /// Which promise was broken.
        reason: &'static str,
    },
    /// The id is already stored with a different digest.
    #[error("chunk {id} already exists with a different digest")]
    Conflict {
        /// The chunk being written.
        id: ChunkId,
    },
    /// The file has a valid header of a format version this code cannot read.
    #[error("chunk {id} has unsupported format version {version}")]
    UnsupportedFormat {
        /// The chunk read.
        id: ChunkId,
        /// Version found in its header.
        version: u16,
    },
    /// Writing would eat into the disk reserve.
    #[error("insufficient space: {free_bytes} bytes free, {reserve_bytes} reserved")]
    InsufficientSpace {
        /// Free bytes on the file system (before in-flight writes).
        free_bytes: u64,
        /// Configured reserve.
        reserve_bytes: u64,
    },
    /// The promised length exceeds [`MAX_CHUNK_BYTES`].
    #[error("chunk of {len} bytes exceeds the {MAX_CHUNK_BYTES}-byte limit")]
    TooLarge {
        /// Promised length.
        len: u64,
    },
    /// A range read outside the chunk.
    #[error("range {offset}+{len} outside chunk of {chunk_len} bytes")]
    InvalidRange {
        /// Requested start.
        offset: u64,
        /// Requested length.
        len: u64,
        /// Actual chunk length.
        chunk_len: u64,
    },
    /// Another open store holds the root directory's lock.
    #[error("chunk store at {root} is already open")]
    Locked {
        /// The root directory.
        root: PathBuf,
    },
    /// File system error.
    #[error("chunk store i/o: {0}")]
    Io(#[from] io::Error),
    /// The body stream failed.
    #[error("chunk body stream failed: {0}")]
    Body(String),
}

impl ChunkError {
    pub(super) fn from_header(id: ChunkId, error: HeaderError) -> Self {
        match error {
            HeaderError::Short => Self::Corrupt { id, reason: "file shorter than its header" },
            HeaderError::BadMagic => Self::Corrupt { id, reason: "bad magic" },
            HeaderError::BadChecksum => Self::Corrupt { id, reason: "header checksum mismatch" },
            HeaderError::UnsupportedVersion(version) => Self::UnsupportedFormat { id, version },
        }
    }
}
