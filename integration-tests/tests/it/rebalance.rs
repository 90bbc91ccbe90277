//! Layout changes: adding and removing nodes moves data while reads and writes go on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_integration_tests::{DevCluster, placement_violations, test_bytes};

use crate::{get, put, sha256_hex};

/// Objects written before the layout changes: some of several chunks, some small.
const SEEDED: usize = 24;
/// Bound on the writes of the load running during the move.
const MAX_LOAD_WRITES: usize = 400;

fn run_admin(cluster: &DevCluster, args: &[&str]) -> anyhow::Result<String> {
    let output = cluster.admin(args).output()?;
    anyhow::ensure!(output.status.success(), "cairn admin {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Objects by key and body.
type Objects = Vec<(String, Vec<u8>)>;

/// A steady write load until `stop` (or its bound); returns the keys and bodies acknowledged.
fn write_load(s3: aws_sdk_s3::Client, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<anyhow::Result<Objects>> {
    tokio::spawn(async move {
        let mut written = Vec::new();
        for i in 0..MAX_LOAD_WRITES {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let key = format!("load/{i:04}");
            let data = test_bytes(if i % 10 == 0 { 5 << 20 } else { 20_000 + i }, 1000 + i as u64);
            put(&s3, "moving", &key, data.clone()).await?;
            written.push((key, data));
        }
        Ok(written)
    })
}

/// Polls until no move is in progress, every node reports itself caught up and handed off,
/// and the data sits exactly on its replicas; returns how long that took.
pub async fn wait_until_placed(cluster: &DevCluster, addrs: &[String]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let client = cluster.node_client()?;
    let deadline = started + Duration::from_secs(180);
    loop {
        let violations = placement_violations(&client, addrs).await?;
        let status = cluster.admin_json(&["status"])?;
        let settled = status["nodes"].as_array().is_some_and(|nodes| {
            nodes.iter().filter(|n| addrs.contains(&n["rpc_addr"].as_str().unwrap_or("").to_owned())).all(|n| {
                let sync = &n["status"]["sync"];
                sync["partitions_remaining"] == 0 && sync["handoff_pending"] == 0 && sync["moving"] == false
            })
        });
        if violations.is_empty() && settled {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "data never settled: {} violations, first: {:?}; status {status}",
            violations.len(),
            violations.first()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn check_objects(s3: &aws_sdk_s3::Client, objects: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    for (key, data) in objects {
        assert_eq!(sha256_hex(&get(s3, "moving", key).await?), sha256_hex(data), "{key}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn adding_then_removing_a_node_moves_data_under_load() -> anyhow::Result<()> {
    let mut cluster = DevCluster::start_with(3, &[], &crate::FAST_FAILURE_DETECTION)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("moving").send().await?;
    let mut objects = Vec::new();
    for i in 0..SEEDED {
        let key = format!("seed/{i:02}");
        let data = test_bytes(if i % 4 == 0 { 9 << 20 } else { 3000 * (i + 1) }, i as u64);
        put(&s3, "moving", &key, data.clone()).await?;
        objects.push((key, data));
    }

    // A fourth node joins under a steady write load.
    let fourth = cluster.start_node("node-4")?;
    let fourth_addr = cluster.info.nodes[fourth].rpc_addr.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let load = write_load(s3.clone(), stop.clone());
    // The node answers once it listens; adding it is refused until then.
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = run_admin(&cluster, &["node", "add", &fourth_addr]) {
        anyhow::ensure!(Instant::now() < deadline, "node add kept failing: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let layout = cluster.admin_json(&["node", "list"])?;
    assert_eq!(layout["nodes"].as_array().map(Vec::len), Some(4), "{layout}");
    // Reads keep working while the data moves.
    check_objects(&s3, &objects[..4]).await?;
    let addrs: Vec<String> = cluster.info.nodes.iter().map(|n| n.rpc_addr.clone()).collect();
    let took = wait_until_placed(&cluster, &addrs).await?;
    stop.store(true, Ordering::Relaxed);
    let written = load.await??;
    anyhow::ensure!(!written.is_empty(), "the load wrote nothing");
    eprintln!("adding a node: placed in {took:?}, {} writes during the move", written.len());
    objects.extend(written);
    // Writes made once the move ended land where they belong too.
    put(&s3, "moving", "after-add", b"after the move".to_vec()).await?;
    objects.push(("after-add".into(), b"after the move".to_vec()));
    let layout = cluster.admin_json(&["node", "list"])?;
    let partitions = layout["nodes"][3]["partitions"].as_u64().unwrap_or(0);
    assert!(partitions > 500, "node-4 holds {partitions} partitions: {layout}");
    check_objects(&s3, &objects).await?;
    wait_until_placed(&cluster, &addrs).await?;

    // node-2 leaves, again under load: its data moves to the three others.
    let stop = Arc::new(AtomicBool::new(false));
    let load = write_load(s3.clone(), stop.clone());
    run_admin(&cluster, &["node", "remove", "node-2"])?;
    let took = wait_until_placed(&cluster, &addrs).await?;
    stop.store(true, Ordering::Relaxed);
    let written = load.await??;
    eprintln!("removing a node: placed in {took:?}, {} writes during the move", written.len());
    // The load reuses its keys: the later bodies replace the earlier ones.
    for (key, data) in written {
        match objects.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = data,
            None => objects.push((key, data)),
        }
    }
    let status = cluster.admin_json(&["status"])?;
    let removed = status["nodes"].as_array().and_then(|n| n.iter().find(|n| n["node_id"] == "node-2")).cloned();
    assert_eq!(removed.map(|n| n["status"]["chunk_count"].clone()), Some(0.into()), "node-2 keeps no chunks");
    // With node-2 stopped, everything is still there.
    cluster.kill_node(1);
    check_objects(&s3, &objects).await?;

    // Added again, it takes a share of the partitions back.
    cluster.restart_node(1)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = run_admin(&cluster, &["node", "add", &addrs[1]]) {
        anyhow::ensure!(Instant::now() < deadline, "adding node-2 back kept failing: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let layout = cluster.admin_json(&["node", "list"])?;
    let back = layout["nodes"].as_array().and_then(|n| n.iter().find(|n| n["node_id"] == "node-2")).cloned();
    assert_eq!(back.map(|n| n["membership"].clone()), Some("active".into()), "{layout}");
    wait_until_placed(&cluster, &addrs).await?;
    check_objects(&s3, &objects).await?;
    Ok(())
}

/// Node `node_id`'s entry in `cairn admin status` (null while the gateway does not list it).
fn node_status(cluster: &DevCluster, node_id: &str) -> anyhow::Result<serde_json::Value> {
    let status = cluster.admin_json(&["status"])?;
    let node = status["nodes"].as_array().and_then(|nodes| nodes.iter().find(|n| n["node_id"] == node_id)).cloned();
    Ok(node.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_move_resumes_after_the_receiving_node_restarts() -> anyhow::Result<()> {
    const MIB: u64 = 1 << 20;
    let mut env = crate::FAST_FAILURE_DETECTION.to_vec();
    env.push(("CAIRN_TRANSFER_RATE_MIB", "4"));
    let mut cluster = DevCluster::start_with(3, &[], &env)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("moving").send().await?;
    let objects: Objects = (0..10).map(|i| (format!("big/{i}"), test_bytes(8 << 20, 50 + i))).collect();
    for (key, data) in &objects {
        put(&s3, "moving", key, data.clone()).await?;
    }

    let fourth = cluster.start_node("node-4")?;
    let fourth_addr = cluster.info.nodes[fourth].rpc_addr.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = run_admin(&cluster, &["node", "add", &fourth_addr]) {
        anyhow::ensure!(Instant::now() < deadline, "node add kept failing: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Killed in the middle of pulling its share (4 MiB/s: about ten seconds for ~50 MiB).
    let deadline = Instant::now() + Duration::from_secs(60);
    let pulled_before = loop {
        let node = node_status(&cluster, "node-4")?;
        let pulled = node["status"]["sync"]["bytes_pulled"].as_u64().unwrap_or(0);
        // Progress shows while the move runs.
        let left = node["status"]["sync"]["bytes_remaining"].as_u64().unwrap_or(0);
        let moving = !cluster.admin_json(&["node", "list"])?["moving_from"].is_null();
        if pulled >= 8 * MIB && left > 0 && moving {
            break pulled;
        }
        anyhow::ensure!(Instant::now() < deadline, "node-4 never got halfway: {node}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    cluster.kill_node(fourth);
    cluster.restart_node(fourth)?;

    let addrs: Vec<String> = cluster.info.nodes.iter().map(|n| n.rpc_addr.clone()).collect();
    wait_until_placed(&cluster, &addrs).await?;
    check_objects(&s3, &objects).await?;
    // It went on from what it had: what it pulled after the restart is what it still lacked
    // (give or take the one chunk being copied when it was killed), not its whole share again.
    let node = node_status(&cluster, "node-4")?;
    let held = node["status"]["used_bytes"].as_u64().unwrap_or(0);
    let pulled_after = node["status"]["sync"]["bytes_pulled"].as_u64().unwrap_or(0);
    assert!(held > pulled_before, "{node}");
    assert!(
        pulled_after + pulled_before <= held + 4 * MIB + 4096,
        "pulled {pulled_before} then {pulled_after}: {node}"
    );
    Ok(())
}
