//! On-disk encoding of a row's value (version 1):
//!
//! | offset | size | field                                  |
//! |-------:|-----:|----------------------------------------|
//! |      0 |    1 | format version, `1`                    |
//! |      1 |   20 | HLC timestamp ([`Timestamp::to_bytes`]) |
//! |     21 |    1 | tombstone: `0` live, `1` tombstone     |
//! |     22 |    n | value bytes, opaque                    |
//!
//! The key is stored as the redb key, unchanged.

use super::{MetaError, Row};
use crate::hlc::Timestamp;

/// Format version of stored row values.
pub const ROW_FORMAT_VERSION: u8 = 1;
/// Bytes an encoded value adds in front of the caller's value.
pub const ROW_OVERHEAD_BYTES: usize = 1 + Timestamp::ENCODED_LEN + 1;

const TOMBSTONE_OFFSET: usize = 1 + Timestamp::ENCODED_LEN;

/// Encodes the stored value of `row`.
pub(super) fn encode_value(row: &Row) -> Vec<u8> {
    let mut out = Vec::with_capacity(ROW_OVERHEAD_BYTES + row.value.len());
    out.push(ROW_FORMAT_VERSION);
    out.extend_from_slice(&row.timestamp.to_bytes());
    out.push(u8::from(row.tombstone));
    out.extend_from_slice(&row.value);
    out
}

/// Decodes only the timestamp of a stored value (the write path needs nothing else).
pub(super) fn decode_timestamp(stored: &[u8]) -> Result<Timestamp, MetaError> {
    let version = *stored.first().ok_or(MetaError::Corrupt { reason: "empty row value" })?;
    if version != ROW_FORMAT_VERSION {
        return Err(MetaError::UnsupportedFormat { version });
    }
    stored
        .get(1..TOMBSTONE_OFFSET)
        .and_then(Timestamp::from_bytes)
        .ok_or(MetaError::Corrupt { reason: "row value shorter than its header" })
}

/// Decodes a stored value back into the row with `key`.
pub(super) fn decode_row(key: Vec<u8>, stored: &[u8]) -> Result<Row, MetaError> {
    let timestamp = decode_timestamp(stored)?;
    let tombstone = match stored.get(TOMBSTONE_OFFSET) {
        Some(0) => false,
        Some(1) => true,
        Some(_) => {
            return Err(MetaError::Corrupt { reason: "invalid tombstone flag" });
        }
        None => {
            return Err(MetaError::Corrupt { reason: "row value shorter than its header" });
        }
    };
    Ok(Row { key, timestamp, tombstone, value: stored.get(ROW_OVERHEAD_BYTES..).unwrap_or_default().to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row {
        Row {
            key: b"k".to_vec(),
            timestamp: Timestamp { physical_ms: 5, logical: 6, origin: 7 },
            tombstone: true,
            value: b"value".to_vec(),
        }
    }

    #[test]
    fn value_round_trips_with_fixed_layout() {
        let encoded = encode_value(&row());
        assert_eq!(encoded.len(), ROW_OVERHEAD_BYTES + 5);
        assert_eq!(encoded[0], 1);
        assert_eq!(&encoded[1..21], &row().timestamp.to_bytes());
        assert_eq!(encoded[21], 1);
        assert_eq!(&encoded[22..], b"value");
        assert_eq!(decode_row(b"k".to_vec(), &encoded).expect("decode"), row());
    }

    #[test]
    fn damaged_values_are_errors() {
        let encoded = encode_value(&row());
        assert!(matches!(decode_row(Vec::new(), &[]), Err(MetaError::Corrupt { .. })));
        assert!(matches!(decode_row(Vec::new(), &encoded[..21]), Err(MetaError::Corrupt { .. })));
        let mut bad_flag = encoded.clone();
        bad_flag[21] = 2;
        assert!(matches!(decode_row(Vec::new(), &bad_flag), Err(MetaError::Corrupt { .. })));
        let mut future = encoded;
        future[0] = 2;
        assert!(matches!(decode_timestamp(&future), Err(MetaError::UnsupportedFormat { version: 2 })));
    }
}
