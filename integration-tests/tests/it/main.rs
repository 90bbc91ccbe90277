//! End-to-end tests: real `cairn dev` clusters on loopback, driven by the AWS SDK for Rust.

mod access;
mod admin;
mod auth;
mod bucket_config;
mod buckets;
mod checksums;
mod cluster;
mod conditional;
mod consistency;
mod console;
mod copy;
mod deployment;
mod faults;
mod garbage;
mod healing;
mod helm_chart;
mod history;
mod listing;
mod metadata;
mod metrics;
mod multipart;
mod objects;
mod partitions;
mod python_clients;
mod rebalance;
mod virtual_host;
mod webdriver;

use std::time::{Duration, Instant};

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

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
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

/// Environment for clusters under fault tests: short timeouts and probe intervals so refusals
/// and recoveries come quickly.
pub const FAST_FAILURE_DETECTION: [(&str, &str); 5] = [
    ("CAIRN_ANTI_ENTROPY_INTERVAL_MS", "500"),
    ("CAIRN_QUORUM_TIMEOUT_MS", "1500"),
    ("CAIRN_PROBE_INTERVAL_MS", "200"),
    ("CAIRN_PROBE_TIMEOUT_MS", "300"),
    ("CAIRN_DOWN_AFTER", "3"),
];

/// The quorum timeout of [`FAST_FAILURE_DETECTION`].
pub const FAST_QUORUM_TIMEOUT_MS: u64 = 1_500;

/// Polls `cairn admin status` until node `node_id` is in `state` (a minute at most: a node
/// catching up finishes an anti-entropy round first, which takes long on a loaded machine).
pub fn wait_for_state(cluster: &cairn_integration_tests::DevCluster, node_id: &str, state: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = cluster.admin_json(&["status"])?;
        let nodes = status["nodes"].as_array().cloned().unwrap_or_default();
        if nodes.iter().any(|n| n["node_id"] == node_id && n["state"] == state) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{node_id} never became {state}: {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates a bucket with Cairn's `x-cairn-consistency` header.
pub async fn create_bucket_with_level(s3: &aws_sdk_s3::Client, bucket: &str, level: &str) -> anyhow::Result<()> {
    let level = level.to_owned();
    s3.create_bucket()
        .bucket(bucket)
        .customize()
        .mutate_request(move |request| {
            request.headers_mut().insert("x-cairn-consistency", level.clone());
        })
        .send()
        .await?;
    Ok(())
}

/// Sends a SigV4-signed request to the cluster's S3 port: signed for `url` with `host` as the
/// Host header, promising `signed_body` as the payload and sending `sent_body`. Returns the
/// status and body text.
pub async fn send_signed(
    cluster: &cairn_integration_tests::DevCluster,
    method: &str,
    url: &str,
    host: &str,
    signed_body: &[u8],
    sent_body: &[u8],
) -> anyhow::Result<(u16, String)> {
    send_signed_as(cluster, method, url, host, host, signed_body, sent_body).await
}

/// Like [`send_signed`], but sends `sent_host` in place of the signed host, as a reverse proxy
/// that rewrites `Host` does.
pub async fn send_signed_as(
    cluster: &cairn_integration_tests::DevCluster,
    method: &str,
    url: &str,
    host: &str,
    sent_host: &str,
    signed_body: &[u8],
    sent_body: &[u8],
) -> anyhow::Result<(u16, String)> {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    let credentials = aws_credential_types::Credentials::new(
        &cluster.info.access_key_id,
        &cluster.info.secret_access_key,
        None,
        None,
        "test",
    );
    let identity = credentials.into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&cluster.info.region)
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(settings)
        .build()?
        .into();
    let headers = [("host".to_owned(), host.to_owned()), ("content-length".to_owned(), sent_body.len().to_string())];
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(signed_body),
    )?;
    let (instructions, _) = sign(signable, &params)?.into_parts();
    // Whatever host the URL names, the request goes to the cluster's loopback port.
    let uri: http::Uri = url.parse()?;
    let target = format!("{}{}", cluster.info.s3_endpoint, uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let mut builder = http::Request::builder().method(method).uri(&target);
    for (name, value) in &headers {
        builder = builder.header(name, value);
    }
    let mut request = builder.body(http_body_util::Full::new(bytes::Bytes::copy_from_slice(sent_body)))?;
    instructions.apply_to_request_http1x(&mut request);
    request.headers_mut().insert(http::header::HOST, sent_host.parse()?);
    send_to_cluster(request).await
}

/// Sends a request presigned for any endpoint to the cluster's S3 port, with the Host header
/// of the port (as a proxy that rewrites `Host` would). Returns the status and body text.
pub async fn send_presigned(
    cluster: &cairn_integration_tests::DevCluster,
    presigned: &aws_sdk_s3::presigning::PresignedRequest,
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    let uri: http::Uri = presigned.uri().parse()?;
    let target = format!("{}{}", cluster.info.s3_endpoint, uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let mut builder = http::Request::builder().method(presigned.method()).uri(&target);
    for (name, value) in presigned.headers() {
        builder = builder.header(name, value);
    }
    send_to_cluster(builder.body(http_body_util::Full::new(bytes::Bytes::copy_from_slice(body)))?).await
}

/// GETs `url` without credentials; returns the status and body text.
pub async fn http_get(url: &str) -> anyhow::Result<(u16, String)> {
    let request = http::Request::get(url).body(http_body_util::Full::new(bytes::Bytes::new()))?;
    send_to_cluster(request).await
}

/// Sends a request as it is; returns the status and body text.
pub async fn send_to_cluster(
    request: http::Request<http_body_util::Full<bytes::Bytes>>,
) -> anyhow::Result<(u16, String)> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let response = client.request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
