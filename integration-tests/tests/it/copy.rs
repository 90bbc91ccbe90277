//! CopyObject and UploadPartCopy.

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, MetadataDirective};
use cairn_integration_tests::{DevCluster, test_bytes};

use crate::{error_code, get, put};

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn copies_between_buckets_with_metadata_directives_and_conditions() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("src").send().await?;
    s3.create_bucket().bucket("dst").send().await?;
    // Spans several chunks, so the copy streams chunk by chunk.
    let data = test_bytes(9 * MIB + 17, 3);
    s3.put_object()
        .bucket("src")
        .key("dir/a b+ü")
        .content_type("text/x-source")
        .metadata("colour", "blue")
        .body(data.clone().into())
        .send()
        .await?;
    let source_etag =
        s3.head_object().bucket("src").key("dir/a b+ü").send().await?.e_tag().unwrap_or_default().to_owned();

    // COPY keeps the source's metadata; the ETag of a single-part copy is the MD5 of its bytes.
    let out = s3.copy_object().bucket("dst").key("copy").copy_source("src/dir/a%20b%2B%C3%BC").send().await?;
    let result = out.copy_object_result().expect("CopyObjectResult");
    assert_eq!(result.e_tag(), Some(source_etag.as_str()));
    assert!(get(&s3, "dst", "copy").await? == data);
    let head = s3.head_object().bucket("dst").key("copy").send().await?;
    assert_eq!(head.content_type(), Some("text/x-source"));
    assert_eq!(head.metadata().and_then(|m| m.get("colour")).map(String::as_str), Some("blue"));

    // REPLACE takes the request's metadata.
    s3.copy_object()
        .bucket("dst")
        .key("replaced")
        .copy_source("src/dir/a%20b%2B%C3%BC")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/x-new")
        .metadata("shape", "round")
        .send()
        .await?;
    let head = s3.head_object().bucket("dst").key("replaced").send().await?;
    assert_eq!(head.content_type(), Some("text/x-new"));
    let metadata = head.metadata().cloned().unwrap_or_default();
    assert_eq!(metadata.get("shape").map(String::as_str), Some("round"));
    assert!(!metadata.contains_key("colour"));

    // Copy-source conditions.
    let err = s3
        .copy_object()
        .bucket("dst")
        .key("cond")
        .copy_source("src/dir/a%20b%2B%C3%BC")
        .copy_source_if_match("\"not-the-etag\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("PreconditionFailed"));
    let err = s3
        .copy_object()
        .bucket("dst")
        .key("cond")
        .copy_source("src/dir/a%20b%2B%C3%BC")
        .copy_source_if_none_match(&source_etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("PreconditionFailed"));
    s3.copy_object()
        .bucket("dst")
        .key("cond")
        .copy_source("src/dir/a%20b%2B%C3%BC")
        .copy_source_if_match(&source_etag)
        .send()
        .await?;
    // The date forms: the source was written just now.
    let hour = std::time::Duration::from_secs(3600);
    let (past, future) = (std::time::SystemTime::now() - hour, std::time::SystemTime::now() + hour);
    let date = aws_sdk_s3::primitives::DateTime::from;
    let copy = || s3.copy_object().bucket("dst").key("cond").copy_source("src/dir/a%20b%2B%C3%BC");
    let err = copy().copy_source_if_modified_since(date(future)).send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("PreconditionFailed"));
    let err = copy().copy_source_if_unmodified_since(date(past)).send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("PreconditionFailed"));
    copy().copy_source_if_modified_since(date(past)).copy_source_if_unmodified_since(date(future)).send().await?;
    // S3's precedence: a matching ETag outweighs a failed unmodified-since.
    copy().copy_source_if_match(&source_etag).copy_source_if_unmodified_since(date(past)).send().await?;

    // Copying an object onto itself without a change is refused; missing sources are 404.
    let err = s3.copy_object().bucket("dst").key("copy").copy_source("dst/copy").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidRequest"));
    let err = s3.copy_object().bucket("dst").key("x").copy_source("src/missing").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NoSuchKey"));
    let err = s3.copy_object().bucket("dst").key("x").copy_source("nobucket/k").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NoSuchBucket"));

    // The copy is independent of its source.
    s3.delete_object().bucket("src").key("dir/a b+ü").send().await?;
    assert!(get(&s3, "dst", "copy").await? == data);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_part_copy_assembles_ranges_of_other_objects() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("partcopy").send().await?;
    let source = test_bytes(7 * MIB + 5, 11);
    put(&s3, "partcopy", "source", source.clone()).await?;
    let tail = test_bytes(1000, 12);

    let upload = s3.create_multipart_upload().bucket("partcopy").key("assembled").send().await?;
    let upload_id = upload.upload_id().unwrap_or_default();
    // Part 1: bytes 1 MiB ..= 6 MiB + 9 of the source (crosses chunk boundaries).
    let (first, last) = (MIB, 6 * MIB + 9);
    let copied = s3
        .upload_part_copy()
        .bucket("partcopy")
        .key("assembled")
        .upload_id(upload_id)
        .part_number(1)
        .copy_source("partcopy/source")
        .copy_source_range(format!("bytes={first}-{last}"))
        .send()
        .await?;
    let copied_etag = copied.copy_part_result().and_then(|r| r.e_tag()).unwrap_or_default().to_owned();
    let uploaded = s3
        .upload_part()
        .bucket("partcopy")
        .key("assembled")
        .upload_id(upload_id)
        .part_number(2)
        .body(tail.clone().into())
        .send()
        .await?;
    let parts = vec![
        CompletedPart::builder().part_number(1).e_tag(copied_etag).build(),
        CompletedPart::builder().part_number(2).e_tag(uploaded.e_tag().unwrap_or_default()).build(),
    ];
    s3.complete_multipart_upload()
        .bucket("partcopy")
        .key("assembled")
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await?;
    let mut expected = source[first..=last].to_vec();
    expected.extend_from_slice(&tail);
    assert!(get(&s3, "partcopy", "assembled").await? == expected);

    // A range past the end of the source is refused.
    let err = s3
        .upload_part_copy()
        .bucket("partcopy")
        .key("assembled2")
        .upload_id(upload_id)
        .part_number(3)
        .copy_source("partcopy/source")
        .copy_source_range(format!("bytes=0-{}", source.len()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NoSuchUpload"));
    let upload = s3.create_multipart_upload().bucket("partcopy").key("assembled2").send().await?;
    let err = s3
        .upload_part_copy()
        .bucket("partcopy")
        .key("assembled2")
        .upload_id(upload.upload_id().unwrap_or_default())
        .part_number(1)
        .copy_source("partcopy/source")
        .copy_source_range(format!("bytes=0-{}", source.len()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidArgument"));
    Ok(())
}

/// A copy that outlasts the keep-alive wait answers `200 OK` at once and its outcome at the
/// end of the body: the result document, or an `<Error>` the SDK reports as the error it is.
#[tokio::test(flavor = "multi_thread")]
async fn slow_copies_answer_200_early_and_their_outcome_in_the_body() -> anyhow::Result<()> {
    // A zero wait sends every copy down the keep-alive path.
    let cluster = DevCluster::start_with(3, &[], &[("CAIRN_S3_KEEPALIVE_AFTER_MS", "0")])?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("slow").send().await?;
    let data = test_bytes(6 * MIB + 5, 8);
    let etag = put(&s3, "slow", "source", data.clone()).await?;

    let copied = s3.copy_object().bucket("slow").key("copy").copy_source("slow/source").send().await?;
    assert_eq!(copied.copy_object_result().and_then(|r| r.e_tag()), Some(etag.as_str()));
    assert!(get(&s3, "slow", "copy").await? == data);

    // A failure after the 200 is still an error to the client, with S3's code.
    let err = s3
        .copy_object()
        .bucket("slow")
        .key("copy2")
        .copy_source("slow/source")
        .copy_source_if_match("\"other\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("PreconditionFailed"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(200));
    let err = s3.head_object().bucket("slow").key("copy2").send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));

    // UploadPartCopy takes the same path.
    let upload = s3.create_multipart_upload().bucket("slow").key("parts").send().await?;
    let upload_id = upload.upload_id().unwrap_or_default();
    let part = s3
        .upload_part_copy()
        .bucket("slow")
        .key("parts")
        .upload_id(upload_id)
        .part_number(1)
        .copy_source("slow/source")
        .send()
        .await?;
    let part_etag = part.copy_part_result().and_then(|r| r.e_tag()).unwrap_or_default().to_owned();
    let parts = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(part_etag).build())
        .build();
    s3.complete_multipart_upload()
        .bucket("slow")
        .key("parts")
        .upload_id(upload_id)
        .multipart_upload(parts)
        .send()
        .await?;
    assert!(get(&s3, "slow", "parts").await? == data);
    Ok(())
}
