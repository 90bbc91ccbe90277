//! Client checksums are verified before an object becomes visible.

use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart};
use cairn_integration_tests::{DevCluster, test_bytes};
use sha2::{Digest, Sha256};

use crate::{error_code, get, send_signed, sha256_hex};

const MIB: usize = 1024 * 1024;

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
    send_signed(cluster, "PUT", &url, &host, claimed, sent).await
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

/// CRC-32 (ISO-HDLC) of `data`, computed here independently of Cairn.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// CRC-32 of `data`, base64 as S3 carries it.
fn crc32_base64(data: &[u8]) -> String {
    let bytes = crc32(data).to_be_bytes();
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

/// Every flexible checksum algorithm.
fn every_algorithm() -> [ChecksumAlgorithm; 5] {
    [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ]
}

/// Uploads `data` with the SDK computing `algorithm`, then reads it back asking for checksums;
/// the SDK itself validates the body against the checksum Cairn returns.
async fn round_trip_with(
    s3: &aws_sdk_s3::Client,
    key: &str,
    algorithm: ChecksumAlgorithm,
    data: &[u8],
) -> anyhow::Result<GetObjectOutput> {
    s3.put_object().bucket("flex").key(key).checksum_algorithm(algorithm).body(data.to_vec().into()).send().await?;
    let out = s3.get_object().bucket("flex").key(key).checksum_mode(ChecksumMode::Enabled).send().await?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn flexible_checksums_are_kept_and_returned() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("flex").send().await?;
    let data = test_bytes(300_001, 7);

    for algorithm in every_algorithm() {
        let key = algorithm.as_str().to_owned();
        let out = round_trip_with(&s3, &key, algorithm.clone(), &data).await?;
        let returned = [
            out.checksum_crc32(),
            out.checksum_crc32_c(),
            out.checksum_crc64_nvme(),
            out.checksum_sha1(),
            out.checksum_sha256(),
        ];
        assert_eq!(returned.iter().flatten().count(), 1, "{key}: {returned:?}");
        assert_eq!(out.checksum_type(), Some(&ChecksumType::FullObject), "{key}");
        assert!(out.body.collect().await?.into_bytes()[..] == data[..], "{key}");
        // Without checksum mode, no checksum header.
        let head = s3.head_object().bucket("flex").key(&key).send().await?;
        assert!(head.checksum_crc32().is_none() && head.checksum_sha256().is_none(), "{key}");
    }
    let crc = s3.head_object().bucket("flex").key("CRC32").checksum_mode(ChecksumMode::Enabled).send().await?;
    assert_eq!(crc.checksum_crc32(), Some(crc32_base64(&data).as_str()));

    // A wrong SHA-256 checksum is refused like a wrong CRC.
    let err = s3
        .put_object()
        .bucket("flex")
        .key("bad")
        .checksum_sha256("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
        .body(data.clone().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("BadDigest"));
    Ok(())
}

/// Streamed bodies carry their checksum in the `aws-chunked` trailer; each algorithm's trailer
/// value is verified and stored like a header value. With no checksum sent at all, Cairn
/// records the CRC64NVME that S3 would.
#[tokio::test(flavor = "multi_thread")]
async fn trailer_checksums_and_the_default_checksum_are_stored() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("flex").send().await?;
    let data = test_bytes(MIB + 4321, 11);
    let path = cluster.dir().join("trailer.bin");
    std::fs::write(&path, &data)?;

    for algorithm in every_algorithm() {
        let key = format!("trailer-{}", algorithm.as_str());
        let body = aws_sdk_s3::primitives::ByteStream::from_path(&path).await?;
        let streamed =
            s3.put_object().bucket("flex").key(&key).checksum_algorithm(algorithm.clone()).body(body).send().await?;
        // The same bytes with the checksum in a header give the same stored value.
        let header_key = format!("header-{}", algorithm.as_str());
        round_trip_with(&s3, &header_key, algorithm.clone(), &data).await?;
        let from_trailer =
            s3.head_object().bucket("flex").key(&key).checksum_mode(ChecksumMode::Enabled).send().await?;
        let from_header =
            s3.head_object().bucket("flex").key(&header_key).checksum_mode(ChecksumMode::Enabled).send().await?;
        let values = |h: &aws_sdk_s3::operation::head_object::HeadObjectOutput| {
            [h.checksum_crc32(), h.checksum_crc32_c(), h.checksum_crc64_nvme(), h.checksum_sha1(), h.checksum_sha256()]
                .map(|v| v.map(str::to_owned))
        };
        assert_eq!(values(&from_trailer), values(&from_header), "{key}");
        assert_eq!(values(&from_trailer).iter().flatten().count(), 1, "{key}");
        let echoed = [streamed.checksum_crc32(), streamed.checksum_crc32_c(), streamed.checksum_crc64_nvme()];
        assert!(echoed.iter().flatten().count() <= 1, "{key}: {echoed:?}");
        assert!(get(&s3, "flex", &key).await? == data, "{key}");
    }

    // A request with no checksum at all (signed by hand, so no SDK adds one).
    let url = format!("{}/flex/plain", cluster.info.s3_endpoint);
    let host = cluster.info.s3_endpoint.trim_start_matches("http://").to_owned();
    let (status, body) = send_signed(&cluster, "PUT", &url, &host, &data, &data).await?;
    assert_eq!(status, 200, "{body}");
    let plain = s3.head_object().bucket("flex").key("plain").checksum_mode(ChecksumMode::Enabled).send().await?;
    let explicit =
        s3.head_object().bucket("flex").key("header-CRC64NVME").checksum_mode(ChecksumMode::Enabled).send().await?;
    assert!(plain.checksum_crc64_nvme().is_some());
    assert_eq!(plain.checksum_crc64_nvme(), explicit.checksum_crc64_nvme());
    assert_eq!(plain.checksum_type(), Some(&ChecksumType::FullObject));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn multipart_checksums_are_composite_or_full_object() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("flex").send().await?;
    let parts_data = [test_bytes(5 * MIB, 1), test_bytes(MIB + 3, 2)];
    let whole = parts_data.concat();

    // COMPOSITE CRC32: the CRC32 of the concatenated part CRC32s, with "-2".
    let done = multipart_with(&s3, "composite", ChecksumAlgorithm::Crc32, None, &parts_data).await?;
    let raw: Vec<u8> = parts_data.iter().flat_map(|p| crc32(p).to_be_bytes()).collect();
    let expected = format!("{}-2", crc32_base64(&raw));
    assert_eq!(done.checksum_crc32(), Some(expected.as_str()));
    assert_eq!(done.checksum_type(), Some(&ChecksumType::Composite));
    let head = s3.head_object().bucket("flex").key("composite").checksum_mode(ChecksumMode::Enabled).send().await?;
    assert_eq!(head.checksum_crc32(), Some(expected.as_str()));
    assert_eq!(head.checksum_type(), Some(&ChecksumType::Composite));
    // A partNumber read of a composite object carries that part's own checksum, which the SDK
    // checks against the part's bytes.
    for (number, data) in parts_data.iter().enumerate() {
        let number = number as i32 + 1;
        let out = s3
            .get_object()
            .bucket("flex")
            .key("composite")
            .part_number(number)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await?;
        assert_eq!(out.checksum_crc32(), Some(crc32_base64(data).as_str()), "part {number}");
        assert!(out.body.collect().await?.into_bytes()[..] == data[..], "part {number}");
    }

    // FULL_OBJECT CRC64NVME: the same value a single PUT of the whole bytes gets.
    let done =
        multipart_with(&s3, "full", ChecksumAlgorithm::Crc64Nvme, Some(ChecksumType::FullObject), &parts_data).await?;
    let single = round_trip_with(&s3, "single", ChecksumAlgorithm::Crc64Nvme, &whole).await?;
    assert!(single.checksum_crc64_nvme().is_some());
    assert_eq!(done.checksum_crc64_nvme(), single.checksum_crc64_nvme());
    assert_eq!(done.checksum_type(), Some(&ChecksumType::FullObject));
    // The SDK validates the whole body against the full-object checksum.
    let out = s3.get_object().bucket("flex").key("full").checksum_mode(ChecksumMode::Enabled).send().await?;
    assert!(out.body.collect().await?.into_bytes()[..] == whole[..]);
    // A part of several under a full-object checksum has none to report; neither has a range.
    let part =
        s3.head_object().bucket("flex").key("full").part_number(2).checksum_mode(ChecksumMode::Enabled).send().await?;
    assert!(part.checksum_crc64_nvme().is_none() && part.checksum_type().is_none());
    let range = s3
        .get_object()
        .bucket("flex")
        .key("full")
        .range("bytes=0-9")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await?;
    assert!(range.checksum_crc64_nvme().is_none());

    // A part checksum listed wrongly at completion is InvalidPart.
    let upload = s3
        .create_multipart_upload()
        .bucket("flex")
        .key("wrong")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await?;
    let upload_id = upload.upload_id().unwrap_or_default();
    let part = s3
        .upload_part()
        .bucket("flex")
        .key("wrong")
        .upload_id(upload_id)
        .part_number(1)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(parts_data[1].clone().into())
        .send()
        .await?;
    let etag = part.e_tag().unwrap_or_default();
    let complete_with = |listed: CompletedPart| {
        s3.complete_multipart_upload()
            .bucket("flex")
            .key("wrong")
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().parts(listed).build())
            .send()
    };
    let wrong = CompletedPart::builder().part_number(1).e_tag(etag).checksum_crc32("AAAAAA==").build();
    let err = complete_with(wrong).await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidPart"));
    // A composite upload must list every part's checksum.
    let err = complete_with(CompletedPart::builder().part_number(1).e_tag(etag).build()).await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidRequest"));
    Ok(())
}

/// A multipart upload of `parts` with `algorithm`, each part's checksum computed by the SDK
/// and listed at completion.
async fn multipart_with(
    s3: &aws_sdk_s3::Client,
    key: &str,
    algorithm: ChecksumAlgorithm,
    kind: Option<ChecksumType>,
    parts: &[Vec<u8>],
) -> anyhow::Result<CompleteMultipartUploadOutput> {
    let upload = s3
        .create_multipart_upload()
        .bucket("flex")
        .key(key)
        .checksum_algorithm(algorithm.clone())
        .set_checksum_type(kind)
        .send()
        .await?;
    let upload_id = upload.upload_id().unwrap_or_default();
    let mut completed = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let number = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket("flex")
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .checksum_algorithm(algorithm.clone())
            .body(data.clone().into())
            .send()
            .await?;
        completed.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(out.e_tag().unwrap_or_default())
                .set_checksum_crc32(out.checksum_crc32().map(str::to_owned))
                .set_checksum_crc64_nvme(out.checksum_crc64_nvme().map(str::to_owned))
                .build(),
        );
    }
    Ok(s3
        .complete_multipart_upload()
        .bucket("flex")
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await?)
}
