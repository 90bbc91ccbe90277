use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_integration_tests::{DevCluster, test_bytes};

use crate::{get, put};

const MIB: usize = 1024 * 1024;

/// Writes objects until told to stop; returns the keys (and bodies' seeds) that were acknowledged.
async fn write_until(s3: aws_sdk_s3::Client, stop: Arc<AtomicBool>, prefix: &'static str) -> Vec<(String, u64)> {
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline && i < 400 {
        let key = format!("{prefix}/{i:04}");
        let size = MIB * (1 + (i as usize % 5)) + i as usize;
        if put(&s3, "durable", &key, test_bytes(size, i)).await.is_ok() {
            acked.push((key, i));
        }
        i += 1;
    }
    acked
}

async fn verify(s3: &aws_sdk_s3::Client, acked: &[(String, u64)]) -> anyhow::Result<()> {
    for (key, seed) in acked {
        let size = MIB * (1 + (*seed as usize % 5)) + *seed as usize;
        let back = get(s3, "durable", key).await?;
        assert!(back == test_bytes(size, *seed), "acknowledged object {key} came back different");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_node_loses_nothing_acknowledged() -> anyhow::Result<()> {
    let mut cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("durable").send().await?;

    // Kill node 2 with SIGKILL while a writer is busy.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_until(s3.clone(), stop.clone(), "during"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while s3.list_objects_v2().bucket("durable").send().await?.key_count().unwrap_or(0) < 5 {
        anyhow::ensure!(Instant::now() < deadline, "the writer made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.kill_node(1);
    let progress_deadline = Instant::now() + Duration::from_secs(60);
    let before = s3.list_objects_v2().bucket("durable").send().await?.key_count().unwrap_or(0);
    while s3.list_objects_v2().bucket("durable").send().await?.key_count().unwrap_or(0) < before + 5 {
        anyhow::ensure!(Instant::now() < progress_deadline, "writes stopped after a node died:\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let during = writer.await?;
    assert!(during.len() >= 10, "only {} writes acknowledged", during.len());

    // With the node down: everything acknowledged reads back, and new writes work.
    verify(&s3, &during).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_until(s3.clone(), stop.clone(), "after"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while s3.list_objects_v2().bucket("durable").prefix("after/").send().await?.key_count().unwrap_or(0) < 10 {
        anyhow::ensure!(Instant::now() < deadline, "no writes with a node down:\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let after = writer.await?;
    verify(&s3, &after).await?;

    // The node comes back with its data directory: it rejoins, and nothing stale or corrupt
    // is served (it missed writes; quorum reads and replica fallback cover them).
    cluster.restart_node(1)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if put(&s3, "durable", "rejoined", b"hello".to_vec()).await.is_ok() {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "no writes after restart:\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    verify(&s3, &during).await?;
    verify(&s3, &after).await?;
    assert_eq!(get(&s3, "durable", "rejoined").await?, b"hello");
    // Overwrite something the restarted node missed and read it back: newest wins.
    let (key, _) = &after[0];
    put(&s3, "durable", key, b"v2".to_vec()).await?;
    assert_eq!(get(&s3, "durable", key).await?, b"v2");
    Ok(())
}
