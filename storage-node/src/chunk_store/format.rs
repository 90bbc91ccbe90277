//! Chunk file header, format version 1 (layout documented on the parent module).

use super::{ChunkDigest, ChunkHeader};

/// Size of the fixed header that precedes the payload in every chunk file.
pub const HEADER_LEN: usize = 64;
/// First bytes of every chunk file.
pub const MAGIC: [u8; 8] = *b"CAIRNCHK";
/// Chunk file format version written by this code.
pub const FORMAT_VERSION: u16 = 1;

/// Header bytes covered by the header checksum (everything before it).
const HEADER_CRC_OFFSET: usize = 56;

/// Why a header could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HeaderError {
    /// Fewer than `HEADER_LEN` bytes.
    Short,
    /// The magic bytes are wrong: not a chunk file, or a damaged one.
    BadMagic,
    /// The header checksum does not match the header bytes.
    BadChecksum,
    /// A valid header of a format this code does not read.
    UnsupportedVersion(u16),
}

/// CRC-32C (Castagnoli, also called CRC-32/ISCSI) of `bytes`.
pub(super) fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(bytes)
}

/// A running CRC-32C over bytes that arrive in pieces.
pub(super) fn crc32c_digest() -> crc_fast::Digest {
    crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi)
}

/// Final value of a running CRC-32C.
pub(super) fn crc32c_finish(digest: &crc_fast::Digest) -> u32 {
    // CRC-32 values occupy the low 32 bits of the u64 the crate returns.
    (digest.finalize() & u64::from(u32::MAX)) as u32
}

/// Encodes the version-1 header for a chunk with `digest`.
pub(super) fn encode_header(digest: &ChunkDigest) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[0..8].copy_from_slice(&MAGIC);
    header[8..10].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
    // 10..12 reserved, zero.
    header[12..20].copy_from_slice(&digest.len.to_be_bytes());
    header[20..52].copy_from_slice(&digest.sha256);
    header[52..56].copy_from_slice(&digest.crc32c.to_be_bytes());
    let header_crc = crc32c(&header[..HEADER_CRC_OFFSET]);
    header[56..60].copy_from_slice(&header_crc.to_be_bytes());
    // 60..64 padding, zero.
    header
}

/// Decodes and checks a header from the first `HEADER_LEN` bytes of `bytes`.
pub(super) fn decode_header(bytes: &[u8]) -> Result<ChunkHeader, HeaderError> {
    let header: &[u8; HEADER_LEN] =
        bytes.get(..HEADER_LEN).and_then(|h| h.try_into().ok()).ok_or(HeaderError::Short)?;
    if header[0..8] != MAGIC {
        return Err(HeaderError::BadMagic);
    }
    let stored_crc = u32::from_be_bytes([header[56], header[57], header[58], header[59]]);
    if crc32c(&header[..HEADER_CRC_OFFSET]) != stored_crc {
        return Err(HeaderError::BadChecksum);
    }
    let format_version = u16::from_be_bytes([header[8], header[9]]);
    if format_version != FORMAT_VERSION {
        return Err(HeaderError::UnsupportedVersion(format_version));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&header[12..20]);
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(&header[20..52]);
    let crc32c = u32::from_be_bytes([header[52], header[53], header[54], header[55]]);
    Ok(ChunkHeader { format_version, len: u64::from_be_bytes(len), sha256, crc32c })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ChunkDigest {
        ChunkDigest { len: 0x0102_0304_0506_0708, sha256: [0xab; 32], crc32c: 0xdead_beef }
    }

    #[test]
    fn crc32c_is_castagnoli() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        let mut running = crc32c_digest();
        running.update(b"1234");
        running.update(b"56789");
        assert_eq!(crc32c_finish(&running), 0xe306_9283);
    }

    #[test]
    fn header_round_trips_with_fixed_layout() {
        let header = encode_header(&sample());
        assert_eq!(&header[0..8], b"CAIRNCHK");
        assert_eq!(&header[8..10], &[0, 1]);
        assert_eq!(&header[12..20], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&header[52..56], &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(&header[60..64], &[0, 0, 0, 0]);
        let decoded = decode_header(&header).expect("valid header");
        assert_eq!(decoded.digest(), sample());
        assert_eq!(decoded.format_version, FORMAT_VERSION);
    }

    #[test]
    fn every_covered_header_byte_is_checked() {
        let header = encode_header(&sample());
        for i in 0..60 {
            let mut damaged = header;
            damaged[i] ^= 0x01;
            assert!(decode_header(&damaged).is_err(), "flip at byte {i} accepted");
        }
        assert_eq!(decode_header(&header[..63]), Err(HeaderError::Short));
    }

    #[test]
    fn future_version_is_reported_as_such() {
        let mut header = encode_header(&sample());
        header[8..10].copy_from_slice(&2u16.to_be_bytes());
        let crc = crc32c(&header[..HEADER_CRC_OFFSET]);
        header[56..60].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(decode_header(&header), Err(HeaderError::UnsupportedVersion(2)));
    }
}
