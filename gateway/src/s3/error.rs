//! S3 errors: the one place where failures become S3 XML with a code and an HTTP status.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

use super::aws_chunked::ChunkedError;
use crate::auth::AuthError;
use crate::replication::ReplicationError;

/// Every error the S3 API answers with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3Error {
    /// Anonymous access where it is not allowed, or an expired presigned URL.
    #[error("{0}")]
    AccessDenied(String),
    /// The signature does not match.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your key and signing method."
    )]
    SignatureDoesNotMatch,
    /// The access key is unknown.
    #[error("The AWS Access Key Id you provided does not exist in our records.")]
    InvalidAccessKeyId,
    /// The request time is too far from the server's.
    #[error("The difference between the request time and the server's time is too large.")]
    RequestTimeTooSkewed,
    /// The Authorization header is malformed.
    #[error("{0}")]
    AuthorizationHeaderMalformed(String),
    /// Presigned query parameters are malformed.
    #[error("{0}")]
    AuthorizationQueryParametersError(String),
    /// The bucket does not exist.
    #[error("The specified bucket does not exist")]
    NoSuchBucket,
    /// The key does not exist.
    #[error("The specified key does not exist.")]
    NoSuchKey,
    /// The version does not exist (an unversioned bucket holds only `null`).
    #[error("The specified version does not exist.")]
    NoSuchVersion,
    /// The multipart upload does not exist.
    #[error(
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
    )]
    NoSuchUpload,
    /// Somebody else owns the bucket name.
    #[error("The requested bucket name is not available.")]
    BucketAlreadyExists,
    /// The caller already owns the bucket.
    #[error("Your previous request to create the named bucket succeeded and you already own it.")]
    BucketAlreadyOwnedByYou,
    /// The bucket still holds objects.
    #[error("The bucket you tried to delete is not empty")]
    BucketNotEmpty,
    /// The bucket name breaks S3's naming rules.
    #[error("The specified bucket is not valid.")]
    InvalidBucketName,
    /// A request argument is invalid.
    #[error("{0}")]
    InvalidArgument(String),
    /// The request is invalid as a whole.
    #[error("{0}")]
    InvalidRequest(String),
    /// A CORS preflight that no rule of the bucket allows.
    #[error("{0}")]
    CorsForbidden(String),
    /// The bucket has no CORS configuration.
    #[error("The CORS configuration does not exist")]
    NoSuchCorsConfiguration,
    /// The bucket has no tags.
    #[error("The TagSet does not exist")]
    NoSuchTagSet,
    /// A tag set breaks S3's tagging rules.
    #[error("{0}")]
    InvalidTag(String),
    /// The requested part does not exist.
    #[error("The requested partnumber is not satisfiable")]
    InvalidPartNumber,
    /// The requested range cannot be satisfied.
    #[error("The requested range is not satisfiable")]
    InvalidRange,
    /// The request body is not the XML the operation expects.
    #[error("The XML you provided was not well-formed or did not validate against our published schema.")]
    MalformedXml,
    /// The key is longer than S3 allows.
    #[error("Your key is too long")]
    KeyTooLongError,
    /// User metadata exceeds its limit.
    #[error("Your metadata headers exceed the maximum allowed metadata size.")]
    MetadataTooLarge,
    /// The body exceeds the size limit of the operation.
    #[error("Your proposed upload exceeds the maximum allowed object size.")]
    EntityTooLarge,
    /// A part other than the last is under the minimum size.
    #[error("Your proposed upload is smaller than the minimum allowed object size.")]
    EntityTooSmall,
    /// A listed part was not uploaded or its ETag differs.
    #[error(
        "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
    )]
    InvalidPart,
    /// The listed parts are not in ascending order.
    #[error("The list of parts was not in ascending order. Parts must be ordered by part number.")]
    InvalidPartOrder,
    /// The body does not match the digest the client sent.
    #[error("The Content-MD5 or checksum value that you specified did not match what the server received.")]
    BadDigest,
    /// `Content-MD5` is not a base64 MD5.
    #[error("The Content-MD5 you specified was invalid.")]
    InvalidDigest,
    /// A condition of the request (`If-Match`, `If-None-Match`, ...) does not hold.
    #[error("At least one of the pre-conditions you specified did not hold")]
    PreconditionFailed,
    /// `x-amz-content-sha256` does not match the body.
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    XAmzContentSha256Mismatch,
    /// The body ended before `Content-Length` bytes.
    #[error("You did not provide the number of bytes specified by the Content-Length HTTP header.")]
    IncompleteBody,
    /// A PUT without a length.
    #[error("You must provide the Content-Length HTTP header.")]
    MissingContentLength,
    /// The operation exists in S3 but not in Cairn yet.
    #[error("{0} is not implemented")]
    NotImplemented(String),
    /// The method is not allowed on this resource.
    #[error("The specified method is not allowed against this resource.")]
    MethodNotAllowed,
    /// Not enough replicas answered for the bucket's consistency level.
    #[error("Please reduce your request rate.")]
    SlowDown,
    /// The cluster cannot serve the request now.
    #[error("The service is unavailable. Please retry.")]
    ServiceUnavailable,
    /// Anything unexpected; details are only in the log.
    #[error("We encountered an internal error. Please try again.")]
    InternalError,
}

