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
