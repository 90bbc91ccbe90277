//! Conditional requests, `response-*` overrides, `partNumber` reads and DeleteObjects.

use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use cairn_integration_tests::{DevCluster, test_bytes};

use crate::{error_code, get, put};

const MIB: usize = 1024 * 1024;

fn status<E>(err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_reads_and_writes_follow_s3() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("cond").send().await?;
    let etag = put(&s3, "cond", "k", b"version one".to_vec()).await?;
    let head = s3.head_object().bucket("cond").key("k").send().await?;
    let modified = *head.last_modified().expect("Last-Modified");
    let before = DateTime::from_secs(modified.secs() - 3600);
    let after = DateTime::from_secs(modified.secs() + 3600);

    // GET and HEAD: If-Match / If-None-Match / If-Modified-Since / If-Unmodified-Since.
    s3.get_object().bucket("cond").key("k").if_match(&etag).send().await?;
    let err = s3.get_object().bucket("cond").key("k").if_match("\"nope\"").send().await.unwrap_err();
    assert_eq!(status(&err), Some(412));
    let err = s3.get_object().bucket("cond").key("k").if_none_match(&etag).send().await.unwrap_err();
    assert_eq!(status(&err), Some(304));
    let err = s3.head_object().bucket("cond").key("k").if_modified_since(after).send().await.unwrap_err();
    assert_eq!(status(&err), Some(304));
    s3.head_object().bucket("cond").key("k").if_modified_since(before).send().await?;
    let err = s3.get_object().bucket("cond").key("k").if_unmodified_since(before).send().await.unwrap_err();
    assert_eq!(status(&err), Some(412));
    // A true If-Match outweighs a false If-Unmodified-Since.
    s3.get_object().bucket("cond").key("k").if_match(&etag).if_unmodified_since(before).send().await?;
    // A false If-None-Match outweighs a true If-Modified-Since.
    s3.get_object().bucket("cond").key("k").if_none_match("\"other\"").if_modified_since(after).send().await?;

    // Conditional PUT: If-None-Match: * only creates; If-Match only replaces that version.
    let err = s3
        .put_object()
        .bucket("cond")
        .key("k")
        .if_none_match("*")
        .body(b"clobber".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("PreconditionFailed"));
    s3.put_object().bucket("cond").key("new").if_none_match("*").body(b"fresh".to_vec().into()).send().await?;
    let err = s3
        .put_object()
        .bucket("cond")
        .key("k")
        .if_match("\"0123456789abcdef0123456789abcdef\"")
        .body(b"stale".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("PreconditionFailed"));
    s3.put_object().bucket("cond").key("k").if_match(&etag).body(b"version two".to_vec().into()).send().await?;
    // A create-only multipart upload does not overwrite either.
    let upload = s3.create_multipart_upload().bucket("cond").key("k").send().await?;
    let upload_id = upload.upload_id().unwrap_or_default();
    let part = s3
        .upload_part()
        .bucket("cond")
        .key("k")
        .upload_id(upload_id)
        .part_number(1)
        .body(b"multipart".to_vec().into())
        .send()
        .await?;
    let err = s3
        .complete_multipart_upload()
        .bucket("cond")
        .key("k")
        .upload_id(upload_id)
        .if_none_match("*")
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap_or_default()).build())
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("PreconditionFailed"));
    assert_eq!(get(&s3, "cond", "k").await?, b"version two");
    assert_eq!(get(&s3, "cond", "new").await?, b"fresh");

    // response-* overrides.
    let out = s3
        .get_object()
        .bucket("cond")
        .key("k")
        .response_content_type("application/x-override")
        .response_content_disposition("attachment; filename=\"x.bin\"")
        .response_cache_control("no-store")
        .send()
        .await?;
    assert_eq!(out.content_type(), Some("application/x-override"));
    assert_eq!(out.content_disposition(), Some("attachment; filename=\"x.bin\""));
    assert_eq!(out.cache_control(), Some("no-store"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn part_numbers_and_batch_deletes() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("batch").send().await?;

    // GetObject partNumber returns that part's bytes.
    let parts_data = [test_bytes(5 * MIB, 21), test_bytes(2 * MIB + 1, 22)];
    let upload = s3.create_multipart_upload().bucket("batch").key("mp").send().await?;
    let upload_id = upload.upload_id().unwrap_or_default();
    let mut completed = Vec::new();
    for (i, data) in parts_data.iter().enumerate() {
        let number = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket("batch")
            .key("mp")
            .upload_id(upload_id)
            .part_number(number)
            .body(data.clone().into())
            .send()
            .await?;
        completed.push(CompletedPart::builder().part_number(number).e_tag(out.e_tag().unwrap_or_default()).build());
    }
    s3.complete_multipart_upload()
        .bucket("batch")
        .key("mp")
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await?;
    let part = s3.get_object().bucket("batch").key("mp").part_number(2).send().await?;
    assert_eq!(part.parts_count(), Some(2));
    assert_eq!(part.content_length(), Some(parts_data[1].len() as i64));
    assert!(part.body.collect().await?.into_bytes()[..] == parts_data[1][..]);
    let err = s3.get_object().bucket("batch").key("mp").part_number(3).send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidPartNumber"));

    // DeleteObjects: deleted keys (present or not) are reported, quiet mode reports nothing.
    for i in 0..30 {
        put(&s3, "batch", &format!("k{i:02}"), vec![i as u8]).await?;
    }
    let identifiers = |range: std::ops::Range<usize>| -> anyhow::Result<Vec<ObjectIdentifier>> {
        range.map(|i| Ok(ObjectIdentifier::builder().key(format!("k{i:02}")).build()?)).collect()
    };
    let mut listed = identifiers(0..20)?;
    listed.push(ObjectIdentifier::builder().key("never-existed").build()?);
    let out =
        s3.delete_objects().bucket("batch").delete(Delete::builder().set_objects(Some(listed)).build()?).send().await?;
    assert_eq!(out.deleted().len(), 21, "{:?}", out.errors());
    assert!(out.errors().is_empty());
    let out = s3
        .delete_objects()
        .bucket("batch")
        .delete(Delete::builder().set_objects(Some(identifiers(20..30)?)).quiet(true).build()?)
        .send()
        .await?;
    assert!(out.deleted().is_empty() && out.errors().is_empty());
    let remaining = s3.list_objects_v2().bucket("batch").prefix("k").send().await?;
    assert_eq!(remaining.key_count(), Some(0));
    let err = s3.get_object().bucket("batch").key("k05").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NoSuchKey"));
    Ok(())
}
