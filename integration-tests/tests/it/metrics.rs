//! `/metrics` after a workload: every series `docs/metrics.md` documents is there (and nothing
//! undocumented), with values that match what the workload did.

use std::collections::{BTreeMap, BTreeSet};

use cairn_integration_tests::{DevCluster, test_bytes};

use crate::{get, http_get, put};

/// Parses the text exposition: every sample by `name{labels}`, and the names given a TYPE.
fn parse(text: &str) -> (BTreeMap<String, f64>, BTreeSet<String>) {
    let mut samples = BTreeMap::new();
    let mut typed = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.insert(rest.split(' ').next().unwrap_or_default().to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').expect("a sample is `series value`");
            samples.insert(series.to_owned(), value.parse().expect("a sample value is a number"));
        }
    }
    (samples, typed)
}

/// The metric names `docs/metrics.md` documents (first column of its tables).
fn documented() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/metrics.md"))
        .expect("docs/metrics.md");
    doc.lines()
        .filter_map(|line| line.strip_prefix("| `cairn_"))
        .filter_map(|rest| rest.split('`').next())
        .map(|name| format!("cairn_{name}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_cover_the_documented_series_with_plausible_values() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("measured").send().await?;
    let bodies: Vec<Vec<u8>> =
        (0..5).map(|i| test_bytes(if i == 0 { 5 << 20 } else { 1000 * (i + 1) }, i as u64)).collect();
    let total: usize = bodies.iter().map(Vec::len).sum();
    for (i, body) in bodies.iter().enumerate() {
        put(&s3, "measured", &format!("k{i}"), body.clone()).await?;
    }
    for (i, body) in bodies.iter().enumerate() {
        assert_eq!(&get(&s3, "measured", &format!("k{i}")).await?, body);
    }
    assert!(s3.get_object().bucket("measured").key("absent").send().await.is_err());
    let intruder = cluster.s3_with(&cluster.info.access_key_id, "not-the-secret");
    assert!(intruder.list_objects_v2().bucket("measured").send().await.is_err());

    let (status, text) = http_get(&format!("{}/metrics", cluster.info.admin_endpoint)).await?;
    assert_eq!(status, 200, "{text}");
    let (samples, typed) = parse(&text);
    let value = |series: &str| samples.get(series).copied().unwrap_or_else(|| panic!("no {series} in\n{text}"));

    // Exactly the documented metric families.
    assert_eq!(typed, documented(), "the families served and the ones docs/metrics.md lists differ");

    // S3 traffic as the workload made it.
    assert!(value(r#"cairn_s3_requests_total{operation="PutObject",status="200"}"#) >= 5.0);
    assert!(value(r#"cairn_s3_requests_total{operation="GetObject",status="200"}"#) >= 5.0);
    assert!(value(r#"cairn_s3_requests_total{operation="GetObject",status="404"}"#) >= 1.0);
    assert!(value(r#"cairn_s3_requests_total{operation="CreateBucket",status="200"}"#) >= 1.0);
    assert!(value(r#"cairn_s3_auth_failures_total{code="SignatureDoesNotMatch"}"#) >= 1.0);
    assert!(value(r#"cairn_s3_received_bytes_total{operation="PutObject"}"#) >= total as f64);
    assert!(value(r#"cairn_s3_sent_bytes_total{operation="GetObject"}"#) >= total as f64);
    let puts = value(r#"cairn_s3_request_duration_seconds_count{operation="PutObject"}"#);
    assert!(puts >= 5.0);
    assert_eq!(value(r#"cairn_s3_request_duration_seconds_bucket{operation="PutObject",le="+Inf"}"#), puts);
    assert!(value(r#"cairn_s3_request_duration_seconds_sum{operation="PutObject"}"#) > 0.0);
    assert!(value(r#"cairn_s3_time_to_first_byte_seconds_count{operation="GetObject"}"#) >= 6.0);
    assert_eq!(value("cairn_s3_requests_in_flight"), 0.0);

    // Replication: 3 copies of each chunk (the 5 MiB body is two chunks), every node talked to.
    assert!(value("cairn_chunk_writes_total") >= 3.0 * 6.0);
    assert!(value("cairn_chunk_reads_total") >= 6.0);
    for node in &cluster.info.nodes {
        let id = &node.id;
        assert!(value(&format!(r#"cairn_rpc_duration_seconds_count{{node="{id}"}}"#)) > 0.0);
        assert_eq!(value(&format!(r#"cairn_node_up{{node="{id}"}}"#)), 1.0);
        assert!(value(&format!(r#"cairn_node_disk_capacity_bytes{{node="{id}"}}"#)) > 0.0);
        assert!(value(&format!(r#"cairn_node_disk_free_inodes{{node="{id}"}}"#)) > 0.0);
        assert!(value(&format!(r#"cairn_node_start_time_seconds{{node="{id}"}}"#)) > 1.7e9);
    }

    // The cluster: three healthy nodes, every partition with its quorum.
    assert_eq!(value(r#"cairn_cluster_health{verdict="healthy"}"#), 1.0);
    assert_eq!(value(r#"cairn_cluster_health{verdict="unavailable"}"#), 0.0);
    assert_eq!(value(r#"cairn_cluster_nodes{state="healthy"}"#), 3.0);
    assert_eq!(value(r#"cairn_cluster_nodes{state="down"}"#), 0.0);
    assert_eq!(value("cairn_cluster_partitions_below_quorum"), 0.0);
    assert_eq!(value("cairn_cluster_partitions"), 1024.0);
    Ok(())
}
