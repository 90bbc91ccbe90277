//! Per-bucket consistency levels under killed and paused nodes (RF 3 on 3 nodes).

use std::time::{Duration, Instant};

use aws_sdk_s3::config::retry::RetryConfig;
use cairn_integration_tests::DevCluster;

use crate::{create_bucket_with_level, error_code, get, put, wait_for_state};

/// A client that reports the first 503 instead of retrying it.
fn without_retries(s3: &aws_sdk_s3::Client) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(s3.config().to_builder().retry_config(RetryConfig::disabled()).build())
}

fn levels(cluster: &DevCluster) -> anyhow::Result<Vec<(String, String)>> {
    let buckets = cluster.admin_json(&["bucket", "list"])?;
    Ok(buckets
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|b| (b["name"].as_str().unwrap_or("").to_owned(), b["consistency"].as_str().unwrap_or("").to_owned()))
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn each_level_keeps_its_promise_with_nodes_down() -> anyhow::Result<()> {
    let mut cluster = DevCluster::start_with(3, &[], &crate::FAST_FAILURE_DETECTION)?;
    let s3 = without_retries(&cluster.s3());
    for (bucket, level) in [("one", "one"), ("quorum", "quorum"), ("all", "all"), ("all-kept", "all")] {
        create_bucket_with_level(&s3, bucket, level).await?;
        put(&s3, bucket, "before", b"written with every node up".to_vec()).await?;
    }
    s3.create_bucket().bucket("default").send().await?;
    let err = s3
        .create_bucket()
        .bucket("bad-level")
        .customize()
        .mutate_request(|request| {
            request.headers_mut().insert("x-cairn-consistency", "most");
        })
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("InvalidArgument"));
    let mut shown = levels(&cluster)?;
    shown.sort();
    assert_eq!(
        shown,
        [("all", "all"), ("all-kept", "all"), ("default", "quorum"), ("one", "one"), ("quorum", "quorum")]
            .map(|(b, l)| (b.to_owned(), l.to_owned()))
    );

    // One node down: QUORUM and ONE read and write; ALL refuses writes but still reads.
    cluster.kill_node(1);
    wait_for_state(&cluster, &cluster.info.nodes[1].id, "down")?;
    for level in ["one", "quorum"] {
        put(&s3, level, "one-down", level.as_bytes().to_vec()).await?;
        assert_eq!(get(&s3, level, "one-down").await?, level.as_bytes());
        assert_eq!(get(&s3, level, "before").await?, b"written with every node up");
    }
    let err = s3.put_object().bucket("all").key("one-down").body(b"x".to_vec().into()).send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("ServiceUnavailable"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503));
    assert_eq!(get(&s3, "all", "before").await?, b"written with every node up");
    // The refused write left nothing visible.
    let err = s3.head_object().bucket("all").key("one-down").send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    // The operator lowers the level: the same bucket now takes writes.
    let output = cluster.admin(&["bucket", "set-consistency", "all", "quorum"]).output()?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(levels(&cluster)?.contains(&("all".to_owned(), "quorum".to_owned())));
    put(&s3, "all", "one-down", b"at level quorum".to_vec()).await?;

    // Two nodes down: QUORUM refuses, ONE goes on.
    cluster.kill_node(2);
    wait_for_state(&cluster, &cluster.info.nodes[2].id, "down")?;
    let started = Instant::now();
    let err = s3.put_object().bucket("quorum").key("two-down").body(b"x".to_vec().into()).send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("ServiceUnavailable"));
    assert!(
        started.elapsed() < Duration::from_millis(crate::FAST_QUORUM_TIMEOUT_MS + 3_000),
        "{:?}",
        started.elapsed()
    );
    put(&s3, "one", "two-down", b"still taken".to_vec()).await?;
    assert_eq!(get(&s3, "one", "two-down").await?, b"still taken");
    // ALL: writes refused, reads served by the one replica left.
    assert_eq!(get(&s3, "all-kept", "before").await?, b"written with every node up");
    let err = s3.put_object().bucket("all-kept").key("two-down").body(b"x".to_vec().into()).send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("ServiceUnavailable"));
    let err = s3.get_object().bucket("quorum").key("before").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("ServiceUnavailable"), "QUORUM reads need two replicas");
    // Without a majority the control plane refuses changes rather than split.
    let output = cluster.admin(&["bucket", "set-consistency", "quorum", "one"]).output()?;
    assert!(!output.status.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_node_is_waited_on_at_most_the_quorum_timeout_then_skipped() -> anyhow::Result<()> {
    let cluster = DevCluster::start_with(3, &[], &crate::FAST_FAILURE_DETECTION)?;
    let s3 = without_retries(&cluster.s3());
    create_bucket_with_level(&s3, "one", "one").await?;
    create_bucket_with_level(&s3, "quorum", "quorum").await?;
    create_bucket_with_level(&s3, "all", "all").await?;
    let data = cairn_integration_tests::test_bytes(9 * 1024 * 1024, 5);
    put(&s3, "quorum", "big", data.clone()).await?;
    put(&s3, "all", "big", data.clone()).await?;
    for i in 0..6u8 {
        put(&s3, "all", &format!("small-{i}"), vec![i; 100]).await?;
    }

    // A node hangs and nobody knows yet: reads at level ALL (one replica) ask the next replica
    // after a fraction of the quorum timeout instead of failing.
    cluster.pause_node(0);
    for i in 0..6u8 {
        assert_eq!(get(&s3, "all", &format!("small-{i}")).await?, vec![i; 100]);
    }
    cluster.resume_node(0);
    wait_for_state(&cluster, &cluster.info.nodes[0].id, "healthy")?;

    // Two nodes hang (SIGSTOP) before the detector notices: a QUORUM write fails within the
    // quorum timeout, not the RPC timeout.
    cluster.pause_node(1);
    cluster.pause_node(2);
    let started = Instant::now();
    let err = s3.put_object().bucket("quorum").key("hung").body(b"x".to_vec().into()).send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("ServiceUnavailable"));
    assert!(
        started.elapsed() < Duration::from_millis(crate::FAST_QUORUM_TIMEOUT_MS + 3_000),
        "{:?}",
        started.elapsed()
    );
    // What the refused write may have left behind is recorded for garbage collection.
    let pending_kind = [cairn_storage_node::manifest::RowKind::PendingChunks as u8];
    let rows = cluster.node_client()?.scan_rows(&cluster.info.nodes[0].rpc_addr, &pending_kind, None, 10).await?;
    let pending: Vec<cairn_storage_node::manifest::PendingChunks> = rows
        .iter()
        .filter(|row| !row.tombstone)
        .filter_map(|row| cairn_storage_node::manifest::decode_record(&row.value).ok())
        .collect();
    assert!(pending.iter().any(|o| o.part == 1 && o.count >= 1), "{pending:?}");
    cluster.resume_node(2);

    // One node hangs: QUORUM reads and writes go on, ALL reads fall back to the others.
    wait_for_state(&cluster, &cluster.info.nodes[1].id, "down")?;
    wait_for_state(&cluster, &cluster.info.nodes[2].id, "healthy")?;
    for i in 0..5 {
        put(&s3, "quorum", &format!("k{i}"), vec![i; 1000]).await?;
        assert_eq!(get(&s3, "quorum", &format!("k{i}")).await?, vec![i; 1000]);
    }
    assert!(get(&s3, "quorum", "big").await? == data);
    assert!(get(&s3, "all", "big").await? == data);
    put(&s3, "one", "hung", b"one replica is enough".to_vec()).await?;
    assert_eq!(get(&s3, "one", "hung").await?, b"one replica is enough");
    let err = s3.put_object().bucket("all").key("hung").body(b"x".to_vec().into()).send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("ServiceUnavailable"));

    // Back: the node is healthy again and takes part.
    cluster.resume_node(1);
    wait_for_state(&cluster, &cluster.info.nodes[1].id, "healthy")?;
    put(&s3, "all", "after", b"every replica".to_vec()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_node_catches_up_on_the_writes_it_missed() -> anyhow::Result<()> {
    let mut cluster = DevCluster::start_with(3, &[], &crate::FAST_FAILURE_DETECTION)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("missed").send().await?;
    put(&s3, "missed", "old", b"before the crash".to_vec()).await?;

    // Node 2 misses new objects (several chunks each), an overwrite and a delete.
    cluster.kill_node(1);
    let big = cairn_integration_tests::test_bytes(9 * 1024 * 1024, 12);
    for i in 0..3 {
        put(&s3, "missed", &format!("new-{i}"), big.clone()).await?;
    }
    put(&s3, "missed", "old", b"overwritten".to_vec()).await?;
    s3.delete_object().bucket("missed").key("new-2").send().await?;

    // Back, it pulls what it lacks until every replica holds the same rows and chunks.
    cluster.restart_node(1)?;
    let client = cluster.node_client()?;
    let addrs: Vec<String> = cluster.info.nodes.iter().map(|n| n.rpc_addr.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cairn_integration_tests::replicas_converged(&client, &addrs).await.unwrap_or(false) {
        anyhow::ensure!(Instant::now() < deadline, "node 2 never caught up:\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_state(&cluster, &cluster.info.nodes[1].id, "healthy")?;

    // With the other two stopped, node 2 alone serves everything at level ONE.
    let output = cluster.admin(&["bucket", "set-consistency", "missed", "one"]).output()?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    cluster.kill_node(0);
    cluster.kill_node(2);
    wait_for_state(&cluster, &cluster.info.nodes[0].id, "down")?;
    wait_for_state(&cluster, &cluster.info.nodes[2].id, "down")?;
    for i in 0..2 {
        assert!(get(&s3, "missed", &format!("new-{i}")).await? == big, "new-{i}");
    }
    assert_eq!(get(&s3, "missed", "old").await?, b"overwritten");
    let err = s3.head_object().bucket("missed").key("new-2").send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    Ok(())
}
