//! S3 request authentication: AWS Signature Version 4 (in the `Authorization` header or a
//! presigned query) and the legacy Signature Version 2 (header and presigned query).
//!
//! The verifier sees the request target exactly as received: it never normalises the path and
//! re-encodes every path segment and query component the S3 way before signing, so a request
//! verifies whichever escaping the client chose. Body integrity is not checked here: the
//! returned [`PayloadHash`] says what the signature promised about the body, and the body
//! reader holds the request to it.

pub mod base64;
mod canonical;
pub mod presign;
pub mod signing;
mod sigv2;
mod sigv4;
pub(crate) mod time;

use std::fmt;
use std::time::SystemTime;

use http::header::AUTHORIZATION;
use http::request::Parts;

pub use signing::{chunk_string_to_sign, constant_time_eq, derive_signing_key, sign_hex, trailer_string_to_sign};

/// Largest difference between a request's signing time and the server clock (15 minutes).
pub const MAX_CLOCK_SKEW_SECS: i64 = 900;
/// Longest validity a SigV4 presigned URL may ask for (7 days).
pub const MAX_PRESIGNED_EXPIRES_SECS: i64 = 604_800;
/// The only service name accepted in a SigV4 credential scope.
pub const SERVICE: &str = "s3";

/// What a verified request proved about its body.
#[derive(Clone, PartialEq, Eq)]
pub enum PayloadHash {
    /// The body must hash to this SHA-256.
    Sha256([u8; 32]),
    /// The signature does not cover the body (`UNSIGNED-PAYLOAD`, presigned URLs, SigV2).
    Unsigned,
    /// An `aws-chunked` body whose chunks are signed in a chain starting at the seed signature.
    StreamingSigned {
        /// The request's own signature (lowercase hex), the `previous_signature` of chunk one.
        seed_signature: String,
        /// The derived SigV4 signing key of the request's scope.
        signing_key: [u8; 32],
        /// The credential scope, `YYYYMMDD/region/s3/aws4_request`.
        scope: String,
        /// The request's signing time, `YYYYMMDDTHHMMSSZ`.
        timestamp: String,
        /// Whether a signed trailer follows the final chunk (`...-PAYLOAD-TRAILER`).
        trailer: bool,
    },
    /// An `aws-chunked` body with unsigned chunks and a trailer (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`).
    StreamingUnsignedTrailer,
}

impl fmt::Debug for PayloadHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sha256(digest) => f.debug_tuple("Sha256").field(&hex::encode(digest)).finish(),
            Self::Unsigned => f.write_str("Unsigned"),
            // The signing key is a credential: it never reaches a log.
            Self::StreamingSigned { seed_signature, scope, timestamp, trailer, .. } => f
                .debug_struct("StreamingSigned")
                .field("seed_signature", seed_signature)
                .field("signing_key", &"<redacted>")
                .field("scope", scope)
                .field("timestamp", timestamp)
                .field("trailer", trailer)
                .finish(),
            Self::StreamingUnsignedTrailer => f.write_str("StreamingUnsignedTrailer"),
        }
    }
}

/// Which signature scheme a request was verified with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    /// SigV4 in the `Authorization` header.
    V4Header,
    /// SigV4 presigned query parameters.
    V4Presigned,
    /// SigV2 in the `Authorization` header.
    V2Header,
    /// SigV2 presigned query parameters.
    V2Presigned,
    /// Not signed at all: an anonymous request.
    Anonymous,
}

/// The identity and body promise of a request whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The access key that signed the request.
    pub access_key_id: String,
    /// What the signature says about the body.
    pub payload: PayloadHash,
    /// The region of the SigV4 credential scope; `None` for SigV2.
    pub region: Option<String>,
    /// How the request was signed.
    pub version: SignatureVersion,
}

impl Authenticated {
    /// The identity of a request that carries no signature.
    pub fn anonymous() -> Self {
        Self {
            access_key_id: String::new(),
            payload: PayloadHash::Unsigned,
            region: None,
            version: SignatureVersion::Anonymous,
        }
    }

    /// Whether the request is anonymous.
    pub fn is_anonymous(&self) -> bool {
        self.version == SignatureVersion::Anonymous
    }
}

