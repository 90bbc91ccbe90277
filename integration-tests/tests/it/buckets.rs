use cairn_integration_tests::DevCluster;

use crate::{error_code, put};

#[tokio::test(flavor = "multi_thread")]
async fn bucket_lifecycle() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("alpha").send().await?;
    s3.create_bucket().bucket("beta").send().await?;
    let names: Vec<String> =
        s3.list_buckets().send().await?.buckets().iter().filter_map(|b| b.name().map(str::to_owned)).collect();
    assert_eq!(names, vec!["alpha", "beta"]);
    s3.head_bucket().bucket("alpha").send().await?;
    let location = s3.get_bucket_location().bucket("alpha").send().await?;
    assert!(location.location_constraint().is_none_or(|c| c.as_str().is_empty()));

    let err = s3.create_bucket().bucket("Not_Valid").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidBucketName"));
    let err = s3.head_bucket().bucket("missing").send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    let err = s3.list_objects_v2().bucket("missing").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NoSuchBucket"));

    put(&s3, "alpha", "k", b"v".to_vec()).await?;
    let err = s3.delete_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("BucketNotEmpty"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(409));
    s3.delete_object().bucket("alpha").key("k").send().await?;
    s3.delete_bucket().bucket("alpha").send().await?;
    let err = s3.head_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_creates_make_one_bucket() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let s3 = s3.clone();
            tokio::spawn(async move { s3.create_bucket().bucket("contested").send().await.is_ok() })
        })
        .collect();
    for attempt in attempts {
        // us-east-1 answers 200 to the owner's repeated create, as S3 does.
        assert!(attempt.await?);
    }
    let buckets = s3.list_buckets().send().await?;
    assert_eq!(buckets.buckets().iter().filter(|b| b.name() == Some("contested")).count(), 1);
    Ok(())
}
