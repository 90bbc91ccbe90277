use std::collections::BTreeSet;

use crate::{put, run_concurrently};
use cairn_integration_tests::DevCluster;

async fn list_all(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: Option<&str>,
    delimiter: Option<&str>,
    page_size: i32,
) -> anyhow::Result<(Vec<String>, Vec<String>, usize)> {
    let mut keys = Vec::new();
    let mut prefixes = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(bucket)
            .set_prefix(prefix.map(str::to_owned))
            .set_delimiter(delimiter.map(str::to_owned))
            .max_keys(page_size)
            .set_continuation_token(token.clone())
            .send()
            .await?;
        pages += 1;
        let count = out.contents().len() + out.common_prefixes().len();
        assert!(count <= page_size as usize);
        assert_eq!(out.key_count(), Some(count as i32));
        keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        prefixes.extend(out.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_owned)));
        if out.is_truncated() != Some(true) {
            return Ok((keys, prefixes, pages));
        }
        token = out.next_continuation_token().map(str::to_owned);
        assert!(token.is_some(), "a truncated page carries a continuation token");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_2500_keys_with_prefixes_delimiters_and_pages() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("many").send().await?;
    let mut expected = BTreeSet::new();
    for i in 0..2500 {
        let dir = ["alpha", "beta", "gamma", "delta"][i % 4];
        let key = if i % 10 == 0 { format!("top-{i:05}") } else { format!("{dir}/{:03}/obj-{i:05}", i % 7) };
        expected.insert(key);
    }
    let keys: Vec<String> = expected.iter().cloned().collect();
    let client = s3.clone();
    run_concurrently(keys, 16, move |key| {
        let s3 = client.clone();
        async move {
            put(&s3, "many", &key, key.as_bytes().to_vec()).await?;
            Ok(())
        }
    })
    .await?;

    let (all, prefixes, pages) = list_all(&s3, "many", None, None, 1000).await?;
    assert!(prefixes.is_empty());
    assert_eq!(pages, 3);
    assert_eq!(all, expected.iter().cloned().collect::<Vec<_>>(), "full listing is every key, in order");

    let (small_pages, _, pages) = list_all(&s3, "many", None, None, 77).await?;
    assert_eq!(small_pages, all);
    assert_eq!(pages, 2500usize.div_ceil(77));

    let (top, common, _) = list_all(&s3, "many", None, Some("/"), 1000).await?;
    assert_eq!(common, vec!["alpha/", "beta/", "delta/", "gamma/"]);
    assert_eq!(top.len(), 250);
    assert!(top.iter().all(|k| k.starts_with("top-")));

    let (_, beta_dirs, _) = list_all(&s3, "many", Some("beta/"), Some("/"), 3).await?;
    let expected_dirs: BTreeSet<String> =
        expected.iter().filter(|k| k.starts_with("beta/")).map(|k| k[..9].to_owned()).collect();
    assert_eq!(beta_dirs, expected_dirs.into_iter().collect::<Vec<_>>());

    let (gamma_3, _, _) = list_all(&s3, "many", Some("gamma/003/"), None, 1000).await?;
    let expected_gamma: Vec<String> = expected.iter().filter(|k| k.starts_with("gamma/003/")).cloned().collect();
    assert_eq!(gamma_3, expected_gamma);

    let after = s3.list_objects_v2().bucket("many").start_after("delta/006/").max_keys(5).send().await?;
    let got: Vec<&str> = after.contents().iter().filter_map(|o| o.key()).collect();
    let want: Vec<&str> = expected.iter().filter(|k| k.as_str() > "delta/006/").take(5).map(String::as_str).collect();
    assert_eq!(got, want);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn list_objects_v1_pages_through_common_prefixes() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("list-v1").send().await?;
    let keys = ["a/1", "a/2", "b/1", "c", "d/1", "d/2", "e", "f/x/y"];
    for key in keys {
        put(&s3, "list-v1", key, b"x".to_vec()).await?;
    }
    let mut marker: Option<String> = None;
    let mut seen_keys = Vec::new();
    let mut seen_prefixes = Vec::new();
    for _ in 0..20 {
        let out =
            s3.list_objects().bucket("list-v1").delimiter("/").max_keys(2).set_marker(marker.clone()).send().await?;
        seen_keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        seen_prefixes.extend(out.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_owned)));
        if out.is_truncated() != Some(true) {
            assert_eq!(seen_keys, vec!["c", "e"]);
            assert_eq!(seen_prefixes, vec!["a/", "b/", "d/", "f/"]);
            return Ok(());
        }
        // Without a NextMarker, clients continue from the last key.
        marker = out.next_marker().map(str::to_owned).or_else(|| seen_keys.last().cloned());
    }
    anyhow::bail!("ListObjects never finished: keys {seen_keys:?}, prefixes {seen_prefixes:?}")
}

