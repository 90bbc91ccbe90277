//! The read path: every byte returned has passed its header, length and CRC-32C checks.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use bytes::Bytes;

use super::format::{self, HEADER_LEN, HeaderError, decode_header};
use super::{ChunkError, ChunkHeader, ChunkId, MAX_CHUNK_BYTES};

/// Opens a chunk file, mapping a missing file to `NotFound`.
pub(super) fn open_chunk(path: &Path, id: ChunkId) -> Result<File, ChunkError> {
    File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ChunkError::NotFound { id },
        _ => ChunkError::Io(e),
    })
}

/// Reads and checks the header of an open chunk file, including that the file size matches.
pub(super) fn read_header(file: &mut File, id: ChunkId) -> Result<ChunkHeader, ChunkError> {
    let file_len = file.metadata()?.len();
    let mut bytes = [0u8; HEADER_LEN];
    if file_len < HEADER_LEN as u64 {
        return Err(ChunkError::from_header(id, HeaderError::Short));
    }
    file.read_exact(&mut bytes)?;
    let header = decode_header(&bytes).map_err(|e| ChunkError::from_header(id, e))?;
    if header.len.checked_add(HEADER_LEN as u64) != Some(file_len) {
        return Err(ChunkError::Corrupt { id, reason: "file length differs from header length" });
    }
    Ok(header)
}

/// Reads a whole chunk file and checks header, length and payload CRC-32C.
pub(super) fn read_verified(path: &Path, id: ChunkId) -> Result<(ChunkHeader, Bytes), ChunkError> {
    let mut file = open_chunk(path, id)?;
    let header = read_header(&mut file, id)?;
    if header.len > MAX_CHUNK_BYTES {
        return Err(ChunkError::Corrupt { id, reason: "header length exceeds the chunk size limit" });
    }
    let len = usize::try_from(header.len).map_err(io::Error::other)?;
    let mut payload = Vec::with_capacity(len);
    // Chunk files are immutable once named; `take` still bounds a file that grew under us.
    file.take(header.len + 1).read_to_end(&mut payload)?;
    if payload.len() != len {
        return Err(ChunkError::Corrupt { id, reason: "payload length differs from header length" });
    }
    if format::crc32c(&payload) != header.crc32c {
        return Err(ChunkError::Corrupt { id, reason: "payload crc32c mismatch" });
    }
    Ok((header, Bytes::from(payload)))
}
