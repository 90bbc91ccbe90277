//! Admin API errors: one type, answered as a status and a JSON body in one place.

use axum::Json;
use axum::extract::FromRequest;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use cairn_storage_node::control::CommandResult;

use crate::cluster::ClusterError;
use crate::s3::error::S3Error;

/// Why an admin API request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request is malformed or names something invalid.
    #[error("{0}")]
    BadRequest(String),
    /// The bearer token is missing or wrong.
    #[error("missing or wrong admin token")]
    Unauthorized,
    /// No such bucket, node or key.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with what exists (a bucket name taken, a bucket not empty).
    #[error("{0}")]
    Conflict(String),
    /// A node the request needed did not answer.
    #[error("{0}")]
    BadGateway(String),
    /// The control plane or the nodes cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// Something that should not happen.
    #[error("{0}")]
    Internal(String),
}

/// The JSON body of an error answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable code: `bad_request`, `unauthorized`, `not_found`, `conflict`, `bad_gateway`,
    /// `unavailable`, `internal`.
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
}

impl AdminError {
    /// The HTTP status and stable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::BadGateway(_) => (StatusCode::BAD_GATEWAY, "bad_gateway"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        (status, Json(ErrorBody { error: code.to_owned(), message: self.to_string() })).into_response()
    }
}

impl From<S3Error> for AdminError {
    fn from(e: S3Error) -> Self {
        let message = match &e {
            S3Error::InvalidArgument(reason) => reason.clone(),
            S3Error::InvalidBucketName => "the bucket name is not valid in S3".to_owned(),
            S3Error::BucketAlreadyExists | S3Error::BucketAlreadyOwnedByYou => "the bucket exists".to_owned(),
            S3Error::BucketNotEmpty => "the bucket is not empty".to_owned(),
            S3Error::NoSuchBucket => "no such bucket".to_owned(),
            other => other.code().to_owned(),
        };
        match e.status() {
            StatusCode::BAD_REQUEST => Self::BadRequest(message),
            StatusCode::NOT_FOUND => Self::NotFound(message),
            StatusCode::CONFLICT => Self::Conflict(message),
            StatusCode::SERVICE_UNAVAILABLE => Self::Unavailable(message),
            _ => Self::Internal(message),
        }
    }
}

/// The outcome of a control-plane command as an admin answer: `refused` says what a rejection
/// is (a bad request, a conflict).
pub(crate) fn command_outcome(
    result: Result<CommandResult, ClusterError>,
    refused: fn(String) -> AdminError,
) -> Result<(), AdminError> {
    match result {
        Ok(CommandResult::Ok) => Ok(()),
        Ok(CommandResult::Rejected(reason)) => Err(refused(reason)),
        Ok(other) => Err(AdminError::Internal(format!("{other:?}"))),
        Err(e) => Err(AdminError::Unavailable(e.to_string())),
    }
}

/// What admin handlers return.
pub type AdminResult<T> = Result<Json<T>, AdminError>;

/// A JSON request body whose rejection is an [`AdminError`] like every other error.
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = AdminError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = <bytes::Bytes as FromRequest<S>>::from_request(request, state)
            .await
            .map_err(|e| AdminError::BadRequest(e.body_text()))?;
        serde_json::from_slice(&body)
            .map(JsonBody)
            .map_err(|e| AdminError::BadRequest(format!("malformed JSON body: {e}")))
    }
}
