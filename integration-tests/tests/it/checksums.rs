//! Client checksums are verified before an object becomes visible.

use std::time::SystemTime;

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode,
    sign,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use cairn_integration_tests::DevCluster;
use http_body_util::{BodyExt, Full};
use sha2::{Digest, Sha256};

use crate::{error_code, get, sha256_hex};

/// PUTs `sent` to `bucket/key` with a signature that claims `claimed` as the payload.
async fn put_claiming(
    cluster: &DevCluster,
    bucket: &str,
    key: &str,
    claimed: &[u8],
    sent: &[u8],
) -> anyhow::Result<(u16, String)> {
    let url = format!("{}/{bucket}/{key}", cluster.info.s3_endpoint);
    let host = url.trim_start_matches("http://").split('/').next().unwrap_or_default().to_owned();
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
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&cluster.info.region)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()?
        .into();
    let headers = [("host".to_owned(), host), ("content-length".to_owned(), sent.len().to_string())];
    let signable = SignableRequest::new(
        "PUT",
        &url,
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(claimed),
    )?;
    let (instructions, _) = sign(signable, &params)?.into_parts();
    let mut builder = http::Request::builder().method("PUT").uri(&url);
    for (name, value) in &headers {
        builder = builder.header(name, value);
    }
    let mut request = builder.body(Full::new(Bytes::copy_from_slice(sent)))?;
    instructions.apply_to_request_http1x(&mut request);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let response = client.request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test(flavor = "multi_thread")]
async fn mismatched_checksums_leave_nothing_visible() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("sums").send().await?;
    let body = b"the body that was really sent".to_vec();

    // x-amz-content-sha256 signed for other bytes.
    let (status, xml) = put_claiming(&cluster, "sums", "sha", b"what the signature promised", &body).await?;
    assert_eq!(status, 400, "{xml}");
    assert!(xml.contains("<Code>XAmzContentSHA256Mismatch</Code>"), "{xml}");
    assert!(xml.contains("<Resource>/sums/sha</Resource>") && xml.contains("<RequestId>"), "{xml}");
    // The same request with honest bytes is accepted.
    let (status, xml) = put_claiming(&cluster, "sums", "sha", &body, &body).await?;
    assert_eq!(status, 200, "{xml}");
    assert!(get(&s3, "sums", "sha").await? == body);

    // A wrong CRC32 or Content-MD5 is refused, and the key stays absent.
    let err = s3
        .put_object()
        .bucket("sums")
        .key("crc")
        .body(body.clone().into())
        .checksum_crc32("AAAAAA==")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("BadDigest"));
    let err = s3
        .put_object()
        .bucket("sums")
        .key("md5")
        .body(body.clone().into())
        .content_md5("AAAAAAAAAAAAAAAAAAAAAA==")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("BadDigest"));
    for key in ["crc", "md5"] {
        let err = s3.head_object().bucket("sums").key(key).send().await.unwrap_err();
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404), "{key} became visible");
    }

    // The right values pass.
    let crc = crc32_base64(&body);
    s3.put_object().bucket("sums").key("crc").body(body.clone().into()).checksum_crc32(crc).send().await?;
    assert_eq!(sha256_hex(&get(&s3, "sums", "crc").await?), hex_sha256(&body));
    Ok(())
}

fn hex_sha256(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// CRC-32 (ISO-HDLC) of `data`, base64 as S3 carries it; computed here independently.
fn crc32_base64(data: &[u8]) -> String {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    let bytes = (!crc).to_be_bytes();
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let n = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]);
    let m = u32::from(bytes[3]) << 16;
    let chars = [
        ALPHABET[(n >> 18) as usize & 63],
        ALPHABET[(n >> 12) as usize & 63],
        ALPHABET[(n >> 6) as usize & 63],
        ALPHABET[n as usize & 63],
        ALPHABET[(m >> 18) as usize & 63],
        ALPHABET[(m >> 12) as usize & 63],
    ];
    format!("{}==", String::from_utf8_lossy(&chars))
}
