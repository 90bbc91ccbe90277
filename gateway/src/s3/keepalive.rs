//! Long server-side copies answer as S3 does: when the work outlasts a short wait, `200 OK` and
//! the XML declaration go out at once, whitespace follows every few seconds so clients and
//! proxies do not time the connection out, and the document that ends the body says how it
//! went: the operation's result, or an `<Error>` (which the SDKs and botocore check for in a
//! 200 answer to CopyObject, UploadPartCopy and CompleteMultipartUpload).

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::error::S3Error;
use super::xml::DECLARATION;
use super::xml_response;

/// Time between two whitespace bytes sent while an operation runs.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// Largest result document an operation may produce (they are a few hundred bytes).
const MAX_RESULT_BYTES: usize = 64 * 1024;

/// Runs `operation` to completion whatever the client does; answers with its own response if it
/// ends within `wait`, else with a 200 whose body is kept alive until it ends. `resource` and
/// `request_id` fill a late `<Error>` document.
pub async fn respond_while_running<F>(
    wait: Duration,
    resource: String,
    request_id: String,
    operation: F,
) -> Result<Response, S3Error>
where
    F: Future<Output = Result<Response, S3Error>> + Send + 'static,
{
    // Spawned, so a client that goes away does not cancel a copy halfway.
    let mut task = tokio::spawn(operation);
    if !wait.is_zero()
        && let Ok(joined) = tokio::time::timeout(wait, &mut task).await
    {
        return joined.unwrap_or(Err(S3Error::InternalError));
    }
    let (sender, receiver) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let mut connected = sender.send(Bytes::from_static(DECLARATION.as_bytes())).await.is_ok();
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE_INTERVAL, KEEPALIVE_INTERVAL);
        let outcome = loop {
            tokio::select! {
                joined = &mut task => break joined.unwrap_or(Err(S3Error::InternalError)),
                _ = ticks.tick(), if connected => {
                    connected = sender.send(Bytes::from_static(b" ")).await.is_ok();
                }
            }
        };
        let response = outcome.unwrap_or_else(|e| e.into_response_for(&resource, &request_id));
        // Result and error documents are small strings in memory: reading them does not fail.
        let document = axum::body::to_bytes(response.into_body(), MAX_RESULT_BYTES).await.unwrap_or_else(|e| {
            tracing::error!(%resource, %request_id, error = %e, "a result document could not be read");
            Bytes::new()
        });
        let document = match document.strip_prefix(DECLARATION.as_bytes()) {
            Some(rest) => document.slice_ref(rest),
            None => document,
        };
        if connected {
            let _ = sender.send(document).await;
        }
    });
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|bytes| (Ok::<_, Infallible>(bytes), receiver))
    });
    let mut response = xml_response(String::new());
    *response.body_mut() = Body::from_stream(body);
    Ok(response)
}
