use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use cairn_integration_tests::{DevCluster, test_bytes};

use crate::{error_code, get};

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn multipart_upload_complete_and_abort() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("parts").send().await?;

    let upload = s3.create_multipart_upload().bucket("parts").key("big").content_type("video/x-test").send().await?;
    let upload_id = upload.upload_id().expect("upload id").to_owned();
    let sizes = [5 * MIB + 3, 6 * MIB, MIB + 7];
    let mut whole = Vec::new();
    let mut parts = Vec::new();
    // Upload part 2 twice: the second upload replaces the first.
    for (number, size) in [(1, sizes[0]), (2, 5 * MIB), (2, sizes[1]), (3, sizes[2])] {
        let data = test_bytes(size, number as u64 * 1000 + size as u64);
        let out = s3
            .upload_part()
            .bucket("parts")
            .key("big")
            .upload_id(&upload_id)
            .part_number(number)
            .body(data.clone().into())
            .send()
            .await?;
        if number == 2 && size == 5 * MIB {
            continue;
        }
        whole.extend_from_slice(&data);
        parts.push(CompletedPart::builder().part_number(number).e_tag(out.e_tag().unwrap_or_default()).build());
    }
    // ListParts shows each part once (the re-upload replaced part 2), a page at a time.
    let listed = s3.list_parts().bucket("parts").key("big").upload_id(&upload_id).send().await?;
    let numbers: Vec<i32> = listed.parts().iter().filter_map(|p| p.part_number()).collect();
    assert_eq!(numbers, vec![1, 2, 3]);
    let etags: Vec<&str> = listed.parts().iter().filter_map(|p| p.e_tag()).collect();
    let expected: Vec<&str> = parts.iter().filter_map(|p| p.e_tag()).collect();
    assert_eq!(etags, expected);
    assert_eq!(listed.parts()[1].size(), Some(sizes[1] as i64));
    let page = s3.list_parts().bucket("parts").key("big").upload_id(&upload_id).max_parts(2).send().await?;
    assert_eq!(page.is_truncated(), Some(true));
    assert_eq!(page.next_part_number_marker(), Some("2"));
    let rest = s3.list_parts().bucket("parts").key("big").upload_id(&upload_id).part_number_marker("2").send().await?;
    assert_eq!(rest.parts().iter().filter_map(|p| p.part_number()).collect::<Vec<_>>(), vec![3]);
    assert_eq!(rest.is_truncated(), Some(false));

    let done = s3
        .complete_multipart_upload()
        .bucket("parts")
        .key("big")
        .upload_id(&upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await?;
    assert!(done.e_tag().unwrap_or_default().ends_with("-3\""), "multipart ETag: {:?}", done.e_tag());
    assert!(get(&s3, "parts", "big").await? == whole);
    let head = s3.head_object().bucket("parts").key("big").send().await?;
    assert_eq!(head.content_length(), Some(whole.len() as i64));
    assert_eq!(head.content_type(), Some("video/x-test"));
    assert_eq!(head.e_tag(), done.e_tag());
    let ranged =
        s3.get_object().bucket("parts").key("big").range(format!("bytes={}-{}", 5 * MIB, 5 * MIB + 10)).send().await?;
    assert!(ranged.body.collect().await?.into_bytes()[..] == whole[5 * MIB..5 * MIB + 11]);

    // A part other than the last under 5 MiB, and a wrong ETag, are refused.
    let small = s3.create_multipart_upload().bucket("parts").key("small").send().await?;
    let small_id = small.upload_id().unwrap_or_default().to_owned();
    let mut small_parts = Vec::new();
    for number in 1..=2 {
        let out = s3
            .upload_part()
            .bucket("parts")
            .key("small")
            .upload_id(&small_id)
            .part_number(number)
            .body(test_bytes(MIB, number as u64).into())
            .send()
            .await?;
        small_parts.push(CompletedPart::builder().part_number(number).e_tag(out.e_tag().unwrap_or_default()).build());
    }
    let err = s3
        .complete_multipart_upload()
        .bucket("parts")
        .key("small")
        .upload_id(&small_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(small_parts)).build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("EntityTooSmall"));
    let err = s3
        .complete_multipart_upload()
        .bucket("parts")
        .key("small")
        .upload_id(&small_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag("\"00000000000000000000000000000000\"").build())
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidPart"));

    s3.abort_multipart_upload().bucket("parts").key("small").upload_id(&small_id).send().await?;
    let err = s3
        .upload_part()
        .bucket("parts")
        .key("small")
        .upload_id(&small_id)
        .part_number(3)
        .body(b"late".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NoSuchUpload"));
    let err = s3.get_object().bucket("parts").key("small").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NoSuchKey"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn list_multipart_uploads_pages_by_key_then_initiation() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("uploads").send().await?;
    // "a" sorts before "ab"; "a" has two uploads, listed in initiation order.
    let mut expected = Vec::new();
    for key in ["a", "a", "ab", "dir/x", "dir/y", "z"] {
        let out = s3.create_multipart_upload().bucket("uploads").key(key).send().await?;
        expected.push((key.to_owned(), out.upload_id().unwrap_or_default().to_owned()));
    }
    let all = s3.list_multipart_uploads().bucket("uploads").send().await?;
    let listed: Vec<(String, String)> = all
        .uploads()
        .iter()
        .map(|u| (u.key().unwrap_or_default().to_owned(), u.upload_id().unwrap_or_default().to_owned()))
        .collect();
    assert_eq!(listed, expected);

    // Pages of two, following NextKeyMarker / NextUploadIdMarker.
    let mut paged = Vec::new();
    let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
    loop {
        let page = s3
            .list_multipart_uploads()
            .bucket("uploads")
            .max_uploads(2)
            .set_key_marker(key_marker.clone())
            .set_upload_id_marker(id_marker.clone())
            .send()
            .await?;
        paged.extend(page.uploads().iter().map(|u| u.upload_id().unwrap_or_default().to_owned()));
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        id_marker = page.next_upload_id_marker().map(str::to_owned);
        assert!(paged.len() <= expected.len(), "paging does not end");
    }
    assert_eq!(paged, expected.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>());

    // Delimiter and prefix.
    let rolled = s3.list_multipart_uploads().bucket("uploads").delimiter("/").send().await?;
    let prefixes: Vec<&str> = rolled.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, vec!["dir/"]);
    assert_eq!(rolled.uploads().len(), 4);
    let under = s3.list_multipart_uploads().bucket("uploads").prefix("dir/").send().await?;
    assert_eq!(under.uploads().iter().filter_map(|u| u.key()).collect::<Vec<_>>(), vec!["dir/x", "dir/y"]);

    // Completed and aborted uploads leave the listing.
    s3.abort_multipart_upload().bucket("uploads").key("z").upload_id(&expected[5].1).send().await?;
    let after = s3.list_multipart_uploads().bucket("uploads").prefix("z").send().await?;
    assert!(after.uploads().is_empty());
    Ok(())
}
