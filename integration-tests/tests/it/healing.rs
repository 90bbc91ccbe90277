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
