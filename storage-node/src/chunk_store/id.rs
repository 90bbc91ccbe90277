//! Chunk identity and its encodings.

use serde::{Deserialize, Serialize};

/// Length of [`ChunkId::placement_key`] and of the id's byte encoding.
pub const CHUNK_ID_BYTES: usize = 24;

/// Identity of a chunk: the chunk set (UUID of a PUT or of one UploadPart attempt), part number, index in the part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChunkId {
    /// UUID of the PUT or of one UploadPart attempt that wrote the chunk.
    pub chunk_set: uuid::Uuid,
    /// Part number (0 for a single-part object).
    pub part: u32,
    /// Index of the chunk within its part.
    pub index: u32,
}

impl ChunkId {
    /// The 24 id bytes in lowercase hex (48 characters); also the chunk's file name.
    pub fn to_hex(&self) -> String {
        hex::encode(self.placement_key())
    }

    /// Parses [`ChunkId::to_hex`]; only the canonical lowercase form is accepted, so one id has
    /// one file name.
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != CHUNK_ID_BYTES * 2 || text.bytes().any(|c| c.is_ascii_uppercase()) {
            return None;
        }
        let mut bytes = [0u8; CHUNK_ID_BYTES];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self::from_bytes(&bytes))
    }

    /// The id as bytes: chunk set UUID, part (u32 BE), index (u32 BE); sorts like `Ord`.
    pub fn placement_key(&self) -> [u8; CHUNK_ID_BYTES] {
        let mut key = [0u8; CHUNK_ID_BYTES];
        key[0..16].copy_from_slice(self.chunk_set.as_bytes());
        key[16..20].copy_from_slice(&self.part.to_be_bytes());
        key[20..24].copy_from_slice(&self.index.to_be_bytes());
        key
    }

    /// Decodes [`ChunkId::placement_key`].
    pub fn from_bytes(bytes: &[u8; CHUNK_ID_BYTES]) -> Self {
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&bytes[0..16]);
        Self {
            chunk_set: uuid::Uuid::from_bytes(uuid),
            part: u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]),
            index: u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]),
        }
    }
}

impl std::fmt::Display for ChunkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}
