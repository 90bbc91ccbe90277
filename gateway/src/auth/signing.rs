//! SigV4 key derivation and the string-to-sign shapes shared by requests and signed chunks.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The SigV4 algorithm name, first line of every request string-to-sign.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// First line of the string-to-sign of one signed `aws-chunked` chunk.
pub const CHUNK_ALGORITHM: &str = "AWS4-HMAC-SHA256-PAYLOAD";
/// First line of the string-to-sign of the signed trailer of an `aws-chunked` body.
pub const TRAILER_ALGORITHM: &str = "AWS4-HMAC-SHA256-TRAILER";
/// Lowercase hex SHA-256 of the empty string.
pub const EMPTY_SHA256_HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// HMAC-SHA256 of `data` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of every length (long ones are hashed), so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC-SHA256 accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Lowercase hex SHA-256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The SigV4 signing key: HMAC chain over date (`YYYYMMDD`), region, service and `aws4_request`.
pub fn derive_signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// Lowercase hex signature of a string-to-sign under a derived signing key.
pub fn sign_hex(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac_sha256(signing_key, string_to_sign.as_bytes()))
}

/// The string-to-sign of one signed `aws-chunked` chunk, chained to the previous signature
/// (the seed signature of the request for the first chunk).
pub fn chunk_string_to_sign(timestamp: &str, scope: &str, previous_signature: &str, chunk_sha256: &[u8; 32]) -> String {
    format!(
        "{CHUNK_ALGORITHM}\n{timestamp}\n{scope}\n{previous_signature}\n{EMPTY_SHA256_HEX}\n{}",
        hex::encode(chunk_sha256)
    )
}

/// The string-to-sign of the signed trailer of an `aws-chunked` body; `trailer_sha256` is the
/// SHA-256 of the canonical trailer lines (`name:value\n` each).
pub fn trailer_string_to_sign(
    timestamp: &str,
    scope: &str,
    previous_signature: &str,
    trailer_sha256: &[u8; 32],
) -> String {
    format!("{TRAILER_ALGORITHM}\n{timestamp}\n{scope}\n{previous_signature}\n{}", hex::encode(trailer_sha256))
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_key_matches_aws_documentation() {
        // The worked example of the AWS General Reference ("Deriving the signing key").
        let key = derive_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam");
        assert_eq!(hex::encode(key), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
    }

    #[test]
    fn chunk_signatures_match_s3_streaming_example() {
        // The example of the S3 API reference on `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: a 66560
        // byte object of 'a' sent as a 65536 byte chunk, a 1024 byte chunk and the final one.
        let key = derive_signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3");
        let scope = "20130524/us-east-1/s3/aws4_request";
        let timestamp = "20130524T000000Z";
        let mut previous = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9".to_owned();
        let expected = [
            (65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
            (1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
            (0, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
        ];
        for (len, signature) in expected {
            let chunk = vec![b'a'; len];
            let digest: [u8; 32] = Sha256::digest(&chunk).into();
            let sts = chunk_string_to_sign(timestamp, scope, &previous, &digest);
            previous = sign_hex(&key, &sts);
            assert_eq!(previous, signature, "chunk of {len} bytes");
        }
    }

    #[test]
    fn trailer_string_to_sign_shape() {
        let digest: [u8; 32] = Sha256::digest(b"x-amz-checksum-crc32:sOO8/Q==\n").into();
        let sts = trailer_string_to_sign("20130524T000000Z", "s/c/o/pe", "prev", &digest);
        let lines: Vec<&str> = sts.split('\n').collect();
        assert_eq!(lines[..4], ["AWS4-HMAC-SHA256-TRAILER", "20130524T000000Z", "s/c/o/pe", "prev"]);
        assert_eq!(lines[4], sha256_hex(b"x-amz-checksum-crc32:sOO8/Q==\n"));
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"xbc", b"abc"));
    }

    #[test]
    fn empty_hash_constant_is_right() {
        assert_eq!(sha256_hex(b""), EMPTY_SHA256_HEX);
    }
}
