//! The admin API and `cairn admin` against a real cluster: keys, grants, buckets with their
//! usage and health, nodes, status, and the API's JSON errors.

use std::process::Output;

use cairn_integration_tests::{DevCluster, test_bytes};
use serde_json::Value;

use crate::{error_code, put, send_to_cluster, wait_for_state};

/// Runs `cairn admin ARGS` and returns what it printed; fails if it failed.
fn admin_text(cluster: &DevCluster, args: &[&str]) -> anyhow::Result<String> {
    let output = cluster.admin(args).output()?;
    anyhow::ensure!(output.status.success(), "cairn admin {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8(output.stdout)?)
}

/// Runs `cairn admin ARGS`, which must fail; returns what it said.
fn admin_refused(cluster: &DevCluster, args: &[&str]) -> anyhow::Result<String> {
    let Output { status, stderr, .. } = cluster.admin(args).output()?;
    anyhow::ensure!(!status.success(), "cairn admin {args:?} should have failed");
    Ok(String::from_utf8_lossy(&stderr).into_owned())
}

/// Sends an admin API request (with the token unless `token` is None); status and JSON body.
async fn api(
    cluster: &DevCluster,
    method: http::Method,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> anyhow::Result<(u16, Value)> {
    let mut request = http::Request::builder().method(method).uri(format!("{}{path}", cluster.info.admin_endpoint));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body.to_owned())))?;
    let (status, text) = send_to_cluster(request).await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_grants_and_buckets_are_managed_through_the_admin_api() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let alice = cluster.admin_json(&["key", "create", "alice"])?;
    let alice_id = alice["access_key_id"].as_str().unwrap_or_default().to_owned();
    let alice_s3 = cluster.s3_with(&alice_id, alice["secret_access_key"].as_str().unwrap_or_default());
    let bob = cluster.admin_json(&["key", "create", "bob"])?;
    let bob_id = bob["access_key_id"].as_str().unwrap_or_default().to_owned();
    let bob_s3 = cluster.s3_with(&bob_id, bob["secret_access_key"].as_str().unwrap_or_default());

    // A bucket made through the admin API, owned by alice, at ONE.
    admin_text(&cluster, &["bucket", "create", "photos", "--owner", &alice_id, "--consistency", "one"])?;
    let head = alice_s3.head_bucket().bucket("photos").send().await;
    assert!(head.is_ok(), "{head:?}");
    // Usage follows writes, overwrites and deletes.
    put(&alice_s3, "photos", "a", test_bytes(1000, 1)).await?;
    put(&alice_s3, "photos", "b", test_bytes(2000, 2)).await?;
    put(&alice_s3, "photos", "c", test_bytes(5 << 20, 3)).await?;
    put(&alice_s3, "photos", "b", test_bytes(3000, 4)).await?;
    alice_s3.delete_object().bucket("photos").key("c").send().await?;
    let shown = cluster.admin_json(&["bucket", "show", "photos"])?;
    assert_eq!(shown["usage"]["objects"], 2, "{shown}");
    assert_eq!(shown["usage"]["bytes"], 4000, "{shown}");
    assert_eq!(shown["usage"]["complete"], true, "{shown}");
    assert!(shown["usage"]["computed_ms"].as_u64().unwrap_or(0) > 0, "{shown}");
    assert_eq!(shown["consistency"], "one");
    assert_eq!(shown["owner"], alice_id.as_str());
    assert_eq!(shown["health"], "healthy");
    let listed = cluster.admin_json(&["bucket", "list"])?;
    let photos = listed.as_array().and_then(|b| b.iter().find(|b| b["name"] == "photos")).cloned();
    assert_eq!(photos.map(|p| p["usage"]["objects"].clone()), Some(Value::from(2)), "{listed}");
    let table = admin_text(&cluster, &["bucket", "list"])?;
    assert!(table.lines().any(|l| l.starts_with("photos") && l.contains("3.9 KiB") && l.contains("one")), "{table}");

    // Grants: nothing, then read, then read and write, then nothing again.
    let denied = bob_s3.list_objects_v2().bucket("photos").send().await.expect_err("bob may not list yet");
    assert_eq!(error_code(&denied).as_deref(), Some("AccessDenied"));
    admin_text(&cluster, &["key", "grant", &bob_id, "photos", "--read"])?;
    let listing = bob_s3.list_objects_v2().bucket("photos").send().await?;
    assert_eq!(listing.key_count(), Some(2));
    bob_s3.get_object().bucket("photos").key("a").send().await?;
    let write = bob_s3.put_object().bucket("photos").key("bob").body(b"x".to_vec().into()).send().await;
    assert_eq!(write.as_ref().err().and_then(error_code).as_deref(), Some("AccessDenied"));
    admin_text(&cluster, &["key", "grant", &bob_id, "photos", "--read", "--write"])?;
    put(&bob_s3, "photos", "bob", b"x".to_vec()).await?;
    // Writing is not publishing: only an owner may give an object a public ACL.
    let public = bob_s3.put_object().bucket("photos").key("pub").acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead);
    let public = public.body(b"x".to_vec().into()).send().await;
    assert_eq!(public.as_ref().err().and_then(error_code).as_deref(), Some("AccessDenied"));
    let bob_buckets = bob_s3.list_buckets().send().await?;
    assert!(bob_buckets.buckets().iter().any(|b| b.name() == Some("photos")));
    let keys = cluster.admin_json(&["key", "list"])?;
    let bob_view = keys.as_array().and_then(|k| k.iter().find(|k| k["access_key_id"] == bob_id.as_str())).cloned();
    let bob_view = bob_view.unwrap_or_default();
    assert_eq!(bob_view["name"], "bob");
    assert_eq!(bob_view["buckets"][0]["bucket"], "photos", "{keys}");
    assert_eq!(bob_view["buckets"][0]["permissions"]["write"], true, "{keys}");
    assert!(keys.to_string().find("secret").is_none(), "secrets are never listed: {keys}");
    admin_text(&cluster, &["key", "revoke", &bob_id, "photos"])?;
    let denied = bob_s3.list_objects_v2().bucket("photos").send().await.expect_err("revoked");
    assert_eq!(error_code(&denied).as_deref(), Some("AccessDenied"));

    // A key that owns a bucket stays; others go.
    let refused = admin_refused(&cluster, &["key", "delete", &alice_id])?;
    assert!(refused.contains("409") && refused.contains("photos"), "{refused}");
    admin_text(&cluster, &["key", "delete", &bob_id])?;
    let keys = cluster.admin_json(&["key", "list"])?;
    assert!(!keys.to_string().contains(&bob_id), "{keys}");
    let gone = bob_s3.list_buckets().send().await.expect_err("deleted key");
    assert_eq!(error_code(&gone).as_deref(), Some("InvalidAccessKeyId"));

    // Only an empty bucket is deleted.
    let refused = admin_refused(&cluster, &["bucket", "delete", "photos"])?;
    assert!(refused.contains("409") && refused.contains("not empty"), "{refused}");
    for key in ["a", "b", "bob"] {
        alice_s3.delete_object().bucket("photos").key(key).send().await?;
    }
    admin_text(&cluster, &["bucket", "delete", "photos"])?;
    let refused = admin_refused(&cluster, &["bucket", "show", "photos"])?;
    assert!(refused.contains("404"), "{refused}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_status_and_errors_of_the_admin_api() -> anyhow::Result<()> {
    let mut cluster = DevCluster::start_with(3, &[], &crate::FAST_FAILURE_DETECTION)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("quorate").send().await?;
    crate::create_bucket_with_level(&s3, "strict", "all").await?;
    for i in 0..4 {
        put(&s3, "quorate", &format!("k{i}"), test_bytes(10_000, i)).await?;
    }

    // Disk figures come from the last probe: wait for one after the writes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let nodes = loop {
        let nodes = cluster.admin_json(&["node", "status"])?.as_array().cloned().unwrap_or_default();
        if nodes.iter().all(|n| n["used_bytes"].as_u64().is_some_and(|b| b > 0)) {
            break nodes;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "no probe saw the writes: {nodes:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(nodes.len(), 3);
    for node in &nodes {
        assert_eq!(node["state"], "healthy", "{node}");
        assert_eq!(node["membership"], "active", "{node}");
        assert!(node["used_bytes"].as_u64().is_some_and(|b| b > 0), "{node}");
        assert!(node["free_bytes"].as_u64().is_some_and(|b| b > 0), "{node}");
        assert!(node["inodes"].as_u64().is_some_and(|i| i > 0), "{node}");
        assert!(node["free_inodes"].as_u64().is_some_and(|i| i > 0), "{node}");
        assert_eq!(node["version"], env!("CARGO_PKG_VERSION"), "{node}");
        assert!(node["uptime_secs"].as_u64().is_some(), "{node}");
        assert!(node["partitions"].as_u64().is_some_and(|p| p > 0), "{node}");
    }
    let status = cluster.admin_json(&["status"])?;
    assert_eq!(status["health"]["verdict"], "healthy");
    assert_eq!(status["usage"]["objects"], 4, "{status}");
    assert_eq!(status["usage"]["bytes"], 40_000, "{status}");
    let text = admin_text(&cluster, &["status"])?;
    assert!(text.starts_with("cluster: healthy\n"), "{text}");
    assert!(text.contains("usage:   2 buckets, 4 objects, 39.1 KiB"), "{text}");

    // With a node down, usage is read from the replicas left, and health follows each
    // bucket's level.
    cluster.kill_node(2);
    wait_for_state(&cluster, &cluster.info.nodes[2].id, "down")?;
    let buckets = cluster.admin_json(&["bucket", "list"])?;
    let bucket =
        |name: &str| buckets.as_array().and_then(|b| b.iter().find(|b| b["name"] == name)).cloned().unwrap_or_default();
    assert_eq!(bucket("quorate")["usage"]["objects"], 4, "{buckets}");
    assert_eq!(bucket("quorate")["usage"]["complete"], true, "{buckets}");
    assert_eq!(bucket("quorate")["health"], "degraded", "{buckets}");
    assert_eq!(bucket("strict")["health"], "read_only", "{buckets}");
    let node_table = admin_text(&cluster, &["node", "status"])?;
    let victim = &cluster.info.nodes[2].id;
    assert!(node_table.lines().any(|l| l.starts_with(victim.as_str()) && l.contains("down")), "{node_table}");

    // Errors are JSON with a status and a stable code.
    let token = cluster.info.admin_token.clone();
    let (status, body) = api(&cluster, http::Method::GET, "/v1/buckets", None, "").await?;
    assert_eq!((status, body["error"].as_str()), (401, Some("unauthorized")), "{body}");
    let (status, body) = api(&cluster, http::Method::GET, "/v1/buckets/absent", Some(&token), "").await?;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")), "{body}");
    let bad_level = r#"{"name":"levels","owner":"x","consistency":"some"}"#;
    let (status, body) = api(&cluster, http::Method::POST, "/v1/buckets", Some(&token), bad_level).await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")), "{body}");
    let (status, body) = api(&cluster, http::Method::POST, "/v1/buckets", Some(&token), "{not json").await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")), "{body}");
    let (status, body) = api(&cluster, http::Method::DELETE, "/v1/nodes/nobody", Some(&token), "").await?;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")), "{body}");
    let (status, body) = api(&cluster, http::Method::GET, "/v1/nothing-here", Some(&token), "").await?;
    assert_eq!(status, 404, "{body}");
    Ok(())
}