#[tokio::test(flavor = "multi_thread")]
async fn versions_owners_and_versioning_of_an_unversioned_bucket() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("versions").send().await?;
    for key in ["a", "b/1", "b/2", "c"] {
        crate::put(&s3, "versions", key, key.as_bytes().to_vec()).await?;
    }
    let owner = cluster.info.access_key_id.as_str();

    // Versioning was never enabled: an empty configuration, and enabling it is not offered.
    let versioning = s3.get_bucket_versioning().bucket("versions").send().await?;
    assert!(versioning.status().is_none());
    let enable = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    let err = s3.put_bucket_versioning().bucket("versions").versioning_configuration(enable).send().await.unwrap_err();
    assert_eq!(crate::error_code(&err).as_deref(), Some("NotImplemented"));

    // Every object is its `null` version, latest, paged by key marker.
    let first = s3.list_object_versions().bucket("versions").delimiter("/").max_keys(2).send().await?;
    let keys: Vec<&str> = first.versions().iter().filter_map(|v| v.key()).collect();
    assert_eq!(keys, vec!["a"]);
    assert_eq!(first.common_prefixes().iter().filter_map(|p| p.prefix()).collect::<Vec<_>>(), vec!["b/"]);
    assert!(first.versions().iter().all(|v| v.version_id() == Some("null") && v.is_latest() == Some(true)));
    assert_eq!(first.versions()[0].owner().and_then(|o| o.id()), Some(owner));
    assert_eq!(first.is_truncated(), Some(true));
    let rest = s3
        .list_object_versions()
        .bucket("versions")
        .delimiter("/")
        .set_key_marker(first.next_key_marker().map(str::to_owned))
        .set_version_id_marker(first.next_version_id_marker().map(str::to_owned))
        .send()
        .await?;
    assert_eq!(rest.versions().iter().filter_map(|v| v.key()).collect::<Vec<_>>(), vec!["c"]);
    assert_eq!(rest.is_truncated(), Some(false));

    // fetch-owner on v2; v1 always names the owner.
    let plain = s3.list_objects_v2().bucket("versions").send().await?;
    assert!(plain.contents().iter().all(|o| o.owner().is_none()));
    let owned = s3.list_objects_v2().bucket("versions").fetch_owner(true).send().await?;
    assert!(owned.contents().iter().all(|o| o.owner().and_then(|o| o.id()) == Some(owner)));
    let v1 = s3.list_objects().bucket("versions").send().await?;
    assert!(v1.contents().iter().all(|o| o.owner().and_then(|o| o.id()) == Some(owner)));

    // Entries name their checksum (the SDK sends CRC32 by default).
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumType};
    for object in plain.contents() {
        assert_eq!(object.checksum_algorithm(), [ChecksumAlgorithm::Crc32], "{:?}", object.key());
        assert_eq!(object.checksum_type(), Some(&ChecksumType::FullObject), "{:?}", object.key());
    }
    assert!(rest.versions().iter().all(|v| v.checksum_algorithm() == [ChecksumAlgorithm::Crc32]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_with_any_xml_character_round_trip_and_others_are_refused() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("odd-keys").send().await?;
    let keys = ["tab\tkey", "cr\rlf\nkey", "amp&lt<gt>\"'", "ü/日本/🦀", "trailing space ", "%41+plus"];
    for key in keys {
        put(&s3, "odd-keys", key, key.as_bytes().to_vec()).await?;
        assert_eq!(crate::get(&s3, "odd-keys", key).await?, key.as_bytes(), "{key:?}");
    }
    let mut expected: Vec<&str> = keys.to_vec();
    expected.sort();
    for url in [false, true] {
        let mut request = s3.list_objects_v2().bucket("odd-keys");
        if url {
            request = request.encoding_type(aws_sdk_s3::types::EncodingType::Url);
        }
        let listed = request.send().await?;
        let mut names: Vec<String> = listed.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
        if url {
            names = names
                .iter()
                .map(|k| percent_encoding::percent_decode_str(&k.replace('+', " ")).decode_utf8_lossy().into_owned())
                .collect();
        }
        assert_eq!(names, expected, "encoding-type=url: {url}");
    }
    // A key XML 1.0 cannot carry is refused everywhere alike.
    let err = s3.put_object().bucket("odd-keys").key("bell\u{7}").body(b"x".to_vec().into()).send().await.unwrap_err();
    assert_eq!(crate::error_code(&err).as_deref(), Some("InvalidArgument"));
    let err = s3.get_object().bucket("odd-keys").key("bell\u{7}").send().await.unwrap_err();
    assert_eq!(crate::error_code(&err).as_deref(), Some("InvalidArgument"));
    Ok(())
}
