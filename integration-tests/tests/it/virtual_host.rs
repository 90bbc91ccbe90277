//! Virtual-hosted-style addressing: `BUCKET.<domain>` in the Host header names the bucket.

use cairn_integration_tests::DevCluster;

use crate::{get, put, send_signed};

#[tokio::test(flavor = "multi_thread")]
async fn buckets_are_named_by_the_host_under_the_configured_domain() -> anyhow::Result<()> {
    let cluster = DevCluster::start_with(3, &[], &[("CAIRN_S3_DOMAIN", "s3.cairn.test")])?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("vhost").send().await?;
    let port = cluster.info.s3_endpoint.rsplit(':').next().unwrap_or_default().to_owned();
    let host = format!("vhost.s3.cairn.test:{port}");

    // PUT and GET through the virtual host; the object is the same one path style sees.
    let url = format!("http://{host}/dir/a%20b.txt");
    let (status, body) = send_signed(&cluster, "PUT", &url, &host, b"hello", b"hello").await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(&s3, "vhost", "dir/a b.txt").await?, b"hello");
    put(&s3, "vhost", "other", b"path style".to_vec()).await?;
    let (status, body) = send_signed(&cluster, "GET", &format!("http://{host}/other"), &host, b"", b"").await?;
    assert_eq!((status, body.as_str()), (200, "path style"));

    // The bucket root lists it.
    let (status, listing) =
        send_signed(&cluster, "GET", &format!("http://{host}/?list-type=2"), &host, b"", b"").await?;
    assert_eq!(status, 200, "{listing}");
    assert!(listing.contains("<Name>vhost</Name>") && listing.contains("<Key>dir/a b.txt</Key>"), "{listing}");

    // A host outside the domain is path style, as before.
    let plain = cluster.info.s3_endpoint.trim_start_matches("http://").to_owned();
    let (status, _) = send_signed(&cluster, "GET", &format!("http://{plain}/vhost/other"), &plain, b"", b"").await?;
    assert_eq!(status, 200);
    // An unknown bucket under the domain is NoSuchBucket.
    let missing = format!("nope.s3.cairn.test:{port}");
    let (status, body) = send_signed(&cluster, "GET", &format!("http://{missing}/k"), &missing, b"", b"").await?;
    assert_eq!(status, 404);
    assert!(body.contains("<Code>NoSuchBucket</Code>"), "{body}");
    Ok(())
}

/// Behind a reverse proxy that rewrites `Host`, requests signed for the public endpoint verify,
/// presigned or not; requests signed for any other host still do not.
#[tokio::test(flavor = "multi_thread")]
async fn signatures_for_the_public_endpoint_verify_behind_a_host_rewriting_proxy() -> anyhow::Result<()> {
    use aws_sdk_s3::presigning::PresigningConfig;
    use cairn_integration_tests::s3_client;
    use std::time::Duration;

    let public = "http://s3.public.test:8080";
    let cluster = DevCluster::start_with(3, &[], &[("CAIRN_PUBLIC_ENDPOINT", public)])?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("proxied").send().await?;
    let info = &cluster.info;
    let public_client = s3_client(public, &info.region, &info.access_key_id, &info.secret_access_key);
    let loopback = info.s3_endpoint.trim_start_matches("http://").to_owned();
    let expiry = PresigningConfig::expires_in(Duration::from_secs(300))?;

    // SigV4 presigned PUT and GET made by the SDK for the public endpoint.
    let put = public_client.put_object().bucket("proxied").key("a b+c.txt").presigned(expiry.clone()).await?;
    let (status, body) = crate::send_presigned(&cluster, &put, b"through the proxy").await?;
    assert_eq!(status, 200, "{body}");
    let get = public_client.get_object().bucket("proxied").key("a b+c.txt").presigned(expiry.clone()).await?;
    assert_eq!(crate::send_presigned(&cluster, &get, b"").await?, (200, "through the proxy".to_owned()));

    // A header-signed request for the public host, received with the gateway's own host.
    let url = format!("{public}/proxied/a%20b%2Bc.txt");
    let (status, body) =
        crate::send_signed_as(&cluster, "GET", &url, "s3.public.test:8080", &loopback, b"", b"").await?;
    assert_eq!((status, body.as_str()), (200, "through the proxy"));

    // Signed for some other host: refused, as without a public endpoint.
    let elsewhere = s3_client("http://elsewhere.test", &info.region, &info.access_key_id, &info.secret_access_key);
    let get = elsewhere.get_object().bucket("proxied").key("a b+c.txt").presigned(expiry).await?;
    let (status, body) = crate::send_presigned(&cluster, &get, b"").await?;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("<Code>SignatureDoesNotMatch</Code>"), "{body}");

    // A proxy that keeps `Host` serves virtual-hosted style under the public host name.
    let host = "proxied.s3.public.test:8080";
    let (status, body) = send_signed(&cluster, "GET", &format!("http://{host}/a%20b%2Bc.txt"), host, b"", b"").await?;
    assert_eq!((status, body.as_str()), (200, "through the proxy"));

    // CompleteMultipartUpload names the object at the public endpoint.
    let upload = s3.create_multipart_upload().bucket("proxied").key("big file").send().await?;
    let upload_id = upload.upload_id().unwrap_or_default();
    let part = s3
        .upload_part()
        .bucket("proxied")
        .key("big file")
        .upload_id(upload_id)
        .part_number(1)
        .body(b"one part".to_vec().into())
        .send()
        .await?;
    let parts = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(
            aws_sdk_s3::types::CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap_or_default()).build(),
        )
        .build();
    let done = s3
        .complete_multipart_upload()
        .bucket("proxied")
        .key("big file")
        .upload_id(upload_id)
        .multipart_upload(parts)
        .send()
        .await?;
    assert_eq!(done.location(), Some("http://s3.public.test:8080/proxied/big%20file"));
    Ok(())
}
