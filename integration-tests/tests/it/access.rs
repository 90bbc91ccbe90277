//! Bucket ownership, canned ACLs and anonymous access, with a second access key made by
//! `cairn admin key create --json`.

use aws_sdk_s3::types::{BucketCannedAcl, ObjectCannedAcl, Permission, Type};
use bytes::Bytes;
use cairn_integration_tests::DevCluster;
use http_body_util::{BodyExt, Full};

use crate::{error_code, get, put};

/// An unsigned request, as a browser or curl sends it.
async fn anonymous(method: &str, url: &str, body: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-length", body.len())
        .body(Full::new(Bytes::copy_from_slice(body)))?;
    let response = client.request(request).await?;
    let status = response.status().as_u16();
    Ok((status, response.into_body().collect().await?.to_bytes().to_vec()))
}

/// A second access key, made as an operator would.
fn create_key(cluster: &DevCluster, name: &str) -> anyhow::Result<(String, String)> {
    let key = cluster.admin_json(&["key", "create", name])?;
    let text = |field: &str| key[field].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("no {field}"));
    Ok((text("access_key_id")?, text("secret_access_key")?))
}

#[tokio::test(flavor = "multi_thread")]
async fn owners_acls_and_anonymous_requests() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let alice = cluster.s3();
    let (bob_id, bob_secret) = create_key(&cluster, "bob")?;
    let bob = cluster.s3_with(&bob_id, &bob_secret);
    let endpoint = cluster.info.s3_endpoint.clone();

    // One global namespace: Bob cannot take Alice's name; Alice re-creating hers is the
    // us-east-1 legacy 200.
    alice.create_bucket().bucket("alice-private").send().await?;
    let err = bob.create_bucket().bucket("alice-private").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("BucketAlreadyExists"));
    alice.create_bucket().bucket("alice-private").send().await?;
    bob.create_bucket().bucket("bob-bucket").send().await?;
    let names = |out: aws_sdk_s3::operation::list_buckets::ListBucketsOutput| -> Vec<String> {
        out.buckets().iter().filter_map(|b| b.name().map(str::to_owned)).collect()
    };
    assert_eq!(names(bob.list_buckets().send().await?), vec!["bob-bucket"]);
    // Prefix and pages.
    for name in ["bob-b", "bob-c", "other-bob"] {
        bob.create_bucket().bucket(name).send().await?;
    }
    assert_eq!(names(bob.list_buckets().prefix("bob-").send().await?), vec!["bob-b", "bob-bucket", "bob-c"]);
    let first = bob.list_buckets().max_buckets(2).send().await?;
    let token = first.continuation_token().map(str::to_owned);
    assert_eq!(names(first), vec!["bob-b", "bob-bucket"]);
    let rest = bob.list_buckets().max_buckets(2).set_continuation_token(token).send().await?;
    assert!(rest.continuation_token().is_none());
    assert_eq!(names(rest), vec!["bob-c", "other-bob"]);
    assert!(!names(alice.list_buckets().send().await?).contains(&"bob-bucket".to_owned()));

    // A private bucket is closed to other keys and to anonymous requests.
    put(&alice, "alice-private", "secret.txt", b"for alice".to_vec()).await?;
    for err in [
        error_code(&bob.list_objects_v2().bucket("alice-private").send().await.unwrap_err()),
        error_code(&bob.get_object().bucket("alice-private").key("secret.txt").send().await.unwrap_err()),
        error_code(&bob.get_object().bucket("alice-private").key("missing").send().await.unwrap_err()),
        error_code(
            &bob.put_object().bucket("alice-private").key("x").body(b"x".to_vec().into()).send().await.unwrap_err(),
        ),
        error_code(&bob.delete_object().bucket("alice-private").key("secret.txt").send().await.unwrap_err()),
        error_code(&bob.delete_bucket().bucket("alice-private").send().await.unwrap_err()),
    ] {
        assert_eq!(err.as_deref(), Some("AccessDenied"));
    }
    let (status, body) = anonymous("GET", &format!("{endpoint}/alice-private/secret.txt"), b"").await?;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("<Code>AccessDenied</Code>"));
    assert_eq!(anonymous("GET", &format!("{endpoint}/alice-private"), b"").await?.0, 403);
    assert_eq!(anonymous("GET", &format!("{endpoint}/"), b"").await?.0, 403);

    // A public-read object in a private bucket: anyone reads it, nobody else lists.
    alice
        .put_object()
        .bucket("alice-private")
        .key("public.txt")
        .acl(ObjectCannedAcl::PublicRead)
        .body(b"for everyone".to_vec().into())
        .send()
        .await?;
    assert_eq!(
        anonymous("GET", &format!("{endpoint}/alice-private/public.txt"), b"").await?,
        (200, b"for everyone".to_vec())
    );
    assert_eq!(get(&bob, "alice-private", "public.txt").await?, b"for everyone");
    let acl = alice.get_object_acl().bucket("alice-private").key("public.txt").send().await?;
    let grants: Vec<(Option<&Type>, Option<&str>, Option<&Permission>)> = acl
        .grants()
        .iter()
        .map(|g| (g.grantee().map(|e| e.r#type()), g.grantee().and_then(|e| e.uri()), g.permission()))
        .collect();
    assert!(grants.contains(&(
        Some(&Type::Group),
        Some("http://acs.amazonaws.com/groups/global/AllUsers"),
        Some(&Permission::Read)
    )));
    assert_eq!(acl.owner().and_then(|o| o.id()), Some(cluster.info.access_key_id.as_str()));

    // authenticated-read: any key, but not anonymous.
    alice
        .put_object()
        .bucket("alice-private")
        .key("members.txt")
        .acl(ObjectCannedAcl::AuthenticatedRead)
        .body(b"for members".to_vec().into())
        .send()
        .await?;
    assert_eq!(get(&bob, "alice-private", "members.txt").await?, b"for members");
    assert_eq!(anonymous("GET", &format!("{endpoint}/alice-private/members.txt"), b"").await?.0, 403);

    // PutObjectAcl takes an object back to private.
    alice.put_object_acl().bucket("alice-private").key("public.txt").acl(ObjectCannedAcl::Private).send().await?;
    assert_eq!(anonymous("GET", &format!("{endpoint}/alice-private/public.txt"), b"").await?.0, 403);
    assert_eq!(get(&alice, "alice-private", "public.txt").await?, b"for everyone");

    // Bucket ACLs: public-read opens listing; public-read-write opens writing.
    alice.put_bucket_acl().bucket("alice-private").acl(BucketCannedAcl::PublicRead).send().await?;
    let (status, listing) = anonymous("GET", &format!("{endpoint}/alice-private?list-type=2"), b"").await?;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&listing).contains("<Key>secret.txt</Key>"));
    let acl = alice.get_bucket_acl().bucket("alice-private").send().await?;
    assert_eq!(acl.grants().len(), 2);
    assert_eq!(
        error_code(&bob.get_bucket_acl().bucket("alice-private").send().await.unwrap_err()).as_deref(),
        Some("AccessDenied")
    );
    // Listing does not open the objects themselves.
    assert_eq!(anonymous("GET", &format!("{endpoint}/alice-private/secret.txt"), b"").await?.0, 403);

    alice.create_bucket().bucket("dropbox").acl(BucketCannedAcl::PublicReadWrite).send().await?;
    put(&bob, "dropbox", "from-bob", b"hi".to_vec()).await?;
    assert_eq!(anonymous("PUT", &format!("{endpoint}/dropbox/from-anyone"), b"anon").await?.0, 200);
    assert_eq!(get(&alice, "dropbox", "from-anyone").await?, b"anon");
    assert_eq!(
        error_code(&bob.delete_bucket().bucket("dropbox").send().await.unwrap_err()).as_deref(),
        Some("AccessDenied")
    );
    Ok(())
}
