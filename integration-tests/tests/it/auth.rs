use cairn_integration_tests::DevCluster;

use crate::error_code;

#[tokio::test(flavor = "multi_thread")]
async fn bad_signatures_and_unknown_keys_are_refused() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("guarded").send().await?;

    let wrong_secret = cluster.s3_with(&cluster.info.access_key_id, "not-the-secret");
    let err = wrong_secret.list_objects_v2().bucket("guarded").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("SignatureDoesNotMatch"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    let err = wrong_secret.put_object().bucket("guarded").key("k").body(b"x".to_vec().into()).send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("SignatureDoesNotMatch"));

    let unknown = cluster.s3_with("CKUNKNOWNKEY000000000", "whatever");
    let err = unknown.list_buckets().send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidAccessKeyId"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));

    // A signature scoped to another region is malformed, as S3 answers it.
    let elsewhere = cairn_integration_tests::s3_client(
        &cluster.info.s3_endpoint,
        "eu-west-3",
        &cluster.info.access_key_id,
        &cluster.info.secret_access_key,
    );
    let err = elsewhere.list_objects_v2().bucket("guarded").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("AuthorizationHeaderMalformed"));

    // Nothing was written by the refused requests.
    let listed = s3.list_objects_v2().bucket("guarded").send().await?;
    assert_eq!(listed.key_count(), Some(0));
    Ok(())
}
