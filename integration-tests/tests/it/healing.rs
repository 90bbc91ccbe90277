//! Self-healing: the scrubber finds and replaces damaged chunk copies.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_integration_tests::{DevCluster, test_bytes};

use crate::{create_bucket_with_level, get, put, sha256_hex, wait_for_state};

/// Every chunk file under a node's data directory.
fn chunk_files(data_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let root = data_dir.join("chunks");
    for first in std::fs::read_dir(&root)? {
        let first = first?;
        let name = first.file_name().to_string_lossy().into_owned();
        if name.len() != 2 || !first.file_type()?.is_dir() {
            continue;
        }
        for second in std::fs::read_dir(first.path())? {
            for file in std::fs::read_dir(second?.path())? {
                files.push(file?.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The scrub report of one node, through `cairn admin scrub status --json`, or the error the
/// gateway got asking for it.
fn scrub_report(cluster: &DevCluster, node_id: &str) -> anyhow::Result<serde_json::Value> {
    let reports = cluster.admin_json(&["scrub", "status", "--node", node_id])?;
    Ok(reports[0].clone())
}

/// Polls the scrub report of `node_id` until `done` holds for it.
fn wait_for_scrub(
    cluster: &DevCluster,
    node_id: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = scrub_report(cluster, node_id)?;
        let report = &answer["report"];
        if report.is_object() && done(report) {
            return Ok(report.clone());
        }
        anyhow::ensure!(Instant::now() < deadline, "{node_id}: never {what}: {answer}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run_admin(cluster: &DevCluster, args: &[&str]) -> anyhow::Result<String> {
    let output = cluster.admin(args).output()?;
    anyhow::ensure!(output.status.success(), "cairn admin {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scrubber_replaces_flipped_and_truncated_chunks() -> anyhow::Result<()> {
    let mut env = crate::FAST_FAILURE_DETECTION.to_vec();
    env.push(("CAIRN_SCRUB_RATE_MIB", "0"));
    let mut cluster = DevCluster::start_with(3, &[], &env)?;
    let s3 = cluster.s3();
    create_bucket_with_level(&s3, "scrubbed", "one").await?;
    let mut objects = Vec::new();
    for (i, len) in [9 << 20, 9 << 20, 5 << 20, 1000, 1, 70_000].into_iter().enumerate() {
        let key = format!("object-{i}");
        let data = test_bytes(len, i as u64);
        put(&s3, "scrubbed", &key, data.clone()).await?;
        objects.push((key, data));
    }
    let victim = cluster.info.nodes[0].clone();
    // The first pass (at start, over an empty store) is over before the damage.
    wait_for_scrub(&cluster, &victim.id, "idle after the first pass", |r| {
        r["state"] == "idle" && r["progress"]["passes_completed"].as_u64() >= Some(1)
    })?;

    // Damage three copies on node 1: a flipped payload byte, a truncated file, a flipped
    // header byte.
    let files = chunk_files(&victim.data_dir)?;
    anyhow::ensure!(files.len() >= 10, "node 1 holds {} chunk files", files.len());
    let damaged = [&files[0], &files[files.len() / 2], &files[files.len() - 1]];
    let mut bytes = std::fs::read(damaged[0])?;
    let middle = 64 + (bytes.len() - 64) / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(damaged[0], &bytes)?;
    let len = std::fs::metadata(damaged[1])?.len();
    std::fs::OpenOptions::new().write(true).open(damaged[1])?.set_len(len / 2)?;
    let mut bytes = std::fs::read(damaged[2])?;
    bytes[30] ^= 0x01;
    std::fs::write(damaged[2], &bytes)?;

    // Reads still return the right bytes (a replica whose copy fails its checks is skipped).
    for (key, data) in &objects {
        assert_eq!(sha256_hex(&get(&s3, "scrubbed", key).await?), sha256_hex(data), "{key}");
    }

    let started = serde_json::json!(crate::now_ms());
    run_admin(&cluster, &["scrub", "start", "--node", &victim.id])?;
    let report = wait_for_scrub(&cluster, &victim.id, "done repairing", |r| {
        r["progress"]["last_pass_completed_ms"].as_u64() >= started.as_u64()
            && r["progress"]["corruptions_repaired"] == 3
            && r["repair"]["queued"] == 0
    })?;
    // Found once each, whether by the reads above or by the pass.
    assert_eq!(report["progress"]["corruptions_found"], 3, "{report}");
    assert_eq!(report["repair"]["errored"], 0, "{report}");
    let quarantined = std::fs::read_dir(victim.data_dir.join("chunks").join("quarantine"))?.count();
    assert_eq!(quarantined, 3, "the bad copies are kept aside");
    for file in damaged {
        assert!(file.exists(), "{} was not replaced", file.display());
    }
    let summary = run_admin(&cluster, &["status"])?;
    assert!(summary.contains("SCRUB") && summary.contains("idle"), "{summary}");

    // Pausing outlives a restart, and so do the counters.
    run_admin(&cluster, &["scrub", "pause", "--node", &victim.id])?;
    cluster.kill_node(0);
    cluster.restart_node(0)?;
    let report = wait_for_scrub(&cluster, &victim.id, "back", |_| true)?;
    assert_eq!(report["state"], "paused", "{report}");
    assert_eq!(report["progress"]["corruptions_repaired"], 3, "{report}");
    run_admin(&cluster, &["scrub", "resume", "--node", &victim.id])?;
    wait_for_scrub(&cluster, &victim.id, "resumed", |r| r["state"] != "paused")?;

    // The restored copies alone serve every object: the other replicas are stopped.
    cluster.kill_node(1);
    cluster.kill_node(2);
    wait_for_state(&cluster, &cluster.info.nodes[1].id, "down")?;
    wait_for_state(&cluster, &cluster.info.nodes[2].id, "down")?;
    for (key, data) in &objects {
        assert_eq!(sha256_hex(&get(&s3, "scrubbed", key).await?), sha256_hex(data), "{key} from node 1 alone");
    }
    Ok(())
}

/// Polls until the nodes at `addrs` hold the same rows and chunk counts.
async fn wait_converged(cluster: &DevCluster, addrs: &[String]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let client = cluster.node_client()?;
    loop {
        if cairn_integration_tests::replicas_converged(&client, addrs).await? {
            return Ok(started.elapsed());
        }
        let views = cairn_integration_tests::replica_views(&client, addrs).await?;
        anyhow::ensure!(started.elapsed() < Duration::from_secs(120), "replicas never converged: {views:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_whose_data_directory_is_lost_pulls_every_replica_back() -> anyhow::Result<()> {
    let mut cluster = DevCluster::start_with(3, &[], &crate::FAST_FAILURE_DETECTION)?;
    let s3 = cluster.s3();
    create_bucket_with_level(&s3, "kept", "one").await?;
    s3.create_bucket().bucket("quorum").send().await?;
    let mut objects = Vec::new();
    for (i, len) in [9 << 20, 1, 4096, 5 << 20, 100_000].into_iter().enumerate() {
        let data = test_bytes(len, 40 + i as u64);
        put(&s3, "kept", &format!("object-{i}"), data.clone()).await?;
        put(&s3, "quorum", &format!("object-{i}"), data.clone()).await?;
        objects.push((format!("object-{i}"), data));
    }
    put(&s3, "kept", "object-1", b"overwritten".to_vec()).await?;
    objects[1].1 = b"overwritten".to_vec();
    put(&s3, "kept", "deleted", b"soon gone".to_vec()).await?;
    s3.delete_object().bucket("kept").key("deleted").send().await?;

    // node-1 started the cluster (--bootstrap): it must rejoin it, not start another.
    let lost = cluster.info.nodes[0].clone();
    cluster.kill_node(0);
    cluster.wipe_and_restart_node(0)?;
    // While it rebuilds, reads go to the others.
    for (key, data) in &objects[2..] {
        assert_eq!(sha256_hex(&get(&s3, "quorum", key).await?), sha256_hex(data), "{key} during the rebuild");
    }
    let addrs: Vec<String> = cluster.info.nodes.iter().map(|n| n.rpc_addr.clone()).collect();
    let took = wait_converged(&cluster, &addrs).await?;
    eprintln!("rebuilt an emptied node in {took:?}");
    wait_for_state(&cluster, &lost.id, "healthy")?;
    let log = std::fs::read_to_string(cluster.dir().join(format!("{}.log", lost.id)))?;
    assert!(log.contains("empty data directory"), "the node knew it came back empty");

    assert!(log.contains("joining it"), "the bootstrap node joined its seed's cluster");
    let layout = cluster.admin_json(&["node", "list"])?;
    assert_eq!(layout["nodes"].as_array().map(Vec::len), Some(3), "one cluster of three: {layout}");

    // The rebuilt node alone serves the ONE bucket.
    cluster.kill_node(1);
    cluster.kill_node(2);
    wait_for_state(&cluster, &cluster.info.nodes[1].id, "down")?;
    wait_for_state(&cluster, &cluster.info.nodes[2].id, "down")?;
    for (key, data) in &objects {
        assert_eq!(sha256_hex(&get(&s3, "kept", key).await?), sha256_hex(data), "{key} from the rebuilt node");
    }
    let err = s3.head_object().bucket("kept").key("deleted").send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404), "the delete was pulled too");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_down_past_the_grace_period_is_evicted_and_rejoins_when_back() -> anyhow::Result<()> {
    let mut env = crate::FAST_FAILURE_DETECTION.to_vec();
    env.push(("CAIRN_EVICT_AFTER_SECS", "2"));
    let mut cluster = DevCluster::start_with(3, &[], &env)?;
    let fourth = cluster.start_node("node-4")?;
    let fourth_addr = cluster.info.nodes[fourth].rpc_addr.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = run_admin(&cluster, &["node", "add", &fourth_addr]) {
        anyhow::ensure!(Instant::now() < deadline, "node add kept failing: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s3 = cluster.s3();
    s3.create_bucket().bucket("evicting").send().await?;
    let mut objects = Vec::new();
    for i in 0..12 {
        let data = test_bytes(if i % 3 == 0 { 6 << 20 } else { 10_000 + i }, 70 + i as u64);
        put(&s3, "evicting", &format!("object-{i}"), data.clone()).await?;
        objects.push((format!("object-{i}"), data));
    }
    let all: Vec<String> = cluster.info.nodes.iter().map(|n| n.rpc_addr.clone()).collect();
    crate::rebalance::wait_until_placed(&cluster, &all).await?;

    // node-4 dies and stays down: the leader evicts it and the survivors hold 3 replicas again.
    cluster.kill_node(fourth);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let layout = cluster.admin_json(&["node", "list"])?;
        let membership = layout["nodes"]
            .as_array()
            .and_then(|n| n.iter().find(|n| n["node_id"] == "node-4"))
            .map(|n| n["membership"].clone());
        if membership == Some("evicted".into()) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "node-4 was never evicted: {layout}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let survivors: Vec<String> = all[..3].to_vec();
    let took = crate::rebalance::wait_until_placed(&cluster, &survivors).await?;
    eprintln!("re-replicated after an eviction in {took:?}");
    for (key, data) in &objects {
        assert_eq!(sha256_hex(&get(&s3, "evicting", key).await?), sha256_hex(data), "{key}");
    }

    // When it comes back it takes its place in the layout again, and data moves back.
    cluster.restart_node(fourth)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let layout = cluster.admin_json(&["node", "list"])?;
        let node = layout["nodes"].as_array().and_then(|n| n.iter().find(|n| n["node_id"] == "node-4")).cloned();
        if node.is_some_and(|n| n["membership"] == "active" && n["partitions"].as_u64() > Some(0)) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "node-4 never rejoined: {layout}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    crate::rebalance::wait_until_placed(&cluster, &all).await?;
    for (key, data) in &objects {
        assert_eq!(sha256_hex(&get(&s3, "evicting", key).await?), sha256_hex(data), "{key}");
    }
    Ok(())
}