/// Why a request failed authentication. Messages are the ones S3 sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The request carries no signature at all (an anonymous request).
    #[error("Access Denied")]
    MissingAuth,
    /// The request is signed in more than one way.
    #[error(
        "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified"
    )]
    ConflictingAuth,
    /// The `Authorization` header names a scheme other than SigV4 or SigV2.
    #[error("Unsupported Authorization Type")]
    UnsupportedAuthorizationType,
    /// No secret is known for the access key.
    #[error("The AWS Access Key Id you provided does not exist in our records.")]
    InvalidAccessKeyId,
    /// The signature is not the one the secret produces for this request.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your key and signing method."
    )]
    SignatureDoesNotMatch {
        /// What the server signed, for the error body and the logs.
        string_to_sign: String,
        /// The SigV4 canonical request the string-to-sign hashes (empty for SigV2).
        canonical_request: String,
    },
    /// The signing time is more than [`MAX_CLOCK_SKEW_SECS`] away from the server clock.
    #[error("The difference between the request time and the current time is too large.")]
    RequestTimeTooSkewed,
    /// The presigned URL is past its expiry.
    #[error("Request has expired")]
    ExpiredPresignedUrl,
    /// The presigned URL is signed for a time beyond the allowed clock skew.
    #[error("Request is not yet valid")]
    NotYetValid,
    /// Neither `x-amz-date` nor `Date` holds a valid time.
    #[error("AWS authentication requires a valid Date or x-amz-date header")]
    InvalidDate,
    /// The `Authorization` header cannot be parsed or is inconsistent.
    #[error("The authorization header is malformed; {0}")]
    AuthorizationHeaderMalformed(String),
    /// The presigned query parameters cannot be parsed or are inconsistent.
    #[error("{0}")]
    AuthorizationQueryParametersError(String),
    /// A header-signed SigV4 request lacks `x-amz-content-sha256`.
    #[error("Missing required header for this request: x-amz-content-sha256")]
    MissingContentSha256,
    /// `x-amz-content-sha256` is neither a SHA-256 nor a known payload mode.
    #[error(
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid sha256 value."
    )]
    InvalidContentSha256,
    /// `x-amz-*` headers are present that the signature does not cover (names, comma-separated).
    #[error("There were headers present in the request which were not signed")]
    HeadersNotSigned(String),
}

/// Verifies a path-style (or bucket-less) request's signature at time `now`, looking secrets
/// up by access key id.
pub fn authenticate(
    parts: &Parts,
    now: SystemTime,
    secret_of: impl Fn(&str) -> Option<String>,
) -> Result<Authenticated, AuthError> {
    authenticate_request(parts, None, now, &secret_of)
}

/// Verifies a virtual-hosted-style request whose `Host` names `bucket`; only SigV2 signs the
/// bucket as part of the path, so only SigV2 requests differ from [`authenticate`].
pub fn authenticate_virtual_host(
    parts: &Parts,
    bucket: &str,
    now: SystemTime,
    secret_of: impl Fn(&str) -> Option<String>,
) -> Result<Authenticated, AuthError> {
    authenticate_request(parts, Some(bucket), now, &secret_of)
}

/// Query parameters whose presence makes a request SigV4-presigned.
const V4_QUERY_PARAMS: [&str; 3] = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"];
/// Query parameters whose presence makes a request SigV2-presigned.
const V2_QUERY_PARAMS: [&str; 2] = ["AWSAccessKeyId", "Signature"];

fn authenticate_request(
    parts: &Parts,
    host_bucket: Option<&str>,
    now: SystemTime,
    secret_of: &dyn Fn(&str) -> Option<String>,
) -> Result<Authenticated, AuthError> {
    let now = time::unix_secs(now);
    let query = canonical::parse_query(parts.uri.query().unwrap_or(""));
    let has_param = |names: &[&str]| query.iter().any(|p| names.iter().any(|n| p.name == n.as_bytes()));
    let v4_query = has_param(&V4_QUERY_PARAMS);
    let v2_query = has_param(&V2_QUERY_PARAMS);

    let mut authorizations = parts.headers.get_all(AUTHORIZATION).iter();
    let authorization = authorizations.next();
    if authorizations.next().is_some() {
        return Err(AuthError::AuthorizationHeaderMalformed("more than one Authorization header".to_owned()));
    }

    match authorization {
        Some(_) if v4_query || v2_query => Err(AuthError::ConflictingAuth),
        Some(value) => {
            let value = value.to_str().map_err(|_| AuthError::UnsupportedAuthorizationType)?;
            if let Some(rest) = value.strip_prefix(signing::ALGORITHM)
                && rest.starts_with([' ', '\t'])
            {
                sigv4::verify_header(parts, &query, rest, now, secret_of)
            } else if let Some(rest) = value.strip_prefix("AWS ") {
                sigv2::verify_header(parts, &query, host_bucket, rest, now, secret_of)
            } else {
                Err(AuthError::UnsupportedAuthorizationType)
            }
        }
        None if v4_query && v2_query => Err(AuthError::ConflictingAuth),
        None if v4_query => sigv4::verify_presigned(parts, &query, now, secret_of),
        None if v2_query => sigv2::verify_presigned(parts, &query, host_bucket, now, secret_of),
        None => Err(AuthError::MissingAuth),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_signing_key() {
        let payload = PayloadHash::StreamingSigned {
            seed_signature: "abc".to_owned(),
            signing_key: [0xab; 32],
            scope: "s".to_owned(),
            timestamp: "t".to_owned(),
            trailer: false,
        };
        let shown = format!("{payload:?}");
        assert!(shown.contains("abc") && shown.contains("redacted"), "{shown}");
        assert!(!shown.contains("171") && !shown.contains("abab"), "{shown}");
    }
}
