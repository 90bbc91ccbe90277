//! End-to-end tests: real `cairn dev` clusters on loopback, driven by the AWS SDK for Rust.

mod access;
mod auth;
mod buckets;
mod checksums;
mod cluster;
mod conditional;
mod copy;
mod faults;
mod listing;
mod metadata;
mod multipart;
mod objects;
mod python_clients;

use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};

/// Uploads `data` to `bucket/key`.
pub async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, data: Vec<u8>) -> anyhow::Result<String> {
    let out = s3.put_object().bucket(bucket).key(key).body(ByteStream::from(data)).send().await?;
    Ok(out.e_tag().unwrap_or_default().to_owned())
}

/// Downloads `bucket/key` whole.
pub async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> anyhow::Result<Vec<u8>> {
    let out = s3.get_object().bucket(bucket).key(key).send().await?;
    Ok(out.body.collect().await?.into_bytes().to_vec())
}

/// Hex SHA-256, for comparing large bodies in assertion messages.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The S3 error code of a failed SDK call.
pub fn error_code<E, R>(err: &aws_sdk_s3::error::SdkError<E, R>) -> Option<String>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    err.as_service_error().and_then(|e| e.code()).map(str::to_owned)
}

/// Runs `task` over `items`, at most `limit` at a time; the first failure fails the whole.
pub async fn run_concurrently<T, F, Fut>(items: Vec<T>, limit: usize, task: F) -> anyhow::Result<()>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut running = tokio::task::JoinSet::new();
    for item in items {
        while running.len() >= limit {
            running.join_next().await.expect("a task is running")??;
        }
        running.spawn(task(item));
    }
    while let Some(done) = running.join_next().await {
        done??;
    }
    Ok(())
}
