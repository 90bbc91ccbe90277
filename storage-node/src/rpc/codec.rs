//! Binary encoding of metadata rows on the wire.
//!
//! Format v1: a version byte (`1`), a `u32` row count, then per row: `u32` key length, key,
//! 20-byte timestamp, tombstone byte, `u32` value length, value. Integers are big-endian.
//! Decoding checks every length against the remaining input, so a truncated or hostile body
//! is an error, never a panic or an over-allocation.

use crate::hlc::Timestamp;
use crate::meta_store::Row;

const FORMAT_VERSION: u8 = 1;

/// Why a row batch could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    /// Input ended early, carried a bad field or trailing bytes.
    #[error("malformed row batch: {0}")]
    Malformed(&'static str),
}

/// Encodes rows for the wire.
pub fn encode_rows(rows: &[Row]) -> Vec<u8> {
    let size: usize = rows.iter().map(|r| 4 + r.key.len() + Timestamp::ENCODED_LEN + 1 + 4 + r.value.len()).sum();
    let mut out = Vec::with_capacity(5 + size);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&(rows.len() as u32).to_be_bytes());
    for row in rows {
        out.extend_from_slice(&(row.key.len() as u32).to_be_bytes());
        out.extend_from_slice(&row.key);
        out.extend_from_slice(&row.timestamp.to_bytes());
        out.push(u8::from(row.tombstone));
        out.extend_from_slice(&(row.value.len() as u32).to_be_bytes());
        out.extend_from_slice(&row.value);
    }
    out
}

/// Decodes rows from the wire.
pub fn decode_rows(mut input: &[u8]) -> Result<Vec<Row>, CodecError> {
    if take(&mut input, 1)? != [FORMAT_VERSION] {
        return Err(CodecError::Malformed("unknown format version"));
    }
    let count = take_u32(&mut input)? as usize;
    // Each row takes at least 29 bytes, which bounds the allocation by the input size.
    if count > input.len() / 29 + 1 {
        return Err(CodecError::Malformed("row count exceeds input"));
    }
    let mut rows = Vec::with_capacity(count);
    for _ in 0..count {
        let key_len = take_u32(&mut input)? as usize;
        let key = take(&mut input, key_len)?.to_vec();
        let timestamp = Timestamp::from_bytes(take(&mut input, Timestamp::ENCODED_LEN)?)
            .ok_or(CodecError::Malformed("timestamp"))?;
        let tombstone = match take(&mut input, 1)? {
            [0] => false,
            [1] => true,
            _ => return Err(CodecError::Malformed("tombstone flag")),
        };
        let value_len = take_u32(&mut input)? as usize;
        let value = take(&mut input, value_len)?.to_vec();
        rows.push(Row { key, timestamp, tombstone, value });
    }
    if !input.is_empty() {
        return Err(CodecError::Malformed("trailing bytes"));
    }
    Ok(rows)
}

/// Encodes the per-row "applied" answers of a metadata put.
pub fn encode_applied(applied: &[bool]) -> Vec<u8> {
    applied.iter().map(|&a| u8::from(a)).collect()
}

/// Decodes the per-row "applied" answers of a metadata put.
pub fn decode_applied(input: &[u8]) -> Result<Vec<bool>, CodecError> {
    input
        .iter()
        .map(|b| match b {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(CodecError::Malformed("applied flag")),
        })
        .collect()
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], CodecError> {
    if input.len() < n {
        return Err(CodecError::Malformed("truncated"));
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

fn take_u32(input: &mut &[u8]) -> Result<u32, CodecError> {
    let bytes = take(input, 4)?;
    Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &[u8], value: &[u8], tombstone: bool) -> Row {
        Row {
            key: key.to_vec(),
            timestamp: Timestamp { physical_ms: 1_700_000_000_000, logical: 7, origin: 42 },
            tombstone,
            value: value.to_vec(),
        }
    }

    #[test]
    fn rows_round_trip() {
        let rows = vec![row(b"a", b"", false), row(b"", b"xyz", true), row(&[0xff; 300], &[0; 70_000], false)];
        assert_eq!(decode_rows(&encode_rows(&rows)).unwrap(), rows);
        assert_eq!(decode_rows(&encode_rows(&[])).unwrap(), vec![]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let encoded = encode_rows(&[row(b"key", b"value", false), row(b"k2", b"v2", true)]);
        for cut in 0..encoded.len() {
            assert!(decode_rows(&encoded[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = encoded.clone();
        longer.push(0);
        assert!(decode_rows(&longer).is_err());
    }

    #[test]
    fn hostile_counts_do_not_allocate() {
        let mut input = vec![FORMAT_VERSION];
        input.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_rows(&input).is_err());
    }

    #[test]
    fn applied_flags_round_trip() {
        let flags = vec![true, false, true];
        assert_eq!(decode_applied(&encode_applied(&flags)).unwrap(), flags);
        assert!(decode_applied(&[2]).is_err());
    }
}