impl S3Error {
    /// The S3 error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AccessDenied(_) => "AccessDenied",
            Self::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            Self::InvalidAccessKeyId => "InvalidAccessKeyId",
            Self::RequestTimeTooSkewed => "RequestTimeTooSkewed",
            Self::AuthorizationHeaderMalformed(_) => "AuthorizationHeaderMalformed",
            Self::AuthorizationQueryParametersError(_) => "AuthorizationQueryParametersError",
            Self::NoSuchBucket => "NoSuchBucket",
            Self::NoSuchKey => "NoSuchKey",
            Self::NoSuchUpload => "NoSuchUpload",
            Self::NoSuchVersion => "NoSuchVersion",
            Self::BucketAlreadyExists => "BucketAlreadyExists",
            Self::BucketAlreadyOwnedByYou => "BucketAlreadyOwnedByYou",
            Self::BucketNotEmpty => "BucketNotEmpty",
            Self::InvalidBucketName => "InvalidBucketName",
            Self::InvalidArgument(_) => "InvalidArgument",
            Self::InvalidRequest(_) => "InvalidRequest",
            Self::InvalidRange => "InvalidRange",
            Self::InvalidPartNumber => "InvalidPartNumber",
            Self::InvalidTag(_) => "InvalidTag",
            Self::CorsForbidden(_) => "AccessForbidden",
            Self::NoSuchCorsConfiguration => "NoSuchCORSConfiguration",
            Self::NoSuchTagSet => "NoSuchTagSet",
            Self::MalformedXml => "MalformedXML",
            Self::KeyTooLongError => "KeyTooLongError",
            Self::MetadataTooLarge => "MetadataTooLarge",
            Self::EntityTooLarge => "EntityTooLarge",
            Self::EntityTooSmall => "EntityTooSmall",
            Self::InvalidPart => "InvalidPart",
            Self::InvalidPartOrder => "InvalidPartOrder",
            Self::BadDigest => "BadDigest",
            Self::InvalidDigest => "InvalidDigest",
            Self::PreconditionFailed => "PreconditionFailed",
            Self::XAmzContentSha256Mismatch => "XAmzContentSHA256Mismatch",
            Self::IncompleteBody => "IncompleteBody",
            Self::MissingContentLength => "MissingContentLength",
            Self::NotImplemented(_) => "NotImplemented",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::SlowDown => "SlowDown",
            Self::ServiceUnavailable => "ServiceUnavailable",
            Self::InternalError => "InternalError",
        }
    }

    /// Whether the request was refused for its credentials, its signature or its permissions
    /// (counted in `cairn_s3_auth_failures_total`).
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            Self::AccessDenied(_)
                | Self::SignatureDoesNotMatch
                | Self::InvalidAccessKeyId
                | Self::RequestTimeTooSkewed
                | Self::AuthorizationHeaderMalformed(_)
                | Self::AuthorizationQueryParametersError(_)
        )
    }

    /// The HTTP status S3 answers this error with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::AccessDenied(_)
            | Self::SignatureDoesNotMatch
            | Self::InvalidAccessKeyId
            | Self::RequestTimeTooSkewed
            | Self::CorsForbidden(_) => StatusCode::FORBIDDEN,
            Self::NoSuchBucket
            | Self::NoSuchKey
            | Self::NoSuchUpload
            | Self::NoSuchVersion
            | Self::NoSuchCorsConfiguration
            | Self::NoSuchTagSet => StatusCode::NOT_FOUND,
            Self::BucketAlreadyExists | Self::BucketAlreadyOwnedByYou | Self::BucketNotEmpty => StatusCode::CONFLICT,
            Self::InvalidRange | Self::InvalidPartNumber => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::MissingContentLength => StatusCode::LENGTH_REQUIRED,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::SlowDown | Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// Renders the error for the request that caused it.
    pub fn into_response_for(self, resource: &str, request_id: &str) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(code = self.code(), %resource, %request_id, "request failed");
        }
        let mut body = String::from(crate::s3::xml::DECLARATION);
        body.push_str("<Error><Code>");
        body.push_str(self.code());
        body.push_str("</Code><Message>");
        crate::s3::xml::escape_into(&mut body, &self.to_string());
        body.push_str("</Message><Resource>");
        crate::s3::xml::escape_into(&mut body, resource);
        body.push_str("</Resource><RequestId>");
        body.push_str(request_id);
        body.push_str("</RequestId></Error>");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
        if let Ok(id) = HeaderValue::from_str(request_id) {
            headers.insert("x-amz-request-id", id);
        }
        response
    }
}

