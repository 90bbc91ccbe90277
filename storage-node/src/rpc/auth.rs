//! Request authentication between Cairn processes.
//!
//! Every request carries `x-cairn-auth: v1:<unix ms>:<hex HMAC-SHA256>` made with the cluster
//! secret over the method, the path and query, the timestamp and every other `x-cairn-*`
//! header. Message bodies are bound to the MAC through `x-cairn-body-sha256`; chunk bodies are
//! bound through the promised length and CRC32C headers, which the chunk store verifies, and
//! the promised SHA-256, which the scrubber proves. A request whose MAC is missing, wrong or
//! older than [`MAX_REQUEST_AGE_MS`] is refused before it can change anything.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};

use super::HEADER_AUTH;

/// How far a request's timestamp may be from the receiver's clock.
pub const MAX_REQUEST_AGE_MS: u64 = 5 * 60 * 1000;

/// Why a request failed authentication.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `x-cairn-auth` header.
    #[error("missing {HEADER_AUTH} header")]
    Missing,
    /// The header is not `v1:<ms>:<hex>`.
    #[error("malformed {HEADER_AUTH} header")]
    Malformed,
    /// The timestamp is too far from now.
    #[error("request timestamp outside the allowed window")]
    Stale,
    /// The MAC does not match.
    #[error("request MAC does not match")]
    BadMac,
}

/// The cluster secret shared by all nodes and gateways.
#[derive(Clone)]
pub struct ClusterSecret(Vec<u8>);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

impl ClusterSecret {
    /// Wraps the secret's bytes.
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Self(secret.as_ref().to_vec())
    }

    fn mac(&self, method: &str, path_and_query: &str, timestamp_ms: u64, headers: &http::HeaderMap) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(b"CAIRN-RPC-1\n");
        mac.update(method.as_bytes());
        mac.update(b"\n");
        mac.update(path_and_query.as_bytes());
        mac.update(b"\n");
        mac.update(timestamp_ms.to_string().as_bytes());
        mac.update(b"\n");
        let mut signed: Vec<(&str, &[u8])> = headers
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("x-cairn-") && name.as_str() != HEADER_AUTH)
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
            .collect();
        signed.sort();
        for (name, value) in signed {
            mac.update(name.as_bytes());
            mac.update(b":");
            mac.update(value);
            mac.update(b"\n");
        }
        mac.finalize().into_bytes().into()
    }

    /// Adds the `x-cairn-auth` header to an outgoing request's headers (all other `x-cairn-*`
    /// headers must already be set).
    pub fn sign(&self, method: &http::Method, path_and_query: &str, headers: &mut http::HeaderMap) {
        let timestamp_ms = now_ms();
        let mac = self.mac(method.as_str(), path_and_query, timestamp_ms, headers);
        let value = format!("v1:{timestamp_ms}:{}", hex::encode(mac));
        headers.insert(HEADER_AUTH, http::HeaderValue::from_str(&value).expect("ASCII header value"));
    }

    /// Checks an incoming request's MAC at the given time.
    pub fn verify(
        &self,
        method: &http::Method,
        path_and_query: &str,
        headers: &http::HeaderMap,
        now_ms: u64,
    ) -> Result<(), AuthError> {
        let value = headers.get(HEADER_AUTH).ok_or(AuthError::Missing)?;
        let value = value.to_str().map_err(|_| AuthError::Malformed)?;
        let mut fields = value.splitn(3, ':');
        let (Some("v1"), Some(ts), Some(given)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(AuthError::Malformed);
        };
        let timestamp_ms: u64 = ts.parse().map_err(|_| AuthError::Malformed)?;
        let given = hex::decode(given).map_err(|_| AuthError::Malformed)?;
        if now_ms.abs_diff(timestamp_ms) > MAX_REQUEST_AGE_MS {
            return Err(AuthError::Stale);
        }
        let expected = self.mac(method.as_str(), path_and_query, timestamp_ms, headers);
        if !constant_time_eq(&expected, &given) {
            return Err(AuthError::BadMac);
        }
        Ok(())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(secret: &ClusterSecret) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-cairn-chunk-len", "5".parse().unwrap());
        headers.insert("content-type", "application/octet-stream".parse().unwrap());
        secret.sign(&http::Method::PUT, "/v1/chunk/ab", &mut headers);
        headers
    }

    #[test]
    fn signed_request_verifies() {
        let secret = ClusterSecret::new("s3cret");
        let headers = signed(&secret);
        assert_eq!(secret.verify(&http::Method::PUT, "/v1/chunk/ab", &headers, now_ms()), Ok(()));
    }

    #[test]
    fn any_change_is_refused() {
        let secret = ClusterSecret::new("s3cret");
        let headers = signed(&secret);
        let now = now_ms();
        assert_eq!(secret.verify(&http::Method::GET, "/v1/chunk/ab", &headers, now), Err(AuthError::BadMac));
        assert_eq!(secret.verify(&http::Method::PUT, "/v1/chunk/ac", &headers, now), Err(AuthError::BadMac));
        let mut changed = headers.clone();
        changed.insert("x-cairn-chunk-len", "6".parse().unwrap());
        assert_eq!(secret.verify(&http::Method::PUT, "/v1/chunk/ab", &changed, now), Err(AuthError::BadMac));
        let other = ClusterSecret::new("other");
        assert_eq!(other.verify(&http::Method::PUT, "/v1/chunk/ab", &headers, now), Err(AuthError::BadMac));
        // Headers outside the x-cairn- namespace are not covered (hop-by-hop rewrites are fine).
        let mut plain = headers.clone();
        plain.insert("content-type", "text/plain".parse().unwrap());
        assert_eq!(secret.verify(&http::Method::PUT, "/v1/chunk/ab", &plain, now), Ok(()));
    }

    #[test]
    fn stale_missing_and_malformed_are_refused() {
        let secret = ClusterSecret::new("s3cret");
        let headers = signed(&secret);
        let later = now_ms() + MAX_REQUEST_AGE_MS + 10_000;
        assert_eq!(secret.verify(&http::Method::PUT, "/v1/chunk/ab", &headers, later), Err(AuthError::Stale));
        assert_eq!(
            secret.verify(&http::Method::PUT, "/v1/chunk/ab", &http::HeaderMap::new(), now_ms()),
            Err(AuthError::Missing)
        );
        let mut bad = http::HeaderMap::new();
        bad.insert(HEADER_AUTH, "v2:1:00".parse().unwrap());
        assert_eq!(secret.verify(&http::Method::PUT, "/v1/chunk/ab", &bad, now_ms()), Err(AuthError::Malformed));
    }
}
