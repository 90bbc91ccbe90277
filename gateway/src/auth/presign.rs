//! SigV4 presigned GET URLs, what the console hands out to share an object: anyone holding
//! the URL may read that one object until it expires.

use super::canonical::uri_encode;
use super::signing::{derive_signing_key, sha256_hex, sign_hex};
use super::time::format_amz_date;

/// Longest validity of a presigned URL, as in S3 (7 days).
pub const MAX_PRESIGN_SECS: u64 = 7 * 24 * 3600;

/// Who signs a presigned URL and for where.
pub struct Presigner<'a> {
    /// Scheme and authority of the S3 endpoint: `http://127.0.0.1:9000`.
    pub endpoint: &'a str,
    /// The region signatures are scoped to.
    pub region: &'a str,
    /// The access key id that signs.
    pub access_key_id: &'a str,
    /// Its secret.
    pub secret: &'a str,
}

impl Presigner<'_> {
    /// A URL that GETs `key` of `bucket` (path style) for `expires_secs` from `now_secs`.
    pub fn get_object(&self, bucket: &str, key: &str, expires_secs: u64, now_secs: i64) -> String {
        let host = self.endpoint.split_once("://").map_or(self.endpoint, |(_, rest)| rest);
        let path = format!(
            "/{}/{}",
            uri_encode(bucket.as_bytes()),
            key.split('/').map(|s| uri_encode(s.as_bytes())).collect::<Vec<_>>().join("/")
        );
        let timestamp = format_amz_date(now_secs);
        let date = &timestamp[..8];
        let scope = format!("{date}/{}/{}/aws4_request", self.region, super::SERVICE);
        let credential = format!("{}/{scope}", self.access_key_id);
        // Already in canonical (sorted) order.
        let query = format!(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}&X-Amz-Date={timestamp}&X-Amz-Expires={}&X-Amz-SignedHeaders=host",
            uri_encode(credential.as_bytes()),
            expires_secs.min(MAX_PRESIGN_SECS)
        );
        let canonical_request = format!("GET\n{path}\n{query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD");
        let string_to_sign =
            format!("AWS4-HMAC-SHA256\n{timestamp}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()));
        let key = derive_signing_key(self.secret, date, self.region, super::SERVICE);
        format!("{}{path}?{query}&X-Amz-Signature={}", self.endpoint, sign_hex(&key, &string_to_sign))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_urls_verify_with_the_gateways_own_verifier() {
        let presigner = Presigner {
            endpoint: "http://127.0.0.1:9000",
            region: "us-east-1",
            access_key_id: "AKID",
            secret: "secret",
        };
        let now = 1_796_000_000;
        let url = presigner.get_object("photos", "2026/a b+c.jpg", 600, now);
        let uri: http::Uri = url.parse().expect("a URI");
        assert!(uri.path().ends_with("/2026/a%20b%2Bc.jpg"), "{url}");
        let request = http::Request::get(uri).header("host", "127.0.0.1:9000").body(()).expect("request");
        let (parts, ()) = request.into_parts();
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(now as u64 + 10);
        let secret_of = |id: &str| (id == "AKID").then(|| "secret".to_owned());
        let verified = super::super::authenticate(&parts, at, secret_of).expect("verifies");
        assert_eq!(verified.access_key_id, "AKID");
        let late = std::time::UNIX_EPOCH + std::time::Duration::from_secs(now as u64 + 601);
        assert!(super::super::authenticate(&parts, late, secret_of).is_err(), "expired");
    }
}