impl From<AuthError> for S3Error {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::MissingAuth => Self::AccessDenied("Access Denied".into()),
            AuthError::InvalidAccessKeyId => Self::InvalidAccessKeyId,
            AuthError::SignatureDoesNotMatch { canonical_request, .. } => {
                tracing::debug!(%canonical_request, "signature mismatch");
                Self::SignatureDoesNotMatch
            }
            AuthError::RequestTimeTooSkewed => Self::RequestTimeTooSkewed,
            AuthError::ExpiredPresignedUrl => Self::AccessDenied("Request has expired".into()),
            AuthError::NotYetValid => Self::AccessDenied("Request is not yet valid".into()),
            AuthError::InvalidDate | AuthError::HeadersNotSigned(_) => Self::AccessDenied(e.to_string()),
            AuthError::AuthorizationHeaderMalformed(m) => Self::AuthorizationHeaderMalformed(m),
            AuthError::AuthorizationQueryParametersError(m) => Self::AuthorizationQueryParametersError(m),
            AuthError::MissingContentSha256 => Self::InvalidRequest(e.to_string()),
            other => Self::InvalidArgument(other.to_string()),
        }
    }
}

impl From<ChunkedError> for S3Error {
    fn from(e: ChunkedError) -> Self {
        match e {
            ChunkedError::SignatureDoesNotMatch => Self::SignatureDoesNotMatch,
            ChunkedError::TooLarge | ChunkedError::ChunkTooLarge => Self::EntityTooLarge,
            ChunkedError::LengthMismatch { .. } | ChunkedError::Incomplete | ChunkedError::Body(_) => {
                Self::IncompleteBody
            }
            other => Self::InvalidRequest(format!("malformed aws-chunked body: {other}")),
        }
    }
}

impl From<ReplicationError> for S3Error {
    fn from(e: ReplicationError) -> Self {
        match e {
            ReplicationError::QuorumNotMet { .. }
            | ReplicationError::NoReplicas
            | ReplicationError::Superseded { .. } => {
                tracing::warn!(error = %e, "quorum not met");
                Self::ServiceUnavailable
            }
            ReplicationError::ChunkUnavailable { .. } => {
                tracing::error!(error = %e, "chunk unreadable on every replica");
                Self::ServiceUnavailable
            }
            ReplicationError::Corrupt(_) => {
                tracing::error!(error = %e, "undecodable metadata");
                Self::InternalError
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_failures_map_to_s3_codes_and_statuses() {
        let cases = [
            (AuthError::MissingAuth, "AccessDenied", 403),
            (AuthError::ConflictingAuth, "InvalidArgument", 400),
            (AuthError::InvalidAccessKeyId, "InvalidAccessKeyId", 403),
            (
                AuthError::SignatureDoesNotMatch { string_to_sign: String::new(), canonical_request: String::new() },
                "SignatureDoesNotMatch",
                403,
            ),
            (AuthError::RequestTimeTooSkewed, "RequestTimeTooSkewed", 403),
            (AuthError::ExpiredPresignedUrl, "AccessDenied", 403),
            (AuthError::MissingContentSha256, "InvalidRequest", 400),
            (AuthError::HeadersNotSigned("x-amz-acl".to_owned()), "AccessDenied", 403),
        ];
        for (auth, code, status) in cases {
            let e = S3Error::from(auth);
            assert_eq!((e.code(), e.status().as_u16()), (code, status));
        }
    }

    #[test]
    fn errors_render_as_s3_xml() {
        let response = S3Error::NoSuchKey.into_response_for("/b/k&", "REQ1");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()["content-type"], "application/xml");
        assert_eq!(response.headers()["x-amz-request-id"], "REQ1");
    }
}
